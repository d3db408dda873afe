"""Issue 7 on classifier, fine-tune and masked-LM runs: one test per phenomenon the families benchmark's tune half
showed (each failed before its rule or detector change). Curves are synthetic, shaped like the logged ones: the
Lightning CSV of a digits classifier (a point every 10 steps, 10 evaluations), the HF Trainer's window means."""

import math
import re

import numpy as np

from lossdx.analyze import analyze
from lossdx.model import Run, Series

LN10 = math.log(10)


def _run(series: dict, config: dict | None = None, fmt: str = "", raw: dict | None = None) -> Run:
    run = Run({k: Series(k, np.asarray(s, dtype=np.int64), np.asarray(v, dtype=float)) for k, (s, v) in series.items()},
              config=dict(config or {}))
    run.source["format"] = fmt
    if raw is not None:
        run.meta["config_raw"] = dict(raw)
    return run


def _serious(rep):
    return [f for f in rep.findings if f.severity in ("warning", "error")]


def _causes(rep):
    return [d.cause for d in rep.diagnoses]


def _classifier(train: np.ndarray, val: np.ndarray, acc: np.ndarray, first_step: int = 9, every: int = 10,
                config: dict | None = None, raw: dict | None = None) -> Run:
    """A Lightning CSV classifier log: train loss every `every` steps, validation loss and accuracy per epoch."""
    ts = first_step + every * np.arange(train.size)
    vs = np.linspace(ts[0] + 34, ts[-1], val.size).astype(int)
    return _run({"train/loss": (ts, train), "val/loss": (vs, val), "val/accuracy": (vs, acc)}, config,
                "lightning_csv", raw)


# NaN -------------------------------------------------------------------------------------------------------------

def test_nan_loss_while_the_gradients_stay_finite_is_one_batch_not_the_model():
    """HF Trainer with logging_nan_inf_filter off: one batch without masked tokens makes the logged running mean NaN
    for good, while the gradient norm (and so the weights) stay finite. NaN inputs, float16 overflow or a blow-up
    would have made the gradients NaN too."""
    rng = np.random.default_rng(0)
    steps = np.arange(31)  # a printed log of dicts: one record a line, no step numbers
    loss = 2.95 + 0.04 * rng.standard_normal(31)
    loss[6:] = np.nan  # after five calm records
    grad = 1.0 + 0.3 * rng.random(31)
    lr = np.linspace(8.4e-4, 1e-5, 31)
    rep = analyze(_run({"train/loss": (steps, loss), "train/grad_norm": (steps, grad), "train/lr": (steps, lr)},
                       fmt="hf_console"))
    top = rep.diagnoses[0]
    assert top.cause == "loss_nan_from_data" and top.confidence >= 0.7, _causes(rep)
    assert any("gradient norm stays finite" in e for e in top.evidence)
    assert "fp16_precision" not in _causes(rep)[:2]
    # the same NaN with the gradients NaN too is the model's: no such reading
    grad[6:] = np.nan
    rep = analyze(_run({"train/loss": (steps, loss), "train/grad_norm": (steps, grad), "train/lr": (steps, lr)},
                       fmt="hf_console"))
    assert not any("gradient norm stays finite" in e for d in rep.diagnoses for e in d.evidence)


def test_nan_after_a_calm_first_point_of_a_classifier_is_the_data():
    """A classifier logged every 10 steps: loss 2.33 (~ln 10) at step 9, NaN from step 19 on, validation NaN too.
    Ten finite updates came first, so it is no NaN of the first update (precision, init): the inputs brought it, and
    a classifier, unlike a masked LM, has no empty-target batch."""
    train = np.full(44, np.nan)
    train[0] = 2.332
    val = np.full(10, np.nan)
    rep = analyze(_classifier(train, val, np.full(10, np.nan), config={"optimizer": "adam", "lr": 1e-3}))
    assert rep.verdict == "problem"
    assert _causes(rep)[0] == "nan_in_input", _causes(rep)
    assert "loss_nan_from_data" in _causes(rep)[:2]


# a held-out loss that does not move --------------------------------------------------------------------------------

