"""``lossdx forecast RUN --to STEPS|TOKENS``: would training longer help? A saturating power-law forecast."""

from __future__ import annotations

import json
import re

import click

from ..analyze import read_run
from ..exceptions import InputError
from ._analyze import emit

_TARGET = re.compile(r"^\s*([0-9.]+(?:e[+-]?\d+)?)\s*([kmbt]?)\s*(tokens?|tok|steps?|iters?)?\s*$", re.I)
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_target(text: str) -> tuple[float | None, float | None]:
    """``50000`` / ``50k`` / ``50k steps`` -> steps; ``2.5e9 tokens`` / ``26B tokens`` / ``10btok`` -> tokens."""
    m = _TARGET.match(text)
    if not m:
        raise InputError(f"--to {text!r}: give steps (50000, 50k) or tokens (2.5e9tokens, 26Btokens)")
    value = float(m.group(1)) * _SCALE[m.group(2).lower()]
    if (m.group(3) or "").lower().startswith("tok"):
        return None, value
    return value, None


@click.command()
@click.argument("path", type=click.Path())
@click.option("--to", "target", required=True, help="Target: steps (50000, 50k) or tokens (2.5e9tokens, 26Btokens).")
@click.option("--config", "-c", "config", type=click.Path(), default=None,
              help="Training config (tokens per step for a target in tokens). Default: one found beside the log.")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the forecast to this file (refuses to overwrite the input).")
def forecast(path: str, target: str, config: str | None, fmt: str, output: str | None) -> None:
    """Forecast the loss at a later step from a saturating power law L(t) = E + A t^-alpha.

    Prints the expected loss with a 90% interval, the irreducible level E and the gain per extra 10% of
    compute; refuses (exit 1) where the fit is poor, and says why. Exit 2: unreadable input.
    """
    from ..forecast import forecast as run_forecast

    to_step, to_tokens = parse_target(target)
    run = read_run(path, config=config)
    fc = run_forecast(run, to_step=to_step, to_tokens=to_tokens)
    text = json.dumps(fc.to_dict(), indent=2, allow_nan=False) + "\n" if fmt == "json" else str(fc) + "\n"
    emit(text, output, protected=(path, config or ""))
    raise click.exceptions.Exit(0 if fc.ok else 1)
