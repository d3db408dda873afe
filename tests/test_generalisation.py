"""Issue 7: right on the logs people actually have — one test per phenomenon seen on other model families and
real logs (each failed before the run context, the ranking by evidence and the short-log checks existed)."""

import math
import re

import numpy as np
import pytest

import lossdx
from lossdx.analyze import analyze, analyze_path
from lossdx.model import Run, Series
from lossdx.testing.synthetic import make_curve

from .conftest import GPU_RUNS, REALCORPUS, VISION_RUNS, need


def _run(series: dict, config: dict | None = None, fmt: str = "") -> Run:
    run = Run({k: Series(k, np.asarray(s, dtype=np.int64), np.asarray(v, dtype=float)) for k, (s, v) in series.items()},
              config=dict(config or {}))
    run.source["format"] = fmt
    return run


def _serious(rep):
    return [f for f in rep.findings if f.severity in ("warning", "error")]


# (1) without a config the curve alone carries the diagnosis ---------------------------------------------------

def test_broken_init_is_seen_without_a_config():
    """First loss 74 and gradient norms of 2e5 are no healthy run, config or not."""
    rep = analyze_path(str(need(GPU_RUNS / "bad_init") / "train.log"), auto_config=False)
    assert rep.verdict == "problem"
    assert rep.diagnoses[0].cause == "bad_init"


def test_lr_too_low_is_seen_without_a_config():
    """The logged LR trace (peak 3e-6) and a curve that barely moves: lr_too_low from the log alone."""
    rep = analyze_path(str(need(GPU_RUNS / "lr_too_low") / "metrics.jsonl"), auto_config=False)
    assert rep.verdict != "healthy"
    assert rep.diagnoses[0].cause == "lr_too_low"


def test_read_then_analyze_uses_the_config_beside_the_log():
    """The README's `lossdx.analyze(lossdx.read(path))` must judge what `lossdx analyze path` judges."""
    path = str(need(GPU_RUNS / "tiny_model") / "metrics.jsonl")
    run = lossdx.read(path)
    assert run.config.get("vocab_size") == 8192
    assert [d.cause for d in lossdx.analyze(run).diagnoses] == [d.cause for d in analyze_path(path).diagnoses]


# (2) a config oddity the curve does not back is advice ------------------------------------------------------------

@pytest.mark.parametrize("optimizer,kind", [("adam", "lstm"), ("sgd", "lstm"), ("sgd", "gpt2")])
def test_no_warmup_on_a_healthy_curve_is_advice(optimizer, kind):
    run, _ = make_curve("no_warmup", n=2000, seed=0)
    run.config.update(optimizer=optimizer, model_type=kind, warmup_steps=0, schedule="cosine")
    if optimizer == "sgd":
        lr = run.series["train/lr"]
        run.series["train/lr"] = Series("train/lr", lr.steps, lr.values / lr.values.max() * 1.0)
        run.config["lr"] = 1.0
    rep = analyze(run)
    assert rep.verdict == "healthy", [f.message for f in _serious(rep)]
    assert all(d.confidence <= 0.3 for d in rep.diagnoses)


# (3) the strongest evidence wins ----------------------------------------------------------------------------------

@pytest.mark.parametrize("lr", [0.3, 1.0, 5.0])
def test_an_adam_lr_hundreds_of_times_too_high_ranks_first(lr):
    run, _ = make_curve("plateau", n=2000, seed=1)
    trace = run.series["train/lr"]
    run.series["train/lr"] = Series("train/lr", trace.steps, trace.values / trace.values.max() * lr)
    run.config.update(lr=lr, optimizer="adamw")
    steps = run.series["train/loss"].steps  # domain-like level shifts must not win over a 300x LR
    v = run.series["train/loss"].values.copy()
    v[600:] *= 1 + 0.15 * np.sign(np.sin(steps[600:] / 40.0))
    run.series["train/loss"] = Series("train/loss", steps, v)
    ds = analyze(run).diagnoses
    assert ds[0].cause == "lr_too_high", [(d.cause, d.confidence) for d in ds]
    assert "x the top of" in ds[0].evidence[0]


def test_a_finetune_memorising_its_data_is_overfitting_not_a_label_leak():
    """Train loss falls to ~0 while a validation loss that had improved rises: overfitting (whisper fine-tune)."""
    steps = np.arange(25, 5001, 25)
    train = 0.3 * np.exp(-steps / 400) + 1e-4
    ev = np.arange(500, 5001, 500)
    val = 0.40 - 0.08 * np.exp(-((ev - 1500) / 900.0) ** 2) + 0.00002 * np.maximum(ev - 1500, 0)
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (ev, val)}, fmt="hf_trainer_state"))
    causes = [d.cause for d in rep.diagnoses]
    assert causes and causes[0] == "overfitting_small_data", causes


def test_fp16_nans_the_loss_scaler_skipped_are_fp16_not_gradient_explosion():
    steps = np.arange(2000)
    rng = np.random.default_rng(0)
    loss = 2 + 7 / np.sqrt(1 + steps / 50) + 0.05 * rng.standard_normal(steps.size)
    grad = 1 + 0.1 * rng.standard_normal(steps.size)
    scale = np.full(steps.size, 65536.0)
    for s in (700, 1300):
        loss[s] = np.nan
        grad[s] = np.inf
        scale[s:] /= 2
    rep = analyze(_run({"train/loss": (steps, loss), "train/grad_norm": (steps, grad),
                        "train/loss_scale": (steps, scale)}, fmt="hf_trainer_state"))
    causes = [d.cause for d in rep.diagnoses]
    assert causes[0] == "fp16_precision", causes
    assert "gradient_explosion" not in causes


