"""The ``lossdx`` command line: a thin layer over the library, one command per module."""

from __future__ import annotations

import sys
import traceback

import click

from .._version import version
from ..report.render import clean_text

from ..exceptions import InputError, LossdxError
from . import _analyze, _calc, _demo, _explain
from . import _check_data, _forecast


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, is_eager=True, expose_value=False, help="Show the version and exit.",
              callback=lambda ctx, _param, value: _show_version(ctx) if value else None)
@click.option("--debug", is_flag=True, expose_value=False,
              help="Show the traceback of an internal error (also accepted after the command).")
def cli() -> None:
    """Tell what is wrong with a training run, why, and what to change.

    Exit codes: 0 healthy, 1 warning or problem (analyze --fail-on), 2 unreadable input, bad usage or an
    internal error (one line on stderr; --debug adds the traceback of an internal error).
    """


cli.add_command(_analyze.analyze)
cli.add_command(_demo.demo)
cli.add_command(_analyze.formats)
cli.add_command(_calc.calc)
cli.add_command(_explain.explain)
from . import _compare  # noqa: E402
cli.add_command(_compare.compare)
from . import _watch  # noqa: E402
cli.add_command(_watch.watch)
cli.add_command(_check_data.check_data)
cli.add_command(_forecast.forecast)


def _show_version(ctx: click.Context) -> None:
    click.echo(f"lossdx, version {version()}")
    ctx.exit()


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (anywhere before a ``--``), and whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    return [a for i, a in enumerate(argv) if not (i < end and a == "--debug")], debug


def main(argv: list[str] | None = None) -> int:
    """Entry point: every failure is one line on stderr and exit code 2, never a traceback (but with --debug)."""
    argv, debug = _take_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        # in non-standalone mode click returns the code of a raised Exit (the analyze verdict) instead of exiting
        code = cli.main(args=argv, prog_name="lossdx", standalone_mode=False)
        if isinstance(code, int):
            return code
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        hint = f" (see '{e.ctx.command_path} --help')" if isinstance(e, click.UsageError) and e.ctx else ""
        click.echo(f"lossdx: error: {one_line(e.format_message())}{hint}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("lossdx: aborted", err=True)
        return 2
    except InputError as e:
        click.echo(f"lossdx: error: {one_line(str(e))}", err=True)
        return 2
    except LossdxError as e:
        click.echo(f"lossdx: error: {one_line(str(e))}", err=True)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        click.echo("lossdx: interrupted", err=True)
        return 2
    except MemoryError:
        click.echo("lossdx: error: out of memory reading the input", err=True)
        return 2
    except Exception as e:  # a bug of ours: still one line (the traceback only when asked for)
        if debug:
            traceback.print_exc()
        hint = "" if debug else "; --debug shows the traceback"
        click.echo(f"lossdx: internal error: {type(e).__name__}: {one_line(str(e))} (please report it{hint})",
                   err=True)
        return 2
    return 0


def one_line(msg: str) -> str:
    """An error message as one line of plain text: first line only, control characters made visible."""
    return clean_text(msg.strip().splitlines()[0] if msg.strip() else "", single_line=True)


def run() -> None:
    sys.exit(main())
