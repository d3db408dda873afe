"""Optional fast path through pyarrow (``pip install "lossdx[fast]"``): its multi-threaded C++ CSV parser
for large CSV logs. It returns None whenever the file holds anything the numpy reader would treat
differently (text cells), so both paths give the same run; tests/readers/test_delimited.py checks that
they agree exactly. (pyarrow's JSON reader alone peaks above 300 MB on 1M rows; JSONL has its own
C-speed path in ``jsonl``.)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: Below this size the plain readers are as fast and pyarrow's import is not worth it.
MIN_BYTES = 1 << 20


def _pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.compute  # noqa: F401
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return None
    return pyarrow


def available(path: str) -> bool:
    """pyarrow is installed and the file is large and dense (a sparse file's holes are for the plain
    readers, which skip them; pyarrow would read them)."""
    try:
        size = os.path.getsize(path)
        if size < MIN_BYTES:
            return False
        if hasattr(os, "SEEK_HOLE"):
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                if os.lseek(fd, 0, os.SEEK_HOLE) < size:
                    return False
            finally:
                os.close(fd)
    except OSError:
        return False
    return _pyarrow() is not None


def _numeric(pa: Any, col: Any, fill: float) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(float64 values with nulls filled, mask of present cells or None when all are) or None."""
    t = col.type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)):
        return None
    if pa.types.is_null(t):
        return np.full(len(col), fill), np.zeros(len(col), dtype=bool)
    if pa.types.is_integer(t):
        col = pa.compute.cast(col, pa.float64())
    elif t != pa.float64():
        col = pa.compute.cast(col, pa.float64())
    present = None
    if col.null_count:
        present = np.asarray(pa.compute.is_valid(col))
        col = col.fill_null(fill)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64), present


def read_csv_matrix(path: str, delimiter: str, header: list[str], ncols: int, empty: float) -> np.ndarray | None:
    """The numeric body of a CSV as a (rows, ncols) float64 array (empty cells = ``empty``), or None.
    Streamed batch by batch with every column read as float64, so memory is the result plus one batch."""
    pa = _pyarrow()
    if pa is None:
        return None
    import pyarrow.csv as pacsv

    names = list(header) + [""] * (ncols - len(header))
    if len(set(names)) != len(names):
        return None  # duplicate names: the plain reader keeps them apart by position
    parts: list[list[np.ndarray]] = [[] for _ in range(ncols)]
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.float64() for n in names}, null_values=[""],
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
        for batch in reader:
            if batch.num_columns != ncols:
                return None
            for j in range(ncols):
                col = batch.column(j)
                if col.null_count:
                    col = col.fill_null(empty)
                parts[j].append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64))
            del batch
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError, StopIteration):
        return None  # a text cell, a ragged row: the plain reader decides what it means
    n = sum(p.size for p in parts[0])
    if n == 0:
        return None
    out = np.empty((ncols, n))
    for j in range(ncols):
        out[j] = np.concatenate(parts[j]) if len(parts[j]) > 1 else parts[j][0]
        parts[j] = []
    pa.default_memory_pool().release_unused()
    return out.T  # column-major: the reader's transpose is then free


def _numeric_type(pa: Any, t: Any) -> bool | None:
    return True if (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)) else None
