"""``lossdx analyze PATH``: read a log (and its config), print the report, exit by verdict."""

from __future__ import annotations

import os
from typing import Any, Iterable

import click

from ..analyze import analyze_path
from ..report import render
from ..settings import load_settings
from ._locate import step_lines
from ._output import write_report
from ._options import (display_options, exit_code, input_options, report_options, settings_options,
                       settings_overrides, text_options)


def emit(data: str | bytes, output: str | None, protected: Iterable[str] = ()) -> None:
    """The report to stdout or the file ``output``, never over a file in ``protected`` (see ``_output``)."""
    write_report(data, output, inputs=protected)


emit_bytes = emit


@click.command()
@click.argument("path", type=click.Path())
@input_options
@report_options
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=None,
              help="Worker processes for a directory of many runs (default: all CPU cores).")
@display_options
@settings_options
def analyze(path: str, config: str | None, no_auto_config: bool, input_format: str | None, run_name: str | None,
            fmt: str, fail_on: str | None, output: str | None, quiet: bool, verbose: bool, show_all: bool,
            color: str, settings_file: str | None, jobs: int | None = None, **overrides: Any) -> None:
    """Analyse a training log (file or directory) and report what is wrong, why, and what to change.

    Settings come from [tool.lossdx] in pyproject.toml or a lossdx.toml (the nearest above the log, else above
    the working directory); the options below override them.

    Exit codes: 0 healthy, 1 warning/problem (see --fail-on), 2 unreadable input, bad usage or an internal error.
    """
    settings = load_settings(path, settings_file).merged(**settings_overrides(overrides))
    fail_on = fail_on or settings.fail_on or "warning"
    if os.path.isdir(path) and config is None and input_format is None and run_name is None:
        from ..scan import run_inputs
        from ._scan import scan_directory

        inputs = run_inputs(path)
        if inputs is not None:  # a directory of many runs: analyse them all
            raise click.exceptions.Exit(scan_directory(path, inputs, fmt, fail_on, output, jobs, not no_auto_config,
                                                      settings))
    from ._progress import read_progress

    if fmt in ("html", "png"):  # the plots need the curves, not only the report
        from ..report.html import analyze_for_plot, render_plot

        with read_progress(path):
            report, run = analyze_for_plot(path, config, input_format, run_name, not no_auto_config, settings)
        plotted = render_plot(report, run, fmt)
        if isinstance(plotted, bytes):  # png
            if output is None:
                raise click.UsageError("--format png writes an image: give it a file with -o report.png")
            emit_bytes(plotted, output, protected=(path, config or "", *run.meta.get("files_read", [])))
        else:
            emit(plotted, output, protected=(path, config or "", *run.meta.get("files_read", [])))
        raise click.exceptions.Exit(exit_code(report.verdict, fail_on))
    with read_progress(path):  # a progress line on long reads, at a terminal only
        files_read: list[str] = []
        report = analyze_path(path, config=config, input_format=input_format, run_name=run_name,
                              auto_config=not no_auto_config, settings=settings, files_read=files_read)
    opts: dict[str, Any] = (text_options(output, quiet, verbose, show_all, color) if fmt == "text"
                            else {"show_all": show_all})
    if fmt in ("github", "sarif"):  # annotations point at the line of each finding's first step
        opts["lines"] = step_lines(str(report.source.get("path", "")), (f.start_step for f in report.findings),
                                   delimited="csv" in str(report.source.get("format", "")))
    emit(render(report, fmt, **opts), output, protected=(path, config or "", *files_read))
    raise click.exceptions.Exit(exit_code(report.verdict, fail_on))


@click.command()
def formats() -> None:
    """List the input formats lossdx reads: an example record of each and what is read from it.

    Every format is sniffed from the content (never the file name); --input-format NAME forces one.
    """
    import shutil

    from ..readers.guide import guide_lines
    from ..scan import clean

    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    for line in guide_lines(width):
        click.echo(clean(line))
