"""Each finding kind fires on a synthetic curve that has the phenomenon and stays quiet on a healthy one."""


import numpy as np
import pytest

from lossdx.analyze import analyze
from lossdx.model import Run, Series
from lossdx.testing.synthetic import make_curve


def kinds(run, severities=("warning", "error")):
    return {(f.kind) for f in analyze(run).findings if f.severity in severities}


def findings(run, kind):
    return [f for f in analyze(run).findings if f.kind == kind]


@pytest.mark.parametrize("seed", range(5))
def test_healthy_curves_are_clean(seed):
    run, _ = make_curve("healthy", n=3000, seed=seed)
    rep = analyze(run)
    assert rep.verdict == "healthy", [f.message for f in rep.findings if f.severity != "info"]
    names = [p["name"] for p in rep.run["phases"]]
    assert names[0] == "fast_descent" and "steady_descent" in names


@pytest.mark.parametrize("kind,expected", [
    ("spike", "spike"), ("nan", "nan"), ("diverge", "divergence"), ("plateau", "plateau"),
    ("overfit", "overfitting"), ("slow", "slow_convergence"), ("bad_init", "init_loss"), ("too_good", "too_good"),
    ("no_warmup", "lr_schedule"), ("restart", "lr_schedule"), ("data_order", "data_order"),
    ("grad_explosion", "grad_norm"), ("noisy_growth", "instability"),
])
def test_each_phenomenon_is_found(kind, expected):
    for seed in (0, 1):
        run, _ = make_curve(kind, n=2000, seed=seed)
        assert expected in kinds(run), (kind, seed)


def test_spike_location_and_recovery():
    run, truth = make_curve("spike", n=2000, seed=2)
    (f,) = [f for f in findings(run, "spike") if f.severity != "info"]
    assert f.start_step == truth["spike_steps"][0]
    assert f.evidence["recovered"] and f.evidence["recovery_steps"] <= 3
    assert f.evidence["ratio"] > 3


def test_nan_first_step_exact_and_hf_hidden_nan():
    run, truth = make_curve("nan", n=1000, seed=0)
    f = [f for f in findings(run, "nan") if f.metric == "train/loss"][0]
    assert f.start_step == truth["nan_step"] and not f.evidence["recovered"]
    # HF: the logged loss is a finite window mean, grad_norm is NaN
    steps = np.arange(10, 500, 10)
    loss = Series("train/loss", steps, 3.0 + 0 * steps)
    g = np.ones(steps.size)
    g[20] = np.nan
    run = Run({"train/loss": loss, "train/grad_norm": Series("train/grad_norm", steps, g)}, meta={"log_window": 10})
    f = findings(run, "nan")[0]
    assert f.metric == "train/grad_norm" and f.start_step == 210 and "logging_nan_inf_filter" in f.message


def test_divergence_from_ln_v_ending_below_the_start():
    """Starts at ln(V) ~ 9, falls to ~2.5, climbs back to ~6: still divergence though 6 < 9."""
    run, truth = make_curve("diverge", n=2000, seed=0)
    loss = run.series["train/loss"]
    assert loss.values[-1] < loss.values[0]
    (f,) = findings(run, "divergence")
    assert f.severity == "error" and truth["diverge_from"] <= f.start_step <= truth["diverge_from"] + 300


def test_pure_noise_around_a_decaying_trend_gives_no_spikes():
    rng = np.random.default_rng(0)
    n = 100_000
    i = np.arange(n)
    loss = (2 + 8 / np.sqrt(1 + i / 500)) * (1 + 0.03 * rng.standard_normal(n))
    run = Run({"train/loss": Series("train/loss", i, loss)})
    assert findings(run, "spike") == []


