"""Gradient-norm precursors: the norm climbing in the steps before a loss spike, NaN or divergence.

OLMo 2 and BLOOM saw grad-norm spikes precede loss spikes (BLOOM-176B: 0.24 -> 960 before loss
2.2 -> 5.1). A precursor tells the guard it can act before the loss breaks, and tells the diagnosis
the event started in the optimisation, not in one bad batch of the loss computation.
"""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from ..model import Series
from .base import fmt_num
from .divergence import DivergenceDetector
from .nonfinite import NonFiniteDetector
from .spike import SpikeDetector
from .wholerun import WholeRunDetector, clean


class PrecursorDetector(WholeRunDetector):
    name = "grad_precursor"
    requires = ("train/loss", "train/grad_norm")

    def __init__(self, *, lookback: int = 10, ratio: float = 5.0, baseline: int = 100) -> None:
        self.lookback = lookback
        self.ratio = ratio
        self.baseline = baseline

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        if "train/grad_norm" not in series or "train/loss" not in series or len(series["train/grad_norm"]) < 5:
            return []
        from ..model import Run

        run = Run(series=dict(series))
        events = [f for det in (SpikeDetector(), NonFiniteDetector(), DivergenceDetector())
                  for f in det.detect(run, self.context_) if f.severity != "info" and f.metric == "train/loss"]
        out = []
        fs, fv = clean(series["train/grad_norm"])
        interval = max(1, self.context_.log_interval)
        for ev in sorted(events, key=lambda f: f.start_step):
            t = ev.start_step
            look = (fs >= t - self.lookback * interval) & (fs < t)
            base = (fs >= t - (self.lookback + self.baseline) * interval) & (fs < t - self.lookback * interval)
            if look.sum() < 2 and not (look.sum() >= 1 and base.sum() >= 3):
                continue
            peak_i = int(np.argmax(np.where(look, fv, -np.inf)))
            # the level before the climb: the points before the look-back window, or (a short excerpt that
            # starts right before the event) the lowest point inside it
            level = float(np.median(fv[base])) if base.sum() >= 3 else float(np.min(fv[look]))
            peak = float(fv[peak_i])
            if level <= 0 or peak < self.ratio * level:
                continue
            lead = t - int(fs[peak_i])
            out.append(Finding("grad_norm", "train/grad_norm", int(fs[peak_i]), t, "warning",
                               f"gradient norm rose {peak / level:.0f}x ({fmt_num(level)} -> {fmt_num(peak)}) at step "
                               f"{int(fs[peak_i])}, {lead} step{'s' if lead != 1 else ''} before the {ev.kind} at step {t}",
                               {"type": "precursor", "ratio": peak / level, "lead_steps": lead, "event": ev.kind,
                                "event_step": t}))
        return out
