"""Throughput: a step change of the step time that persists is a slower machine; scattered slow steps are not."""

import numpy as np

from lossdx.analyze import analyze
from lossdx.detectors.schedule import step_change
from lossdx.model import Run, Series
from lossdx.testing.synthetic import make_curve


def _run_with_step_time(dt, steps=None):
    run, _ = make_curve("healthy", n=2000, seed=0)
    steps = np.arange(len(dt)) if steps is None else steps
    run.series["perf/step_time"] = Series("perf/step_time", steps, np.asarray(dt, dtype=float))
    return run


def test_a_five_percent_step_that_persists_on_a_quiet_cluster_is_a_warning():
    """BLOOM-like: iteration times of ~105 s scattering by < 1 %, then 5 % slower from one step to the end."""
    rng = np.random.default_rng(0)
    dt = 105_000.0 * np.exp(rng.normal(0, 0.004, 400))
    dt[300:] *= 1.05
    rep = analyze(_run_with_step_time(dt))
    (f,) = [f for f in rep.findings if f.kind == "throughput"]
    assert f.severity == "warning" and f.evidence["type"] == "step_change"
    assert f.start_step == 300 and 0.04 < f.evidence["slowdown"] < 0.06
    assert "5% slower at step 300" in f.message and "ms" in f.message
    assert rep.verdict != "healthy" and rep.diagnoses[0].cause == "hardware_fault"


def test_a_short_excerpt_shows_the_step_too():
    """Five iterations: two at the old level, then a slower level to the end (the whole stored excerpt)."""
    dt = [105_160.0, 105_170.0, 106_250.0, 110_170.0, 111_140.0]
    (f,) = step_change({"perf/step_time": Series("perf/step_time", np.arange(42780, 42785), np.array(dt))})
    assert f.start_step == 42783 and f.end_step == 42784


def test_scattered_slow_steps_and_load_noise_are_no_step_change():
    rng = np.random.default_rng(1)
    # a shared CPU: 25 % scatter, the level 10 % higher for the second half
    dt = 20.0 * np.exp(rng.normal(0, 0.25, 2000))
    dt[1000:] *= 1.1
    assert step_change({"perf/step_time": Series("perf/step_time", np.arange(2000), dt)}) == []
    # a quiet machine with a few very slow steps (checkpoints, evals) scattered over the run
    dt = 100.0 * np.exp(rng.normal(0, 0.005, 2000))
    dt[::250] *= 8
    assert step_change({"perf/step_time": Series("perf/step_time", np.arange(2000), dt)}) == []
    # slow for a while, then back: not a lasting change
    dt = 100.0 * np.exp(rng.normal(0, 0.005, 2000))
    dt[800:1200] *= 1.3
    assert step_change({"perf/step_time": Series("perf/step_time", np.arange(2000), dt)}) == []
    # faster is no fault
    dt = 100.0 * np.exp(rng.normal(0, 0.005, 2000))
    dt[1000:] *= 0.7
    assert step_change({"perf/step_time": Series("perf/step_time", np.arange(2000), dt)}) == []
    # under 3 % is not worth a warning however clean
    dt = np.full(2000, 100.0)
    dt[1000:] = 102.0
    assert step_change({"perf/step_time": Series("perf/step_time", np.arange(2000), dt)}) == []


