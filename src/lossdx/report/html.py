"""The HTML report: one self-contained file (inline CSS, inline SVG/JS plots, no network at view time).

The curves are drawn by a small SVG renderer shipped with the package (``plot.js``, ~13 KB): plotly's
inline bundle is ~3.5 MB per file and uPlot would still need vendoring; a few hundred lines of our own
do the zoom, log-scale, shaded phases and clickable findings the report needs (README, "HTML report").

Long runs are downsampled per series to ``MAX_BUCKETS`` buckets keeping the first, last, minimum and
maximum of each, plus every step a finding points at and one point per run of non-finite values, so a
one-step spike or a single NaN in a 1M-step run is still drawn (plain decimation would hide exactly the
events the report is about).

Every string from the input (paths, run names, metric names, config keys and values, messages) is
escaped: ``html.escape`` in the markup, ``\\u003c``-escaped JSON for the data the script reads, and the
script sets text with ``textContent`` only.

Example:
    >>> from lossdx.report.html import analyze_for_plot, render_html
    >>> report, run = analyze_for_plot("train.log")          # doctest: +SKIP
    >>> open("report.html", "w").write(render_html(report, run))   # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from typing import Any, Sequence

import numpy as np

from ..model import Run
from .model import Report

#: buckets per series; each keeps up to 4 points (first, last, min, max), so <= ~6,000 points drawn
MAX_BUCKETS = 1500

#: (panel title, metrics drawn in it, height in px, log y at start)
PANELS = (
    ("loss", ("train/loss", "val/loss"), 300, False),
    ("learning rate", ("train/lr",), 130, False),
    ("gradient norm", ("train/grad_norm",), 130, False),
    ("loss scale", ("train/loss_scale",), 110, True),
)


def downsample(steps: np.ndarray, values: np.ndarray, pinned: Sequence[int] = (),
               buckets: int = MAX_BUCKETS) -> np.ndarray:
    """Indices to draw: per bucket the first, last, min and max finite point and the first non-finite one;
    plus the indices of the ``pinned`` steps (where findings are)."""
    n = len(steps)
    if n <= 4 * buckets:
        return np.arange(n)
    size = -(-n // buckets)
    nb = -(-n // size)
    pad = nb * size - n
    finite = np.isfinite(values)
    lo = np.where(finite, values, np.inf)
    hi = np.where(finite, values, -np.inf)
    if pad:
        lo = np.concatenate([lo, np.full(pad, np.inf)])
        hi = np.concatenate([hi, np.full(pad, -np.inf)])
    base = np.arange(nb) * size
    keep = [base, np.minimum(base + size - 1, n - 1),
            base + lo.reshape(nb, size).argmin(axis=1), base + hi.reshape(nb, size).argmax(axis=1)]
    bad = ~finite
    if bad.any():
        # one point per stretch of non-finite values breaks the line there and marks it
        starts = np.flatnonzero(bad & ~np.concatenate([[False], bad[:-1]]))
        keep.append(starts)
        keep.append(np.flatnonzero(bad & ~np.concatenate([bad[1:], [False]])))
    if len(pinned):
        p = np.searchsorted(steps, np.asarray(sorted(set(int(s) for s in pinned)), dtype=np.int64))
        p = p[p < n]
        keep += [p, np.maximum(p - 1, 0), np.minimum(p + 1, n - 1)]
    idx = np.unique(np.concatenate(keep))
    return idx[(idx >= 0) & (idx < n)]


def _nonfinite_ranges(steps: np.ndarray, values: np.ndarray, limit: int = 200) -> list[list[Any]]:
    """[[first step, last step, 'NaN'|'Inf'], ...] for each stretch of non-finite values (at most ``limit``)."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return []
    starts = np.flatnonzero(bad & ~np.concatenate([[False], bad[:-1]]))
    ends = np.flatnonzero(bad & ~np.concatenate([bad[1:], [False]]))
    out = []
    for a, b in zip(starts[:limit].tolist(), ends[:limit].tolist()):
        kind = "NaN" if math.isnan(values[a]) else "Inf"
        out.append([int(steps[a]), int(steps[b]), kind])
    return out