# (4) logs that do not start at step 0 ----------------------------------------------------------------------------

def test_an_excerpt_gets_no_start_of_training_judgements():
    run = lossdx.read(str(need(GPU_RUNS / "bad_init") / "metrics.jsonl"))
    for name, s in list(run.series.items()):
        keep = s.steps >= 900
        run.series[name] = Series(name, s.steps[keep], s.values[keep])
    rep = analyze(run)
    assert rep.run["context"]["covers_start"] is False
    kinds = {f.kind for f in _serious(rep)}
    assert "init_loss" not in kinds and "lr_schedule" not in kinds
    assert not any("start of training" in f.message for f in rep.findings if f.kind != "log_limit")
    assert any("starts at step" in f.message for f in rep.findings if f.kind == "log_limit")


def test_a_first_point_at_full_lr_is_not_the_initial_loss():
    """Logged first at step 10 with LR 1.0 (no warmup): the loss there is already the blown-up one."""
    steps = np.arange(10, 1000, 10)
    loss = np.full(steps.size, 40.0) + np.linspace(0, 1, steps.size)
    lr = np.full(steps.size, 1.0)
    rep = analyze(_run({"train/loss": (steps, loss), "train/lr": (steps, lr)}, {"vocab_size": 50257}, "nanogpt"))
    assert rep.run["context"]["first_is_initial"] is False
    assert not [f for f in rep.findings if f.kind == "init_loss"]


# (5) noise judged with the batch size and logging style --------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_per_batch_losses_of_batch_size_one_are_not_spikes(seed):
    rng = np.random.default_rng(seed)
    steps = np.arange(3000)
    trend = 1.5 + 2.7 / np.sqrt(1 + steps / 50)
    loss = trend * rng.gamma(2.0, 0.5, steps.size)  # per-sample losses: skewed, heavy right tail
    rep = analyze(_run({"train/loss": (steps, loss)}, {"batch_size": 1, "optimizer": "adam", "model_type": "lstm"}))
    assert rep.run["context"]["heavy_tailed"] is True
    assert not {f.kind for f in _serious(rep)} & {"spike", "divergence", "instability"}, \
        [f.message for f in _serious(rep)]


# (6) train/val gap and classifiers ------------------------------------------------------------------------------

def test_train_far_below_validation_is_reported():
    steps = np.arange(0, 3000)
    train = 2.3 * np.exp(-steps / 300) + 0.01
    ev = np.arange(0, 3001, 300)
    val = np.maximum(2.3 * np.exp(-ev / 300), 0.8) + 0.02 * (ev > 1500)
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (ev, val)}))
    assert "overfitting" in {f.kind for f in _serious(rep)}


def test_a_classifier_stuck_at_ln_c_is_labels_that_do_not_pair():
    rng = np.random.default_rng(0)
    steps = np.arange(2000)
    loss = math.log(10) + 0.01 * rng.standard_normal(steps.size)
    rep = analyze(_run({"train/loss": (steps, loss), "train/acc": (steps, np.full(steps.size, 0.1))},
                       {"num_classes": 10, "lr": 1e-3, "optimizer": "adam"}))
    assert rep.diagnoses and rep.diagnoses[0].cause == "label_misalignment"
    assert any("ln(10)" in e or "10 classes" in e for e in rep.diagnoses[0].evidence), rep.diagnoses[0].evidence
    assert not any("vocabulary size unknown" in f.message for f in rep.findings)


# (7) every problem has a ranked list -----------------------------------------------------------------------------

def _reports():
    paths = []
    for base in (GPU_RUNS, VISION_RUNS):
        if base.exists():
            paths += sorted(p for p in base.glob("*/metrics.jsonl"))
    if REALCORPUS.exists():
        import json

        labels = json.loads((REALCORPUS / "LABELS.json").read_text())
        paths += [REALCORPUS / name for name in sorted(labels)]
    out = []
    for p in paths:
        try:
            out.append((p, analyze_path(str(p))))
        except lossdx.InputError:
            continue
    return out


@pytest.fixture(scope="module")
def reports():
    got = _reports()
    if not got:
        pytest.skip("../shared not available")
    return got


def test_every_problem_verdict_has_a_ranked_cause(reports):
    for path, rep in reports:
        if rep.verdict == "problem":
            assert rep.diagnoses, (str(path), [f.message for f in _serious(rep)])


# (8) too little data is no "healthy" ------------------------------------------------------------------------------

def test_an_eight_point_log_that_blows_up_is_flagged():
    steps = np.arange(8)
    loss = [1.4, 1.3, 1.5, 2.6, 4.0, 6.3, 8.1, 10.0]
    grad = [1.2, 1.1, 1.4, 0.9, 70.0, 1.3, 1.1, 1.2]
    rep = analyze(_run({"train/loss": (steps, loss), "train/grad_norm": (steps, grad)}))
    assert rep.verdict == "problem"
    assert {"divergence", "grad_norm"} <= {f.kind for f in _serious(rep)}
    assert rep.diagnoses


