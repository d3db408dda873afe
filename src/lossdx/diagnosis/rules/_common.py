"""Helpers the rules share: number formatting and the seeds' standard fixes."""

from __future__ import annotations

from ...detectors.base import fmt_num
from ..engine import Evidence, Hit


def num(x: float | None) -> str:
    return "?" if x is None else fmt_num(x)


def total_steps(ev: Evidence) -> int:
    n = ev.cfg_num("max_steps")
    if n:
        return int(n)
    rng = ev.run.step_range()
    return 0 if rng is None else rng[1] + 1


def clip_fix(ev: Evidence, hit: Hit) -> None:
    """Seeds: gradient clipping at max_norm 1.0 (almost every LLM run uses it)."""
    clip = ev.cfg_num("grad_clip")
    if not clip:
        hit.fixes.append("enable gradient clipping: clip_grad_norm_(model.parameters(), max_norm=1.0)")
        hit.patch["grad_clip"] = 1.0


def halve_lr_fix(ev: Evidence, hit: Hit, reason: str = "") -> None:
    """Seeds: on divergence lower the LR by 50 %; sweep 3-5 values for ~1000 steps."""
    lr = ev.cfg_num("lr") or ev.peak_lr
    if lr:
        hit.fixes.append(f"halve the peak learning rate: {num(lr)} -> {num(lr / 2)}{reason}")
        hit.patch["lr"] = float(f"{lr / 2:.3g}")
    else:
        hit.fixes.append("halve the peak learning rate")
    hit.fixes.append("run a short LR sweep (3-5 values, e.g. x0.3 / x0.5 / x1 of the current LR, ~1000 steps each) "
                     "and keep the largest one whose loss curve is smooth")


def warmup_fix(ev: Evidence, hit: Hit) -> None:
    """Seeds: warmup over 0.5-2 % of the steps (LLaMA-2: 2000 steps)."""
    n = total_steps(ev)
    if n:
        w = max(1, round(0.02 * n))
        hit.fixes.append(f"warm the LR up linearly over ~2% of the steps: {w} of {n} (0.5-2% is typical)")
        hit.patch["warmup_steps"] = w
    else:
        hit.fixes.append("warm the LR up linearly over 0.5-2% of the steps")
