"""The model-family benchmark's labels agree with its files (benchmarks/families; scoring needs no torch)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

FAMILIES = Path(__file__).resolve().parent.parent / "benchmarks" / "families"
LABELS = json.loads((FAMILIES / "labels.json").read_text())


def test_every_log_labelled_and_every_label_a_file():
    sys.path.insert(0, str(FAMILIES))
    try:
        from generate import check
    finally:
        sys.path.remove(str(FAMILIES))
    assert check() == []


def test_runs_never_straddle_the_split_and_both_halves_have_healthy_runs_of_each_family():
    splits = defaultdict(set)
    for entry in LABELS.values():
        splits[entry["group"]].add(entry["split"])
    assert all(len(s) == 1 for s in splits.values()), {g: s for g, s in splits.items() if len(s) > 1}
    healthy = {(e["family"], e["split"]) for e in LABELS.values() if e["cause"] == "healthy"}
    families = {e["family"] for e in LABELS.values()}
    assert healthy == {(f, s) for f in families for s in ("tune", "holdout")}


def test_excerpts_start_mid_run_without_a_config():
    excerpts = {k: e for k, e in LABELS.items() if e["excerpt_from_step"] is not None}
    assert excerpts
    for key, entry in excerpts.items():
        assert ".excerpt/" in key and entry["config"] is None and entry["excerpt_from_step"] > 0
        assert all(s >= entry["excerpt_from_step"] for s in entry["steps"]), key


def test_the_scorer_scores_only_the_families_asked_for():
    import subprocess

    want = sum(1 for e in LABELS.values() if e["family"] == "seqcls" and e["split"] == "tune")
    out = subprocess.run([sys.executable, str(FAMILIES.parent / "generalisation.py"), "--set", "families",
                          "--split", "tune", "--family", "seqcls"], capture_output=True, text=True, check=True).stdout
    assert want and f"n={want:3d}" in out.splitlines()[0], out
