"""Options shared by the commands that produce a report."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..readers import FORMAT_NAMES


def report_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--format", "-f", "fmt", type=click.Choice(["text", "json", "md", "html", "png"]),
                      default="text", show_default=True,
                      help="Report format (json is the stable contract; html: one self-contained file with plots; "
                           "png needs the plot extra).")(fn)
    fn = click.option("--fail-on", type=click.Choice(["warning", "problem", "never"]), default="warning",
                      show_default=True, help="Exit 1 when the verdict is at least this bad.")(fn)
    fn = click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
                      help="Write the report to this file (refuses to overwrite the input).")(fn)
    return fn


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