def test_a_log_mostly_not_understood_says_so():
    steps = np.arange(0, 200, 10)
    run = _run({"train/loss": (steps, 3 + 0.001 * steps)})
    run.meta.update(record_lines_seen=55, record_lines_read=1)
    rep = analyze(run)
    warn = [f for f in rep.findings if f.kind == "log_limit" and f.severity == "warning"]
    assert warn and "1 of 55" in warn[0].message and rep.verdict != "healthy"


# (9) evidence states only what was read --------------------------------------------------------------------------

_CONFIG_CLAIM = re.compile(r"config (\S+) = (\S+?)[,):]?(?:\s|$)")
_PERCENT = re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)%")


def test_evidence_is_true_to_the_run(reports):
    for path, rep in reports:
        cfg_read = bool(rep.source.get("config"))
        for d in rep.diagnoses:
            for e in d.evidence:
                where = (str(path), d.cause, e)
                assert "?" not in e.split(" ")[:3] and " ? " not in e, where
                for m in _CONFIG_CLAIM.finditer(e):
                    assert cfg_read, where  # "config x = y" only when a config was read
                if "only" in e:
                    for m in _PERCENT.finditer(e):
                        assert float(m.group(1)) >= 0, where  # "fell only -1631%" is no fall
                if "before coming down" in e:
                    spikes = [f for f in rep.findings if f.kind == "spike" and f.evidence.get("recovered")]
                    assert spikes, where
                if d.cause == "lr_too_high" and "the top of" in e:
                    ratio = float(re.search(r"is (\d+(?:\.\d+)?)x the top of", e).group(1))
                    assert ratio >= 1, where  # an LR below its norm is no evidence for "too high"
                for step in re.findall(r"at step (\d+)", e):
                    lo, hi = rep.run["steps"]
                    assert lo <= int(step) <= hi, where
                # what the held-out loss or the LR did is said only of a run that logged one
                metrics = set(rep.run.get("metrics", []))
                if any(p in e for p in ("held-out loss fell", "held-out loss falls", "validation rising alongside")):
                    assert any(m.startswith(("val/", "eval")) for m in metrics), (where, metrics)
                if any(p in e for p in ("an LR that did not rise", "while the LR stayed")):
                    assert "train/lr" in metrics, (where, metrics)
            # a fix or a config patch moves the value the way its cause says: never a 'raise' that lowers it
            for fix in d.fixes:
                m = re.search(r"\b(raise|lower|halve)\b[^:]*: ([-\d.e+]+) -> ([-\d.e+]+)", fix)
                if m:
                    old, new = float(m.group(2)), float(m.group(3))
                    assert (new > old) if m.group(1) == "raise" else (new < old), (str(path), d.cause, fix)
            for key, change in d.config_patch.items():
                old, new = change["from"], change["to"]
                if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (old, new)):
                    continue
                where = (str(path), d.cause, key, change)
                if d.cause == "lr_too_low" and "lr" in key.lower():
                    assert new > old, where
                if d.cause in ("lr_too_high", "over_regularization") and ("lr" in key.lower() or "decay" in key.lower()
                                                                          or "dropout" in key.lower()):
                    assert new < old, where


def test_a_loss_creeping_up_over_the_log_is_flagged():
    """A resumed run whose loss rises a little, chunk after chunk, with no single jump (schedule restarted at
    the peak LR): no healthy run does that."""
    rng = np.random.default_rng(0)
    steps = np.arange(140_000, 197_000, 50)
    loss = 3.68 * (1 + 0.035 * (steps - steps[0]) / (steps[-1] - steps[0])) + 0.03 * rng.standard_normal(steps.size)
    rep = analyze(_run({"train/loss": (steps, loss)}))
    creep = [f for f in _serious(rep) if f.kind == "divergence" and f.evidence.get("type") == "creep"]
    assert creep and rep.diagnoses
    flat = 3.68 + 0.03 * rng.standard_normal(steps.size)
    assert not [f for f in _serious(analyze(_run({"train/loss": (steps, flat)}))) if f.kind == "divergence"]


# (10) GPT / RNN families: what the curve shows, judged as that kind of run ----------------------------------------

def test_a_mid_run_spike_in_a_short_log_is_a_batch_not_an_early_blowup():
    """A 50-point nanoGPT log never builds a block baseline; a one-point jump from 2.3 to 7.9 half-way through, gone
    the next point, is a bad batch even though it tops the first loss 5.5: the model was no longer fresh."""
    rng = np.random.default_rng(0)
    steps = np.arange(0, 500, 10)
    loss = (2.2 + 3.3 * np.exp(-steps / 40.0)) * np.exp(rng.normal(0, 0.02, steps.size))
    loss[25] = 7.88
    rep = analyze(_run({"train/loss": (steps, loss)}, fmt="nanogpt"))
    (f,) = [f for f in _serious(rep) if f.kind == "spike"]
    assert not f.evidence["early"] and f.evidence["ratio"] > 3, f.message
    assert rep.diagnoses[0].cause == "bad_data_batch", [(d.cause, d.confidence) for d in rep.diagnoses]
    # the same rise while the loss is still near its start is the early blow-up of a too-high LR
    loss2 = 5.5 - 0.02 * np.arange(steps.size)
    loss2[4:8] = [6.0, 7.5, 7.0, 6.4]
    rep = analyze(_run({"train/loss": (steps, loss2)}, fmt="nanogpt"))
    assert [f for f in _serious(rep) if f.kind == "spike" and f.evidence["early"]]
    # and so is a per-step log whose loss fell fast in its first steps and blew up at step 12: still the start
    steps3 = np.arange(300)
    loss3 = 2.5 + 3.0 * np.exp(-steps3 / 4.0)
    loss3[12:20] = [6.5, 9.0, 8.0, 7.0, 6.5, 6.0, 5.5, 5.0]
    rep = analyze(_run({"train/loss": (steps3, loss3)}, fmt="jsonl"))
    assert [f for f in _serious(rep) if f.kind == "spike" and f.evidence["early"] and f.evidence["from_start"]]


