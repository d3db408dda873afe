"""Data causes (Qwen2.5 post-mortem: format errors / NaN in inputs, label misalignment, imbalance;
handbook: spikes from abnormal samples, data order) and non-data faults that look like them."""

from __future__ import annotations

import math

import numpy as np

from ...config.hparams import is_float16
from ...detectors._stats import diff_sigma
from ..engine import Evidence, Hit, Rule
from ._common import clip_fix, num


def bad_batch(ev: Evidence) -> Hit | None:
    """A few isolated spikes that recover within steps: an anomalous batch (handbook Q1)."""
    spikes = [f for f in ev.of("spike") if not (f.evidence.get("early") and f.evidence.get("from_start"))]
    if not spikes or len(spikes) > 4:
        return None
    quick = [f for f in spikes if f.evidence.get("recovered") and (f.evidence.get("recovery_steps") or 0)
             <= max(50 * ev.log_window, 0.03 * max(ev.run_length(), 1))]
    if not quick:
        return None
    f = max(quick, key=lambda f: f.evidence.get("ratio", 0))
    hit = Hit(0.6, [f"train loss jumped {f.evidence['ratio']:.1f}x ({num(f.evidence['baseline'])} -> "
                    f"{num(f.evidence['peak'])}) at step {f.start_step} and was back within "
                    f"{f.evidence['recovery_steps']} step{'s' if f.evidence['recovery_steps'] != 1 else ''}"])
    blowup = next((s for s in ev.of("spike") if s.evidence.get("early") and s.evidence.get("from_start")), None)
    if blowup is not None:
        # the same run blew up at its start: updates too large for the model explain a later spike as well
        hit.confidence -= 0.1
        hit.evidence.append(f"the loss also blew up at the start of training (step {blowup.start_step}): the "
                            "optimizer, not only the data, can throw this run off")
    elif len(spikes) == 1:
        hit.evidence.append("it is the only spike of the run: isolated, not a trend")
        hit.confidence += 0.1
    if len(spikes) > 1:
        hit.evidence.append(f"{len(spikes)} isolated spikes at steps {', '.join(str(s.start_step) for s in spikes)}")
    climb = _climb_before(ev, f.evidence.get("peak_step", f.start_step))
    if climb is not None:
        # one bad batch lifts one step's loss from its level; a loss that rose step after step into the peak
        # built up through the updates (an optimizer instability)
        hit.confidence -= 0.2
        hit.evidence.append(f"the loss climbed for {climb[0]} logged points before the peak ({num(climb[1])} -> "
                            f"{num(climb[2])}): it built up, which one batch does not do")
    tol = max(2, ev.log_window)
    grad = [g for g in ev.of("grad_norm", serious=False) if g.evidence.get("type") == "explosion"
            and any(abs(g.start_step - s.start_step) <= tol for s in spikes)]
    if grad:
        hit.confidence += 0.15
        hit.evidence.append(f"gradient norm jumped x{grad[0].evidence['ratio']:.0f} at the same step "
                            f"({num(grad[0].evidence['baseline'])} -> {num(grad[0].evidence['peak'])})")
    if ev.has("divergence"):
        hit.confidence -= 0.2
    elif ev.typed("instability", "grad_growth"):
        hit.confidence -= 0.1
    if f.evidence.get("ratio", 0) >= 3 and (f.evidence.get("recovery_steps") or 99) <= 3 * ev.log_window:
        hit.confidence += 0.05  # a 3x jump gone within a few steps is one batch, not a trend
    if ev.typed("grad_norm", "precursor"):
        hit.confidence -= 0.2  # the gradients built up before the spike: not the batch alone
    steps = ", ".join(str(s.start_step) for s in spikes)
    hit.fixes.append(f"inspect the batch(es) at step {steps}: the data offsets of those steps (the live guard "
                     "records them) point at the samples")
    clip_fix(ev, hit)
    hit.fixes.append("filter the training data for repeated n-grams / garbage documents (OLMo drops sequences with "
                     ">= 32 repeats of a short pattern)")
    hit.checks.append("re-run from a checkpoint before the spike with the same batches: if it spikes again it is the "
                      "data, if not the parameter state or hardware")
    return hit


def _climb_before(ev: Evidence, step: int) -> tuple[int, float, float] | None:
    """(points, from, to) when the loss rose at each of the 3+ logged points before ``step`` and ended that climb
    clearly above where it began (by 4 sigma of the run's point-to-point noise, and 20 %)."""
    _s, v = _finite_losses_before(ev, step)
    if v.size < 8:
        return None
    n = 0
    while n + 1 < v.size and v[-1 - n] > v[-2 - n]:
        n += 1
    if n < 3:
        return None
    start, end = float(v[-1 - n]), float(v[-1])
    if end - start < max(4 * diff_sigma(v), 0.2 * abs(start)):
        return None
    return n, start, end