def test_hf_windows_damp_spikes_but_they_are_still_found():
    run, truth = make_curve("spike", n=3000, seed=4)
    s = run.series["train/loss"]
    w = 10
    means = s.values[: len(s) // w * w].reshape(-1, w).mean(axis=1)
    steps = np.arange(w, len(s) + 1, w)[: means.size]
    hf = Run({"train/loss": Series("train/loss", steps, means)}, meta={"log_window": w})
    got = [f.start_step for f in findings(hf, "spike") if f.severity != "info"]
    assert any(abs(g - truth["spike_steps"][0]) <= w for g in got), got


def test_one_step_blip_is_info_not_warning():
    """modded-nanogpt style: +35 % for one step in a long healthy run."""
    run, _ = make_curve("healthy", n=3000, seed=1)
    v = run.series["train/loss"].values.copy()
    v[1500] *= 1.35
    run.series["train/loss"] = Series("train/loss", run.series["train/loss"].steps, v)
    assert {f.severity for f in findings(run, "spike")} <= {"info"}


def test_plateau_needs_room_to_improve():
    """Flat at the end because the LR decayed to zero is convergence, not a plateau."""
    run, _ = make_curve("plateau", n=2000, seed=0)
    lr = run.series["train/lr"].values.copy()
    lr[len(lr) // 3:] = 0.0
    run.series["train/lr"] = Series("train/lr", run.series["train/lr"].steps, lr)
    assert findings(run, "plateau") == []


def test_overfitting_ignores_a_noisy_validation_curve():
    steps = np.arange(0, 2000, 100)
    rng = np.random.default_rng(0)
    val = 0.05 + 0.04 * np.abs(rng.standard_normal(steps.size))
    run = Run({"val/loss": Series("val/loss", steps, val),
               "train/loss": Series("train/loss", np.arange(2000), np.full(2000, 0.01))})
    assert findings(run, "overfitting") == []


def test_init_loss_without_the_vocabulary():
    """Issue 7 (1): the curve alone carries the diagnosis. A first loss of ~50 is far above ln V of any vocabulary
    in use (ln 262,144 = 12.5): broken init with or without a config. A plausible first loss is not judged."""
    run, _ = make_curve("bad_init", n=1000, seed=0)
    run.config.pop("vocab_size")
    other = Run({"train/loss": Series("train/loss", np.arange(1000), np.linspace(50.0, 20.0, 1000))})
    assert findings(other, "init_loss") == []  # a loss that never enters the cross-entropy range has no ceiling
    got = findings(run, "init_loss")  # falls from ~50 into the range of a token cross-entropy: a language model
    assert got and got[0].severity == "error" and got[0].evidence["vocab_size"] is None
    assert any("vocabulary size unknown" in f.message for f in findings(run, "log_limit"))
    plain, _ = make_curve("healthy", n=1000, seed=0, vocab=50257)
    plain.config.pop("vocab_size")
    assert findings(plain, "init_loss") == []


def test_init_loss_is_not_judged_on_an_excerpt():
    """Issue 7 (4): a log that starts mid-run has no initial loss."""
    run, _ = make_curve("bad_init", n=2000, seed=0)
    for name, s in list(run.series.items()):
        keep = s.steps >= 1200
        run.series[name] = Series(name, s.steps[keep], s.values[keep])
    assert findings(run, "init_loss") == []
    assert analyze(run).run["context"]["covers_start"] is False


def test_classifier_near_zero_loss_is_not_too_good():
    steps = np.arange(1000)
    loss = 2.3 * np.exp(-steps / 50) + 0.001
    run = Run({"train/loss": Series("train/loss", steps, loss),
               "val/loss": Series("val/loss", steps[::100], 2.3 * np.exp(-steps[::100] / 50) + 0.02)},
              config={"vocab_size": 10})
    assert findings(run, "too_good") == []


def test_config_outliers_are_advice():
    """Issue 7 (2): a config value the curve does not back is advice (info), never a warning or a top cause."""
    run, _ = make_curve("healthy", n=500, seed=0)
    run.config.update(weight_decay=8.0, lr=0.03)
    got = {f.evidence["key"]: f.severity for f in findings(run, "config")}
    assert got == {"weight_decay": "info", "lr": "info"}
    rep = analyze(run)
    assert rep.verdict == "healthy"
    assert all(d.confidence <= 0.3 for d in rep.diagnoses), [(d.cause, d.confidence) for d in rep.diagnoses]


def test_weight_decay_times_lr_shrinking_weights_each_step_is_advice():
    """weight_decay 0.005 looks small, but at SGD's lr 20 it shrinks every weight by 10 % per step; the same decay
    at lr 0.1 (0.05 % per step) is an ordinary recipe."""
    run, _ = make_curve("healthy", n=500, seed=0)
    run.config.update(weight_decay=0.005, lr=20.0, optimizer="sgd")
    (f,) = [f for f in findings(run, "config") if f.evidence["key"] == "weight_decay"]
    assert f.severity == "info" and "10% per step" in f.message, f.message
    run.config.update(lr=0.1)
    assert not [f for f in findings(run, "config") if f.evidence["key"] == "weight_decay"]


def test_throughput_regression():
    steps = np.arange(2000)
    dt = np.where(steps < 1000, 100.0, 140.0) + np.random.default_rng(0).random(2000)
    run, _ = make_curve("healthy", n=2000, seed=0)
    run.series["perf/step_time"] = Series("perf/step_time", steps, dt)
    (f,) = findings(run, "throughput")
    # a clean step to a 40 % slower level that stays there (0.3 % scatter) is a machine that got slower: a fault to
    # chase (tests/detectors/test_schedule.py); a drift of that size on a shared machine stays info
    assert f.severity == "warning" and f.evidence["type"] == "step_change" and 0.3 < f.evidence["slowdown"] < 0.5
    run.series["perf/step_time"] = Series("perf/step_time", steps, np.where(steps < 1000, 100.0, 220.0))
    (f,) = findings(run, "throughput")
    assert f.severity == "warning" and f.evidence["slowdown"] > 1.0


def test_throughput_drift_within_the_runs_own_timing_noise_is_info():
    """A CPU run on a shared machine: each step's time scatters by ~25 % and the load doubles the level over the
    run. The same doubling with a quiet GPU's few-% scatter is a fault to chase."""
    steps = np.arange(2000)
    rng = np.random.default_rng(1)
    level = 15.0 * 2.0 ** (steps / 2000)  # gradual drift, 15 ms -> 30 ms
    run, _ = make_curve("healthy", n=2000, seed=0)
    run.series["perf/step_time"] = Series("perf/step_time", steps, level * np.exp(rng.normal(0, 0.25, 2000)))
    (f,) = findings(run, "throughput")
    assert f.evidence["slowdown"] >= 0.5 and f.severity == "info", f.message
    assert "timing noise" in f.message
    assert analyze(run).verdict == "healthy"
    run.series["perf/step_time"] = Series("perf/step_time", steps, level * np.exp(rng.normal(0, 0.05, 2000)))
    (f,) = findings(run, "throughput")
    assert f.severity == "warning", f.message


def test_train_val_gap_widening_is_overfitting_onset():
    run, _ = make_curve("healthy", n=3000, seed=0)
    ev = run.series["val/loss"]
    val = ev.values.copy()
    val[ev.steps > 1500] = np.interp(1500, ev.steps, ev.values)  # validation stops improving
    run.series["val/loss"] = Series("val/loss", ev.steps, val)
    got = [f for f in findings(run, "overfitting") if f.evidence.get("type") == "gap_widening"]
    assert got and got[0].severity == "warning"


def test_gap_closing_to_a_hairs_width_is_no_overfitting():
    """Validation below training (dropout, a noisy train loss) that the training loss then catches up with: the
    gap 'widened' from -0.3 to +0.03 on a loss of 2.2, which is no memorisation."""
    steps = np.arange(0, 500, 10)
    rng = np.random.default_rng(0)
    train = 2.2 + 3.3 * np.exp(-steps / 60.0)
    train = train + np.where(steps > 330, -0.03 * (steps - 330) / 170, 0.3 * (steps > 200))
    train = train * np.exp(rng.normal(0, 0.01, steps.size))
    vs = np.arange(0, 500, 50)
    val = 2.2 + 3.3 * np.exp(-vs / 60.0)
    run = Run({"train/loss": Series("train/loss", steps, train), "val/loss": Series("val/loss", vs, val)})
    run.source["format"] = "nanogpt"
    assert not [f for f in findings(run, "overfitting") if f.severity != "info"], \
        [f.message for f in findings(run, "overfitting")]


def test_grad_norm_precursor_before_a_spike():
    run, _ = make_curve("healthy", n=2000, seed=0)
    g = run.series["train/grad_norm"].values.copy()
    loss = run.series["train/loss"].values.copy()
    g[1196:1200] = [5, 20, 60, 200]  # the norm climbs for 4 steps ...
    loss[1200] *= 3.0  # ... then the loss spikes
    run.series["train/grad_norm"] = Series("train/grad_norm", run.series["train/grad_norm"].steps, g)
    run.series["train/loss"] = Series("train/loss", run.series["train/loss"].steps, loss)
    (f,) = [f for f in findings(run, "grad_norm") if f.evidence.get("type") == "precursor"]
    assert f.end_step == 1200 and f.evidence["lead_steps"] == 1 and f.evidence["ratio"] > 50
    assert "lr_too_high" in {d.cause for d in analyze(run).diagnoses}


def test_a_step_schedules_last_stage_is_no_short_decay_horizon():
    """StepLR (x0.1 every 3 of 8 epochs) holds its last LR for the last quarter to third of the run by design; a
    smooth decay that bottoms out a third of the way before the end is a horizon shorter than the run."""
    steps = np.arange(0, 704, 10)
    loss = Series("train/loss", steps, 0.05 + 2.25 * np.exp(-steps / 60.0))
    stair = np.where(steps < 264, 0.05, np.where(steps < 528, 0.005, 0.0005))[steps >= 150]
    excerpt = Run({"train/loss": Series("train/loss", steps[steps >= 150], loss.values[steps >= 150]),
                   "train/lr": Series("train/lr", steps[steps >= 150], stair)})
    assert [f for f in findings(excerpt, "lr_schedule") if f.severity != "info"] == []
    smooth = np.maximum(0.05 * (1 - steps / 450.0), 0.0005)
    short = Run({"train/loss": loss, "train/lr": Series("train/lr", steps, smooth)})
    assert any(f.evidence.get("type") == "short_decay" for f in findings(short, "lr_schedule"))


def test_a_noisy_excerpts_one_point_blip_above_its_first_value_is_no_early_blow_up():
    """An excerpt's first point is no start of training: per-batch classifier losses (0.01-0.3) with one batch at
    0.75 are within the noise of the points before it; a batch 100x the level still is a spike."""
    rng = np.random.default_rng(0)
    steps = np.arange(200, 800, 10)
    v = np.abs(0.12 * rng.standard_normal(steps.size)) + 0.005
    v[0], v[1:4] = 0.26, [0.19, 0.10, 0.011]
    v[4], v[5] = 0.75, 0.16
    quiet = Run({"train/loss": Series("train/loss", steps, v)})
    assert [f for f in findings(quiet, "spike") if f.severity != "info"] == []
    v[4] = 31.8
    loud = Run({"train/loss": Series("train/loss", steps, v)})
    assert [f for f in findings(loud, "spike") if f.severity != "info"]


def test_a_warmup_in_the_config_is_not_denied_by_a_coarse_lr_trace():
    """Logged every 25 steps, a 40-step warmup shows as one point at 62% of the peak: the config's warmup explains
    it. Without a warmup in the config the same trace is a start at full LR."""
    steps = np.arange(0, 400, 25)
    lr = np.where(steps < 25, 0.0012, 0.00195 * (1 - steps / 400.0))
    lr[1] = 0.00195
    loss = 2.0 + 3.5 * np.exp(-steps / 60.0)
    base = {"vocab_size": 260, "max_steps": 400}

    def run(cfg):
        return Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, lr)},
                   config=cfg)
    warned = [f for f in findings(run(base), "lr_schedule") if f.evidence.get("type") == "no_warmup"]
    assert warned and warned[0].severity == "warning"
    assert [f for f in findings(run(dict(base, warmup_steps=40)), "lr_schedule")
            if f.evidence.get("type") == "no_warmup" and f.severity != "info"] == []


