"""Renderers of a :class:`Report`: terminal text, JSON (the contract), Markdown, GitHub annotations and SARIF.

Every string that comes from the input (paths, run names, metric names, config values, messages quoting
them) is neutralised before it is printed: control characters are shown as ``\\xNN`` in text (an ESC or OSC
sequence in a file name must not drive the terminal), Markdown special characters are escaped, GitHub
workflow commands are percent-encoded. The terminal renderer uses ``rich`` for colour and for wrapping by
display cells (wide characters count twice), imported only when text is rendered.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable
from urllib.parse import quote

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

#: how a group of findings of one kind is named in a grouped line ("25 gradient-norm explosions")
_GROUP_NOUNS = {"spike": "loss spikes", "grad_norm": "gradient-norm explosions", "nan": "non-finite values",
                "divergence": "divergences", "instability": "instabilities", "plateau": "plateaus",
                "lr_schedule": "LR-schedule findings", "throughput": "throughput drops", "config": "config findings",
                "data_order": "data-order shifts", "log_limit": "log limits"}
#: kinds whose findings are repeated events of one thing (grouped when many); others say different things
_EVENT_KINDS = frozenset({"spike", "grad_norm", "nan", "divergence", "instability", "throughput", "data_order",
                          "plateau"})
#: a kind with more findings than this is shown as one grouped line unless ``show_all``
GROUP_ABOVE = 3
_MARKS = {"healthy": "OK", "warning": "WARNING", "problem": "PROBLEM"}
_SEV_LABEL = {"error": "ERROR", "warning": "warn", "info": "info"}
_STYLES = {"healthy": "bold green", "warning": "bold yellow", "problem": "bold red", "error": "bold red",
           "info": "dim", "cause": "bold cyan", "fix": "green", "heading": "bold", "check": "magenta"}

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that reorder what is shown
# C0/C1 controls, bidi overrides, and the Unicode line/paragraph separators (U+2028/2029: str.splitlines and many
# terminals break lines there, so a metric name could start a line of its own)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean_text(s: str, single_line: bool = False) -> str:
    """``s`` with every control character that could drive a terminal shown as ``\\xNN`` / ``\\uNNNN``."""
    pattern = _CONTROL_LINE if single_line else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else
                       f"\\u{ord(m.group()):04x}", s)


def _cleaned(x: Any) -> Any:
    """A report dict with :func:`clean_text` applied to every string in it (keys included)."""
    if isinstance(x, str):
        return clean_text(x)
    if isinstance(x, dict):
        return {clean_text(str(k)): _cleaned(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_cleaned(v) for v in x]
    return x


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


def _where(f: dict[str, Any]) -> str:
    return f"{f['start_step']}" if f["start_step"] == f["end_step"] else f"{f['start_step']}-{f['end_step']}"


_SEV_RANK = {"info": 0, "warning": 1, "error": 2}


def group_findings(findings: list[dict[str, Any]], show_all: bool = False) -> list[dict[str, Any]]:
    """Findings to show, in order: a kind on one metric with more than :data:`GROUP_ABOVE` findings becomes one
    entry ``{"group": [...], ...}`` at the place of its worst member (unless ``show_all``); phases are left out."""
    shown = [f for f in findings if f["kind"] != "phase"]
    if show_all:
        return shown
    members: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in shown:
        members.setdefault((f["kind"], f["metric"]), []).append(f)
    out: list[dict[str, Any]] = []
    done: set[tuple[str, str]] = set()
    for f in shown:
        key = (f["kind"], f["metric"])
        group = members[key]
        if len(group) <= GROUP_ABOVE or f["kind"] not in _EVENT_KINDS:
            out.append(f)
        elif key not in done:
            done.add(key)
            out.append(_group_entry(group))
    return out


def _group_entry(group: list[dict[str, Any]]) -> dict[str, Any]:
    worst = max(group, key=lambda f: _SEV_RANK[f["severity"]])
    kind, metric = worst["kind"], worst["metric"]
    n = len(group)
    counts = {s: sum(1 for f in group if f["severity"] == s) for s in ("error", "warning", "info")}
    mix = ", ".join(f"{c} {'warnings' if s == 'warning' and c > 1 else s if c == 1 else s + 's'}"
                    if s != "info" else f"{c} info" for s, c in counts.items() if c)
    noun = _GROUP_NOUNS.get(kind, f"{kind} findings")
    msg = f"{n} {noun} on {metric}" + (f" ({mix})" if sum(1 for c in counts.values() if c) > 1 else "")
    ratios = [(f["evidence"].get("ratio"), f) for f in group if isinstance(f["evidence"].get("ratio"), (int, float))]
    if ratios:
        r, big = max(ratios, key=lambda t: t[0])
        at = big["evidence"].get("peak_step", big["start_step"])
        msg += f", largest x{r:.3g} at step {at}"
    msg += " — --all lists them"
    return {"kind": kind, "metric": metric, "severity": worst["severity"], "message": msg,
            "start_step": min(f["start_step"] for f in group), "end_step": max(f["end_step"] for f in group),
            "evidence": {}, "group": group}


def _unique_fixes(diagnoses: list[dict[str, Any]], key: str = "fixes") -> list[list[str]]:
    """Per diagnosis, its fixes (or checks) not already printed for a higher-ranked one (none printed twice)."""
    seen: set[str] = set()
    out = []
    for dg in diagnoses:
        mine = []
        for fx in dg.get(key, []):
            if fx not in seen:
                seen.add(fx)
                mine.append(fx)
        out.append(mine)
    return out


def finding_counts(findings: list[dict[str, Any]]) -> str:
    """"1 error, 2 warnings; 4 info": counts of every finding (grouped or not), matching the summary's count."""
    n = {s: sum(1 for f in findings if f["severity"] == s and f["kind"] != "phase") for s in ("error", "warning", "info")}
    serious = ", ".join(f"{c} {s}{'s' if c != 1 else ''}" for s, c in n.items() if c and s != "info")
    return "; ".join(p for p in (serious or "no problems", f"{n['info']} info" if n["info"] else "") if p)


