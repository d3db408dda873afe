"""Curve detectors on hostile values (found by tests/test_fuzz_cli.py's longer campaigns)."""

import numpy as np

from lossdx.analyze import analyze
from lossdx.detectors.curve import _uniform_guess
from lossdx.model import Series
from lossdx.testing.synthetic import make_curve


def test_a_validation_loss_of_a_thousand_is_no_uniform_guess_and_no_crash():
    assert _uniform_guess(1419.0) is None and _uniform_guess(float("nan")) is None
    assert _uniform_guess(np.log(10)) == 10
    run, _ = make_curve("healthy", n=8, seed=0)
    steps = np.arange(1, 9)
    run.series = {"train/loss": Series("train/loss", steps, np.ones(8)),
                  "val/loss": Series("val/loss", steps, np.array([1.0] * 7 + [1419.0]))}
    run.config.clear()
    analyze(run)  # an OverflowError in math.exp before


def test_a_classifier_whose_first_loss_is_zero_is_no_crash():
    """Slow convergence measures the fall as a share of the first loss; a classifier (the accuracy says so, no class
    count) whose first logged loss is 0 has no share to measure: no ZeroDivisionError, and no slow_convergence."""
    from lossdx.model import Run

    ts = np.arange(0, 300, 10)
    run = Run({"train/loss": Series("train/loss", ts, np.r_[0.0, np.linspace(0.5, 0.4, ts.size - 1)]),
               "val/accuracy": Series("val/accuracy", ts[::5], np.linspace(0.5, 0.9, 6))})
    rep = analyze(run)
    assert rep.run["context"]["kind"] == "classifier"
    assert not [f for f in rep.findings if f.kind == "slow_convergence"]


def test_the_overfitting_detector_reads_the_logged_epoch_counter_as_the_rules_do():
    """A widening train/validation gap within the first 0.8 epoch (HF's fractional epoch counter) is no memorisation:
    the detector knew epochs only from the config, the rules (first_pass_rise) from the logged counter first."""
    from lossdx.model import Run

    ts = np.arange(10, 2001, 10)
    vs = np.arange(200, 2001, 200)
    series = {"train/loss": Series("train/loss", ts, 0.85 + 1.56 * np.exp(-ts / 728.0)),
              "val/loss": Series("val/loss", vs, np.array([2.2, 1.8, 1.55, 1.42, 1.35, 1.31, 1.30, 1.30, 1.301, 1.302]))}

    def overfits(epochs):
        run = Run(dict(series, **({"train/epoch": Series("train/epoch", ts, epochs)} if epochs is not None else {})))
        run.source["format"] = "hf_trainer_state"
        return [f.evidence.get("type") for f in analyze(run).findings if f.kind == "overfitting"]

    assert overfits(None) == ["gap_widening"]  # no epoch known: the gap reads as it did
    assert overfits(ts / 2500.0) == []  # 0.8 epoch at the end: every batch was new
    assert overfits(ts / 250.0) == ["stalled_repeated"]  # 8 epochs: validation stalled over repeated data


def _classifier_run(val):
    """A 10-class classifier trained for 1,232 iterations (88 per epoch), validated at each epoch's end: the
    training loss falls from ln 10 to ~1e-5."""
    run, _ = make_curve("healthy", n=8, seed=0)
    rng = np.random.default_rng(0)
    steps = np.arange(0, 1232, 10)
    train = np.log(10) * np.exp(-steps / 60.0) + 1e-5 * (1 + rng.random(steps.size))
    vsteps = 88 * np.arange(1, len(val) + 1)
    run.series = {"train/loss": Series("train/loss", steps, train),
                  "val/loss": Series("val/loss", vsteps, np.asarray(val, dtype=float))}
    run.config.clear()
    return run


def test_a_near_perfect_validation_loss_that_doubles_is_no_overfitting():
    """Validation 0.146 -> 0.0079, then 0.016 after an LR warm restart: 0.008 nats against a start of 2.3."""
    val = [0.1463, 0.0666, 0.0682, 0.0557, 0.0209, 0.0199, 0.0147, 0.0079, 0.0183, 0.0185, 0.0170, 0.0165, 0.0164,
           0.0164]
    rep = analyze(_classifier_run(val))
    assert not [f for f in rep.findings if f.kind == "overfitting"], [f.message for f in rep.findings]


def test_a_validation_rise_that_matters_on_the_loss_scale_is_still_overfitting():
    val = [0.9, 0.5, 0.35, 0.3, 0.32, 0.36, 0.4, 0.45, 0.5, 0.55, 0.6, 0.62, 0.65, 0.7]
    rep = analyze(_classifier_run(val))
    (f,) = [f for f in rep.findings if f.kind == "overfitting"]
    assert f.severity == "error" and "validation loss rose" in f.message


