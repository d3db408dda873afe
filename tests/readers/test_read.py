import os

from lossdx.analyze import analyze_path
from lossdx.readers import read
from lossdx.testing.events import record, scalar_event


def _log(path):
    path.write_text("".join(f"iter {i}: loss {3 * 0.98 ** i + 1:.4f}, time 10.00ms, mfu 1.00%\n" for i in range(30)))
    return path


def test_the_run_records_the_files_it_was_read_from(tmp_path):
    log = _log(tmp_path / "train.log")
    assert read(str(log)).meta["files_read"] == [str(log)]
    assert read(str(tmp_path)).meta["files_read"] == [str(log)]  # the log chosen inside a directory
    tb = tmp_path / "tb" / "run1"
    tb.mkdir(parents=True)
    (tb / "events.out.tfevents.1").write_bytes(record(b"\x1a\x0dbrain.Event:2") + b"".join(
        record(scalar_event("train/loss", 3.0 - i * 0.1, i, 1.0 * i)) for i in range(6)))
    assert read(str(tmp_path / "tb")).meta["files_read"] == [str(tb / "events.out.tfevents.1")]


def test_analyze_path_reports_logs_and_configs_read(tmp_path):
    log = _log(tmp_path / "train.log")
    (tmp_path / "config.py").write_text("learning_rate = 6e-4\n")
    files: list[str] = []
    analyze_path(str(log), files_read=files)
    assert [os.path.basename(f) for f in files] == ["train.log", "config.py"]


def test_an_input_of_several_runs_is_reported_on_its_longest(tmp_path):
    """Logs pasted one after another (short trials, then the real run): the report is about the run with the most
    loss points, says so and names the others; equal runs keep the first; --run still picks any."""
    f = tmp_path / "notes.md"
    trial = "".join(f"step {i}, loss: {10 - i * 0.1:.3f}\n" for i in range(5))
    real = "".join(f"step {i}, loss: {10 - i * 0.01:.3f}\n" for i in range(40))
    f.write_text("A short trial\n```\n" + trial + "```\nThe real run\n```\n" + real + "```\n")
    run = read(str(f))
    assert run.meta["run_name"] == "run 2" and len(run.series["train/loss"]) == 40
    assert run.meta["other_runs"] == ["run 1"]
    notes = analyze_path(str(f)).run["notes"]
    assert any("'run 2' ('The real run'), the one with the most loss points" in n for n in notes)
    assert read(str(f), run="run 1").meta["run_name"] == "run 1"
    assert not any("most loss points" in n for n in analyze_path(str(f), run_name="run 1").run["notes"])
    f.write_text(trial + trial)
    assert read(str(f)).meta["run_name"] == "run 1"
