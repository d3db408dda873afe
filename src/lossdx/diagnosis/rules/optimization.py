"""Optimisation causes (Qwen2.5 post-mortem: LR too high, gradient explosion; handbook: spikes,
divergence, plateau, NaN; nanoGPT analysis: LR and warmup critique)."""

from __future__ import annotations

import math

import numpy as np

from ...config.hparams import is_float16
from ...detectors._stats import diff_sigma
from ..engine import Evidence, Hit, Rule
from ._common import clip_fix, halve_lr_fix, num, total_steps, warmup_fix

def _lr_ratio(ev: Evidence) -> float | None:
    """Peak LR over the top of the usual range for this kind of run (the run context's norm)."""
    return ev.profile.lr_ratio_high()


def _lr_text(ev: Evidence) -> str:
    """'peak learning rate 0.3 (100x the top of the usual ...)' — only ever said of an LR above its norm."""
    p = ev.profile
    r = p.lr_ratio_high() or 0
    src = "logged" if p.lr_source == "logged" else f"config {ev.raw_key('lr') or 'lr'}"
    return f"peak learning rate {num(p.peak_lr)} ({src}) is {r:.0f}x the top of {p.lr_norm_text()}"


_TROUBLE = ("spike", "divergence", "nan", "instability", "grad_norm", "plateau")


def _explained_by_data_order(ev: Evidence, hit: Hit) -> Hit:
    """Domain-ordered data makes the loss and the gradients jump too: with a data-order finding the
    optimisation reading loses weight (explaining away)."""
    if ev.has("data_order"):
        hit.confidence *= 0.6
        hit.evidence.append("(part of this is explained by the data-order level shifts)")
    return hit


def early_blowup(ev: Evidence) -> Hit | None:
    """Loss rising above its starting value in the first steps: the step size is too big for a fresh model."""
    f = next((f for f in ev.of("spike") if f.evidence.get("early") and f.evidence.get("from_start")), None)
    if f is None:
        return None  # a rise early in an excerpt of a long run says nothing about the start of training
    came_down = "before coming down" if f.evidence.get("recovered") else "and did not come back down"
    hit = Hit(0.6, [f"the loss climbed from {num(f.evidence['baseline'])} to {num(f.evidence['peak'])} at step "
                    f"{f.evidence['peak_step']}, above its starting value, {came_down}"])
    if (_lr_ratio(ev) or 0) > 1:
        hit.evidence.append(_lr_text(ev))
        hit.confidence += 0.1
    else:
        span = max(ev.run_length(), 1)
        at = f.evidence["peak_step"] - (ev.run.step_range() or (0, 0))[0]
        hit.evidence.append(f"the rise comes {100 * at / span:.0f}% into the run, while the model is fresh: the first "
                            "updates were too large for it")
    halve_lr_fix(ev, hit)
    return hit


def unstable_high_lr(ev: Evidence) -> Hit | None:
    """Grad norm growing and exploding while the loss stalls high: updates too large to settle."""
    growth = ev.typed("instability", "grad_growth")
    explosions = [f for f in ev.of("grad_norm", serious=False) if f.evidence.get("type") == "explosion"]
    plateau = ev.first("plateau")
    ratio = _lr_ratio(ev)
    if not growth or (not explosions and not plateau):
        return None
    g = growth[0].evidence
    conf = 0.4 + (0.15 if len(explosions) >= 3 else 0) + (0.15 if ratio and ratio >= 1.5 else 0)
    promotes = [growth[0]]
    hit = Hit(conf, [f"gradient norm grew {g['growth']:.1f}x during training ({num(g['from'])} -> {num(g['to'])})"],
              promotes=promotes)
    if explosions:
        hit.evidence.append(f"{len(explosions)} gradient-norm explosion(s), e.g. x{explosions[0].evidence['ratio']:.0f} "
                            f"at step {explosions[0].evidence['peak_step']}")
    if plateau:
        hit.evidence.append(f"loss stalled at ~{num(plateau.evidence['level'])} from step {plateau.start_step}")
    if ratio and ratio > 1:
        hit.evidence.append(_lr_text(ev))
    halve_lr_fix(ev, hit)
    clip_fix(ev, hit)
    hit.fixes.append("add z-loss (1e-4) on the output logits to keep them from growing (DeepSeek / PaLM)")
    return _explained_by_data_order(ev, hit)


