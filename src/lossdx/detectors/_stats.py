"""Small robust statistics shared by the detectors (numpy only)."""

from __future__ import annotations

import numpy as np

#: MAD x 1.4826 estimates the standard deviation of Gaussian noise
MAD_TO_SIGMA = 1.4826


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D float64 or int64 array, bit for bit (the middle element of the
    sorted values, or the mean of the two middle ones, as np.median's own float operations give it; NaN when
    one is NaN) at a tenth of np.median's fixed cost, which dominates on the few dozen points of a short log."""
    n = values.size
    if n == 0 or n > 256 or values.ndim != 1 or values.dtype not in (np.float64, np.int64):
        return float(np.median(values))
    s = np.sort(values)  # NaN sorts last
    if s[-1] != s[-1]:
        return float("nan")
    h = n // 2
    return float(s[h]) if n % 2 else (float(s[h - 1]) + float(s[h])) / 2


def diff_sigma(values: np.ndarray) -> float:
    """Point-to-point noise of a curve: the MAD-sigma of its first differences over sqrt 2. Differences cancel
    the trend, so a falling curve does not pass for a noisy one. 0 for fewer than 2 points."""
    if values.size < 2:
        return 0.0
    return MAD_TO_SIGMA * median(np.abs(np.diff(values))) / float(np.sqrt(2.0))