def test_a_from_start_per_batch_rise_within_the_noise_of_the_first_batches_is_no_blow_up():
    """Per-batch MSE of batches of 32 scatters 0.75-1.2 around 1.0 from the first batch on: one batch at 1.45 that
    is gone the next batch is that scatter, not a too-high LR; a climb that stays up still is."""
    v = np.array([1.0, 0.84, 0.99, 0.81, 1.45, 1.03, 1.19, 0.75, 0.77, 0.86] + [0.8] * 60)
    steps = np.arange(v.size)
    quiet = Run({"train/loss": Series("train/loss", steps, v)})
    assert [f for f in findings(quiet, "spike") if f.severity != "info"] == []
    w = v.copy()
    w[4:12] = [1.5, 1.9, 2.4, 3.0, 3.3, 3.5, 3.6, 3.6]
    loud = Run({"train/loss": Series("train/loss", steps, w)})
    assert [f for f in findings(loud, "spike") if f.severity != "info"]


def _classifier_excerpt_with_blip(peak):
    """A classifier excerpt (steps 600-900, accuracy logged, no config): a per-step loss near 0.03 (3 % noise) with
    one batch at ``peak`` right after the excerpt's first points, back the next step."""
    from lossdx.model import Run

    rng = np.random.default_rng(4)
    steps = np.arange(600, 900)
    loss = 0.03 * np.exp(rng.normal(0, 0.03, steps.size))
    loss[6] = peak
    vsteps = np.arange(600, 900, 50)
    return Run({"train/loss": Series("train/loss", steps, loss),
                "val/loss": Series("val/loss", vsteps, np.full(vsteps.size, 0.08)),
                "val/accuracy": Series("val/accuracy", vsteps, np.full(vsteps.size, 0.97))}, config={})


