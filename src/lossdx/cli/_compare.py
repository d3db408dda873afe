"""``lossdx compare RUN...``: overlay runs, rank them at equal tokens, say which won and why the others lost."""

from __future__ import annotations

import json

import click

from ..compare import Comparison, compare_paths
from ..scan import clean


def render_compare_text(c: Comparison) -> str:
    lines = [f"lossdx compare: {len(c.runs)} runs, ranked by {c.metric} at {c.horizon:,.6g} {'tokens' if c.axis == 'tokens' else 'steps'}", "",
             clean(c.summary), ""]
    for r in c.runs:
        mark = "WINNER" if r.rank == 1 else f"#{r.rank}"
        value = f"{r.value:.4g}" if r.value == r.value else "n/a"
        lines.append(f"{mark:<7} {clean(r.label)}  {c.metric} {value}  [{r.report.verdict}]")
        for reason in r.reasons:
            lines.append(f"          - {clean(reason)}")
    if c.varied:
        lines += ["", "config keys that differ: " + ", ".join(clean(k) for k in c.varied[:12])]
    return "\n".join(lines) + "\n"


def render_compare_md(c: Comparison) -> str:
    from ._scan import _md

    out = [f"# lossdx compare: {len(c.runs)} runs", "", f"**{_md(c.summary)}**", "",
           f"| rank | run | {c.metric} at {c.horizon:,.6g} {'tokens' if c.axis == 'tokens' else 'steps'} | verdict | why |", "|---|---|---|---|---|"]
    for r in c.runs:
        value = f"{r.value:.4g}" if r.value == r.value else "n/a"
        out.append(f"| {r.rank} | {_md(r.label)} | {value} | {r.report.verdict} | "
                   f"{'<br>'.join(_md(x) for x in r.reasons)} |")
    return "\n".join(out) + "\n"


def render_compare(c: Comparison, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(c.to_dict(), indent=2, allow_nan=False) + "\n"
    if fmt == "md":
        return render_compare_md(c)
    if fmt == "html":
        from ..report.html import render_compare_html

        return render_compare_html(c)
    return render_compare_text(c)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json", "md", "html"]), default="text",
              show_default=True, help="Output format.")
@click.option("--axis", type=click.Choice(["auto", "tokens", "step"]), default="auto", show_default=True,
              help="Rank and overlay on tokens seen (needs every run's config) or steps; auto: tokens when known.")
@click.option("--no-auto-config", is_flag=True, help="Do not look for a config beside each log.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (refuses to overwrite an input).")
def compare(paths: tuple[str, ...], fmt: str, axis: str, no_auto_config: bool, output: str | None) -> None:
    """Compare runs (an LR sweep): overlay them, rank them at equal tokens, flag the ones that diverged or
    spiked, and say which config won and why the others lost. Runs may be of different formats."""
    from ._analyze import emit

    c = compare_paths(list(paths), axis=axis, auto_config=not no_auto_config)
    emit(render_compare(c, fmt), output, protected=tuple(paths))
