"""Whatever the bytes, check_data returns a report or raises InputError (one line in the CLI), never crashes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossdx.datacheck import check_data
from lossdx.exceptions import InputError


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(64, dtype=np.int32).reshape(8, 8))
    return buf.getvalue()


def _parquet_bytes() -> bytes:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}] * 5), buf)
    return buf.getvalue()


def _arrow_bytes() -> bytes:
    pa = pytest.importorskip("pyarrow")
    sink = pa.BufferOutputStream()
    t = pa.Table.from_pylist([{"input_ids": [1, 2, 3]}] * 5)
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


SEEDS = [b"", b"{}", json.dumps({"input_ids": [1, 2], "labels": [2, -100]}).encode() + b"\n", b"a,b,label\n1,2,x\n"]


@settings(max_examples=150, deadline=None, derandomize=True,  # reproducible in CI
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_and_truncated_inputs(tmp_path, data):
    seeds = SEEDS + [_npy_bytes(), _parquet_bytes(), _arrow_bytes()]
    base = data.draw(st.sampled_from(seeds))
    how = data.draw(st.sampled_from(["truncate", "flip", "append", "random"]))
    if how == "truncate" and base:
        blob = base[: data.draw(st.integers(0, len(base)))]
    elif how == "flip" and base:
        i = data.draw(st.integers(0, len(base) - 1))
        blob = base[:i] + bytes([base[i] ^ data.draw(st.integers(1, 255))]) + base[i + 1:]
    elif how == "append":
        blob = base + data.draw(st.binary(max_size=64))
    else:
        blob = data.draw(st.binary(max_size=256))
    p = tmp_path / "input.dat"
    p.write_bytes(blob)
    try:
        report = check_data(str(p), vocab_size=data.draw(st.sampled_from([None, 10, 50257])))
    except InputError as e:
        assert str(e) and "\n" not in str(e)
    else:
        json.loads(report.to_json())