def test_a_near_perfect_fit_wobbling_is_no_spike():
    """An excerpt whose train loss sits at ~1e-4 nats: a point at 0.015 is 150x its level and still gives the
    targets 98.5 % probability: no event (the first value of an excerpt is no scale to judge it against)."""
    rng = np.random.default_rng(0)
    steps = np.arange(150, 500, 10)
    loss = 0.005 * np.exp(-(steps - 150) / 60.0) + 1e-4 * rng.random(steps.size)
    loss[25] = 0.0153
    rep = analyze(_run({"train/loss": (steps, loss)}, fmt="nanogpt"))
    assert not [f for f in _serious(rep) if f.kind == "spike"], [f.message for f in _serious(rep)]
    assert "bad_data_batch" not in {d.cause for d in rep.diagnoses}


def _sgd_rnn_run(seed: int, blow_up: bool, climb: bool) -> Run:
    """A per-batch log of a small-batch RNN: heavy-tailed per-batch losses (exponential-like extremes)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(600)
    level = 2.5 + 3.0 * np.exp(-steps / 40.0)
    loss = level * (1 + 0.12 * rng.standard_normal(600) + 0.25 * rng.exponential(1.0, 600) * (rng.random(600) < 0.05))
    loss[0] = 5.56
    if blow_up:
        loss[2:12] = [22.0, 29.2, 14.5, 34.9, 14.5, 20.2, 16.5, 11.8, 22.3, 11.7]
    if climb:
        loss[590:597] = [2.47, 2.10, 2.64, 2.92, 4.0, 5.97, 3.35]
    return _run({"train/loss": (steps, loss), "train/lr": (steps, np.full(600, 20.0))}, fmt="jsonl")


def test_an_unclipped_rnn_blowing_up_at_the_start_is_seen_through_heavy_tails():
    """Per-batch losses of small batches are heavy-tailed, so single outliers are ordinary; a loss 6x its start
    in the first steps is beyond any batch's noise. And a later spike the loss climbed into over several steps
    built up through the updates: it is no bad batch."""
    rep = analyze(_sgd_rnn_run(0, blow_up=True, climb=True))
    assert rep.run["context"]["heavy_tailed"]
    assert [f for f in _serious(rep) if f.kind == "spike" and f.evidence["early"] and f.evidence["from_start"]]
    assert rep.diagnoses[0].cause in ("lr_too_high", "gradient_explosion"), [(d.cause, d.confidence) for d in rep.diagnoses]
    batch = [d for d in rep.diagnoses if d.cause == "bad_data_batch"]
    assert not batch or any("built up" in e for e in batch[0].evidence)
    # the same heavy-tailed run without the blow-up raises no early rise
    calm = analyze(_sgd_rnn_run(0, blow_up=False, climb=False))
    assert not [f for f in _serious(calm) if f.kind == "spike" and f.evidence["early"]]


def test_a_spike_the_loss_climbed_into_is_not_one_bad_batch():
    """One bad batch lifts one step's loss off its level; a loss that rises step after step into its peak was
    built up by the updates, and the bad-batch reading must say so and lose weight."""
    run, _ = make_curve("healthy", n=2000, seed=0)
    s = run.series["train/loss"]
    jump = s.values.copy()
    jump[1500] *= 2.5
    run.series["train/loss"] = Series("train/loss", s.steps, jump)
    one = next(d for d in analyze(run).diagnoses if d.cause == "bad_data_batch")
    climbed = s.values.copy()
    climbed[1496:1501] = climbed[1495] * np.array([1.1, 1.25, 1.45, 1.8, 2.5])
    run.series["train/loss"] = Series("train/loss", s.steps, climbed)
    built = next((d for d in analyze(run).diagnoses if d.cause == "bad_data_batch"), None)
    assert built is None or (built.confidence < one.confidence and any("built up" in e for e in built.evidence))


def test_a_run_that_ends_above_its_initial_loss_is_not_overfitting():
    """The loss blew up at the start and stayed at twice the untrained model's loss for three epochs; validation
    wobbles up after a minimum. A model that fits its training data worse than a uniform guess memorises nothing."""
    rng = np.random.default_rng(0)
    steps = np.arange(600)
    train = 11.0 + 0.6 * rng.standard_normal(600)
    train[:4] = [5.56, 7.1, 18.6, 28.9]
    vs = np.arange(49, 600, 50)
    val = np.array([16.4, 11.9, 12.0, 11.2, 10.9, 10.6, 10.4, 10.2, 10.9, 11.6, 11.7, 12.6])
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (vs, val),
                        "train/epoch": (steps, steps / 199.0)}, fmt="jsonl"))
    assert not [f for f in rep.findings if f.kind == "overfitting"], [f.message for f in rep.findings]
    assert rep.diagnoses[0].cause == "lr_too_high", [(d.cause, d.confidence) for d in rep.diagnoses]


def test_noise_and_gradients_growing_as_a_model_leaves_its_uniform_start_are_no_instability():
    """LR 100x too low: the loss creeps down from ln(256) = 5.53 to 5.2 in 600 steps. A near-uniform prediction
    scores every batch alike with tiny gradients, so the batch noise (x4) and the gradient norm (x1.6) grow as
    it starts to learn: a slow start, not an unstable optimizer."""
    rng = np.random.default_rng(0)
    steps = np.arange(600)
    drop = 0.33 * (steps / 600) ** 1.5
    loss = 5.533 - drop + (0.004 + 0.2 * drop) * rng.standard_normal(600)
    grad = (0.0045 + 0.008 * drop / 0.33) * np.exp(0.1 * rng.standard_normal(600))
    rep = analyze(_run({"train/loss": (steps, loss), "train/grad_norm": (steps, grad)}, fmt="jsonl"))
    assert not [f for f in _serious(rep) if f.kind == "instability"], [f.message for f in _serious(rep)]
    assert rep.diagnoses and rep.diagnoses[0].cause == "lr_too_low", [(d.cause, d.confidence) for d in rep.diagnoses]


def test_a_jump_at_an_epoch_boundary_that_is_learned_down_is_data_order():
    """Unshuffled data whose next pass starts on another domain: at the epoch boundary the loss jumps 4.5x (the
    model is confidently wrong on the new data) and then falls again as it learns it. An excerpt with no start:
    no warmup, no initial loss, only the jump, the epoch counter and the fresh descent."""
    rng = np.random.default_rng(0)
    steps = np.arange(151, 598)
    epoch = steps / 199.0
    loss = np.where(steps < 399, 2.4 * np.exp(-(steps - 151) / 200.0),
                    2.05 + 4.0 * np.exp(-(steps - 399) / 5.0)) * np.exp(0.08 * rng.standard_normal(steps.size))
    rep = analyze(_run({"train/loss": (steps, loss), "train/epoch": (steps, epoch)}, fmt="jsonl"))
    assert rep.diagnoses[0].cause == "data_order", [(d.cause, d.confidence, d.evidence) for d in rep.diagnoses]
    assert any("epoch counter passes 2" in e for e in rep.diagnoses[0].evidence)


def test_a_plateau_of_a_four_unit_rnn_language_model_is_capacity():
    """No vocabulary in the config, so no parameter count; the hidden width of 4 alone says the model cannot rank
    the characters it must predict, and the stall is the model's size."""
    rng = np.random.default_rng(0)
    steps = np.arange(600)
    loss = (2.7 + 2.9 * np.exp(-steps / 25.0)) * np.exp(0.06 * rng.standard_normal(600))
    cfg = {"model_type": "LSTM", "n_layer": 1, "n_embd": 4, "lr": 20.0, "optimizer": "sgd"}
    rep = analyze(_run({"train/loss": (steps, loss)}, cfg, fmt="jsonl"))
    assert rep.run["context"]["kind"] == "rnn_lm"
    assert rep.diagnoses and rep.diagnoses[0].cause == "capacity_too_small", \
        [(d.cause, d.confidence) for d in rep.diagnoses]
    cfg["n_embd"] = 256  # a normal width: no capacity claim from the width
    rep = analyze(_run({"train/loss": (steps, loss)}, cfg, fmt="jsonl"))
    assert not any(d.cause == "capacity_too_small" and d.confidence >= 0.5 for d in rep.diagnoses)