def test_a_validation_loss_that_fell_a_third_then_levelled_is_no_stuck_run_in_a_sparse_log():
    """An MSE regressor logged every 2 epochs (epoch 1, 2, 4 ... 40): train 0.93 -> 0.36, validation 0.86 -> 0.56
    and flat from epoch 10 on (the data's noise floor). The median of the first five train points (epochs 1-8)
    lies near the final validation level; the validation curve itself fell 35 %: it learned, nothing is stuck."""
    run, _ = make_curve("healthy", n=8, seed=0)
    epochs = np.array([1] + list(range(2, 41, 2)))
    train = 0.36 + 0.57 * np.exp(-(epochs - 1) / 4.0) + 0.002 * np.cos(epochs)
    train = np.minimum.accumulate(train - 0.0015 * epochs / 40)
    val = 0.558 + 0.30 * np.exp(-(epochs - 1) / 2.5) + 0.002 * np.sin(epochs)
    run.series = {"train/loss": Series("train/loss", epochs, train), "val/loss": Series("val/loss", epochs, val)}
    run.config.clear()
    rep = analyze(run)
    assert not [f for f in rep.findings if f.kind == "plateau" and f.severity != "info"], \
        [f.message for f in rep.findings]
    assert rep.verdict == "healthy"


def test_validation_flat_after_epochs_while_a_near_zero_train_loss_creeps_is_no_overfitting():
    """A classifier whose LR decayed to 0: 10 epochs, validation flat at 0.069, the training loss 1.2e-4 -> 1e-4
    over the last third (18 % of almost nothing). No fitting goes on, so nothing is being memorised."""
    from lossdx.model import Run

    ts = np.arange(0, 880, 10)
    train = 2.3 * np.exp(-ts / 40.0) + 1e-4 + 2e-5 * (880 - ts) / 880
    vs = np.arange(88, 881, 88)
    val = np.array([0.134, 0.101, 0.076, 0.0719, 0.0700, 0.0695, 0.0691, 0.0691, 0.0692, 0.0691])
    run = Run({"train/loss": Series("train/loss", ts, train), "val/loss": Series("val/loss", vs, val),
               "train/epoch": Series("train/epoch", ts, ts / 88.0)})
    rep = analyze(run)
    assert not [f for f in rep.findings if f.kind == "overfitting"], [f.message for f in rep.findings]


def test_a_log_of_the_first_twenty_steps_is_no_slow_convergence(tmp_path):
    """'iter 0..19: loss 3.00 -> 2.81' (R19's small logs): twenty steps with no LR logged lie inside any usual
    warmup, where a slow start is the schedule's doing; a longer log of the same slow shape is still judged."""
    from lossdx.analyze import analyze_path

    short = tmp_path / "short.log"
    short.write_text("".join(f"iter {j}: loss {3 - j * 0.01:.3f}\n" for j in range(20)))
    rep = analyze_path(str(short))
    assert rep.verdict == "healthy", [f.message for f in rep.findings if f.severity != "info"]
    long = tmp_path / "long.log"
    long.write_text("".join(f"iter {j}: loss {3 - j * 0.001:.4f}\n" for j in range(0, 400, 2)))
    assert [f for f in analyze_path(str(long)).findings if f.kind == "slow_convergence"]

def _lm_with_warmup(warmup, n=400, tau=30):
    """A from-scratch LM (V=260, first loss ln V) whose loss falls with the LR's cumulative sum: a linear warmup
    over `warmup` steps, then a linear decay (time constant tau steps at the peak LR); a slow drift keeps it falling 2-3 % over the last third."""
    from lossdx.model import Run

    steps = np.arange(0, n + 1, 10)
    lr = np.where(steps < warmup, steps / max(warmup, 1), 1 - (steps - warmup) / (n - warmup + 1))
    cum = np.concatenate([[0.0], np.cumsum(lr[:-1] * 10)])
    loss = 3.1 + 0.25 * (1 - steps / n) + (np.log(260) - 3.35) * np.exp(-cum / tau)
    return Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, 1e-3 * lr),
                "val/loss": Series("val/loss", steps[::5], loss[::5] + 0.2)}, config={"vocab_size": 260})


def test_slow_convergence_is_judged_at_the_end_of_a_warmup_longer_than_the_early_window():
    """A 20 % warmup (80 of 400 steps): 10 % in, the LR is at half its peak and the loss has fallen ~11 %; at the
    warmup's end it has fallen ~30 %, a healthy descent. A loss that has not fallen by the end of its warmup is
    still slow."""
    assert not [f for f in analyze(_lm_with_warmup(80)).findings if f.kind == "slow_convergence"]
    slow = _lm_with_warmup(80, tau=300)
    assert [f.kind for f in analyze(slow).findings if f.kind == "slow_convergence"] == ["slow_convergence"]


