"""The diagnosis engine: rules (data + a small function) turn findings, co-signals and config into
ranked causes with calibrated confidence, an evidence chain, fixes and a config patch.

A rule never touches the engine: it is a :class:`Rule` in a tuple. Each rule's function looks at the
:class:`Evidence` and returns a :class:`Hit` (its own confidence, the evidence it used, what to do) or
None. Hits of one cause combine by noisy-OR (independent evidence raises confidence, never past 0.97);
causes rank by that confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..config.hparams import HPARAM_ALIASES
from ..context import RunProfile, profile_run
from ..findings import Finding
from ..model import Run, Series
from ..report import Diagnosis

CAUSES = (
    "lr_too_high", "lr_too_low", "missing_warmup", "lr_schedule_bug", "gradient_explosion", "bad_init",
    "fp16_precision", "bad_data_batch", "loss_nan_from_data", "nan_in_input", "label_misalignment",
    "overfitting_small_data", "capacity_too_small", "over_regularization", "data_order", "batchnorm_instability",
    "class_imbalance", "hardware_fault",
)
MAX_CONFIDENCE = 0.97


@dataclass
class Hit:
    """What one rule concluded."""

    confidence: float
    evidence: list[str]
    fixes: list[str] = field(default_factory=list)
    patch: dict[str, Any] = field(default_factory=dict)  # canonical hparam -> new value
    checks: list[str] = field(default_factory=list)  # what to log or check next when the log cannot decide
    #: False when only the config argues for the cause (no curve finding backs it): advice, never a verdict
    curve_backed: bool = True
    #: info findings (config advice) that this hit shows the curve backs: they become warnings
    promotes: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    """A rule: the cause it argues for, the phenomenon it explains (citing the seeds), and its test."""

    id: str
    cause: str
    explains: str
    applies: Callable[["Evidence"], Hit | None]

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise ValueError(f"rule {self.id}: unknown cause {self.cause!r}")


class Evidence:
    """Everything a rule may look at, with small helpers so rules stay short."""

    def __init__(self, run: Run, findings: Sequence[Finding], facts: dict[str, Any],
                 profile: RunProfile | None = None) -> None:
        self.run = run
        self.profile = profile or profile_run(run)
        self.findings = list(findings)
        self._by_kind: dict[str, list[Finding]] = {}  # the rules ask of() ~40 times per run: one pass here
        for f in self.findings:
            self._by_kind.setdefault(f.kind, []).append(f)
        self.facts = facts
        self.config = run.config
        self.raw_config: dict[str, Any] = run.meta.get("config_raw") or {}
        self.log_window = int(run.meta.get("log_window", 1) or 1)

    # findings -----------------------------------------------------------------------------
    def of(self, kind: str, *, serious: bool = True, metric: str | None = None) -> list[Finding]:
        return [f for f in self._by_kind.get(kind, ()) if (not serious or f.severity != "info")
                and (metric is None or f.metric == metric)]

    def has(self, kind: str, **kw: Any) -> bool:
        return bool(self.of(kind, **kw))

    def first(self, kind: str, **kw: Any) -> Finding | None:
        got = self.of(kind, **kw)
        return min(got, key=lambda f: f.start_step) if got else None

    def typed(self, kind: str, type_: str) -> list[Finding]:
        """Findings of one kind and type, info ones included (a co-signal a rule may show the curve backs)."""
        return [f for f in self.of(kind, serious=False) if f.evidence.get("type") == type_]

    # series -------------------------------------------------------------------------------
    def series(self, name: str) -> Series | None:
        return self.run.series.get(name)

    def window(self, name: str, a: float, b: float) -> np.ndarray:
        s = self.series(name)
        if s is None:
            return np.empty(0)
        sel = (s.steps >= a) & (s.steps <= b)
        return s.values[sel]

    def value_near(self, name: str, step: float, tol: float = 0) -> float | None:
        s = self.series(name)
        if s is None or not len(s):
            return None
        i = int(np.argmin(np.abs(s.steps - step)))
        if abs(int(s.steps[i]) - step) > tol:
            return None
        return float(s.values[i])

    def run_length(self) -> int:
        rng = self.run.step_range()
        return 0 if rng is None else rng[1] - rng[0]

    # config -------------------------------------------------------------------------------
    def cfg(self, key: str, default: Any = None) -> Any:
        v = self.config.get(key, default)
        return default if v is None else v

    def cfg_num(self, key: str) -> float | None:
        v = self.config.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    def raw_key(self, canonical: str) -> str | None:
        """The user's own name for a canonical hyperparameter, if their config has it."""
        by_norm = {str(k).lower().replace("-", "_"): k for k in self.raw_config}
        for name in HPARAM_ALIASES.get(canonical, (canonical,)):
            if name in by_norm:
                return str(by_norm[name])
        return None

    def raw_value(self, key: str) -> Any:
        for k, v in self.raw_config.items():
            if str(k).lower() == key.lower():
                return v
        return None

    @property
    def peak_lr(self) -> float | None:
        s = self.series("train/lr")
        if s is not None and len(s) and np.isfinite(s.values).any():
            return float(np.max(s.values[np.isfinite(s.values)]))  # an inf in the LR trace is no peak LR
        return self.cfg_num("lr")