# --- text ------------------------------------------------------------------------------------------------

def render_text(report: Report, *, width: int | None = None, color: bool = False, verbosity: int = 0,
                show_all: bool = False) -> str:
    """The terminal report. ``width``: wrap to this many columns (None: no wrapping, for files and pipes);
    ``color``: ANSI colours by severity; ``verbosity``: -1 the verdict line only, 0 normal, 1 also evidence,
    checks, settings and config; ``show_all``: list every finding instead of grouping a kind's many."""
    import io

    from rich.console import Console
    from rich.text import Text

    d = _cleaned(report.to_dict())
    wrap_at = width if width and width > 0 else 1 << 16
    console = Console(file=io.StringIO(), width=wrap_at, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, markup=False, emoji=False,
                      legacy_windows=False, force_jupyter=False, force_interactive=False, _environ={})
    lines: list[Text] = []

    def para(prefix: str, body: str | Text, prefix_style: str = "", indent: int | None = None) -> None:
        """``prefix`` then ``body``, wrapped with continuation lines indented by ``indent`` columns (default:
        under the body, a hanging indent; at most half the width)."""
        head = Text.assemble((prefix, prefix_style))
        text = body if isinstance(body, Text) else Text(body)
        hang = head.cell_len if indent is None else indent
        if hang > wrap_at // 2:
            hang = 4
        if head.cell_len + 10 > wrap_at:  # a prefix wider than the line: on lines of its own, the body below
            lines.extend(_stripped(ln) for ln in head.wrap(console, wrap_at, overflow="fold"))
            head, hang = Text(" " * min(hang, 4)), min(hang, 4)
        first, *rest = text.wrap(console, max(10, wrap_at - head.cell_len), overflow="fold") or [Text("")]
        lines.append(Text.assemble(head, first))
        if rest and hang != head.cell_len:  # the first line had a different width: wrap the remainder anew
            remainder = text[len(first.plain):]
            remainder = remainder[len(remainder.plain) - len(remainder.plain.lstrip(" \n")):]
            rest = list(remainder.wrap(console, max(10, wrap_at - hang), overflow="fold"))
        for ln in rest:
            lines.append(Text.assemble(" " * hang, ln))

    def blank() -> None:
        lines.append(Text(""))

    verdict = d["verdict"]
    verdict_line = Text.assemble((f"{_MARKS[verdict]}:", _STYLES[verdict]), " ", d["summary"])
    if verbosity < 0:
        para("", verdict_line, indent=len(_MARKS[verdict]) + 2)
        return _export(console, lines)
    src = d["source"]
    head = f"lossdx  {clean_text(str(src.get('path')), True)}  [{src.get('format')}]"
    if src.get("run_name"):
        head += f"  run {clean_text(str(src['run_name']), True)}"
    para("", Text(head, style=_STYLES["heading"]), indent=4)
    para("", verdict_line, indent=len(_MARKS[verdict]) + 2)
    blank()
    run = d["run"]
    if run.get("steps"):
        para("", f"steps {run['steps'][0]:,}..{run['steps'][1]:,}   metrics: {', '.join(run.get('metrics', []))}",
             indent=4)
    if run.get("phases"):
        ph = "; ".join(f"{p['name'].replace('_', ' ')} {p['start_step']}-{p['end_step']}"
                       + (f" ({p['share']:.0%})" if "share" in p else "") for p in run["phases"])
        para("phases: ", ph)
    facts = run.get("facts") or {}
    if facts:
        lines.append(Text("facts:", style=_STYLES["heading"]))
        for k, v in facts.items():
            if k.endswith("_step") and k[: -len("_step")] in facts:
                continue  # shown as "(step N)" beside its value
            label = _FACT_LABELS.get(k, k.replace("_", " "))
            at = f" (step {facts[k + '_step']:,})" if k + "_step" in facts else ""
            para(f"  {label:<38} ", f"{_fmt(v)}{at}")
    shown = group_findings(d["findings"], show_all=show_all)
    if shown:
        blank()
        lines.append(Text(f"findings ({finding_counts(d['findings'])}):", style=_STYLES["heading"]))
        for f in shown:
            sev = f["severity"]
            style = _STYLES.get(sev, "yellow")
            prefix = f"{f['kind']:<16} @{_where(f):<12} "
            para("", Text.assemble("  ", (f"{_SEV_LABEL[sev]:<5}", style), " ", prefix, f["message"]),
                 indent=8 + len(prefix))
            if verbosity > 0 and f.get("evidence"):
                ev = ", ".join(f"{k}={_fmt(v)}" for k, v in f["evidence"].items() if not isinstance(v, (dict, list)))
                if ev:
                    para("          evidence: ", Text(ev, style="dim"))
    if d["diagnoses"]:
        blank()
        lines.append(Text("likely causes:", style=_STYLES["heading"]))
        fixes = _unique_fixes(d["diagnoses"])
        checks = _unique_fixes(d["diagnoses"], "checks")
        for i, (dg, mine, my_checks) in enumerate(zip(d["diagnoses"], fixes, checks), 1):
            lines.append(Text.assemble(f"  {i}. ", (dg["cause"], _STYLES["cause"]),
                                       f"  (confidence {dg['confidence']:.2f})"))
            for e in dg["evidence"]:
                para("       because: ", e)
            for fx in mine:
                para("       ", Text.assemble(("fix:", _STYLES["fix"]), "     ", fx), indent=16)
            if dg["fixes"] and not mine:
                para("       ", Text.assemble(("fix:", _STYLES["fix"]), "     the fixes listed above"), indent=16)
            for ck in my_checks:
                para("       ", Text.assemble(("check:", _STYLES["check"]), "   ", ck), indent=16)
    if run.get("forecast"):  # lossdx.forecast: only present where the power law fits
        fc = run["forecast"]
        blank()
        para("forecast: ", f"loss {fc['expected_loss']:.4f} at step {fc['target_step']:,} "
                           f"({fc.get('level', 0.9):.0%} interval {fc['interval'][0]:.4f}..{fc['interval'][1]:.4f}); "
                           f"irreducible level E = {fc['E']:.4f}", prefix_style=_STYLES["heading"])
        if fc.get("advice"):
            para("  ", fc["advice"])
    notes = run.get("notes") or []
    if notes:
        blank()
        lines.append(Text("notes:", style=_STYLES["heading"]))
        for n in notes:
            para("  - ", n)
    if verbosity > 0:
        if d.get("settings"):
            blank()
            lines.append(Text("settings:", style=_STYLES["heading"]))
            for k, v in d["settings"].items():
                para(f"  {k:<24} ", ", ".join(map(str, v)) if isinstance(v, list) else _fmt(v))
        if run.get("config"):
            blank()
            lines.append(Text("config read:", style=_STYLES["heading"]))
            for k, v in run["config"].items():
                para(f"  {k:<24} ", json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else _fmt(v))
        blank()
        para("", Text(f"lossdx {d['lossdx_version']}, analysed {d['analyzed_at']}", style="dim"))
    return _export(console, lines)