def _mlm_like(lr_of_step, n=700):
    """A from-scratch byte-level LM (V=260, first loss ln V = 5.56) that falls fast to ~2.8 and then flattens at
    ~2.7, above the ~0.45 ln V a byte-level model reaches when trained long, with noise."""
    from lossdx.model import Run

    rng = np.random.default_rng(7)
    steps = np.arange(10, n + 1, 10)
    loss = 2.68 + (np.log(260) - 2.8) * np.exp(-steps / 40) + 0.15 * np.exp(-steps / 300) + rng.normal(0, 0.05, steps.size)
    loss[0] = np.log(260)
    lr = np.array([lr_of_step(int(s)) for s in steps])
    return Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, lr)},
               config={"vocab_size": 260})


def test_a_loss_that_flattens_while_the_schedule_anneals_the_lr_to_zero_is_convergence_not_a_stall():
    """HF's linear schedule (10 % warmup, decay to 0): the loss flattens over the last third while the steps shrink
    toward nothing; that is where this schedule converges, however high above a long run's yardstick. The same curve
    at a constant LR stopped improving while the optimizer could still move: a warning or an error."""
    annealed = _mlm_like(lambda s: 1e-3 * min(s / 70, (700 - s) / 630))
    plateaus = [f for f in analyze(annealed).findings if f.kind == "plateau"]
    assert all(f.severity == "info" for f in plateaus) and analyze(annealed).verdict == "healthy"
    constant = _mlm_like(lambda s: 1e-3 * min(1.0, s / 70))
    assert [f.severity for f in analyze(constant).findings if f.kind == "plateau"] in (["warning"], ["error"])


