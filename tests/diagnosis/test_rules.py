"""Every cause of the vocabulary has a rule, a case that triggers it and cases that must not."""

import numpy as np
import pytest

from lossdx.analyze import analyze
from lossdx.diagnosis import CAUSES, DEFAULT_RULES
from lossdx.model import Series
from lossdx.testing.synthetic import make_curve


def causes(run):
    return {d.cause: d for d in analyze(run).diagnoses}


def top(run):
    ds = analyze(run).diagnoses
    return ds[0].cause if ds else None


def _set(run, name, steps, values):
    run.series[name] = Series(name, np.asarray(steps), np.asarray(values, dtype=float))


def _scale_lr(run, peak):
    """Config and logged LR trace must agree: the trace is the witness, the config names it."""
    lr = run.series["train/lr"]
    _set(run, "train/lr", lr.steps, lr.values * (peak / lr.values.max()))
    run.config.update(lr=peak)
    return run


def case_lr_too_high():
    run, _ = make_curve("plateau", n=2000, seed=0)
    run.config.update(n_params=13_865_856)  # a 14M-parameter GPT: usual Adam peak LR up to 2e-3
    return _scale_lr(run, 6e-3)


def case_lr_too_low():
    run, _ = make_curve("slow", n=2000, seed=0)
    return _scale_lr(run, 3e-6)


def case_missing_warmup():
    run, _ = make_curve("no_warmup", n=2000, seed=0)
    v = run.series["train/loss"].values.copy()
    v[3:12] = v[0] * 1.4  # the unwarmed start blows the loss up
    _set(run, "train/loss", run.series["train/loss"].steps, v)
    return run


def case_lr_schedule_bug():
    return make_curve("restart", n=2000, seed=0)[0]


def case_gradient_explosion():
    run, _ = make_curve("healthy", n=1000, seed=0)
    g = run.series["train/grad_norm"].values.copy()
    g[600:] = np.exp(np.linspace(0, 30, 400))
    g[699:] = np.inf  # as real logs show it: the norm overflows one step before the loss
    loss = run.series["train/loss"].values.copy()
    loss[650:700] *= np.linspace(1, 3, 50)
    loss[700:] = np.nan
    _set(run, "train/grad_norm", run.series["train/grad_norm"].steps, g)
    _set(run, "train/loss", run.series["train/loss"].steps, loss)
    return run


def case_bad_init():
    return make_curve("bad_init", n=2000, seed=0)[0]


def case_fp16_precision():
    run, _ = make_curve("healthy", n=500, seed=0)
    loss = run.series["train/loss"].values.copy()
    loss[2:] = np.nan
    _set(run, "train/loss", run.series["train/loss"].steps, loss)
    run.config.update(dtype="float16", grad_scaler=False)
    return run


def case_bad_data_batch():
    return make_curve("spike", n=2000, seed=0)[0]


def case_loss_nan_from_data():
    run, _ = make_curve("healthy", n=2000, seed=0)
    loss = run.series["train/loss"].values.copy()
    loss[1500] = np.nan
    _set(run, "train/loss", run.series["train/loss"].steps, loss)
    return run


def case_nan_in_input():
    run = make_curve("nan", n=2000, seed=0)[0]
    run.config.update(dtype="bfloat16")  # with the dtype unknown a calm-curve NaN of an LM reads as float16 first
    return run


def test_calm_nan_with_unknown_dtype_ranks_the_batch_then_float16():
    """Issue 7 (3)/(7): a NaN out of a calm curve came in with one batch (its loss 0/0, or NaN inputs) in most
    labelled runs; with the dtype unknown float16 overflow is still ranked, with the check that tells them apart."""
    ds = analyze(make_curve("nan", n=2000, seed=0)[0]).diagnoses
    causes = [d.cause for d in ds]
    assert causes[:2] == ["loss_nan_from_data", "nan_in_input"] and "fp16_precision" in causes
    fp16 = next(d for d in ds if d.cause == "fp16_precision")
    assert any("float32" in c for c in fp16.checks)


