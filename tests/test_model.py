import numpy as np

from lossdx.model import Run, Series, SeriesBuilder


def test_from_points_sorts_and_keeps_last_duplicate():
    s = Series.from_points("train/loss", [3, 1, 2, 2], [3.0, 1.0, 2.0, 2.5])
    assert s.steps.tolist() == [1, 2, 3]
    assert s.values.tolist() == [1.0, 2.5, 3.0]


def test_resumed_run_overwrites_the_replayed_steps():
    # logged 0..4, crashed, resumed from the checkpoint at step 2 and logged 2..5 again
    steps = [0, 1, 2, 3, 4, 2, 3, 4, 5]
    vals = [9, 8, 7, 6, 5, 70, 60, 50, 40]
    s = Series.from_points("train/loss", steps, vals)
    assert s.points() == [(0, 9.0), (1, 8.0), (2, 70.0), (3, 60.0), (4, 50.0), (5, 40.0)]


def test_nan_is_data_and_finite_drops_it():
    s = Series.from_points("train/loss", [0, 1, 2], [1.0, float("nan"), 0.5])
    assert np.isnan(s.values[1])
    assert s.finite().steps.tolist() == [0, 2]


def test_builder_and_run_step_range():
    b = SeriesBuilder()
    b.add_many(10, {"train/loss": 2.0, "train/lr": 1e-3})
    b.add("val/loss", 20, 2.5)
    run = Run(series=b.build())
    assert run.metrics == ["train/loss", "train/lr", "val/loss"]
    assert run.step_range() == (10, 20)