def _memorising_classifier(seed=0):
    """50 images, 2 steps per epoch, 80 epochs (Lightning CSV: train loss every step, validation every epoch): the
    train loss falls from ln 10 to ~0.03 while validation flattens at ~0.58 after epoch ~40 and stays there."""
    from lossdx.model import Run

    rng = np.random.default_rng(seed)
    steps = np.arange(160)
    train = np.maximum(0.02, 2.3 * np.exp(-steps / 22) * np.exp(rng.normal(0, 0.15, steps.size)))
    vsteps = np.arange(1, 160, 2)
    val = 0.576 + 1.7 * np.exp(-vsteps / 12) + 0.003 * (vsteps > 100)  # its best at step 99, then 0.5 % above
    return Run({"train/loss": Series("train/loss", steps, train), "val/loss": Series("val/loss", vsteps, val),
                "train/epoch": Series("train/epoch", steps, (steps // 2).astype(float))}, config={})


def test_a_memorised_small_training_set_is_overfitting_not_ordered_data():
    """Blocks of 4 points span two whole epochs here, so they cannot show the order of the data within an epoch:
    no data-order finding. Validation flat at 0.58 against a train loss 15x lower: the end gap is judged even when
    the smoothed train curve has too few points in the last third for a slope."""
    rep = analyze(_memorising_classifier())
    assert not [f for f in rep.findings if f.kind == "data_order"]
    assert [f.severity for f in rep.findings if f.kind == "overfitting"] == ["warning"]
    assert rep.diagnoses[0].cause == "overfitting_small_data"


def _excerpt_at(train_level, val_level):
    """An excerpt without config (steps 500-900, HF-like): train loss flat at ``train_level`` with 0.4 % noise,
    five evaluations at ``val_level``."""
    from lossdx.model import Run

    rng = np.random.default_rng(11)
    steps = np.arange(500, 910, 10)
    vsteps = np.arange(500, 901, 100)
    return Run({"train/loss": Series("train/loss", steps, train_level * (1 + rng.normal(0, 0.004, steps.size))),
                "val/loss": Series("val/loss", vsteps, np.full(vsteps.size, val_level))}, config={})


def test_an_excerpt_whose_train_and_heldout_losses_both_sit_at_ln_c_is_a_uniform_guess():
    """Nothing says it is a classifier (no config, no accuracy), but training and held-out losses both pinned at
    ln 4 = 1.386 over the whole excerpt do: a 4-class model predicting the prior. A train loss at 1.386 whose
    held-out loss is elsewhere is no such evidence."""
    rep = analyze(_excerpt_at(np.log(4), np.log(4) + 0.001))
    (p,) = [f for f in rep.findings if f.kind == "plateau"]
    assert p.severity == "warning" and p.evidence["uniform_classes"] == 4
    assert rep.diagnoses[0].cause == "label_misalignment"
    assert analyze(_excerpt_at(np.log(4), 1.2)).verdict == "healthy"


def _classifier_excerpt(val_level):
    """An excerpt (steps 300-900, no config) of a classifier (accuracy logged) whose train loss sits at ~0.001 and
    whose validation loss flattens at ``val_level`` (its best a little before the end)."""
    from lossdx.model import Run

    rng = np.random.default_rng(2)
    steps = np.arange(300, 900, 4)
    train = 0.001 * np.exp(rng.normal(0, 0.5, steps.size))
    vsteps = np.arange(300, 900, 88)
    val = val_level * (1 + 0.05 * np.exp(-(vsteps - 300) / 100))
    val[-1] = val[-2] * 1.003
    acc = np.full(vsteps.size, 0.98)
    return Run({"train/loss": Series("train/loss", steps, train), "val/loss": Series("val/loss", vsteps, val),
                "val/accuracy": Series("val/accuracy", vsteps, acc)}, config={})


def test_a_classifier_excerpt_with_two_near_perfect_fits_is_no_memorisation():
    """Train 0.001 against validation 0.035 is a 35x ratio, but validation still gives the right class ~97 %: two
    near-perfect fits. The excerpt has no untrained loss to scale the gap by, so ln 2 (the least informed guess)
    does; validation at 0.4 against the same train loss still is memorisation."""
    near = analyze(_classifier_excerpt(0.035))
    assert not [f for f in near.findings if f.kind == "overfitting" and f.severity != "info"]
    far = analyze(_classifier_excerpt(0.4))
    assert [f.severity for f in far.findings if f.kind == "overfitting"] == ["warning"]


def _stall_at_peak(lr_during):
    """A GPT-2-vocabulary model from scratch whose loss sits at 7.0 (0.65 ln V) from step 100 to 1500 and falls to 6.0
    as the LR decays to 0 over the last quarter; `lr_during(steps)` is the LR (as a share of its peak) in between."""
    from lossdx.detectors.base import Context
    from lossdx.detectors.curve import PeakLRStallDetector
    from lossdx.model import Run

    rng = np.random.default_rng(0)
    steps = np.arange(0, 2000, 5)
    mid = lr_during(steps)
    share = np.where(steps < 100, steps / 100, np.where(steps < 1500, mid, mid[steps == 1500][0] * (2000 - steps) / 500))
    loss = np.where(steps < 100, 10.8 - 3.8 * steps / 100, np.where(steps < 1500, 7.0, 7.0 - (steps - 1500) / 500))
    loss = loss * (1 + 0.003 * rng.standard_normal(steps.size))
    run = Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, 1e-3 * share)},
              config={"vocab_size": 50257, "n_layer": 4, "n_embd": 256, "lr": 1e-3, "optimizer": "adamw"})
    run.source["format"] = "nanogpt"
    return PeakLRStallDetector().detect(run, Context.from_run(run))


def test_a_stall_at_the_peak_lr_is_judged_only_while_the_lr_stays_near_its_peak():
    """A constant LR at its peak over the stall: the finding, its LR band as logged. A cyclic LR that dips to a fifth
    of its peak between crests (every 400 steps) is not 'within 30 % of its peak' over the stall, which the finding
    said (steps 106-1380) before the stretch ended at the first dip."""
    (f,) = _stall_at_peak(lambda s: np.ones(s.size))
    assert f.evidence["type"] == "peak_lr_stall" and "within 30% of its peak" in f.message
    cyclic = _stall_at_peak(lambda s: 0.6 + 0.4 * np.cos(2 * np.pi * (s - 100) / 400))
    assert not cyclic, [g.message for g in cyclic]


def test_a_plateau_judged_on_the_last_four_points_of_a_sparse_log_says_the_share_it_measured():
    """Evaluations at 600, 650, 900 and 1000 of a 1000-step run: the last third holds two, so the change is measured
    from step 600, over the last 40 % of the run, which the message says (it said 'the last 33%' whatever it measured)."""
    from lossdx.model import Run

    vs = np.array([0, 100, 200, 300, 400, 500, 600, 650, 900, 1000])
    vv = np.array([3.0, 2.2, 2.05, 2.01, 2.0, 2.0, 1.999, 1.999, 1.998, 1.998])
    run = Run({"val/loss": Series("val/loss", vs, vv)})
    run.source["format"] = "jsonl"
    (p,) = [f for f in analyze(run).findings if f.kind == "plateau"]
    assert "over the last 40% of the run" in p.message, p.message


def test_slow_convergence_says_where_it_measured_the_early_fall():
    """A logged warmup over the first 20 % moves the point the early fall is measured at to its end: the message says
    20 % and why (it said 'after 10% of the run' whatever it measured); without a warmup it is 10 %."""
    from lossdx.detectors.base import Context
    from lossdx.detectors.curve import SlowConvergenceDetector
    from lossdx.model import Run

    st = np.arange(0, 2001, 10)
    said = []
    for warmup in (400, 1):
        run = Run({"train/loss": Series("train/loss", st, 10.8 - 4.5 * st / 2000),
                   "train/lr": Series("train/lr", st, 3e-4 * np.minimum(1.0, np.maximum(st, 1) / warmup))},
                  config={"vocab_size": 50257, "lr": 3e-4})
        run.source["format"] = "nanogpt"
        (f,) = SlowConvergenceDetector().detect(run, Context.from_run(run))
        said.append(f.message)
    assert said[0].startswith("after 20% of the run (the end of the LR warmup) the loss had fallen only 8%"), said[0]
    assert said[1].startswith("after 10% of the run the loss had fallen only"), said[1]


def test_a_slow_start_in_a_run_still_going_is_judged_by_its_planned_length():
    """A 4-class classifier from scratch (ln 4 = 1.386) that sits at its start for 50 steps and then falls, logged to
    step 120 of a planned 300 (max_steps in the config): "10 % of the run" is step 30 of 300, and how far from converged
    the run ends the log cannot show yet, so the slow start is info. The same log as a finished 120-step run (no
    max_steps) is still a warning."""
    from lossdx.model import Run

    steps = np.arange(1, 121)
    loss = np.where(steps < 50, np.log(4), np.log(4) * np.exp(-(steps - 50) / 150.0))
    loss = loss + 0.004 * np.sin(steps)
    acc_steps = np.arange(30, 121, 30)

    def run_of(cfg):
        return Run({"train/loss": Series("train/loss", steps, loss),
                    "val/loss": Series("val/loss", acc_steps, np.interp(acc_steps, steps, loss)),
                    "val/accuracy": Series("val/accuracy", acc_steps, np.full(acc_steps.size, 0.5))}, config=cfg)

    going = [f for f in analyze(run_of({"max_steps": 300})).findings if f.kind == "slow_convergence"]
    assert [f.severity for f in going] == ["info"] and "still going (step 120 of 300)" in going[0].message
    done = [f for f in analyze(run_of({})).findings if f.kind == "slow_convergence"]
    assert [f.severity for f in done] == ["warning"]


def test_a_checkpoints_trainer_state_says_how_long_the_run_is_planned(tmp_path):
    """A trainer_state.json saved mid-run (global_step 120 of max_steps 300) states the planned length itself: the
    same slow start as above is judged as a run still going, without a config."""
    import json

    from lossdx.analyze import analyze_path

    steps = np.arange(1, 121)
    loss = np.where(steps < 50, np.log(4), np.log(4) * np.exp(-(steps - 50) / 150.0)) + 0.004 * np.sin(steps)
    rows = [{"step": int(s), "epoch": float(s) / 250, "loss": float(v), "learning_rate": 2e-4, "grad_norm": 1.0}
            for s, v in zip(steps, loss)]
    rows += [{"step": int(s), "epoch": float(s) / 250, "eval_loss": float(np.interp(s, steps, loss)),
              "eval_accuracy": 0.5} for s in (30, 60, 90, 120)]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 120, "max_steps": 300, "logging_steps": 1, "log_history": rows}))
    found = [f for f in analyze_path(str(path)).findings if f.kind == "slow_convergence"]
    assert [f.severity for f in found] == ["info"] and "step 120 of 300" in found[0].message


