"""Renderers of a :class:`Report`: terminal text, JSON (the contract) and Markdown."""

from __future__ import annotations

from typing import Any, Callable

from .model import Report

_FACT_LABELS = {
    "train_loss_first": "first train loss", "train_loss_last": "last train loss", "train_loss_min": "min train loss",
    "val_loss_min": "min val loss", "val_loss_last": "last val loss", "init_loss_expected": "expected initial loss ln(V)",
    "n_params": "parameters", "tokens_per_step": "tokens per step", "tokens_seen": "tokens seen",
    "epochs_seen": "epochs over the dataset", "train_flops": "training compute (6ND FLOPs)",
    "chinchilla_tokens": "Chinchilla-optimal tokens (20/param)", "perplexity_last": "last perplexity exp(loss)",
    "log_interval": "steps between logged points",
    "model_flops_per_sec": "achieved model FLOP/s (6N x tokens/s)", "mfu": "MFU",
    "train_hours_estimate": "training time (median step x steps), h",
}


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e7 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def render_json(report: Report) -> str:
    return report.to_json()


def render_text(report: Report) -> str:
    d = report.to_dict()
    mark = {"healthy": "OK", "warning": "WARNING", "problem": "PROBLEM"}[d["verdict"]]
    lines = [f"lossdx  {d['source'].get('path')}  [{d['source'].get('format')}]",
             f"{mark}: {d['summary']}", ""]
    run = d["run"]
    if run.get("steps"):
        lines.append(f"steps {run['steps'][0]:,}..{run['steps'][1]:,}   metrics: {', '.join(run.get('metrics', []))}")
    if run.get("phases"):
        ph = "; ".join(f"{p['name'].replace('_', ' ')} {p['start_step']}-{p['end_step']}"
                       + (f" ({p['share']:.0%})" if "share" in p else "") for p in run["phases"])
        lines.append(f"phases: {ph}")
    facts = run.get("facts") or {}
    if facts:
        lines.append("facts:")
        for k, v in facts.items():
            if k.endswith("_step") and k[: -len("_step")] in facts:
                continue  # shown as "(step N)" beside its value
            label = _FACT_LABELS.get(k, k.replace("_", " "))
            at = f" (step {facts[k + '_step']:,})" if k + "_step" in facts else ""
            lines.append(f"  {label:<38} {_fmt(v)}{at}")
    problems = [f for f in d["findings"] if f["severity"] != "info"]
    infos = [f for f in d["findings"] if f["severity"] == "info" and f["kind"] != "phase"]
    if problems or infos:
        lines += ["", "findings:"]
        for f in problems + infos:
            sev = {"error": "ERROR", "warning": "warn ", "info": "info "}[f["severity"]]
            where = f"{f['start_step']}" if f["start_step"] == f["end_step"] else f"{f['start_step']}-{f['end_step']}"
            lines.append(f"  {sev} {f['kind']:<16} @{where:<12} {f['message']}")
    if d["diagnoses"]:
        lines += ["", "likely causes:"]
        for i, dg in enumerate(d["diagnoses"], 1):
            lines.append(f"  {i}. {dg['cause']}  (confidence {dg['confidence']:.2f})")
            for e in dg["evidence"]:
                lines.append(f"       because: {e}")
            for fx in dg["fixes"]:
                lines.append(f"       fix:     {fx}")
    notes = run.get("notes") or []
    if notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in notes]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    d = report.to_dict()
    out = [f"# lossdx report: `{d['source'].get('path')}`", "",
           f"**Verdict: {d['verdict']}** — {d['summary']}", "",
           f"Format: `{d['source'].get('format')}`"]
    run = d["run"]
    if run.get("steps"):
        out.append(f"Steps: {run['steps'][0]}–{run['steps'][1]}; metrics: {', '.join(f'`{m}`' for m in run.get('metrics', []))}")
    if run.get("phases"):
        out += ["", "## Phases", "", "| phase | steps | share |", "|---|---|---|"]
        out += [f"| {p['name']} | {p['start_step']}–{p['end_step']} | {p.get('share', 0):.0%} |" for p in run["phases"]]
    facts = run.get("facts") or {}
    if facts:
        out += ["", "## Facts", "", "| fact | value |", "|---|---|"]
        out += [f"| {_FACT_LABELS.get(k, k.replace('_', ' '))} | {_fmt(v)} |" for k, v in facts.items()]
    if d["findings"]:
        out += ["", "## Findings", "", "| severity | kind | metric | steps | message |", "|---|---|---|---|---|"]
        for f in d["findings"]:
            if f["kind"] == "phase":
                continue
            out.append(f"| {f['severity']} | {f['kind']} | `{f['metric']}` | {f['start_step']}–{f['end_step']} | "
                       f"{f['message'].replace('|', '/')} |")
    if d["diagnoses"]:
        out += ["", "## Likely causes", ""]
        for i, dg in enumerate(d["diagnoses"], 1):
            out.append(f"{i}. **{dg['cause']}** (confidence {dg['confidence']:.2f})")
            out += [f"   - evidence: {e}" for e in dg["evidence"]]
            out += [f"   - fix: {fx}" for fx in dg["fixes"]]
    if run.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in run["notes"]]
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[Report], str]] = {"text": render_text, "json": render_json, "md": render_markdown}


def render(report: Report, fmt: str) -> str:
    if fmt == "html":  # the curves are read again from the report's source (see lossdx.report.html)
        from .html import render_html
        return render_html(report)
    return RENDERERS[fmt](report)
