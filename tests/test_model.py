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


def test_repeated_steps_of_records_are_averaged_when_repetition_is_the_pattern():
    # one JSON/CSV record per micro-batch (4 per optimizer step): the step's loss is their mean
    s = Series.from_points("train/loss", [0, 0, 0, 0, 1, 1, 1, 1], [4, 6, 5, 5, 3, 3, 2, 4], repeats="mean")
    assert s.points() == [(0, 5.0), (1, 3.0)]
    # a resumed run (steps go back) keeps the replayed values; a single repeat keeps its last value
    assert Series.from_points("x", [0, 1, 2, 1, 2], [9, 8, 7, 6, 5], repeats="mean").points() == [(0, 9), (1, 6), (2, 5)]
    assert Series.from_points("x", [0, 1, 1, 2, 3], [9, 8, 7, 6, 5], repeats="mean").points() == [(0, 9), (1, 7), (2, 6), (3, 5)]
    # text logs: two lines of one step may name different things "loss"; the last is kept
    assert Series.from_points("x", [0, 0, 1, 1], [6.9, 6.8, 6.7, 6.6]).points() == [(0, 6.8), (1, 6.6)]


def test_jsonl_per_micro_batch_records_give_the_optimizer_step_mean(tmp_path):
    from lossdx.readers import read

    f = tmp_path / "metrics.jsonl"
    f.write_text("".join(f'{{"micro_step": {4 * s + m}, "step": {s}, "loss": {5 - s + m * 0.1}}}\n'
                         for s in range(5) for m in range(4)))
    loss = read(str(f)).series["train/loss"]
    assert loss.steps.tolist() == [0, 1, 2, 3, 4]
    assert abs(loss.values[0] - 5.15) < 1e-9 and abs(loss.values[4] - 1.15) < 1e-9
