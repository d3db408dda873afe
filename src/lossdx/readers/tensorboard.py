"""TensorBoard event files, read without TensorFlow, tensorboard or protobuf.

An event file is a TFRecord stream (``uint64 length, uint32 masked crc32c(length), data,
uint32 masked crc32c(data)``) of ``Event`` protos. We decode just the fields a scalar needs:
``Event.wall_time(1) step(2) summary(5)``, ``Summary.value(1)``, ``Value.tag(1) simple_value(2)
tensor(8) metadata(9)``, and the ``TensorProto`` of a TF2 scalar (rank 0, float/double/int).
A torn last record (a run still writing, or a crash) ends the read; everything before it is kept.
The records of the common layout (one ``simple_value`` per event) are decoded in bulk by numpy, the
rest one by one; every record's CRCs are verified (``benchmarks/read_speed.py`` has the speed).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from ..exceptions import CorruptLog
from ..model import Run, Series, SeriesBuilder
from .base import Progress, ensure_loss, is_regular_file, iter_blocks, make_run, open_regular

_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_PACKED_FLOATS = {5: _F32, 6: _F64}  # TensorProto float_val / double_val
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_HALF, _DT_BF16 = 1, 2, 3, 9, 19, 14


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def sniff(head: bytes, path: str) -> float:
    if len(head) < 12:
        return 0.0
    (length,) = _U64.unpack_from(head, 0)
    if length > (1 << 26):
        return 0.0
    (crc,) = struct.unpack_from("<I", head, 8)
    return 1.0 if crc == masked_crc32c(head[:8]) else 0.0


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        while buf[pos] & 0x80:
            pos += 1
        return pos + 1
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(buf, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise ValueError(f"unsupported wire type {wire}")


def _half(bits: int) -> float:
    return struct.unpack("<e", struct.pack("<H", bits & 0xFFFF))[0]


def _tensor_scalar(buf: bytes, pos: int, end: int) -> float | None:
    """The value of a rank-0 numeric TensorProto, or None for anything else."""
    dtype = 0
    content = None
    vals: list[float] = []
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(buf, pos)
        elif field == 2 and wire == 2:  # shape: any dim > 1 means not a scalar
            n, pos = _varint(buf, pos)
            sp, send = pos, pos + n
            while sp < send:
                k2, sp = _varint(buf, sp)
                if k2 >> 3 == 2 and k2 & 7 == 2:  # Dim
                    dn, sp = _varint(buf, sp)
                    dp, dend = sp, sp + dn
                    while dp < dend:
                        k3, dp = _varint(buf, dp)
                        if k3 >> 3 == 1 and k3 & 7 == 0:
                            size, dp = _varint(buf, dp)
                            if size != 1:
                                return None
                        else:
                            dp = _skip(buf, dp, k3 & 7)
                    sp = dend
                else:
                    sp = _skip(buf, sp, k2 & 7)
            pos = send
        elif field == 4 and wire == 2:
            n, pos = _varint(buf, pos)
            content = buf[pos:pos + n]
            pos += n
        elif field in _PACKED_FLOATS:  # float_val (5) / double_val (6), packed or not
            fmt = _PACKED_FLOATS[field]
            if wire == 2:
                n, pos = _varint(buf, pos)
                vals.extend(x[0] for x in fmt.iter_unpack(buf[pos:pos + n]))
                pos += n
            else:
                vals.append(fmt.unpack_from(buf, pos)[0])
                pos += fmt.size
        elif field in (7, 10, 13) and wire in (0, 2):  # int_val, int64_val, half_val
            if wire == 2:
                n, pos = _varint(buf, pos)
                vend = pos + n
                while pos < vend:
                    v, pos = _varint(buf, pos)
                    vals.append(_half(v) if field == 13 else float(v - (1 << 64) if v >> 63 else v))
            else:
                v, pos = _varint(buf, pos)
                vals.append(_half(v) if field == 13 else float(v - (1 << 64) if v >> 63 else v))
        else:
            pos = _skip(buf, pos, wire)
    if content is not None:
        fmt = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d", _DT_INT32: "<i", _DT_INT64: "<q", _DT_HALF: "<e"}.get(dtype)
        if dtype == _DT_BF16 and len(content) == 2:
            return struct.unpack("<f", b"\x00\x00" + content)[0]
        if fmt is None or len(content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, content)[0])
    if len(vals) == 1 and dtype in (_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_HALF, 0):
        return vals[0]
    return None


def _plugin_name(buf: bytes, pos: int, end: int) -> str:
    while pos < end:
        key, pos = _varint(buf, pos)
        if key == (1 << 3 | 2):  # plugin_data
            n, pos = _varint(buf, pos)
            pend = pos + n
            while pos < pend:
                k2, pos = _varint(buf, pos)
                if k2 == (1 << 3 | 2):
                    ln, pos = _varint(buf, pos)
                    return buf[pos:pos + ln].decode("utf-8", "replace")
                pos = _skip(buf, pos, k2 & 7)
            return ""
        pos = _skip(buf, pos, key & 7)
    return ""


_BLOCK = 16 << 20
_U64_MASK = (1 << 64) - 1
#: Records up to this long have their CRC checked in bulk by numpy; longer ones (images, graphs) in
#: Python, and only when they hold a scalar we keep.
_BULK_CRC_MAX = 512


def _crc_table_np() -> np.ndarray:
    return np.array(_CRC_TABLE, dtype=np.uint32)


_CRC_TABLE_NP = _crc_table_np()


def _masked_crc32c_many(buf: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Masked CRC-32C of ``buf[s:s+length]`` for every s in ``starts``, a byte column at a time."""
    crc = np.full(starts.size, 0xFFFFFFFF, dtype=np.uint32)
    table = _CRC_TABLE_NP
    for j in range(length):
        crc = table[(crc ^ buf[starts + j]) & 0xFF] ^ (crc >> 8)
    crc ^= np.uint32(0xFFFFFFFF)
    return ((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)


def _record_bounds(data: bytes) -> tuple[list[int], list[int], bool]:
    """(record starts, data lengths, an impossible length met): whole records only."""
    starts: list[int] = []
    lengths: list[int] = []
    pos, n = 0, len(data)
    unpack = _U64.unpack_from
    while pos + 12 <= n:
        (length,) = unpack(data, pos)
        if length > (1 << 26):
            return starts, lengths, True
        if pos + 16 + length > n:
            break  # the rest of this record is in the next block (or the file was cut)
        starts.append(pos)
        lengths.append(length)
        pos += 16 + length
    return starts, lengths, False


def _check_crcs(data: bytes, starts: list[int], lengths: list[int]) -> tuple[int, np.ndarray]:
    """(index of the first record whose length CRC is wrong, or len(starts); per record: data CRC verified
    bad). The length of a record with a bad header cannot be trusted, so nothing after it can be framed."""
    if not starts:
        return 0, np.zeros(0, dtype=bool)
    buf = np.frombuffer(data, dtype=np.uint8)
    st = np.asarray(starts, dtype=np.int64)
    ln = np.asarray(lengths, dtype=np.int64)

    def stored(at: np.ndarray) -> np.ndarray:  # little-endian uint32 at byte offsets
        b = buf[at[:, None] + np.arange(4)].astype(np.uint32)
        return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)

    header_ok = _masked_crc32c_many(buf, st, 8) == stored(st + 8)
    first_bad_header = int(np.argmin(header_ok)) if not header_ok.all() else len(starts)
    data_bad = np.zeros(len(starts), dtype=bool)
    short = np.nonzero(ln <= _BULK_CRC_MAX)[0]
    if short.size:
        for length in np.unique(ln[short]):
            idx = short[ln[short] == length]
            for k in range(0, idx.size, 1 << 16):
                part = idx[k:k + (1 << 16)]
                got = _masked_crc32c_many(buf, st[part] + 12, int(length))
                data_bad[part] = got != stored(st[part] + 12 + length)
    return first_bad_header, data_bad


