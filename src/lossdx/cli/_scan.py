"""``lossdx analyze DIR`` over a directory of many runs: one line per run as it finishes, then a summary table."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..scan import ScanResult, scan, summary_lines
from ._options import exit_code


def _interactive() -> bool:
    # a progress bar only for a person watching: never in a pipe, a file or CI logs
    return sys.stdout.isatty() and sys.stderr.isatty()


def scan_directory(directory: str, inputs: list[str], fmt: str, fail_on: str, output: str | None, jobs: int | None,
                   auto_config: bool, settings: Any = None) -> int:
    """Analyse every input; print (or write) the per-run lines and the summary; return the exit code."""
    from ._analyze import emit

    if fmt in ("html", "png"):
        raise click.UsageError(f"--format {fmt} shows one run; for several runs on one plot use "
                               f"`lossdx compare {directory}/*`")
    stream_lines = fmt == "text" and output is None
    results: list[ScanResult] = []
    bar = None
    if _interactive():
        bar = click.progressbar(length=len(inputs), label=f"analysing {len(inputs)} inputs", file=sys.stderr)
        bar.__enter__()
    try:
        # JSON, GitHub annotations and SARIF show whole reports (their findings); text and Markdown a digest of each
        full = fmt in ("json", "github", "sarif")
        for res in scan(inputs, jobs=jobs, auto_config=auto_config, full=full, settings=settings):
            results.append(res)
            if stream_lines:
                if bar is not None:
                    sys.stderr.write("\r\x1b[2K")  # clear the bar's line before printing over it
                for line in res.lines():
                    click.echo(line)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    reports = [r for res in results for r in res.reports]
    if fmt == "json":
        text = json.dumps([r.to_dict() for r in reports], indent=2, allow_nan=False) + "\n"
    elif fmt == "github":  # one block of workflow commands per run: annotations on each run's own file
        from ..report import render

        text = "".join(render(r, "github") for r in reports)
    elif fmt == "sarif":  # SARIF holds several runs in one log: one per analysed run
        from ..report import render

        docs = [json.loads(render(r, "sarif")) for r in reports]
        doc = docs[0] if docs else {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
                                    "runs": []}
        doc["runs"] = [run for d in docs for run in d["runs"]]
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    elif fmt == "md":
        rows = ["| verdict | run | summary | top cause |", "|---|---|---|---|"]
        for r in reports:
            name = r.source.get("path", "") + (f" [{r.source['run_name']}]" if r.source.get("run_name") else "")
            cause = f"{r.diagnoses[0].cause} ({r.diagnoses[0].confidence:.2f})" if r.diagnoses else ""
            rows.append(f"| {r.verdict} | {_md(name)} | {_md(r.summary)} | {cause} |")
        rows += [f"| not analysed | {_md(res.path)} | {_md(res.error or '')} | |" for res in results if res.error]
        text = "\n".join([f"# lossdx scan of {_md(directory)}", "", *rows, "", "```",
                          *summary_lines(results), "```"]) + "\n"
    else:
        body = [] if stream_lines else [line for res in results for line in res.lines()]
        text = "\n".join(body + summary_lines(results)) + "\n"
    emit(text, output, protected=tuple(inputs))
    if not reports:
        click.echo(f"lossdx: error: {directory}: no input could be analysed", err=True)
        return 2
    worst = "problem" if any(r.verdict == "problem" for r in reports) else \
        "warning" if any(r.verdict == "warning" for r in reports) else "healthy"
    return exit_code(worst, fail_on)


def _md(s: str) -> str:
    """Markdown-escape a string from the input for a table cell."""
    out = str(s).replace("\\", "\\\\")
    for ch in "`*_[]<>|#":
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())