def case_label_misalignment():
    return make_curve("too_good", n=2000, seed=0)[0]


def case_overfitting_small_data():
    run, _ = make_curve("overfit", n=2000, seed=0)
    run.config.update(tokens_per_step=8192, dataset_tokens=200_000)
    return run


def case_capacity_too_small():
    run, _ = make_curve("plateau", n=2000, seed=0)
    run.config.update(n_layer=1, n_embd=32, n_head=1, seq_len=256, tokens_per_step=8192)
    return run


def case_over_regularization():
    run, _ = make_curve("healthy", n=2000, seed=0)
    run.config.update(weight_decay=8.0)
    return run


def case_data_order():
    return make_curve("data_order", n=2000, seed=0)[0]


def case_batchnorm_instability():
    run, _ = make_curve("spike", n=2000, seed=0)
    run.config.update(normalization="batchnorm", batch_size=1)
    return run


def case_class_imbalance():
    run, _ = make_curve("spike", n=2000, seed=0)
    run.config.update(class_counts=[5000, 40, 12])
    return run


def case_hardware_fault():
    run, _ = make_curve("healthy", n=2000, seed=0)
    steps = run.series["train/loss"].steps
    _set(run, "perf/step_time", steps, np.where(steps < 1000, 100.0, 150.0))
    return run


CASES = {c: globals()[f"case_{c}"] for c in CAUSES}


def test_every_cause_has_a_rule_and_a_case():
    assert {r.cause for r in DEFAULT_RULES} == set(CAUSES)
    assert set(CASES) == set(CAUSES)
    ids = [r.id for r in DEFAULT_RULES]
    assert len(ids) == len(set(ids)) and all(i == i.upper() for i in ids)


@pytest.mark.parametrize("cause", CAUSES)
def test_rule_triggers(cause):
    found = causes(CASES[cause]())
    assert cause in found, sorted(found)
    d = found[cause]
    assert len(d.evidence) >= 2 and d.fixes


@pytest.mark.parametrize("seed", range(3))
def test_healthy_run_gets_no_cause(seed):
    run, _ = make_curve("healthy", n=2000, seed=seed)
    assert analyze(run).diagnoses == []


def test_nan_inputs_and_a_nan_loss_are_one_picture():
    """A persistent NaN out of a calm curve is NaN inputs or one batch's 0/0 loss; the curve cannot tell them
    apart (the gpu-runs accept both), so both are ranked — NaN inputs first when the config rules float16 out —
    and nothing else ranks above them."""
    ds = analyze(case_nan_in_input()).diagnoses
    assert [d.cause for d in ds[:2]] == ["nan_in_input", "loss_nan_from_data"]
    assert ds[1].confidence < ds[0].confidence


@pytest.mark.parametrize("cause,must_not", [
    ("bad_data_batch", case_nan_in_input), ("nan_in_input", case_fp16_precision),
    ("nan_in_input", case_loss_nan_from_data),
    ("capacity_too_small", case_lr_too_high), ("gradient_explosion", case_bad_data_batch),
    ("label_misalignment", case_capacity_too_small), ("lr_schedule_bug", case_missing_warmup),
    ("fp16_precision", case_nan_in_input), ("batchnorm_instability", case_bad_data_batch),
    ("over_regularization", case_overfitting_small_data), ("overfitting_small_data", case_label_misalignment),
])
def test_rule_does_not_trigger_on_a_lookalike(cause, must_not):
    found = causes(must_not())
    assert cause not in found or found[cause].confidence < 0.3, (cause, found[cause].confidence)


@pytest.mark.parametrize("cause", ["bad_data_batch", "nan_in_input", "bad_init", "lr_schedule_bug", "data_order",
                                   "label_misalignment", "overfitting_small_data", "lr_too_low", "fp16_precision",
                                   "gradient_explosion", "loss_nan_from_data"])
