"""Many numbers from text at C speed: the nanoGPT fast path (readers.text) spent most of its time in ``float``.

``numpy.loadtxt``'s C parser (numpy >= 1.23) reads whitespace-separated numerals with the same correctly
rounded conversion as ``float``, ~1.3-1.5x faster than ``map(float, ...)`` on a million short numerals (long
17-digit ones gain little: the JSONL reader keeps ``float``); anything it does not take the way ``float`` does
(``1_000``, an odd token) makes it refuse, and ``float`` decides as before. tests/readers/test_floats.py checks
the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

#: below this many numbers the call costs more than it saves
MIN_NUMBERS = 4096


def parse_floats(text: str) -> np.ndarray:
    """``np.array([float(t) for t in text.split()])``; raises ValueError where that would."""
    if len(text) >= 4 * MIN_NUMBERS and "_" not in text:  # float() reads "1_000"; loadtxt does not
        try:
            parts = [np.loadtxt([piece], dtype=np.float64, comments=None, ndmin=1, encoding=None)
                     for piece in _pieces(text)]
        except ValueError:
            pass  # float() decides what the token means, and raises where it must
        else:
            if all(p.ndim == 1 for p in parts):
                return np.concatenate(parts) if len(parts) != 1 else parts[0]
    return np.array(list(map(float, text.split())), dtype=np.float64)


#: characters loadtxt converts per call: its working copy (4 bytes a character) stays small, so a large
#: file's blocks do not leave the heap grown by tens of MB (glibc keeps what a big transient took)
PIECE_CHARS = 1 << 16


def _pieces(text: str) -> list[str]:
    """``text`` cut at spaces into pieces of about PIECE_CHARS characters (tokens never split)."""
    out, start, n = [], 0, len(text)
    while start < n:
        cut = text.find(" ", start + PIECE_CHARS) if start + PIECE_CHARS < n else -1
        if cut < 0:
            out.append(text[start:])
            break
        out.append(text[start:cut])
        start = cut + 1
    return out
