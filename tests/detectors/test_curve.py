"""Curve detectors on hostile values (found by tests/test_fuzz_cli.py's longer campaigns)."""

import numpy as np

from lossdx.analyze import analyze
from lossdx.detectors.curve import _uniform_guess
from lossdx.model import Series
from lossdx.testing.synthetic import make_curve


def test_a_validation_loss_of_a_thousand_is_no_uniform_guess_and_no_crash():
    assert _uniform_guess(1419.0) is None and _uniform_guess(float("nan")) is None
    assert _uniform_guess(np.log(10)) == 10
    run, _ = make_curve("healthy", n=8, seed=0)
    steps = np.arange(1, 9)
    run.series = {"train/loss": Series("train/loss", steps, np.ones(8)),
                  "val/loss": Series("val/loss", steps, np.array([1.0] * 7 + [1419.0]))}
    run.config.clear()
    analyze(run)  # an OverflowError in math.exp before
