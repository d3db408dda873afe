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