def test_a_frozen_held_out_loss_at_a_tiny_logged_lr_is_lr_too_low():
    """Fine-tune at LR 3e-8 (logged): evaluation loss 2.0087 -> 2.0085 over 250 steps while the training window means
    wander around 2.13. A fine-tune's held-out loss moves by percents; this one by 0.01 %."""
    rng = np.random.default_rng(1)
    ts = np.arange(10, 301, 10)
    train = 2.13 + 0.05 * rng.standard_normal(ts.size)
    vs = np.arange(50, 301, 50)
    val = np.array([2.00870, 2.00865, 2.00860, 2.00856, 2.00853, 2.00851])
    lr = 3e-8 * 0.5 * (1 + np.cos(np.pi * ts / 300))
    rep = analyze(_run({"train/loss": (ts, train), "val/loss": (vs, val), "train/lr": (ts, lr)}, fmt="hf_trainer_state"))
    assert rep.verdict != "healthy"
    assert any(f.evidence.get("type") == "frozen" for f in _serious(rep))
    assert rep.diagnoses[0].cause == "lr_too_low" and rep.diagnoses[0].confidence >= 0.7


def test_chance_level_that_falls_at_every_evaluation_is_a_small_lr_not_bad_labels():
    """CNN at Adam 1e-6 (LR not logged, no config): validation loss 2.3009 -> 2.2989, lower at every one of 10
    evaluations, accuracy ~10 %. Labels that do not match their inputs cannot make held-out loss fall steadily."""
    rng = np.random.default_rng(2)
    train = 2.305 + 0.007 * rng.standard_normal(44)
    val = np.linspace(2.3009, 2.2989, 10)
    acc = np.array([0.101, 0.103, 0.103, 0.106, 0.103, 0.106, 0.106, 0.106, 0.106, 0.106])
    rep = analyze(_classifier(train, val, acc))
    causes = _causes(rep)
    assert causes[0] == "lr_too_low", causes
    assert "label_misalignment" not in causes or rep.diagnoses[causes.index("label_misalignment")].confidence < 0.3
    chance = [f for f in rep.findings if f.evidence.get("type") == "chance_level"]
    assert chance and chance[0].evidence["uniform_classes"] == 10  # 2.299 is ln 10, though 1/10.6 % rounds to 9


def test_a_classifier_frozen_at_exactly_ln_c_without_a_trend_is_over_regularization():
    """L2 weight decay 1.0 (no config): validation loss pinned at 2.3033-2.3039 (= ln 10, a uniform prediction) with
    no trend and a constant accuracy, training loss at ln 10 too. Bad labels would still be memorised; a small LR
    would still creep down; a decay that holds every weight at zero outputs exactly the uniform distribution."""
    rng = np.random.default_rng(3)
    train = LN10 + 0.002 * rng.standard_normal(44)
    val = np.array([2.3039, 2.3036, 2.3035, 2.3032, 2.3034, 2.3033, 2.3034, 2.3034, 2.3034, 2.3033])
    rep = analyze(_classifier(train, val, np.full(10, 0.058)))
    assert rep.verdict != "healthy"
    assert _causes(rep)[0] == "over_regularization", _causes(rep)
    assert rep.diagnoses[0].confidence <= 0.6  # no config: a reading with its check, not a certainty
    assert rep.diagnoses[0].checks


# held-out loss rising on the first pass --------------------------------------------------------------------------

def _finetune(turn_epochs: float) -> Run:
    """Fine-tune log: training windows falling 2.9 -> 1.82, evaluation rising 2.027 -> 2.124 from its first point;
    the epoch counter puts step 50 (the first evaluation) at `turn_epochs`."""
    rng = np.random.default_rng(4)
    ts = np.arange(5, 301, 5)
    train = 1.82 + 1.08 * np.exp(-ts / 40) + 0.03 * rng.standard_normal(ts.size)
    vs = np.arange(50, 301, 50)
    val = np.array([2.027, 2.040, 2.073, 2.104, 2.113, 2.124])
    epoch = ts * turn_epochs / 50
    return _run({"train/loss": (ts, train), "val/loss": (vs, val), "train/epoch": (ts, epoch)}, fmt="hf_trainer_state")


