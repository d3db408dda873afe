"""Detectors: online-first objects that turn metric series into findings."""

from __future__ import annotations

from typing import Sequence

from ..findings import Finding
from ..model import Run
from .base import Detector


def default_detectors() -> list[Detector]:
    """Fresh instances of every built-in detector (they hold state)."""
    return []


def detect_all(run: Run, detectors: Sequence[Detector]) -> list[Finding]:
    findings: list[Finding] = []
    for det in detectors:
        findings.extend(det.detect(run))
    return findings


__all__ = ["Detector", "default_detectors", "detect_all"]
