"""Small robust statistics shared by the detectors (numpy only)."""

from __future__ import annotations

#: MAD x 1.4826 estimates the standard deviation of Gaussian noise
MAD_TO_SIGMA = 1.4826
