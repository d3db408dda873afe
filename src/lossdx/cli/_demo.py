"""``lossdx demo``: analyse the bundled example, a real log of a tiny GPT trained with a known fault."""

from __future__ import annotations

from importlib import resources

import click

from ..analyze import analyze_path
from ..report import render
from ._analyze import emit
from ._options import REPORT_FORMATS, display_options, text_options


@click.command()
@click.option("--format", "-f", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None)
@display_options
def demo(fmt: str, output: str | None, quiet: bool, verbose: bool, show_all: bool, color: str) -> None:
    """Analyse the bundled example log (see examples/make_example.py for how it was made); exits 0 when it ran."""

    example = resources.files("lossdx").joinpath("examples")
    with resources.as_file(example) as folder:
        log = folder / "train.log"
        report = analyze_path(str(log), config=str(folder / "config.py"))
    report.source["path"] = "lossdx/examples/train.log (bundled example)"
    opts = text_options(output, quiet, verbose, show_all, color) if fmt == "text" else {"show_all": show_all}
    emit(render(report, fmt, **opts), output)
