"""What detectors report: observations of the curves, each tied to a metric and a step range."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The finding kinds of the report contract (docs/report-contract.md); phases are info findings.
KINDS = (
    "nan", "spike", "divergence", "instability", "plateau", "slow_convergence", "overfitting", "init_loss",
    "too_good", "lr_schedule", "grad_norm", "data_order", "throughput", "config", "phase", "log_limit",
    # check-data (lossdx.datacheck): start_step/end_step hold rows or token offsets, evidence["unit"] says which
    "token_range", "label_alignment", "ignored_labels", "nonfinite_data", "feature_range", "repeated_ngram",
    "duplicates", "class_imbalance", "data_epochs",
)
SEVERITIES = ("info", "warning", "error")


@dataclass
class Finding:
    kind: str
    metric: str
    start_step: int
    end_step: int
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "metric": self.metric, "start_step": int(self.start_step),
            "end_step": int(self.end_step), "severity": self.severity, "message": self.message,
            "evidence": _jsonable(self.evidence),
        }


def _jsonable(x: Any) -> Any:
    """Plain JSON types; non-finite floats become strings so the JSON stays standard."""
    import math

    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return round(f, 6) if abs(f) < 1e15 else f
    return x