def test_an_excerpt_opening_at_zero_train_loss_with_held_out_loss_far_above_is_a_leak():
    """A mid-run excerpt of a language model: train loss ~0.003 from its first line on, validation 8.8 -> 12.4
    and never better. Memorising natural text to ~0 takes many epochs of a small dataset the log does not
    show; targets the model can copy explain it without that. A memorising excerpt (train 1.6 -> 0.7) is not."""
    rng = np.random.default_rng(0)
    steps = np.arange(150, 500, 10)
    train = 0.005 * np.exp(-(steps - 150) / 80.0) * np.exp(0.3 * rng.standard_normal(steps.size))
    vs = np.arange(150, 500, 50)
    val = np.array([8.79, 9.2, 10.65, 10.7, 11.06, 12.33, 12.24])
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (vs, val)}, fmt="nanogpt"))
    assert rep.diagnoses[0].cause == "label_misalignment", [(d.cause, d.confidence) for d in rep.diagnoses]
    assert rep.diagnoses[0].confidence <= 0.7  # the fall to ~0 is not in the excerpt: a leak, less surely
    memorising = 1.6 * np.exp(-(steps - 150) / 400.0)
    rep = analyze(_run({"train/loss": (steps, memorising), "val/loss": (vs, val / 2.5)}, fmt="nanogpt"))
    assert "label_misalignment" not in {d.cause for d in rep.diagnoses[:1]}


# HF output directories and console logs without step numbers ------------------------------------------------------

