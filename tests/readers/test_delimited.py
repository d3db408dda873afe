import math

from lossdx.readers import read, read_runs


def test_lightning_sparse_rows_and_lr_column(tmp_path):
    f = tmp_path / "metrics.csv"
    f.write_text("epoch,step,train_loss,grad_norm,lr-AdamW,val_loss\n"
                 "0,0,9.08,17.3,1.5e-05,\n0,0,,,,9.05\n0,1,8.69,16.8,3e-05,\n0,2,nan,10.5,4.5e-05,\n")
    run = read(str(f))
    assert run.source["format"] == "lightning_csv"
    loss = run.series["train/loss"]
    assert loss.steps.tolist() == [0, 1, 2] and loss.values[0] == 9.08 and math.isnan(loss.values[2])
    assert run.series["val/loss"].points() == [(0, 9.05)]  # the empty cells are "not logged", not NaN
    assert run.series["train/lr"].points()[1] == (1, 3e-05)


def test_lightning_resumed_run_keeps_the_replayed_values(tmp_path):
    f = tmp_path / "metrics.csv"
    f.write_text("step,train_loss\n0,5\n1,4\n2,3\n1,40\n2,30\n3,20\n")
    assert read(str(f)).series["train/loss"].points() == [(0, 5.0), (1, 40.0), (2, 30.0), (3, 20.0)]


def test_wandb_export_wide_quoted_with_min_max(tmp_path):
    f = tmp_path / "export.csv"
    f.write_text('"Step","runA - train/loss","runA - train/loss__MIN","runA - train/loss__MAX","runB - train/loss"\n'
                 '"0","10.5","10.5","10.5","11.0"\n"1","9.5","9.4","9.6",""\n"2","8.5","8.5","8.5","9.0"\n')
    runs = read_runs(str(f))
    assert [r.meta["run_name"] for r in runs] == ["runA", "runB"]
    assert runs[0].series["train/loss"].points() == [(0, 10.5), (1, 9.5), (2, 8.5)]
    assert runs[1].series["train/loss"].points() == [(0, 11.0), (2, 9.0)]


def test_generic_csv_without_step_column_uses_row_order(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text('date,time,loss_begin,loss_end\n2022-05-30,"May, 30 2022",10.33,3.76\n2022-06-02,"June, 2",3.12,2.98\n')
    run = read(str(f))
    assert run.series["train/loss"].steps.tolist() == [0, 1]


def test_tsv(tmp_path):
    f = tmp_path / "log.tsv"
    f.write_text("step\tloss\tval_loss\n0\t3.0\t\n10\t2.0\t2.5\n")
    run = read(str(f))
    assert run.series["train/loss"].points() == [(0, 3.0), (10, 2.0)]
    assert run.series["val/loss"].points() == [(10, 2.5)]


def _big_csv(path, n=60_000):
    import random

    rnd = random.Random(1)
    with open(path, "w") as fh:
        fh.write("epoch,step,train_loss,grad_norm,lr-AdamW,val_loss\n")
        for i in range(n):
            loss = f"{2 + rnd.random():.9f}" if i % 977 else "nan"
            val = f"{rnd.random() * 3:.6e}" if i % 50 == 0 else ""
            fh.write(f'{i // 1000},{i},{loss},"{rnd.random():.17g}",{3e-4 * rnd.random():.6e},{val}\n')
            if i == n // 2:
                fh.write("\n")
    return path


def test_numpy_and_csv_module_paths_agree_exactly(tmp_path, monkeypatch):
    import numpy as np

    from lossdx.readers import delimited

    path = str(_big_csv(tmp_path / "metrics.csv"))
    assert (tmp_path / "metrics.csv").stat().st_size > (1 << 20)
    fast = read(path)
    monkeypatch.setattr(delimited, "_parse_dense", lambda *a: None)
    monkeypatch.setattr(delimited, "_parse_fast", lambda *a: None)
    slow = read(path)
    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values, slow.series[k].values, equal_nan=True), k
    assert len(fast.series["val/loss"]) == 60_000 // 50


def test_dense_parser_is_exact_and_strict():
    import numpy as np

    from lossdx.readers import delimited

    texts = ["0.1", "1e-7", "123456789012345678901234", "2.2250738585072014e-308", "-0", "3.14159265358979323846",
             "NaN", "-inf", "Infinity", "7", ".5", "5.", "1E+3", "9007199254740993"]
    body = ("\n".join(texts) + "\n").encode()
    got = delimited._parse_dense(body, ",", 1)
    assert got is not None and got.shape == (len(texts), 1)
    for t, v in zip(texts, got[:, 0]):
        ref = float(t)
        assert (np.isnan(v) and np.isnan(ref)) or v == ref, t
    for bad in (b"1,2\n", b"abc\n", b"1e\n", b"--1\n", b"1.2.3\n"):
        assert delimited._parse_dense(bad, ",", 1) is None, bad


def test_pyarrow_and_numpy_paths_agree_exactly(tmp_path, monkeypatch):
    import numpy as np
    import pytest

    pytest.importorskip("pyarrow")
    from lossdx.readers import _arrow

    path = str(_big_csv(tmp_path / "metrics.csv"))
    calls = []
    real = _arrow.read_csv_matrix
    monkeypatch.setattr(_arrow, "read_csv_matrix", lambda *a: calls.append(r := real(*a)) or r)
    fast = read(path)
    assert calls and calls[0] is not None, "the pyarrow path was not taken"
    monkeypatch.setattr(_arrow, "available", lambda p: False)
    slow = read(path)
    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values, slow.series[k].values, equal_nan=True), k


def test_wandb_history_csv_keeps_the_trainer_step_and_drops_wandb_bookkeeping(tmp_path):
    # run.history() saved as CSV: _step counts W&B log calls, the HF trainer's step is train/global_step;
    # _runtime and _timestamp are W&B's clock, not metrics of the run
    f = tmp_path / "wandb_history.csv"
    f.write_text("_step,_runtime,_timestamp,eval/loss,train/global_step,train/loss\n"
                 "0,0.41,1764000000.41,,5,1.39\n1,0.83,1764000000.83,,10,1.38\n2,1.5,1764000001.5,1.30,10,\n"
                 "3,1.9,1764000001.9,,15,1.31\n")
    run = read(str(f))
    assert run.source["format"] == "wandb_history"
    assert run.series["train/loss"].points() == [(5, 1.39), (10, 1.38), (15, 1.31)]
    assert run.series["val/loss"].points() == [(10, 1.30)]
    assert not {"runtime", "timestamp", "step"} & set(run.series)


def test_wandb_history_csv_without_a_trainer_step_counts_wandb_steps(tmp_path):
    f = tmp_path / "history.csv"
    f.write_text("_step,_runtime,loss\n0,1.0,2.5\n1,2.0,2.4\n2,3.0,2.2\n")
    run = read(str(f))
    assert run.series["train/loss"].points() == [(0, 2.5), (1, 2.4), (2, 2.2)] and set(run.series) == {"train/loss"}