def test_a_train_validation_gap_with_validation_still_at_its_best_is_no_memorisation():
    """A classifier excerpt (steps 269-439) whose train loss reaches 0.004 while validation, evaluated four times, is at
    its best (0.084) at its last evaluation: 20x apart, but validation is still learning and "has not improved since"
    would be untrue. Once validation's best is behind it, the same gap is memorisation."""
    from lossdx.model import Run

    steps = np.arange(269, 440, 10)
    loss = 0.09 * np.exp(-(steps - 269) / 55.0) + 0.002 + 0.001 * np.sin(steps)
    vsteps = np.array([307, 351, 395, 439])

    def run_of(val):
        return Run({"train/loss": Series("train/loss", steps, loss),
                    "val/loss": Series("val/loss", vsteps, np.array(val)),
                    "val/accuracy": Series("val/accuracy", vsteps, np.full(4, 0.97)),
                    "train/epoch": Series("train/epoch", steps, steps / 44.0)}, config={})

    improving = [f for f in analyze(run_of([0.121, 0.091, 0.098, 0.084])).findings if f.kind == "overfitting"]
    assert [f for f in improving if f.severity != "info"] == []
    stalled = [f for f in analyze(run_of([0.121, 0.084, 0.098, 0.091])).findings if f.kind == "overfitting"]
    assert [f.severity for f in stalled] == ["warning"] and "not improved since step 351" in stalled[0].message


def test_a_few_evaluations_rising_while_the_training_loss_no_longer_falls_are_no_memorisation():
    """A label-smoothed classifier excerpt: the training loss sits at its floor (~0.52) while four evaluations go
    0.1285 -> 0.142; with no noise of their own measurable and nothing fitted further, the 9 % rise is no
    overfitting. The same evaluations while the training loss still falls 0.6 -> 0.45 are."""
    from lossdx.model import Run

    steps = np.arange(528, 873, 10)
    vsteps = np.array([608, 696, 784, 872])

    def run_of(train):
        return Run({"train/loss": Series("train/loss", steps, train + 0.004 * np.sin(steps)),
                    "val/loss": Series("val/loss", vsteps, np.array([0.1285, 0.1419, 0.1396, 0.1409])),
                    "val/accuracy": Series("val/accuracy", vsteps, np.full(4, 0.96)),
                    "train/epoch": Series("train/epoch", steps, steps / 88.0)}, config={})

    flat = [f for f in analyze(run_of(np.full(steps.size, 0.52))).findings if f.kind == "overfitting"]
    assert [f for f in flat if f.severity != "info"] == []
    falling = [f for f in analyze(run_of(np.linspace(0.6, 0.45, steps.size))).findings if f.kind == "overfitting"]
    assert [f.severity for f in falling] == ["warning"]


