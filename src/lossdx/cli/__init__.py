"""The ``lossdx`` command line: a thin layer over the library, one command per module."""

from __future__ import annotations

import sys

import click

from ..exceptions import InputError, LossdxError
from . import _analyze, _calc, _demo, _explain


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lossdx")
def cli() -> None:
    """Tell what is wrong with a training run, why, and what to change."""


cli.add_command(_analyze.analyze)
cli.add_command(_demo.demo)
cli.add_command(_analyze.formats)
cli.add_command(_calc.calc)
cli.add_command(_explain.explain)
from . import _compare  # noqa: E402
cli.add_command(_compare.compare)
from . import _watch  # noqa: E402
cli.add_command(_watch.watch)


def main(argv: list[str] | None = None) -> int:
    """Entry point: every failure is one line on stderr and an exit code, never a traceback."""
    try:
        # in non-standalone mode click returns the code of a raised Exit (the analyze verdict) instead of exiting
        code = cli.main(args=argv, prog_name="lossdx", standalone_mode=False)
        if isinstance(code, int):
            return code
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return 2
    except click.exceptions.Abort:
        click.echo("lossdx: aborted", err=True)
        return 130
    except InputError as e:
        click.echo(f"lossdx: error: {e}", err=True)
        return 2
    except LossdxError as e:
        click.echo(f"lossdx: error: {e}", err=True)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        click.echo("lossdx: interrupted", err=True)
        return 130
    except MemoryError:
        click.echo("lossdx: error: out of memory reading the input", err=True)
        return 2
    except Exception as e:  # a bug of ours: still one line, and a distinct exit code
        msg = str(e).splitlines()[0] if str(e) else ""
        click.echo(f"lossdx: internal error: {type(e).__name__}: {msg} (please report it)", err=True)
        return 3
    return 0


def run() -> None:
    sys.exit(main())
