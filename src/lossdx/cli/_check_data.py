"""``lossdx check-data PATH``: check training data before training, report in the report contract."""

from __future__ import annotations

import sys

import click

from ..report import render
from ._analyze import emit
from ._options import exit_code, report_options


@click.command("check-data")
@click.argument("path", type=click.Path())
@click.option("--vocab-size", type=click.IntRange(min=1), default=None, help="Token ids must lie in [0, N).")
@click.option("--block-size", type=click.IntRange(min=1), default=None, help="Training sequence length.")
@click.option("--config", "-c", "config", type=click.Path(), default=None,
              help="Training config, read as `analyze` reads it (vocab_size, block_size, max_iters, batch size).")
@click.option("--dtype", type=click.Choice(["uint16", "uint32", "int32", "int64"]), default=None,
              help="Token dtype of a .bin file (default uint16, uint32 when the vocabulary exceeds 65536).")
@click.option("--eot-id", type=int, default=None,
              help="End-of-text id separating documents in a token file (default 50256 for GPT-2 vocabularies).")
@click.option("--label-column", default=None, help="Class label column of a table (default: label/target/y/class).")
@click.option("--model-shifts/--model-does-not-shift", "model_shifts", default=True, show_default=True,
              help="Whether the model shifts labels itself (HF causal LMs do: labels = input_ids).")
@click.option("--no-dedupe", is_flag=True, help="Skip the duplicate search (saves 16 bytes per sequence).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
@report_options
def check_data(path: str, vocab_size: int | None, block_size: int | None, config: str | None, dtype: str | None,
               eot_id: int | None, label_column: str | None, model_shifts: bool, no_dedupe: bool,
               progress: bool | None, fmt: str, fail_on: str | None, output: str | None) -> None:
    """Check a dataset before training: token ids, label alignment, NaN, repeats, duplicates, imbalance, epochs.

    Reads nanoGPT .bin token files, .npy, JSONL / Parquet / Arrow (HF datasets saved to disk) rows with
    input_ids / labels / attention_mask, and CSV features + label, streamed in bounded memory.
    Exit codes: 0 clean, 1 warning/problem (see --fail-on), 2 unreadable input.
    """
    from ..datacheck import check_data as run_checks

    if fmt in ("html", "png"):  # those plot loss curves; a dataset has none
        raise click.UsageError("check-data reports as text, json, md, github or sarif")
    fail_on = fail_on or "warning"

    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        bar = click.progressbar(length=1, label="check-data", file=sys.stderr, show_eta=True, show_percent=True)
        bar.__enter__()

    def tick(done: int, total: int) -> None:
        if bar is not None:
            bar.length = max(1, total)
            bar.update(done - bar.pos)

    try:
        report = run_checks(path, vocab_size=vocab_size, block_size=block_size, config=config, dtype=dtype,
                            eot_id=eot_id, model_shifts_labels=model_shifts, label_column=label_column,
                            dedupe=not no_dedupe, progress=tick if bar is not None else None)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    emit(render(report, fmt), output, protected=(path, config or ""))
    raise click.exceptions.Exit(exit_code(report.verdict, fail_on))
