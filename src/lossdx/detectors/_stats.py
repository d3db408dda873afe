"""Small robust statistics shared by the detectors (numpy only)."""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826


def robust_center_scale(x: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based sigma of the finite values of ``x``."""
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(x))
    return med, MAD_TO_SIGMA * float(np.median(np.abs(x - med)))


def block_medians(values: np.ndarray, block: int) -> np.ndarray:
    """Medians of consecutive complete blocks of ``block`` values (the tail that does not fill one is left out)."""
    n = values.size // block
    if n == 0:
        return np.empty(0)
    return np.median(values[: n * block].reshape(n, block), axis=1)


def smooth_median(steps: np.ndarray, values: np.ndarray, n_out: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A robust downsampled curve: medians of ~n_out equal chunks (steps at the chunk medians)."""
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    n = values.size
    if n == 0:
        return steps.astype(float), values
    k = max(1, n // n_out)
    m = n // k
    v = np.median(values[: m * k].reshape(m, k), axis=1)
    s = np.median(steps[: m * k].reshape(m, k).astype(float), axis=1)
    if m * k < n:  # keep the tail: the end of the run matters most
        v = np.append(v, np.median(values[m * k:]))
        s = np.append(s, np.median(steps[m * k:].astype(float)))
    return s, v


def value_at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    """Linear interpolation of a (smoothed) curve at ``step``."""
    return float(np.interp(step, steps, values))
