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
_REPORTS: dict = {}


def _report(path):
    if path not in _REPORTS:
        _REPORTS[path] = analyze_path(str(path))
    return _REPORTS[path]


#: Files whose curves show nothing of the injected fault: the nanoGPT text log has no LR and no grad norm and
#: logs the loss every 10 steps, so the fault is in the config only (weight decay 8; warmup 0 at LR 3e-3; the
#: same runs' per-step formats show it). Issue 7: a config value the curve does not back is advice — the right
#: cause ranked first at advice confidence, with a healthy verdict.
CONFIG_ONLY = {("huge_weight_decay", "log"), ("no_warmup", "log")}


@pytest.mark.skipif(not CASES, reason="../shared/benchmarks not available")
@pytest.mark.parametrize("path,label,fmt", CASES)
def test_labelled_run(path, label, fmt):
    rep = _report(path)
    serious = [f"{f.kind}@{f.start_step}" for f in rep.findings if f.severity != "info"]
    if label["verdict"] == "healthy":
        assert rep.verdict == "healthy", serious
        return
    if (path.parent.name, fmt) in CONFIG_ONLY:
        assert rep.verdict == "healthy", serious
        assert rep.diagnoses and rep.diagnoses[0].cause in label["accept"] and rep.diagnoses[0].confidence <= 0.3
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


@pytest.mark.skipif(not CASES, reason="../shared/benchmarks not available")
def test_diagnosis_acceptance():
    """Issue #4: top cause in the accept list >= 90 % (top-3 >= 97 %) of problem runs; healthy runs get no cause
    above 0.3; causes given >= 0.8 are right >= 80 % of the time; every diagnosis cites >= 2 pieces of evidence."""
    top1 = top3 = problems = 0
    high = []
    for param in CASES:
        path, label, _fmt = param.values
        rep = _report(path)
        accept = set(label.get("accept") or [])
        causes = [d.cause for d in rep.diagnoses]
        for d in rep.diagnoses:
            assert len(d.evidence) >= 2, (path, d.cause, d.evidence)
            if d.confidence >= 0.8:
                high.append(d.cause in accept)
        if label["verdict"] == "healthy":
            assert all(d.confidence <= 0.3 for d in rep.diagnoses), (path, causes)
            continue
        problems += 1
        top1 += bool(causes) and causes[0] in accept
        top3 += bool(set(causes[:3]) & accept)
    assert top1 / problems >= 0.90, (top1, problems)
    assert top3 / problems >= 0.97, (top3, problems)
    assert high and sum(high) / len(high) >= 0.80
