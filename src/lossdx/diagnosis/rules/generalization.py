"""Capacity and generalisation causes (handbook: overfitting, plateau from capacity, weight decay;
nanoGPT analysis: tokens per iteration x iterations vs dataset size -> epochs -> repetition)."""

from __future__ import annotations

import math

import numpy as np

from ..engine import Evidence, Hit, Rule
from ._common import num


def epoch_at(ev: Evidence, step: float) -> float | None:
    """Passes over the training set by ``step``: the trainer's own fractional epoch counter (HF: 0.42), else tokens
    seen over the dataset. An integer counter (Lightning's epoch index) says which pass, not how far into it. The
    overfitting detector reads epochs by the same function."""
    from ...detectors.curve import _epochs

    return _epochs(ev, step, ev.series("train/epoch"))


def first_pass_rise(ev: Evidence, o) -> tuple[float, int, float] | None:
    """(epochs at the validation minimum, step of the next evaluation, epochs there) when validation was already
    higher at the evaluation after its minimum and that evaluation still came within the first pass over the data:
    no training batch had been seen twice when held-out loss started to rise."""
    v = ev.series("val/loss")
    if o is None or v is None:
        return None
    at = o.evidence["val_min_step"]
    ok = np.isfinite(v.values)
    later = v.steps[ok & (v.steps > at)]
    turn = epoch_at(ev, at)
    if turn is None or not later.size:
        return None
    nxt = int(later[0])
    passes = epoch_at(ev, nxt)
    if passes is None or passes >= 1.0 or ev.value_near("val/loss", nxt) <= o.evidence["val_min"]:
        return None
    return turn, nxt, passes


def overfitting_small_data(ev: Evidence) -> Hit | None:
    o = ev.first("overfitting")
    epochs = ev.facts.get("epochs_seen")
    logged = ev.series("train/epoch")
    if epochs is None and logged is not None and len(logged) and np.isfinite(logged.values).any():
        epochs = float(np.nanmax(logged.values))  # the trainer's own epoch counter
    too_good = next((f for f in ev.of("too_good") if not f.evidence.get("leak_pattern")), None)
    if o is None and not (too_good and epochs and epochs > 3):
        return None
    hit = Hit(0.55, [])
    if o:
        hit.evidence.append(o.message)
    if too_good:
        hit.evidence.append(too_good.message)
    if epochs is not None:
        if ev.facts.get("epochs_seen") is not None:
            hit.evidence.append(f"{num(epochs)} epochs over the dataset ({ev.facts.get('tokens_seen', 0):,} tokens "
                                f"seen, {ev.cfg('dataset_tokens', 0):,} in the dataset)")
        else:
            hit.evidence.append(f"{num(epochs)} epochs over the training set (the trainer's epoch counter)")
        if epochs >= 2:
            hit.confidence = 0.9
        elif epochs < 0.9:
            hit.confidence = 0.3  # less than one pass: repetition cannot be the reason
    elif ev.cfg("num_epochs"):
        hit.evidence.append(f"config {ev.raw_key('num_epochs')} = {ev.cfg('num_epochs')}")
        hit.confidence = 0.65 if ev.cfg("num_epochs") > 1 else 0.4
    rise = first_pass_rise(ev, o)
    if rise is not None:
        # memorising needs repeated batches: a rise within the first pass is not repetition (LABEL_TRAIN_MISMATCH)
        hit.confidence = min(hit.confidence, 0.3)
        hit.evidence.append(f"validation was already rising {num(rise[2])} epochs in, before any batch was seen twice")
    jolt = _train_jolt_at(ev, o)
    if jolt is not None:
        # memorising lowers the training loss smoothly while held-out loss turns; a held-out turn where the training
        # loss itself jumped is the model knocked off (new data, a blow-up), which the rules of that jump explain
        hit.confidence = min(hit.confidence, 0.5)
        hit.evidence.append(f"validation turned at step {o.evidence['val_min_step']}, where the training loss itself "
                            f"jumped ({jolt.kind} at step {jolt.start_step}): not the smooth fall of memorisation")
    leak = next((f for f in ev.of("too_good") if f.evidence.get("leak_pattern")), None)
    if leak is not None and (epochs is None or epochs < 2):
        hit.confidence = min(hit.confidence, 0.25)  # train ~0 with val exploding is a leak, not repetition
    if len(hit.evidence) < 2:
        hit.evidence.append("the dataset size is unknown (give dataset_tokens in the config to check repetition)")
    if o:
        hit.fixes.append(f"keep the checkpoint of step {o.evidence['val_min_step']} (best validation loss) and stop "
                         "there: early stopping")
    hit.fixes += ["get more (or more diverse) data, or train fewer epochs", "add dropout 0.05-0.1 (fine-tuning) "
                  "and weight decay 0.1 (not on bias/LayerNorm)"]
    if (ev.cfg_num("dropout") or 0) < 0.05:
        hit.patch["dropout"] = 0.1
    return hit


