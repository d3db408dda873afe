from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LOSSDX_SHARED", ROOT.parent / "shared"))
GPU_RUNS = SHARED / "benchmarks" / "gpu-runs"
VISION_RUNS = SHARED / "benchmarks" / "vision-runs"
REALCORPUS = SHARED / "realcorpus"
DATA = Path(__file__).resolve().parent / "data"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available (../shared missing)")
    return path