def read_events(path: str, builder: SeriesBuilder, plugins: dict[str, str]) -> dict:
    """Add every scalar of one event file to ``builder``; return facts about the read.

    The file is read in 16 MB blocks (a record cut by a block edge waits for the next block), so
    memory stays flat however long the run was. Every record's CRCs are checked: a record whose data
    CRC is wrong is skipped (counted in ``corrupt``); one whose length CRC is wrong ends the read.
    """
    counts = {"records": 0, "corrupt": 0}
    truncated = False
    fh = open_regular(path)
    with fh:
        head = fh.read(12)
        if len(head) >= 12 and not sniff(head, path):
            raise CorruptLog(f"{path}: not a TensorBoard event file (bad record header)")
        carry = head
        for_final = iter_blocks(fh, path, _BLOCK)
        progress = Progress(path)
        while True:
            block = next(for_final, b"")
            progress.advance(len(block))
            data = carry + block if carry else block
            final = not block
            pos, bad = _parse_records(data, builder, plugins, counts)
            carry = data[pos:]
            if bad:
                truncated = True
                break
            if final:
                truncated = bool(carry)
                break
        progress.done()
    return {"records": counts["records"], "corrupt": counts["corrupt"], "truncated": truncated}


def _signed64(v: int) -> int:
    """An int64 proto field read as a varint: negative steps are legal (two's complement, 10 bytes)."""
    v &= _U64_MASK
    return v - (1 << 64) if v >> 63 else v


