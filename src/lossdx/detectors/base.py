"""The detector protocol shared by offline analysis and the live guard."""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..model import Run


class Detector:
    """Base class. Subclasses consume one point at a time with :meth:`update`; :meth:`detect` runs a
    whole :class:`Run` through the same code (or a vectorised twin proven equal by a parity test).

    Conventions (sklearn's): keyword parameters with defaults stored as-is in ``__init__``, running
    state in attributes ending in ``_``, created by :meth:`reset`.
    """

    name = "detector"
    #: canonical metrics this detector reads; the first is the one ``update`` receives
    requires: tuple[str, ...] = ("train/loss",)

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, step: int, value: float) -> list[Finding]:
        raise NotImplementedError

    def finalize(self) -> list[Finding]:
        """Findings that can only be decided at the end of the data (open events, whole-run shape)."""
        return []

    def detect(self, run: Run) -> list[Finding]:
        self.reset()
        s = run.series.get(self.requires[0])
        if s is None:
            return []
        out: list[Finding] = []
        for step, value in zip(s.steps.tolist(), s.values.tolist()):
            out.extend(self.update(step, value))
        out.extend(self.finalize())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k.endswith("_")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