def _num_list(a: np.ndarray) -> list[Any]:
    # 6 significant digits keep a 1M-step report small; non-finite values become null (a gap)
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in a.tolist()]


def series_spec(run: Run, metric: str, label: str | None = None, pinned: Sequence[int] = (),
                dash: bool = False, x_scale: float | None = None) -> dict[str, Any] | None:
    s = run.series.get(metric)
    if s is None or not len(s):
        return None
    idx = downsample(s.steps, s.values, pinned)
    x = s.steps[idx].astype(np.float64)
    if x_scale:
        x = x * x_scale
    return {"name": label or metric, "x": _num_list(x), "y": _num_list(s.values[idx]), "dash": dash,
            "nonfinite": _nonfinite_ranges(s.steps, s.values), "points": int(len(s))}


def plot_data(report: Report, run: Run) -> dict[str, Any]:
    """The JSON the page's script draws: panels of series on one step axis, phases and findings."""
    findings = [f for f in report.findings if f.kind != "phase"]
    pinned = sorted({int(f.start_step) for f in findings} | {int(f.end_step) for f in findings})
    phases = [{"name": str(p.get("name", "")).replace("_", " "), "start": p.get("start_step"), "end": p.get("end_step")}
              for p in report.run.get("phases", []) if isinstance(p, dict)]
    panels = []
    placed: set[str] = set()
    for title, metrics, height, log in PANELS:
        series = [sp for m in metrics
                  if (sp := series_spec(run, m, pinned=pinned, dash=m.startswith("val/"))) is not None]
        if not series:
            continue
        placed.update(metrics)
        mine = [f for f in findings if f.metric in metrics]
        if title == "loss":  # findings on metrics without a panel are shown on the loss
            mine += [f for f in findings if f.metric not in {m for _t, ms, _h, _l in PANELS for m in ms}
                     or f.metric not in run.series]
        panels.append({"title": title, "height": height, "log": log, "series": series,
                       "phases": phases if title == "loss" else [],
                       "findings": [{"kind": f.kind, "severity": f.severity, "start": int(f.start_step),
                                     "end": int(f.end_step), "message": f.message, "metric": f.metric}
                                    for f in mine]})
    rng = run.step_range() or (0, 1)
    return {"x_min": rng[0], "x_max": rng[1] if rng[1] > rng[0] else rng[0] + 1, "x_label": "step",
            "panels": panels}


def script_json(obj: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>', '&' or line separators that could end it."""
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def e(x: Any) -> str:
    return html.escape(str(x), quote=True)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:20px;margin:4px 0 2px;word-break:break-all}h2{font-size:16px;margin:22px 0 8px}