def test_held_out_loss_rising_within_the_first_epoch_is_label_misalignment():
    """Labels shifted twice in the training set only: validation turns up 0.42 epochs in, while every training batch
    is still new and the training loss (2.2) is still above the validation loss. Memorisation needs repetition."""
    rep = analyze(_finetune(0.42))
    assert _causes(rep)[0] == "label_misalignment", _causes(rep)
    over = [d for d in rep.diagnoses if d.cause == "overfitting_small_data"]
    assert not over or over[0].confidence <= 0.3


def test_held_out_loss_rising_after_many_epochs_stays_overfitting():
    rep = analyze(_finetune(12.0))
    assert _causes(rep)[0] == "overfitting_small_data", _causes(rep)


def test_an_integer_epoch_index_does_not_date_a_rise_to_the_first_pass():
    """Lightning logs the index of the current epoch (0, 1, 2 ...): validation at the end of epoch 0 comes after a
    whole pass, and the next one after two. Such a counter cannot put the rise inside the first pass."""
    run = _finetune(0.42)
    ep = run.series["train/epoch"]
    run.series["train/epoch"] = Series("train/epoch", ep.steps, np.floor(ep.steps / 50.0))
    assert "label_misalignment" not in _causes(analyze(run))[:1]


# noise of per-batch classifier losses ---------------------------------------------------------------------------

def test_an_excerpt_of_noisy_per_batch_classifier_losses_is_healthy():
    """A healthy MLP logged every step from step 200 (an excerpt): per-batch losses near 0.15 vary by ~50 % (a batch of
    32 with one confident mistake doubles its loss). A first point that happens to be low, a 0.42 batch four steps
    later and block medians wandering by 17 % are that noise, not a spike and an excursion."""
    rng = np.random.default_rng(5)
    steps = np.arange(200, 440)
    level = np.linspace(0.17, 0.10, steps.size)
    loss = level * rng.gamma(5.0, 0.2, steps.size)
    loss[0], loss[4] = 0.132, 0.4225
    loss[70:134] *= 1.3  # a stretch of harder batches: block medians of such noise wander by ~17 %
    vs = np.arange(219, 440, 44)
    val = np.linspace(0.21, 0.13, vs.size)
    rep = analyze(_run({"train/loss": (steps, loss), "val/loss": (vs, val),
                        "val/accuracy": (vs, np.linspace(0.94, 0.96, vs.size))}, fmt="lightning_csv"))
    assert rep.run["context"]["covers_start"] is False
    assert rep.verdict == "healthy", [f.message for f in _serious(rep)]


# initial loss -----------------------------------------------------------------------------------------------------

def test_a_classifier_starting_far_above_any_uniform_guess_is_bad_init():
    """CNN initialised 10x too large, first logged at step 4 (at full LR, LR unknown), no config: loss 84.5 and then
    only falling. No label set has ln C near 84; a blow-up in four steps would go on rising."""
    rng = np.random.default_rng(6)
    train = 0.5 + 84 * np.exp(-np.arange(88) / 5) * (1 + 0.1 * rng.standard_normal(88))
    train[0] = 84.5
    val = 0.6 + 20 * np.exp(-np.arange(10) / 1.2)
    rep = analyze(_classifier(train, val, np.linspace(0.22, 0.85, 10), first_step=4, every=5))
    assert rep.verdict == "problem"
    assert _causes(rep)[0] == "bad_init", _causes(rep)


