"""The loss forecast: right where the law holds, refuses where it does not, and rides in the analyze report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lossdx.cli._forecast import parse_target
from lossdx.exceptions import InputError
from lossdx.forecast import fit_power_law, forecast, forecast_curve, forecast_for_report
from lossdx.model import Run, Series


def law_curve(n=4000, E=2.0, A=6.0, alpha=0.5, noise=0.02, seed=0):
    t = np.arange(1, n + 1, dtype=float)
    return t, E + A * t ** -alpha + np.random.default_rng(seed).normal(0, noise, n)


def run_of(t, y, config=None):
    r = Run(series={"train/loss": Series.from_points("train/loss", t, y)})
    r.config = dict(config or {})
    r.source = {"path": "x.log", "format": "test"}
    return r


def test_fit_recovers_a_noiseless_law():
    t = np.arange(10, 5000, 5, dtype=float)
    law, sse = fit_power_law(t, 1.5 + 4.0 * t ** -0.3)
    assert abs(law.E - 1.5) < 1e-3 and abs(law.alpha - 0.3) < 1e-3 and sse < 1e-10


def test_forecast_from_half_covers_the_truth():
    t, y = law_curve()
    f = forecast_curve(t[:2000], y[:2000], 4000)
    truth = 2.0 + 6.0 * 4000 ** -0.5
    assert f.ok, f.reason
    assert abs(f.expected_loss - truth) / truth < 0.01
    assert f.interval[0] <= truth <= f.interval[1]
    assert f.gain_per_10pct_compute > 0 and f.gain_to_target > 0
    d = f.to_dict()
    assert d["target_step"] == 4000 and d["E"] >= 0 and len(d["interval"]) == 2


def test_near_the_floor_more_steps_are_not_worth_it():
    t, y = law_curve(E=2.0, A=0.3, alpha=0.8, noise=0.01)
    f = forecast_curve(t, y, 8000)
    if f.ok:
        assert not f.worth_it and "not worth it" in f.advice
    else:
        assert "not descending" in f.reason


@pytest.mark.parametrize("case, reason", [
    ("flat", "not descending"), ("few", "only"), ("far", "at most 20x"), ("restart", "bends away"),
    ("behind", "not beyond"),
])
def test_refusals_say_why(case, reason):
    t, y = law_curve()
    target = 8000.0
    if case == "flat":
        y = 3.0 + np.random.default_rng(1).normal(0, 0.02, t.size)
    elif case == "few":
        t, y = t[:10], y[:10]
    elif case == "far":
        target = 1e6
    elif case == "restart":  # a schedule restart: the loss jumps back up half-way and descends again
        after = np.maximum(t - 2400, 1.0)
        y = np.where(t < 2500, y, 2.0 + 6.0 * after ** -0.5 + 0.4 * np.exp(-np.maximum(t - 2500, 0) / 300))
    elif case == "behind":
        target = 100.0
    f = forecast_curve(t, y, target)
    assert not f.ok and reason in f.reason, f.reason
    assert f.to_dict()["reason"] == f.reason


def test_tokens_need_tokens_per_step():
    t, y = law_curve()
    with pytest.raises(InputError, match="tokens per step"):
        forecast(run_of(t, y), to_tokens=1e9)
    cfg = {"batch_size": 8, "seq_len": 128}
    f = forecast(run_of(t, y, cfg), to_tokens=8 * 128 * 6000)
    assert f.ok and f.target_step == 6000 and f.to_dict()["target_tokens"] == 8 * 128 * 6000


def test_report_carries_the_forecast_only_where_it_fits():
    from lossdx import analyze
    from lossdx.report import load_schema

    jsonschema = pytest.importorskip("jsonschema")
    t, y = law_curve()
    rep = analyze(run_of(t, y, {"max_steps": 10000}))
    fc = rep.run["forecast"]
    assert fc["target_step"] == 10000 and fc["ok"]
    jsonschema.validate(json.loads(rep.to_json()), load_schema())
    flat = 3.0 + np.random.default_rng(1).normal(0, 0.02, t.size)
    assert forecast_for_report(run_of(t, flat)) is None
    assert "forecast" not in analyze(run_of(t, flat)).run


def test_parse_target():
    assert parse_target("50000") == (50000, None)
    assert parse_target("50k") == (50000, None)
    assert parse_target("2.5e9tokens") == (None, 2.5e9)
    assert parse_target("26B tokens") == (None, 26e9)
    with pytest.raises(InputError):
        parse_target("soon")


def test_forecast_cli(tmp_path):
    t, y = law_curve()
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": int(s), "loss": float(v)}) + "\n" for s, v in zip(t, y)))

    def cli(*a):
        return subprocess.run([sys.executable, "-m", "lossdx", "forecast", str(log), *a], capture_output=True,
                              text=True)

    r = cli("--to", "8000")
    assert r.returncode == 0 and "expected loss" in r.stdout and "irreducible level E" in r.stdout
    r = cli("--to", "8000", "-f", "json")
    assert json.loads(r.stdout)["ok"] is True
    r = cli("--to", "1e7")
    assert r.returncode == 1 and "no forecast" in r.stdout
    r = cli("--to", "1e9tokens")
    assert r.returncode == 2 and "tokens per step" in r.stderr and r.stderr.count("\n") == 1


def test_text_and_markdown_reports_show_the_forecast():
    from lossdx import analyze
    from lossdx.report import render

    t, y = law_curve()
    rep = analyze(run_of(t, y, {"max_steps": 10000}))
    assert "forecast: loss" in render(rep, "text") and "at step 10,000" in render(rep, "text")
    assert "## Forecast" in render(rep, "md")