def test_a_slow_stretch_that_scatters_as_widely_as_its_step_is_no_new_level():
    """A quiet run whose last few steps are slower but scatter by 10-15 % among themselves (a machine loaded at the
    end of a short log, or a thinned one): the 'after' side shows no steady slower level to call a slower machine."""
    rng = np.random.default_rng(3)
    dt = np.concatenate([10.5 * np.exp(rng.normal(0, 0.05, 94)), [14.2, 18.5, 14.4, 15.9, 17.5, 17.0]])
    assert step_change({"perf/step_time": Series("perf/step_time", np.arange(0, 500, 5), dt)}) == []
    # four points, the last two slower by 6 % but 8 % apart (every 5th point of a short excerpt)
    dt = [14.92, 14.82, 14.66, 14.64, 14.95, 16.18]
    assert step_change({"perf/step_time": Series("perf/step_time", np.arange(202, 808, 101), np.array(dt))}) == []
    # the same slower level held steadily is still a step change
    dt = np.concatenate([10.5 * np.exp(rng.normal(0, 0.05, 94)), 16.0 * np.exp(rng.normal(0, 0.01, 6))])
    (f,) = step_change({"perf/step_time": Series("perf/step_time", np.arange(0, 500, 5), dt)})
    assert f.start_step == 470


def test_tokens_per_second_falling_to_a_lower_level_counts_as_well():
    rng = np.random.default_rng(2)
    tps = 50_000.0 * np.exp(rng.normal(0, 0.003, 600))
    tps[450:] /= 1.08
    (f,) = step_change({"perf/tokens_per_sec": Series("perf/tokens_per_sec", np.arange(600), tps)})
    assert f.metric == "perf/tokens_per_sec" and f.start_step == 450 and 0.07 < f.evidence["slowdown"] < 0.09


def _lr_run(first_step, every, n=25_000, warmup=0):
    steps = np.arange(first_step, n + 1, every)
    lr = 5e-5 * np.minimum(1.0, steps / warmup if warmup else 1.0) * (1 - 0.9 * steps / n)
    loss = 3.0 * np.exp(-steps / 8000) + 1.0
    run, _ = make_curve("healthy", n=10, seed=0)
    run.series = {"train/lr": Series("train/lr", steps, lr), "train/loss": Series("train/loss", steps, loss)}
    run.config.clear()
    return run


def _no_warmup(run):
    return [f for f in analyze(run).findings if f.kind == "lr_schedule" and f.evidence.get("type") == "no_warmup"]


def test_no_warmup_is_claimed_only_where_the_log_could_show_one():
    """An LR first logged at step 500 of 25,000 already at its peak: a warmup of up to ~500 steps (2 %) would be
    over by then, so the log cannot say there was none. Logged from step 10, it can."""
    assert _no_warmup(_lr_run(500, 500)) == []
    assert _no_warmup(_lr_run(500, 500, warmup=300)) == []
    (f,) = _no_warmup(_lr_run(10, 10))
    assert f.evidence["first_lr"] > 0.99 * f.evidence["peak_lr"]
    assert _no_warmup(_lr_run(10, 10, warmup=500)) == []


def test_a_change_across_steps_the_log_leaves_out_is_no_step_change():
    """Steps 1-50 then 4950-4999 (an elided middle): a slower level at the end may have come gradually; the log
    does not show a jump."""
    steps = np.concatenate([np.arange(1, 51), np.arange(4950, 5000)])
    rng = np.random.default_rng(3)
    dt = np.where(steps < 100, 461.0, 506.0) * np.exp(rng.normal(0, 0.004, steps.size))
    assert step_change({"perf/step_time": Series("perf/step_time", steps, dt)}) == []


def test_step_time_that_comes_and_goes_with_the_load_is_no_slowdown():
    """A shared CPU whose load comes and goes in periods: the step time sits near 5 ms or near 10 ms for 18 steps at
    a time (5 % scatter within a period), slow at the start, fast after, slow again at the end. Early vs late says
    "twice as slow", but the first half of the log had already been that slow: info, not a slowdown to chase. The
    same late level never reached before stays a warning."""
    rng = np.random.default_rng(0)
    steps = np.arange(120, 300)
    pattern = np.repeat([10.0, 5.0, 5.0, 10.0, 5.0, 5.0, 10.0, 10.0, 10.0, 10.0], 18)
    run = Run({"train/loss": Series("train/loss", steps, 2.7 * np.exp(rng.normal(0, 0.05, steps.size))),
               "perf/step_time": Series("perf/step_time", steps, pattern * np.exp(rng.normal(0, 0.05, steps.size)))})
    (f,) = [f for f in analyze(run).findings if f.kind == "throughput"]
    assert f.severity == "info" and "had been as slow before" in f.message, f.message
    assert analyze(run).verdict == "healthy"
    steady = np.repeat([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 10.0, 10.0, 10.0, 10.0], 18)
    run.series["perf/step_time"] = Series("perf/step_time", steps, steady * np.exp(rng.normal(0, 0.05, steps.size)))
    assert [f.severity for f in analyze(run).findings if f.kind == "throughput"] == ["warning"]


