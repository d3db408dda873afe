"""The guard replayed over the labelled GPU runs' per-step logs: silent on healthy runs, acting at the injected
steps of the bad-batch and NaN runs (what it would have done live)."""

from __future__ import annotations

import json

import pytest

import lossdx
from lossdx.detectors.base import iter_steps
from lossdx.guard import Guard

from ..conftest import GPU_RUNS, need

METRICS = ("train/loss", "val/loss", "train/grad_norm", "train/lr")


def _labels() -> dict:
    with open(need(GPU_RUNS / "LABELS.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _replay(name: str) -> list:
    run = lossdx.read(str(need(GPU_RUNS / name / "metrics.jsonl")))
    guard = Guard(None)
    actions = []
    for step, values in iter_steps(run, METRICS):
        act = guard.observe(step, values)
        if act.kind != "continue":
            actions.append(act)
    return actions


def test_silent_on_every_healthy_run():
    healthy = [name for name, lab in _labels().items() if isinstance(lab, dict) and lab.get("verdict") == "healthy"]
    assert len(healthy) >= 5
    for name in healthy:
        assert _replay(name) == [], name


@pytest.mark.parametrize("name", ["bad_batch_spike", "bad_batch_clipped", "nan_empty_batch", "nan_input_poison"])
def test_acts_at_the_injected_steps(name):
    label = _labels()[name]
    actions = _replay(name)
    steps = {a.step for a in actions}
    assert set(label["injected_steps"]) <= steps, (name, sorted(steps))
    if label["symptom"] == "nan":
        assert actions[0].kind == "rollback" and actions[0].events[0].kind == "nan"
