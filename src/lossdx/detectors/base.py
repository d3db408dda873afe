"""The detector protocol shared by offline analysis and the live guard.

A detector consumes one training step at a time with :meth:`Detector.update` (``step`` and the
metrics logged at that step) and returns the findings it can already decide; :meth:`finalize`
returns what can only be decided once the data ends. Offline analysis (:meth:`detect`) feeds a
whole :class:`~lossdx.model.Run` through the *same* two methods, so the live guard and ``lossdx
analyze`` cannot disagree. A detector may override :meth:`detect` with a vectorised twin for speed;
``tests/detectors/test_contract.py`` proves the twin returns identical findings.

Conventions (sklearn's): keyword parameters with defaults stored as-is in ``__init__``; running state
in attributes ending in ``_``, created by :meth:`reset`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..context import RunProfile, profile_run
from ..findings import Finding
from ..model import Run, Series
from ._stats import median


@dataclass
class Context:
    """What a detector may know besides the curves: the config and how the log was written."""

    config: dict[str, Any] = field(default_factory=dict)
    log_window: int = 1  # steps averaged into one logged point (HF logging_steps)
    log_interval: int = 1  # steps between logged points
    max_steps: int | None = None  # planned length of the run, when known
    #: what kind of run this is and what the log covers (norms come from here); a default profile
    #: (from scratch, unknown optimizer) when a live guard has not derived one
    profile: RunProfile = field(default_factory=RunProfile)

    @classmethod
    def from_run(cls, run: Run) -> "Context":
        loss = run.series.get("train/loss") or run.series.get("val/loss")
        interval = 1
        if loss is not None and len(loss) > 2:
            interval = max(1, int(median(np.diff(loss.steps))))
        window = int(run.meta.get("log_window", 1) or 1)
        pinned = run.meta.get("profile")
        if isinstance(pinned, dict):
            pinned = RunProfile.from_dict(pinned)
        # a run whose context was fixed when it was recorded (the live guard's history) is judged with that
        # context, so that analysing it offline gives exactly the findings raised live
        profile = pinned if isinstance(pinned, RunProfile) else profile_run(run, window, interval)
        return cls(config=dict(run.config), log_window=window, log_interval=interval,
                   # (an HF trainer_state.json states its planned max_steps itself, a checkpoint's mid-run too)
                   max_steps=run.config.get("max_steps") or run.meta.get("hf_max_steps"), profile=profile)

    @property
    def points_averaged(self) -> int:
        """How many per-step losses one logged point averages (1 for per-step logs)."""
        return max(1, self.log_window)


class Detector:
    """Base class of all detectors."""

    name = "detector"
    #: canonical metrics this detector reads
    requires: tuple[str, ...] = ("train/loss",)

    def reset(self, context: Context | None = None) -> None:
        self.context_ = context or Context()

    def update(self, step: int, values: Mapping[str, float]) -> list[Finding]:
        raise NotImplementedError

    def finalize(self) -> list[Finding]:
        return []

    def detect_online(self, run: Run, context: Context | None = None) -> list[Finding]:
        """The reference path: every step of the run through update(), then finalize()."""
        self.reset(context or Context.from_run(run))
        out: list[Finding] = []
        for step, values in iter_steps(run, self.requires):
            out.extend(self.update(step, values))
        out.extend(self.finalize())
        return out

    def detect(self, run: Run, context: Context | None = None) -> list[Finding]:
        """Offline analysis; defaults to the online path."""
        return self.detect_online(run, context)

    def state_dict(self) -> dict[str, Any]:
        """A deep copy of the running state (attributes ending in ``_``): resume a guard from it."""
        return copy.deepcopy({k: v for k, v in vars(self).items() if k.endswith("_")})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in copy.deepcopy(state).items():
            setattr(self, k, v)


def iter_steps(run: Run, metrics: tuple[str, ...]):
    """(step, {metric: value}) in step order over the union of the metrics' steps."""
    present = [(m, run.series[m]) for m in metrics if m in run.series and len(run.series[m])]
    if not present:
        return
    if len(present) == 1:
        m, s = present[0]
        for st, v in zip(s.steps.tolist(), s.values.tolist()):
            yield st, {m: v}
        return
    all_steps = np.unique(np.concatenate([s.steps for _m, s in present]))
    lookups = []
    for m, s in present:
        idx = np.searchsorted(s.steps, all_steps)
        idx_c = np.minimum(idx, len(s) - 1)
        hit = s.steps[idx_c] == all_steps
        lookups.append((m, idx_c, hit, s.values))
    for i, st in enumerate(all_steps.tolist()):
        yield st, {m: float(vals[idx[i]]) for m, idx, hit, vals in lookups if hit[i]}


class PointBuffer:
    """Growable (step, value) arrays for detectors that decide on the whole curve."""

    def __init__(self) -> None:
        self._s = np.empty(1024, dtype=np.int64)
        self._v = np.empty(1024, dtype=np.float64)
        self.n = 0

    def append(self, step: int, value: float) -> None:
        if self.n == self._s.size:
            self._s = np.resize(self._s, self.n * 2)
            self._v = np.resize(self._v, self.n * 2)
        self._s[self.n] = step
        self._v[self.n] = value
        self.n += 1

    def series(self, name: str) -> Series:
        return Series(name, self._s[: self.n].copy(), self._v[: self.n].copy())


def fmt_num(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{x:.3g}"
    return f"{x:.4g}"
