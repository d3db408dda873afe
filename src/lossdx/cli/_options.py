"""Options shared by the commands that produce a report."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Callable

import click

from ..readers import FORMAT_NAMES

#: report formats of ``--format`` (json is the stable contract; github and sarif are for CI)
REPORT_FORMATS = ["text", "json", "md", "html", "png", "github", "sarif"]


def report_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--format", "-f", "fmt", type=click.Choice(REPORT_FORMATS), default="text",
                      show_default=True, help="Report format: json is the stable contract; html one self-contained "
                                              "file with plots (png needs the plot extra); github prints workflow "
                                              "annotations, sarif a SARIF 2.1.0 log.")(fn)
    fn = click.option("--fail-on", type=click.Choice(["warning", "problem", "never"]), default=None,
                      help="Exit 1 when the verdict is at least this bad.  [default: warning, or fail_on of "
                           "[tool.lossdx]]")(fn)
    fn = click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
                      help="Write the report to this file (refuses to overwrite the input).")(fn)
    return fn


def display_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How the text report is shown: quiet / verbose, every finding, colour."""
    fn = click.option("--color", "color", type=click.Choice(["auto", "always", "never"]), default="auto",
                      show_default=True, help="Colour the text report (auto: when stdout is a terminal; "
                                              "NO_COLOR and FORCE_COLOR are honoured).")(fn)
    fn = click.option("--all", "show_all", is_flag=True,
                      help="List every finding instead of grouping many of one kind into one line.")(fn)
    fn = click.option("-v", "--verbose", is_flag=True,
                      help="Also show each finding's evidence, the checks, the settings and the config read.")(fn)
    fn = click.option("-q", "--quiet", is_flag=True, help="Print the verdict line only.")(fn)
    return fn


def _kinds_option(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k.strip() for v in value for k in v.split(",") if k.strip())


def settings_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Command-line settings; they override ``[tool.lossdx]`` / ``lossdx.toml`` (see ``lossdx.settings``)."""
    fn = click.option("--typical-lr", type=float, default=None,
                      help="The learning rate usual for this kind of run (default: derived from the run).")(fn)
    fn = click.option("--plateau-min-improvement", type=float, default=None,
                      help="Relative improvement over that window below which the loss has plateaued  "
                           "[default: 0.015].")(fn)
    fn = click.option("--plateau-window", type=float, default=None,
                      help="Share of the run over which a plateau is judged  [default: 0.33].")(fn)
    fn = click.option("--grad-norm-ratio", type=float, default=None,
                      help="Times its level a gradient norm must reach to be an explosion  [default: 10].")(fn)
    fn = click.option("--spike-z", type=float, default=None,
                      help="Sigmas of local noise a loss spike must exceed  [default: 8].")(fn)
    fn = click.option("--ignore", multiple=True, metavar="KINDS",
                      help="Drop these finding kinds, e.g. --ignore throughput,log_limit.")(fn)
    fn = click.option("--select", multiple=True, metavar="KINDS",
                      help="Report only these finding kinds (comma-separated, repeatable).")(fn)
    fn = click.option("--settings", "settings_file", type=click.Path(dir_okay=False), default=None,
                      help="Settings file (lossdx.toml or a pyproject.toml with [tool.lossdx]). Default: the "
                           "nearest one above the log, else above the working directory.")(fn)
    return fn


def settings_overrides(kw: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line, by setting name (pops them from ``kw``)."""
    out = {name: kw.pop(name) for name in ("spike_z", "grad_norm_ratio", "plateau_window",
                                           "plateau_min_improvement", "typical_lr")}
    out["select"] = _kinds_option(kw.pop("select"))
    out["ignore"] = _kinds_option(kw.pop("ignore"))
    return out


def input_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--config", "-c", "config", type=click.Path(), default=None,
                      help="Training config (config.py, JSON, YAML, HF training_args.json, or a directory). "
                           "Default: one found beside the log.")(fn)
    fn = click.option("--no-auto-config", is_flag=True, help="Do not look for a config beside the log.")(fn)
    fn = click.option("--input-format", type=click.Choice(FORMAT_NAMES), default=None,
                      help="Skip content sniffing and read the input as this format.")(fn)
    fn = click.option("--run", "run_name", default=None, help="Which run, when the input holds several.")(fn)
    return fn


def exit_code(verdict: str, fail_on: str) -> int:
    if fail_on == "never":
        return 0
    bad = {"warning": ("warning", "problem"), "problem": ("problem",)}[fail_on]
    return 1 if verdict in bad else 0


def use_color(choice: str, to_terminal: bool) -> bool:
    """Colour or not: --color always/never, else NO_COLOR (no-color.org) off, FORCE_COLOR on, else a terminal
    that is not TERM=dumb."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return to_terminal and os.environ.get("TERM") != "dumb"


def text_options(output: str | None, quiet: bool, verbose: bool, show_all: bool, color: str) -> dict[str, Any]:
    """Keyword arguments of the text renderer: wrapped and coloured only for a terminal (or when forced)."""
    to_terminal = output is None and is_terminal(sys.stdout)
    width = shutil.get_terminal_size((80, 24)).columns if to_terminal else None
    if output is None and not to_terminal and os.environ.get("COLUMNS", "").isdigit():
        width = int(os.environ["COLUMNS"])  # an explicit width for a pipe
    return {"width": width, "color": output is None and use_color(color, to_terminal),
            "verbosity": -1 if quiet else (1 if verbose else 0), "show_all": show_all}


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
