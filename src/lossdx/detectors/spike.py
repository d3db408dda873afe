"""Loss spikes: a transient jump above the local level, judged against the local noise.

The local level and noise of a point are the median and MAD-sigma of the ``history`` complete blocks
of ``block`` finite points that precede the point's block. Using whole blocks (not a sliding window)
makes the online form O(1) per step and the offline form a few vectorised numpy calls over the same
blocks: the two give identical findings (parity test). A point is a spike when it exceeds the level by
``z`` sigmas *and* by ``rel`` of the level; ``rel`` shrinks with the square root of the number of steps
one logged point averages (an HF 10-step window mean damps a one-step spike about 10x, its noise ~3x).
The event lasts until the loss is back within a quarter of the jump; its length is the recovery time.
Early in training, when no baseline exists yet, a rise above the first logged loss is reported too:
a loss that climbs above its starting value is the classic sign of a too-high LR at the start.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..context import one_sample_per_step
from ..findings import Finding
from ..model import Run
from ._stats import MAD_TO_SIGMA
from .base import Context, Detector, fmt_num


def block_stats(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block of shape (n, b): its median and its noise, the MAD-sigma of its first differences over
    sqrt 2. Differences cancel the trend, so a falling curve does not pass for a noisy one."""
    level = _row_median(blocks.copy())
    noise = MAD_TO_SIGMA * _row_median(np.abs(np.diff(blocks, axis=1))) / np.sqrt(2.0)
    return level, noise


def _row_median(a: np.ndarray) -> np.ndarray:
    """Median of each row, partitioning ``a`` in place (callers pass an array they own); equal to np.median."""
    n = a.shape[1]
    h = n // 2
    if n % 2:
        a.partition(h, axis=1)
        return a[:, h].copy()
    a.partition([h - 1, h], axis=1)
    return (a[:, h - 1] + a[:, h]) / 2.0