def test_a_compilation_step_at_the_start_does_not_hide_a_step_change():
    """nanoGPT's first dt is torch.compile's (25 s among 100 ms steps): the least-squares split chose it and the
    10 % slower level from step 500 to the end went unseen. The warm-up points are left out, as the drift rule does."""
    rng = np.random.default_rng(0)
    steps = np.arange(0, 1000, 10)
    dt = 100 * np.exp(rng.normal(0, 0.005, steps.size))
    dt[50:] *= 1.10
    dt[0] = 25_000.0
    (f,) = step_change({"perf/step_time": Series("perf/step_time", steps, dt)})
    assert f.evidence["change_step"] == 500 and 0.08 < f.evidence["slowdown"] < 0.12, f.message


def test_a_warmup_set_as_text_in_a_run_config_is_no_crash():
    """Run.config is the caller's (lossdx.analyze(run)): a warmup_steps of '100' compared with 0 raised TypeError."""
    from lossdx.model import Run

    steps = np.arange(0, 2000, 10)
    lr = np.where(steps < 40, 1e-3, 1e-3 * np.cos(np.pi * steps / 4000))
    run = Run({"train/loss": Series("train/loss", steps, 3 + np.exp(-steps / 300)),
               "train/lr": Series("train/lr", steps, lr)}, config={"warmup_steps": "100", "warmup_ratio": None})
    assert analyze(run).verdict in ("healthy", "warning", "problem")


def _run_with_lr(lr_of_step, n=1400):
    run, _ = make_curve("healthy", n=n, seed=0)
    steps = np.arange(0, n, 5)
    run.series["train/lr"] = Series("train/lr", steps, np.array([lr_of_step(int(s)) for s in steps]))
    return run


def _cosine_restarts(s, periods, warmup=20):
    if s < warmup:
        return 1e-3 * (s + 1) / warmup
    s -= warmup
    for period in periods:
        if s < period:
            return 1e-3 * 0.5 * (1 + np.cos(np.pi * s / period))
        s -= period
    return 1e-5


def test_warm_restarts_whose_cycles_grow_are_a_schedule_by_design():
    """SGDR (T_mult 2) after a 20-step warmup: the LR jumps back to its peak at steps 220 and 620, cycles 200,
    400, 800 steps long."""
    rep = analyze(_run_with_lr(lambda s: _cosine_restarts(s, (200, 400, 800))))
    (f,) = [f for f in rep.findings if f.kind == "lr_schedule" and f.evidence.get("type") == "restart"]
    assert f.severity == "info" and f.evidence["by_design"] and "cycles of 200, 400 steps" in f.message
    assert rep.verdict == "healthy"


def test_restarts_with_equal_cycles_stay_a_warning():
    """A step counter wrapping every 350 steps restarts the same cosine four times: no design says so."""
    rep = analyze(_run_with_lr(lambda s: _cosine_restarts(s % 350, (330,))))
    (f,) = [f for f in rep.findings if f.kind == "lr_schedule" and f.evidence.get("type") == "restart"]
    assert f.severity == "warning" and not f.evidence["by_design"]