def _train_jolt_at(ev: Evidence, o):
    """A serious training-loss spike or divergence that starts within a few logged points of the step where the
    validation loss turned (``o``, an overfitting finding), or None."""
    if o is None or "val_min_step" not in o.evidence:
        return None
    near = 3 * max(1, ev.profile.log_interval)
    turn = int(o.evidence["val_min_step"])
    return next((f for f in ev.findings if f.kind in ("spike", "divergence") and f.severity != "info"
                 and f.metric == "train/loss" and abs(f.start_step - turn) <= near), None)


#: a language model's next-token logits are a linear map of its hidden state: a state narrower than the few dozen
#: characters of even a character-level vocabulary cannot rank them freely (the softmax bottleneck)
_NARROW_LM_WIDTH = 32


def _narrow_lm(ev: Evidence, p) -> Hit | None:
    """The parameter count is unknown (no vocabulary in the config), but the hidden width alone says it."""
    width = ev.cfg_num("n_embd")
    if not width or width >= _NARROW_LM_WIDTH or ev.profile.kind not in ("rnn_lm", "lm_pretrain"):
        return None
    hit = Hit(0.55, [f"loss flat at ~{num(p.evidence['level'])} since step {p.start_step}",
                     f"hidden width {ev.raw_key('n_embd') or 'n_embd'} = {int(width)}: the next-token logits are a "
                     f"linear map of {int(width)} numbers, fewer than the dozens of characters (or thousands of "
                     "tokens) they must rank"])
    hit.fixes.append(f"widen the model (e.g. {int(width)} -> {max(128, 8 * int(width))} hidden units) before tuning "
                     "anything else")
    return hit


def _narrow_lm_advice(ev: Evidence) -> Hit | None:
    """No stall in the curve (yet): the width alone is advice, with what would decide it."""
    width = ev.cfg_num("n_embd")
    if not width or width >= _NARROW_LM_WIDTH or ev.profile.kind not in ("rnn_lm", "lm_pretrain"):
        return None
    hit = Hit(0.3, [f"hidden width {ev.raw_key('n_embd') or 'n_embd'} = {int(width)}: the next-token logits are a linear "
                    f"map of {int(width)} numbers, fewer than the dozens of characters (or thousands of tokens) they "
                    "must rank", ("the loss is still falling" if _still_falling(ev) else "the curve shows no stall")
                    + ": the log cannot tell yet whether the width or the steps limit it"], curve_backed=False)
    hit.checks.append(f"train the same run {max(128, 8 * int(width))} wide for the same steps: a much lower loss "
                      "confirms capacity")
    return hit


def _still_falling(ev: Evidence) -> bool:
    """The finite training loss is lower over the last third of the log than over the middle third."""
    t = ev.series("train/loss")
    v = t.values[np.isfinite(t.values)] if t is not None else np.empty(0)
    if v.size < 6:
        return False
    n = v.size // 3
    return float(np.median(v[-n:])) < float(np.median(v[n:2 * n]))


