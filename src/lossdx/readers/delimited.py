"""CSV/TSV logs: Lightning CSVLogger (sparse rows), W&B exports (wide, ``__MIN``/``__MAX``, quoted
numbers), and generic tables.

Numbers are parsed by numpy in 8 MB blocks of whole lines: ``loadtxt`` (C) for dense blocks, else
``np.fromstring`` on the raw bytes with empty cells marked by a sentinel (so "not logged" stays distinct
from a logged NaN); only irregular blocks fall back to the ``csv`` module. Reading in blocks through a
plain ``read`` (no mmap: a file rewritten while read must not kill the process) keeps memory flat.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import warnings

import numpy as np

from ..exceptions import CorruptLog
from ..keys import ALIASES, canonical, is_step_name, pick_step_name
from ..model import Run, Series
from . import _arrow
from .base import Progress, decode_text, ensure_loss, iter_line_blocks, make_run, open_regular

#: Marks an empty cell in the fast path; a value no logger writes.
_EMPTY = -9.876543219876543e307
_EMPTY_TXT = b"-9.876543219876543e307"
CHUNK_BYTES = 8 << 20
_WANDB_SPLIT = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<agg>__MIN|__MAX|__STEP)?$")
# W&B's own columns of a run's history (``run.history()`` / ``scan_history`` saved as CSV): a row counter, seconds
# since start, a wall clock. They are bookkeeping, not metrics; ``_step`` is the step only when no trainer step is
# logged (an HF run's ``train/global_step`` counts optimizer steps, ``_step`` counts W&B log calls).
_WANDB_SYSTEM = {"_step", "_runtime", "_timestamp", "_wandb"}


def _delimiter(first_lines: list[str]) -> str | None:
    first_lines = [p for ln in first_lines for p in ln.splitlines()]  # a stray \r is a line break to csv too
    for d in (",", "\t", ";"):
        try:
            counts = [len(cells) - 1 for cells in csv.reader([ln for ln in first_lines if ln.strip()], delimiter=d)]
        except csv.Error:
            continue
        if counts and counts[0] >= 1 and all(c == counts[0] for c in counts[: min(len(counts), 8)]):
            return d
    return None


def sniff(head: bytes, path: str) -> float:
    try:
        text = head.decode("utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        text = head[: len(head) - 4].decode("utf-8", errors="ignore")
    lines = [ln for ln in text.splitlines()[:10] if ln.strip()]
    if len(lines) < 2:
        return 0.0
    body = lines[:-1] if len(lines) > 2 else lines  # the last line of the head may be cut
    d = _delimiter(body)
    if d is None:
        return 0.0
    header = next(csv.reader([lines[0]], delimiter=d))
    numeric_header = sum(_is_number(h) for h in header)
    if numeric_header > len(header) // 2:
        return 0.0  # no header row: not something we can name
    second = next(csv.reader([lines[1]], delimiter=d))
    numeric = sum(_is_number(c) for c in second if c != "")
    if numeric == 0:
        return 0.0
    named = any(is_step_name(h) or "loss" in h.lower() for h in header)
    return 0.85 if named else 0.5


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _parse_fast(chunk: bytes, ncols: int, d: bytes) -> np.ndarray | None:
    """Parse a block of whole lines of numbers; None if anything is irregular."""
    if b'"' in chunk:
        chunk = chunk.replace(b'"', b"")  # W&B quotes every number; real quoted text fails the count below
    chunk = b"\n" + chunk.replace(b"\r", b"").strip(b"\n") + b"\n"
    while b"\n\n" in chunk:
        chunk = chunk.replace(b"\n\n", b"\n")
    nlines = chunk.count(b"\n") - 1
    if nlines <= 0:
        return np.empty((0, ncols))
    chunk = chunk.replace(b"\n" + d, b"\n" + _EMPTY_TXT + d)
    chunk = chunk.replace(d + d, d + _EMPTY_TXT + d).replace(d + d, d + _EMPTY_TXT + d)
    chunk = chunk.replace(d + b"\n", d + _EMPTY_TXT + b"\n")
    body = chunk[1:-1].replace(b"\n", d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            arr = np.fromstring(body, sep=d.decode())  # type: ignore[call-overload]
        except (ValueError, DeprecationWarning):
            return None
    if arr.size != nlines * ncols:
        return None
    return arr.reshape(nlines, ncols)


def _parse_dense(block: bytes, d: str, ncols: int) -> np.ndarray | None:
    """numpy's C parser (``loadtxt``) over a block of whole lines: the fast path for dense numeric
    tables (no empty cells). None when the block is irregular."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = np.loadtxt(io.StringIO(block.decode("utf-8")), delimiter=d, quotechar='"', dtype=np.float64,
                           ndmin=2, comments=None)
        except (ValueError, UnicodeDecodeError):
            return None
    if m.shape[0] == 0 or m.shape[1] != ncols:
        return None
    return m