def test_a_blip_early_in_a_classifier_excerpt_is_judged_against_the_least_informed_guess():
    """0.03 -> 0.1 one step after an excerpt begins is 'above its first logged value', but the excerpt has no start
    of training to blow up and its first point is no untrained loss: the jump is a tenth of ln 2, one batch, info. A
    jump to 1.5 nats (twice ln 2) is still a warning."""
    from lossdx.analyze import analyze

    small = [f for f in analyze(_classifier_excerpt_with_blip(0.1)).findings if f.kind == "spike"]
    assert all(f.severity == "info" for f in small)
    big = [f for f in analyze(_classifier_excerpt_with_blip(1.5)).findings if f.kind == "spike"]
    assert [f.severity for f in big] == ["warning"]


def test_a_rise_above_an_excerpts_low_first_point_is_judged_against_the_points_before_it():
    """An excerpt whose first eight points sit near 0.2 and whose loss then scatters by 15 % around 0.25: every later
    point is above the first value, but once eight points came before, a rise is compared with their level and noise
    like any spike, so the scatter is no event; a jump to 3.0 still is."""
    from lossdx.analyze import analyze

    def run_of(jump):
        rng = np.random.default_rng(8)
        steps = np.arange(5000, 5200)
        loss = 0.25 * np.exp(rng.normal(0, 0.15, steps.size))
        loss[:8] = [0.2, 0.21, 0.19, 0.22, 0.2, 0.21, 0.19, 0.2]
        if jump:
            loss[20] = jump
        return Run({"train/loss": Series("train/loss", steps, loss)}, config={})

    assert not [f for f in analyze(run_of(None)).findings if f.kind == "spike" and f.severity != "info"]
    big = [f for f in analyze(run_of(3.0)).findings if f.kind == "spike" and f.severity != "info"]
    assert [f.start_step for f in big] == [5020]


