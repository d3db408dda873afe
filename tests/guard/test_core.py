"""The framework-free guard core: same findings as the offline analysis, policy, isolation, never crashing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

import pytest

import lossdx
from lossdx.detectors.base import iter_steps
from lossdx.guard import Guard, Policy
from lossdx.testing.synthetic import make_curve

METRICS = ("train/loss", "val/loss", "train/grad_norm", "train/lr")


def _feed(guard: Guard, run) -> list:
    actions = []
    for step, values in iter_steps(run, METRICS):
        act = guard.observe(step, values, batch_ids=[step], position=step)
        if act.kind != "continue":
            actions.append(act)
    return actions


def _dicts(findings) -> list[str]:
    return sorted(json.dumps(f.to_dict(), sort_keys=True) for f in findings)


@pytest.mark.parametrize("kind", ["spike", "nan", "diverge", "grad_explosion", "overfit", "healthy"])
def test_live_findings_equal_the_analysis_of_the_history(kind, tmp_path):
    run, _truth = make_curve(kind, n=1500, seed=3)
    guard = Guard(str(tmp_path), Policy(on_divergence="warn", on_nan="warn"), config=run.config)
    _feed(guard, run)
    report = guard.finish()
    offline = lossdx.analyze(guard.history_run())
    assert _dicts(offline.findings) == _dicts(guard.findings)
    assert report is not None and report.verdict == offline.verdict


def test_a_spike_is_recorded_at_its_step_with_its_batch(tmp_path):
    run, truth = make_curve("spike", n=2000, seed=1)
    guard = Guard(str(tmp_path), Policy(on_spike="stop"))
    actions = _feed(guard, run)
    spike = truth["spike_steps"][0]
    assert actions[0].kind == "stop" and actions[0].step == spike
    rec = guard.records[0]
    assert rec["kind"] == "spike" and rec["step"] == spike and rec["batch_ids"] == [spike]
    assert rec["loss"] == pytest.approx(float(run.series["train/loss"].values[spike]))


def test_nan_triggers_the_nan_action_once(tmp_path):
    run, truth = make_curve("nan", n=1500, seed=2)
    guard = Guard(None, Policy(on_nan="rollback"))
    actions = _feed(guard, run)
    nan_actions = [a for a in actions if a.events[0].kind == "nan"]
    assert nan_actions and all(a.kind == "rollback" for a in nan_actions)
    assert len({(a.events[0].metric, a.events[0].start_step) for a in nan_actions}) == len(nan_actions)


def test_policy_rejects_unknown_actions():
    with pytest.raises(ValueError, match="on_spike must be one of warn, rollback, stop"):
        Policy(on_spike="explode")


def test_an_internal_error_disables_the_guard_once(caplog):
    guard = Guard(None)
    guard.detectors[1].update = lambda step, values: 1 / 0
    with caplog.at_level(logging.ERROR, logger="lossdx.guard"):
        for step in range(5):
            assert guard.observe(step, {"train/loss": 1.0}).kind == "continue"
    assert guard.disabled
    assert sum("disabled" in r.message for r in caplog.records) == 1


def test_two_guards_in_two_threads_do_not_share_caches():
    runs = [make_curve("spike", n=3000, seed=s)[0] for s in (1, 2)]
    expected = []
    for run in runs:
        guard = Guard(None)
        _feed(guard, run)
        guard.finish()
        expected.append(_dicts(guard.findings))
    got: list = [None, None]
    start = threading.Barrier(2)

    def work(i: int) -> None:
        guard = Guard(None)
        start.wait()
        _feed(guard, runs[i])
        guard.finish()
        got[i] = _dicts(guard.findings)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == expected
    from lossdx.detectors.wholerun import _CACHES

    assert not _CACHES.clean and not _CACHES.smooth  # finish() leaves nothing alive


def test_the_core_needs_no_torch():
    code = "import sys, lossdx.guard; g = lossdx.guard.Guard(None); g.observe(1, {'train/loss': 1.0}); " \
           "assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_history_keeps_absent_apart_from_nan_and_truncates():
    from lossdx.guard.core import History

    h = History()
    for step in range(1, 3000):
        vals = {"train/loss": float("nan") if step == 7 else 1.0 / step}
        if step % 2:
            vals["train/grad_norm"] = 2.0
        h.append(step, vals)
    assert len(h) == 2999 and h.row(7)["train/loss"] != h.row(7)["train/loss"]  # NaN kept
    assert h.row(8) == {"train/loss": 1.0 / 8}  # no grad norm at even steps: absent, not NaN
    series = h.series()
    assert len(series["train/grad_norm"]) == 1500 and len(series["train/loss"]) == 2999
    h.truncate(100)
    h.append(101, {"train/loss": 5.0})
    assert h.row(101) == {"train/loss": 5.0} and h.row(2000) is None


def test_a_file_it_cannot_write_stops_the_writing_not_the_watching(tmp_path, monkeypatch, caplog):
    import lossdx.guard.core as core

    def full_disk(path, lines):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core, "_append", full_disk)
    run, truth = make_curve("spike", n=2000, seed=1)
    guard = Guard(str(tmp_path), Policy(on_spike="stop"))
    with caplog.at_level(logging.ERROR, logger="lossdx.guard"):
        actions = _feed(guard, run)
    assert actions[0].kind == "stop" and actions[0].step == truth["spike_steps"][0]
    assert not guard.disabled and not guard.writer
    assert sum("cannot write" in r.message for r in caplog.records) == 1


def test_rollback_restores_the_detectors_exactly():
    run, _truth = make_curve("spike", n=3000, seed=4)
    rows = list(iter_steps(run, METRICS))
    a, b = Guard(None), Guard(None)
    for step, values in rows[:1000]:
        a.observe(step, values)
        b.observe(step, values)
    a.checkpoint(rows[999][0])
    n0 = len(a.findings)
    for step, values in rows[1000:1700]:  # a stretch that will be thrown away: other values
        a.observe(step, {k: v * 3.0 for k, v in values.items()})
    n1 = len(a.findings)
    a.rollback_to(rows[999][0], "test")
    for step, values in rows[1000:]:
        a.observe(step, values)
        b.observe(step, values)
    a.finish()
    b.finish()
    assert _dicts(a.findings[n1:]) == _dicts(b.findings[n0:])
    assert _dicts(lossdx.analyze(a.history_run()).findings) == _dicts(lossdx.analyze(b.history_run()).findings)


def test_the_whole_run_detectors_of_a_guard_buffer_each_metric_once():
    """Some twenty whole-run detectors each kept their own copy of every point (over 400 bytes a step); fed the same
    steps they share one buffer per metric, after a rollback too, with the findings unchanged (the tests above)."""
    from lossdx.detectors.wholerun import WholeRunDetector

    run, _truth = make_curve("spike", n=1500, seed=4)
    rows = list(iter_steps(run, METRICS))
    guard = Guard(None)
    for step, values in rows[:800]:
        guard.observe(step, values)
    guard.checkpoint(rows[799][0])
    for step, values in rows[800:1200]:
        guard.observe(step, values)
    guard.rollback_to(rows[799][0], "test")
    for step, values in rows[800:]:
        guard.observe(step, values)
    whole = [d for d in guard.detectors if isinstance(d, WholeRunDetector)]
    for metric in {m for d in whole for m in d.buffers_}:
        holders = [d.buffers_[metric] for d in whole if metric in d.buffers_]
        assert len(holders) > 1 and len({id(b) for b in holders}) == 1, metric
        assert holders[0].n == sum(1 for _s, v in rows if metric in v)