def lr_far_above_norm(ev: Evidence) -> Hit | None:
    """A peak LR several times above the usual range for this optimizer and kind of run (the run context's
    norm, not one global constant), with the curves in trouble: the strongest single piece of evidence there
    is (handbook Q3; Qwen2.5 post-mortem: LR too high). Without trouble in the curves it is advice only."""
    r = _lr_ratio(ev)
    if not r or r < 3:
        return None
    trouble = [k for k in _TROUBLE if ev.has(k)]
    if not trouble:
        # advice grows with the distance from the norm (0.2 at 3x, the advice cap 0.3 from 10x)
        return Hit(round(0.2 + 0.1 * min(1.0, (r - 3) / 7), 2),
                   [_lr_text(ev), "the curves show no trouble yet: advice, not a verdict"],
                   curve_backed=False, fixes=[f"if the loss turns unstable, lower the LR toward {num(ev.profile.lr_range[1])}"])
    conf = 0.6 if r < 10 else (0.75 if r < 100 else 0.85)
    hit = Hit(conf, [_lr_text(ev), f"the curves show {', '.join(trouble)}"])
    halve_lr_fix(ev, hit)
    if r >= 10:
        hit.fixes.insert(0, f"bring the LR into {ev.profile.lr_norm_text()} (e.g. {num(ev.profile.lr_range[1] / 3)}) "
                            "before anything else: halving is not enough at this distance")
    return hit


def plateau_with_high_lr(ev: Evidence) -> Hit | None:
    """Stuck high with an LR many times the usual: the optimizer bounces around the valley instead of
    descending into it (nanoGPT analysis: 1e-3 already 'overshoots' on small data)."""
    p = ev.first("plateau")
    ratio = _lr_ratio(ev)
    if p is None or not ratio or ratio < 3:
        return None
    conf = min(0.6, 0.35 + 0.25 * min(1.0, (ratio - 3) / 3))
    hit = Hit(conf, [f"loss flat at ~{num(p.evidence['level'])} since step {p.start_step}", _lr_text(ev)])
    if ev.cfg("grad_clip") is not None and not ev.cfg_num("grad_clip"):
        hit.evidence.append("no gradient clipping in the config")
    halve_lr_fix(ev, hit)
    clip_fix(ev, hit)
    return hit


def grad_precursor(ev: Evidence) -> Hit | None:
    """Gradient norm climbing in the steps before a loss event: an optimisation instability building up
    (PaLM/BLOOM/OLMo spikes: batch x parameter state), not one bad batch."""
    pre = ev.typed("grad_norm", "precursor")
    if not pre:
        return None
    p = max(pre, key=lambda f: f.evidence["ratio"])
    hit = Hit(0.45, [p.message])
    if len(pre) > 1:
        hit.evidence.append(f"{len(pre)} loss events were preceded by gradient-norm growth")
        hit.confidence += 0.1
    else:
        hit.evidence.append(f"the loss event ({p.evidence['event']}) follows the gradient growth by "
                            f"{p.evidence['lead_steps']} step(s)")
    halve_lr_fix(ev, hit)
    clip_fix(ev, hit)
    hit.fixes += ["add z-loss 1e-4 on the output logits and QK-layernorm in attention (logit growth is the usual "
                  "mechanism: Wortsman et al. 2023, OLMo 2)",
                  "if it recurs: roll back ~100 steps before the spike and skip the next 200-500 batches (PaLM)"]
    return _explained_by_data_order(ev, hit)