def nan_transient(ev: Evidence) -> Hit | None:
    """A NaN that comes and goes, with nothing building up before it: the loss of one batch (e.g. a fully
    masked batch, 0/0) and not the model."""
    f = next((f for f in ev.of("nan") if f.metric in ("train/loss",) or f.evidence.get("hidden_by_window")), None)
    if f is None or not f.evidence.get("recovered") or f.evidence.get("count", 99) > 3:
        return None
    if _scale_drop_at(ev, f.start_step):
        return None  # the float16 loss scaler skipped the overflowing steps: explained by fp16, not by the batch
    hit = Hit(0.7, [f"{f.metric} was NaN at step {f.start_step} only ({f.evidence['count']} logged point(s)) and "
                    f"finite again from step {f.evidence['recovered_at']}"])
    before = [x for x in ev.findings if x.severity != "info" and x.kind in ("divergence", "instability", "spike")
              and x.start_step < f.start_step]
    if before:
        hit.confidence -= 0.3
    else:
        hit.evidence.append("no rise, spike or gradient growth before it: the model was fine, one batch was not")
    hit.fixes += [f"check the batch at step {f.start_step} for an empty/fully-masked target (loss = 0/0), a zero "
                  "denominator or log(0) in the loss",
                  "guard the loss: skip the step when the number of target tokens is 0, or use reduction='sum' / max(n, 1)"]
    hit.checks.append("log the number of unmasked target tokens per batch")
    return hit


def nan_persistent(ev: Evidence) -> Hit | None:
    """NaN from one step to the end with a healthy curve before it: bad values came in with the data."""
    f = next((f for f in ev.of("nan") if f.metric == "train/loss"), None)
    if f is None or f.evidence.get("recovered"):
        return None
    finite_before = _finite_before(ev, f.start_step)
    if not finite_before or (ev.profile.covers_start and f.start_step <= 10 and finite_before < 3):
        return None  # NaN from the first update on is precision or init, not a poisoned batch
    before = [x for x in ev.findings if x.severity != "info" and x.kind in ("divergence", "instability", "spike",
                                                                             "grad_norm") and x.start_step < f.start_step]
    g = next((x for x in ev.of("nan") if x.metric == "train/grad_norm"), None)
    if before or (g is not None and g.start_step < f.start_step):
        return None
    if _rising_before(ev, f.start_step) is not None:
        return None  # the loss was climbing into the NaN: the model blew up, not the data
    last_ok = _last_finite(ev, f.start_step)
    where = (f"loss was {num(last_ok)} just before step {f.start_step}" if last_ok is not None
             else f"loss became NaN at step {f.start_step}")
    unseen = _unseen_before(ev, f.start_step)
    hit = Hit(0.6, [f"{where} and NaN from then to the end ({f.evidence['count']} points)",
                    "no spike, divergence or gradient growth before it: the NaN came in from outside the model"
                    if unseen is None else unseen])
    dtype = str(ev.cfg("dtype", "")).lower()
    if "bf16" in dtype or "bfloat16" in dtype or "32" in dtype:
        hit.evidence.append(f"dtype {ev.cfg('dtype')}: not a float16 overflow")
        hit.confidence += 0.05
    else:
        hit.confidence = 0.4
        hit.evidence.append("the dtype is unknown: a float16 overflow would look the same")
    if _model_fine_after(ev, f.start_step):
        # NaN inputs make NaN gradients that poison every weight: a model still training normally had none
        hit.confidence = 0.25
        hit.evidence.append(_model_fine_after(ev, f.start_step))
    if unseen is not None:
        hit.confidence = min(hit.confidence, 0.25)  # the calm before the NaN, the data's witness, is not in the log
        hit.checks.append("log every step around the NaN: a loss climbing into it is a blow-up, a calm one the data")
    hit.fixes += [f"check the inputs of the batch at step {f.start_step} for NaN/Inf (torch.isfinite(x).all()) and "
                  "validate the dataset once before training",
                  "make the guard stop at the first non-finite loss and skip the step instead of applying NaN gradients"]
    hit.checks.append("assert torch.isfinite(batch).all() in the data loader")
    return hit