def _noisy_or(confidences: Iterable[float]) -> float:
    p = 1.0
    for c in confidences:
        p *= 1.0 - max(0.0, min(1.0, c))
    return min(MAX_CONFIDENCE, 1.0 - p)


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e5:
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.3g}" if (abs(v) < 1e-3 or abs(v) >= 1e5) and v != 0 else f"{v:g}"
    return repr(v) if isinstance(v, str) else str(v)


def diagnose(run: Run, findings: Sequence[Finding], facts: dict[str, Any],
             rules: Sequence[Rule] | None = None, min_confidence: float = 0.05,
             profile: RunProfile | None = None) -> list[Diagnosis]:
    """Ranked causes for a run: every rule is tried, hits of one cause are merged."""
    from .rules import DEFAULT_RULES

    ev = Evidence(run, findings, facts, profile)
    by_cause: dict[str, list[tuple[Rule, Hit]]] = {}
    for rule in rules if rules is not None else DEFAULT_RULES:
        hit = rule.applies(ev)
        if hit is not None and hit.confidence > 0:
            by_cause.setdefault(rule.cause, []).append((rule, hit))
    _add_fallbacks(ev, by_cause)
    out: list[Diagnosis] = []
    backed: dict[str, bool] = {}
    for cause, hits in by_cause.items():
        hits.sort(key=lambda rh: -rh[1].confidence)
        conf = _noisy_or(h.confidence for _r, h in hits)
        backed[cause] = any(h.curve_backed for _r, h in hits)
        for _r, h in hits:
            if h.curve_backed:
                for f in h.promotes:
                    if f.severity == "info":
                        f.severity = "warning"
                        f.message += " — and the curve shows it"
        if not backed[cause]:
            # a config value the curve does not back is advice: low confidence, ranked after every curve cause
            conf = min(conf, ADVICE_CONFIDENCE)
        if conf < min_confidence:
            continue
        evidence = list(dict.fromkeys(e for _r, h in hits for e in h.evidence))
        fixes = list(dict.fromkeys(f for _r, h in hits for f in h.fixes))
        checks = list(dict.fromkeys(c for _r, h in hits for c in h.checks))
        patch: dict[str, Any] = {}
        for _r, h in hits:
            for key, new in h.patch.items():
                raw = ev.raw_key(key)
                if raw is None or raw in patch:
                    continue
                old = ev.raw_value(raw)
                patch[raw] = {"from": old, "to": new}
        for raw, change in patch.items():
            fixes.append(f"config: {raw}: {_fmt(change['from'])} -> {_fmt(change['to'])}")
        out.append(Diagnosis(cause=cause, confidence=round(conf, 3), evidence=evidence, fixes=fixes,
                             rule="+".join(r.id for r, _h in hits), config_patch=patch, checks=checks))
    out.sort(key=lambda d: (not backed[d.cause], -d.confidence, CAUSES.index(d.cause)))
    return out


#: finding kinds that are observations of the curves (config and log_limit findings are not)
CURVE_KINDS = ("nan", "divergence", "spike", "instability", "grad_norm", "plateau", "slow_convergence", "overfitting",
               "too_good", "init_loss", "lr_schedule", "data_order", "throughput")
ADVICE_CONFIDENCE = 0.3


def _add_fallbacks(ev: Evidence, by_cause: dict[str, list[tuple[Rule, Hit]]]) -> None:
    """A problem with no curve-backed cause still gets a ranked list: the usual causes of its symptoms."""
    from .rules.fallback import CHECKS, FALLBACKS, FIXES

    if any(h.curve_backed and h.confidence >= 0.3 for hits in by_cause.values() for _r, h in hits):
        return
    serious = [f for f in ev.findings if f.severity in ("warning", "error") and f.kind in CURVE_KINDS]
    seen: set[str] = set()
    for f in sorted(serious, key=lambda f: (f.severity != "error", f.start_step)):
        if f.kind in seen:
            continue
        seen.add(f.kind)
        for cause, conf, why in FALLBACKS.get(f.kind, ()):
            if cause in by_cause:
                continue
            scale = 1.0 if f.severity == "error" else 0.8
            hit = Hit(round(conf * scale, 3), [f"{f.message}", f"no rule pins the cause from this log; {why}"],
                      fixes=[FIXES[cause]] if cause in FIXES else [],
                      checks=[CHECKS[f.kind]] if f.kind in CHECKS else [])
            by_cause[cause] = [(Rule(f"FALLBACK_{f.kind.upper()}", cause, "handbook: usual causes of the symptom",
                                     lambda _ev: None), hit)]
