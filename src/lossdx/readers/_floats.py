"""Many numbers from text at C speed: the readers' fast paths spent most of their time in ``float``.

``numpy.loadtxt``'s C parser (numpy >= 1.23) reads whitespace-separated numerals with the same correctly
rounded conversion as ``float`` (about 1.5-2x faster than ``map(float, ...)`` on a million); anything it does
not take the way ``float`` does (``1_000``, an odd token) makes it refuse, and ``float`` decides as before.
tests/readers/test_floats.py checks the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

#: below this many numbers the call costs more than it saves
MIN_NUMBERS = 4096


def parse_floats(text: str) -> np.ndarray:
    """``np.array([float(t) for t in text.split()])``; raises ValueError where that would."""
    tokens = None
    if len(text) >= 4 * MIN_NUMBERS and "_" not in text:  # float() reads "1_000"; loadtxt does not
        try:
            values = np.loadtxt([text], dtype=np.float64, comments=None, ndmin=1, encoding=None)
        except ValueError:
            pass  # float() decides what the token means, and raises where it must
        else:
            if values.ndim == 1:
                return values
    tokens = text.split()
    return np.array(list(map(float, tokens)), dtype=np.float64)