def _gather(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """``buf[at + k]`` for k < width, one row per offset (offsets past the end read the last byte)."""
    idx = at[:, None] + np.arange(width)
    np.minimum(idx, buf.size - 1, out=idx)
    return buf[idx]


def _simple_scalars(buf: np.ndarray, st: np.ndarray, ln: np.ndarray, builder: SeriesBuilder) -> np.ndarray:
    """Add, in bulk, the records that hold one ``simple_value`` scalar in the layout torch, tensorboardX
    and TF1 write (Event{wall_time, step, summary{value{tag, simple_value}}}); return which records
    (of ``st``, their data starts, and ``ln``, their lengths) were taken."""
    taken = np.zeros(st.size, dtype=bool)
    ok = (buf[np.minimum(st, buf.size - 1)] == 0x09) & (ln >= 22) & (ln <= _BULK_CRC_MAX)
    ok &= buf[np.minimum(st + 9, buf.size - 1)] == 0x10
    idx = np.nonzero(ok)[0]
    if not idx.size:
        return taken
    s = st[idx]
    varint = _gather(buf, s + 10, 10)
    cont = varint >= 0x80
    vlen = np.argmin(cont, axis=1) + 1  # the first byte without the continuation bit ends the step
    fits = ~cont.all(axis=1)
    p = s + 10 + vlen
    head = _gather(buf, p, 6)  # 0x2A summary_len 0x0A value_len 0x0A tag_len
    tl = head[:, 5].astype(np.int64)
    end = s + ln[idx]
    fits &= (head[:, 0] == 0x2A) & (head[:, 2] == 0x0A) & (head[:, 4] == 0x0A) & (tl < 0x80)
    fits &= (head[:, 1].astype(np.int64) == tl + 9) & (head[:, 3].astype(np.int64) == tl + 7)
    fits &= p + 11 + tl == end
    fits &= buf[np.minimum(p + 6 + tl, buf.size - 1)] == 0x15
    idx, s, vlen, varint, p, tl = idx[fits], s[fits], vlen[fits], varint[fits], p[fits], tl[fits]
    if not idx.size:
        return taken
    taken[idx] = True
    # step: the varint's 7-bit groups; int64 wraps a 10-byte negative step back to its value
    groups = (varint & 0x7F).astype(np.uint64) << (np.arange(10, dtype=np.uint64) * np.uint64(7))
    groups[np.arange(10) >= vlen[:, None]] = 0
    steps = np.bitwise_or.reduce(groups, axis=1).view(np.int64)
    walls = _gather(buf, s + 1, 8).copy().view("<f8")[:, 0]
    values = _gather(buf, p + 7 + tl, 4).copy().view("<f4")[:, 0].astype(np.float64)
    for length in np.unique(tl):
        sel = np.nonzero(tl == length)[0]
        tags = _gather(buf, p[sel] + 6, int(length))
        names, inverse = np.unique(tags.view(f"V{int(length)}").ravel(), return_inverse=True)
        for k, raw in enumerate(names):
            rows = sel[inverse.ravel() == k]
            tag = bytes(raw).decode("utf-8", "replace")
            builder.add_arrays(tag, steps[rows].astype(np.float64), values[rows], walls[rows])
    return taken


def _parse_records(data: bytes, builder: SeriesBuilder, plugins: dict[str, str],
                   counts: dict) -> tuple[int, bool]:
    """Parse the whole records in ``data``; return (bytes consumed, a record that cannot be framed met)."""
    starts, lengths, bad = _record_bounds(data)
    first_bad_header, data_bad = _check_crcs(data, starts, lengths)
    if first_bad_header < len(starts):
        starts, lengths, bad = starts[:first_bad_header], lengths[:first_bad_header], True
        data_bad = data_bad[:first_bad_header]
    pos = starts[-1] + 16 + lengths[-1] if starts else 0
    if not starts:
        return pos, bad
    counts["records"] += len(starts)
    counts["corrupt"] += int(data_bad.sum())
    buf = np.frombuffer(data, dtype=np.uint8)
    st = np.asarray(starts, dtype=np.int64) + 12
    ln = np.asarray(lengths, dtype=np.int64)
    good = ~data_bad
    taken = np.zeros(len(starts), dtype=bool)
    chunk = 1 << 17
    for k in range(0, len(starts), chunk):
        sel = np.nonzero(good[k:k + chunk])[0] + k
        taken[sel] = _simple_scalars(buf, st[sel], ln[sel], builder)
    add = builder.add
    for i in np.nonzero(good & ~taken)[0].tolist():  # every other record: the full decoder
        start = int(st[i])
        end = start + int(ln[i])
        try:
            points = _parse_event(data, start, end, plugins)
        except (IndexError, ValueError, struct.error):
            counts["corrupt"] += 1  # its CRC was right (or unchecked) but the proto is not one we can read
            continue
        if points and ln[i] > _BULK_CRC_MAX:
            stored = struct.unpack_from("<I", data, end)[0]
            if masked_crc32c(data[start:end]) != stored:
                counts["corrupt"] += 1
                continue
        for tag, step, value, wall in points:
            add(tag, step, value, wall)
    return pos, bad


def _parse_event(data: bytes, start: int, end: int, plugins: dict[str, str]) -> list[tuple[str, int, float, float]]:
    """The scalars of one Event proto: (tag, step, value, wall time)."""
    unpack_f32, unpack_f64 = _F32.unpack_from, _F64.unpack_from
    wall = 0.0
    step = 0
    p = start
    summaries = []
    while p < end:
        key = data[p]
        if key == 0x09:  # wall_time double
            wall = unpack_f64(data, p + 1)[0]
            p += 9
        elif key == 0x10:  # step varint (int64)
            step, p = _varint(data, p + 1)
            step = _signed64(step)
        elif key == 0x2A:  # summary
            ln, p = _varint(data, p + 1)
            summaries.append((p, p + ln))
            p += ln
        else:
            k, p = _varint(data, p)
            p = _skip(data, p, k & 7)
    points = []
    for s_start, s_end in summaries:
        p = s_start
        while p < s_end:
            k, p = _varint(data, p)
            if k != 0x0A:
                p = _skip(data, p, k & 7)
                continue
            ln, p = _varint(data, p)
            v_end = p + ln
            tag = None
            value = None
            tensor = None
            plugin = None
            while p < v_end:
                k2 = data[p]
                if k2 == 0x0A:  # tag
                    tl, p = _varint(data, p + 1)
                    tag = data[p:p + tl].decode("utf-8", "replace")
                    p += tl
                elif k2 == 0x15:  # simple_value float
                    value = unpack_f32(data, p + 1)[0]
                    p += 5
                elif k2 == 0x42:  # tensor
                    tl, p = _varint(data, p + 1)
                    tensor = (p, p + tl)
                    p += tl
                elif k2 == 0x4A:  # metadata
                    tl, p = _varint(data, p + 1)
                    plugin = _plugin_name(data, p, p + tl)
                    p += tl
                else:
                    k3, p = _varint(data, p)
                    p = _skip(data, p, k3 & 7)
            if tag is None:
                continue
            if plugin is not None and tag not in plugins:
                plugins[tag] = plugin
            if value is None and tensor is not None:
                if plugins.get(tag, "scalars") not in ("scalars", ""):
                    continue
                value = _tensor_scalar(data, tensor[0], tensor[1])
            if value is not None:
                points.append((tag, step, value, wall))
    return points


def parse_block(data: bytes, builder: SeriesBuilder, plugins: dict[str, str]) -> tuple[int, bool]:
    """Add the whole records at the start of ``data`` to ``builder``; return (bytes consumed, corrupt record
    met). A record cut at the end waits: ``lossdx watch`` calls this with the bytes a file grew by."""
    counts = {"records": 0, "corrupt": 0}
    return _parse_records(data, builder, plugins, counts)


def _event_files(path: str) -> dict[str, list[str]]:
    """Event files grouped by run directory (TensorBoard's notion of a run); regular files only (a FIFO
    named like an event file would block the read forever)."""
    if os.path.isfile(path):
        return {"": [path]}
    groups: dict[str, list[str]] = {}
    for root, _dirs, files in os.walk(path):
        for f in sorted(files):
            if "tfevents" in f and is_regular_file(os.path.join(root, f)):
                rel = os.path.relpath(root, path)
                groups.setdefault("" if rel == "." else rel, []).append(os.path.join(root, f))
    return groups


def has_event_files(path: str) -> bool:
    return bool(_event_files(path)) if os.path.isdir(path) else False


def _split_runs(per_file: list[tuple[str, dict[str, Series], dict]]) -> list[list[tuple[str, dict[str, Series], dict]]]:
    """Event files of one directory in creation order, grouped into runs. A file continues the run before
    it (a resume, or a second writer of other tags) unless a metric they share starts over at or before
    that run's first step: then it is another run written into the same directory, kept apart."""
    runs: list[list[tuple[str, dict[str, Series], dict]]] = []
    first: dict[str, int] = {}  # the current run's first step per tag
    for item in per_file:
        series = item[1]
        starts = {k: int(v.steps[0]) for k, v in series.items() if len(v)}
        shared = set(starts) & set(first)
        if runs and not any(starts[k] <= first[k] for k in shared):
            runs[-1].append(item)
            for k, st in starts.items():
                first.setdefault(k, st)
            continue
        runs.append([item])
        first = dict(starts)
    return runs


def read(path: str) -> list[Run]:
    groups = _event_files(path)
    if not groups:
        raise CorruptLog(f"{path}: no TensorBoard event files")
    runs = []
    errors = []
    base_name = os.path.basename(path.rstrip("/"))
    for run_name, files in sorted(groups.items()):
        plugins: dict[str, str] = {}
        per_file = []
        for f in sorted(files):  # event file names start with the creation time: restarts come in order
            b = SeriesBuilder()
            try:
                info = read_events(f, b, plugins)
            except CorruptLog as err:
                errors.append(str(err))
                continue
            notes = []
            if info["corrupt"]:
                notes.append(f"{os.path.basename(f)}: {info['corrupt']} corrupt record(s) skipped (CRC mismatch)")
            if info["truncated"]:
                notes.append(f"{os.path.basename(f)}: torn or corrupt record; the rest of the file was ignored")
            if len(b):
                per_file.append((f, b.build(), {"notes": notes}))
            elif notes:
                errors.append(f"{f}: {notes[0]}")
        parts = _split_runs(per_file)
        for k, part in enumerate(parts):
            merged = SeriesBuilder()
            notes = []
            for _f, series, info in part:
                for name, ser in series.items():
                    merged.add_arrays(name, ser.steps.astype(np.float64), ser.values, ser.wall_times)
                notes.extend(info["notes"])
            name = run_name or base_name
            if len(parts) > 1:
                name = os.path.join(run_name, os.path.basename(part[0][0])) if run_name else os.path.basename(part[0][0])
                notes.append(f"{len(parts)} unrelated runs in one directory (a step counter starts over); kept apart")
            run = make_run(merged, path, "tensorboard", {"run_name": name, "notes": notes})
            try:
                runs.append(ensure_loss(run, path))
            except CorruptLog as err:
                errors.append(str(err))
    if not runs:
        raise CorruptLog(errors[0] if errors else f"{path}: event files hold no scalars")
    return runs