.verdict{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600;margin-right:8px}
.v-healthy{background:#2ca02c}.v-warning{background:#e08a00}.v-problem{background:#d62728}
.muted{color:#666}.panel{background:#fff;border:1px solid #ddd;border-radius:6px;margin:8px 0;padding:4px 6px}
.panel-head{display:flex;gap:10px;align-items:center;font-size:12px}.panel-head button{font-size:11px}
.panel-head button.on{background:#1f77b4;color:#fff}.readout{color:#555;font-family:monospace;font-size:11px}
svg{display:block;user-select:none}#detail{display:none;background:#fff8e5;border:1px solid #e0c060;
padding:6px 10px;border-radius:4px;margin:6px 0;white-space:pre-wrap}
.card{background:#fff;border:1px solid #ddd;border-left:5px solid #1f77b4;border-radius:6px;padding:8px 14px;margin:8px 0}
.card h3{margin:2px 0 6px;font-size:15px}.card ul{margin:4px 0 4px 18px;padding:0}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}tr[data-zoom]{cursor:pointer}tr[data-zoom]:hover{background:#eef4fb}
.sev-error{color:#d62728;font-weight:600}.sev-warning{color:#c77700;font-weight:600}.sev-info{color:#777}
code,pre{font-family:ui-monospace,monospace;font-size:12px}pre{background:#f3f3f3;padding:6px 8px;overflow:auto}
"""


def _fmt(v: Any) -> str:
    from .render import _fmt as fmt_value

    return fmt_value(v)


def page(title: str, header: str, data: dict[str, Any], body: str) -> str:
    """A whole self-contained document around the plots."""
    js = resources.files("lossdx.report").joinpath("plot.js").read_text("utf-8")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        # no request can leave the page: a CSP that allows only the inline script and style
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body><main>\n{header}\n"
        "<p class=\"muted\">Drag across a plot to zoom, double-click or <button id=\"reset\">reset zoom</button>; "
        "hover or click a marked finding for its message.</p><div id=\"detail\"></div><div id=\"plots\"></div>\n"
        f"{body}\n</main>\n<script type=\"application/json\" id=\"lossdx-data\">{script_json(data)}</script>\n"
        f"<script>{js}</script>\n</body></html>\n"
    )


def _diagnosis_cards(report: Report) -> str:
    if not report.diagnoses:
        return ""
    out = ["<h2>Likely causes</h2>"]
    for i, d in enumerate(report.diagnoses, 1):
        out.append(f"<div class=\"card\"><h3>{i}. {e(d.cause.replace('_', ' '))} "
                   f"<span class=\"muted\">confidence {d.confidence:.2f}</span></h3>")
        if d.evidence:
            out.append("<b>Evidence</b><ul>" + "".join(f"<li>{e(x)}</li>" for x in d.evidence) + "</ul>")
        if d.fixes:
            out.append("<b>Fixes</b><ul>" + "".join(f"<li>{e(x)}</li>" for x in d.fixes) + "</ul>")
        if d.config_patch:
            patch = json.dumps(_plain(d.config_patch), indent=2, ensure_ascii=False, default=str)
            out.append(f"<b>Config patch</b><pre>{e(patch)}</pre>")
        if d.checks:
            out.append("<b>To decide</b><ul>" + "".join(f"<li>{e(x)}</li>" for x in d.checks) + "</ul>")
        out.append("</div>")
    return "\n".join(out)


def _plain(x: Any) -> Any:
    from ..findings import _jsonable

    return _jsonable(x)


def _findings_table(report: Report) -> str:
    rows = [f for f in report.findings if f.kind != "phase"]
    if not rows:
        return ""
    out = ["<h2>Findings</h2><p class=\"muted\">Click a row to zoom the plots to its steps.</p>",
           "<table><tr><th>severity</th><th>kind</th><th>metric</th><th>steps</th><th>message</th></tr>"]
    for f in rows:
        where = f"{f.start_step:,}" if f.start_step == f.end_step else f"{f.start_step:,}–{f.end_step:,}"
        out.append(f"<tr data-zoom=\"{int(f.start_step)},{int(f.end_step)}\"><td class=\"sev-{e(f.severity)}\">"
                   f"{e(f.severity)}</td><td>{e(f.kind)}</td><td><code>{e(f.metric)}</code></td><td>{e(where)}</td>"
                   f"<td>{e(f.message)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _facts_table(report: Report) -> str:
    from .render import _FACT_LABELS

    facts = report.run.get("facts") or {}
    out = []
    if facts:
        out += ["<h2>Facts</h2><table>"]
        out += [f"<tr><td>{e(_FACT_LABELS.get(k, str(k).replace('_', ' ')))}</td><td>{e(_fmt(v))}</td></tr>"
                for k, v in facts.items()]
        out.append("</table>")
    config = report.run.get("config") or {}
    if config:
        out += ["<h2>Config</h2><table>"]
        out += [f"<tr><td><code>{e(k)}</code></td><td><code>{e(_fmt(v))}</code></td></tr>"
                for k, v in list(config.items())[:200]]
        out.append("</table>")
    notes = report.run.get("notes") or []
    if notes:
        out += ["<h2>Notes</h2><ul>"] + [f"<li>{e(n)}</li>" for n in notes] + ["</ul>"]
    return "\n".join(out)


def render_html(report: Report, run: Run | None = None) -> str:
    """The report as one self-contained HTML file. Without ``run`` the curves are read again from the
    report's source (the report itself holds findings, not curves)."""
    if run is None:
        run = _reread(report)
    src = report.source
    name = f" [{src['run_name']}]" if src.get("run_name") else ""
    steps = report.run.get("steps") or [0, 0]
    header = (f"<h1>lossdx report: {e(src.get('path', ''))}{e(name)}</h1>"
              f"<p class=\"muted\">format {e(src.get('format', ''))}"
              + (f" · config {e(src['config'])}" if src.get("config") else "")
              + f" · steps {e(steps[0])}–{e(steps[-1])} · metrics {e(', '.join(map(str, report.run.get('metrics', []))))}</p>"
              f"<p><span class=\"verdict v-{e(report.verdict)}\">{e(report.verdict.upper())}</span>{e(report.summary)}</p>")
    body = "\n".join([_diagnosis_cards(report), _findings_table(report), _facts_table(report)])
    return page(f"lossdx: {src.get('path', '')}{name}", header, plot_data(report, run), body)


def _reread(report: Report) -> Run:
    from ..readers import read

    src = report.source
    fmt = src.get("format") or None
    try:
        return read(src["path"], format=fmt, run=src.get("run_name"))
    except Exception:  # the format name of a text dialect or a table may not be a reader's: sniff again
        return read(src["path"], run=src.get("run_name"))


def analyze_for_plot(path: str, config: str | None = None, input_format: str | None = None,
                     run_name: str | None = None, auto_config: bool = True, settings: Any = None) -> tuple[Report, Run]:
    """What ``analyze_path`` does, keeping the run for the plots."""
    from ..analyze import analyze, read_run

    run = read_run(path, config=config, input_format=input_format, run_name=run_name, auto_config=auto_config)
    return analyze(run, settings=settings), run


def render_png(report: Report, run: Run) -> bytes:
    """The plots as a PNG image (needs matplotlib: ``pip install 'lossdx[plot]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ..exceptions import InputError

        raise InputError("--format png needs matplotlib: pip install 'lossdx[plot]' (or use --format html)") from None
    import io

    data = plot_data(report, run)
    panels = data["panels"]
    heights = [p["height"] for p in panels] or [300]
    fig, axes = plt.subplots(len(heights), 1, figsize=(11, sum(heights) / 80 + 1), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    colors = {"error": "#d62728", "warning": "#ff7f0e", "info": "#7f7f7f"}
    for ax, p in zip(axes[:, 0], panels):
        for i, ph in enumerate(p["phases"]):
            ax.axvspan(ph["start"], ph["end"], color=["#e8f1fb", "#eef7ea", "#f6f0fa"][i % 3], zorder=0)
        for s in p["series"]:
            y = [np.nan if v is None else v for v in s["y"]]
            ax.plot(s["x"], y, "--" if s["dash"] else "-", lw=1, label=s["name"])
            for a, b, _k in s["nonfinite"]:
                ax.axvspan(a, b + 0.5, color="#d62728", alpha=0.5)
        span = max(1.0, float(data["x_max"] - data["x_min"]))
        for f in p["findings"]:
            if f["kind"] == "log_limit":
                continue  # what the log cannot show is not a place on the curve
            wide = (f["end"] - f["start"]) > 0.2 * span
            ax.axvspan(f["start"] - 0.5, f["end"] + 0.5, color=colors.get(f["severity"], "#555"),
                       alpha=0.06 if wide else 0.3)
        if p["log"]:
            ax.set_yscale("log")
        ax.set_title(p["title"], loc="left", fontsize=9)
        ax.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"{report.source.get('path', '')}: {report.verdict}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def render_plot(report: Report, run: Run, fmt: str) -> str | bytes:
    return render_png(report, run) if fmt == "png" else render_html(report, run)


def render_compare_html(c: Any) -> str:
    """A comparison (:class:`lossdx.compare.Comparison`) as one self-contained page: the runs overlaid on one
    axis (tokens seen or steps), their flagged events marked, the ranking and the reasons."""
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    panels = []
    x_max = 0.0
    x_min = math.inf
    for title, metrics, height, log in PANELS:
        series, findings = [], []
        for i, r in enumerate(c.runs):
            tps = (r.report.run.get("facts") or {}).get("tokens_per_step") if c.axis == "tokens" else None
            scale = float(tps) if tps else None
            for m in metrics:
                sp = series_spec(r.run, m, label=f"{r.label} {m.split('/')[0]}" if len(metrics) > 1 else r.label,
                                 dash=m.startswith("val/"), x_scale=scale)
                if sp is None:
                    continue
                sp["color"] = colors[i % len(colors)]
                if scale:
                    sp["nonfinite"] = [[a * scale, b * scale, k] for a, b, k in sp["nonfinite"]]
                series.append(sp)
                if sp["x"]:
                    x_min = min(x_min, sp["x"][0])
                    x_max = max(x_max, sp["x"][-1])
            if title == "loss":
                for f in r.report.findings:
                    if f.kind in ("nan", "divergence", "spike") and f.severity != "info":
                        k = scale or 1.0
                        findings.append({"kind": f.kind, "severity": f.severity, "start": f.start_step * k,
                                         "end": f.end_step * k, "metric": f.metric,
                                         "message": f"{r.label}: {f.message}"})
        if series:
            panels.append({"title": title, "height": height, "log": log or title == "loss",
                           "series": series, "phases": [], "findings": findings})
    if not math.isfinite(x_min):
        x_min = 0.0
    data = {"x_min": x_min, "x_max": x_max if x_max > x_min else x_min + 1, "x_label": c.axis, "panels": panels}
    header = (f"<h1>lossdx compare: {len(c.runs)} runs</h1>"
              f"<p class=\"muted\">x axis: {e('tokens' if c.axis == 'tokens' else 'steps')} · ranked by {e(c.metric)} at {e(f'{c.horizon:,.6g}')} "
              f"{e('tokens' if c.axis == 'tokens' else 'steps')}</p><p><b>{e(c.summary)}</b></p>")
    rows = ["<h2>Ranking</h2><table><tr><th>rank</th><th>run</th><th>" + e(c.metric) + "</th><th>verdict</th>"
            "<th>why</th></tr>"]
    for r in c.runs:
        value = f"{r.value:.4g}" if r.value == r.value else "n/a"
        rows.append(f"<tr><td>{r.rank}</td><td>{e(r.label)}<br><span class=\"muted\">{e(r.report.source.get('path', ''))}"
                    f"</span></td><td>{e(value)}</td><td>{e(r.report.verdict)}</td><td><ul>"
                    + "".join(f"<li>{e(x)}</li>" for x in r.reasons) + "</ul></td></tr>")
    rows.append("</table>")
    if c.varied:
        rows.append("<h2>Config keys that differ</h2><table><tr><th>key</th>"
                    + "".join(f"<th>{e(r.label)}</th>" for r in c.runs) + "</tr>")
        for k in c.varied[:40]:
            rows.append(f"<tr><td><code>{e(k)}</code></td>"
                        + "".join(f"<td>{e(_fmt(r.run.config.get(k, '')))}</td>" for r in c.runs) + "</tr>")
        rows.append("</table>")
    return page("lossdx compare", header, data, "\n".join(rows))


__all__ = ["analyze_for_plot", "render_compare_html", "downsample", "plot_data", "render_html", "render_png", "render_plot"]
