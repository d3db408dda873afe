"""Acceptance on the labelled runs, every format: healthy runs clean, problem runs flagged, injected
spikes located (±3 steps, ±10 on HF windows), the first NaN exact at the log's granularity."""

import json

import pytest

from lossdx.analyze import analyze_path
from lossdx.readers import read

from .conftest import GPU_RUNS, VISION_RUNS

FORMATS = {"jsonl": "metrics.jsonl", "csv": "metrics.csv", "log": "train.log", "hf": "trainer_state.json", "tb": "tb"}


def _cases():
    out = []
    for base in (GPU_RUNS, VISION_RUNS):
        if not (base / "LABELS.json").exists():
            continue
        labels = json.loads((base / "LABELS.json").read_text())
        for name, lab in sorted(labels.items()):
            for fmt, fname in FORMATS.items():
                if (base / name / fname).exists():
                    out.append(pytest.param(base / name / fname, lab, fmt, id=f"{name}-{fmt}"))
    return out


CASES = _cases()


@pytest.mark.skipif(not CASES, reason="../shared/benchmarks not available")
@pytest.mark.parametrize("path,label,fmt", CASES)
def test_labelled_run(path, label, fmt):
    rep = analyze_path(str(path))
    serious = [f"{f.kind}@{f.start_step}" for f in rep.findings if f.severity != "info"]
    if label["verdict"] == "healthy":
        assert rep.verdict == "healthy", serious
        return
    assert rep.verdict in ("warning", "problem"), serious
    injected = label.get("injected_steps") or []
    if label.get("symptom") == "spike":
        tol = 10 if fmt == "hf" else 3
        found = [f.start_step for f in rep.findings if f.kind == "spike" and f.severity != "info"]
        for s in injected:
            assert any(abs(f - s) <= tol for f in found), (s, found)
    if label.get("symptom") == "nan" and injected:
        logged = read(str(path)).series["train/loss"].steps.tolist()
        first_logged = next(s for s in logged if s >= injected[0] + (1 if fmt == "hf" else 0))
        loss_nan = [f.start_step for f in rep.findings if f.kind == "nan" and
                    (f.metric == "train/loss" or f.evidence.get("hidden_by_window"))]
        assert loss_nan and min(loss_nan) == first_logged, (loss_nan, first_logged)