def test_a_short_validation_curve_rising_within_the_excursions_it_showed_before_is_no_overfitting():
    """Eight evaluations of an excerpt (steps 150-500): validation wandered 2.10 -> 2.29 -> 2.06 before its minimum
    2.00, so a rise to 2.15 / 2.11 is within what it showed; the robust median of seven differences (0.05) missed
    those excursions. A validation that falls steadily and then climbs 2.0 -> 2.4 is still overfitting."""
    from lossdx.model import Run

    steps = np.arange(150, 501, 10)
    train = 2.5 - 0.6 * (steps - 150) / 350 + 0.01 * np.sin(steps)
    vsteps = np.array([150, 200, 250, 300, 350, 400, 450, 499])

    def run_of(val):
        return Run({"train/loss": Series("train/loss", steps, train),
                    "val/loss": Series("val/loss", vsteps, np.array(val))}, config={})

    wander = [f for f in analyze(run_of([2.0986, 2.2871, 2.0614, 2.0129, 1.9987, 2.1189, 2.1502, 2.1059])).findings
              if f.kind == "overfitting"]
    assert [f for f in wander if f.severity != "info"] == []
    climb = [f for f in analyze(run_of([2.3, 2.2, 2.1, 2.05, 2.0, 2.15, 2.3, 2.4])).findings if f.kind == "overfitting"]
    assert [f.severity for f in climb] == ["error"]


def test_a_training_fall_within_the_scatter_of_a_coarse_noisy_log_is_no_fitting_going_on():
    """An excerpt of a regressor trained for 60 epochs: validation flat over the last third while the per-batch
    training loss, printed every 2 steps and scattering by 30 %, "fell 5 %" on a line fitted through that scatter:
    no fall the points can resolve, so no stalled-validation overfitting. The same 5 % fall on a calm training loss
    is."""
    from lossdx.model import Run

    steps = np.arange(218, 361, 2)
    trend = 0.42 * (1 - 0.08 * (steps - 218) / 142)
    vsteps = np.arange(222, 361, 6)
    val = 0.547 - 0.014 * np.minimum(1.0, (vsteps - 222) / 90.0)

    def run_of(scatter):
        rng = np.random.default_rng(2)
        train = trend * np.exp(rng.normal(0, scatter, steps.size))
        return Run({"train/loss": Series("train/loss", steps, train),
                    "val/loss": Series("val/loss", vsteps, val),
                    "train/epoch": Series("train/epoch", steps, steps / 6.0)}, config={})

    noisy = [f for f in analyze(run_of(0.3)).findings if f.kind == "overfitting"]
    assert [f for f in noisy if f.severity != "info"] == []
    calm = [f for f in analyze(run_of(0.005)).findings if f.kind == "overfitting"]
    assert [f.evidence.get("type") for f in calm if f.severity == "warning"] == ["stalled_repeated"]


def test_a_coarse_logs_first_points_are_not_its_start():
    """A GRU language model from scratch (first loss 5.5) logged every 50 steps: the first five points already reach
    2.0, so their median is no starting level; judged against the first point, a flat end at ~1.7 (0.31 of the start)
    is convergence as far as the log can tell (info), not "far above what the run should reach"."""
    from lossdx.model import Run

    rng = np.random.default_rng(9)
    steps = np.concatenate([[1], np.arange(50, 2001, 50)])
    loss = 1.7 + 3.8 * np.exp(-steps / 40.0) + rng.normal(0, 0.03, steps.size)
    run = Run({"train/loss": Series("train/loss", steps, loss)},
              config={"model_type": "GRU", "optimizer": "adam", "lr": 0.01})
    plateaus = [f for f in analyze(run).findings if f.kind == "plateau"]
    assert plateaus and all(f.severity == "info" for f in plateaus)
    assert plateaus[0].evidence["first"] == loss[0]


def test_a_few_evaluations_rising_while_a_noisy_training_loss_falls_less_than_its_scatter_is_no_overfitting():
    """An excerpt (steps 300-499) with five evaluations 2.013, 1.999, 2.119, 2.150, 2.106 and a per-step training loss
    scattering by 15 % whose fit falls ~2 % over that span, less than its own scatter resolves: nothing shows the
    training set being fitted further. A training loss falling cleanly 2.2 -> 1.8 over the same span does."""
    from lossdx.model import Run

    steps = np.arange(300, 500)
    vsteps = np.array([300, 350, 400, 450, 499])
    val = np.array([2.0129, 1.9987, 2.1189, 2.1502, 2.1059])

    def run_of(train):
        return Run({"train/loss": Series("train/loss", steps, train), "val/loss": Series("val/loss", vsteps, val)},
                   config={})

    rng = np.random.default_rng(4)
    noisy = 2.21 * (1 - 0.02 * (steps - 300) / 200) * np.exp(rng.normal(0, 0.15, steps.size))
    assert [f for f in analyze(run_of(noisy)).findings if f.kind == "overfitting" and f.severity != "info"] == []
    clean_fall = np.linspace(2.2, 1.8, steps.size)
    assert [f.severity for f in analyze(run_of(clean_fall)).findings if f.kind == "overfitting"] == ["warning"]