def _hf_console_dir(tmp_path, logging_steps: int = 10, lr: float = 5e-2, warmup: int = 0):
    import json

    lines = []
    for k in range(30):
        loss = 3.5 * math.exp(-k / 8) + 2.0
        lines.append(str({"loss": f"{loss:.4g}", "grad_norm": "1.0", "learning_rate": f"{lr * (1 - k / 30):.4g}",
                          "epoch": f"{(k + 1) * 0.0847:.4g}"}))
        if k % 5 == 4:
            lines.append(str({"eval_loss": f"{loss + 0.1:.4g}", "eval_runtime": "0.5", "epoch": f"{(k + 1) * 0.0847:.4g}"}))
    (tmp_path / "train.log").write_text("\n".join(lines) + "\n")
    (tmp_path / "training_args.json").write_text(json.dumps(
        {"learning_rate": lr, "warmup_steps": warmup, "logging_steps": logging_steps, "optim": "adamw_torch",
         "max_steps": 30 * logging_steps, "per_device_train_batch_size": 8}))
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 256, "n_layer": 2, "n_embd": 64,
         "n_head": 4}))
    return str(tmp_path / "train.log")


def test_console_records_without_steps_get_the_steps_of_logging_steps(tmp_path):
    """An HF console log prints no step: record k is step (k + 1) x logging_steps when the Trainer's arguments say
    it (evidence must quote steps, not record numbers); both halves of an HF output directory's config are read."""
    run = lossdx.read(_hf_console_dir(tmp_path, logging_steps=10))
    assert list(run.series["train/loss"].steps[:3]) == [10, 20, 30]
    assert list(run.series["val/loss"].steps[:2]) == [50, 100]
    assert run.meta["log_window"] == 10
    assert run.config["vocab_size"] == 256 and run.config["lr"] == 5e-2  # config.json + training_args.json
    assert any("logging_steps" in n for n in run.meta["notes"])


def test_console_records_without_steps_or_config_say_they_are_records(tmp_path):
    from lossdx.readers import read

    run = read(_hf_console_dir(tmp_path))  # the reader alone: no config attached
    assert list(run.series["train/loss"].steps[:2]) == [0, 1]
    assert run.meta["step_unit"] == "record"
    assert any("no step numbers" in n for n in run.meta["notes"])


def test_an_lr_far_above_its_norm_is_advised_before_warmup(tmp_path):
    """No warmup hurts through the size of the first steps: with a peak LR 10x the usual and a calm curve (an HF
    run whose first logged point is at step 10), lowering the LR is the first advice, warmup after it."""
    rep = analyze_path(_hf_console_dir(tmp_path, lr=5e-2, warmup=0))
    causes = [d.cause for d in rep.diagnoses]
    assert causes[0] == "lr_too_high", [(d.cause, d.confidence) for d in rep.diagnoses]
    assert "missing_warmup" in causes[1:]
    assert all(d.confidence <= 0.3 for d in rep.diagnoses)


def test_a_small_classifier_pinned_at_ln_c_from_its_first_point_is_labels_that_do_not_pair():
    """A model of 86k parameters is small, but even a small model beats a uniform guess over 4 classes when the
    labels pair with the inputs: a loss at ln 4 from the first point to the last, at a usual LR, is the labels."""
    rng = np.random.default_rng(1)
    steps = np.arange(5, 305, 5)
    loss = math.log(4) + 0.003 * rng.standard_normal(steps.size)
    lr = 5e-4 * np.minimum(1.0, steps / 30) * (1 - steps / 310)
    rep = analyze(_run({"train/loss": (steps, loss), "train/lr": (steps, lr)},
                       {"num_classes": 4, "n_classes": 4, "lr": 5e-4, "optimizer": "adamw", "n_params": 85_632}))
    assert rep.diagnoses and rep.diagnoses[0].cause == "label_misalignment", rep.diagnoses


def test_a_nan_after_ten_calm_batches_is_the_data_not_the_very_start():
    """Ten finite per-batch losses around 1.0 (noisy: 0.75-1.45), then NaN to the end: the model was fine for ten
    updates, so this is no NaN from the very start (init, precision); the data brought it in."""
    rng = np.random.default_rng(2)
    steps = np.arange(480)
    loss = np.full(steps.size, np.nan)
    loss[:10] = 1.0 + 0.2 * rng.standard_normal(10)
    loss[4] = 1.45
    rep = analyze(_run({"train/loss": (steps, loss)}, {"optimizer": "adam", "lr": 1e-3}))
    assert rep.diagnoses and rep.diagnoses[0].cause in ("nan_in_input", "loss_nan_from_data"), rep.diagnoses[:3]
    assert not [f for f in rep.findings if f.kind == "spike" and f.severity != "info"]


