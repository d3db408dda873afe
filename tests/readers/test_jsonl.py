import math

import pytest

from lossdx.readers import read


def test_jsonl_rows_eval_rows_and_nan(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 0, "loss": 9.0, "grad_norm": 17.3, "lr": 1.5e-05}\n'
                 '{"step": 0, "val_loss": 9.05, "train_loss_eval": 9.07}\n'
                 '{"step": 1, "loss": NaN, "grad_norm": Infinity, "lr": 3e-05}\n'
                 '{"step": 2, "loss": 8.1, "grad_norm": 10.5, "lr": 4.5e-05, "loss_scale": 65536}\n')
    run = read(str(f))
    loss = run.series["train/loss"]
    assert loss.steps.tolist() == [0, 1, 2] and math.isnan(loss.values[1])
    assert run.series["val/loss"].points() == [(0, 9.05)]
    assert run.series["train/loss_scale"].points() == [(2, 65536.0)]


def test_torn_last_line_is_skipped_and_noted(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 0, "loss": 2.0}\n{"step": 1, "loss": 1.5}\n{"step": 2, "lo')
    run = read(str(f))
    assert run.series["train/loss"].steps.tolist() == [0, 1]
    assert any("unparseable" in n for n in run.meta["notes"])


def test_many_rows_across_chunks(tmp_path):
    f = tmp_path / "metrics.jsonl"
    n = 120_000
    with open(f, "w") as fh:
        for i in range(n):
            fh.write(f'{{"step": {i}, "loss": {1.0 + 1.0 / (i + 1)}}}\n')
            if i % 1000 == 0:
                fh.write(f'{{"step": {i}, "val_loss": 2.0}}\n')
    run = read(str(f))
    assert len(run.series["train/loss"]) == n
    assert len(run.series["val/loss"]) == n // 1000
    assert run.series["train/loss"].values[-1] == 1.0 + 1.0 / n


def test_pyarrow_and_python_paths_agree_exactly(tmp_path, monkeypatch):
    import json
    import random

    import numpy as np

    pytest.importorskip("pyarrow")
    from lossdx.readers import _arrow

    rnd = random.Random(1)
    p = tmp_path / "metrics.jsonl"
    with open(p, "w") as fh:
        for i in range(30_000):
            row = {"step": i, "loss": rnd.random() * 3, "lr": 3e-4, "grad_norm": rnd.random(), "skipped": i % 7 == 0}
            if i % 100 == 0:
                row = {"step": i, "val_loss": rnd.random() * 3, "note": None}
            fh.write(json.dumps(row) + "\n")
    assert p.stat().st_size > _arrow.MIN_BYTES
    calls = []
    real = _arrow.read_jsonl_columns
    monkeypatch.setattr(_arrow, "read_jsonl_columns", lambda *a: calls.append(1) or real(*a))
    fast = read(str(p))
    assert calls and real(str(p)) is not None, "the pyarrow path was not taken"
    monkeypatch.setattr(_arrow, "available", lambda path: False)
    slow = read(str(p))
    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values, slow.series[k].values, equal_nan=True), k