def test_one_inf_gradient_norm_under_a_finite_loss_in_a_per_step_log_is_a_skipped_step():
    """No config (dtype unknown), a per-step log: the gradient norm is Inf at step 300 and finite at 301 while the loss
    stays finite throughout — the weights survived an Inf gradient, so the step was skipped (a float16 loss scaler):
    info. With the loss NaN from that step on it is an error as before."""
    from lossdx.analyze import analyze

    def run_of(loss_nan):
        steps = np.arange(600)
        loss = 3.0 + np.exp(-steps / 100.0)
        grad = np.full(steps.size, 0.8)
        grad[300] = np.inf
        if loss_nan:
            loss[300:] = np.nan
        return Run({"train/loss": Series("train/loss", steps, loss),
                    "train/grad_norm": Series("train/grad_norm", steps, grad)}, config={})

    skipped = [f for f in analyze(run_of(False)).findings if f.kind == "nan"]
    assert [f.severity for f in skipped] == ["info"] and "skipped" in skipped[0].message
    assert analyze(run_of(False)).verdict == "healthy"
    assert analyze(run_of(True)).verdict == "problem"


def test_a_short_excerpts_second_point_within_its_scatter_is_no_rise_above_a_baseline():
    """A 40-point excerpt (every 10 steps from step 3000) of a loss scattering by ~30 % around 2.5: too short for the
    heavy-tail measure, but its own scatter says how much one point can differ from the first. Its second point at 2x
    the first is that scatter; a second point at 10x the first is still a spike."""
    def run_of(second):
        rng = np.random.default_rng(3)
        steps = np.arange(3000, 3400, 10)
        loss = 2.5 * np.exp(rng.normal(0, 0.3, steps.size))
        loss[0], loss[1] = 2.2, second
        return Run({"train/loss": Series("train/loss", steps, loss)}, config={})

    assert [f for f in findings(run_of(4.4), "spike") if f.severity != "info"] == []
    assert [f.start_step for f in findings(run_of(22.0), "spike") if f.severity != "info"] == [3010]