def test_a_training_loss_held_up_by_dropout_is_not_the_level_the_model_reached():
    """A byte-level language model trained at batch size 2 with dropout, logged every step: the per-batch training
    loss is flat at ~2.7 from step 75 on (above 0.45 ln 256 = 2.5, "stuck high" for a from-scratch model), while the
    evaluations, in eval mode without dropout, fall 2.74 -> 2.28 -> 2.23. The model reached 2.2-2.3: no stall far
    above what it should reach. With the evaluations as high as the training loss it is one."""
    rng = np.random.default_rng(0)
    steps = np.arange(300)
    level = 2.68 + 2.8 * np.exp(-steps / 25.0)
    loss = level * np.exp(0.17 * rng.standard_normal(steps.size))
    vs = np.array([0, 100, 200, 299])
    cfg = {"vocab_size": 256, "n_layer": 2, "n_embd": 64, "learning_rate": 1e-3, "batch_size": 2, "beta1": 0.9}
    lower = _run({"train/loss": (steps, loss), "val/loss": (vs, [5.46, 2.74, 2.28, 2.23])}, cfg, fmt="jsonl")
    rep = analyze(lower)
    assert not [f for f in rep.findings if f.kind == "plateau" and f.severity != "info"], \
        [(f.kind, f.severity, f.message) for f in rep.findings]
    assert rep.verdict == "healthy"
    high = _run({"train/loss": (steps, loss), "val/loss": (vs, [5.46, 2.95, 2.92, 2.94])}, cfg, fmt="jsonl")
    assert [f for f in analyze(high).findings if f.kind == "plateau" and f.severity != "info"]


def test_an_excerpt_of_a_noisy_per_step_log_has_no_early_spikes():
    """A pasted excerpt (steps 120-299) of a batch-size-2 language model logged every step: one point scatters by
    ~17 %, and the excerpt's first point is one low draw of that noise. Rises of 20-50 % above it are the noise,
    not an early blow-up; too few points (180) to judge how heavy the tails are, enough to measure the noise."""
    rng = np.random.default_rng(1)
    steps = np.arange(120, 300)
    loss = 2.75 * np.exp(0.17 * rng.standard_normal(steps.size))
    loss[0] = 2.47
    rep = analyze(_run({"train/loss": (steps, loss)}, fmt="jsonl"))
    assert rep.run["context"]["rel_noise"] > 0.1
    assert not [f for f in rep.findings if f.kind == "spike" and f.severity != "info"], \
        [(f.severity, f.message) for f in rep.findings if f.kind == "spike"]
    assert rep.verdict == "healthy"


def test_a_sparse_log_that_barely_moved_is_a_plateau():
    """nanoGPT stdout every 20 steps over 400 steps (20 train points) and an evaluation every 50 (9 points): the
    loss went 5.49 -> 5.31 (ln 256 = 5.55) and the last four evaluations sit within 0.2 % of each other. The last
    third holds only three evaluations, too few for a slope; the last four, all in the second half, are enough."""
    steps = np.arange(0, 400, 20)
    train = 5.30 + 0.19 * np.exp(-steps / 120.0) + 0.02 * np.sin(steps)
    vs = np.array([0, 50, 100, 150, 200, 250, 300, 350, 399])
    val = [5.491, 5.439, 5.379, 5.336, 5.345, 5.301, 5.305, 5.308, 5.309]
    cfg = {"vocab_size": 256, "n_layer": 2, "n_embd": 64, "learning_rate": 3e-6, "beta1": 0.9}
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (vs, val)}, cfg, fmt="nanogpt"))
    assert [f for f in rep.findings if f.kind == "plateau" and f.severity != "info"], \
        [(f.kind, f.severity, f.message) for f in rep.findings]
    assert rep.diagnoses[0].cause == "lr_too_low", [(d.cause, d.confidence) for d in rep.diagnoses]


def test_per_sample_losses_of_a_batch_one_classifier_are_no_spikes():
    """A classifier trained at batch size 1 with every step logged: each point is one sample's cross-entropy. Near
    convergence most samples cost ~0.05 and a misclassified one several nats (softplus of a wide margin), so the
    spread is as large as the level itself and one-step jumps of 10-60x are the distribution, not bad batches."""
    rng = np.random.default_rng(5)
    steps = np.arange(2800)
    grown = 1 - np.exp(-steps / 600.0)
    # the margin of the right class (0 untrained: loss ln 10) grows as the model learns, and so does its spread
    margin = 3.5 * grown + (0.1 + 2.0 * grown) * rng.standard_normal(steps.size)
    loss = np.log1p(np.exp(-margin)) * math.log(10) / math.log(2)  # starts near ln 10 like a 10-class classifier
    cfg = {"batch_size": 1, "lr": 3e-4, "optimizer": "adam"}
    run = _run({"train/loss": (steps, loss), "val/loss": (np.array([1399, 2799]), [0.41, 0.24]),
                "val/accuracy": (np.array([1399, 2799]), [0.89, 0.94])}, cfg, fmt="lightning_csv")
    rep = analyze(run)
    assert not [f for f in rep.findings if f.kind == "spike" and f.severity != "info"], \
        [(f.severity, f.message) for f in rep.findings if f.kind == "spike"][:5]
    assert rep.verdict == "healthy", [(d.cause, d.confidence) for d in rep.diagnoses]


def test_a_ten_point_log_whose_training_loss_halved_did_not_barely_move():
    """A 10-epoch regression run logged once an epoch: the training MSE halves (0.87 -> 0.42) and the validation
    MSE falls 0.66 -> 0.54 and then holds: converged. The median of the first five of ten points is the middle of
    the run, no starting level: against it the curve would look as if it had barely moved."""
    steps = np.arange(1, 11)
    train = [0.866, 0.609, 0.502, 0.461, 0.442, 0.429, 0.421, 0.416, 0.413, 0.416]
    val = [0.661, 0.613, 0.552, 0.532, 0.542, 0.545, 0.542, 0.547, 0.539, 0.543]
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (steps, val)}, fmt="keras"))
    assert not _serious(rep), [(f.kind, f.severity, f.message) for f in _serious(rep)]
    assert rep.verdict == "healthy"