def window_level_noise(levels: np.ndarray, noises: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each run of h consecutive blocks (arrays of shape (n, h)): the most recent block's median is
    the level, the median of the h block noises is the noise."""
    return levels[:, -1], np.median(noises, axis=1)


#: kinds of run whose loss is a cross-entropy in nats (a log-probability, so its absolute size means something)
_CROSS_ENTROPY_KINDS = ("lm_pretrain", "lm_finetune", "rnn_lm", "classifier")


class BlockEventDetector(Detector):
    """Events where one metric leaves its block-median level; subclasses say what "leaves" means.

    Subclasses set ``metric`` and implement :meth:`_threshold`, :meth:`_recover_level` and
    :meth:`_finding`; ``early_rise`` (a fraction, or None) also flags rises above the first value
    before the first level exists.
    """

    metric = "train/loss"
    block: int
    history: int
    max_open: int
    early_rise: float | None
    max_reported: int

    def _threshold(self, med: float, sigma: float) -> float:
        raise NotImplementedError

    def _early_rise(self) -> float | None:
        """A rise above the first logged value counts only where that value is a baseline: when one point is one
        heavy-tailed per-batch loss (tiny batches) the rise must clear those tails too."""
        prof = self.context_.profile
        if self.early_rise is None:
            return None
        # a first point is only as good a baseline as the curve is calm: a rise must clear ~4 sigma of the noise
        # of one logged point (per-batch losses near zero jump by 50 % from batch to batch), widened by how much
        # heavier than a Gaussian's the extremes of that noise are (a loss 6x its start is beyond any batch's). At
        # the start of training the first loss is the untrained model's, the same for every batch; in an excerpt it
        # is one draw of the noisy curve itself, so the rise is a difference of two noisy points: sqrt(2) x the noise
        tails = min(4.0, prof.tail_factor) if prof.heavy_tailed else 1.0
        if not prof.covers_start:
            # both points are draws of a positive, skewed per-batch loss: its scatter is a factor, so four sigmas
            # of the difference is a ratio of e^(4 sqrt2 sigma) (0.043 -> 0.29 is within a 40 % scatter's reach)
            # (capped: a relative noise of a loss that crosses zero can be any size; e^50 is beyond any rise)
            return max(self.early_rise, math.expm1(min(4.0 * prof.rel_noise * math.sqrt(2), 50.0))) * tails
        noise = prof.rel_noise
        return max(self.early_rise, 4.0 * noise) * tails

    def _recover_level(self, med: float, sigma: float) -> float:
        raise NotImplementedError

    def _untrained_floor(self) -> float:
        """A classifier excerpt's first point is no untrained loss: the least informed guess of any classifier,
        ln 2, stands in for it as the scale a jump is measured against (0 elsewhere)."""
        prof = self.context_.profile
        if prof.kind != "classifier" or prof.covers_start:
            return 0.0
        return math.log(prof.n_classes) if prof.n_classes and prof.n_classes >= 2 else math.log(2)

    def _finding(self, ev: dict, recovered_step: int | None) -> Finding:
        raise NotImplementedError

    def _spike_finding(self, ev: dict, recovered_step: int | None) -> Finding:
        jump = ev["peak"] / ev["level"] if ev["level"] > 0 else math.inf
        from_start = self.context_.profile.covers_start and self.first_step_ is not None and \
            self.first_step_ <= 50 * max(1, self.context_.log_interval)
        if ev["early"]:
            where = "at the start of training" if from_start else f"at step {ev['start']}, early in this excerpt"
            msg = (f"loss rose {100 * (ev['peak'] / ev['level'] - 1):.0f}% above its first logged value "
                   f"({fmt_num(ev['level'])} -> {fmt_num(ev['peak'])}) {where}")
        else:
            msg = (f"train/loss jumped {jump:.1f}x above its local level ({fmt_num(ev['level'])} -> "
                   f"{fmt_num(ev['peak'])}) at step {ev['start']}")
        if recovered_step is not None:
            msg += f" and recovered by step {recovered_step}"
        else:
            msg += f" and had not recovered after {ev['n']} logged points"
        # a one-step blip of +40 % that is gone the next step is a hard batch, not an event; what a point
        # averages over (HF windows) damps the jump, so judge the implied single-step jump
        # how much of the run's initial loss the jump undoes, as a single step would have it
        implied = (ev["peak"] - ev["level"]) * self.context_.points_averaged / max(
            abs(self.first_ or 0.0), self._untrained_floor(), 1e-12)
        major = implied >= self.major_jump or recovered_step is None or ev["n"] > 3 or (ev["early"] and from_start)
        severity = "error" if recovered_step is None else ("warning" if major else "info")
        if ev.get("within_noise") and recovered_step is not None and ev["n"] <= 3:
            severity = "info"
            msg += " (within the point-to-point noise of the first logged points)"
        # a classifier excerpt near zero loss: a batch whose loss stays below chance level (ln C, ln 2 when C is not
        # known) was still predicted better than a guess, so its jump is a few confidently misclassified samples
        # (per-sample noise of a converged classifier), not a broken batch (garbage inputs or labels reach chance
        # level or beyond); a point still high where the log ends is no more than one such batch
        floor = self._untrained_floor()
        if floor and ev["peak"] < floor and severity != "info" and (recovered_step is not None or ev["n"] == 1):
            severity = "info"
            msg += (f" (below chance level, ln {self.context_.profile.n_classes or 2} = {fmt_num(floor)} nats: "
                    "the batch was still predicted better than a guess)")
        # a cross-entropy in nats is a log-probability: a near-perfect fit (an excerpt that starts at ~0, where the
        # first value is no scale) jumping from 1e-4 to 0.015 still gives the targets >= 95 % probability
        if ev["peak"] < self.near_zero_nats and self.context_.profile.kind in _CROSS_ENTROPY_KINDS:
            severity = "info"
            msg += f" (still below {self.near_zero_nats:g} nats: the targets keep >= 95% probability)"
        return Finding("spike", "train/loss", ev["start"], ev["end"], severity, msg, {
                           "peak": ev["peak"], "baseline": ev["level"], "noise_sigma": ev["sigma"],
                           "ratio": jump, "peak_step": ev["peak_step"], "recovered": recovered_step is not None,
                           "recovery_steps": None if recovered_step is None else recovered_step - ev["start"],
                           "early": ev["early"], "from_start": bool(from_start), "implied_step_jump": implied})

    #: a cross-entropy below this many nats predicts the targets with >= 95 % probability: near-perfect
    near_zero_nats = 0.05
    #: share of its first value the loss must have lost before a rise above that value stops being "the start of
    #: training": a model that already learned that much is no longer fresh, and the jump is one against its level
    fresh_drop = 0.4
    #: points before an early event whose median is the local level of a model that is no longer fresh
    recent = 8

    def _early_event(self, step: int, x: float, first: float, prior_min: float, recent: np.ndarray,
                     seen: int) -> dict | None:
        """A rise above the first logged value before a block baseline exists (short logs never get one). While
        the loss is still near its start, or within the first block of points, it is the early blow-up of a fresh
        model; once the loss had fallen far below its start over more points than that (a model that learned) it
        is a spike above the level of the points just before it. An excerpt has no start of training: its first
        point is one draw of the noisy curve, so a rise above it is judged like any spike, against the level and
        noise of the points before it (None when it does not clear them) once `recent` points came before."""
        if not self.context_.profile.covers_start and recent.size >= self.recent:
            level = float(np.median(recent))
            sigma = MAD_TO_SIGMA * float(np.median(np.abs(np.diff(recent)))) / math.sqrt(2.0)
            # eight points can look calm by chance: the noise the whole excerpt shows is the better measure
            sigma = max(sigma, self.context_.profile.rel_noise * abs(level))
            return self._new_event(step, x, level, sigma) if x > self._threshold(level, sigma) else None
        if seen < self.block or recent.size < 2 or prior_min > (1 - self.fresh_drop) * first:
            ev = self._new_event(step, x, first, 0.0, early=True)
            # one logged point is only as good a baseline as the points around it are calm: a rise that the
            # point-to-point noise of the points before it covers (per-batch losses of small batches; an excerpt's
            # first point, which is no start of training) is judged like any spike, not as a blow-up
            if recent.size >= 4:
                level = float(np.median(recent))
                sigma = MAD_TO_SIGMA * float(np.median(np.abs(np.diff(recent)))) / math.sqrt(2.0)
                ev["within_noise"] = x <= self._threshold(level, sigma)
            return ev
        level = float(np.median(recent[-5:]))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(np.diff(recent)))) / math.sqrt(2.0)
        ev = self._new_event(step, x, level, sigma, early=True)
        ev["early"] = False
        return ev

    def _new_event(self, step: int, x: float, med: float, sigma: float, early: bool = False) -> dict:
        recover = med + 0.25 * (x - med) if early else self._recover_level(med, sigma)
        return {"start": step, "end": step, "peak": x, "peak_step": step, "level": med, "sigma": sigma,
                "recover": recover, "n": 1, "early": early}

    # ----- online ---------------------------------------------------------------------------
    def reset(self, context: Context | None = None) -> None:
        super().reset(context)
        self.block_vals_: list[float] = []
        self.history_: list[list[float]] = []
        self.level_: tuple[float, float] | None = None
        self.first_: float | None = None
        self.first_step_: int | None = None
        self.min_ = math.inf
        self.seen_ = 0
        self.recent_: list[float] = []
        self.early_done_ = False
        self.event_: dict | None = None
        self.count_ = 0

    def update(self, step: int, values: Mapping[str, float]) -> list[Finding]:
        x = values.get(self.metric)
        if x is None or not math.isfinite(x):
            return []
        out: list[Finding] = []
        ev = self.event_
        if ev is not None:
            if x <= ev["recover"]:
                out += self._emit(ev, step)
                self.event_ = None
            else:
                ev["end"], ev["n"] = step, ev["n"] + 1
                if x > ev["peak"]:
                    ev["peak"], ev["peak_step"] = x, step
                if ev["n"] >= self.max_open:
                    out += self._emit(ev, None)
                    self.event_ = None
        elif self.first_ is not None and not self.early_done_:
            if self._early_rise() is not None and self.first_ > 0 and x > self.first_ * (1 + self._early_rise()):
                self.event_ = self._early_event(step, x, self.first_, self.min_, np.array(self.recent_), self.seen_)
        elif self.level_ is not None:
            med, sigma = self.level_
            if x > self._threshold(med, sigma):
                self.event_ = self._new_event(step, x, med, sigma)
        if self.first_ is None:
            self.first_ = x
            self.first_step_ = step
        if not self.early_done_:
            self.seen_ += 1
            self.min_ = min(self.min_, x)
            self.recent_ = (self.recent_ + [x])[-self.recent:]
        self._push(x)
        return out

    def _emit(self, ev: dict, recovered_step: int | None) -> list[Finding]:
        self.count_ += 1
        return [self._finding(ev, recovered_step)] if self.count_ <= self.max_reported else []

    def _push(self, x: float) -> None:
        self.block_vals_.append(x)
        if len(self.block_vals_) == self.block:
            self.history_.append(self.block_vals_)
            self.block_vals_ = []
            if len(self.history_) > self.history:
                self.history_.pop(0)
            if len(self.history_) == self.history:
                self.early_done_ = True
                lv, nz = block_stats(np.array(self.history_, dtype=np.float64))
                level, noise = window_level_noise(lv[None, :], nz[None, :])
                self.level_ = (float(level[0]), float(noise[0]))

    def finalize(self) -> list[Finding]:
        if self.event_ is None:
            return []
        ev, self.event_ = self.event_, None
        return self._emit(ev, None)

    def open_events(self) -> list[Finding]:
        return [] if self.event_ is None else [self._finding(self.event_, None)]

    # ----- offline twin ---------------------------------------------------------------------
    def detect(self, run: Run, context: Context | None = None) -> list[Finding]:
        self.reset(context or Context.from_run(run))
        from .wholerun import block_stats_cached, clean

        s = run.series.get(self.metric)
        if s is None or not len(s):
            return []
        steps, x = clean(s)
        n = x.size
        if n == 0:
            return []
        b, h = self.block, self.history
        self.first_ = float(x[0])
        self.first_step_ = int(steps[0])
        nblocks = n // b
        # level for every point: stats of the h complete blocks before its block (none for the first h blocks)
        # per-block thresholds (window k of blocks k..k+h-1 serves the points of block k+h); points are
        # compared block-wise, so no per-point level arrays are allocated
        start = h * b
        blk_med = blk_sig = blk_thr = np.empty(0)
        cand = np.empty(0, dtype=np.int64)
        if nblocks >= h:
            lv, nz = block_stats_cached(x, b)
            blk_med, blk_sig = window_level_noise(np.lib.stride_tricks.sliding_window_view(lv, h),
                                                  np.lib.stride_tricks.sliding_window_view(nz, h))
            blk_thr = self._threshold_array(blk_med, blk_sig)
            served = x[start: start + blk_thr.size * b]
            full = served.size // b
            hits = [np.flatnonzero((served[: full * b].reshape(full, b) > blk_thr[:full, None]).ravel())]
            if served.size > full * b:  # the last, partial block
                hits.append(full * b + np.flatnonzero(served[full * b:] > blk_thr[full]))
            cand = start + np.concatenate(hits)

        def level_at(i: int) -> tuple[float, float, float]:
            k = (i - start) // b
            return float(blk_med[k]), float(blk_sig[k]), float(blk_thr[k])

        early_end = min(n, h * b)
        first = x[0]
        if self._early_rise() is None or first <= 0:  # a rise "above the first value" needs a positive loss
            early_cand = np.empty(0, dtype=np.int64)
        else:
            early_cand = np.flatnonzero(x[1:early_end] > first * (1 + self._early_rise())) + 1
        out: list[Finding] = []
        i = 0
        # walk the candidates in order, replaying the online event machine between them
        all_cand = np.union1d(early_cand, cand)
        pos = 0
        while pos < all_cand.size:
            i = int(all_cand[pos])
            early = (self._early_rise() is not None and first > 0 and 1 <= i < early_end
                     and x[i] > first * (1 + self._early_rise()))
            if early:
                ev = self._early_event(int(steps[i]), float(x[i]), float(first), float(x[:i].min()),
                                       x[max(0, i - self.recent):i], i)
                if ev is None:
                    pos += 1
                    continue
            elif i >= start and x[i] > level_at(i)[2]:
                med_i, sig_i, _thr = level_at(i)
                ev = self._new_event(int(steps[i]), float(x[i]), med_i, sig_i)
            else:
                pos += 1
                continue
            tail = x[i + 1: i + self.max_open]
            back = np.flatnonzero(tail <= ev["recover"])
            if back.size:
                j = i + 1 + int(back[0])
                seg = x[i:j]
                k = int(np.argmax(seg))
                ev.update(end=int(steps[j - 1]), n=j - i, peak=float(seg[k]), peak_step=int(steps[i + k]))
                out += self._emit(ev, int(steps[j]))
                nxt = j + 1  # the recovery point itself starts no event
            else:
                seg = x[i: i + self.max_open]
                k = int(np.argmax(seg))
                last = i + seg.size - 1
                ev.update(end=int(steps[last]), n=seg.size, peak=float(seg[k]), peak_step=int(steps[i + k]))
                out += self._emit(ev, None)
                nxt = last + 1
            pos = int(np.searchsorted(all_cand, nxt))
        return out


class SpikeDetector(BlockEventDetector):
    name = "spike"
    metric = "train/loss"
    requires = ("train/loss",)

    def __init__(self, *, block: int = 16, history: int = 4, z: float = 8.0, rel: float = 0.3,
                 max_open: int = 256, early_rise: float | None = 0.15, max_reported: int = 25,
                 major_jump: float = 0.25) -> None:
        self.major_jump = major_jump
        self.block = block
        self.history = history
        self.z = z
        self.rel = rel
        self.max_open = max_open
        self.early_rise = early_rise
        self.max_reported = max_reported

    def _rel(self) -> float:
        return max(0.05, self.rel / math.sqrt(self.context_.points_averaged)) * self._tail()

    def _tail(self) -> float:
        """Heavy-tailed per-batch losses (tiny batches) put ordinary points several Gaussian sigmas out: scale the
        margins by how much heavier the tails are (1 for shuffled LM batches)."""
        prof = self.context_.profile
        # per-sample losses (a spread of half the level itself: batch size 1) reach further: a confidently
        # misclassified sample costs several nats where the median sample costs 0.1
        cap = 8.0 if prof.rel_noise >= 0.5 else 4.0
        return min(cap, prof.tail_factor) if prof.heavy_tailed else 1.0

    def _scale(self, med):
        """What a jump is measured against: the level, but never less than 10% of the first loss (a
        classifier near zero loss has huge ratios for harmless wobbles)."""
        floor = 0.1 * abs(self.first_) if self.first_ is not None else 0.0
        return np.maximum(np.abs(med), max(floor, 0.1 * self._untrained_floor()))

    def _threshold(self, med: float, sigma: float) -> float:
        return med + max(self.z * self._tail() * sigma, self._rel() * float(self._scale(med)))

    def _threshold_array(self, med: np.ndarray, sig: np.ndarray) -> np.ndarray:
        return med + np.maximum(self.z * self._tail() * sig, self._rel() * self._scale(med))

    def _recover_level(self, med: float, sigma: float) -> float:
        return max(med + 0.25 * (self._threshold(med, sigma) - med), med + 3 * sigma)

    def _finding(self, ev: dict, recovered_step: int | None) -> Finding:
        return self._spike_finding(ev, recovered_step)


class GradNormDetector(BlockEventDetector):
    """Gradient-norm explosions: a logged norm ``ratio`` times above its block-median level."""

    name = "grad_norm"
    metric = "train/grad_norm"
    requires = ("train/grad_norm",)

    def __init__(self, *, block: int = 16, history: int = 4, ratio: float = 10.0, max_open: int = 256,
                 max_reported: int = 25) -> None:
        self.block = block
        self.history = history
        self.ratio = ratio
        self.max_open = max_open
        self.early_rise = None
        self.max_reported = max_reported

    def _floor(self) -> float:
        """Near convergence gradient norms get tiny; ratios against the early norm scale keep a 10x
        wobble of a ~0 norm from passing for an explosion."""
        return 0.1 * abs(self.first_) if self.first_ is not None else 0.0

    def _ratio(self) -> float:
        """Per-batch logs of tiny batches have heavy-tailed gradient norms too: widen the ratio with the loss tails."""
        prof = self.context_.profile
        return self.ratio * (min(4.0, prof.tail_factor) if prof.heavy_tailed else 1.0)

    def _threshold(self, med: float, sigma: float) -> float:
        return self._ratio() * max(med, self._floor()) if med > 0 else math.inf

    def _threshold_array(self, med: np.ndarray, sig: np.ndarray) -> np.ndarray:
        return np.where(med > 0, self._ratio() * np.maximum(med, self._floor()), np.inf)

    def _recover_level(self, med: float, sigma: float) -> float:
        return 3.0 * max(med, self._floor())

    def _finding(self, ev: dict, recovered_step: int | None) -> Finding:
        ratio = ev["peak"] / ev["level"]
        msg = (f"gradient norm exploded {ratio:.0f}x above its level ({fmt_num(ev['level'])} -> "
               f"{fmt_num(ev['peak'])}) at step {ev['peak_step']}")
        msg += f", back by step {recovered_step}" if recovered_step is not None else ", and stayed high"
        clip = self.context_.config.get("grad_clip")
        if clip:
            msg += f" (clipped to {fmt_num(float(clip))}, so the update was bounded)"
        # with clipping on, a norm spike cannot blow up the weights: worth knowing, not a warning; a fine-tune's
        # brief burst that comes back is routine too (a hard batch), unless it is extreme
        brief = recovered_step is not None and ratio < 50 and self.context_.profile.kind == "lm_finetune"
        # so is one of a per-sample log (losses scattering by a quarter of their level or more, heavy-tailed or of
        # batch size 1 without accumulation: one hard sample's gradient is the whole batch's), config or not
        prof = self.context_.profile
        one_sample = one_sample_per_step(self.context_.config)
        brief = brief or (recovered_step is not None and ratio < 50 and prof.rel_noise >= 0.25
                          and (prof.heavy_tailed or one_sample))
        severity = "info" if clip or brief else "warning"
        return Finding("grad_norm", self.metric, ev["start"], ev["end"], severity, msg, {
            "peak": ev["peak"], "baseline": ev["level"], "ratio": ratio, "peak_step": ev["peak_step"],
            "recovered": recovered_step is not None, "type": "explosion", "clipped_at": clip or None})
