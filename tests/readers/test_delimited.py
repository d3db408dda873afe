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