def test_a_rise_after_an_excerpts_calm_first_points_is_judged_against_the_whole_excerpts_noise():
    """Eight calm points (0.19-0.22) open an excerpt whose loss then scatters by 15 % around 0.25: a point at 0.4 is
    2x their scatter's 8 sigma but within 8 sigma of the noise the whole excerpt shows, so it is no event."""
    rng = np.random.default_rng(8)
    steps = np.arange(5000, 5200)
    loss = 0.25 * np.exp(rng.normal(0, 0.15, steps.size))
    loss[:8] = [0.2, 0.21, 0.19, 0.22, 0.2, 0.21, 0.19, 0.2]
    loss[10] = 0.4
    run = Run({"train/loss": Series("train/loss", steps, loss)}, config={})
    assert [f for f in findings(run, "spike") if f.severity != "info"] == []


def test_a_converged_classifier_excerpts_batch_below_chance_level_is_per_sample_noise():
    """A classifier excerpt (accuracy logged, classes unknown) near zero loss (~0.003), logged every 10 steps: a batch
    at 0.35 nats (below ln 2: still predicted better than a guess) that is gone the next point, and a last point at
    0.12, are a few misclassified samples (info); a garbage batch at 31.8 nats is still a warning."""
    def run_of(peak):
        rng = np.random.default_rng(5)
        steps = np.arange(2000, 2500, 10)
        loss = 0.003 * np.exp(rng.normal(0, 0.6, steps.size))
        loss[2], loss[-1] = peak, 0.12
        vsteps = np.arange(2000, 2500, 100)
        return Run({"train/loss": Series("train/loss", steps, loss),
                    "val/loss": Series("val/loss", vsteps, np.full(vsteps.size, 0.05)),
                    "val/accuracy": Series("val/accuracy", vsteps, np.full(vsteps.size, 0.98))}, config={})

    quiet = analyze(run_of(0.35))
    assert [f.message for f in quiet.findings if f.kind == "spike" and f.severity != "info"] == []
    assert quiet.verdict == "healthy"
    assert any("below chance level, ln 2 = 0.6931 nats" in f.message for f in quiet.findings if f.kind == "spike")
    loud = [f for f in findings(run_of(31.8), "spike") if f.severity != "info"]
    assert [f.start_step for f in loud] == [2020]