def _parse_slow(text: str, ncols: int, d: str) -> np.ndarray:
    rows = []
    for cells in csv.reader(io.StringIO(text), delimiter=d):
        if not cells or all(not c.strip() for c in cells):
            continue
        row = []
        for c in cells[:ncols]:
            c = c.strip().strip("*").strip()  # markdown bold in pasted tables
            if c == "":
                row.append(_EMPTY)
                continue
            try:
                row.append(float(c.replace(",", "")) if c.count(",") and not d == "," else float(c))
            except ValueError:
                row.append(np.nan if c.lower() in ("nan", "-nan", "inf", "-inf") else _EMPTY)
        row += [_EMPTY] * (ncols - len(row))
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), ncols)


def _read_matrix(path: str) -> tuple[list[str], np.ndarray]:
    with open_regular(path) as fh:
        blocks_in = iter_line_blocks(fh, path, CHUNK_BYTES)
        first_block = next(blocks_in, b"")
        if first_block.startswith(b"\xef\xbb\xbf"):
            first_block = first_block[3:]
        nl = first_block.find(b"\n")
        first, rest = (first_block, b"") if nl < 0 else (first_block[: nl + 1], first_block[nl + 1:])
        header_text = decode_text(first, path).strip("\r\n")
        peek = rest[:4096]
        lines = [header_text] + decode_text(peek[: peek.rfind(b"\n") + 1] or peek, path).splitlines()[:5]
        d = _delimiter(lines) or ","
        header = [h.strip() for h in next(csv.reader([header_text], delimiter=d))]
        if header and header[-1] == "":
            header = header[:-1]  # a trailing delimiter on every line (pasted tables)
            trailing = True
        else:
            trailing = False
        ncols = len(header) + (1 if trailing else 0)
        if _arrow.available(path):
            fast = _arrow.read_csv_matrix(path, d, header, ncols, _EMPTY)
            if fast is not None:
                return header, fast[:, : len(header)]
        blocks = []
        db = d.encode()
        progress = Progress(path)
        for chunk in itertools.chain([rest], blocks_in):
            progress.advance(len(chunk))
            if not chunk.strip():
                continue
            decode_text(chunk, path)  # same error for a bad byte whichever path parses it
            block = _parse_dense(chunk, d, ncols)
            if block is None:
                block = _parse_fast(chunk, ncols, db)
            if block is None:
                block = _parse_slow(chunk.decode("utf-8-sig"), ncols, d)
            blocks.append(block[:, : len(header)])
        progress.done()
    matrix = np.concatenate(blocks) if blocks else np.empty((0, len(header)))
    return header, matrix