def divergence_at_peak_lr(ev: Evidence) -> Hit | None:
    """A sustained rise that does not recover, while the LR is high: handbook 'Divergence: LR too high'."""
    f = ev.first("divergence")
    if f is None:
        return None
    hit = Hit(0.55, [f"loss rose from its best {num(f.evidence['best'])} (step {f.evidence['best_step']}) to "
                     f"{num(f.evidence['peak'])} from step {f.start_step} and never came back"])
    if f.evidence.get("type") == "creep":  # levels are chunk medians: the first chunk's sits after the log's start
        hit.evidence[0] = (f"loss crept up from {num(f.evidence['best'])} (the median of the log's first tenth, "
                           f"around step {f.evidence['best_step']}) to {num(f.evidence['peak'])} (its last tenth) "
                           "and never came back")
    lr_here = ev.value_near("train/lr", f.start_step, tol=max(50, ev.run_length() // 50))
    peak = ev.peak_lr
    if lr_here is not None and peak and math.isfinite(lr_here) and math.isfinite(peak):
        hit.evidence.append(f"LR at the start of the rise: {num(lr_here)} ({100 * lr_here / peak:.0f}% of its peak)")
        if lr_here < 0.3 * peak:
            hit.confidence = 0.35  # the LR had already decayed: less likely the LR itself
    elif ev.cfg_num("lr"):
        hit.evidence.append(f"config lr = {num(ev.cfg_num('lr'))}")
    halve_lr_fix(ev, hit, " (the handbook's first move on divergence)")
    clip_fix(ev, hit)
    return _explained_by_data_order(ev, hit)


def missing_warmup(ev: Evidence) -> Hit | None:
    """No warmup on a decaying schedule; worse when the first steps show the damage."""
    f = next((f for f in ev.of("lr_schedule", serious=False) if f.evidence.get("type") == "no_warmup"), None)
    if f is None:
        return None
    hit = Hit(0.35, [f.message], curve_backed=False)
    early = next((s for s in ev.of("spike") if s.evidence.get("early") and s.evidence.get("from_start")), None)
    growth = ev.typed("instability", "grad_growth")
    loss = ev.series("train/loss")
    total = total_steps(ev)
    if early and loss is not None and len(loss) >= 2 and total and \
            float(loss.steps[1] - loss.steps[0]) > 0.05 * total:
        # the log's first point after the start lies beyond the few percent of steps a warmup covers: the rise is
        # there, but nothing shows that the first steps did it (a log once an epoch)
        hit.evidence.append(f"the loss is above its start ({num(early.evidence['baseline'])} -> "
                            f"{num(early.evidence['peak'])}), but the log's first point after the start is at step "
                            f"{int(loss.steps[1])} ({100 * float(loss.steps[1] - loss.steps[0]) / total:.0f}% of the "
                            "run): the first steps a warmup covers are not in it")
        early = None
    if early:
        hit.confidence = 0.7
        hit.curve_backed = True
        hit.evidence.append(f"the loss rose above its start ({num(early.evidence['baseline'])} -> "
                            f"{num(early.evidence['peak'])}) in the first steps")
    if (growth or ev.has("plateau")) and ev.profile.warmup_needed:
        hit.confidence = max(hit.confidence, 0.55)
        hit.curve_backed = True
        hit.promotes += growth[:1]
        what = "gradient norm grew" if growth else "the loss stalled"
        hit.evidence.append(f"after the unwarmed start {what} (step {(growth or ev.of('plateau'))[0].start_step})")
    if hit.curve_backed:
        hit.promotes.append(f)
    elif f.severity != "info":
        hit.curve_backed = True  # the LR trace itself was judged harmful (a from-scratch Adam run at a high LR)
    elif not ev.profile.warmup_needed:
        # fine-tunes, SGD RNNs and small classifiers train fine without warmup: weaker advice than for pre-training
        hit.confidence = 0.15
        hit.evidence.append("runs of this kind usually train fine without warmup; it matters if the first steps "
                            "show damage")
    ratio = _lr_ratio(ev)
    if hit.confidence < 0.5 and ratio and ratio >= 3:  # no damage of the first steps seen
        # an unwarmed start hurts through the size of the first steps: with a peak LR several times the usual,
        # the LR itself is the advice that comes first (warmup only postpones it)
        hit.confidence = min(hit.confidence, 0.15)
        hit.evidence.append(f"the peak LR itself is {ratio:.0f}x the top of {ev.profile.lr_norm_text()}: "
                            "lower it first")
    if ev.cfg("warmup_steps") == 0:
        hit.evidence.append(f"config {ev.raw_key('warmup_steps') or 'warmup'} = 0")
    warmup_fix(ev, hit)
    return hit


def lr_too_low(ev: Evidence) -> Hit | None:
    """Still falling slowly, far from converged: the optimizer moves too little."""
    slow = ev.first("slow_convergence")
    lr = ev.peak_lr
    low = ev.profile.lr_ratio_low() or 0
    # a loss that barely left its start while the held-out loss falls at every evaluation: the gradient points the
    # right way and the step along it is tiny (labels that do not match their inputs would not carry over)
    creep = next((f for f in ev.of("plateau") if f.evidence.get("steady_descent") and f.evidence.get("first")
                  and f.evidence["level"] > 0.8 * f.evidence["first"]), None)
    if slow is None and not (ev.has("plateau") and low > 1) and low < 10 and creep is None:
        return None
    hit = Hit(0.0, [], curve_backed=bool(slow) or ev.has("plateau"))
    if slow:
        hit.confidence = 0.7
        hit.evidence.append(slow.message)
    elif creep is not None:
        hit.confidence = 0.55
        hit.evidence += [creep.message, f"the loss is still at {num(creep.evidence['level'])}, "
                                        f"{100 * creep.evidence['level'] / creep.evidence['first']:.0f}% of its start "
                                        f"{num(creep.evidence['first'])}, and the held-out loss falls by a hair at every "
                                        "evaluation: steps in the right direction, far too small"]
    low = ev.profile.lr_ratio_low() or 0
    if lr and low > 1:
        hit.evidence.append(f"peak learning rate {num(lr)} is {f'{low:.0f}' if low >= 10 else f'{low:.2g}'}x below the bottom of {ev.profile.lr_norm_text()}")
        hit.confidence = max(hit.confidence, 0.5) + 0.15
    p = ev.first("plateau")
    first = ev.facts.get("train_loss_first")
    if p is not None and lr and low > 1 and first and p.evidence["level"] > 0.8 * first:
        hit.confidence = max(hit.confidence, 0.7)
        if p is not creep:  # (the creep's evidence said where the loss is against its start already)
            hit.evidence.append(f"the loss is still at {num(p.evidence['level'])}, {100 * p.evidence['level'] / first:.0f}% "
                                f"of its start {num(first)}: with this LR the weights barely move")
    sat = ev.typed("grad_norm", "clip_saturation")
    if sat:
        hit.evidence.append(f"gradient norm {num(sat[0].evidence['median_norm'])} stays above the clip "
                            f"{num(sat[0].evidence['clip'])} on {100 * sat[0].evidence['share_clipped']:.0f}% of steps: "
                            "the model is far from a minimum")
    if slow and lr and len(hit.evidence) < 2 and (ev.profile.lr_ratio_high() or 0) <= 1 and \
            ev.profile.optimizer in ("adam", "sgd"):
        # a usual LR: still a reading (the norm is a range, the model may need the top of it), not the first one
        hit.confidence = 0.25
        hit.evidence.append(f"the learning rate {num(lr)} is within {ev.profile.lr_norm_text()}, so a small step is "
                            "only one reading")
    if len(hit.evidence) < 2:
        return None
    if lr and (ev.profile.lr_ratio_high() or 0) > 1:
        # steps too small at an LR above the top of its norm: the slow descent has another cause
        hit.confidence = min(hit.confidence, 0.3)
        hit.evidence.append(f"but the learning rate {num(lr)} is above {ev.profile.lr_norm_text()}: its steps are "
                            "not small")
    new = min(ev.profile.lr_range[1], lr * 10) if lr else None
    if lr and new >= 1.5 * lr:  # (at or above the top of its norm there is no raise within it to name)
        hit.fixes.append(f"raise the learning rate: {num(lr)} -> {num(new)} (x{new / lr:.0f}, toward "
                         f"{ev.profile.lr_norm_text()}), then confirm with a 3-5 value sweep of ~1000 steps")
        hit.patch["lr"] = float(f"{new:.3g}")
    elif lr:
        hit.fixes.append(f"try the learning rate {num(lr)} x3 and x10 for ~1000 steps each and compare the loss")
    return hit


def _frozen_plateau(ev: Evidence):
    """The held-out loss frozen over the run (PlateauDetector), or sitting at chance while falling at every
    evaluation (ChanceLevelDetector): a model whose predictions barely change."""
    return next((f for f in ev.of("plateau") if f.evidence.get("type") == "frozen" or
                 (f.evidence.get("type") == "chance_level" and f.evidence.get("steady_descent"))), None)


def frozen_with_small_steps(ev: Evidence) -> Hit | None:
    """A held-out loss that does not move: the weights barely move. A logged or configured LR far below its norm
    says why; without the LR, a loss that still falls at every evaluation (by a hair) is the small step's
    signature — the gradient points the right way and the step along it is tiny."""
    p = _frozen_plateau(ev)
    if p is None:
        return None
    low = ev.profile.lr_ratio_low() or 0
    high = ev.profile.lr_ratio_high() or 0
    if ev.peak_lr and high > 1:
        return None  # an LR above the top of its norm takes no small steps (the LR-too-high rules read it)
    hit = Hit(0.3, [p.message])
    if ev.peak_lr and low > 1:
        hit.confidence = 0.8
        hit.evidence.append(f"peak learning rate {num(ev.peak_lr)} is {low:.0f}x below the bottom of "
                            f"{ev.profile.lr_norm_text()}")
    elif ev.peak_lr and high <= 1 and ev.profile.optimizer in ("adam", "sgd"):
        hit.confidence = 0.2
        hit.evidence.append(f"the learning rate {num(ev.peak_lr)} is within {ev.profile.lr_norm_text()}: a small step "
                            "is not the whole story")
    elif p.evidence.get("steady_descent"):
        hit.confidence = 0.55
        hit.evidence.append("the held-out loss falls at every evaluation, by a hair each time: the gradient points the "
                            "right way and the step along it is tiny — a learning rate far too small")
    elif ev.peak_lr:
        hit.evidence.append(f"one reading: steps too small to move the weights (the learning rate {num(ev.peak_lr)} "
                            "is not above the usual range)")
    else:
        hit.evidence.append("one reading: steps too small to move the weights (the log does not show the LR)")
    hit.checks.append(("" if ev.series("train/lr") is not None else "log the learning rate; ")
                      + "run a short LR sweep (x10, x100) for a few hundred steps")
    lr = ev.peak_lr
    new = (min(ev.profile.lr_range[1], lr * 10) if low <= 1 else max(ev.profile.lr_range[0] * 10, lr * 10)) \
        if lr else None
    if lr and new >= 1.5 * lr:  # (an LR already near the top of its norm has no raise within it to name)
        hit.fixes.append(f"raise the learning rate: {num(lr)} -> {num(new)}, then confirm with a 3-5 value sweep")
        hit.patch["lr"] = float(f"{new:.3g}")
    elif lr:
        hit.fixes.append(f"try the learning rate {num(lr)} x3 and x10 for a few hundred steps and compare the held-out "
                         "loss")
    else:
        hit.fixes.append("raise the learning rate x10 and compare the held-out loss after a few hundred steps")
    return hit


def schedule_bug(ev: Evidence) -> Hit | None:
    """LR trace jumping back up, or a decay horizon shorter than the run."""
    fs = ev.of("lr_schedule", serious=False)
    restart = next((f for f in fs if f.evidence.get("type") == "restart"), None)
    short = next((f for f in fs if f.evidence.get("type") == "short_decay"), None)
    if restart is None and short is None:
        return None
    hit = Hit(0.85 if restart else 0.7, [(restart or short).message])
    decay, total = ev.cfg_num("decay_steps"), ev.cfg_num("max_steps")
    if decay and total and decay < total:
        hit.evidence.append(f"config {ev.raw_key('decay_steps') or 'lr_decay_iters'} = {int(decay)} < "
                            f"{ev.raw_key('max_steps') or 'max_iters'} = {int(total)}")
        hit.patch["decay_steps"] = int(total)
        hit.confidence = min(0.95, hit.confidence + 0.1)
    if restart:
        val_bumps = [f for f in ev.findings if f.kind in ("spike", "instability") and f.start_step >= restart.start_step]
        if val_bumps or ev.has("plateau"):
            hit.evidence.append("the loss gets worse after the LR jumps back up")
    if short is not None and restart is None and short.evidence.get("source") == "config" and decay:
        bumps = _bumps_after(ev, int(decay))
        if not bumps:
            hit.curve_backed = False  # only the config says so: advice until the curve shows it
        else:
            hit.evidence.append("the loss rises right after the decay horizon ends (the LR jumps back up): "
                                + ", ".join(f"{m} {num(a)} -> {num(b)} at step {st}" for m, st, a, b in bumps[:3]))
            hit.promotes.append(short)
    elif (restart or short).severity == "info":
        hit.curve_backed = False
    if len(hit.evidence) < 2:
        n_lr = len(ev.series("train/lr") or [])
        hit.evidence.append(f"the LR trace was read from {n_lr} logged points" if n_lr else
                            "the LR is not logged: the schedule is read from the config")
    hit.fixes.append("set the decay horizon to the run length (lr_decay_iters = max_iters) and compute the LR from "
                     "the global step (a step counter that resets causes restarts)")
    return hit


def _bumps_after(ev: Evidence, horizon: int) -> list[tuple[str, int, float, float]]:
    """Loss rises (>= 3 %, validation first) at the first logged point after each multiple of ``horizon``:
    what a schedule whose step counter restarts at the horizon does to the curve."""
    out = []
    last = ev.run.step_range()
    if last is None or horizon <= 0:
        return out
    for metric in ("val/loss", "train/loss"):
        s = ev.series(metric)
        if s is None or len(s) < 6:
            continue
        ok = np.isfinite(s.values)
        st, v = s.steps[ok], s.values[ok]
        # a bump must stand out of the curve's own point-to-point noise
        noise = diff_sigma(v[v.size // 4:])
        rel = noise / max(float(np.median(np.abs(v))), 1e-12)
        need = max(0.03, 2 * rel)
        edges = range(1, int(last[1] // horizon) + 1)
        found = []
        for k in edges:
            edge = k * horizon
            before = v[(st <= edge) & (st > edge - horizon // 4)]
            after = v[(st > edge) & (st <= edge + horizon // 3)]
            if before.size and after.size and float(after.max()) >= (1 + need) * float(before.min()) and \
                    float(after.max()) > float(before.max()):
                found.append((metric, int(st[st > edge][0]), float(before[-1]), float(after.max())))
        # a restart shows at every horizon: one bump among several edges is noise
        if found and len(found) >= max(1, len(edges) // 2):
            return found
    return out


def _tiny_batchnorm(ev: Evidence) -> bool:
    """BatchNorm over <= 4 samples: its batch statistics are noise and make gradient bursts by themselves."""
    return "batch" in str(ev.cfg("normalization", "")).lower() and (ev.cfg_num("batch_size") or 99) <= 4


def unclipped_bursts(ev: Evidence) -> Hit | None:
    """Loss spikes that come with gradient-norm bursts in a run that clips nothing: exploding gradients (Pascanu
    et al.: recurrent nets without clipping; handbook: clip at 1.0). With clipping on, a burst is bounded and the
    same picture reads as one bad batch."""
    if ev.cfg("grad_clip") is None or ev.cfg_num("grad_clip"):
        return None
    if _tiny_batchnorm(ev):
        return None  # BatchNorm over a handful of samples explains the bursts (BATCHNORM rule)
    spikes = [f for f in ev.of("spike") + ev.of("divergence") if f.metric == "train/loss"]
    bursts = [g for g in ev.of("grad_norm", serious=False) if g.evidence.get("type") == "explosion"]
    tol = max(2, ev.log_window, ev.profile.log_interval)
    paired = [s for s in spikes if any(abs(g.start_step - s.start_step) <= tol for g in bursts)]
    if not paired or (len(paired) < 2 and ev.profile.kind != "rnn_lm"):
        return None  # one isolated spike with its burst is one bad batch (BAD_BATCH) until it repeats
    hit = Hit(0.6, [f"{len(paired)} loss spike(s) with a gradient-norm burst at the same step (first at step "
                    f"{paired[0].start_step})",
                    f"no gradient clipping (config {ev.raw_key('grad_clip') or 'grad_clip'} = "
                    f"{_fmt_raw(ev.cfg('grad_clip'))}): nothing bounds the update a burst makes"])
    if ev.profile.kind == "rnn_lm":
        hit.confidence += 0.15
        hit.evidence.append("a recurrent network: gradients through time multiply step by step and explode without "
                            "clipping")
    clip_fix(ev, hit)
    return hit


def gradient_explosion(ev: Evidence) -> Hit | None:
    """Gradients growing without bound before the loss breaks (deep nets without clipping)."""
    g_nan = next((f for f in ev.of("nan") if f.metric == "train/grad_norm" and not f.evidence.get("hidden_by_window")),
                 None)
    loss_nan = next((f for f in ev.of("nan") if f.metric == "train/loss"), None)
    growth = ev.typed("instability", "grad_growth")
    explosions = [f for f in ev.of("grad_norm", serious=False) if f.evidence.get("type") == "explosion"]
    big = [f for f in explosions if f.evidence.get("ratio", 0) >= 100]
    s = ev.series("train/grad_norm")
    if s is None:
        return None
    finite = s.values[np.isfinite(s.values)]
    huge = finite.size and float(np.max(finite)) >= 1e4 * max(float(np.median(finite)), 1e-12)
    # a precursor comes first: a grad norm that turns non-finite at the same step as the loss says nothing
    precursor = (g_nan is not None and (loss_nan is None or g_nan.start_step < loss_nan.start_step)) or huge or big
    if not precursor or not (loss_nan or ev.has("divergence") or (growth and (huge or big))):
        return None  # a lone non-finite norm the run shrugs off is a skipped step, not an explosion
    if fp16_skipped_steps(ev) is not None and not ev.has("divergence") and not growth:
        return None  # inf gradients of skipped float16 steps are the scaler at work, not an explosion
    hit = Hit(0.6, [])
    if g_nan is not None:
        hit.evidence.append(f"gradient norm became {g_nan.evidence['value']} at step {g_nan.start_step}"
                            + (f", before the loss NaN at step {loss_nan.start_step}" if loss_nan else ""))
    if huge:
        hit.evidence.append(f"gradient norm reached {num(float(np.max(finite)))} (median {num(float(np.median(finite)))})")
    if growth:
        hit.evidence.append(f"gradient norm grew {growth[0].evidence['growth']:.1f}x over training")
    if ev.has("divergence"):
        hit.evidence.append(f"the loss diverged from step {ev.first('divergence').start_step}")
    clip = ev.cfg_num("grad_clip")
    if ev.cfg("grad_clip") is not None and not clip:  # only said when a config was read and says so
        hit.confidence += 0.15
        hit.evidence.append(f"no gradient clipping (config {ev.raw_key('grad_clip') or 'grad_clip'} = "
                            f"{_fmt_raw(ev.cfg('grad_clip'))})")
    depth = ev.cfg_num("n_layer")
    norm = str(ev.cfg("normalization", "")).lower()
    if ev.cfg("residual") is False:
        hit.confidence += 0.1
        hit.evidence.append(f"no residual connections (config {ev.raw_key('residual') or 'residual'} = False): "
                            "gradients multiply layer by layer")
    elif depth and depth >= 12 and norm == "none":
        hit.confidence += 0.1
        hit.evidence.append(f"{int(depth)} layers without normalisation (config {ev.raw_key('normalization')} = "
                            f"{norm!r}): gradients multiply layer by layer")
    if len(hit.evidence) < 2:
        return None
    if _tiny_batchnorm(ev):
        hit.confidence *= 0.7  # explaining away: BatchNorm over a handful of samples makes these bursts itself
        hit.evidence.append("(BatchNorm over a batch of <= 4 samples produces such bursts by itself)")
    clip_fix(ev, hit)
    hit.fixes.append("lower the learning rate (halve it) and use a scaled init (std 0.02, residual projections "
                     "scaled by 1/sqrt(2*n_layer)); add normalisation or residual connections to deep stacks")
    if ev.cfg_num("lr"):
        hit.patch["lr"] = float(f"{ev.cfg_num('lr') / 2:.3g}")
    return hit


def bad_init(ev: Evidence) -> Hit | None:
    f = ev.first("init_loss")
    if f is None:
        return None
    hit = Hit(0.9 if f.severity == "error" else 0.6, [f.message])
    g = ev.series("train/grad_norm")
    if g is not None and len(g):
        early = g.values[: max(1, len(g) // 20)]
        early = early[np.isfinite(early)]
        later = g.values[len(g) // 2:]
        later = later[np.isfinite(later)]
        if early.size and later.size and np.max(early) > 20 * np.median(later):
            hit.evidence.append(f"early gradient norms up to {num(float(np.max(early)))} vs {num(float(np.median(later)))} "
                                "later")
    if f.evidence.get("vocab_size"):
        hit.evidence.append(f"expected ~{num(f.evidence['expected'])} for a uniform prediction over "
                            f"{f.evidence['vocab_size']} classes")
    hit.fixes += ["initialise weights with std 0.02 (and zero biases); scale residual output projections by "
                  "1/sqrt(2*n_layer) as GPT-2 does",
                  "check the loss: logits should not be scaled up, softmax/log-softmax applied once, the mean taken "
                  "over tokens"]
    hit.checks.append("print the loss of the untrained model on one batch: it should be ~ln(V)")
    return hit


def _fmt_raw(v) -> str:
    return num(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def scale_collapse_at_event(ev: Evidence) -> Hit | None:
    """Dynamic loss scaling halves the scale at every float16 overflow: a scale that collapses at a loss spike
    or rise says float16 overflowed there (BLOOM 104B/13B chronicles)."""
    scale = ev.series("train/loss_scale")
    events = [f for f in ev.findings if f.kind in ("spike", "divergence", "nan") and f.severity != "info"]
    if scale is None or len(scale) < 3 or not events:
        return None
    for f in sorted(events, key=lambda f: f.start_step):
        before = scale.values[(scale.steps < f.start_step) & np.isfinite(scale.values)]
        after = scale.values[(scale.steps >= f.start_step) & (scale.steps <= max(f.end_step, f.start_step) +
                                                               10 * ev.profile.log_interval) & np.isfinite(scale.values)]
        if before.size and after.size and float(after.min()) <= float(before[-3:].max()) / 4:
            hit = Hit(0.6, [f"the float16 loss scale fell from {num(float(before[-3:].max()))} to "
                            f"{num(float(after.min()))} at the {f.kind} at step {f.start_step}: float16 overflowed "
                            "there (each overflow halves the scale)", f.message])
            hit.fixes.append("train in bfloat16 instead of float16 (same range as float32, no loss scaling needed)")
            hit.patch["dtype"] = "bfloat16"
            hit.fixes.append("in float16: keep the layer norms and softmax in float32, add an embedding LayerNorm "
                             "(BLOOM) and clip at 1.0")
            return hit
    return None


def huge_grad_norm_event(ev: Evidence) -> Hit | None:
    """A loss event with gradient norms in the thousands and beyond: healthy runs sit at ~0.1-10 before
    clipping, so the gradients themselves are exploding (BLOOM 104B: norms of 1e5 before its spikes)."""
    g = ev.series("train/grad_norm")
    events = [f for f in ev.findings if f.kind in ("spike", "divergence", "nan", "instability")
              and f.severity != "info" and f.metric.startswith("train/loss")]
    if g is None or not len(g) or not events:
        return None
    v = g.values[np.isfinite(g.values)]
    if not v.size or float(np.median(v)) < 1e3:
        return None
    hit = Hit(0.55, [f"gradient norm {num(float(np.median(v)))} (median) up to {num(float(v.max()))}: healthy runs "
                     "stay around 0.1-10 before clipping", events[0].message])
    clip_fix(ev, hit)
    hit.fixes.append("lower the LR and check the initialisation scale (std 0.02, residual projections scaled by "
                     "1/sqrt(2*n_layer)); add an embedding LayerNorm or QK-norm")
    return hit


def fp16_skipped_steps(ev: Evidence) -> Hit | None:
    """NaN that comes and goes while the loss scale drops at each one: float16 overflows that the dynamic loss
    scaler caught by skipping the step (HF/DeepSpeed/Megatron fp16). Not a gradient explosion — the model
    recovers at once — and not one bad batch."""
    nans = [f for f in ev.of("nan") if f.evidence.get("recovered")]
    scale = ev.series("train/loss_scale")
    if not nans or scale is None:
        return None
    from .data import _scale_drop_at

    hit_steps = [f.start_step for f in nans if _scale_drop_at(ev, f.start_step)]
    if not hit_steps:
        return None
    hit = Hit(0.75, [f"{len(hit_steps)} NaN/Inf step(s) (first at step {hit_steps[0]}) that recover at once, each "
                     "with the loss scale dropping: float16 overflows the loss scaler skipped",
                     f"loss scale {num(float(np.nanmax(scale.values)))} at most, {num(float(np.nanmin(scale.values)))} "
                     "at least"])
    if len(hit_steps) <= 3:
        hit.confidence = 0.65
        hit.checks.append("a few skipped steps are routine in float16 training; worry only if they keep coming or "
                          "the scale keeps falling")
    hit.fixes.append("train in bfloat16 instead of float16 (no overflow, no skipped steps, no loss scaling)")
    hit.patch["dtype"] = "bfloat16"
    return hit


def fp16_precision(ev: Evidence) -> Hit | None:
    """NaN/Inf with float16: overflow without (working) loss scaling. Seeds: use BF16 or dynamic loss scaling."""
    nans = ev.of("nan")
    overflow = ev.series("train/overflow")
    scale = ev.series("train/loss_scale")
    fp16 = is_float16(ev.cfg("dtype"))
    if not fp16 and scale is None and overflow is None:
        return None
    if not nans and not (overflow is not None and len(overflow) >= 3):
        return None
    hit = Hit(0.45, [])
    first_nan = min(nans, key=lambda f: f.start_step) if nans else None
    if first_nan is not None:
        hit.evidence.append(f"{first_nan.metric} became non-finite at step {first_nan.start_step}")
    if fp16:
        hit.evidence.append(f"config {ev.raw_key('dtype') or 'dtype'} = {ev.cfg('dtype')!r}")
        hit.confidence = 0.65
        scaler = ev.cfg("grad_scaler")
        pure = is_float16(ev.cfg("model_dtype"))
        if scaler is False or pure:
            hit.confidence = 0.85
            hit.evidence.append("weights in float16" if pure else "no gradient scaler")
        if first_nan is not None and first_nan.start_step <= max(10, 0.05 * total_steps(ev)):
            hit.confidence = min(0.92, hit.confidence + 0.1)
            hit.evidence.append("the NaN appears at the very start: float16's range (max 65504) is exceeded at once")
    if scale is not None and len(scale):
        v = scale.values[np.isfinite(scale.values)]
        # a scale that never moved (Megatron prints 1.0 throughout under bf16/fp32) collapsed from nothing
        if v.size and v[-1] < v.max() and (v[-1] <= 1.0 or v[-1] < v.max() / 1e3):
            hit.confidence = max(hit.confidence, 0.8)
            hit.evidence.append(f"loss scale collapsed from {num(float(v.max()))} to {num(float(v[-1]))}")
    if overflow is not None and len(overflow):
        hit.evidence.append(f"{len(overflow)} overflow-skipped steps logged")
    if len(hit.evidence) < 2:
        return None
    hit.fixes.append("train in bfloat16 instead of float16 (same range as float32, no loss scaling needed)")
    hit.patch["dtype"] = "bfloat16"
    hit.fixes.append("if float16 is a must: keep float32 master weights and use dynamic loss scaling (torch.amp.GradScaler)")
    return hit


RULES = (
    Rule("LR_EARLY_BLOWUP", "lr_too_high", "handbook 'Loss Divergence': LR too high; loss rising above its start",
         early_blowup),
    Rule("LR_UNSTABLE", "lr_too_high", "Qwen2.5 post-mortem: LR too high -> oscillation, grad-norm growth, no descent",
         unstable_high_lr),
    Rule("LR_FAR_ABOVE_NORM", "lr_too_high", "handbook Q3: usual LR ranges per optimizer and regime; the run "
         "context's norm", lr_far_above_norm),
    Rule("FP16_SKIPPED_STEPS", "fp16_precision", "handbook 'NaN Loss': FP16 overflow; the loss scaler skips the step",
         fp16_skipped_steps),
    Rule("FP16_SCALE_AT_EVENT", "fp16_precision", "handbook 'NaN Loss' / BLOOM chronicles: loss-scale collapse at a "
         "spike = float16 overflow", scale_collapse_at_event),
    Rule("GRAD_HUGE_AT_EVENT", "gradient_explosion", "Qwen2.5 post-mortem: gradient explosion; BLOOM 104B grad norms",
         huge_grad_norm_event),
    Rule("LR_PLATEAU_HIGH", "lr_too_high", "nanoGPT analysis: a too-high LR oscillates around the minimum -> plateau",
         plateau_with_high_lr),
    Rule("GRAD_PRECURSOR", "lr_too_high", "prior art: grad-norm spikes precede loss spikes (OLMo 2, BLOOM, PaLM)",
         grad_precursor),
    Rule("LR_DIVERGENCE", "lr_too_high", "handbook 'Loss Divergence' cause 1: LR too high", divergence_at_peak_lr),
    Rule("WARMUP_MISSING", "missing_warmup", "handbook 'Warmup': 0.5-2% of steps avoids early instability",
         missing_warmup),
    Rule("LR_LOW", "lr_too_low", "handbook 'Plateau' cause: LR too small; slow descent", lr_too_low),
    Rule("LR_LOW_FROZEN", "lr_too_low", "handbook 'Plateau' cause: LR too small; a held-out loss that does not move",
         frozen_with_small_steps),
    Rule("LR_SCHEDULE", "lr_schedule_bug", "nanoGPT analysis: decay horizon vs run length; LR trace restarts",
         schedule_bug),
    Rule("GRAD_UNCLIPPED_BURSTS", "gradient_explosion", "Qwen2.5 post-mortem / Pascanu et al.: gradient explosion "
         "without clipping", unclipped_bursts),
    Rule("GRAD_EXPLOSION", "gradient_explosion", "Qwen2.5 post-mortem: gradient explosion without clipping",
         gradient_explosion),
    Rule("INIT_LOSS", "bad_init", "handbook 'Divergence': bad initialisation; first loss vs ln V", bad_init),
    Rule("FP16_OVERFLOW", "fp16_precision", "handbook 'NaN Loss': FP16 overflow; use BF16 / dynamic loss scaling",
         fp16_precision),
)
