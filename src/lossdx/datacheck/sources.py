"""Streamed readers of training data: fixed-size chunks of a token file, batches of rows, batches of a table.

Every reader holds at most one chunk or batch in memory, so a 10 GB file is checked in bounded memory.
The format is sniffed from the content (magic bytes, first characters), not from the file name.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import tokenize
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ..exceptions import InputError

#: tokens per chunk of a token file: 2M tokens; the checks' uint64 temporaries are 16 MB each at this size
CHUNK_TOKENS = 2 * 1024 * 1024
ROWS_PER_BATCH = 4096
LIST_ITEMS_PER_BATCH = 1 << 20  # JSONL rows are Python lists until converted: ~50 bytes per item, so ~50 MB
TOKEN_COLUMNS = ("input_ids", "labels", "attention_mask")
LABEL_COLUMNS = ("label", "labels", "target", "targets", "class", "y")


@dataclass
class ListColumn:
    """A column of variable-length integer lists, flattened: row r is ``values[offsets[r]:offsets[r + 1]]``."""

    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        # a corrupted Arrow/Parquet file can carry offsets that run backwards or past the values: refuse them here
        # once, so no check downstream meets a negative row length
        o = np.asarray(self.offsets)
        if o.size and (int(o[0]) < 0 or int(o[-1]) > self.values.size or bool((np.diff(o) < 0).any())):
            raise InputError("corrupt list column: its row offsets run backwards or past its values")


@dataclass
class Batch:
    row0: int  # global index of the first row
    n_rows: int
    lists: dict[str, ListColumn] = field(default_factory=dict)
    scalars: dict[str, np.ndarray] = field(default_factory=dict)


class TokenFile:
    """A flat token stream: a nanoGPT ``.bin`` memmap (uint16/uint32) or a 1-D integer ``.npy``."""

    kind = "tokens"

    def __init__(self, path: str, dtype: np.dtype, offset: int = 0, fmt: str = "bin") -> None:
        self.path, self.dtype, self.offset = path, np.dtype(dtype), offset
        size = os.path.getsize(path) - offset
        if size % self.dtype.itemsize:
            raise InputError(f"{path}: {size} bytes is not a whole number of {self.dtype.name} tokens "
                             f"(wrong --dtype?)")
        self.n_tokens = size // self.dtype.itemsize
        self.total_bytes = size
        self.format = f"{fmt}-{self.dtype.name}"

    def chunks(self, chunk_tokens: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(token offset, tokens)``, read with ``readinto`` into one reused buffer (no mmap: mapped pages count
        as RSS)."""
        buf = np.empty(chunk_tokens or CHUNK_TOKENS, dtype=self.dtype)
        view = buf.data.cast("B")
        pos = 0
        with open(self.path, "rb", buffering=0) as fh:
            fh.seek(self.offset)
            while pos < self.n_tokens:
                got = fh.readinto(view)
                if not got:
                    break
                n = got // self.dtype.itemsize
                yield pos, buf[:n]
                pos += n


class RowSource:
    """Rows with token-list columns (``input_ids``/``labels``/``attention_mask``) and scalar columns."""

    kind = "rows"

    def __init__(self, path: str, fmt: str, total_bytes: int,
                 batches: Callable[[], Iterator[tuple[int, Batch]]]) -> None:
        self.path, self.format, self.total_bytes, self._batches = path, fmt, total_bytes, batches

    def batches(self) -> Iterator[tuple[int, Batch]]:
        """``(bytes done so far, batch)``."""
        return self._batches()


def _batch_from_pylists(row0: int, rows: list[dict[str, Any]]) -> Batch:
    b = Batch(row0=row0, n_rows=len(rows))
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    for k in keys:
        col = [r.get(k) for r in rows]
        if any(isinstance(v, list) for v in col):
            lists = [v if isinstance(v, list) else [] for v in col]
            lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
            offsets = np.concatenate(([0], np.cumsum(lens)))
            try:  # one C-level pass decides the type: int64, float64, or object (strings, nesting: not tokens)
                values = np.asarray(list(itertools.chain.from_iterable(lists)))
            except (ValueError, OverflowError):
                continue
            if values.size == 0:
                values = np.zeros(0, np.int64)
            if values.dtype.kind not in "iufb" or values.ndim != 1:
                continue
            b.lists[k] = ListColumn(values.astype(np.int64 if values.dtype.kind in "iub" else np.float64,
                                                  copy=False), offsets)
        else:
            b.scalars[k] = _scalar_array(col)
    return b


def _scalar_array(col: list[Any]) -> np.ndarray:
    if all(isinstance(v, (int, float, bool)) and not isinstance(v, bool) or v is None for v in col):
        return np.asarray([np.nan if v is None else v for v in col], dtype=np.float64)
    return np.asarray(["" if v is None else str(v) for v in col], dtype=object)


