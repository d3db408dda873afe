import numpy as np

from lossdx.datacheck.repeats import repeat_runs


def test_finds_each_period_at_its_shortest_and_ignores_short_repeats():
    g = np.random.default_rng(0)
    a = g.integers(100, 5000, 5000)
    a[100:100 + 13 * 32] = np.tile(np.arange(13), 32)  # exactly 32 repeats of a 13-token unit
    a[1000:1040] = 7  # 40 repeats of a 1-token unit
    a[2000:2000 + 2 * 31] = np.tile([1, 2], 31)  # 31 repeats: below the threshold
    runs = repeat_runs(a)
    assert [(s, p) for s, _, p in runs] == [(100, 13), (1000, 1)]
    assert runs[0][1] == 13 * 32 and runs[1][1] == 40


def test_random_tokens_have_no_runs():
    assert repeat_runs(np.random.default_rng(1).integers(0, 50000, 200_000)) == []


def _brute(a, max_period=13, min_repeats=32):
    """Every stretch by direct comparison, no prefilter: the reference the fast search must equal."""
    found, covered = [], []
    for p in range(1, max_period + 1):
        need = (min_repeats - 1) * p
        eq = np.concatenate((a[p:] == a[:-p], [False]))
        i = 0
        while i < eq.size:
            if eq[i]:
                j = i
                while j < eq.size and eq[j]:
                    j += 1
                if j - i >= need and not any(cs <= i < ce for cs, ce in covered):
                    covered.append((i, j + p))
                    found.append((i, j - i + p, p))
                i = j
            else:
                i += 1
    return sorted(found)


def test_prefiltered_search_equals_brute_force():
    g = np.random.default_rng(3)
    for trial in range(40):
        a = g.integers(0, 6 if trial % 4 == 0 else 400, 3000)  # a small alphabet makes chance equalities common
        for _ in range(g.integers(0, 4)):
            p, reps = int(g.integers(1, 14)), int(g.integers(25, 45))
            s = int(g.integers(0, a.size - p * reps))
            a[s:s + p * reps] = np.tile(g.integers(0, 400, p), reps)
        assert repeat_runs(a) == _brute(a), trial