def test_the_cause_ranks_first_on_its_own_case(cause):
    assert top(CASES[cause]()) == cause


def test_config_patch_uses_the_users_key_names():
    run = case_lr_too_high()
    run.meta["config_raw"] = {"learning_rate": 6e-3, "grad_clip": 0.0}
    d = causes(run)["lr_too_high"]
    assert d.config_patch["learning_rate"] == {"from": 6e-3, "to": 3e-3}
    assert d.config_patch["grad_clip"] == {"from": 0.0, "to": 1.0}
    assert "config: learning_rate: 0.006 -> 0.003" in d.fixes


def test_warmup_patch_is_two_percent_of_the_steps():
    run = case_missing_warmup()
    run.config.update(max_steps=1500)
    run.meta["config_raw"] = {"warmup_iters": 0, "max_iters": 1500}
    d = causes(run)["missing_warmup"]
    assert d.config_patch["warmup_iters"] == {"from": 0, "to": 30}


def test_fp16_patch_moves_to_bfloat16():
    run = case_fp16_precision()
    run.meta["config_raw"] = {"dtype": "float16"}
    assert causes(run)["fp16_precision"].config_patch["dtype"] == {"from": "float16", "to": "bfloat16"}


def test_adding_a_rule_does_not_touch_the_engine():
    from lossdx.diagnosis import Hit, Rule

    extra = Rule("ALWAYS_HARDWARE", "hardware_fault", "test", lambda ev: Hit(0.4, ["a", "b"], ["c"]))
    run, _ = make_curve("healthy", n=500, seed=0)
    from lossdx.diagnosis import diagnose
    from lossdx.facts import compute_facts

    got = diagnose(run, [], compute_facts(run), rules=(*DEFAULT_RULES, extra))
    assert [d.cause for d in got] == ["hardware_fault"] and got[0].rule == "ALWAYS_HARDWARE"


def test_unknown_cause_is_refused():
    from lossdx.diagnosis import Rule

    with pytest.raises(ValueError):
        Rule("X", "cosmic_rays", "", lambda ev: None)


def test_a_loss_scale_that_never_moved_is_no_collapse():
    """A loss scale logged as 1.0 throughout (Megatron under bf16/fp32 prints it) did not collapse: no evidence
    string may say so, and it alone does not make a NaN float16's."""
    run = make_curve("nan", n=2000, seed=0)[0]
    n = len(run.series["train/loss"])
    _set(run, "train/loss_scale", run.series["train/loss"].steps, np.ones(n))
    ds = analyze(run).diagnoses
    assert not any("collapsed" in e for d in ds for e in d.evidence)
    assert ds[0].cause != "fp16_precision"
    # a scale that did fall to 1 still counts
    scale = np.full(n, 65536.0)
    scale[-300:] = 1.0
    _set(run, "train/loss_scale", run.series["train/loss"].steps, scale)
    fp16 = causes(run)["fp16_precision"]
    assert any("collapsed from 6.554e+04 to 1" in e for e in fp16.evidence)