def _sgd_rnn_run(early_losses):
    """A per-step log of 546 steps at SGD lr 20 divided by 4 at two epoch ends (word_language_model's annealing), no
    config: the loss falls 5.58 -> ~2 with the given first points."""
    rng = np.random.default_rng(0)
    steps = np.arange(546)
    loss = 1.9 + 3.7 * np.exp(-steps / 12) + rng.normal(0, 0.08, steps.size)
    loss[: len(early_losses)] = early_losses
    lr = np.where(steps < 364, 20.0, 5.0)
    lr[455:] = 1.25
    run, _ = make_curve("healthy", n=10, seed=0)
    run.series = {"train/lr": Series("train/lr", steps, lr), "train/loss": Series("train/loss", steps, loss)}
    run.config.clear()
    return run


def test_one_noisy_batch_the_loss_falls_back_from_is_no_damage_of_a_missing_warmup():
    """Dropout 0.5 at SGD lr 20 from step 0: one batch at step 3 is 6.25 (12 % above the first 5.58) and step 4 is
    back at 3.98. One point is a noisy batch, not the damage that makes a missing warmup a warning; a rise held over
    two points, or a blow-up to 1.5x, still is."""
    assert [f.severity for f in _no_warmup(_sgd_rnn_run([5.58, 4.31, 4.05, 6.25, 3.98, 4.97, 3.77]))] == ["info"]
    assert [f.severity for f in _no_warmup(_sgd_rnn_run([5.58, 6.3, 6.4, 6.2, 5.0, 4.5]))] == ["warning"]
    assert [f.severity for f in _no_warmup(_sgd_rnn_run([5.58, 9.0, 4.5, 4.2]))] == ["warning"]


def _clipped_run(loss, rng):
    steps = np.arange(1, loss.size + 1)
    norms = 4.0 * np.exp(0.3 * rng.standard_normal(loss.size))  # 4x the clip on every step
    series = {"train/loss": Series("train/loss", steps, loss), "train/grad_norm": Series("train/grad_norm", steps, norms)}
    return Run(series, config={"grad_clip": 1.0, "batch_size": 1})


def test_clipping_every_step_of_per_sample_gradients_is_information():
    """Batch size 1, every step logged: one sample's gradient carries the whole sampling noise a batch mean averages
    away, so its norm sits ~4x above a clip of 1 on every step while the per-sample loss (heavy-tailed) falls well.
    The same norms under a calm, averaged loss curve stay a warning."""
    rng = np.random.default_rng(3)
    n = 1500
    grown = 1 - np.exp(-np.arange(n) / 400.0)
    margin = 2.5 * grown + (0.1 + 1.5 * grown) * rng.standard_normal(n)
    per_sample = np.log1p(np.exp(-margin)) * np.log(4) / np.log(2)  # starts at ln 4 (4 classes)
    sat = [f for f in analyze(_clipped_run(per_sample, rng)).findings if f.evidence.get("type") == "clip_saturation"]
    assert sat and sat[0].severity == "info", [(f.severity, f.message) for f in sat]
    calm = 0.4 + 1.0 * np.exp(-np.arange(n) / 400.0) + 0.005 * rng.standard_normal(n)
    sat = [f for f in analyze(_clipped_run(calm, rng)).findings if f.evidence.get("type") == "clip_saturation"]
    assert sat and sat[0].severity == "warning", [(f.severity, f.message) for f in sat]


def _hard_restarts_run(loss_jump):
    """HF cosine_with_restarts seen in an excerpt: the LR anneals to ~1 % of its peak over 100 steps and jumps back
    to its peak in one logged step (every 10 steps), equal cycles, no config; the loss falls slowly with noise and
    rises by ``loss_jump`` after each restart."""
    rng = np.random.default_rng(3)
    steps = np.arange(120, 420, 10)
    phase = (steps - 120 + 10) % 100
    lr = 5e-4 * 0.5 * (1 + np.cos(np.pi * np.minimum(phase, 98) / 100))
    loss = 1.7 - 0.0005 * (steps - 120) + rng.normal(0, 0.05, steps.size)
    loss[(phase < 40) & (steps > 200)] += loss_jump
    run, _ = make_curve("healthy", n=10, seed=0)
    run.series = {"train/lr": Series("train/lr", steps, lr), "train/loss": Series("train/loss", steps, loss)}
    run.config.clear()
    return analyze(run)


