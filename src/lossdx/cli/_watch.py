"""``lossdx watch PATH``: follow a growing log, print findings as they appear, alert on problems."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..findings import Finding
from ..readers import FORMAT_NAMES
from ..scan import clean

_RANK = {"info": 0, "warning": 1, "error": 2}
_LEVEL = {"warning": 1, "problem": 2, "never": 99}


@click.command()
@click.argument("path", type=click.Path())
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=2.0, show_default=True,
              help="Seconds between polls (a poll is one stat() while the file does not grow).")
@click.option("--timeout", type=click.FloatRange(0, None), default=None,
              help="Stop after this many seconds (default: until interrupted).")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text lines, or one JSON finding per line.")
@click.option("--on-problem", "on_problem", default=None, metavar="CMD",
              help="Run this shell command on each alert (the finding's JSON on stdin and in $LOSSDX_FINDING).")
@click.option("--webhook", default=None, metavar="URL", help="POST each alert's finding as JSON to this URL.")
@click.option("--alert-on", type=click.Choice(["warning", "problem"]), default="problem", show_default=True,
              help="Which findings trigger --on-problem / --webhook.")
@click.option("--exit-on", type=click.Choice(["warning", "problem", "never"]), default="never", show_default=True,
              help="Stop with exit code 1 at the first finding this bad.")
@click.option("--show-info", is_flag=True, help="Print info findings too.")
@click.option("--input-format", type=click.Choice(FORMAT_NAMES), default=None,
              help="Skip content sniffing and read the log as this format.")
@click.option("--config", "-c", "config", type=click.Path(), default=None,
              help="Training config (default: one found beside the log).")
def watch(path: str, interval: float, timeout: float | None, fmt: str, on_problem: str | None, webhook: str | None,
          alert_on: str, exit_on: str, show_info: bool, input_format: str | None, config: str | None) -> None:
    """Follow a growing training log and report findings as they appear.

    Exit codes: 0 stopped (timeout or Ctrl-C) without a finding at --exit-on, 1 stopped at one, 2 unreadable.
    """
    from ..watch import post_webhook, run_hook
    from ..watch import watch as follow

    if os.path.isdir(path):
        from ..readers import tensorboard

        files = sorted(f for fs in tensorboard._event_files(path).values() for f in fs)
        if not files:
            raise click.UsageError(f"{path} is a directory: watch one log file (or a TensorBoard run directory)")
        path = files[-1]  # the newest writer of a run directory
        click.echo(f"watching {clean(path)}", err=True)
    hparams = _config(path, config)
    hit = {"code": 0}

    def on_finding(f: Finding) -> bool:
        if f.severity == "info" and not show_info:
            return False
        d = {"path": path, **f.to_dict()}
        if fmt == "json":
            click.echo(json.dumps(d))
        else:
            sev = {"error": "PROBLEM", "warning": "warning", "info": "info"}[f.severity]
            click.echo(f"{sev:<8} {f.kind:<14} @{f.start_step:<8} {clean(f.message)}")
        sys.stdout.flush()
        alert = _RANK[f.severity] >= _LEVEL[alert_on]
        if alert and on_problem:
            err = run_hook(on_problem, d)
            if err:
                click.echo(f"lossdx: warning: {clean(err)}", err=True)
        if alert and webhook:
            err = post_webhook(webhook, d)
            if err:
                click.echo(f"lossdx: warning: {clean(err)}", err=True)
        if _RANK[f.severity] >= _LEVEL[exit_on]:
            hit["code"] = 1
            return True
        return False

    try:
        w = follow(path, on_finding, interval=interval, timeout=timeout, fmt=input_format, config=hparams)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(hit["code"]) from None
    for note in w.tail.notes:
        click.echo(f"lossdx: note: {clean(note)}", err=True)
    if w.steps_seen == 0 and hit["code"] == 0 and fmt == "text":
        click.echo(f"lossdx: no training records in {clean(path)} yet", err=True)
    raise click.exceptions.Exit(hit["code"])


def _config(path: str, explicit: str | None) -> dict[str, Any]:
    from ..config import find_config_near, read_config
    from ..exceptions import InputError

    found = explicit or find_config_near(path)
    if not found:
        return {}
    try:
        hparams, _raw, _notes = read_config(found)
    except InputError:
        if explicit:
            raise
        return {}  # an unreadable config found beside the log is not a reason to stop watching
    return dict(hparams)