def _dip_and_refill_run(end_norm, seed=0):
    """A small seq2seq model from scratch (the first 280 steps of a 700-step run): the gradient norm falls from 2.6
    to 0.4 by the end of warmup, then climbs to ``end_norm`` by step 100 and stays there while the loss falls."""
    from lossdx.model import Run

    rng = np.random.default_rng(seed)
    steps = np.arange(1, 281)
    loss = 1.1 + 2.5 * np.exp(-steps / 40) + rng.normal(0, 0.03, steps.size)
    gn = np.interp(steps, [1, 20, 100, 280], [2.6, 0.4, end_norm, end_norm]) * np.exp(rng.normal(0, 0.1, steps.size))
    lr = 2e-3 * np.minimum(1.0, steps / 35)
    return Run(series={"train/loss": Series("train/loss", steps, loss),
                       "train/grad_norm": Series("train/grad_norm", steps, gn), "train/lr": Series("train/lr", steps, lr)},
               config={"lr": 2e-3, "warmup_steps": 35, "batch_size": 32, "vocab_size": 16, "model_type": "t5"})


def test_a_gradient_norm_that_climbs_back_to_its_initial_level_after_the_warmup_dip_is_no_warning():
    rep = analyze(_dip_and_refill_run(3.0))
    (f,) = [f for f in rep.findings if f.kind == "instability"]
    assert f.severity == "info" and "first steps' " in f.message and rep.verdict == "healthy"
    # climbing to three times the initial norm is growth past anything the run had seen: still a warning
    (f,) = [f for f in analyze(_dip_and_refill_run(8.0)).findings if f.kind == "instability"]
    assert f.severity == "warning" and "flat or falling" in f.message


def test_a_gap_widening_over_a_last_third_that_starts_on_the_first_pass_is_no_memorisation():
    """An HF classifier excerpt from epoch 0.4 to 1.2 (one record per 0.04 epoch): the last third starts at epoch
    0.93, so the training loss's fall over it is mostly new data learned; validation merely levels off near its
    best (0.232 -> 0.242). The same curves two epochs later (the last third on repeated data) still read as the
    onset of overfitting."""
    from lossdx.model import Run

    ts = np.arange(9, 30)
    train = np.array([0.596, 0.547, 0.476, 0.466, 0.417, 0.444, 0.416, 0.369, 0.358, 0.316, 0.297, 0.252, 0.282,
                      0.266, 0.264, 0.236, 0.229, 0.231, 0.224, 0.205, 0.221])
    val = np.array([0.552, 0.496, 0.458, 0.434, 0.418, 0.398, 0.377, 0.344, 0.316, 0.301, 0.274, 0.263, 0.255,
                    0.25, 0.245, 0.239, 0.234, 0.232, 0.24, 0.244, 0.242])

    def overfits(epoch0):
        run = Run({"train/loss": Series("train/loss", ts, train), "val/loss": Series("val/loss", ts, val),
                   "train/epoch": Series("train/epoch", ts, epoch0 + 0.04 * (ts - 9))})
        run.source["format"] = "hf_trainer_state"
        return [f.evidence.get("type") for f in analyze(run).findings if f.kind == "overfitting"]

    assert overfits(0.4) == []
    assert overfits(2.4) == ["gap_widening"]