def test_hard_restarts_at_the_end_of_each_anneal_that_leave_the_loss_alone_are_by_design():
    """SGDR with equal cycles (T_mult 1) and a counter wrapping at the horizon draw the same LR trace; the loss
    decides: no rise after the restarts is a schedule by design (advice), a rise is a warning."""
    rep = _hard_restarts_run(0.0)
    (f,) = [f for f in rep.findings if f.kind == "lr_schedule" and f.evidence.get("type") == "restart"]
    assert f.severity == "info" and f.evidence["by_design"] and "no rise of the loss" in f.message
    assert rep.verdict == "healthy"
    rep = _hard_restarts_run(0.3)
    (f,) = [f for f in rep.findings if f.kind == "lr_schedule" and f.evidence.get("type") == "restart"]
    assert f.severity == "warning" and rep.diagnoses[0].cause == "lr_schedule_bug"



def test_warm_restarts_by_design_claim_no_rise_only_after_the_restarts_the_log_shows_both_sides_of():
    """SGDR restarts every 750 steps in a log that ends 2 steps after the third: the loss cannot say what followed
    it, so 'no rise of the loss after them' is said of the two it shows both sides of, not of all three."""
    from lossdx.detectors.base import Context
    from lossdx.detectors.schedule import LRScheduleDetector

    rng = np.random.default_rng(0)
    said = {}
    for end in (3000, 2252):
        st = np.arange(end)
        lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * (st % 750) / 750))
        run = Run({"train/loss": Series("train/loss", st, 2 + 8 * np.exp(-st / 300) + 0.02 * rng.standard_normal(end)),
                   "train/lr": Series("train/lr", st, lr)}, config={"lr": 1e-3})
        run.source["format"] = "jsonl"
        (f,) = [f for f in LRScheduleDetector().detect(run, Context.from_run(run)) if f.evidence.get("type") == "restart"]
        assert f.evidence["by_design"] and f.evidence["restarts"] == 3
        said[end] = f.message
    assert "no rise of the loss after them" in said[3000]
    assert "after them" not in said[2252] and "after the 2 the log shows both sides of" in said[2252], said[2252]

def _lr_excerpt(lr_of_step, start=400, end=680):
    run, _ = make_curve("healthy", n=end + 1, seed=0)
    steps = np.arange(start, end + 1, 4)
    run.series = {"train/loss": Series("train/loss", steps, 0.5 + 0.2 * np.exp(-steps / 300.0)),
                  "train/lr": Series("train/lr", steps, np.array([lr_of_step(int(s)) for s in steps]))}
    run.config.clear()
    return analyze(run)


def test_an_excerpt_judges_the_time_at_the_lr_floor_against_the_whole_run_its_step_numbers_count():
    """StepLR x0.1 at steps 264 and 528 of 680, seen from step 400: the last stage is half of the excerpt but 22 % of
    the run the step numbers count, as in the whole log (no finding). A cosine whose horizon is 300 steps of a
    500-step run, seen from step 250, sits at its floor for the last 40 % of the run: a short decay."""
    step_lr = _lr_excerpt(lambda s: 0.05 * 0.1 ** (int(s >= 264) + int(s >= 528)))
    assert not [f for f in step_lr.findings if f.kind == "lr_schedule" and f.severity != "info"]
    short = _lr_excerpt(lambda s: 1e-5 + 1e-3 * 0.5 * (1 + np.cos(np.pi * min(s, 300) / 300)), start=250, end=500)
    (f,) = [f for f in short.findings if f.kind == "lr_schedule" and f.evidence.get("type") == "short_decay"]
    assert f.severity == "warning"