def test_a_nan_whose_onset_the_log_does_not_show_is_no_evidence_for_the_data():
    """A calm curve logged every 1000 steps, then NaN for good: the 999 unlogged steps before the NaN could hold a
    blow-up, so "calm before it" is no witness for the data; with the dtype unknown float16 overflow leads, every
    cause at low confidence. The same NaN logged every 10 steps keeps the data first."""
    def sparse_nan(every):
        run, _ = make_curve("healthy", n=12_000 // every, seed=0)
        steps = np.arange(len(run.series["train/loss"])) * every
        loss = run.series["train/loss"].values.copy()
        loss[7000 // every:] = np.nan
        run.series = {"train/loss": Series("train/loss", steps, loss)}
        run.config.clear()
        run.config.update(vocab_size=6400)  # a language model; the dtype unknown
        return run

    ds = analyze(sparse_nan(1000)).diagnoses
    assert ds[0].cause == "fp16_precision" and all(d.confidence <= 0.3 for d in ds)
    data = next(d for d in ds if d.cause == "loss_nan_from_data")
    assert any("999 steps between the last finite loss (step 6000) and the NaN are not in the log" in e
               for e in data.evidence)
    assert not any("no spike, divergence or gradient growth before it" in e for d in ds for e in d.evidence)
    assert analyze(sparse_nan(10)).diagnoses[0].cause == "loss_nan_from_data"


def test_a_creeping_loss_is_told_as_chunk_levels_not_as_a_rise_from_a_later_best():
    """The creep's levels are chunk medians: its 'best' step lies inside the log, after its first step. The evidence
    must not say the loss rose from a best at a later step 'from' an earlier one."""
    rng = np.random.default_rng(0)
    steps = np.arange(140_000, 197_000, 50)
    loss = 3.68 * (1 + 0.035 * (steps - steps[0]) / (steps[-1] - steps[0])) + 0.03 * rng.standard_normal(steps.size)
    run, _ = make_curve("healthy", n=10, seed=0)
    run.series = {"train/loss": Series("train/loss", steps, loss)}
    run.config.clear()
    lr = causes(run)["lr_too_high"]
    assert lr.evidence[0].startswith("loss crept up from ") and "first tenth, around step 14" in lr.evidence[0]
    assert not any("from step 140000" in e for e in lr.evidence)


def test_a_nan_early_in_an_excerpt_is_not_a_nan_at_the_start_of_training():
    """NaN from a run's first steps is precision or init; NaN at the 7th point of an excerpt from mid-run is not:
    the calm curve before it still points at the data."""
    run = make_curve("nan", n=2000, seed=0)[0]
    run.config.update(dtype="bfloat16")
    loss = run.series["train/loss"]
    keep = loss.steps >= 1393  # an excerpt: 7 calm points, then the NaN of step 1400 to the end
    run.series = {"train/loss": Series("train/loss", loss.steps[keep] - 1393, loss.values[keep])}
    run.meta["steps_are_record_numbers"] = True
    run.series["train/epoch"] = Series("train/epoch", run.series["train/loss"].steps, np.full(keep.sum(), 3.0))
    assert top(run) in ("loss_nan_from_data", "nan_in_input")


def test_validation_turning_where_the_training_loss_jumped_is_not_memorisation():
    """Three epochs, held-out loss rising from step 1000 on: with a smooth training curve that is memorisation; when
    the training loss itself jumped at that step (new data, a blow-up) the jump explains the turn better."""
    def run_with(jump):
        run, _ = make_curve("healthy", n=2000, seed=0)
        steps = run.series["train/loss"].steps
        train = run.series["train/loss"].values.copy()
        if jump:
            train[1000:] += np.where(steps[1000:] < 1010, 4.0, 0.8)
        vsteps = np.arange(0, 2000, 100)
        val = np.where(vsteps <= 1000, 3.0 - vsteps / 1000, 2.0 + (vsteps - 1000) / 1000)
        run.series = {"train/loss": Series("train/loss", steps, train), "val/loss": Series("val/loss", vsteps, val),
                      "train/epoch": Series("train/epoch", steps, 3.0 * steps / 2000)}
        run.config.clear()
        return causes(run).get("overfitting_small_data")

    smooth = run_with(False)
    assert smooth is not None and smooth.confidence >= 0.9
    jolted = run_with(True)
    assert jolted is None or (jolted.confidence <= 0.5 and any("jumped" in e for e in jolted.evidence))


def test_a_decay_too_strong_for_its_lr_is_lowered_never_raised():
    """weight_decay 0.05 at SGD lr 1 shrinks every weight by 5 % per step (the config check's lr x weight_decay
    reading): the patch lowers it to the usual shrink at that LR instead of 'weight decay 0.1' (a raise), and the
    held-out loss frozen at ln 10 reads it too (the same norm in both rules)."""
    from lossdx.model import Run

    ts, vs = np.arange(0, 400, 10), np.arange(0, 400, 50)
    run = Run({"train/loss": Series("train/loss", ts, 2.3026 + 0.001 * np.sin(np.arange(ts.size))),
               "val/loss": Series("val/loss", vs, 2.3026 + 0.0005 * np.sin(np.arange(vs.size)))},
              config={"optimizer": "sgd", "lr": 1.0, "weight_decay": 0.05, "n_classes": 10})
    run.meta["config_raw"] = {"optimizer": "sgd", "lr": 1.0, "weight_decay": 0.05, "num_classes": 10}
    d = causes(run)["over_regularization"]
    assert "COLLAPSED_UNIFORM" in d.rule
    change = d.config_patch["weight_decay"]
    assert change["from"] == 0.05 and change["to"] < 0.05 and 1.0 * change["to"] <= 1e-4 * 1.01, change


def test_lr_too_low_never_raises_an_lr_to_a_lower_value():
    """A slow descent with clipping on every step at an LR 2x the top of its norm: lr_too_low said 'raise the learning
    rate: 0.006 -> 0.003 (x0' at 0.7. Above its norm an LR takes no small steps: low confidence, no such 'raise'."""
    run, _ = make_curve("slow", n=2000, seed=0)
    _scale_lr(run, 6e-3)
    run.config.update(grad_clip=1.0)
    g = run.series["train/grad_norm"]
    _set(run, "train/grad_norm", g.steps, np.full(g.steps.size, 5.0))
    d = causes(run)["lr_too_low"]
    assert d.confidence <= 0.3
    assert not [f for f in d.fixes if f.startswith("raise the learning rate: 0.006 -> 0.003")], d.fixes
    assert not any(c["to"] < c["from"] for k, c in d.config_patch.items() if k == "lr")


def test_an_inf_in_the_lr_trace_is_no_peak_and_no_evidence():
    """A logged LR holding inf (an overflowed scheduler) must not become 'LR at the start of the rise: inf (nan% of
    its peak)' nor the peak LR."""
    import math as _math

    import numpy as _np

    from lossdx.analyze import analyze
    from lossdx.model import Run, Series

    steps = _np.arange(0, 400, dtype=_np.int64)
    loss = _np.where(steps < 200, 3.0 - steps * 0.005, 2.0 + (steps - 200) * 0.02)
    lr = _np.full(steps.size, 3e-4)
    lr[180:] = _np.inf
    run = Run({"train/loss": Series("train/loss", steps, loss), "train/lr": Series("train/lr", steps, lr)})
    rep = analyze(run)
    for d in rep.diagnoses:
        for e in d.evidence:
            assert "inf" not in e and "nan%" not in e, e
    assert rep.diagnoses, "a divergence gets a ranked cause"
    assert _math.isfinite(rep.run["context"]["peak_lr"])


def test_a_plateau_of_a_model_that_saw_fewer_tokens_than_its_size_needs_is_no_capacity_verdict():
    """The case above with a batch of 256 tokens: 2000 steps are ~0.5M tokens for a ~0.4M-parameter model, about one
    token per parameter, far under the ~20 of a compute-optimal run. Its size does not explain the stall (a bigger
    model would be trained even less), so the evidence must not say "the model, not the data, is the limit"."""
    run = case_capacity_too_small()
    run.config.update(tokens_per_step=256)
    d = causes(run).get("capacity_too_small")
    assert d is None or (d.confidence <= 0.3 and not any("the model, not the data" in e for e in d.evidence))
    assert d is None or any("the data seen, not the size" in e for e in d.evidence)
    assert causes(case_capacity_too_small())["capacity_too_small"].confidence >= 0.55


def _epoch_log_nan_from_the_start(lr=1e-3, dtype=None):
    """A per-epoch CSV of 40 epochs (one row per epoch, 11 steps each) whose train and validation losses are NaN
    from the first row on: a NaN feature in one training row (every epoch visits it)."""
    from lossdx.model import Run

    steps = np.arange(11, 441, 11)
    nan = np.full(steps.size, np.nan)
    cfg = {"lr": lr, "optimizer": "adam", "batch_size": 32, "epochs": 40, "hidden": 32, "layers": 2}
    if dtype:
        cfg["dtype"] = dtype
    run = Run({"train/loss": Series("train/loss", steps, nan), "val/loss": Series("val/loss", steps, nan.copy()),
               "train/epoch": Series("train/epoch", steps, np.arange(1.0, 41.0))}, config=dict(cfg))
    run.meta["config_raw"] = dict(cfg)
    return run


def test_an_epoch_log_nan_from_its_first_row_reads_bad_input_rows_first_with_its_rivals_said():
    """No finite point: the curve cannot show a blow-up, but the first row already averages a whole pass over the
    data, which a NaN row always poisons. At a usual LR in a config without any float16 option the data comes first
    (at low-to-middle confidence, with what would decide it); with float16 set, or an LR far above its norm, it is
    no longer the first reading."""
    ds = analyze(_epoch_log_nan_from_the_start()).diagnoses
    assert ds[0].cause == "nan_in_input" and ds[0].confidence <= 0.5
    assert any("blow-up inside the first epoch" in e for e in ds[0].evidence) and ds[0].checks
    fp16 = causes(_epoch_log_nan_from_the_start(dtype="float16")).get("nan_in_input")
    assert fp16 is None or fp16.confidence <= 0.2
    hot = causes(_epoch_log_nan_from_the_start(lr=0.3)).get("nan_in_input")
    assert hot is None or hot.confidence <= 0.25


def test_an_epoch_log_nan_from_its_first_row_does_not_claim_float32_over_an_amp_switch():
    """A config with use_amp: true names reduced precision in a way the dtype reading does not map: the evidence
    must not say 'no float16/AMP option: float32 is the default' (nor gain confidence from it)."""
    plain = causes(_epoch_log_nan_from_the_start())["nan_in_input"]
    assert any("float32 is the default" in e for e in plain.evidence)
    run = _epoch_log_nan_from_the_start()
    run.meta["config_raw"]["use_amp"] = True
    amp = causes(run)["nan_in_input"]
    assert not any("float32" in e for e in amp.evidence), amp.evidence
    assert amp.confidence < plain.confidence


def _short_sgd_log(weight_decay, tail):
    """27 window means of a char-level LSTM at SGD lr 20 (word_language_model's log every 20 batches) from the start
    of training: the loss falls 4.5 -> 3.85 in two points, then follows ``tail``."""
    from lossdx.model import Run

    rng = np.random.default_rng(5)
    steps = np.arange(20, 560, 20)
    loss = np.concatenate([[4.51, 3.85], tail(np.arange(steps.size - 2)) + rng.normal(0, 0.04, steps.size - 2)])
    cfg = {"lr": 20.0, "weight_decay": weight_decay, "optimizer": "sgd", "model": "LSTM", "epochs": 3}
    run = Run({"train/loss": Series("train/loss", steps, loss),
               "train/lr": Series("train/lr", steps, np.full(steps.size, 20.0))}, config=dict(cfg))
    run.meta["config_raw"] = dict(cfg)
    return run


def test_a_short_log_that_stops_improving_early_backs_a_decay_that_removes_a_tenth_of_each_weight_per_step():
    """27 points are too few for the plateau's smoothing; a robust fit over the last two-thirds still shows the loss
    not falling at all (an info plateau: no yardstick for its level). With lr x weight_decay = 10 % per step that
    stall is the decay holding the weights back: the config advice becomes a curve-backed cause. The same stall with
    a usual decay stays healthy, and the same decay on a curve still falling stays advice."""
    stalled = analyze(_short_sgd_log(0.005, lambda i: 3.83 + 0.002 * i))
    assert stalled.verdict != "healthy" and stalled.diagnoses[0].cause == "over_regularization"
    assert any("stopped improving" in e for e in stalled.diagnoses[0].evidence)
    assert analyze(_short_sgd_log(1e-6, lambda i: 3.83 + 0.002 * i)).verdict == "healthy"
    falling = causes(_short_sgd_log(0.005, lambda i: 3.8 - 0.05 * i))
    assert falling["over_regularization"].confidence <= 0.3
    # an LR 10x its norm makes lr x decay large by itself: the stall is the LR's to explain first
    hot = _short_sgd_log(0.005, lambda i: 3.83 + 0.002 * i)
    hot.series["train/lr"].values[:] = 300.0
    hot.config["lr"] = 300.0
    assert causes(hot)["over_regularization"].confidence <= 0.3


def test_a_four_unit_lstm_whose_loss_still_falls_gets_the_width_as_advice():
    """27 window means still falling slowly (no stall, no slow-descent yardstick: the first point is not the
    untrained loss): the width of 4 is advice (<= 0.3, verdict unchanged) with what would decide it; a 64-wide
    model gets none."""
    def run_of(width):
        run = _short_sgd_log(0.0, lambda i: 3.0 * np.exp(-i / 60.0))
        run.config.update(n_embd=width, model_type="LSTM")
        run.meta["config_raw"].update(nhid=width)
        return run

    rep = analyze(run_of(4))
    d = {x.cause: x for x in rep.diagnoses}["capacity_too_small"]
    assert rep.verdict == "healthy" and d.confidence <= 0.3 and d.checks
    assert "capacity_too_small" not in causes(run_of(64))


def test_the_narrow_width_advice_says_the_loss_falls_only_where_it_does():
    """With no stall in the findings, a narrow LM's width is advice; 'the loss is still falling' is said of a loss
    lower over its last third than its middle one, not of one that climbs (the rule once said it of any curve)."""
    from lossdx.diagnosis.engine import Evidence
    from lossdx.diagnosis.rules.generalization import capacity_too_small
    from lossdx.model import Run

    steps = np.arange(0, 2000, 10)
    cfg = {"vocab_size": 65, "n_embd": 16, "n_layer": 2, "lr": 1e-3, "optimizer": "adamw"}
    said = {}
    for name, loss in (("falling", 1.5 + 2.7 * np.exp(-steps / 300)), ("climbing", 2.0 + steps / 1000)):
        run = Run({"train/loss": Series("train/loss", steps, loss)}, config=dict(cfg))
        run.meta["config_raw"] = dict(cfg)
        run.source["format"] = "nanogpt"
        hit = capacity_too_small(Evidence(run, [], {}))
        assert hit is not None and not hit.curve_backed
        said[name] = " ".join(hit.evidence)
    assert "still falling" in said["falling"]
    assert "still falling" not in said["climbing"], said["climbing"]


def test_capacity_says_the_tokens_per_parameter_it_computed():
    """100,000 tokens for 500,000 parameters is 0.2 tokens per parameter, which the evidence said as '0'."""
    from lossdx.diagnosis.engine import Evidence
    from lossdx.diagnosis.rules.generalization import capacity_too_small
    from lossdx.findings import Finding
    from lossdx.model import Run

    steps = np.arange(0, 1000, 10)
    run = Run({"train/loss": Series("train/loss", steps, 2.0 + 2.0 * np.exp(-steps / 100))},
              config={"n_layer": 2, "n_embd": 64})
    plateau = Finding("plateau", "train/loss", 500, 990, "warning", "train/loss stopped improving at ~2",
                      {"level": 2.0, "flat_since": 500, "flat_share": 0.5})
    hit = capacity_too_small(Evidence(run, [plateau], {"n_params": 500_000, "tokens_seen": 100_000,
                                                       "train_loss_first": 4.0}))
    assert hit is not None and any("(0.2 tokens per parameter" in e for e in hit.evidence), hit.evidence