def capacity_too_small(ev: Evidence) -> Hit | None:
    p = ev.first("plateau")
    n = ev.facts.get("n_params")
    if p is None and not ev.has("slow_convergence"):
        return _narrow_lm_advice(ev)
    if p is not None and not n:
        first = ev.facts.get("train_loss_first")
        return None if first and p.evidence["level"] > 0.8 * first else _narrow_lm(ev, p)
    if p is None or not n:
        return None
    first = ev.facts.get("train_loss_first")
    if first and p.evidence["level"] > 0.8 * first:
        return None  # stuck near the starting loss: the model has not used the capacity it has
    tokens = ev.facts.get("tokens_seen") or 0
    per_param = tokens / n if n else 0
    if per_param < 20 and n >= 1e6:
        return None
    size = (f"{n:,} parameters for {tokens:,} tokens ({num(per_param)} tokens per parameter; Chinchilla-optimal is "
            "~20): the model, not the data, is the limit") if tokens else \
        f"{n:,} parameters (tokens seen unknown: give batch size and sequence length to compare with the data)"
    hit = Hit(0.55, [f"loss flat at ~{num(p.evidence['level'])} since step {p.start_step}", size])
    if n < 1e6:
        hit.confidence = 0.7
        hit.evidence.append(f"a very small model (n_layer={ev.cfg('n_layer')}, n_embd={ev.cfg('n_embd')})")
    if tokens and per_param < 20:
        # fewer tokens than compute-optimal for this size: the model has more parameters than its data has trained,
        # so its size does not explain the stall (a bigger one would be trained even less); only a reading
        hit.confidence = 0.3
        hit.evidence[1] = (f"{n:,} parameters for {tokens:,} tokens ({num(per_param)} tokens per parameter, under the ~20 "
                           "of a compute-optimal run): the data seen, not the size, limits this model")
        hit.checks.append("train the same model 3x longer (or a 4x smaller one as long): a capacity limit keeps the "
                          "loss where it is, an under-trained model goes lower")
    odd = [f.evidence["key"] for f in ev.of("config", serious=False)
           if f.evidence.get("key") in ("weight_decay", "dropout", "lr")]
    if odd:
        # explaining away: an extreme regulariser or LR explains a stall as well as the size does, and a model of
        # this size trains fine without it
        hit.confidence *= 0.6
        hit.evidence.append(f"(the config's {', '.join(odd)} explains the stall as well)")
    v, t = ev.series("val/loss"), ev.series("train/loss")
    if v is not None and t is not None and len(v) > 2 and len(t) > 2:
        import numpy as np

        gap = float(np.nanmedian(v.values[-3:])) - float(np.nanmedian(t.values[-len(t) // 10:]))
        if gap < 0.15 * float(np.nanmedian(t.values[-len(t) // 10:])):
            hit.evidence.append(f"train and validation stay close (gap {num(gap)}): underfitting, not overfitting")
    if tokens and per_param < 20:
        hit.fixes.append(f"train on more tokens before scaling the model up: ~{20 * n:,} tokens (20 per parameter) is "
                         f"compute-optimal for {n:,} parameters")
        return hit
    hit.fixes += ["scale the model up (more layers / wider), keeping ~20 tokens per parameter (Chinchilla)",
                  f"for this budget of {tokens:,} tokens a compute-optimal model has ~{max(1, tokens // 20):,} parameters"]
    return hit


def over_regularization(ev: Evidence) -> Hit | None:
    cfgs = [f for f in ev.of("config", serious=False) if f.evidence.get("key") in ("weight_decay", "dropout")]
    if not cfgs:
        return None
    hit = Hit(0.65, [f"config {ev.raw_key(f.evidence['key']) or f.evidence['key']} = {num(f.evidence['value'])}: "
                     f"{f.message.split(':', 1)[-1].strip()}" for f in cfgs])
    growth = ev.typed("instability", "grad_growth")
    sat = ev.typed("grad_norm", "clip_saturation")
    if growth:
        hit.evidence.append(f"gradient norm grew {growth[0].evidence['growth']:.1f}x while the loss kept falling: the "
                            "decay keeps pulling the weights back")
        hit.confidence += 0.15
        hit.promotes.append(growth[0])
    if sat:
        hit.evidence.append(f"clipping active on {100 * sat[0].evidence['share_clipped']:.0f}% of steps")
        hit.confidence += 0.05
    if ev.has("plateau"):
        hit.evidence.append(f"loss flat at ~{num(ev.first('plateau').evidence['level'])}")
        hit.confidence += 0.05
    elif any(f.evidence["key"] == "weight_decay" for f in cfgs) and (ev.profile.lr_ratio_high() or 0) < 3:
        # (with an LR several times its norm the stall is the LR's first: lr x decay is large because the LR is)
        # a stall over most of the run, however plain its level, is what a decay that removes more of each weight
        # per step than the data adds does: the weights stop moving forward (the plateau is info without a yardstick)
        stall = next((f for f in ev.of("plateau", serious=False) if f.evidence.get("flat_share", 0) >= 0.6), None)
        if stall is not None:
            hit.evidence.append(f"the training loss stopped improving at ~{num(stall.evidence['level'])} from step "
                                f"{stall.start_step} ({100 * stall.evidence['flat_share']:.0f}% of the run)")
    turned = _train_turned_up(ev) if any(f.evidence["key"] == "weight_decay" for f in cfgs) else None
    if turned:
        hit.evidence.append(turned)
        hit.confidence += 0.1
    if len(hit.evidence) < 2:
        hit.curve_backed = False  # the config alone: advice until the curves show the underfitting
        hit.evidence.append("the curves show nothing of it yet (log the gradient norm: it grows while the loss falls "
                            "when decay fights the data)")
    else:
        hit.promotes.extend(cfgs)
    for f in cfgs:
        if f.evidence["key"] == "weight_decay":
            _decay_fix(ev, hit)
        else:
            hit.fixes.append("dropout 0 for pre-training, 0.05-0.1 for fine-tuning")
            hit.patch["dropout"] = 0.1
    return hit


def _train_turned_up(ev: Evidence) -> str | None:
    """The training loss fell to its minimum before the last third of the run and then rose steadily to the end, at
    an LR that did not rise, with validation rising alongside (no gap opening: not memorisation). A fit that the
    data no longer holds: the weight decay pulls the weights back toward zero faster than the gradients move them.
    Judged on medians of tenths of the curve, so one noisy point neither makes nor hides the turn."""
    t = ev.series("train/loss")
    if t is None or len(t) < 8:
        return None
    ok = np.isfinite(t.values)
    steps, vals = t.steps[ok], t.values[ok]
    if vals.size < 8:
        return None  # (a loss that is NaN at most points has no curve to turn)
    # tenths of the curve (single points below ten), the last one ending at the last point
    parts = np.array_split(np.arange(vals.size), min(10, vals.size))
    meds = np.array([float(np.median(vals[p])) for p in parts])
    n = meds.size
    i = int(np.argmin(meds))
    low = float(meds[i])
    if low <= 0 or i < 1 or i > (2 * n) // 3 or float(meds[0]) < 1.1 * low:
        return None  # no fall first, or the minimum is in the last third
    if float(meds[-1]) < 1.05 * low or float(meds[-2]) < 1.02 * low or float(meds[-1]) < float(meds[-2]):
        return None  # not a steady rise to the end
    at = int(steps[parts[i][int(np.argmin(vals[parts[i]]))]])
    lr = ev.series("train/lr")
    lr_note = "with no LR logged to show the schedule"
    if lr is not None and len(lr) >= 2:
        before = lr.values[lr.steps <= at]
        if before.size and float(lr.values[-1]) > 1.01 * float(before[-1]):
            return None  # the LR rose again (a restart, a cyclic schedule): the rise is the LR's
        if before.size:
            lr_note = "at an LR that did not rise"
    v = ev.series("val/loss")
    val_note = "no validation loss logged" if v is None or not len(v) else f"only {len(v)} evaluation(s) logged"
    if v is not None and len(v) >= 3:
        vv = v.values[np.isfinite(v.values)]
        if vv.size < 3 or float(vv[-1]) < float(np.min(vv)) * 1.02:
            return None  # validation still at its best: a different story
        val_note = "validation rising alongside"
    return (f"train loss turned up after its minimum {num(low)} near step {at}: {num(float(meds[-1]))} at the end "
            f"(+{100 * (float(meds[-1]) / low - 1):.0f}%), {val_note}, {lr_note}: the decay pulls the fit back")


#: config keys that give the width of a model's hidden layer (MLPs, RNNs, transformers)
_WIDTH_KEYS = ("hidden", "hidden_size", "hidden_dim", "hidden_units", "n_hidden", "num_hidden", "width", "units",
               "d_model", "n_embd")


def _width(ev: Evidence) -> tuple[str, int] | None:
    for key in _WIDTH_KEYS:
        v = ev.raw_value(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1 and float(v).is_integer():
            return key, int(v)
    return None


def narrow_model_learns_slowly(ev: Evidence) -> Hit | None:
    """A from-scratch run descending far slower than a healthy one, at a usual LR, with a hidden layer of a handful
    of units: every input is squeezed through a few numbers, so the model fits the data slowly and only roughly
    (handbook 'Plateau' cause: capacity too small). The LR is the other reading; its norm tells them apart."""
    slow = ev.first("slow_convergence")
    w = _width(ev)
    if slow is None or w is None:
        return None
    key, width = w
    c = ev.profile.n_classes
    if width > 8 or (c and width >= c):
        return None  # (a layer as wide as the classes it separates is no bottleneck)
    what = (f"fewer than the {c} classes it must tell apart" if c else
            f"every input is squeezed through {width} numbers")
    hit = Hit(0.45, [slow.message, f"config {key} = {width}: a hidden layer of {width} unit{'s' if width > 1 else ''}, "
                                   f"{what}"])
    p, lr = ev.profile, ev.peak_lr
    if lr and (p.lr_ratio_low() or 0) <= 1 and (p.lr_ratio_high() or 0) <= 1:
        hit.confidence = 0.6
        hit.evidence.append(f"the learning rate {num(lr)} is within {p.lr_norm_text()}: the steps are not too small, "
                            "the model is")
    hit.fixes.append(f"widen the hidden layer ({key}: {width} -> {max(64, 16 * width)}) and compare the first "
                     "10% of the run")
    if key == "n_embd":
        hit.patch["n_embd"] = max(64, 16 * width)
    hit.checks.append("train a model 10x wider for the same steps: a much faster descent confirms capacity, the same "
                      "slow descent points at the LR or the data")
    return hit


def collapsed_to_uniform(ev: Evidence) -> Hit | None:
    """A classifier's held-out loss frozen at exactly ln C, without a trend: it outputs the uniform distribution
    for every input (logits ~0) and stays there. An LR too small leaves the model where its init put it and still
    creeps down; labels that do not match would still be memorised; a weight decay far too strong holds every
    weight at ~0, where the data's gradients and the decay balance (handbook 'Weight decay': too large ->
    underfitting)."""
    p = next((f for f in ev.of("plateau") if f.evidence.get("type") == "frozen"), None)
    if p is None or not p.evidence.get("uniform_classes") or p.evidence.get("steady_descent"):
        return None
    if (ev.profile.lr_ratio_high() or 0) > 1 or ev.has("divergence") or \
            any(s.evidence.get("early") and s.evidence.get("from_start") for s in ev.of("spike")):
        return None  # a blown-up start kills a network too: the LR rules read that
    wd = ev.cfg_num("weight_decay")
    if wd is not None and wd <= 0.1 and not _decay_flagged(ev):
        return None  # a usual decay (at a usual LR: lr x weight_decay) cannot hold the weights at zero
    c = p.evidence["uniform_classes"]
    hit = Hit(0.5, [p.message, f"ln({c}) = {np.log(c):.4f} is the loss of a uniform prediction: the model outputs the "
                               "same flat distribution for every input (its logits are ~0) and does not leave it — "
                               "what a weight decay pulling every weight back to zero as fast as the data moves it "
                               "produces"])
    if wd is not None:
        hit.confidence = 0.75
        hit.evidence.append(f"config {ev.raw_key('weight_decay') or 'weight_decay'} = {num(wd)}")
    hit.checks.append("log the weight norm: near zero and flat means the decay holds the weights; check weight_decay "
                      "(0.01-0.1 is usual) and whether the bias and norm weights are decayed too")
    _decay_fix(ev, hit)
    return hit


#: the shrink per step (lr x weight_decay) of the usual recipes' top: SGD 0.1 x 5e-4 ... AdamW 1e-3 x 0.1
_USUAL_SHRINK = 1e-4


def _decay_flagged(ev: Evidence) -> bool:
    """The config check judged the weight decay too strong (by itself, or by lr x weight_decay)."""
    return any(f.evidence.get("key") == "weight_decay" for f in ev.of("config", serious=False))


def _decay_fix(ev: Evidence, hit: Hit) -> None:
    """A weight decay of 0.1 at most, and at most the usual shrink per step at this run's LR: lowering a decay of 0.05
    that an LR of 1 makes shrink every weight by 5 % per step, never raising it to 0.1."""
    wd, lr = ev.cfg_num("weight_decay"), ev.cfg_num("lr") or ev.peak_lr
    lr = lr if lr and math.isfinite(lr) and lr > 0 else None
    target = min(0.1, _USUAL_SHRINK / lr) if lr else 0.1
    if wd is not None and target >= wd:
        target = wd / 10  # (the decay already within the rule; held there anyway: a tenth of it)
    target = float(f"{target:.2g}")
    at = f" at lr {num(lr)} (lr x weight_decay <= {_USUAL_SHRINK:g})" if lr and target < 0.1 else " (0.01-0.1 is usual)"
    hit.fixes.append(f"weight decay {num(target)}{at}, and not on biases / LayerNorm weights")
    hit.patch["weight_decay"] = target


RULES = (
    Rule("OVERFIT_SMALL_DATA", "overfitting_small_data",
         "handbook Q4 / nanoGPT analysis: val rises while train falls; epochs over a small dataset",
         overfitting_small_data),
    Rule("CAPACITY", "capacity_too_small", "handbook 'Plateau' cause: model capacity too small; nanoGPT analysis",
         capacity_too_small),
    Rule("OVER_REGULARIZATION", "over_regularization", "handbook 'Weight decay': too large -> underfitting",
         over_regularization),
    Rule("CAPACITY_NARROW_SLOW", "capacity_too_small", "handbook 'Plateau' cause: model capacity too small; slow "
         "descent at a usual LR", narrow_model_learns_slowly),
    Rule("COLLAPSED_UNIFORM", "over_regularization", "handbook 'Weight decay': too large -> the weights held at "
         "zero, a uniform prediction", collapsed_to_uniform),
)
