"""Hyperparameters far outside the ranges the seeds give: a risk the curves may not show yet.

Reported as ``config`` findings (a kind added to the contract for this phenomenon); the thresholds
are several times the seeds' ranges, so only clear outliers are flagged.
"""

from __future__ import annotations

from ..findings import Finding
from ..model import Series
from .base import fmt_num
from .wholerun import WholeRunDetector

#: (config key, predicate, severity, message); messages cite the seeds' ranges
RULES = (
    ("weight_decay", lambda v, c: v > 0.5, "warning",
     "weight_decay {v} is far above the usual 0.01-0.1: it pulls the weights toward zero faster than the data "
     "can move them (underfitting)"),
    ("dropout", lambda v, c: v >= 0.5, "warning",
     "dropout {v} is very high (pre-training usually uses 0, fine-tuning 0.05-0.1)"),
    ("lr", lambda v, c: v >= 0.01 and str(c.get("optimizer", "adamw")).lower() not in ("sgd", "lion"), "warning",
     "learning rate {v} is very high for Adam-type optimizers (pre-training usually 1e-4..3e-4, small models up to "
     "~1e-3)"),
    ("lr", lambda v, c: 0 < v < 1e-6, "warning",
     "learning rate {v} is tiny (pre-training usually 1e-4..3e-4, fine-tuning 1e-5..5e-5): the model can barely move"),
    ("beta2", lambda v, c: v < 0.9, "info", "Adam beta2 {v} is unusually low (0.95-0.999 are typical)"),
)


class ConfigCheckDetector(WholeRunDetector):
    name = "config"
    requires = ()

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        cfg = self.context_.config
        out = []
        for key, bad, severity, msg in RULES:
            v = cfg.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and bad(float(v), cfg):
                out.append(Finding("config", f"config/{key}", 0, 0, severity, msg.format(v=fmt_num(float(v))),
                                   {"key": key, "value": v}))
        return out
