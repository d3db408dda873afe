"""Detectors that judge the shape of the whole curve (phases, plateaus, overfitting, schedules ...).

Online they buffer the points ``update`` receives and decide in ``finalize``; offline they decide on
the run's arrays directly. Both paths call the same :meth:`WholeRunDetector.analyze`, so they agree
by construction.
"""

from __future__ import annotations

import threading
from typing import Iterable, Mapping

import numpy as np

from ..findings import Finding
from ..model import Run, Series
from .base import Context, Detector, PointBuffer


class WholeRunDetector(Detector):
    requires: tuple[str, ...] = ("train/loss",)
    # (links, not running state: see share_point_buffers) the pool of buffers shared with the other whole-run
    # detectors fed the same steps, and the metrics whose shared buffer another detector of it appends to; a
    # detector given a state without a reset buffers for itself
    _pool: dict[str, PointBuffer] | None = None
    _reads: set[str] | frozenset[str] = frozenset()

    def reset(self, context: Context | None = None) -> None:
        super().reset(context)
        self.buffers_: dict[str, PointBuffer] = {}
        self._pool, self._reads = None, frozenset()  # (unlinked: see share_point_buffers)

    def update(self, step: int, values: Mapping[str, float]) -> list[Finding]:
        for m in self.requires:
            v = values.get(m)
            if v is not None:
                buf = self.buffers_.get(m)
                if buf is None:
                    pool = self._pool
                    if pool is not None and m in pool:
                        # another detector of the pool saw this metric first and appended this step's value
                        self.buffers_[m] = pool[m]
                        self._reads = self._reads | {m}
                        continue
                    buf = self.buffers_[m] = PointBuffer()
                    if pool is not None:
                        pool[m] = buf
                elif m in self._reads:
                    continue
                buf.append(step, v)
        return []

    def finalize(self) -> list[Finding]:
        series = {m: b.series(m) for m, b in self.buffers_.items()}
        return self.analyze(series)

    def detect(self, run: Run, context: Context | None = None) -> list[Finding]:
        self.reset(context or Context.from_run(run))
        return self.analyze({m: run.series[m] for m in self.requires if m in run.series})

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        raise NotImplementedError


def share_point_buffers(detectors: Iterable[Detector]) -> None:
    """Let the whole-run detectors of one live watcher keep one point buffer per metric between them.

    Each buffers every point of what it requires until ``finalize``: some twenty copies of the loss curve in a live
    guard (over 400 bytes a step, 0.4 GB over a million steps). Fed the same steps in the same order, the first
    detector to see a metric appends to its buffer and the others read that very buffer. Call it after ``reset``
    and again after any ``load_state_dict`` (a restored state holds copies; the first detector's becomes the
    shared one, their contents being equal). Reset the detectors of a pool together, then share again.
    """
    pool: dict[str, PointBuffer] = {}
    for det in detectors:
        if not isinstance(det, WholeRunDetector) or type(det).update is not WholeRunDetector.update:
            continue  # (a detector that buffers its own way keeps its own buffers)
        reads: set[str] = set()
        for m, buf in det.buffers_.items():
            if m in pool:
                det.buffers_[m] = pool[m]
                reads.add(m)
            else:
                pool[m] = buf
        det._pool, det._reads = pool, frozenset(reads)


class _Caches(threading.local):
    """Per-thread caches: two guards (or analyses) in two threads never see or clear each other's entries."""

    def __init__(self) -> None:
        self.clean: dict[int, tuple[Series, np.ndarray, np.ndarray]] = {}
        self.smooth: dict[tuple, tuple] = {}


_CACHES = _Caches()


def clear_caches() -> None:
    """Drop this thread's cached arrays (do not keep a big run alive after its analysis)."""
    _CACHES.clean.clear()
    _CACHES.smooth.clear()


def clean(s: Series | None) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of the finite points (cached per series: many detectors ask for the same one)."""
    if s is None:
        return np.empty(0, dtype=np.int64), np.empty(0)
    _CLEAN_CACHE = _CACHES.clean
    hit = _CLEAN_CACHE.get(id(s))
    if hit is not None and hit[0] is s:
        return hit[1], hit[2]
    ok = np.isfinite(s.values)
    out = (s.steps, s.values) if ok.all() else (s.steps[ok], s.values[ok])
    if len(_CLEAN_CACHE) > 64:
        _CLEAN_CACHE.clear()
    _CLEAN_CACHE[id(s)] = (s, *out)
    return out


def chunk_medians(steps: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Medians of ``n`` consecutive chunks of equal size (by point count); leftover points join a final,
    shorter chunk. Vectorised: one reshape, one median."""
    size = values.size
    n = max(1, min(n, size))
    k = size // n
    full = n * k
    meds = np.median(values[:full].reshape(n, k), axis=1)
    sorted_steps = steps.size < 2 or bool((steps[1:] >= steps[:-1]).all())
    mids = _sorted_row_medians(steps[:full].reshape(n, k)) if sorted_steps else \
        np.median(steps[:full].reshape(n, k).astype(float), axis=1)
    if full < size:
        meds = np.append(meds, np.median(values[full:]))
        mids = np.append(mids, np.median(steps[full:].astype(float)))
    return mids, meds


def _sorted_row_medians(rows: np.ndarray) -> np.ndarray:
    """``np.median(rows.astype(float), axis=1)`` of rows already in ascending order, without sorting: the
    middle element, or the mean of the two middle ones (the same float operations as np.median's)."""
    k = rows.shape[1]
    if k % 2:
        return rows[:, k // 2].astype(float)
    return (rows[:, k // 2 - 1].astype(float) + rows[:, k // 2].astype(float)) / 2


def block_stats_cached(values: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(median, noise) of each complete block of ``block`` values (see ``spike.block_stats``), computed
    once per array: the spike, divergence and instability detectors all look at the same blocks."""
    from .spike import block_stats

    key = ("blocks", id(values), values.size, block)
    _SMOOTH_CACHE = _CACHES.smooth
    hit = _SMOOTH_CACHE.get(key)
    if hit is not None and hit[0] is values:
        return hit[1], hit[2]
    nb = values.size // block
    out = block_stats(values[: nb * block].reshape(nb, block)) if nb else (np.empty(0), np.empty(0))
    if len(_SMOOTH_CACHE) > 64:
        _SMOOTH_CACHE.clear()
    _SMOOTH_CACHE[key] = (values, *out)
    return out


def smoothed(steps: np.ndarray, values: np.ndarray, target_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Robust curve: medians over chunks of ~1 % of the run (at least 1 point); cached per input."""
    n = values.size
    if n <= target_points:
        return steps.astype(float), values
    key = (id(values), n, target_points)
    _SMOOTH_CACHE = _CACHES.smooth
    hit = _SMOOTH_CACHE.get(key)
    if hit is not None and hit[0] is values:
        return hit[1], hit[2]
    out = chunk_medians(steps.astype(float), values, target_points)
    if len(_SMOOTH_CACHE) > 64:
        _SMOOTH_CACHE.clear()
    _SMOOTH_CACHE[key] = (values, *out)
    return out
