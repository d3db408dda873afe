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


def _crafted():
    """Runs that make this session's new branches fire (checked: each raises its finding), so both paths walk them:
    a stall at the peak LR, a per-step Inf gradient norm under a finite loss (skipped step), SGDR warm restarts, an
    epoch-level log NaN from its first row, a mid-run spike in a short log, a spike in an excerpt, clipping while
    the losses fall, per-step losses with an epoch counter."""
    import numpy as np

    from lossdx.model import Run, Series

    def mk(series, config, fmt):
        run = Run({k: Series(k, np.asarray(s, dtype=np.int64), np.asarray(v, dtype=float)) for k, (s, v) in series.items()},
                  config=dict(config))
        run.source["format"] = fmt
        return run

    rng = np.random.default_rng(0)
    st = np.arange(3000)
    loss = 2 + 8 * np.exp(-st / 300) + 0.02 * rng.standard_normal(st.size)
    gn = 1 + 0.1 * rng.standard_normal(st.size)
    gn[1500], gn[2200:2202] = np.inf, np.nan
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * (st % 750) / 750))
    s2 = np.arange(0, 2000, 5)
    lr2 = 1e-3 * np.where(s2 < 100, s2 / 100, np.where(s2 < 1500, 1.0, (2000 - s2) / 500))
    l2 = np.where(s2 < 100, 10.8 - 3.8 * s2 / 100, np.where(s2 < 1500, 7.0, 7.0 - (s2 - 1500) / 500))
    es = np.arange(11, 441, 11)
    s3 = np.arange(0, 500, 10)
    l3 = 2.2 + 3.3 * np.exp(-s3 / 40.0)
    l3[25] = 7.88
    s4 = np.arange(5000, 5600, 10)
    l4 = 1.5 + 0.05 * rng.standard_normal(s4.size)
    l4[30] = 2.5
    return [
        ("crafted:grad_inf_skip", mk({"train/loss": (st, loss), "train/grad_norm": (st, gn)}, {}, "jsonl")),
        ("crafted:sgdr", mk({"train/loss": (st, loss), "train/lr": (st, lr), "val/loss": (st[::100], loss[::100])},
                            {"lr": 1e-3}, "jsonl")),
        ("crafted:peak_lr_stall", mk({"train/loss": (s2, l2 * (1 + 0.003 * rng.standard_normal(s2.size))),
                                      "train/lr": (s2, lr2)}, {"vocab_size": 50257, "lr": 1e-3}, "nanogpt")),
        ("crafted:epoch_nan", mk({"train/loss": (es, np.full(es.size, np.nan)), "train/epoch": (es, np.arange(1.0, 41.0))},
                                 {"lr": 1e-3}, "")),
        ("crafted:short_spike", mk({"train/loss": (s3, l3)}, {}, "nanogpt")),
        ("crafted:excerpt_spike", mk({"train/loss": (s4, l4), "train/lr": (s4, np.full(s4.size, 1e-4))}, {}, "nanogpt")),
        ("crafted:clip_learning", mk({"train/loss": (st, loss), "train/grad_norm": (st, 5 + rng.random(st.size)),
                                      "val/loss": (st[::300], loss[::300] * 1.05)}, {"grad_clip": 1.0}, "jsonl")),
        ("crafted:epoch_counter", mk({"train/loss": (st, loss), "train/epoch": (st, st / 400.0)}, {}, "jsonl")),
    ]


RUNS = _runs() + _crafted()


def test_the_crafted_runs_walk_the_new_branches():
    """Each crafted run raises what it was made for (else the parity test above would not cover that branch)."""
    found = {label: [f for d in default_detectors() for f in d.detect(run, Context.from_run(run))]
             for label, run in RUNS if label.startswith("crafted:")}
    assert any(f.evidence.get("type") == "peak_lr_stall" for f in found["crafted:peak_lr_stall"])
    assert any(f.kind == "nan" and "skipped" in f.message for f in found["crafted:grad_inf_skip"])
    assert any(f.evidence.get("type") == "restart" and f.severity == "info" for f in found["crafted:sgdr"])
    assert any(f.kind == "spike" for f in found["crafted:short_spike"])
    assert any(f.kind == "spike" for f in found["crafted:excerpt_spike"])
    assert any(f.evidence.get("type") == "clip_saturation" and "still learned" in f.message
               for f in found["crafted:clip_learning"])


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