def _stripped(line: Any) -> Any:
    out = line.copy()
    out.rstrip()
    return out


def _export(console: Any, lines: list[Any]) -> str:
    for ln in lines:
        ln.rstrip()
        console.print(ln, soft_wrap=True)  # already wrapped: print each line as it is
    return str(console.file.getvalue())


# --- JSON ------------------------------------------------------------------------------------------------

def render_json(report: Report) -> str:
    return report.to_json()


# --- Markdown --------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~$])")


def md_escape(s: Any) -> str:
    """Inline Markdown text that shows ``s`` literally: no code spans, links, HTML, emphasis or table breaks."""
    t = clean_text(str(s), single_line=True)
    t = t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", t)


def render_markdown(report: Report, *, show_all: bool = False) -> str:
    d = report.to_dict()
    e = md_escape
    out = [f"# lossdx report: {e(d['source'].get('path'))}", "",
           f"**Verdict: {d['verdict']}** — {e(d['summary'])}", "",
           f"Format: {e(d['source'].get('format'))}"]
    if d["source"].get("run_name"):
        out[-1] += f"; run: {e(d['source']['run_name'])}"
    run = d["run"]
    if run.get("steps"):
        out.append(f"Steps: {run['steps'][0]}–{run['steps'][1]}; metrics: "
                   f"{', '.join(e(m) for m in run.get('metrics', []))}")
    if run.get("phases"):
        out += ["", "## Phases", "", "| phase | steps | share |", "|---|---|---|"]
        out += [f"| {e(p['name'])} | {p['start_step']}–{p['end_step']} | {p.get('share', 0):.0%} |"
                for p in run["phases"]]
    facts = run.get("facts") or {}
    if facts:
        out += ["", "## Facts", "", "| fact | value |", "|---|---|"]
        out += [f"| {e(_FACT_LABELS.get(k, k.replace('_', ' ')))} | {e(_fmt(v))} |" for k, v in facts.items()]
    shown = group_findings(d["findings"], show_all=show_all)
    if shown:
        out += ["", f"## Findings ({e(finding_counts(d['findings']))})", "",
                "| severity | kind | metric | steps | message |", "|---|---|---|---|---|"]
        for f in shown:
            out.append(f"| {f['severity']} | {e(f['kind'])} | {e(f['metric'])} | {f['start_step']}–{f['end_step']} "
                       f"| {e(f['message'])} |")
    if d["diagnoses"]:
        out += ["", "## Likely causes", ""]
        checks = _unique_fixes(d["diagnoses"], "checks")
        for i, (dg, mine, my_checks) in enumerate(zip(d["diagnoses"], _unique_fixes(d["diagnoses"]), checks), 1):
            out.append(f"{i}. **{e(dg['cause'])}** (confidence {dg['confidence']:.2f})")
            out += [f"   - evidence: {e(x)}" for x in dg["evidence"]]
            out += [f"   - fix: {e(fx)}" for fx in mine]
            if dg["fixes"] and not mine:
                out.append("   - fix: the fixes listed above")
            out += [f"   - check: {e(c)}" for c in my_checks]
    if run.get("forecast"):
        fc = run["forecast"]
        out += ["", "## Forecast", "", e(f"Loss {fc['expected_loss']:.4f} at step {fc['target_step']} "
                                          f"({fc.get('level', 0.9):.0%} interval {fc['interval'][0]:.4f}–"
                                          f"{fc['interval'][1]:.4f}); irreducible level E = {fc['E']:.4f}. "
                                          f"{fc.get('advice', '')}")]
    if run.get("notes"):
        out += ["", "## Notes", ""] + [f"- {e(n)}" for n in run["notes"]]
    out += ["", f"*lossdx {e(d['lossdx_version'])}, analysed {e(d['analyzed_at'])}*"]
    return "\n".join(out) + "\n"


