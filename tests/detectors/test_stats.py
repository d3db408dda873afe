"""The small statistics of ``lossdx.detectors._stats``: the fast median is np.median, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossdx.detectors._stats import median

_FLOATS = hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(allow_nan=True, allow_infinity=True))
_INTS = hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-2 ** 53, 2 ** 53))


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or np.float64(a).tobytes() == np.float64(b).tobytes() or (a == b == 0)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_FLOATS, _INTS))
def test_median_is_numpys(values):
    with np.errstate(all="ignore"):
        assert _same(median(values), float(np.median(values)))


def test_median_of_what_it_does_not_shortcut():
    assert median(np.array([3.0, 1.0, 2.0], dtype=np.float32)) == 2.0  # other dtypes: np.median itself
    assert median(np.arange(1001.0)) == 500.0
    assert np.isnan(median(np.array([1.0, np.nan, 0.5])))