def test_an_excerpts_rise_above_a_low_first_point_is_measured_as_a_factor_of_its_scatter():
    """Per-batch losses near 0.1 that scatter by a factor (log-normal, sigma 0.5: a relative noise of ~0.4), pasted
    from mid-run: the first point is a low draw (0.043) and the second a high one (0.29), 6.7x apart, within
    e^(4 sqrt2 x 0.4) of each other; a second point at 3.0 (70x) is still a spike."""
    def run_of(second):
        rng = np.random.default_rng(11)
        steps = np.arange(4000, 4000 + 6 * 170, 6)
        loss = 0.1 * np.exp(rng.normal(0, 0.5, steps.size))
        loss[0], loss[1] = 0.043, second
        return Run({"train/loss": Series("train/loss", steps, loss)}, config={})

    assert [f.message for f in findings(run_of(0.29), "spike") if f.severity != "info"] == []
    assert [f.start_step for f in findings(run_of(3.0), "spike") if f.severity != "info"] == [4006]


def test_a_converged_classifier_excerpts_stretch_below_chance_level_that_recovers_is_no_event():
    """Four points at 0.3-0.48 nats in a classifier excerpt otherwise at ~0.005: still below ln 2 and gone again,
    harder batches of a model that still predicts them better than a guess (info); the same stretch at 3 nats
    (above chance level) is a warning."""
    def run_of(level):
        rng = np.random.default_rng(6)
        steps = np.arange(2000, 2500, 10)
        loss = 0.005 * np.exp(rng.normal(0, 0.5, steps.size))
        loss[20:24] = np.array([0.48, 0.47, 0.40, 0.30]) * level / 0.48
        vsteps = np.arange(2000, 2500, 100)
        return Run({"train/loss": Series("train/loss", steps, loss),
                    "val/loss": Series("val/loss", vsteps, np.full(vsteps.size, 0.05)),
                    "val/accuracy": Series("val/accuracy", vsteps, np.full(vsteps.size, 0.98))}, config={})

    assert [f.message for f in findings(run_of(0.48), "spike") if f.severity != "info"] == []
    assert [f.start_step for f in findings(run_of(3.0), "spike") if f.severity != "info"] == [2200]


def test_an_excerpt_that_begins_after_the_lr_peak_still_shows_a_restart():
    """An excerpt of a StepLR run (0.005, then 0.0005) in which a resumed job restarts the LR at 0.05, ten times
    anything logged before: the excerpt's highest LR is the restart itself, still a jump back up after a decay. An
    excerpt that shows only two points of the decay before the jump cannot tell SGDR from a bug: no warning."""
    steps = np.arange(400, 750, 10)
    lr = np.where(steps < 520, 0.005, np.where(steps < 610, 0.0005, 0.05))
    loss = np.full(steps.size, 0.01) + 0.001 * np.sin(steps)
    run = Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, lr)},
              config={})
    (f,) = [f for f in findings(run, "lr_schedule") if f.evidence.get("type") == "restart"]
    assert f.severity == "warning" and f.evidence["at"] == 610 and "0.0005 at step" in f.message
    short = np.where(steps < 420, 3e-5 * (1 - (steps - 400) / 25), 0.0005 * np.cos((steps - 420) / 400))
    cosine = Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, short)},
                 config={})
    assert [f for f in findings(cosine, "lr_schedule") if f.severity != "info"] == []