def _jsonl(path: str) -> RowSource:
    total = os.path.getsize(path)

    def batches() -> Iterator[tuple[int, Batch]]:
        row0, rows, items = 0, [], 0
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
                    why = getattr(e, "msg", None) or "not UTF-8 text"
                    raise InputError(f"{path}: line {lineno} is not JSON ({why})") from None
                if not isinstance(obj, dict):
                    raise InputError(f"{path}: line {lineno} is not a JSON object")
                rows.append(obj)
                items += sum(len(v) for v in obj.values() if isinstance(v, list))
                if len(rows) == ROWS_PER_BATCH or items >= LIST_ITEMS_PER_BATCH:
                    yield fh.tell(), _batch_from_pylists(row0, rows)
                    row0, rows, items = row0 + len(rows), [], 0
        if rows:
            yield total, _batch_from_pylists(row0, rows)

    return RowSource(path, "jsonl", total, batches)


def _pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise InputError("reading Parquet/Arrow data needs pyarrow: pip install 'lossdx[parquet]'") from None
    return pyarrow


def _arrow_batch(row0: int, rb: Any) -> Batch:
    pa = _pyarrow()
    b = Batch(row0=row0, n_rows=rb.num_rows)
    for name, arr in zip(rb.schema.names, rb.columns):
        t = arr.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            if not (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
                continue
            arr = arr.fill_null([]) if arr.null_count else arr
            if pa.types.is_fixed_size_list(t):
                values = arr.flatten().to_numpy(zero_copy_only=False)
                offsets = np.arange(len(arr) + 1, dtype=np.int64) * t.list_size
            else:
                offs = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
                values = arr.values.to_numpy(zero_copy_only=False)[offs[0]:offs[-1]]
                offsets = offs - offs[0]
            b.lists[name] = ListColumn(np.asarray(values), offsets)
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            b.scalars[name] = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            b.scalars[name] = np.asarray(arr.cast(pa.string()).to_pylist() if pa.types.is_dictionary(t)
                                         else arr.to_pylist(), dtype=object)
    return b


def _parquet(path: str) -> RowSource:
    pa = _pyarrow()
    try:
        pf = pa.parquet.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError with a useful message
        raise InputError(f"{path}: unreadable Parquet file ({str(e).splitlines()[0]})") from None
    total = os.path.getsize(path)
    n_rows = max(1, pf.metadata.num_rows)

    def batches() -> Iterator[tuple[int, Batch]]:
        row0 = 0
        it = pf.iter_batches(batch_size=ROWS_PER_BATCH)
        while True:
            try:
                rb = next(it)
            except StopIteration:
                return
            except (pa.lib.ArrowException, OSError, ValueError) as e:  # a corrupt page, found only when read
                raise InputError(f"{path}: corrupt Parquet data after row {row0:,} "
                                 f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
            b = _arrow_batch(row0, rb)
            row0 += rb.num_rows
            yield int(total * row0 / n_rows), b

    return RowSource(path, "parquet", total, batches)


def _arrow_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".arrow"))
        if not files:
            raise InputError(f"{path}: a directory without .arrow files (expected a dataset saved with "
                             f"datasets.save_to_disk, or pass a file)")
        return files
    return [path]


def _arrow(path: str) -> RowSource:
    pa = _pyarrow()
    files = _arrow_files(path)
    total = sum(os.path.getsize(f) for f in files)

    def batches() -> Iterator[tuple[int, Batch]]:
        row0, done = 0, 0
        for f in files:
            with pa.memory_map(f, "r") as src:
                with open(f, "rb") as fh:
                    head = fh.read(6)
                try:
                    reader = pa.ipc.open_file(src) if head == b"ARROW1" else pa.ipc.open_stream(src)
                    it = (reader.get_batch(i) for i in range(reader.num_record_batches)) if head == b"ARROW1" \
                        else iter(reader)
                    for rb in it:
                        for start in range(0, rb.num_rows, ROWS_PER_BATCH):
                            part = rb.slice(start, ROWS_PER_BATCH)
                            b = _arrow_batch(row0, part)
                            row0 += part.num_rows
                            yield done + src.tell(), b
                except (pa.lib.ArrowException, OSError, ValueError) as e:
                    why = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise InputError(f"{f}: unreadable Arrow file ({why})") from None
            done += os.path.getsize(f)

    return RowSource(path, "arrow", total, batches)


