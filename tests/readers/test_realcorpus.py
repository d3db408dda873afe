"""Real public logs: >= 98 % of those with >= 5 loss records parse, and values match the raw text."""

import csv
import math
import re

import pytest

from lossdx.exceptions import InputError
from lossdx.readers import read_runs

from ..conftest import REALCORPUS

MANIFEST = REALCORPUS / "MANIFEST.tsv"


def _rows():
    if not MANIFEST.exists():
        return []
    with open(MANIFEST, encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _rows()
NUM = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)")

pytestmark = pytest.mark.skipif(not ROWS, reason="../shared/realcorpus not available")


def test_parse_rate():
    eligible = [r for r in ROWS if int(r["n_points"] or 0) >= 5]
    failed = []
    for r in eligible:
        try:
            runs = read_runs(str(REALCORPUS / r["file"]))
            assert any(len(run.series.get("train/loss", ())) or len(run.series.get("val/loss", ())) for run in runs)
        except InputError as err:
            failed.append((r["file"], str(err)))
    rate = 1 - len(failed) / len(eligible)
    assert rate >= 0.98, failed


TEXT_ROWS = [r for r in ROWS if r["format"] not in ("tfevents",) and int(r["n_points"] or 0) >= 5]


@pytest.mark.parametrize("row", TEXT_ROWS, ids=[r["file"] for r in TEXT_ROWS])
def test_values_appear_in_the_raw_text(row):
    """Every sampled train-loss value is a number printed in the file (no invented or shifted values)."""
    path = REALCORPUS / row["file"]
    try:
        runs = read_runs(str(path))
    except InputError:
        pytest.skip("not parsed (counted by test_parse_rate)")
    raw_numbers = {}
    for m in NUM.finditer(path.read_text(encoding="utf-8", errors="replace")):
        try:
            raw_numbers.setdefault(round(float(m.group()), 9), m.group())
        except ValueError:
            pass
    for run in runs:
        for key in ("train/loss", "val/loss"):
            s = run.series.get(key)
            if s is None:
                continue
            idx = range(0, len(s), max(1, len(s) // 25))
            for i in idx:
                v = float(s.values[i])
                if not math.isfinite(v):
                    continue
                assert round(v, 9) in raw_numbers, (key, int(s.steps[i]), v)
