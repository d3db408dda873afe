"""The five formats of every labelled GPU run hold the same train-loss series."""

import math

import numpy as np
import pytest

from lossdx.readers import read

from ..conftest import GPU_RUNS

RUNS = sorted(p.name for p in GPU_RUNS.iterdir() if p.is_dir()) if GPU_RUNS.exists() else []


def _same(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


@pytest.mark.skipif(not RUNS, reason="../shared/benchmarks/gpu-runs not available")
@pytest.mark.parametrize("name", RUNS)
def test_five_formats_agree(name):
    d = GPU_RUNS / name
    ref = dict(read(str(d / "metrics.jsonl")).series["train/loss"].points())  # every step, full precision
    assert len(ref) >= 40
    for fmt_file, tol in (("tb", 1e-6 * 12), ("metrics.csv", 1e-9), ("train.log", 5.1e-5)):
        s = read(str(d / fmt_file)).series["train/loss"]
        assert len(s) > 0
        for step, v in s.points():
            assert step in ref, (fmt_file, step)
            assert _same(v, ref[step], tol), (fmt_file, step, v, ref[step])
        if fmt_file != "train.log":
            assert len(s) == len(ref)
    # HF logs the mean over each 10-step window: its step s (1-based) covers steps s-10 .. s-1
    hf = read(str(d / "trainer_state.json"))
    assert hf.meta["log_window"] == 10
    for step, v in hf.series["train/loss"].points():
        window = [ref[k] for k in range(step - 10, step) if k in ref]
        if any(math.isnan(x) for x in window) or not window:
            assert math.isnan(v) or not window, (step, v)
            continue
        assert abs(v - float(np.mean(window))) <= 1e-4, (step, v, np.mean(window))