def test_a_training_loss_that_turns_up_under_a_huge_weight_decay_is_over_regularization():
    """AdamW with weight decay 15 on a small regressor: the training MSE falls 0.97 -> 0.64 by epoch 20, then rises
    steadily to 0.70 at a constant LR while validation rises with it (no gap opening: no overfitting). The decay
    pulls the fit back faster than the data moves it; the config names the decay and the curve backs it."""
    steps = np.arange(1, 41)
    train = np.concatenate([0.97 - 0.33 * (1 - np.exp(-np.arange(20) / 6.0)) / (1 - np.exp(-19 / 6.0)),
                            0.64 + 0.06 * np.arange(1, 21) / 20])
    val = train + 0.02 + 0.005 * np.sin(steps)
    cfg = {"weight_decay": 15.0, "optimizer": "adamw", "lr": 1e-3}
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (steps, val)}, cfg, fmt="csv"))
    assert rep.verdict != "healthy", [(f.kind, f.severity, f.message) for f in rep.findings]
    assert rep.diagnoses[0].cause == "over_regularization", [(d.cause, d.confidence) for d in rep.diagnoses]



def test_a_turn_up_under_weight_decay_says_only_what_was_logged():
    """The same turn without a validation loss or an LR in the log: the evidence must not claim 'validation rising
    alongside' or 'an LR that did not rise' (nothing was read to say so); and a loss that is NaN at most of its points
    has no curve to turn (it once crashed the rule)."""
    steps = np.arange(1, 41)
    train = np.concatenate([0.97 - 0.33 * (1 - np.exp(-np.arange(20) / 6.0)) / (1 - np.exp(-19 / 6.0)),
                            0.64 + 0.06 * np.arange(1, 21) / 20])
    cfg = {"weight_decay": 15.0, "optimizer": "adamw", "lr": 1e-3}
    rep = analyze(_run({"train/loss": (steps, train)}, cfg, fmt="csv"))
    (turn,) = [e for d in rep.diagnoses if d.cause == "over_regularization" for e in d.evidence if "turned up" in e]
    assert "validation rising" not in turn and "did not rise" not in turn, turn
    assert "no validation loss logged" in turn and "no LR logged" in turn, turn
    mostly_nan = train.copy()
    mostly_nan[:36] = np.nan
    rep = analyze(_run({"train/loss": (steps, mostly_nan)}, cfg, fmt="csv"))
    assert not any("turned up" in e for d in rep.diagnoses for e in d.evidence)

def test_an_excerpt_of_a_converged_classifier_has_no_scale_for_a_train_validation_gap():
    """A pasted excerpt (iterations 216-608) of a CNN classifier at ~99.5 % accuracy: per-batch losses ~0.003 and
    validation still improving 0.046 -> 0.032. Train 0.0025 against validation 0.032 is 12x, but both fits are
    near-perfect: the excerpt's first value is no scale for the gap; a cross-entropy over >= 2 classes starts at
    ln 2 or more, and 0.03 nats of it is no memorisation."""
    rng = np.random.default_rng(3)
    steps = np.arange(216, 609, 10)
    train = 0.0025 * np.exp(0.8 * rng.standard_normal(steps.size))
    vs = np.array([256, 344, 432, 520, 608])
    val = [0.0455, 0.0359, 0.0330, 0.0327, 0.0320]
    acc = [0.985, 0.990, 0.990, 0.992, 0.992]
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (vs, val), "val/accuracy": (vs, acc),
                        "train/epoch": (steps, steps // 88)}, fmt="torchvision"))
    assert rep.run["context"]["kind"] == "classifier"
    assert not [f for f in rep.findings if f.kind == "overfitting" and f.severity != "info"], \
        [(f.kind, f.severity, f.message) for f in rep.findings if f.kind == "overfitting"]


def test_a_rise_first_seen_a_tenth_into_the_run_is_no_damage_of_the_first_steps():
    """A classifier logged once an epoch (every 88 iterations, 10 points) at a constant LR without warmup: the
    second point (iteration 88, 11 % of the run) is above the first. A warmup acts over ~1-2 % of the steps, which
    this log does not resolve: the rise cannot be pinned on the first steps, so the missing warmup stays advice."""
    steps = np.arange(0, 880, 88)
    train = [2.3465, 3.0889, 3.2462, 3.1774, 3.074, 2.9457, 2.8103, 2.6883, 2.5974, 2.5466]
    lr = 0.015 * (1 + np.cos(np.pi * np.arange(10) / 10))  # a cosine per epoch from 0.03, no warmup
    rep = analyze(_run({"train/loss": (steps, train), "train/lr": (steps, lr), "train/epoch": (steps, np.arange(10)),
                        "val/loss": (steps, [2.49, 2.45, 2.43, 2.40, 2.38, 2.35, 2.34, 2.33, 2.32, 2.32]),
                        "train/accuracy": (steps, [12.1, 12.1, 12.1, 5.8, 5.8, 5.8, 5.8, 5.8, 5.8, 5.8])}))
    warm = next((d for d in rep.diagnoses if d.cause == "missing_warmup"), None)
    assert warm is None or warm.confidence <= 0.35, (warm.confidence, warm.evidence)
    assert not any("in the first steps" in e for d in rep.diagnoses for e in d.evidence)
