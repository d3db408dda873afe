"""Detectors: online-first objects that turn metric series into findings.

``default_detectors()`` returns fresh instances (they hold state); extend with
``analyze(run, detectors=[*default_detectors(), MyDetector()])``.
"""

from __future__ import annotations

from typing import Sequence

from ..findings import Finding
from ..model import Run
from .base import Context, Detector
from .config_check import ConfigCheckDetector
from .curve import (ChanceLevelDetector, CreepDetector, DataOrderDetector, InitLossDetector, InstabilityDetector, OverfittingDetector, PhaseDetector,
                    PlateauDetector, SlowConvergenceDetector, TooGoodDetector)
from .curve import PeakLRStallDetector
from .divergence import DivergenceDetector
from .loglimits import LogLimitsDetector
from .nonfinite import NonFiniteDetector
from .precursor import PrecursorDetector
from .schedule import ClipSaturationDetector, LRScheduleDetector, ThroughputDetector
from .shortlog import ShortLogDetector
from .spike import GradNormDetector, SpikeDetector


def default_detectors() -> list[Detector]:
    """Fresh instances of every built-in detector."""
    return [
        NonFiniteDetector(), SpikeDetector(), DivergenceDetector(), GradNormDetector(), PhaseDetector(),
        PlateauDetector(), SlowConvergenceDetector(), OverfittingDetector(), InitLossDetector(), TooGoodDetector(),
        DataOrderDetector(), InstabilityDetector(), LRScheduleDetector(), ClipSaturationDetector(),
        ThroughputDetector(), ConfigCheckDetector(), PrecursorDetector(), LogLimitsDetector(), ShortLogDetector(),
        ChanceLevelDetector(), CreepDetector(), PeakLRStallDetector(),
    ]


def detect_all(run: Run, detectors: Sequence[Detector], context: Context | None = None) -> list[Finding]:
    from .wholerun import clear_caches

    ctx = context or Context.from_run(run)
    findings: list[Finding] = []
    try:
        # one thread on purpose: two threads were 1.6x faster on 1M steps but glibc's per-thread arenas
        # kept ~80 MB more resident (benchmarks/analyze_speed.py)
        for det in detectors:
            findings.extend(det.detect(run, ctx))
    finally:
        clear_caches()  # do not keep a big run alive after its analysis
    return findings


__all__ = ["Context", "Detector", "default_detectors", "detect_all"]
