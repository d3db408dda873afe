"""JSON Lines: one JSON object per line (our own training scripts, W&B history, many custom loggers).

Parsed in chunks: by pyarrow's C++ parser where it is installed (``lossdx[fast]``, files of 1 MB and more;
``_arrow.read_json_block`` declines any chunk it would read differently), else with one ``json.loads``
per chunk (the C decoder does the work) turned into columns with list comprehensions, so 1M rows cost about
as much as pandas and stay under 200 MB.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import numpy as np

from ..exceptions import CorruptLog
from ..keys import canonical, pick_step_name
from ..model import Run, Series
from . import _arrow
from .base import Progress, decode_text, ensure_loss, iter_line_blocks, make_run, open_regular

CHUNK_LINES = 20_000
#: A longer line is cut (and then skipped as unparseable): W&B rows with histograms stay well below.
MAX_RECORD_BYTES = 1 << 20


def sniff(head: bytes, path: str) -> float:
    lines = [ln.strip() for ln in head.splitlines()[:20] if ln.strip()]
    if len(lines) < 1:
        return 0.0
    ok = 0
    for ln in lines[:-1] or lines:  # the last line of the head may be cut
        if ln.startswith(b"{") and ln.endswith(b"}"):
            try:
                if isinstance(json.loads(ln), dict):
                    ok += 1
            except (ValueError, RecursionError):  # RecursionError: a line nested ~1000 deep
                pass
    n = len(lines[:-1] or lines)
    # a pretty-printed JSON document starts with "{" alone on a line: that is not JSONL
    return 0.9 * ok / n if n and ok else 0.0


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


class _Columns:
    """Column store filled chunk by chunk; remembers which rows had a key at all (absent != NaN)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[int, np.ndarray, np.ndarray | None]]] = {}
        self.rows = 0

    def add_chunk(self, rows: list[dict]) -> None:
        keys: set[str] = set()
        for r in rows:
            keys.update(r)
        for k in sorted(keys):
            col = [r.get(k) for r in rows]
            try:
                arr = np.array(col, dtype=np.float64)  # None -> nan
                if arr.ndim != 1:  # lists as values ({"loss": [..]}): no scalar per row
                    raise ValueError(k)
            except (TypeError, ValueError):
                conv = [_as_float(v) for v in col]
                if all(v is None for v in conv):
                    continue
                col = conv
                arr = np.array([math.nan if v is None else v for v in conv], dtype=np.float64)
            present = np.array([v is not None for v in col], dtype=bool) if None in col else None
            self.parts.setdefault(k, []).append((self.rows, arr, present))
        self.rows += len(rows)

    def add_arrays(self, columns: dict[str, np.ndarray], nrows: int) -> None:
        """A chunk already in columns (every row has every key)."""
        for k, arr in columns.items():
            self.parts.setdefault(k, []).append((self.rows, arr, None))
        self.rows += nrows

    def add_masked(self, columns: dict[str, tuple[np.ndarray, np.ndarray | None]], nrows: int) -> None:
        """A chunk in columns, each with its mask of rows that have the key (None: all have it)."""
        for k, (arr, present) in columns.items():
            self.parts.setdefault(k, []).append((self.rows, arr, present))
        self.rows += nrows

    def pop_column(self, k: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(values, present mask or None when every row has the key); frees the chunks as it goes."""
        parts = self.parts.pop(k)
        full = sum(arr.size for _o, arr, mask in parts if mask is None) == self.rows
        if full:  # every row has the key (the parts, in row order, cover them all): no NaN fill, no mask
            return (np.concatenate([arr for _o, arr, _m in parts]) if len(parts) != 1 else parts[0][1]), None
        v = np.full(self.rows, np.nan)
        p = np.zeros(self.rows, dtype=bool)
        for offset, arr, mask in parts:
            v[offset:offset + arr.size] = arr
            p[offset:offset + arr.size] = True if mask is None else mask
        return v, p


_PUNCTUATION = str.maketrans("{}:,", "    ")


def _uniform_chunk(text: str) -> tuple[dict[str, np.ndarray], int] | None:
    """The common large file, at C speed: every line a flat object of the same keys in the same order
    with numeric values. Braces, colons and commas become spaces, so each line is the same 2n tokens
    (key, value, key, value ...); anything else (strings, nesting, booleans, a torn or odd line) changes
    a count or fails ``float`` and the chunk goes through ``json`` instead, with the same result."""
    first_end = text.find("\n")
    first = (text if first_end < 0 else text[:first_end]).strip()
    try:
        row = json.loads(first)
    except (ValueError, RecursionError):
        return None
    if not isinstance(row, dict) or not row or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in row.values()):
        return None
    width = 2 * len(row)
    first_tokens = first.translate(_PUNCTUATION).split()
    if len(first_tokens) != width:
        return None
    tokens = text.translate(_PUNCTUATION).split()
    nrows = len(tokens) // width
    if len(tokens) != nrows * width or text.count("{") != nrows or text.count("}") != nrows:
        return None
    columns: dict[str, np.ndarray] = {}
    for j, key in enumerate(row):
        if tokens[2 * j::width].count(first_tokens[2 * j]) != nrows:
            return None
        try:
            values = np.array(list(map(float, tokens[2 * j + 1::width])), dtype=np.float64)
        except ValueError:
            return None
        columns[key] = values
    return columns, nrows


def _parse_chunk(lines: list[str], bad: list[int]) -> list[dict]:
    try:
        rows = json.loads("[" + ",".join(lines) + "]")
        if all(isinstance(r, dict) for r in rows):
            return rows
    except (ValueError, RecursionError):
        pass
    rows = []
    for ln in lines:  # salvage: skip what does not parse (a torn last line, a stray print)
        try:
            r = json.loads(ln)
        except (ValueError, RecursionError):
            bad.append(1)
            continue
        if isinstance(r, dict):
            rows.append(r)
        else:
            bad.append(1)
    return rows


def _flatten(rows: list[dict]) -> list[dict]:
    """W&B history nests dicts ({"train": {"loss": ...}}); flatten one level as train/loss."""
    if not any(isinstance(v, dict) for v in rows[0].values()):
        return rows
    out = []
    for r in rows:
        flat = {}
        for k, v in r.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    flat[f"{k}/{k2}"] = v2
            else:
                flat[k] = v
        out.append(flat)
    return out


def _arrow_worth_it(path: str) -> bool:
    try:
        return os.path.getsize(path) >= _arrow.MIN_BYTES and _arrow.json_installed()
    except OSError:
        return False


def _read_columns(path: str, bad: list[int]) -> _Columns:
    cols = _Columns()
    progress = Progress(path)
    use_arrow = _arrow_worth_it(path)
    arrow_ok = arrow_refused = 0
    with open_regular(path) as fh:
        for raw in iter_line_blocks(fh, path, block=CHUNK_LINES * 120, max_line=MAX_RECORD_BYTES):
            progress.advance(len(raw))
            if use_arrow:
                if not raw.isascii():
                    decode_text(raw, path)  # the same error for a bad byte whichever path parses it
                block = _arrow.read_json_block(raw)
                if block is not None:
                    cols.add_masked(*block)
                    arrow_ok += 1
                    continue
                arrow_refused += 1
                # most chunks refused (nested W&B rows, text fields): parse once, not twice, from here on
                use_arrow = arrow_refused <= 2 or arrow_refused <= arrow_ok
            text = decode_text(raw, path)
            uniform = _uniform_chunk(text)
            if uniform is not None:
                cols.add_arrays(*uniform)
                continue
            lines = [ln for ln in text.split("\n") if ln.strip()]
            rows = _parse_chunk(lines, bad)
            if rows:
                cols.add_chunk(_flatten(rows))
    progress.done()
    return cols


def read(path: str) -> list[Run]:
    bad: list[int] = []
    cols = _read_columns(path, bad)
    if cols.rows == 0:
        raise CorruptLog(f"{path}: no JSON object lines")
    meta = {"notes": [f"{len(bad)} unparseable line(s) skipped"]} if bad else {}
    return [_run_of_columns(cols, path, "jsonl", meta)]


def _run_of_columns(cols: _Columns, path: str, fmt: str, meta: dict) -> Run:
    step_key = pick_step_name(sorted(cols.parts))
    if step_key:
        steps, step_present = cols.pop_column(step_key)
        if step_present is not None:
            steps[~step_present] = np.nan
    else:
        steps = np.arange(cols.rows, dtype=np.float64)
    step_ok = np.isfinite(steps)
    all_steps = bool(step_ok.all())
    # the common large file: every row has a step, strictly increasing -> one int copy shared by all
    int_steps = steps.astype(np.int64) if all_steps and bool((steps[1:] > steps[:-1]).all()) else None
    series: dict[str, Series] = {}
    for k in sorted(cols.parts):
        v, present = cols.pop_column(k)
        key = canonical(k)
        if present is None and int_steps is not None:
            s = Series(key, int_steps, v)
        else:
            ok = step_ok if present is None else present & step_ok
            if not ok.any():
                continue
            s = Series.from_points(key, steps[ok], v[ok], repeats="mean")
        if key not in series or len(series[key]) < len(s):
            series[key] = s
    run = make_run(series, path, fmt, meta, already_canonical=True)
    return ensure_loss(run, path)


# --- one JSON document: `json.dump(history.history, f)` (Keras: {"loss": [...], "val_loss": [...]}, one value per
# epoch), `json.dump(records, f, indent=2)` (a list of {"step": .., "loss": ..} rows), or either under one key
# ({"history": {...}}, {"log": [...]}). trainer_state.json has its own reader.
_LOSS_LIST = re.compile(rb'"[^"\n]{0,80}loss[^"\n]{0,80}"\s*:\s*\[', re.I)
_LOSS_NUMBER = re.compile(rb'"[^"\n]{0,80}loss[^"\n]{0,80}"\s*:\s*[-+0-9.NI]', re.I)
#: read whole, so bounded: a log this large is written as JSON lines
MAX_DOCUMENT_BYTES = 256 << 20


def sniff_document(head: bytes, path: str) -> float:
    from ..config.readers import _CONFIG_NAMES

    if os.path.basename(path) in _CONFIG_NAMES:
        return 0.0  # a run's config ("loss_weights": [...]) is read for the logs beside it, never as one
    h = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if h.startswith(b"["):
        return 0.95 if h[1:].lstrip().startswith(b"{") and _LOSS_NUMBER.search(head) else 0.0
    if not h.startswith(b"{") or b'"log_history"' in head:
        return 0.0
    first = h.split(b"\n", 1)[0].strip()
    try:
        row = json.loads(first)
        if isinstance(row, dict) and not any(isinstance(v, list) or isinstance(v, dict) and any(
                isinstance(x, list) for x in v.values()) for v in row.values()):
            return 0.0  # a line of JSON lines (a document on one line holds its lists, at most one key down)
    except (ValueError, RecursionError):
        pass
    return 0.95 if _LOSS_LIST.search(head) else 0.0


def _history_in(doc: Any) -> tuple[list[dict] | None, dict[str, list] | None]:
    """(records, or columns of per-epoch lists) in the document or under one of its keys."""
    for candidate in [doc] + (list(doc.values()) if isinstance(doc, dict) else []):
        if isinstance(candidate, list) and candidate and all(isinstance(r, dict) for r in candidate):
            return candidate, None
        if isinstance(candidate, dict):
            lists = {k: v for k, v in candidate.items() if isinstance(v, list) and v
                     and all(_as_float(x) is not None or x is None for x in v)}
            if any("loss" in k.lower() and len(v) >= 2 for k, v in lists.items()):
                return None, lists
    return None, None


def read_document(path: str) -> list[Run]:
    from .base import read_text

    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    if size > MAX_DOCUMENT_BYTES:
        raise CorruptLog(f"{path}: a JSON document of {size >> 20} MB is read whole; write logs this large as "
                         f"JSON lines (one object per line)")
    doc = json.loads(read_text(path, cap_lines=False))
    records, lists = _history_in(doc)
    cols = _Columns()
    notes: list[str] = []
    if records is not None:
        for i in range(0, len(records), CHUNK_LINES):
            cols.add_chunk(_flatten([r for r in records[i:i + CHUNK_LINES] if isinstance(r, dict)]))
    elif lists is not None:
        longest = max(len(v) for v in lists.values())
        if any(k.lower() in ("step", "epoch", "global_step") for k in lists):
            rows = [{k: (v[i] if i < len(v) else None) for k, v in lists.items()} for i in range(longest)]
        else:
            # Keras' history: one value per epoch, numbered from 1 like fit()'s "Epoch 1/N"; a shorter list
            # (evaluated every few epochs) is spread evenly over the longest, which the notes say
            rows = [{"step": i + 1} for i in range(longest)]
            for k, v in lists.items():
                for j, x in enumerate(v):
                    rows[round((j + 1) * longest / len(v)) - 1][k] = x
            if len({len(v) for v in lists.values()}) > 1:
                notes.append("lists of different lengths: each spread evenly over the longest ("
                             + ", ".join(f"{k} {len(v)}" for k, v in lists.items()) + ")")
            notes.append("the document prints no step numbers, one value per epoch: steps are its epoch numbers")
        cols.add_chunk(rows)
    if cols.rows == 0:
        raise CorruptLog(f"{path}: a JSON document with no list of records or of per-epoch values")
    meta: dict = {"notes": notes} if notes else {}
    if lists is not None and "step" not in {k.lower() for k in lists}:
        meta["step_unit"] = "epoch"
    return [_run_of_columns(cols, path, "json", meta)]