def _series_from_columns(
    columns: dict[str, np.ndarray], steps: np.ndarray
) -> dict[str, Series]:
    out: dict[str, Series] = {}
    step_ok = np.isfinite(steps) & (steps != _EMPTY)
    all_steps = bool(step_ok.all())
    # dense, strictly increasing steps (the common large file): one int copy shared by every column
    int_steps = steps.astype(np.int64) if all_steps and bool((steps[1:] > steps[:-1]).all()) else None
    for name, col in columns.items():
        col = np.ascontiguousarray(col)
        present = col != _EMPTY
        if all_steps and present.all():
            if int_steps is not None:
                key = canonical(name)
                if key not in out or len(out[key]) < len(col):
                    out[key] = Series(key, int_steps, col)
                continue
            s_steps, s_vals = steps, col  # dense column: no masking copies
        else:
            ok = present & step_ok
            if not ok.any():
                continue
            s_steps, s_vals = steps[ok], col[ok]
        key = canonical(name)
        s = Series.from_points(key, s_steps, s_vals, repeats="mean")
        if key not in out or len(out[key]) < len(s):
            out[key] = s
    return out


def read(path: str) -> list[Run]:
    header, m = _read_matrix(path)
    if m.shape[0] == 0:
        raise CorruptLog(f"{path}: table has a header but no rows")
    n_rows = m.shape[0]
    m = np.ascontiguousarray(m.T)  # one column per row: slicing a column is then contiguous
    step_name = pick_step_name(header)
    if step_name is not None:
        steps = m[header.index(step_name)]
    else:
        steps = np.arange(n_rows, dtype=np.float64)
    wandb_history = any(h.strip() in ("_runtime", "_timestamp") for h in header)
    value_cols = {h: m[i] for i, h in enumerate(header)
                  if h != step_name and h and not (wandb_history and h.strip() in _WANDB_SYSTEM)}
    # W&B UI export: "<run> - <metric>" columns, with __MIN/__MAX companions we drop
    wandb = {h: _WANDB_SPLIT.match(h) for h in value_cols}
    if value_cols and all(wandb.values()):
        by_run: dict[str, dict[str, np.ndarray]] = {}
        for h, mt in wandb.items():
            if mt and not mt.group("agg"):
                by_run.setdefault(mt.group("run"), {})[mt.group("metric")] = value_cols[h]
        runs = []
        for run_name, cols in by_run.items():
            series = _series_from_columns(cols, steps)
            if not series:
                continue
            run = make_run(series, path, "wandb_csv", {"run_name": run_name}, already_canonical=True)
            try:
                runs.append(ensure_loss(run, path))
            except CorruptLog:
                continue
        if runs:
            return runs
        raise CorruptLog(f"{path}: W&B export holds no loss-like metric")
    fmt = "wandb_history" if wandb_history else "lightning_csv" if any(h.startswith("lr-") for h in header) or (
        "epoch" in header and "step" in header) else "csv"
    series = _series_from_columns(value_cols, steps)
    meta: dict = {}
    if not any(k == "train/loss" or k == "val/loss" or "loss" in k for k in series):
        # a W&B chart export names the metric only in the file name (train_loss.csv): one run per column
        # ... and only when the columns are run names, not metrics we know
        stem_words = os.path.splitext(os.path.basename(path))[0].lower()
        stem = ("val/loss" if re.search(r"(^|[^a-z])(val|valid|eval|validation)[_\-/ ]?loss([^a-z]|$)", stem_words)
                else "train/loss" if re.search(r"(^|[^a-z])(train[_\- ]?)?loss([^a-z]|$)", stem_words) else "")
        known = set(ALIASES.values())
        if stem and value_cols and not any(canonical(h) in known for h in value_cols):
            runs = []
            for h, col in value_cols.items():
                s = _series_from_columns({stem: col}, steps)
                if s:
                    runs.append(make_run(s, path, "wandb_csv", {
                        "run_name": h, "notes": [f"metric named by the file name: {stem}"]}, already_canonical=True))
            if runs:
                return runs
    run = make_run(series, path, fmt, meta, already_canonical=True)
    return [ensure_loss(run, path)]