def test_an_lm_starting_at_twice_any_uniform_loss_with_huge_early_gradients_is_bad_init():
    """Masked LM with initializer_range 1.0, vocabulary unknown: first window 26 (2.1x ln 262,144), falling to 3.7,
    with gradient norms ~100 at first against ~4 later. mT5 fine-tunes also start at ~25 and are fine, so the loss
    alone does not decide it: the gradients do (large initial logits make large gradients)."""
    rng = np.random.default_rng(7)
    ts = np.arange(10, 401, 10)
    train = 3.6 + 23 * np.exp(-(ts - 10) / 60) + 0.05 * rng.standard_normal(ts.size)
    grad = 4 + 120 * np.exp(-(ts - 10) / 30) + 0.5 * rng.random(ts.size)
    series = {"train/loss": (ts, train), "train/grad_norm": (ts, grad), "train/lr": (ts, np.full(ts.size, 1e-3))}
    rep = analyze(_run(series, fmt="hf_trainer_state"))
    assert _causes(rep)[0] == "bad_init", _causes(rep)
    del series["train/grad_norm"]
    assert not [f for f in analyze(_run(series, fmt="hf_trainer_state")).findings if f.kind == "init_loss"]


# capacity ----------------------------------------------------------------------------------------------------------

def test_a_narrow_classifier_learning_slowly_at_a_usual_lr_is_capacity():
    """MLP with 2 hidden units, Adam 1e-3 (config): after 10 % of the run the loss has fallen 2 % from ln C and it is
    still creeping down at the end (2.42 -> 2.04 over 10 epochs). The LR is a usual one; the bottleneck is not."""
    rng = np.random.default_rng(8)
    steps = np.arange(440)
    train = 2.42 - 0.38 * (steps / 439) ** 1.3 + 0.06 * rng.standard_normal(steps.size)
    vs = np.arange(43, 440, 44)
    val = np.linspace(2.36, 2.03, vs.size)
    raw = {"hidden": 2, "lr": 1e-3, "optimizer": "adam", "batch_size": 32}
    rep = analyze(_run({"train/loss": (steps, train), "val/loss": (vs, val),
                        "val/accuracy": (vs, np.linspace(0.09, 0.19, vs.size))},
                       {"lr": 1e-3, "optimizer": "adam", "batch_size": 32}, "lightning_csv", raw))
    assert rep.verdict != "healthy"
    causes = _causes(rep)
    assert causes[0] == "capacity_too_small", causes
    assert "lr_too_low" in causes  # the other reading, ranked below: a usual LR


# warmup advice -----------------------------------------------------------------------------------------------------

def test_a_fine_tune_at_fifty_times_the_usual_lr_ranks_the_lr_before_warmup():
    """Fine-tune at LR 0.05 without warmup whose curve shows no trouble a detector can pin: both are advice, and a
    fine-tune at a usual LR trains fine without warmup, so the LR 48x above its norm comes first."""
    rng = np.random.default_rng(9)
    ts = np.arange(10, 301, 10)
    train = 2.1 + 1.4 * np.exp(-(ts - 10) / 15) + 0.05 * rng.standard_normal(ts.size)
    lr = 0.0485 * (1 - (ts - 10) / 300)
    vs = np.arange(50, 301, 50)
    rep = analyze(_run({"train/loss": (ts, train), "train/lr": (ts, lr),
                        "val/loss": (vs, np.linspace(2.17, 2.02, vs.size))},
                       {"warmup_steps": 0, "lr": 0.05, "max_steps": 300}, "hf_trainer_state",
                       {"warmup_steps": 0, "learning_rate": 0.05, "max_steps": 300, "model_name_or_path": "base"}))
    causes = _causes(rep)
    assert rep.run["context"]["kind"] == "lm_finetune"
    assert causes[0] == "lr_too_high", causes
    assert all(d.confidence <= 0.3 for d in rep.diagnoses)


def test_a_held_out_loss_still_because_the_lr_decayed_to_zero_is_not_frozen():
    """The guard of the frozen reading: evaluations that do not move while the schedule has already taken the LR to ~0
    are a finished run, and an excerpt's evaluations may be a converged run's."""
    rng = np.random.default_rng(10)
    ts = np.arange(10, 301, 10)
    train = 2.13 + 0.05 * rng.standard_normal(ts.size)
    vs = np.arange(50, 301, 50)
    val = np.array([2.00870, 2.00865, 2.00860, 2.00856, 2.00853, 2.00851])
    lr = np.where(ts < 40, 1e-4, 1e-9)
    rep = analyze(_run({"train/loss": (ts, train), "val/loss": (vs, val), "train/lr": (ts, lr)}, fmt="hf_trainer_state"))
    assert not [f for f in rep.findings if f.evidence.get("type") == "frozen"]
    excerpt = analyze(_run({"train/loss": (ts + 5000, train), "val/loss": (vs + 5000, val)}, fmt="hf_trainer_state"))
    assert not [f for f in excerpt.findings if f.evidence.get("type") == "frozen"]