def _per_sample_losses(sigma_before, sigma_after, seed=0, n=1120):
    """Per-sample losses of a batch-size-1 log around 0.12, scattering lognormally by ``sigma_before`` over the
    first half and ``sigma_after`` over the second."""
    from lossdx.model import Run

    rng = np.random.default_rng(seed)
    steps = np.arange(1680, 1680 + n)
    sigma = np.where(steps >= 1680 + n // 2, sigma_after, sigma_before)
    return Run({"train/loss": Series("train/loss", steps, 0.12 * np.exp(rng.normal(0, 1.0, n) * sigma))})


def test_noise_growth_of_heavy_tailed_per_sample_losses_must_clear_their_tails():
    """Heavy-tailed per-sample losses: a block's noise is a rough estimate of such a spread, and a 3-4x change of it
    is within their ordinary swings (the spike margins widen by the same tail factor); calm losses whose noise
    grows 7-9x are still instability."""
    for seed in (0, 1):
        rep = analyze(_per_sample_losses(0.8, 1.6, seed))
        assert rep.run["context"]["heavy_tailed"]
        assert not [f for f in rep.findings if f.kind == "instability" and f.severity != "info"]
        rep = analyze(_per_sample_losses(0.05, 0.25, seed))
        assert [f.evidence["type"] for f in rep.findings if f.kind == "instability"] == ["noise_growth"]


def test_a_coarse_lr_log_that_stops_before_the_end_still_shows_the_decay_to_zero():
    """A byte-level MLM from scratch (V=260) logged every 50 steps: the LR's last point is at step 360 (1.3e-4 and
    falling 3.1e-6 a step), the evaluations go on to step 400, where the straight decay reaches ~0. Validation
    flattening at 3.58 there is where this schedule converges, not a plateau far above ln V; the same curve with the
    LR held at 1.3e-4 over its last points is still one."""
    from lossdx.model import Run

    ts = np.arange(10, 400, 50)
    lr = np.array([1.125e-4, 7.375e-4, 9.094e-4, 7.531e-4, 5.969e-4, 4.407e-4, 2.844e-4, 1.282e-4])
    train = np.array([5.524, 4.009, 3.522, 3.362, 3.357, 3.254, 3.257, 3.387])
    vs = np.array([50, 100, 150, 200, 250, 300, 350, 400])
    val = np.array([4.268, 3.706, 3.679, 3.65, 3.615, 3.6, 3.577, 3.592])

    def plateau(lr_values):
        run = Run({"train/loss": Series("train/loss", ts, train), "train/lr": Series("train/lr", ts, lr_values),
                   "val/loss": Series("val/loss", vs, val)},
                  config={"vocab_size": 260, "batch_size": 16, "seq_len": 64, "lr": 1e-3, "model_type": "bert"})
        return [f.severity for f in analyze(run).findings if f.kind == "plateau"]

    assert plateau(lr) in ([], ["info"])
    held = lr.copy()
    held[-3:] = 1.282e-4
    assert plateau(held) in (["warning"], ["error"])


def _short_lm(loss):
    """A from-scratch byte-level LM (V=260) logged at every one of its first steps, its LR warmed up over 2 steps."""
    from lossdx.model import Run

    steps = np.arange(loss.size)
    lr = 1e-3 * np.minimum(1.0, (steps + 1) / 3.0)
    return Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, lr)},
               config={"vocab_size": 260})


def test_the_early_window_of_a_short_log_is_not_two_steps():
    """The first 23 steps of a run still going (max_steps unknown): '10 % of the run' was step 2.2, where the loss
    had fallen 14 % (5.52 -> 4.85) only because two optimizer steps move no model far; by step 10 it had fallen
    47 %. A loss that is still at 90 % of its start by step 10 is slow whatever the log's length."""
    fast = 2.97 - 0.008 * np.arange(23) + 2.55 * np.exp(-np.arange(23) / 3.0)
    fast[:3] = [5.522, 5.242, 4.846]
    rep = analyze(_short_lm(fast))
    assert not [f for f in rep.findings if f.kind == "slow_convergence"], [f.message for f in rep.findings]
    slow = 5.522 - 0.04 * np.arange(23)
    (f,) = [f for f in analyze(_short_lm(slow)).findings if f.kind == "slow_convergence"]
    assert "(the end of the LR warmup)" not in f.message


def _hf_run_from_start_at(level, val_level):
    """An HF Trainer log from step 5 (no config): train loss flat at ``level`` with 0.3 % noise from its first point,
    six evaluations at ``val_level`` (0.3 % noise); its low start makes the context take it for a fine-tune."""
    from lossdx.model import Run

    rng = np.random.default_rng(4)
    steps = np.arange(5, 305, 5)
    vsteps = np.arange(50, 301, 50)
    run = Run({"train/loss": Series("train/loss", steps, level * (1 + rng.normal(0, 0.003, steps.size))),
               "val/loss": Series("val/loss", vsteps, val_level * (1 + rng.normal(0, 0.003, vsteps.size)))},
              config={})
    run.source["format"] = "hf_trainer_state"
    return run


def test_a_fine_tune_that_never_left_ln_c_in_train_and_heldout_loss_is_a_uniform_guess():
    """Taken for a fine-tune (it starts at 1.39), a run whose train and held-out losses sit at ln 4 from the first
    point to the last learned nothing: a 4-class head predicting the prior. A fine-tune at 1.386 whose held-out loss
    is elsewhere, or one that fell to ln 4 from a higher start, is no such evidence."""
    rep = analyze(_hf_run_from_start_at(np.log(4), np.log(4) + 0.002))
    assert rep.run["context"]["kind"] == "lm_finetune"
    (p,) = [f for f in rep.findings if f.kind == "plateau"]
    assert p.severity == "warning" and p.evidence["uniform_classes"] == 4
    assert rep.diagnoses[0].cause == "label_misalignment"
    assert analyze(_hf_run_from_start_at(np.log(4), 1.2)).verdict == "healthy"
