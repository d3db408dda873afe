"""Write TensorBoard event files without TensorFlow or torch (test fixtures, benchmarks).

Framing per ``tensorboard/summary/writer/record_writer.py``: uint64 length, uint32 masked
crc32c(length), data, uint32 masked crc32c(data).
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterable

from ..readers.tensorboard import masked_crc32c


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    key = _varint(num << 3 | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def scalar_event(tag: str, value: float, step: int, wall_time: float = 0.0, *, tensor: bool = False,
                 plugin: str | None = None) -> bytes:
    """An Event proto with one scalar, as ``simple_value`` (TF1/torch) or a rank-0 DT_FLOAT tensor (TF2)."""
    value_msg = _field(1, 2, tag.encode())
    if tensor:
        tensor_msg = _field(1, 0, _varint(1)) + _field(2, 2, b"") + _field(5, 2, struct.pack("<f", value))
        value_msg += _field(8, 2, tensor_msg)
        if plugin is not None:
            value_msg += _field(9, 2, _field(1, 2, _field(1, 2, plugin.encode())))
    else:
        value_msg += _field(2, 5, struct.pack("<f", value))
    summary = _field(1, 2, value_msg)
    return _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step)) + _field(5, 2, summary)


def file_version_event(wall_time: float = 0.0) -> bytes:
    return _field(1, 1, struct.pack("<d", wall_time)) + _field(3, 2, b"brain.Event:2")


def record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def write_events(fh: BinaryIO, events: Iterable[bytes]) -> None:
    fh.write(record(file_version_event()))
    for ev in events:
        fh.write(record(ev))