def _finite_losses_before(ev: Evidence, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the finite training losses logged before ``step`` (empty without a training loss)."""
    loss = ev.series("train/loss")
    if loss is None:
        return np.empty(0, dtype=np.int64), np.empty(0)
    ok = (loss.steps < step) & np.isfinite(loss.values)
    return loss.steps[ok], loss.values[ok]


def _finite_before(ev: Evidence, step: int) -> int:
    """How many finite training losses were logged before ``step``."""
    return int(_finite_losses_before(ev, step)[1].size)


def _model_fine_after(ev: Evidence, step: int) -> str | None:
    """What shows the weights stayed finite after the loss turned NaN at ``step``: a gradient norm still finite and
    at its level, or a held-out loss still finite. Then only the logged training loss is NaN (one batch's 0/0 kept
    in the running mean), not the model — which NaN inputs, a float16 overflow or a blow-up would have made NaN."""
    g = ev.series("train/grad_norm")
    if g is not None and len(g) and bool((g.steps >= step).any()):
        before, after = g.values[g.steps < step], g.values[g.steps >= step]
        before = before[np.isfinite(before)]
        if after.size >= 3 and bool(np.isfinite(after).all()) and before.size and \
                float(np.median(after)) <= 10 * float(np.median(before)):
            return (f"the gradient norm stays finite after it ({num(float(after.min()))}-{num(float(after.max()))}, "
                    f"median {num(float(np.median(before)))} before): the weights are not NaN, only the logged loss is")
        return None  # the gradients went non-finite (or blew up) with the loss: the model itself
    v = ev.series("val/loss")
    if v is not None and len(v):
        after = v.values[v.steps >= step]
        if after.size and bool(np.isfinite(after).all()):
            return (f"the validation loss stays finite after it ({num(float(after[0]))} -> {num(float(after[-1]))}): "
                    "the weights are not NaN, only the logged training loss is")
    return None


def _scale_drop_at(ev: Evidence, step: int) -> bool:
    """The dynamic loss scale halves on every float16 overflow: lower just after ``step`` than just before."""
    scale = ev.series("train/loss_scale")
    if scale is None or len(scale) < 3:
        return False
    ok = np.isfinite(scale.values)
    before = scale.values[ok & (scale.steps < step)]
    after = scale.values[ok & (scale.steps >= step) & (scale.steps <= step + 5 * max(1, ev.profile.log_interval))]
    return bool(before.size and after.size and float(after.min()) < float(before[-1]))


#: Unlogged steps before a NaN beyond which the log cannot show how the loss got there: a blow-up from a calm
#: level to NaN takes a few to a few hundred steps.
UNSEEN_STEPS = 100


def _unseen_before(ev: Evidence, step: int) -> str | None:
    """Why the curve cannot witness the NaN's onset, when the last finite loss before ``step`` lies more than
    UNSEEN_STEPS steps back (a log that prints every 1000 steps): a blow-up there would not show, so "calm
    before the NaN" is no evidence for the data."""
    steps, _v = _finite_losses_before(ev, step)
    if not steps.size:
        return None
    last = int(steps[-1])
    if step - last <= UNSEEN_STEPS:
        return None
    return (f"the {step - last - 1} steps between the last finite loss (step {last}) and the NaN are not in the "
            "log: a blow-up there would not show")


def _last_finite(ev: Evidence, step: int) -> float | None:
    _s, v = _finite_losses_before(ev, step)
    return float(v[-1]) if v.size else None


def _rising_before(ev: Evidence, step: int) -> tuple[float, float] | None:
    """(from, to) when the last finite losses before ``step`` climbed clearly out of their own noise (>= 5 %
    and >= 4 sigma of the step-to-step noise before), or ran away below zero: the curve itself was breaking
    before the NaN."""
    loss = ev.series("train/loss")
    if loss is None:
        return None
    ok = (loss.steps < step) & np.isfinite(loss.values)
    v = loss.values[ok][-36:]
    if v.size < 3:
        return None
    base_pts, tail = (v[:-3], v[-3:]) if v.size >= 6 else (v[:1], v[1:])
    base = float(np.median(base_pts))
    noise = diff_sigma(base_pts) if base_pts.size >= 3 else 0.0
    top = float(np.max(tail))
    if base > 0 and top >= 1.05 * base and top - base >= 4 * noise:
        return base, top
    last = float(v[-1])
    if last < 0 and (float(loss.values[ok][0]) > 0 or last < 1.5 * float(v[0]) < 0):
        return float(v[0]), last  # a loss running off below zero: an unbounded objective diverging
    return None


def nan_persistent_loss(ev: Evidence) -> Hit | None:
    """A NaN out of a calm curve that never goes away: one batch made the loss itself NaN (a fully masked batch's
    0/0, log(0) of a zero probability) and its NaN gradients poisoned every weight (handbook 'NaN Loss': division
    by zero). The same picture as NaN inputs; the data is the first suspect either way."""
    base = nan_persistent(ev)
    if base is None:
        return None
    f = next(f for f in ev.of("nan") if f.metric == "train/loss")
    known = any(e.startswith("dtype ") for e in base.evidence)
    fine = _model_fine_after(ev, f.start_step)
    if fine:
        hit = Hit(0.75, [base.evidence[0], fine, "one batch's loss was NaN (0/0 of a batch with no unmasked targets, "
                                                 "log(0)) and the running mean of the logged loss keeps it"])
    elif ev.profile.kind in ("classifier", "vision"):
        # every image has its label: a classifier's cross-entropy has no empty-target batch to make 0/0
        hit = Hit(0.35, [base.evidence[0], "a classifier scores every sample of a batch, so no batch is without "
                                           "targets: a NaN in the inputs (or a log(0) in a custom loss) is likelier"])
    else:
        hit = Hit(0.5 if known else 0.45,
                  [base.evidence[0], "one batch's loss became NaN (0/0 of a batch with no unmasked targets, log(0)) and "
                                     "its NaN gradients spread to every weight in the same step"])
    unseen = _unseen_before(ev, f.start_step)
    if unseen is not None and not fine:  # (a model still fine after the NaN needs no view of its onset)
        hit.confidence = min(hit.confidence, 0.25)
        hit.evidence.append(unseen)
    hit.fixes += ["skip a step whose loss is not finite (the live guard does) and count the unmasked targets per "
                  "batch: 0 means a NaN mean",
                  "compute the mean over max(n_targets, 1) or use reduction='sum' / n_valid"]
    hit.checks.append(f"re-run the batch of step {f.start_step} alone and print its number of unmasked targets and "
                      "whether its inputs are finite")
    return hit


def _epoch_per_point(ev: Evidence) -> bool:
    """Each logged training loss closes one epoch: the trainer's integer epoch counter goes up by exactly one from
    one logged point to the next (an epoch-level log: Keras-like lines, a CSV row per epoch)."""
    loss, epoch = ev.series("train/loss"), ev.series("train/epoch")
    if loss is None or epoch is None or len(loss) < 3 or len(epoch) != len(loss) or \
            not np.array_equal(loss.steps, epoch.steps):
        return False
    e = epoch.values
    return bool(np.all(np.isfinite(e)) and np.all(e == np.round(e)) and np.all(np.diff(e) == 1))


def nan_from_first_epoch(ev: Evidence) -> Hit | None:
    """An epoch-level log whose training loss is NaN from its very first point to the end: the first point already
    averages a whole pass over the data, and every pass visits every row, so one NaN/Inf row in the dataset makes
    every epoch's loss NaN from the first on. A blow-up (a too-high LR, float16 overflow) inside that first epoch
    would look the same, and with no finite point the curve cannot show a rise: an honest first reading, with the
    rivals weighed by what the config says and how to decide between them."""
    f = next((f for f in ev.of("nan") if f.metric == "train/loss"), None)
    if f is None or f.evidence.get("recovered") or not ev.profile.covers_start or not _epoch_per_point(ev):
        return None
    loss = ev.series("train/loss")
    if loss is None or f.start_step != int(loss.steps[0]) or bool(np.isfinite(loss.values).any()):
        return None
    hit = Hit(0.35, [f"train/loss is NaN from its first logged point (step {f.start_step}, the end of epoch "
                     f"{int(ev.series('train/epoch').values[0])}) to the end: every epoch passes every training row, so "
                     "one NaN/Inf row makes each epoch's loss NaN from the first on",
                     "no finite loss was logged, so the curve cannot show a rise before the NaN: a blow-up inside the "
                     "first epoch (a too-high LR, float16 overflow) would look the same"])
    dtype = str(ev.cfg("dtype", "")).lower()
    if is_float16(dtype):
        hit.evidence.append(f"dtype {ev.cfg('dtype')}: a float16 overflow is as likely")
    elif dtype:
        hit.confidence += 0.1
        hit.evidence.append(f"dtype {ev.cfg('dtype')}: not a float16 overflow")
    elif len(ev.raw_config) >= 5 and not _precision_keys(ev.raw_config):
        # reduced precision is opt-in (a dtype, fp16 or AMP setting): a config that lists the run's settings without
        # one trained in float32 (one that names AMP in a way the dtype reading does not map, use_amp: true, says
        # nothing of the kind)
        hit.confidence += 0.05
        hit.evidence.append(f"the config sets {len(ev.raw_config)} values and no float16/AMP option: float32 is "
                            "the default")
    ratio = ev.profile.lr_ratio_high()
    if ratio is not None and ratio > 1:
        hit.confidence = min(hit.confidence, 0.25)
        hit.evidence.append(_lr_note(ev, ratio))
    elif ratio is not None:
        hit.confidence += 0.05
        hit.evidence.append(f"the learning rate {num(ev.profile.peak_lr)} is within {ev.profile.lr_norm_text()}: "
                            "no reason for a blow-up")
    if is_float16(dtype):
        hit.confidence = min(hit.confidence, 0.2)  # (after the LR: a usual LR does not make float16 less likely)
    hit.fixes.append("check the dataset for NaN/Inf once before training (np.isfinite(X).all(), "
                     "np.isfinite(y).all()) and impute or drop the rows that fail")
    hit.checks += ["log the loss of every batch of the first epoch: a NaN at one batch out of finite ones is a row "
                   "of the data, a loss that climbs into it is a blow-up",
                   "assert torch.isfinite(batch).all() in the data loader"]
    return hit


#: words of a config key that set reduced precision (use_amp, autocast, fp16, half, mixed_precision, precision)
_PRECISION_WORDS = ("amp", "autocast", "fp16", "float16", "half", "mixed", "precision", "dtype")


def _precision_keys(raw: dict) -> list[str]:
    """The keys of a (nested) config that name a precision setting, whatever their value."""
    out: list[str] = []
    for k, v in raw.items():
        words = str(k).lower().replace("-", "_").split("_")
        if any(w in _PRECISION_WORDS for w in words):
            out.append(str(k))
        if isinstance(v, dict):
            out += _precision_keys(v)
    return out


def _lr_note(ev: Evidence, ratio: float) -> str:
    return (f"the learning rate {num(ev.profile.peak_lr)} is {ratio:.1f}x the top of {ev.profile.lr_norm_text()}: a "
            "blow-up is as likely")


def nan_dtype_unknown(ev: Evidence) -> Hit | None:
    """A language model's loss turning NaN for good, out of a calm curve, with the dtype unknown: float16
    overflow first (the public threads: nanoGPT, baby-llama2, BLOOM), data second (NAN_PERSISTENT)."""
    f = next((f for f in ev.of("nan") if f.metric == "train/loss"), None)
    dtype = str(ev.cfg("dtype", "")).lower()
    if f is None or f.evidence.get("recovered") or dtype or ev.series("train/loss_scale") is not None:
        return None
    if ev.profile.kind not in ("lm_pretrain", "lm_finetune", "rnn_lm") or _rising_before(ev, f.start_step):
        return None
    if any(x.severity != "info" and x.kind in ("divergence", "instability", "spike", "grad_norm")
           and x.start_step < f.start_step for x in ev.findings):
        return None  # something built up before it: the blow-up rules and the fallbacks read it
    if _model_fine_after(ev, f.start_step):
        return None  # a float16 overflow makes the gradients non-finite too: here the model trained on
    unseen = _unseen_before(ev, f.start_step)
    hit = Hit(0.3, [f"train/loss became NaN at step {f.start_step} and stayed NaN, with no rise before it"
                    if unseen is None else f"train/loss became NaN at step {f.start_step} and stayed NaN; {unseen}",
                    "the log does not say the dtype: if it was float16, activations or logits past 65504 look the "
                    "same"])
    hit.fixes.append("train in bfloat16 instead of float16 (same range as float32, no loss scaling needed)")
    hit.patch["dtype"] = "bfloat16"
    hit.checks.append("which dtype did the run use? re-run the NaN step in float32: a finite loss there is float16 "
                      "overflow, a NaN again is the data")
    return hit


def nan_after_rise(ev: Evidence) -> Hit | None:
    """The loss climbed (or ran away) in the last points before turning NaN: the model blew up — a too-high
    LR or exploding gradients, and float16 overflow when the dtype allows (handbook 'NaN Loss')."""
    f = next((f for f in ev.of("nan") if f.metric == "train/loss"), None)
    if f is None:
        return None
    rise = _rising_before(ev, f.start_step)
    if rise is None:
        return None
    hit = Hit(0.45, [f"the loss went {num(rise[0])} -> {num(rise[1])} in the last logged points before it became NaN "
                    f"at step {f.start_step}: the model blew up, the data did not bring the NaN in"])
    if rise[1] < 0:
        hit.evidence.append("a loss below zero that keeps falling is an objective without a lower bound diverging")
    else:
        hit.evidence.append(f"a {rise[1] / max(rise[0], 1e-12):.3g}x rise with no NaN in the curve before it: the "
                            "weights ran away first")
    clip_fix(ev, hit)
    hit.fixes.append("lower the learning rate (halve it) and restart from the last checkpoint before the rise")
    return hit


def label_leak(ev: Evidence) -> Hit | None:
    f = next((f for f in ev.of("too_good") if f.evidence.get("leak_pattern")), None)
    if f is None:
        z = next((f for f in ev.of("too_good") if f.evidence.get("exact_zero")), None)
        if z is None:
            return None
        hit = Hit(0.6, [z.message, "a loss of exactly 0 means no target is scored: every label is masked "
                                   "(ignore_index) or the targets are built wrong"])
        hit.fixes += ["count the target tokens that are not ignore_index (-100) per batch: it must be > 0",
                      "check the label construction of the data collator (prompt masking, padding)"]
        return hit
    # from an excerpt the fast fall to ~0 is not in the log: the leak explains it best, but less surely
    hit = Hit(0.6 if f.evidence.get("from_excerpt") else 0.9, [f.message])
    o = ev.first("overfitting")
    if o:
        hit.evidence.append(f"validation loss rose from {num(o.evidence['val_min'])} (step {o.evidence['val_min_step']}) "
                            f"to {num(o.evidence['val_end'])}")
    hit.fixes += ["check the target construction: for a language model the targets are the inputs shifted by one "
                  "(y = x[1:], x = x[:-1]); targets equal to the inputs are copied, not predicted",
                  "print a few (input, target) pairs side by side"]
    return hit


def labels_unlearnable(ev: Evidence) -> Hit | None:
    """Loss stuck from the very start at a level the model should beat: targets independent of the inputs."""
    p = next((f for f in ev.of("plateau") if f.evidence.get("type") == "chance_level"), None) or \
        next((f for f in ev.of("plateau") if f.evidence.get("flat_share", 0) >= 0.7), None)
    if p is None:
        return None
    frozen = next((f for f in ev.of("plateau") if f.evidence.get("type") == "frozen"), None)
    if p.evidence.get("steady_descent") or (frozen is not None and frozen.evidence.get("steady_descent")):
        # explaining away: a held-out loss that falls at every evaluation is learning what the training labels say
        return Hit(0.15, [p.message, "the held-out loss falls at every evaluation: what the model learns from the "
                                     "training labels carries over to new inputs, so the labels match them — it "
                                     "learns slowly"])
    train_end = _train_level_at(ev, math.inf) if frozen is not None else None  # (its last points)
    if frozen is not None and (train_end is None or train_end >= 0.9 * frozen.evidence["level"]):
        why = ("the training loss does not fall below the held-out loss either: the model is not even memorising its "
               "training labels, which it would with labels that do not match their inputs — the weights are not "
               "moving" if train_end is not None else
               "a held-out loss that does not move at all is weights that do not move, whatever the labels say")
        return Hit(0.2, [frozen.message, why],
                   checks=["run the single-batch overfit test: a model that cannot drive one batch to ~0 loss has an "
                           "optimisation fault, one that can but does not generalise has label trouble"])
    if p.evidence.get("type") == "chance_level":
        hit = Hit(0.75, [p.message, "held-out data is predicted no better than by the class frequencies, so the "
                                    "training labels carry no signal the model can use on new inputs"])
        if ev.has("overfitting") or ev.has("too_good"):
            hit.evidence.append("the training loss fell below chance meanwhile: the model memorises labels that do "
                                "not generalise")
        hit.fixes += ["check that labels stay paired with their inputs (a shuffle, sort or join applied to one and not "
                      "the other)", "run the single-batch overfit test and print a few (input, label) pairs"]
        return hit
    lr_ok = not ev.of("slow_convergence") and not any(f.evidence.get("key") == "lr" for f in ev.of("config", serious=False))
    # a small model may lack the capacity to do well, but not to beat a uniform guess over a few classes: a loss
    # pinned at ln C from its first point on is no capacity limit
    at_chance_throughout = bool(p.evidence.get("uniform_classes")) and p.evidence.get("flat_share", 0) >= 0.95
    tiny = (ev.facts.get("n_params") or 1e12) < 1e6 and not at_chance_throughout
    wd_ok = not any(f.evidence.get("key") == "weight_decay" for f in ev.of("config", serious=False))
    if not (lr_ok and wd_ok) or tiny or ev.has("instability") or ev.has("overfitting"):
        return None  # a model that overfits its training set is learning the labels
    hit = Hit(0.6, [f"loss stuck at ~{num(p.evidence['level'])} from step {p.start_step} "
                    f"({100 * p.evidence['flat_share']:.0f}% of the run)"])
    c = p.evidence.get("uniform_classes")
    if c:
        hit.confidence = 0.8
        hit.evidence.append(f"~{num(p.evidence['level'])} is ln({c}) = {math.log(c):.3f}: the loss of a uniform guess "
                            f"over {c} classes — the model predicts the class prior and ignores its inputs")
    lr = ev.cfg_num("lr") or ev.peak_lr
    g = ev.series("train/grad_norm")
    g = g.values[np.isfinite(g.values)] if g is not None else np.empty(0)  # (a norm of ~nan says nothing)
    if lr:
        hit.evidence.append(f"the optimizer is moving (LR {num(lr)}" + (
            f", gradient norm ~{num(float(np.median(g)))})" if g.size else ")"))
    if ev.facts.get("n_params"):
        hit.evidence.append(f"the model ({ev.facts['n_params']:,} parameters) is big enough to do better")
    hit.fixes += ["check that targets are aligned with inputs (no shuffle of labels relative to inputs, the right "
                  "shift for next-token prediction)",
                  "run the single-batch overfit test: if one batch cannot be driven to ~0 loss, data and labels do "
                  "not match"]
    hit.checks.append("compare the plateau with the entropy of the target distribution alone (unigram entropy): a "
                      "loss pinned there means the model ignores the inputs")
    return hit


def heldout_worse_on_fresh_batches(ev: Evidence) -> Hit | None:
    """Validation loss rising while the training loss falls, within the first pass over the data: every training
    batch is new then, so the training loss is itself a held-out measure of the training distribution — the two
    parting means the training targets teach something the held-out targets contradict (labels shifted, permuted
    or built differently for training; Qwen2.5 post-mortem: misaligned labels), not memorisation."""
    from .generalization import first_pass_rise

    o = ev.first("overfitting")
    if o is None or ev.first("too_good") is not None:
        return None
    rise = first_pass_rise(ev, o)
    if rise is None:
        return None
    at = o.evidence["val_min_step"]
    turn, nxt, passes = rise
    t_at = _train_level_at(ev, at)
    hit = Hit(0.6, [f"validation loss turned up at step {at} ({num(o.evidence['val_min'])}), {num(turn)} epochs in, "
                    f"and rose to {num(o.evidence['val_end'])} while the training loss kept falling",
                    f"it was already higher at step {nxt}, {num(passes)} epochs in: in the first pass every training "
                    "batch is new, so this is not memorisation — learning the training targets makes the model worse "
                    "on the held-out ones"])
    if t_at is not None and t_at > o.evidence["val_min"]:
        hit.confidence = 0.7
        hit.evidence.append(f"the training loss ({num(t_at)}) was still above the validation loss when validation "
                            "turned: the model did not fit its training set better than new data")
    shift = _distribution_shift(ev)
    val = ev.series(o.metric) if o.metric else None
    prev = float(val.steps[val.steps < at][-1]) if val is not None and (val.steps < at).any() else at
    if shift is not None and prev < shift[0] <= nxt:
        # the training data itself changed between the two evaluations: a model learning a new domain gets
        # worse on the held-out one (the data order explains the rise; labels need not be wrong)
        hit.confidence = min(hit.confidence, 0.4)
        hit.evidence.append(f"but the training loss stepped up at step {shift[0]}, just before the held-out loss "
                            "rose: new training data can explain the rise")
    hit.fixes += ["print a few (input, target) pairs of the training data and of the evaluation data side by side: "
                  "targets shifted, permuted or built differently in one of them",
                  "check that training and evaluation go through the same preprocessing and collator"]
    hit.checks.append("evaluate on a slice of the training data: if that loss falls while validation rises, the two "
                      "label the same inputs differently")
    return hit


def _train_level_at(ev: Evidence, step: float) -> float | None:
    """The training loss around ``step``: the median of the nearest few logged points."""
    loss = ev.series("train/loss")
    if loss is None or not len(loss):
        return None
    ok = np.isfinite(loss.values)
    st, v = loss.steps[ok], loss.values[ok]
    if not v.size:
        return None
    i = int(np.searchsorted(st, step))
    return float(np.median(v[max(0, i - 2): i + 1]))


def data_order(ev: Evidence) -> Hit | None:
    f = ev.first("data_order")
    if f is None:
        return None
    hit = Hit(0.8, [f.message])
    jumps = [x for x in ev.findings if x.severity != "info" and x.kind in ("spike", "instability")]
    if len(jumps) >= 3:
        hit.confidence = 0.88
        hit.evidence.append(f"{len(jumps)} spikes/excursions go with the level shifts (steps "
                            f"{', '.join(str(x.start_step) for x in jumps[:5])})")
    v = ev.series("val/loss")
    t = ev.series("train/loss")
    if v is not None and t is not None and len(v) >= 3:
        gap = float(np.nanmedian(v.values[len(v) // 2:])) - float(np.nanmedian(t.values[len(t) // 2:]))
        hit.evidence.append(f"validation (mixed data) sits {num(gap)} above the training loss in the second half")
    else:
        hit.evidence.append(f"variance ratio {f.evidence['variance_ratio']:.1f} over blocks of {f.evidence['block']} points")
    hit.fixes += ["shuffle the training data globally (or at least interleave shards/sources) before batching",
                  "for streaming data, use a shuffle buffer larger than the longest same-source run"]
    return hit


def distribution_shift(ev: Evidence) -> Hit | None:
    """A sudden, moderate step up of the loss that the model then starts to learn down again: new data arrived
    (one source after another, an epoch of a different domain), not an optimizer blow-up, which climbs on, or a
    bad batch, which is gone at once (handbook 'Loss Spike': data order)."""
    shift = _distribution_shift(ev)
    if shift is None:
        return None
    at, top_step, level, top, tail, jump_end, new_pass = shift
    hit = Hit(0.6, [f"the loss stepped up from ~{num(level)} to {num(top)} at step {at} within "
                    f"{jump_end} logged points and then fell again to {num(tail)}: a new data distribution being "
                    "learned, not a blow-up (which climbs on) or one bad batch (gone at once)",
                    "no gradient-norm build-up before the step"])
    if new_pass is not None:
        # shuffled data looks the same on both sides of an epoch boundary (if anything the loss dips, the data
        # is seen again); a jump exactly there is data that differs from what the last pass ended with
        hit.confidence = 0.75
        hit.evidence.append(f"the step comes as the epoch counter passes {new_pass} (step {top_step}): the new "
                            "pass starts on different data than the last one ended with, so the data is ordered")
    hit.fixes += ["shuffle the training data globally (or interleave sources) so every batch mixes domains",
                  "if the order is deliberate (curriculum), expect these steps and judge the run by validation"]
    return hit


def _distribution_shift(ev: Evidence) -> tuple[int, int, float, float, float, int, int | None] | None:
    """(step of the jump, step of its top, level before, top, level after, points to the top, epoch passed) of
    the first step up of the training loss that is then learned down again; None when there is none."""
    loss = ev.series("train/loss")
    if loss is None:
        return None
    for f in sorted(ev.of("divergence") + [s for s in ev.of("spike") if not s.evidence.get("recovered")],
                    key=lambda f: f.start_step):
        ok = np.isfinite(loss.values)
        st, v = loss.steps[ok], loss.values[ok]
        before = v[st < f.start_step][-8:]
        after = v[st >= f.start_step]
        if before.size < 3 or after.size < 8:
            continue
        level = float(np.median(before))
        up = np.flatnonzero(after >= 1.1 * level)
        if level <= 0 or not up.size or after[:16].max() < 1.1 * level:
            continue
        # the jump itself: the highest point soon after the finding opens (it may open at the best point a few
        # steps before the jump), reached within 4 logged points of where the loss first left its level
        p = int(np.argmax(after[:16]))
        j = next(i for i in range(max(0, p - 3), p + 1) if after[i] >= 1.1 * level)
        sts = st[st >= f.start_step]
        at, top_step = int(sts[j]), int(sts[p])
        after = after[j:]
        jump_end = p - j + 1
        top = float(after[jump_end - 1])
        tail = float(np.median(after[-max(3, after.size // 5):]))
        new_pass = _epoch_boundary(ev, at, top_step)
        # a step (reached within a few points), of +10..200 %, followed by a fresh descent of >= 5 %; at the start
        # of a new pass over the data any height (the new data can be far from what the model last saw)
        if level <= 0 or not (1.1 * level <= top and (top <= 3.0 * level or new_pass is not None)) or \
                tail > 0.95 * top or tail <= level * 1.02:
            continue
        if _scale_drop_at(ev, at) or (new_pass is None and [g for g in ev.of("grad_norm", serious=False)
                                                            if g.evidence.get("type") == "explosion"
                                                            and abs(g.start_step - at) <= 3 * ev.profile.log_interval]):
            continue  # a float16 overflow or a gradient burst at the jump: an optimisation event
        if [g for g in ev.typed("instability", "grad_growth") + ev.typed("grad_norm", "precursor")
                if g.severity != "info"]:
            return None  # the gradients were building up: an optimisation event
        return at, top_step, level, top, tail, jump_end, new_pass
    return None


def _epoch_boundary(ev: Evidence, first: int, last: int) -> int | None:
    """The whole epoch number the logged epoch counter passes between the point before ``first`` and ``last``."""
    e = ev.series("train/epoch")
    if e is None or len(e) < 3:
        return None
    ok = np.isfinite(e.values)
    st, v = e.steps[ok], e.values[ok]
    before, upto = v[st < first], v[st <= last]
    if not before.size or not upto.size:
        return None
    lo, hi = float(before[-1]), float(upto[-1])
    n = math.floor(hi + 1e-9)
    return n if n >= 1 and lo < n - 1e-9 else None


def class_imbalance(ev: Evidence) -> Hit | None:
    counts = ev.cfg("class_counts")
    if not isinstance(counts, (list, tuple, dict)):
        return None
    vals = [float(v) for v in (counts.values() if isinstance(counts, dict) else counts)
            if isinstance(v, (int, float)) and v > 0]
    if len(vals) < 2 or max(vals) / min(vals) < 10:
        return None
    trouble = [k for k in ("spike", "plateau", "instability", "overfitting") if ev.has(k)]
    if not trouble:
        return None
    hit = Hit(0.55, [f"class counts range {int(min(vals))}..{int(max(vals))} ({max(vals) / min(vals):.0f}:1)",
                     f"the curves show {', '.join(trouble)}"])
    hit.fixes += ["weight the loss by inverse class frequency or use focal loss",
                  "oversample minority classes / undersample the majority class"]
    return hit


def hardware(ev: Evidence) -> Hit | None:
    """Throughput regressions and spikes without a gradient co-signal point at the machine, not the model."""
    thr = ev.first("throughput", serious=False)
    spikes = ev.of("spike")
    g = ev.series("train/grad_norm")
    quiet = []
    if g is not None and spikes:
        for s in spikes:
            near = ev.window("train/grad_norm", s.start_step - 2, s.start_step + 2)
            base = ev.window("train/grad_norm", s.start_step - 100, s.start_step - 5)
            if near.size and base.size and np.nanmax(near) < 2 * np.nanmedian(base):
                quiet.append(s)
    if thr is None and not quiet:
        return None
    hit = Hit(0.0, [])
    if thr:
        hit.confidence = 0.45 if thr.severity != "info" else 0.25
        hit.curve_backed = thr.severity != "info"
        hit.evidence.append(thr.message)
        hit.evidence.append("the loss itself is unaffected" if not ev.of("spike") else "spikes in the same run")
    if quiet:
        hit.confidence = max(hit.confidence, 0.25)
        hit.evidence.append(f"the loss spike at step {quiet[0].start_step} has no gradient-norm spike with it "
                            "(silent data corruption would look like that)")
    if len(hit.evidence) < 2:
        hit.evidence.append("one run cannot prove a hardware fault; a re-run of the same steps can")
    hit.fixes += ["re-run the same steps on another node: a fault that does not reproduce is the hardware (Megatron's "
                  "rerun state machine does this)", "check GPU health (ECC errors, clocks, thermal throttling) and "
                  "the data loader / network for stragglers"]
    return hit


def _scaled(hit: Hit | None, factor: float) -> Hit | None:
    if hit is not None:
        hit.confidence *= factor
    return hit


RULES = (
    Rule("BAD_BATCH", "bad_data_batch", "handbook 'Loss Spike': abnormal samples; spike + recovery", bad_batch),
    Rule("NAN_TRANSIENT", "loss_nan_from_data", "handbook 'NaN Loss': division by zero in the loss", nan_transient),
    Rule("NAN_PERSISTENT", "nan_in_input", "Qwen2.5 post-mortem: NaN/Inf in the input data", nan_persistent),
    Rule("NAN_PERSISTENT_LOSS", "loss_nan_from_data", "handbook 'NaN Loss': division by zero in the loss; the NaN "
         "gradients of one batch poison the weights", nan_persistent_loss),
    Rule("NAN_FIRST_EPOCH", "nan_in_input", "Qwen2.5 post-mortem: NaN/Inf in the input data; handbook 'NaN Loss'",
         nan_from_first_epoch),
    Rule("NAN_DTYPE_UNKNOWN", "fp16_precision", "handbook 'NaN Loss': FP16 overflow is the usual NaN of LM training",
         nan_dtype_unknown),
    Rule("NAN_AFTER_RISE", "lr_too_high", "handbook 'NaN Loss': a loss that climbs into NaN is an LR blow-up",
         nan_after_rise),
    Rule("NAN_AFTER_RISE_GRAD", "gradient_explosion", "handbook 'NaN Loss': exploding gradients before the NaN",
         lambda ev: _scaled(nan_after_rise(ev), 0.8)),
    Rule("LABEL_LEAK", "label_misalignment", "Qwen2.5 post-mortem: labels misaligned; train -> 0 while val explodes",
         label_leak),
    Rule("LABEL_STUCK", "label_misalignment", "Qwen2.5 post-mortem: wrong labels -> loss cannot fall", labels_unlearnable),
    Rule("LABEL_TRAIN_MISMATCH", "label_misalignment", "Qwen2.5 post-mortem: misaligned labels; held-out loss rising "
         "on the first pass", heldout_worse_on_fresh_batches),
    Rule("DATA_ORDER", "data_order", "handbook 'Loss Spike': data order problems; level shifts", data_order),
    Rule("DATA_SHIFT", "data_order", "handbook 'Loss Spike': data order; a step up that is then learned down",
         distribution_shift),
    Rule("CLASS_IMBALANCE", "class_imbalance", "Qwen2.5 post-mortem: sample imbalance -> oscillating loss",
         class_imbalance),
    Rule("HARDWARE", "hardware_fault", "prior art: PaLM/OPT restarts, Megatron reruns; non-reproducible faults", hardware),
)