def test_a_classifier_whose_loss_rises_after_its_first_logged_point_is_no_bad_init():
    """SGD at LR 5 logged from step 4: 2.8 (~ln 10) then 10.8 — a blow-up after a sane start, not an init far above
    any uniform guess."""
    rng = np.random.default_rng(11)
    train = np.concatenate([[2.81, 10.76, 7.16, 5.56], 2.3 + 0.3 * rng.random(84)])
    rep = analyze(_classifier(train, np.full(10, 2.31), np.full(10, 0.1), first_step=4, every=5))
    assert not [f for f in rep.findings if f.kind == "init_loss"]
    assert "bad_init" not in _causes(rep)[:1]


def test_a_frozen_held_out_loss_says_of_the_training_loss_only_what_was_read():
    """Review of the frozen reading: a short log whose training loss fell from 2.3 to 0.9 is no frozen model (the
    training loss is learning), and 'the training loss does not fall' is never said where it fell."""
    ts = np.arange(0, 80, 10)
    vv = 2.3026 + 0.0005 * np.sin(np.arange(ts.size))
    rep = analyze(_run({"train/loss": (ts, np.linspace(2.3, 0.9, ts.size)), "val/loss": (ts, vv)}))
    assert not [f for f in rep.findings if f.evidence.get("type") == "frozen"]
    for d in rep.diagnoses:
        assert not [e for e in d.evidence if "training loss does not fall" in e], (d.cause, d.evidence)


def test_a_frozen_held_out_loss_at_an_lr_above_its_norm_is_no_small_step():
    """An LR 17x the top of its norm takes no small steps: no 'raise the learning rate 0.05 -> 0.003' (a raise that
    lowers it), and no 'the log does not show the LR' where the log shows it."""
    ts = np.arange(0, 400, 10)
    vs = np.arange(0, 400, 50)
    rep = analyze(_run({"train/loss": (ts, 2.3026 + 0.001 * np.sin(np.arange(ts.size))),
                        "val/loss": (vs, 2.3026 + 0.0005 * np.sin(np.arange(vs.size))),
                        "train/lr": (ts, np.full(ts.size, 0.05))}, {"optimizer": "adamw", "lr": 0.05}))
    assert [f for f in rep.findings if f.evidence.get("type") == "frozen"]
    for d in rep.diagnoses:
        for fix in d.fixes:
            m = re.search(r"raise the learning rate: ([\d.e+-]+) -> ([\d.e+-]+)", fix)
            assert m is None or float(m.group(2)) > float(m.group(1)), fix
        assert not [e for e in d.evidence if "does not show the LR" in e], (d.cause, d.evidence)
    assert "lr_too_low" not in _causes(rep)


def test_held_out_loss_rising_after_the_training_data_changed_is_the_data_not_the_labels():
    """Domain-ordered data (the families benchmark's gpt/domain_ordered, a tune-half run): the training loss steps up
    as a new source starts (then is learned down) and the held-out loss, measured on the old mix, rises from the next
    evaluation on, all in the first pass. The data order explains the rise; it is no evidence that training and
    held-out labels disagree."""
    import pathlib

    from lossdx.analyze import analyze_path

    log = pathlib.Path(__file__).resolve().parents[1] / "benchmarks/families/runs/gpt/domain_ordered/train.log"
    rep = analyze_path(str(log))
    causes = _causes(rep)
    label = [d for d in rep.diagnoses if d.cause == "label_misalignment"]
    assert causes[0] == "data_order", [(d.cause, d.confidence) for d in rep.diagnoses]
    assert not label or label[0].confidence <= 0.4
