"""Hyperparameters far outside the ranges the seeds give: a risk the curves may not show yet.

Reported as ``config`` findings (a kind added to the contract for this phenomenon); the thresholds
are several times the seeds' ranges, so only clear outliers are flagged.
"""

from __future__ import annotations

import math

from ..findings import Finding
from ..model import Series
from .base import fmt_num
from .wholerun import WholeRunDetector

#: (config key, predicate, severity, message); messages cite the seeds' ranges
RULES = (
    ("weight_decay", lambda v, c: v > 0.5, "info",
     "weight_decay {v} is far above the usual 0.01-0.1: it pulls the weights toward zero faster than the data "
     "can move them (underfitting)"),
    ("dropout", lambda v, c: v >= 0.5, "info",
     "dropout {v} is very high (pre-training usually uses 0, fine-tuning 0.05-0.1)"),
    ("lr", lambda v, p: v >= 10 * p.lr_range[1], "info",
     "learning rate {v} is {hi}x the top of {norm}"),
    ("lr", lambda v, p: 0 < v <= p.lr_range[0] / 10, "info",
     "learning rate {v} is {lo}x below the bottom of {norm}: the model can barely move"),
    ("beta2", lambda v, c: v < 0.9, "info", "Adam beta2 {v} is unusually low (0.95-0.999 are typical)"),
)


class ConfigCheckDetector(WholeRunDetector):
    name = "config"
    requires = ()

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        cfg = self.context_.config
        prof = self.context_.profile
        out = []
        for key, bad, severity, msg in RULES:
            v = cfg.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                continue
            arg = prof if key == "lr" else cfg
            if bad(float(v), arg):
                text = msg.format(v=fmt_num(float(v)), norm=prof.lr_norm_text(),
                                  hi=f"{float(v) / prof.lr_range[1]:.0f}", lo=f"{prof.lr_range[0] / float(v):.0f}"
                                  if v else "")
                # a config value alone is advice: the curves decide whether it hurt (the rules weigh both)
                out.append(Finding("config", f"config/{key}", 0, 0, "info", text, {"key": key, "value": v}))
        return out
