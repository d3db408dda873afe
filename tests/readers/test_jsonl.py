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


def test_uniform_fast_path_and_json_path_agree_exactly(tmp_path, monkeypatch):
    import json
    import random

    import numpy as np

    from lossdx.readers import jsonl

    rnd = random.Random(1)
    p = tmp_path / "metrics.jsonl"
    with open(p, "w") as fh:
        for i in range(30_000):
            row = {"step": i, "loss": rnd.random() * 3, "lr": 3e-4, "grad_norm": rnd.random(), "tokens": i * 2 ** 40}
            if i % 1000 == 0:
                row = {"step": i, "val_loss": rnd.random() * 3}  # irregular rows: those chunks take the json path
            fh.write(json.dumps(row, separators=(",", ":") if i > 20_000 else (", ", ": ")) + "\n")
    monkeypatch.setattr(jsonl, "CHUNK_LINES", 50)  # many chunks: most uniform, some not
    calls = []
    real = jsonl._uniform_chunk
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: calls.append(r := real(text)) or r)
    fast = read(str(p))
    assert sum(c is not None for c in calls) > len(calls) // 2, "the uniform path was not taken"
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: None)
    slow = read(str(p))
    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values, slow.series[k].values, equal_nan=True), k


@pytest.mark.parametrize("text", [
    '{"step": 1, "loss": true}\n{"step": 2, "loss": false}\n',
    '{"step": 1, "loss": "1.5"}\n{"step": 2, "loss": "2.5"}\n',
    '{"step": 1, "loss": 1.5, "name": "a b"}\n{"step": 2, "loss": 2.5, "name": "a b"}\n',
    '{"step": 1, "train": {"loss": 1.5}}\n{"step": 2, "train": {"loss": 2.5}}\n',
    '{"step": 1, "loss": 1.5}\n{"step": 2, "lr": 2.5}\n',
    '{"step": 1, "loss": 1.5}\n{"step": 2, "loss": 2.5',
    '{"a:b": 1, "loss": 1.5}\n{"a:b": 2, "loss": 2.5}\n',
])
def test_uniform_fast_path_declines_what_it_cannot_read_exactly(text):
    from lossdx.readers import jsonl

    assert jsonl._uniform_chunk(text) is None


def test_large_uniform_chunks_agree_with_json_bit_for_bit(tmp_path, monkeypatch):
    """Whole default-size chunks of extreme values (tiny and huge floats, ints past 2^53, NaN, -0.0) through the
    uniform path: bit for bit what json gives."""
    import json
    import random

    import numpy as np

    from lossdx.readers import jsonl

    rnd = random.Random(2)
    p = tmp_path / "metrics.jsonl"
    with open(p, "w") as fh:
        for i in range(12_000):
            fh.write(json.dumps({"step": i, "loss": rnd.random() * 10 ** rnd.randint(-30, 30), "lr": rnd.gauss(0, 1),
                                 "tokens": i * 2 ** 53 + 1, "gn": float("nan") if i % 977 == 0 else -0.0}) + "\n")
    calls = []
    real = jsonl._uniform_chunk
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: calls.append(r := real(text)) or r)
    fast = read(str(p))
    assert calls and all(c is not None for c in calls), "the uniform path was not taken"
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: None)
    slow = read(str(p))
    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values.view(np.int64), slow.series[k].values.view(np.int64)), k
