"""Long repeated n-grams: OLMo drops sequences holding >= 32 repeats of a 1-13 token period."""

from __future__ import annotations

import numpy as np

MAX_PERIOD = 13
MIN_REPEATS = 32
_STRIDE = 8  # the prefilter compares every 8th position only


def _exact(a: np.ndarray, p: int, need: int) -> list[tuple[int, int]]:
    """``(start, n)``: each run of ``n >= need`` consecutive positions with ``a[i] == a[i + p]``."""
    idx = np.flatnonzero(a[p:] == a[:-p])
    if idx.size < need:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [idx.size - 1]))
    lengths = ends - starts + 1
    keep = lengths >= need
    return [(int(s), int(n)) for s, n in zip(idx[starts[keep]], lengths[keep])]


def _candidates(a: np.ndarray, p: int, need: int) -> list[tuple[int, int]]:
    """Regions that may hold a run: a run of ``need`` equalities holds >= need // 8 consecutive sampled ones, so
    comparing every 8th position finds every run at an eighth of the cost (natural text rarely repeats 3 in a row)."""
    k = max(2, need // _STRIDE - 1)
    m = (a.size - p) // _STRIDE
    if m < k:
        return [(0, a.size)]
    eqs = a[0:m * _STRIDE:_STRIDE] == a[p:p + m * _STRIDE:_STRIDE]
    idx = np.flatnonzero(eqs)
    if idx.size < k:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [idx.size - 1]))
    keep = (ends - starts + 1) >= k
    out: list[tuple[int, int]] = []
    for s, e in zip(idx[starts[keep]], idx[ends[keep]]):
        lo = max(0, int(s) * _STRIDE - _STRIDE)
        hi = min(a.size, int(e) * _STRIDE + 2 * _STRIDE + p + 1)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def repeat_runs(tokens: np.ndarray, max_period: int = MAX_PERIOD,
                min_repeats: int = MIN_REPEATS) -> list[tuple[int, int, int]]:
    """``(start, length, period)`` of each stretch that repeats a ``period``-token unit >= ``min_repeats`` times.

    A stretch with period p satisfies ``a[i] == a[i + p]`` over ``(min_repeats - 1) * p`` consecutive positions.
    A stretch found for several periods is kept once, at its shortest period.
    """
    a = np.asarray(tokens)
    found: list[tuple[int, int, int]] = []
    covered: list[tuple[int, int]] = []
    for p in range(1, max_period + 1):
        need = (min_repeats - 1) * p
        if a.size < need + p:
            break
        for lo, hi in _candidates(a, p, need):
            for s, n in _exact(a[lo:hi], p, need):
                s, span = lo + s, n + p  # n equalities cover n + p tokens
                if any(cs <= s < ce for cs, ce in covered):
                    continue
                covered.append((s, s + span))
                found.append((s, span, p))
    found.sort()
    return found
