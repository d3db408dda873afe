"""Logs too short for the block detectors: pasted excerpts, per-epoch tables, sparse HF logging.

The spike, divergence and gradient-norm detectors judge a point against blocks of 16 points of history;
with fewer than ~64 logged points they stay silent, so an 8-point log going 1.4 -> 10 with a gradient
norm of 70 would pass for healthy. Here the same two phenomena are judged point by point, with wider
margins to make up for the missing noise estimate.
"""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from ..model import Series
from ._stats import diff_sigma
from .base import fmt_num
from .wholerun import WholeRunDetector, clean

#: below this many points the block detectors (16-point blocks, 4 blocks of patience) cannot decide
SHORT = 65


def _median3(v: np.ndarray) -> np.ndarray:
    if v.size < 5:
        return v
    # the median of each three neighbours (ends padded with themselves): min/max select the very element
    # np.median would (finite values), without its sort per window
    a, b, c = np.concatenate([v[:1], v[:-1]]), v, np.concatenate([v[1:], v[-1:]])
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


class ShortLogDetector(WholeRunDetector):
    name = "short_log"
    requires = ("train/loss", "train/grad_norm")

    def __init__(self, *, rise: float = 0.5, burst: float = 20.0) -> None:
        self.rise = rise
        self.burst = burst

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        out: list[Finding] = []
        steps, v = clean(series.get("train/loss"))
        if 4 <= v.size < SHORT and float(np.min(v)) > 0:
            m = _median3(v)
            i = int(np.argmin(m[:-1]))
            best = float(m[i])
            tail = m[-2:] if m.size >= 6 else m[-1:]
            # the rise must stand out of the point-to-point noise (a noisy near-zero classifier loss jumps 10x)
            noise = diff_sigma(v)
            limit = max((1 + self.rise) * best, best + 4 * noise)
            if i < m.size - tail.size and float(tail.min()) >= limit and float(v[-1]) >= limit:
                out.append(Finding(
                    "divergence", "train/loss", int(steps[i]), int(steps[-1]), "error",
                    f"loss rose from its best {fmt_num(best)} (step {int(steps[i])}) to {fmt_num(float(v[-1]))} by the "
                    f"end of this {v.size}-point log and did not come back",
                    {"best": best, "best_step": int(steps[i]), "peak": float(v[i:].max()), "short_log": True}))
        if v.size >= 16:
            out += self._mid_run_spikes(steps, v)
        gs, g = clean(series.get("train/grad_norm"))
        if 5 <= g.size < SHORT:
            for j in range(g.size):
                others = float(np.median(np.delete(g, j)))
                if others > 0 and g[j] >= self.burst * others:
                    out.append(Finding(
                        "grad_norm", "train/grad_norm", int(gs[j]), int(gs[j]), "warning",
                        f"gradient norm {fmt_num(float(g[j]))} at step {int(gs[j])} is {g[j] / others:.0f}x the "
                        f"{fmt_num(others)} of the other logged steps",
                        {"type": "explosion", "peak": float(g[j]), "baseline": others, "ratio": float(g[j] / others),
                         "peak_step": int(gs[j]), "recovered": j < g.size - 1, "short_log": True}))
        return out

    def _mid_run_spikes(self, steps: np.ndarray, v: np.ndarray) -> list[Finding]:
        """One-to-three-point jumps once the model has left its start, judged against the points just before them.
        Before its block baseline exists (the first 64 points, all of a short log) the spike detector sees only
        rises above the first loss; a bad batch at a trained model's 2.0 that logs 5.6 (a 5-step window mean of an
        LLaMA at step 205 of 400) stays below a first loss of 5.5 and needs the local level instead: the median and
        point-to-point noise of the last 8 points, with the spike detector's margins (8 sigma, 30 % of the level
        over sqrt of the points a logged value averages)."""
        prof = self.context_.profile
        first = float(v[0])
        tails = min(4.0, prof.tail_factor) if prof.heavy_tailed else 1.0
        rel = max(0.05, 0.3 / np.sqrt(max(1, self.context_.points_averaged))) * tails
        out: list[Finding] = []
        left = np.flatnonzero(np.minimum.accumulate(v) <= 0.6 * first)
        if not left.size or float(np.min(v)) <= 0:
            return out
        # the relative point-to-point noise of the whole trained stretch (robust to the spikes themselves): 8 points
        # just before a jump can happen to be calm in a log of noisy per-batch losses (0.24-1.13 around 0.7)
        trained = np.log(v[int(left[0]):])
        log_sigma = diff_sigma(trained) if trained.size >= 8 else 0.0
        j = 8
        # (from the 65th point on the spike detector has its block baseline)
        while j < min(v.size, SHORT - 1) and len(out) < 4:
            x = float(v[j])
            recent = v[j - 8:j]
            if x > 1.15 * first or float(np.min(v[:j])) > 0.6 * first:
                j += 1  # above the first loss (the spike detector's), or the model is still fresh (its start)
                continue
            level, noise = float(np.median(recent)), diff_sigma(recent)
            # per-batch losses whose point-to-point spread is half their level or more (a classifier near zero loss,
            # one batch a point) are heavy-tailed: one misclassified sample is many sigmas out (context._tails)
            wide = 8.0 if level > 0 and noise >= 0.5 * level else tails
            # (the jump is measured against the level but never less than 10 % of the first loss, as the spike
            # detector does: a classifier near zero loss has huge ratios for harmless wobbles)
            if level <= 0 or x <= max(level + max(8.0 * wide * noise, rel * max(level, 0.1 * first)),
                                      level * float(np.exp(8.0 * log_sigma))):
                j += 1
                continue
            back = level + 0.25 * (x - level)
            after = np.flatnonzero(v[j + 1:j + 4] <= back)
            if not after.size:
                j += 1  # not back within three points: a shift or a climb, not one batch
                continue
            k = j + 1 + int(after[0])
            peak = int(j + np.argmax(v[j:k]))
            out.append(Finding(
                "spike", "train/loss", int(steps[j]), int(steps[k - 1]), "warning",
                f"train/loss jumped {float(v[peak]) / level:.1f}x above its local level ({fmt_num(level)} -> "
                f"{fmt_num(float(v[peak]))}) at step {int(steps[j])} and recovered by step {int(steps[k])}",
                {"peak": float(v[peak]), "baseline": level, "noise_sigma": noise, "ratio": float(v[peak]) / level,
                 "peak_step": int(steps[peak]), "recovered": True, "recovery_steps": int(steps[k] - steps[j]),
                 "early": False, "from_start": False, "short_log": True}))
            j = k + 1
        return out