def test_a_near_perfect_classifier_excerpt_wobbling_above_its_best_is_no_instability():
    """A classifier excerpt (accuracy logged, classes unknown) already at ~0.012 nats: six blocks at ~0.018 are 44 %
    above its best, but measured against the least informed guess (ln 2), not the excerpt's first block (no untrained
    loss), that is a wobble of a near-perfect fit. A stretch at 0.5 nats that comes back is still an excursion."""
    def run_of(level):
        rng = np.random.default_rng(12)
        steps = np.arange(1000, 1000 + 16 * 20)
        loss = 0.012 * np.exp(rng.normal(0, 0.1, steps.size))
        loss[16 * 10: 16 * 16] = level * np.exp(rng.normal(0, 0.1, 96))
        vsteps = np.arange(1000, steps[-1], 40)
        return Run({"train/loss": Series("train/loss", steps, loss),
                    "val/loss": Series("val/loss", vsteps, np.full(vsteps.size, 0.03)),
                    "val/accuracy": Series("val/accuracy", vsteps, np.full(vsteps.size, 0.99))}, config={})

    assert [f.message for f in findings(run_of(0.018), "instability") if f.severity != "info"] == []
    assert [f.severity for f in findings(run_of(0.5), "instability")] == ["warning"]


def test_an_excerpt_whose_loss_crosses_zero_by_hundreds_does_not_overflow_the_spike_margin(tmp_path):
    # found by the CLI fuzz test: the relative noise of such a curve is huge, e^(4 sqrt2 sigma) overflowed
    from lossdx import read

    steps = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 1015]
    vals = ["2.0000", "2.0000", "2.0000", "0.0117", "0.0117", "-2.0", "1.0000", "0.0117", "0.0117", "1.0000", "1.0000",
            "1.0000", "1.0000", "171.0", "171.0", "-169", "1.0000", "171.0"]
    f = tmp_path / "train.log"
    f.write_text("".join(f"step {s:5d} | loss: {v} | lr 1.0000 | norm: 1.0000 | dt: 1.0000ms | tok/sec: 1000\n"
                         for s, v in zip(steps, vals)))
    assert analyze(read(str(f))).verdict in ("healthy", "warning", "problem")


def _per_sample_run_with_grad_norm_bursts(burst, loss_sigma, seed=0):
    """A batch-size-1 log without config: per-sample losses scattering by ~40 % of their level with heavy tails,
    per-sample gradient norms, and two single-point gradient-norm bursts ``burst`` times the level."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, 1201)
    level = 0.3 + 0.8 * np.exp(-steps / 300)
    loss = level * rng.lognormal(0.0, loss_sigma, steps.size) / np.exp(loss_sigma ** 2 / 2)
    gn = 4.0 * rng.lognormal(0.0, 0.3, steps.size)
    gn[[500, 800]] *= burst
    return Run(series={"train/loss": Series("train/loss", steps, loss),
                       "train/grad_norm": Series("train/grad_norm", steps, gn)})


def test_brief_grad_norm_bursts_of_a_per_sample_log_are_routine():
    """One hard sample is the whole batch at batch size 1: a 25x norm that is back the next step is ordinary there,
    while the same burst under a quiet loss, or an 80x one, is still a warning."""
    rep = analyze(_per_sample_run_with_grad_norm_bursts(25, 0.45))
    assert rep.run["context"]["heavy_tailed"] and rep.run["context"]["rel_noise"] >= 0.25
    gn = [f for f in rep.findings if f.kind == "grad_norm"]
    assert len(gn) == 2 and {f.severity for f in gn} == {"info"} and rep.verdict == "healthy"
    assert "grad_norm" in kinds(_per_sample_run_with_grad_norm_bursts(80, 0.45))
    assert "grad_norm" in kinds(_per_sample_run_with_grad_norm_bursts(25, 0.05))
