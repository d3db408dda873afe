"""The public API is ``mypy --strict``-clean: the package (per pyproject's [tool.mypy]) and a client using it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CLIENT = '''
import lossdx
from lossdx.settings import Settings, load_settings

run: lossdx.Run = lossdx.read("train.log")
runs: list[lossdx.Run] = lossdx.read_runs("train.log")
series: lossdx.Series = run.series["train/loss"]
report: lossdx.Report = lossdx.analyze(run, settings=Settings(ignore=("throughput",), spike_z=10.0))
report = lossdx.analyze_path("train.log", config=None, settings=load_settings("train.log"))
verdict: str = report.verdict
findings: list[lossdx.Finding] = report.findings
first: lossdx.Diagnosis = report.diagnoses[0]
confidence: float = first.confidence
text: str = report.to_json()
version: str = lossdx.__version__
try:
    lossdx.read("x")
except lossdx.InputError as err:
    message: str = str(err)
'''


def test_public_api_is_mypy_strict_clean(tmp_path):
    pytest.importorskip("mypy")
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    p = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                        "--cache-dir", str(tmp_path / "cache"), str(ROOT / "src" / "lossdx"), str(client)],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