# --- GitHub workflow annotations -------------------------------------------------------------------------

def _gh_data(s: str) -> str:
    # https://docs.github.com/actions/reference/workflow-commands-for-github-actions: data is %-encoded
    return clean_text(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s: str) -> str:
    return _gh_data(s).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report, *, show_all: bool = False, lines: dict[int, int] | None = None) -> str:
    """One workflow command per finding shown (``::error``/``::warning``/``::notice file=...::message``), the
    likely causes as notices, then the verdict; a GitHub Actions log turns them into annotations. ``lines`` maps
    a step to its line in the input (``line=`` of an annotation) where known."""
    d = report.to_dict()
    path = _gh_prop(str(d["source"].get("path", "")))
    level = {"error": "error", "warning": "warning", "info": "notice"}
    out = []
    for f in group_findings(d["findings"], show_all=show_all):
        if f["kind"] == "log_limit":
            continue
        title = _gh_prop(f"lossdx {f['kind']} @ step {_where(f)}")
        at = (lines or {}).get(f["start_step"])
        line = f",line={at}" if at else ""
        out.append(f"::{level[f['severity']]} file={path}{line},title={title}::{_gh_data(f['metric'] + ': ' + f['message'])}")
    for i, (dg, mine) in enumerate(zip(d["diagnoses"], _unique_fixes(d["diagnoses"])), 1):
        body = f"{dg['cause']} (confidence {dg['confidence']:.2f})"
        if dg["evidence"]:
            body += f": {dg['evidence'][0]}"
        if mine:
            body += "\nfix: " + "\nfix: ".join(mine)
        out.append(f"::notice file={path},title={_gh_prop(f'lossdx likely cause {i}')}::{_gh_data(body)}")
    verdict_level = {"healthy": "notice", "warning": "warning", "problem": "error"}[d["verdict"]]
    out.append(f"::{verdict_level} file={path},title=lossdx verdict%3A {d['verdict']}::{_gh_data(d['summary'])}")
    return "\n".join(out) + "\n"


