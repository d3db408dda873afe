"""Divergence: the loss rises well above its best level and stays there.

Judged on medians of blocks of ``block`` finite points (robust to single spikes), against the best
block median so far, so a run that starts at ln(V) ~ 10, falls to 3 and climbs back to 6 is caught
even though it ends below where it began. A rise that later comes back down is reported as
instability (a long excursion), one still up when the data ends as divergence. Online and offline
share :meth:`_on_block`; offline only computes the block medians with numpy.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..findings import Finding
from ..model import Run
from .base import Context, Detector, fmt_num


def _has_run(mask: np.ndarray, length: int) -> bool:
    """Whether ``mask`` holds ``length`` consecutive True values."""
    if length <= 1:
        return bool(mask.any())
    c = np.convolve(mask.astype(np.int32), np.ones(length, dtype=np.int32), mode="valid")
    return bool((c >= length).any())


class DivergenceDetector(Detector):
    name = "divergence"
    requires = ("train/loss",)

    def __init__(self, *, block: int = 16, rise: float = 0.2, patience: int = 4) -> None:
        self.block = block
        self.rise = rise
        self.patience = patience

    def _rise(self) -> float:
        """The rise that counts: ``rise``, or more where one logged loss is heavy-tailed noise (per-batch losses of
        tiny batches): a block median then wanders by sigma_b = 1.25 * noise / sqrt(block), the running minimum
        sits ~3 sigma_b below the level and ordinary blocks up to ~3 sigma_b above it."""
        prof = self.context_.profile
        # the same holds for any loss whose logged points are this noisy (per-batch losses of a classifier near
        # 0.1 vary by 50 %), heavy-tailed or not; for smooth curves the wander is far below `rise`
        sb = 1.25 * prof.rel_noise / math.sqrt(self.block_)
        return max(self.rise, (1 + 3 * sb) / max(1 - 3 * sb, 0.1) - 1)

    def reset(self, context: Context | None = None) -> None:
        super().reset(context)
        # heavy-tailed per-batch losses: 4x longer blocks halve the wander of their medians
        self.block_ = self.block * (4 if self.context_.profile.heavy_tailed else 1)
        self.vals_: list[float] = []
        self.first_step_: int | None = None
        self.best_: float | None = None
        self.best_step_ = 0
        self.run_: list[tuple[int, int, float]] = []  # consecutive high blocks: (start, end, median)
        self.open_: dict | None = None
        self.last_step_ = 0
        self.first_med_: float | None = None

    def _floor(self, first_med: float) -> float:
        """10 % of the first block's level; in a classifier excerpt, whose first block is no untrained loss, of the
        least informed guess ln C (ln 2 when C is not known) where that is more."""
        prof = self.context_.profile
        untrained = 0.0
        if prof.kind == "classifier" and not prof.covers_start:
            untrained = math.log(prof.n_classes) if prof.n_classes and prof.n_classes >= 2 else math.log(2)
        return 0.1 * max(abs(first_med), untrained)

    def _limit(self, best: float, frac: float) -> float:
        # measured against the best level, but never less than 10% of the first block's level: near zero
        # loss (a classifier) a doubling is a wobble, not a divergence
        return best + frac * max(abs(best), self._floor(self.first_med_ or 0.0))

    def _on_block(self, start: int, end: int, med: float) -> list[Finding]:
        out: list[Finding] = []
        self.last_step_ = end
        if self.best_ is None:
            self.best_, self.best_step_ = med, start
            self.first_med_ = med
            return out
        if self.open_ is not None:
            ev = self.open_
            if med <= self._limit(ev["best"], self._rise() / 2):
                out.append(self._finding(ev, recovered_at=start))
                self.open_ = None
                self.run_ = []
            else:
                ev["end"], ev["peak"] = end, max(ev["peak"], med)
                return out
        if med > self._limit(self.best_, self._rise()):
            self.run_.append((start, end, med))
            if len(self.run_) >= self.patience:
                self.open_ = {"start": self.run_[0][0], "end": end, "best": self.best_, "best_step": self.best_step_,
                              "peak": max(m for _s, _e, m in self.run_)}
        else:
            self.run_ = []
            if med < self.best_:
                self.best_, self.best_step_ = med, start
        return out

    def _finding(self, ev: dict, recovered_at: int | None) -> Finding:
        rise = (ev["peak"] - ev["best"]) / abs(ev["best"]) if ev["best"] else math.inf
        if recovered_at is None:
            return Finding("divergence", "train/loss", ev["start"], ev["end"], "error",
                           f"train/loss rose from its best {fmt_num(ev['best'])} (step {ev['best_step']}) to "
                           f"{fmt_num(ev['peak'])} (+{100 * rise:.0f}%) from step {ev['start']} and did not come back",
                           {"best": ev["best"], "best_step": ev["best_step"], "peak": ev["peak"], "rise": rise,
                            "recovered": False})
        return Finding("instability", "train/loss", ev["start"], ev["end"], "warning",
                       f"train/loss rose {100 * rise:.0f}% above its best ({fmt_num(ev['best'])} -> "
                       f"{fmt_num(ev['peak'])}) from step {ev['start']} and only came back by step {recovered_at}",
                       {"best": ev["best"], "peak": ev["peak"], "rise": rise, "recovered": True,
                        "recovered_at": recovered_at, "type": "excursion"})

    def update(self, step: int, values: Mapping[str, float]) -> list[Finding]:
        x = values.get("train/loss")
        if x is None or not math.isfinite(x):
            return []
        if not self.vals_:
            self.first_step_ = step
        self.vals_.append(x)
        if len(self.vals_) < self.block_:
            return []
        med = float(np.median(np.array(self.vals_)))
        start = self.first_step_
        self.vals_ = []
        return self._on_block(start, step, med)

    def finalize(self) -> list[Finding]:
        if self.open_ is None:
            return []
        ev, self.open_ = self.open_, None
        return [self._finding(ev, None)]

    def open_events(self) -> list[Finding]:
        return [] if self.open_ is None else [self._finding(self.open_, None)]

    def detect(self, run: Run, context: Context | None = None) -> list[Finding]:
        self.reset(context or Context.from_run(run))
        from .wholerun import block_stats_cached, clean

        s = run.series.get("train/loss")
        if s is None:
            return []
        steps, x = clean(s)
        b = self.block_
        nb = x.size // b
        if nb == 0:
            return []
        if 1 < self.patience > nb:  # fewer blocks than `patience` consecutive high ones: the loop below finds none
            self.last_step_ = int(steps[nb * b - 1])
            return []
        meds = block_stats_cached(x, b)[0]
        starts = steps[0: nb * b: b]
        ends = steps[b - 1: nb * b: b]
        # Fast exit, same decisions: a block can only raise the best while it is below the limit, so the
        # best level is the running minimum; without `patience` consecutive blocks above the limit of the
        # best before them, the block loop would report nothing.
        best = np.minimum.accumulate(meds)
        floor = self._floor(float(meds[0]))
        above = np.zeros(nb, dtype=bool)
        above[1:] = meds[1:] > best[:-1] + self._rise() * np.maximum(np.abs(best[:-1]), floor)
        if not _has_run(above, self.patience):
            self.last_step_ = int(ends[-1])
            return []
        out: list[Finding] = []
        for a, b, m in zip(starts.tolist(), ends.tolist(), meds.tolist()):
            out += self._on_block(a, b, m)
        out += self.finalize()
        return out
