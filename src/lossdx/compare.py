"""Compare runs (an LR sweep, ablations): overlay them, rank them at equal tokens, say which won and why.

Runs are ranked by their loss level at a common horizon (the shortest run's end, in tokens seen when
every run's tokens per step is known, else in steps): the median of the points in the last 5 % before
the horizon, validation loss when every run has it. A run that diverged, went non-finite or never
reached half the longest run's length is flagged and cannot win while an unflagged run exists. Each
loser gets the reasons: its level against the winner's, its flags with their steps, the config keys
where it differs from the winner, and its own top diagnosis.

Example:
    >>> from lossdx.compare import compare_paths
    >>> result = compare_paths(["sweep/lr3e-4/train.log", "sweep/lr1e-3/train.log"])   # doctest: +SKIP
    >>> result.winner.label, result.summary                                         # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .model import Run
from .report import Report

SCHEMA_ID = "lossdx.compare/1"
_FLAG_KINDS = {"nan": "non-finite loss", "divergence": "diverged", "spike": "loss spikes"}


@dataclass
class RunResult:
    label: str
    run: Run
    report: Report
    value: float = math.nan  # loss level at the horizon
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    config_diff: dict[str, Any] = field(default_factory=dict)  # keys that differ from the winner: this run's values
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        from .findings import _jsonable

        top = self.report.diagnoses[0] if self.report.diagnoses else None
        return {"label": self.label, "path": self.report.source.get("path", ""), "rank": self.rank,
                "value": _jsonable(self.value), "flags": list(self.flags), "reasons": list(self.reasons),
                "config_diff": _jsonable(self.config_diff), "verdict": self.report.verdict,
                "top_cause": ({"cause": top.cause, "confidence": round(float(top.confidence), 3)} if top else None)}


@dataclass
class Comparison:
    axis: str  # "tokens" or "step"
    metric: str
    horizon: float
    runs: list[RunResult]  # ranked, best first
    summary: str
    varied: list[str] = field(default_factory=list)  # config keys that differ between the runs

    @property
    def winner(self) -> RunResult:
        return self.runs[0]

    def to_dict(self) -> dict[str, Any]:
        from .findings import _jsonable

        return {"schema": SCHEMA_ID, "axis": self.axis, "metric": self.metric, "horizon": _jsonable(self.horizon),
                "winner": self.winner.label, "summary": self.summary, "varied": list(self.varied),
                "runs": [r.to_dict() for r in self.runs]}


def _tokens_per_step(r: Report) -> float | None:
    v = (r.run.get("facts") or {}).get("tokens_per_step")
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def _level(steps: np.ndarray, values: np.ndarray, upto: float) -> float:
    """The loss level at ``upto``: median of the points in the last 5 % of the way there (>= 3 points)."""
    sel = steps <= upto
    s, v = steps[sel], values[sel]
    if not len(s):
        return math.nan
    if not np.isfinite(v[-1]):
        return math.nan  # non-finite at the horizon: no level
    window = v[s >= upto * 0.95] if upto > 0 else v[-1:]
    if len(window) < 3:
        window = v[-3:]
    window = window[np.isfinite(window)]
    return float(np.median(window)) if len(window) else math.nan


def labels_for(paths: Sequence[str], runs: Sequence[Run]) -> list[str]:
    """Short names: the file name, or its directory when the files share a name (sweep/lr3e-4/train.log)."""
    bases = [os.path.basename(p.rstrip(os.sep)) for p in paths]
    dirs = [os.path.basename(os.path.dirname(os.path.abspath(p.rstrip(os.sep)))) for p in paths]
    use_dir = len(set(os.path.dirname(os.path.abspath(p.rstrip(os.sep))) for p in paths)) > 1
    out = []
    for p, base, parent, run in zip(paths, bases, dirs, runs):
        label = f"{parent}/{base}" if use_dir and parent else base
        if run.meta.get("run_name") and len([q for q in paths if q == p]) > 1:
            label += f" [{run.meta['run_name']}]"
        out.append(label)
    seen: dict[str, int] = {}
    for i, label in enumerate(out):  # still equal: number them
        if label in seen:
            seen[label] += 1
            out[i] = f"{label} #{seen[label]}"
        else:
            seen[label] = 1
    return out


def unit(axis: str) -> str:
    return "tokens" if axis == "tokens" else "steps"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def compare(runs: Sequence[Run], labels: Sequence[str] | None = None, axis: str = "auto") -> Comparison:
    """Analyse each run and rank them at a common horizon."""
    from .analyze import analyze

    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    labels = list(labels) if labels else [r.name for r in runs]
    results = [RunResult(label, run, analyze(run)) for label, run in zip(labels, runs)]
    tps = [_tokens_per_step(r.report) for r in results]
    if axis == "auto":
        axis = "tokens" if all(t is not None for t in tps) else "step"
    if axis == "tokens" and not all(t is not None for t in tps):
        from .exceptions import InputError

        raise InputError("--axis tokens needs the tokens per step of every run (pass their configs)")
    scale = [t if axis == "tokens" else 1.0 for t in tps]
    metric = "val/loss" if all(_has_finite(r.run, "val/loss") for r in results) else "train/loss"

    ends = []
    for r, k in zip(results, scale):
        s = r.run.series.get(metric) or r.run.series.get("train/loss")
        ends.append(float(s.steps[-1]) * float(k or 1.0) if s is not None and len(s) else 0.0)
    longest = max(ends) if ends else 0.0
    full = [e for e in ends if e >= 0.5 * longest]
    horizon = min(full) if full else longest
    for r, k, end in zip(results, scale, ends):
        s = r.run.series.get(metric) or r.run.series.get("train/loss")
        if s is not None and len(s):
            r.value = _level(s.steps.astype(np.float64) * float(k or 1.0), s.values, horizon)
        if end < 0.5 * longest:
            r.flags.append(f"stopped early (at {_fmt(end)} {unit(axis)} of {_fmt(longest)})")
        for f in r.report.findings:
            if f.kind in _FLAG_KINDS and f.severity != "info":
                flag = f"{_FLAG_KINDS[f.kind]} at step {f.start_step}"
                if not any(x.startswith(_FLAG_KINDS[f.kind]) for x in r.flags):
                    r.flags.append(flag)
        if not math.isfinite(r.value) and not any("non-finite" in x for x in r.flags):
            r.flags.append("no finite loss at the horizon")

    def bad(r: RunResult) -> bool:
        return any(x.startswith(("diverged", "non-finite", "stopped", "no finite")) for x in r.flags)

    results.sort(key=lambda r: (bad(r), not math.isfinite(r.value), r.value if math.isfinite(r.value) else 0.0))
    for i, r in enumerate(results, 1):
        r.rank = i
    winner = results[0]
    varied = _varied_keys([r.run.config for r in results])
    for r in results[1:]:
        r.config_diff = {k: r.run.config.get(k) for k in varied if r.run.config.get(k) != winner.run.config.get(k)}
        r.reasons = _reasons(r, winner, metric, axis, horizon, varied)
    winner.reasons = _win_reasons(winner, results[1:], metric, axis, horizon)
    summary = _summary(winner, results[1:], varied, metric, axis, horizon)
    return Comparison(axis, metric, horizon, results, summary, varied)


def _has_finite(run: Run, metric: str) -> bool:
    s = run.series.get(metric)
    return s is not None and len(s) >= 2 and bool(np.isfinite(s.values).any())


def _varied_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    keys = sorted({k for c in configs for k in c})
    out = []
    for k in keys:
        vals = [repr(c.get(k)) for c in configs]
        if len(set(vals)) > 1:
            out.append(k)
    # the learning rate first: it is what sweeps vary most
    return sorted(out, key=lambda k: (0 if "learning_rate" in k or k in ("lr", "max_lr") else 1, k))


def _ratio_text(mine: Any, best: Any) -> str:
    if isinstance(mine, (int, float)) and isinstance(best, (int, float)) and best and mine and \
            not isinstance(mine, bool) and not isinstance(best, bool):
        q = float(mine) / float(best)
        if q >= 1.5:
            return f" ({q:.3g}x the winner's {_fmt(best)})"
        if q <= 1 / 1.5:
            return f" ({1 / q:.3g}x below the winner's {_fmt(best)})"
    return f" (winner: {_fmt(best)})"


def _reasons(r: RunResult, winner: RunResult, metric: str, axis: str, horizon: float, varied: list[str]) -> list[str]:
    out = []
    where = f"at {_fmt(horizon)} {unit(axis)}"
    if math.isfinite(r.value) and math.isfinite(winner.value):
        pct = (r.value - winner.value) / abs(winner.value) * 100 if winner.value else math.inf
        out.append(f"{metric} {_fmt(r.value)} vs {_fmt(winner.value)} {where} ({pct:+.0f}%)")
    out += r.flags
    for k in varied[:4]:
        if k in r.config_diff:
            out.append(f"{k} {_fmt(r.config_diff[k])}{_ratio_text(r.config_diff[k], winner.run.config.get(k))}")
    if r.report.diagnoses:
        d = r.report.diagnoses[0]
        out.append(f"its own diagnosis: {d.cause} ({d.confidence:.2f}): {d.evidence[0] if d.evidence else ''}".rstrip(": "))
    return out


def _win_reasons(w: RunResult, others: list[RunResult], metric: str, axis: str, horizon: float) -> list[str]:
    out = [f"lowest {metric} at {_fmt(horizon)} {unit(axis)}: {_fmt(w.value)}"]
    if w.flags:
        out += [f"but: {x}" for x in w.flags]
    if w.report.verdict == "healthy":
        out.append("its own analysis finds it healthy")
    return out


def _summary(w: RunResult, others: list[RunResult], varied: list[str], metric: str, axis: str,
             horizon: float) -> str:
    parts = [f"{w.label} wins: lowest {metric} ({_fmt(w.value)}) at {_fmt(horizon)} {unit(axis)}"]
    key = varied[0] if varied else None
    if key is not None:
        parts[0] += f" with {key} = {_fmt(w.run.config.get(key))}"
    for r in others:
        why = [x for x in r.flags if not x.startswith("loss spikes")] or r.flags
        cause = r.report.diagnoses[0].cause if r.report.diagnoses else None
        bit = f"{r.label}"
        if key is not None and key in r.config_diff:
            bit += f" ({key} = {_fmt(r.config_diff[key])})"
        detail = []
        if math.isfinite(r.value) and math.isfinite(w.value):
            detail.append(f"{_fmt(r.value)}")
        detail += why[:2]
        if cause:
            detail.append(cause.replace("_", " "))
        parts.append(bit + ": " + ", ".join(detail))
    return "; ".join(parts)


def compare_paths(paths: Sequence[str], axis: str = "auto", auto_config: bool = True) -> Comparison:
    """Read every run of every path (each may be a file or a run directory) and compare them."""
    from .analyze import attach_config
    from .readers import read_runs

    runs: list[Run] = []
    owners: list[str] = []
    for p in paths:
        for run in read_runs(p):
            used = attach_config(run, None, auto=auto_config)
            if used:
                run.meta["config_path"] = used
            runs.append(run)
            owners.append(p)
    if len(runs) < 2:
        from .exceptions import InputError

        raise InputError("compare needs at least two runs (give two or more logs)")
    return compare(runs, labels_for(owners, runs), axis=axis)


__all__ = ["Comparison", "RunResult", "compare", "compare_paths"]
