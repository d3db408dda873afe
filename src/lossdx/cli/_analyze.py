"""``lossdx analyze PATH``: read a log (and its config), print the report, exit by verdict."""

from __future__ import annotations

import os

import click

from ..analyze import analyze_path
from ..exceptions import InputError
from ..readers import READERS
from ..readers.text import FORMATS as TEXT_FORMATS
from ..report import render
from ._options import exit_code, input_options, report_options


def emit(text: str, output: str | None, protected: tuple[str, ...] = ()) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    target = os.path.abspath(output)
    if any(p and os.path.abspath(p) == target for p in protected):
        raise InputError(f"refusing to write the report over the input {output}")
    tmp = target + ".lossdx-tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)  # atomic: a failed write never leaves a half report


@click.command()
@click.argument("path", type=click.Path())
@input_options
@report_options
def analyze(path: str, config: str | None, no_auto_config: bool, input_format: str | None, run_name: str | None,
            fmt: str, fail_on: str, output: str | None) -> None:
    """Analyse a training log (file or directory) and report what is wrong, why, and what to change.

    Exit codes: 0 healthy, 1 warning/problem (see --fail-on), 2 unreadable input.
    """
    report = analyze_path(path, config=config, input_format=input_format, run_name=run_name,
                          auto_config=not no_auto_config)
    emit(render(report, fmt), output, protected=(path, config or ""))
    raise click.exceptions.Exit(exit_code(report.verdict, fail_on))


@click.command()
def formats() -> None:
    """List the input formats lossdx reads (each is sniffed from the content)."""
    for r in READERS:
        click.echo(r.name)
    click.echo("text dialects: " + ", ".join(f.name for f in TEXT_FORMATS))
