"""Optional fast path through pyarrow (``pip install "lossdx[fast]"``): its multi-threaded C++ CSV and JSON
parsers for large CSV and JSONL logs. Each returns None whenever the input holds anything the plain reader
would treat differently (text cells, booleans, nesting, JSON the ``json`` module reads otherwise), so both
paths give the same run; tests/readers/test_delimited.py and test_jsonl.py check that they agree exactly.
JSONL goes block by block (the blocks the plain reader parses), so memory stays one block of tables.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any

import numpy as np

#: Below this size the plain readers are as fast and pyarrow's import is not worth it.
MIN_BYTES = 1 << 20


def _pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
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


def _pyarrow_json() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.json  # noqa: F401
    except ImportError:
        return None
    return pyarrow


def json_installed() -> bool:
    return _pyarrow_json() is not None


_BOM = b"\xef\xbb\xbf"
#: an integer literal -0: json gives int 0 (+0.0), pyarrow's double column -0.0
_NEGATIVE_ZERO_INT = re.compile(rb"-0(?![.eE0-9])")
#: an integer with 309 digits or more may exceed the largest double (1.8e308)
_OVERFLOWING_INT = re.compile(rb"[0-9]{309}")
#: bytes per block of pyarrow's parser: a 2.4 MB block of lines is parsed by up to 3 threads
JSON_BLOCK_BYTES = 1 << 20


def _float_column(pa: Any, col: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(float64 values, NaN where null; mask of present cells or None when all are) of an int64, double
    or null column; None for any other type (booleans, text, nesting: the json path decides)."""
    t = col.type
    n = len(col)
    if pa.types.is_null(t):
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if t == pa.int64():
        dtype: Any = np.int64
    elif t == pa.float64():
        dtype = np.float64
    else:
        return None
    values, present = [], []
    for chunk in col.chunks:
        m = len(chunk)
        if m == 0:
            continue
        validity, data = chunk.buffers()[:2]
        v = np.frombuffer(data, dtype=dtype, count=chunk.offset + m)[chunk.offset:].astype(np.float64)
        if chunk.null_count:
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
            ok = bits[chunk.offset:chunk.offset + m].astype(bool)
            v[~ok] = np.nan
        else:
            ok = None
        values.append(v)
        present.append(ok)
    if not values:
        return np.empty(0), None
    out = np.concatenate(values) if len(values) != 1 else values[0]
    if all(p is None for p in present):
        return out, None
    mask = np.concatenate([np.ones(len(v), dtype=bool) if p is None else p for v, p in zip(values, present)])
    return out, mask


def read_json_block(raw: bytes) -> tuple[dict[str, tuple[np.ndarray, np.ndarray | None]], int] | None:
    """A block of whole JSON lines (as ``readers.base.iter_line_blocks`` gives them, already checked to be
    UTF-8) as float64 columns with their masks of present cells, and the row count; None where the block
    holds anything ``json.loads`` line by line would read differently: a line that is not exactly one flat
    object of numbers (blank, torn, two objects, nested, text, booleans, duplicate keys: pyarrow refuses or
    the counts below differ), and the few literals pyarrow reads and json does not or not alike (``Inf``,
    ``-NaN``, integer ``-0``, integers past the double range, escapes, a BOM mid-block)."""
    pa = _pyarrow_json()
    if pa is None:
        return None
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if not raw.isascii() and _BOM in raw:
        return None
    # every line starts with its object's brace, so none is blank (json skips those, pyarrow too): then
    # rows == lines below means exactly one object on every line (numpy finds the newlines 4x faster than
    # bytes.count finds "\n{")
    chars = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(chars == 10)
    ends_with_newline = raw.endswith(b"\n")
    lines = newlines.size + (0 if ends_with_newline else 1)
    followed = newlines[:-1] if ends_with_newline else newlines  # newlines with another line after them
    if not raw.startswith(b"{") or not bool((chars[followed + 1] == 123).all()):  # 123: "{"
        return None
    # single-byte tests first (memchr): most blocks have none of these letters
    if b"\\" in raw or (b"N" in raw and b"-NaN" in raw) or (
            b"I" in raw and raw.count(b"Inf") != raw.count(b"Infinity")) or _NEGATIVE_ZERO_INT.search(raw):
        return None
    try:
        table = pa.json.read_json(io.BytesIO(raw), read_options=pa.json.ReadOptions(block_size=JSON_BLOCK_BYTES))
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.num_rows != lines:
        return None
    columns: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, col in zip(table.column_names, table.columns):
        conv = _float_column(pa, col)
        if conv is None:
            return None
        if np.isinf(conv[0]).any() and _OVERFLOWING_INT.search(raw):
            return None  # an integer past the double range: pyarrow gives inf, json an int numpy refuses
        columns[name] = conv
    return columns, table.num_rows
