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
    # SGD's L2 term and AdamW's decoupled decay both shrink every weight by lr x weight_decay per step: 1e-5..1e-4
    # in the usual recipes (SGD 0.1 x 5e-4, AdamW 3e-4..1e-3 x 0.1); 1 % per step halves an unused weight in ~70 steps
    ("weight_decay", lambda v, c: v <= 0.5 and _shrink(v, c) >= 0.01, "info",
     "weight_decay {v}: at lr {lr} it shrinks every weight by {shrink}% per step (lr x weight_decay; the usual "
     "recipes shrink by 0.001-0.01%), pulling the weights toward zero faster than the data can move them "
     "(underfitting)"),
    ("dropout", lambda v, c: v >= 0.5, "info",
     "dropout {v} is very high (pre-training usually uses 0, fine-tuning 0.05-0.1)"),
    ("lr", lambda v, p: v >= 10 * p.lr_range[1], "info",
     "learning rate {v} is {hi}x the top of {norm}"),
    ("lr", lambda v, p: 0 < v <= p.lr_range[0] / 10, "info",
     "learning rate {v} is {lo}x below the bottom of {norm}: the model can barely move"),
    ("beta2", lambda v, c: v < 0.9, "info", "Adam beta2 {v} is unusually low (0.95-0.999 are typical)"),
)


def _shrink(wd: float, cfg: dict) -> float:
    lr = cfg.get("lr")
    ok = isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0
    return float(lr) * wd if ok else 0.0


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
                text = msg.format(v=fmt_num(float(v)), norm=prof.lr_norm_text(), lr=fmt_num(float(cfg.get("lr") or 0)),
                                  shrink=f"{100 * _shrink(float(v), cfg):.3g}",
                                  hi=f"{float(v) / prof.lr_range[1]:.0f}", lo=f"{prof.lr_range[0] / float(v):.0f}"
                                  if v else "")
                # a config value alone is advice: the curves decide whether it hurt (the rules weigh both)
                out.append(Finding("config", f"config/{key}", 0, 0, "info", text, {"key": key, "value": v}))
        return out
