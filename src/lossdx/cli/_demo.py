"""``lossdx demo``: analyse the bundled example, a real log of a tiny GPT trained with a known fault."""

from __future__ import annotations

from importlib import resources

import click

from ..analyze import analyze_path
from ..report import render
from ._options import report_options, exit_code


@click.command()
@report_options
def demo(fmt: str, fail_on: str, output: str | None) -> None:
    """Analyse the bundled example log (see examples/make_example.py for how it was made)."""
    from . import set_exit
    from ._analyze import emit

    example = resources.files("lossdx").joinpath("examples")
    with resources.as_file(example) as folder:
        log = folder / "train.log"
        report = analyze_path(str(log), config=str(folder / "config.py"))
    report.source["path"] = "lossdx/examples/train.log (bundled example)"
    emit(render(report, fmt), output)
    # the demo succeeds when it ran; the verdict is its content, not its exit status
    set_exit(0 if fail_on == "never" else 0 * exit_code(report.verdict, fail_on))
