"""``lossdx explain CAUSE``: what a cause is, how it shows, how to confirm and fix it."""

from __future__ import annotations

import difflib
import re
import shutil
import sys
import textwrap

import click

from ..diagnosis import CAUSES
from ..diagnosis.explain import explain as explain_text
from ._options import is_terminal


def nearest_causes(name: str, n: int = 3) -> list[str]:
    """The causes closest to a mistyped or mis-cased ``name`` (``LR-too-high`` -> ``lr_too_high``)."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    exact = [c for c in CAUSES if c == key]
    if exact:
        return exact
    near = difflib.get_close_matches(key, CAUSES, n=n, cutoff=0.5)
    # a word of the cause is often what people remember: "explosion", "warmup", "fp16"
    near += [c for c in CAUSES if key and key in c and c not in near]
    return near[:n]


@click.command()
@click.argument("cause", required=False)
def explain(cause: str | None) -> None:
    """Explain a root cause (without CAUSE: list them)."""
    if cause is None:
        click.echo("causes: " + ", ".join(CAUSES))
        return
    if cause not in CAUSES:
        near = nearest_causes(cause)
        hint = f"; did you mean {' or '.join(near)}?" if near else "; `lossdx explain` lists them"
        raise click.BadParameter(f"unknown cause {cause!r}{hint}", param_hint="'CAUSE'")
    click.echo(wrap_for_terminal(explain_text(cause)), nl=False)


def wrap_for_terminal(text: str) -> str:
    """``text`` wrapped to the terminal's width when stdout is one (each line under its own label column)."""
    if not is_terminal(sys.stdout):
        return text
    width = shutil.get_terminal_size((80, 24)).columns
    out = []
    for line in text.splitlines():
        label = re.match(r"\s*\S[^:]{0,30}:\s+", line)
        hang = len(label.group()) if label and len(label.group()) < width // 2 else 4
        out.append(textwrap.fill(line, width=width, subsequent_indent=" " * hang, break_on_hyphens=False)
                   if len(line) > width else line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