def test_clipping_on_most_steps_of_a_language_model_that_learned_most_of_the_way_is_info():
    """A byte-level LM from scratch (V=256: ln V = 5.55), clip 1, its gradient norm ~1.6 on 95 % of the first 120
    steps of a run still going: the training loss is at 2.3, under half of ln V, and the two evaluations fell 5.5 ->
    2.4, so the clipped updates learned (info). Clipped the same while the loss is still at 4.5: a warning."""
    def run_of(final):
        steps = np.arange(0, 121)
        loss = final + (5.5 - final) * np.exp(-steps / 15.0)
        rng = np.random.default_rng(3)
        grad = 1.6 * np.exp(rng.normal(0, 0.1, steps.size))
        vsteps = np.array([0, 120])
        return Run({"train/loss": Series("train/loss", steps, loss),
                    "train/grad_norm": Series("train/grad_norm", steps, grad),
                    "val/loss": Series("val/loss", vsteps, np.array([5.5, final + 0.1]))},
                   config={"vocab_size": 256, "grad_clip": 1.0, "max_steps": 300})

    learned = [f for f in analyze(run_of(2.3)).findings if f.evidence.get("type") == "clip_saturation"]
    assert [f.severity for f in learned] == ["info"] and "under half of the untrained ln(V=256)" in learned[0].message
    stuck = [f for f in analyze(run_of(4.5)).findings if f.evidence.get("type") == "clip_saturation"]
    assert [f.severity for f in stuck] == ["warning"]


def test_a_slow_stretch_whose_last_point_is_back_near_the_old_level_did_not_stay():
    """Step times of ~11.7 ms (3 % scatter), then 14.3, 16.0, 16.7, 15.5 ms and a last point back at 12.7: the log
    ends on the way back, so the machine did not get slower and stay there. Ending at 15.9 it did."""
    rng = np.random.default_rng(5)
    base = 11.7 * np.exp(rng.normal(0, 0.03, 50))

    def change(last):
        dt = np.concatenate([base, [14.3, 16.0, 16.7, 15.5, last]])
        return step_change({"perf/step_time": Series("perf/step_time", np.arange(182, 182 + 7 * dt.size, 7), dt)})

    assert change(12.7) == []
    (f,) = change(15.9)
    assert f.evidence["type"] == "step_change" and f.severity == "warning"


def test_a_coarse_warm_restart_is_judged_on_three_logged_points_each_side_and_one_noisy_batch_is_no_rise():
    """SGDR seen in a coarse mid-run paste (every ~49 steps, the interval varying 48-50): the window of three
    logging intervals before the restart holds two points, so the cycle's last three points are the window; a loss
    near 0 where one batch after the restart logs 30x its level is noise, not a rise (medians, not means)."""
    rng = np.random.default_rng(5)
    steps = 362 + np.concatenate([[0], np.cumsum(np.tile([50, 48], 9)[:17])])
    peak = 0.05
    lr = np.concatenate([peak * np.array([0.45, 0.24, 0.09, 0.006]),
                         peak * 0.5 * (1 + np.cos(np.pi * np.arange(14) / 14.2))])
    loss = 3e-4 + 5e-5 * rng.standard_normal(steps.size)
    loss[[5, 7]] = [0.01, 0.02]
    run, _ = make_curve("healthy", n=10, seed=0)
    run.series = {"train/lr": Series("train/lr", steps, lr), "train/loss": Series("train/loss", steps, loss)}
    run.config.clear()
    rep = analyze(run)
    (f,) = [f for f in rep.findings if f.kind == "lr_schedule" and f.evidence.get("type") == "restart"]
    assert f.severity == "info" and f.evidence["by_design"], f.message
    loss[4:9] += 0.01  # the level itself rises after the restart: a warning
    rep = analyze(run)
    (f,) = [f for f in rep.findings if f.kind == "lr_schedule" and f.evidence.get("type") == "restart"]
    assert f.severity == "warning"
