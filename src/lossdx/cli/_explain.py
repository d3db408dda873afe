"""``lossdx explain CAUSE``: what a cause is, how it shows, how to confirm and fix it."""

from __future__ import annotations

import click

from ..diagnosis import CAUSES
from ..diagnosis.explain import explain as explain_text


@click.command()
@click.argument("cause", required=False, type=click.Choice(CAUSES))
def explain(cause: str | None) -> None:
    """Explain a root cause (without CAUSE: list them)."""
    if cause is None:
        click.echo("causes: " + ", ".join(CAUSES))
        return
    click.echo(explain_text(cause), nl=False)
