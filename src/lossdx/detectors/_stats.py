"""Small robust statistics shared by the detectors (numpy only)."""

from __future__ import annotations

import numpy as np

#: MAD x 1.4826 estimates the standard deviation of Gaussian noise
MAD_TO_SIGMA = 1.4826


def diff_sigma(values: np.ndarray) -> float:
    """Point-to-point noise of a curve: the MAD-sigma of its first differences over sqrt 2. Differences cancel
    the trend, so a falling curve does not pass for a noisy one. 0 for fewer than 2 points."""
    if values.size < 2:
        return 0.0
    return MAD_TO_SIGMA * float(np.median(np.abs(np.diff(values)))) / float(np.sqrt(2.0))