def _npy(path: str) -> TokenFile | RowSource:
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
        except (ValueError, OSError, SyntaxError, TypeError, tokenize.TokenError, MemoryError, RecursionError) as e:
            # numpy parses the header dict with the tokenizer: a corrupted header raises any of these
            raise InputError(f"{path}: unreadable .npy header ({type(e).__name__})") from None
        offset = fh.tell()
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if os.path.getsize(path) < need:
        raise InputError(f"{path}: truncated .npy ({os.path.getsize(path):,} of {need:,} bytes)")
    if dtype.hasobject:
        raise InputError(f"{path}: .npy of Python objects is refused (it would need pickle)")
    if fortran and len(shape) > 1:
        raise InputError(f"{path}: Fortran-ordered .npy arrays are not supported; save it C-ordered")
    if len(shape) <= 1 and dtype.kind in "iu":
        return TokenFile(path, dtype, offset, fmt="npy")
    if len(shape) != 2:
        raise InputError(f"{path}: .npy of shape {shape} (expected 1-D tokens or 2-D rows)")
    n, width = shape
    total = os.path.getsize(path)
    row_bytes = max(1, width * dtype.itemsize)
    per = max(1, min(ROWS_PER_BATCH, (16 << 20) // row_bytes))

    def batches() -> Iterator[tuple[int, Batch]]:
        with open(path, "rb") as fh:
            fh.seek(offset)
            for r0 in range(0, n, per):
                k = min(per, n - r0)
                a = np.fromfile(fh, dtype=dtype, count=k * width).reshape(k, width)
                b = Batch(row0=r0, n_rows=k)
                if dtype.kind in "iu":
                    b.lists["input_ids"] = ListColumn(a.reshape(-1), np.arange(k + 1, dtype=np.int64) * width)
                else:
                    for j in range(width):
                        b.scalars[f"feature_{j}"] = a[:, j].astype(np.float64)
                yield offset + (r0 + k) * row_bytes, b

    return RowSource(path, "npy-rows" if dtype.kind in "iu" else "npy-features", total, batches)


def _csv(path: str, head: str) -> RowSource:
    total = os.path.getsize(path)
    try:
        dialect = csv.Sniffer().sniff(head.split("\n", 20)[0] if "\n" in head else head, delimiters=",;\t|")
        delim = dialect.delimiter
    except csv.Error:
        delim = ","

    def batches() -> Iterator[tuple[int, Batch]]:
        with open(path, "r", encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=delim)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}: empty CSV")
            header = [h.strip() or f"column_{i}" for i, h in enumerate(header)]
            row0, rows = 0, []
            for row in reader:
                if not row:
                    continue
                rows.append(row)
                if len(rows) == 8 * ROWS_PER_BATCH:
                    yield min(total, fh.tell()), _table_batch(row0, header, rows)
                    row0, rows = row0 + len(rows), []
            if rows:
                yield total, _table_batch(row0, header, rows)

    return RowSource(path, "csv", total, batches)


def _table_batch(row0: int, header: list[str], rows: list[list[str]]) -> Batch:
    b = Batch(row0=row0, n_rows=len(rows))
    for j, name in enumerate(header):
        col = [r[j].strip() if j < len(r) else "" for r in rows]
        try:
            b.scalars[name] = np.asarray([float(v) if v else np.nan for v in col], dtype=np.float64)
        except ValueError:
            b.scalars[name] = np.asarray(col, dtype=object)
    return b


def open_source(path: str, dtype: str | None = None) -> TokenFile | RowSource:
    """Sniff ``path`` and return its streamed reader; a clear :class:`InputError` for what cannot be read."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if any(f.endswith(".arrow") for f in os.listdir(path)):
            return _arrow(path)
        raise InputError(f"{path}: a directory, but not a dataset saved to disk (no .arrow files); pass a data file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if not head:
        raise InputError(f"{path}: empty file")
    if head.startswith(b"\x93NUMPY"):
        return _npy(path)
    if head.startswith(b"PAR1"):
        return _parquet(path)
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return _arrow(path)
    if head[:2] == b"PK" or head[:1] == b"\x80" or head[:2] == b"\x1f\x8b":
        raise InputError(f"{path}: a zip/pickle/gzip file is not a data format lossdx reads "
                         f"(token .bin/.npy, JSONL, Parquet, Arrow, CSV)")
    if b"\x00" not in head:
        text: str | None
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as e:
            text = head[: e.start].decode("utf-8") if e.start > len(head) - 4 else None
        if text is not None:
            first = text.lstrip()[:1]
            if first == "{":
                return _jsonl(path)
            if first == "[":
                raise InputError(f"{path}: a JSON array; write one JSON object per line (JSONL)")
            return _csv(path, text)
    dt = np.dtype(dtype or "uint16")
    if dt.kind not in "iu":
        raise InputError(f"--dtype {dtype}: token files hold integers (uint16 or uint32)")
    return TokenFile(path, dt)
