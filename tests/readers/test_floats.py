"""parse_floats must give exactly what float() gives token by token, and refuse exactly where it refuses."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lossdx.readers._floats import MIN_NUMBERS, parse_floats


def _reference(text: str) -> np.ndarray:
    return np.array([float(t) for t in text.split()], dtype=np.float64)


def _numerals(rng: random.Random, n: int) -> list[str]:
    makers = [lambda: repr(rng.random() * 10 ** rng.randint(-300, 300)), lambda: f"{rng.gauss(0, 1):.6e}",
              lambda: str(rng.randint(-10 ** 20, 10 ** 20)), lambda: f"{rng.random():.25f}", lambda: f"{rng.random():.4f}"]
    return [rng.choice(makers)() for _ in range(n)]


def test_long_lists_parse_bit_for_bit_like_float():
    rng = random.Random(0)
    tokens = _numerals(rng, 3 * MIN_NUMBERS) + ["1.", ".5", "1.e5", "-0", "-0.0", "00012", "1E-400", "1e400",
                                                "9007199254740993", "nan", "-nan", "NaN", "inf", "-inf", "Infinity",
                                                "+1", "+.5e-3"]
    rng.shuffle(tokens)
    text = " ".join(tokens)
    got, want = parse_floats(text), _reference(text)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.array_equal(got.view(np.int64), want.view(np.int64))  # NaN and -0.0 included, bit for bit


@pytest.mark.parametrize("odd", ["1_000", "1e", "1.2.3", "--1", ".", "e5", "1,2", '"1"', "0x10", "nan(1)", "infinit",
                                 "1e5j", "\u0661\u0662"])
def test_an_odd_token_is_read_or_refused_as_float_would(odd):
    text = " ".join(["1.5"] * MIN_NUMBERS + [odd] + ["2"] * MIN_NUMBERS)
    try:
        want = _reference(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_floats(text)
        return
    assert np.array_equal(parse_floats(text).view(np.int64), want.view(np.int64))


def test_short_and_empty_inputs():
    assert parse_floats("").size == 0
    assert parse_floats("1 2.5\n3").tolist() == [1.0, 2.5, 3.0]
    with pytest.raises(ValueError):
        parse_floats("1 x 3")
