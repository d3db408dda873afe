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
    meta = {"notes": [f"{len(bad)} unparseable line(s) skipped"]} if bad else {}
    run = make_run(series, path, "jsonl", meta, already_canonical=True)
    return [ensure_loss(run, path)]
