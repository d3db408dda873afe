"""Every detector: the online path (update per step) and the offline path (detect) give the same findings;
reset is idempotent; state survives a save/restore in the middle of a run."""

import json

import pytest

from lossdx.detectors import default_detectors
from lossdx.detectors.base import Context, iter_steps
from lossdx.readers import read
from lossdx.testing.synthetic import KINDS, make_curve

from ..conftest import GPU_RUNS, VISION_RUNS

DETECTORS = [d.name for d in default_detectors()]


def _fresh(name):
    return next(d for d in default_detectors() if d.name == name)


def _key(findings):
    return [json.dumps(f.to_dict(), sort_keys=True) for f in findings]


def _runs():
    runs = [(f"synthetic:{k}", make_curve(k, n=1500, seed=3)[0]) for k in KINDS]
    # logs too short to fill the block detectors' windows take their fast exits (R19's 20-point logs)
    runs += [(f"synthetic:{k}:{n}", make_curve(k, n=n, seed=3)[0]) for k in KINDS for n in (20, 50, 70)]
    for base, fmt in ((GPU_RUNS, "metrics.jsonl"), (GPU_RUNS, "trainer_state.json"), (VISION_RUNS, "metrics.jsonl")):
        if base.exists():
            for d in sorted(p for p in base.iterdir() if p.is_dir()):
                if (d / fmt).exists():
                    run = read(str(d / fmt))
                    from lossdx.analyze import attach_config

                    attach_config(run, None)
                    runs.append((f"{d.name}/{fmt}", run))
    return runs


RUNS = _runs()


@pytest.mark.parametrize("name", DETECTORS)
def test_online_and_offline_paths_agree(name):
    for label, run in RUNS:
        ctx = Context.from_run(run)
        offline = _fresh(name).detect(run, ctx)
        online = _fresh(name).detect_online(run, ctx)
        assert _key(offline) == _key(online), (name, label)


@pytest.mark.parametrize("name", DETECTORS)
def test_reset_is_idempotent(name):
    run, _ = make_curve("spike", n=800, seed=5)
    det = _fresh(name)
    ctx = Context.from_run(run)
    assert _key(det.detect(run, ctx)) == _key(det.detect(run, ctx))
    assert _key(det.detect_online(run, ctx)) == _key(det.detect_online(run, ctx))


@pytest.mark.parametrize("name", DETECTORS)
def test_state_round_trip_mid_run(name):
    run, _ = make_curve("spike", n=1200, seed=7)
    ctx = Context.from_run(run)
    steps = list(iter_steps(run, _fresh(name).requires))
    whole = _fresh(name)
    whole.reset(ctx)
    ref = [f for st, v in steps for f in whole.update(st, v)] + whole.finalize()
    first = _fresh(name)
    first.reset(ctx)
    got = [f for st, v in steps[:700] for f in first.update(st, v)]
    state = first.state_dict()
    steps_after = steps[700:]
    second = _fresh(name)
    second.load_state_dict(state)
    got += [f for st, v in steps_after for f in second.update(st, v)] + second.finalize()
    assert _key(got) == _key(ref)


def test_open_events_report_what_is_under_way():
    """The live guard's view: an event still open at this step is visible before it is closed."""
    from lossdx.detectors.nonfinite import NonFiniteDetector
    from lossdx.detectors.spike import SpikeDetector

    run, truth = make_curve("spike", n=1500, seed=2)
    s = truth["spike_steps"][0]
    det = SpikeDetector()
    det.reset(Context.from_run(run))
    for st, v in iter_steps(run, det.requires):
        det.update(st, v)
        if st == s:
            break
    (f,) = det.open_events()
    assert f.start_step == s and not f.evidence["recovered"]
    run, truth = make_curve("nan", n=1000, seed=0)
    nan = NonFiniteDetector()
    nan.reset(Context.from_run(run))
    for st, v in iter_steps(run, nan.requires):
        nan.update(st, v)
        if st == truth["nan_step"] + 5:
            break
    assert {f.metric for f in nan.open_events()} == {"train/loss", "train/grad_norm"}