# --- SARIF 2.1.0 -----------------------------------------------------------------------------------------

_KIND_HELP = {
    "nan": "A metric became NaN or infinite.", "spike": "The loss jumped above its local level.",
    "divergence": "The loss rose well above its best level and stayed there.",
    "instability": "Gradient norm or loss noise grew over training.", "plateau": "The loss stopped improving.",
    "slow_convergence": "The loss fell far slower than a healthy run.",
    "overfitting": "The validation loss rose while the training loss fell.",
    "init_loss": "The initial loss is far from ln(vocabulary size).",
    "too_good": "The loss is implausibly low (leakage or masked targets).",
    "lr_schedule": "The learning-rate schedule looks wrong (no warmup, restarts, decay horizon).",
    "grad_norm": "The gradient norm exploded or clipping saturated.",
    "data_order": "Level shifts of the loss suggest unshuffled data.",
    "throughput": "Step time or tokens per second regressed.", "config": "A hyperparameter is far outside its usual range.",
    "log_limit": "What the log cannot show.", "phase": "A phase of training.",
}


def _artifact_uri(path: str) -> str:
    import os
    from pathlib import Path

    if os.path.isabs(path):
        return Path(path).as_uri()
    return quote(path.replace(os.sep, "/"))


def render_sarif(report: Report, *, lines: dict[int, int] | None = None) -> str:
    """The findings as a SARIF 2.1.0 log (GitHub code scanning, IDEs); causes and verdict in property bags.
    ``lines`` maps a step to its line in the input (the result's region) where known."""
    from .._version import version

    d = _cleaned(report.to_dict())  # SARIF viewers print these strings: no control characters from the input
    shown = [f for f in d["findings"] if f["kind"] != "phase"]
    kinds = list(dict.fromkeys(f["kind"] for f in shown))
    rules = [{"id": k, "name": k, "shortDescription": {"text": _KIND_HELP.get(k, k)}} for k in kinds]
    level = {"error": "error", "warning": "warning", "info": "note"}
    uri = _artifact_uri(str(d["source"].get("path", "")))
    results = []
    for f in shown:
        location: dict[str, Any] = {"artifactLocation": {"uri": uri}}
        if (lines or {}).get(f["start_step"]):
            location["region"] = {"startLine": (lines or {})[f["start_step"]]}
        results.append({
            "ruleId": f["kind"], "ruleIndex": kinds.index(f["kind"]), "level": level[f["severity"]],
            "message": {"text": f"{f['metric']}: {f['message']}"},
            "locations": [{"physicalLocation": location,
                           "logicalLocations": [{"name": f["metric"], "kind": "variable"}]}],
            "properties": {"metric": f["metric"], "start_step": f["start_step"], "end_step": f["end_step"],
                           "evidence": f["evidence"]},
        })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "lossdx", "version": version(), "rules": rules}},
            "invocations": [{"executionSuccessful": True, "endTimeUtc": _sarif_time(d["analyzed_at"])}],
            "artifacts": [{"location": {"uri": uri}, "properties": {"format": d["source"].get("format", "")}}],
            "results": results,
            "properties": {"verdict": d["verdict"], "summary": d["summary"], "diagnoses": d["diagnoses"],
                           "settings": d.get("settings", {})},
        }],
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _sarif_time(iso: str) -> str:
    """SARIF wants UTC with a ``Z``: ``2026-11-23T12:00:00Z``."""
    return iso.replace("+00:00", "Z")


RENDERERS: dict[str, Callable[..., str]] = {"text": render_text, "json": render_json, "md": render_markdown,
                                                 "github": render_github, "sarif": render_sarif}


def render(report: Report, fmt: str, **options: Any) -> str:
    """``report`` in format ``fmt`` (a key of :data:`RENDERERS`). ``options``: ``show_all`` for text, md and
    github; ``width``, ``color`` and ``verbosity`` for text (see :func:`render_text`); ``lines`` (step -> line
    of the input) for github and sarif."""
    if fmt == "html":  # the curves are read again from the report's source (see lossdx.report.html)
        from .html import render_html
        return render_html(report)
    if fmt == "text":
        return render_text(report, **options)
    if fmt == "md":
        return render_markdown(report, show_all=bool(options.get("show_all")))
    if fmt == "github":
        return render_github(report, show_all=bool(options.get("show_all")), lines=options.get("lines"))
    if fmt == "sarif":
        return render_sarif(report, lines=options.get("lines"))
    return RENDERERS[fmt](report)
