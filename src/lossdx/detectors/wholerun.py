"""Detectors that judge the shape of the whole curve (phases, plateaus, overfitting, schedules ...).

Online they buffer the points ``update`` receives and decide in ``finalize``; offline they decide on
the run's arrays directly. Both paths call the same :meth:`WholeRunDetector.analyze`, so they agree
by construction.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..findings import Finding
from ..model import Run, Series
from .base import Context, Detector, PointBuffer


class WholeRunDetector(Detector):
    requires: tuple[str, ...] = ("train/loss",)

    def reset(self, context: Context | None = None) -> None:
        super().reset(context)
        self.buffers_: dict[str, PointBuffer] = {}

    def update(self, step: int, values: Mapping[str, float]) -> list[Finding]:
        for m in self.requires:
            v = values.get(m)
            if v is not None:
                buf = self.buffers_.get(m)
                if buf is None:
                    buf = self.buffers_[m] = PointBuffer()
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


def clean(s: Series | None) -> tuple[np.ndarray, np.ndarray]:
    if s is None:
        return np.empty(0, dtype=np.int64), np.empty(0)
    ok = np.isfinite(s.values)
    return s.steps[ok], s.values[ok]


def chunk_medians(steps: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Medians of ``n`` equal consecutive chunks (by point count)."""
    edges = np.linspace(0, values.size, n + 1).astype(int)
    meds = np.array([np.median(values[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a])
    mids = np.array([np.median(steps[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a])
    return mids, meds


def smoothed(steps: np.ndarray, values: np.ndarray, target_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Robust curve: medians over chunks of ~1 % of the run (at least 1 point)."""
    n = values.size
    if n <= target_points:
        return steps.astype(float), values
    return chunk_medians(steps.astype(float), values, target_points)
