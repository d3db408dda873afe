"""Read any supported training log into :class:`lossdx.model.Run` objects.

The format is chosen by sniffing the content, never the file name; ``format=`` overrides it.

Example:
    >>> from lossdx.readers import read
    >>> run = read("runs/exp3/train.log")          # doctest: +SKIP
    >>> run.series["train/loss"].values[:3]         # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
import struct

from ..exceptions import CorruptLog, InputError, UnsupportedFormat
from ..model import Run
from . import _inputs, delimited, hf_state, jsonl, tensorboard, text
from .base import FunctionReader, Reader, looks_binary, read_head

READERS: tuple[Reader, ...] = (
    FunctionReader("tensorboard", tensorboard.sniff, tensorboard.read),
    FunctionReader("hf_trainer_state", hf_state.sniff, hf_state.read),
    FunctionReader("json", jsonl.sniff_document, jsonl.read_document),
    FunctionReader("jsonl", jsonl.sniff, jsonl.read),
    FunctionReader("csv", delimited.sniff, delimited.read),
    FunctionReader("text", text.sniff, text.read),
)
_BY_NAME = {r.name: r for r in READERS}
#: Accepted by ``--input-format``: the readers, plus each text dialect by name.
FORMAT_NAMES = tuple(list(_BY_NAME) + [f.name for f in text.FORMATS])

# In a run directory holding the same run in several formats, prefer the richest one.
_DIR_PREFERENCE = ("tensorboard", "jsonl", "csv", "hf_trainer_state", "json", "text")


def sniff(path: str) -> tuple[str, float]:
    """The best reader for a file and how sure it is."""
    head = read_head(path)
    if not looks_binary(head):
        head = head.rstrip(b"\x00")
    if not head.strip():
        raise InputError(f"{path} is empty")
    scores = [(r.sniff(head, path), r.name) for r in READERS]
    score, name = max(scores)
    if score <= 0:
        if looks_binary(head):
            raise UnsupportedFormat(f"{path} is a binary file in no format lossdx reads")
        raise UnsupportedFormat(f"{path}: no known log format recognised (no loss records found)")
    return name, score


# What a parser may raise on malformed bytes: turned into one clear input error at this boundary, so
# a log never ends in a traceback (the fuzz tests keep hunting the specific causes).
_PARSE_ERRORS = (ValueError, csv.Error, struct.error, IndexError, OverflowError, KeyError, TypeError, UnicodeError,
                 RecursionError, ZeroDivisionError)


def _read_file(path: str, fmt: str | None) -> list[Run]:
    if fmt is None:
        fmt, _ = sniff(path)
    try:
        if fmt in _BY_NAME:
            return _BY_NAME[fmt].read(path)
        if fmt in (f.name for f in text.FORMATS):
            return text.read(path, fmt)
    except InputError:
        raise
    except _PARSE_ERRORS as err:
        raise CorruptLog(f"{path}: malformed {fmt} content ({type(err).__name__}: {str(err).splitlines()[0][:120]})") \
            from None
    raise UnsupportedFormat(f"unknown input format {fmt!r}; choose from {', '.join(FORMAT_NAMES)}")


def _candidates(directory: str) -> list[tuple[int, str, str]]:
    found = []
    for entry in sorted(os.listdir(directory)):
        p = os.path.join(directory, entry)
        if not os.path.isfile(p):
            continue
        try:
            name, score = sniff(p)
        except InputError:
            continue
        if name == "text" and score < 0.3:
            continue
        found.append((_DIR_PREFERENCE.index(name), entry, name))
    return sorted(found)


def _read_all(inputs: list[str]) -> list[Run]:
    runs: list[Run] = []
    for p in inputs:
        try:
            got = read_runs(p)
        except InputError:
            continue  # not a log (a config, a checkpoint): a scan lists these as skipped
        for r in got:
            r.meta.setdefault("run_name", os.path.basename(p.rstrip(os.sep)))
        runs.extend(got)
    return runs


def read_runs(path: str, format: str | None = None) -> list[Run]:
    """Every run the input holds (a W&B export or a TensorBoard directory may hold several). ``-`` reads
    standard input; gzip, bzip2, xz and zstd logs are decompressed on the fly (see ``_inputs``)."""
    if path != _inputs.STDIN and not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory")
    with _inputs.plain_input(path) as (real, source, notes):
        if real == path:
            return _read_runs(path, format)
        try:
            runs = _read_runs(real, format)
        except InputError as err:
            shown = "standard input" if path == _inputs.STDIN else path
            raise type(err)(str(err).replace(real, shown)) from None
    for run in runs:
        run.source.update(source, path=path)
        if notes:
            run.meta.setdefault("notes", []).extend(notes)
    return runs


def _read_runs(path: str, format: str | None) -> list[Run]:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if format in (None, "tensorboard") and tensorboard.has_event_files(path):
            return _files_read(tensorboard.read(path),
                               [f for files in tensorboard._event_files(path).values() for f in files])
        if format is not None:
            raise InputError(f"{path} is a directory; pass the log file itself with --input-format {format}")
        from ..scan import run_inputs

        inputs = run_inputs(path)
        if inputs is not None:  # many runs: read them all, never keep one silently (lossdx.scan analyses them)
            runs = _read_all(inputs)
            if runs:
                return runs
        errors = []
        candidates = _candidates(path)
        for _pref, entry, name in candidates:
            try:
                runs = _read_file(os.path.join(path, entry), name)
                others = [f"{e} ({n})" for _p, e, n in candidates if e != entry]
                if others:
                    for r in runs:
                        r.meta.setdefault("notes", []).append(
                            f"read {entry}; also in the directory, taken as the same run in other formats: "
                            + ", ".join(others))
                return _files_read(runs, [os.path.join(path, entry)])
            except InputError as err:
                errors.append(str(err))
        reason = f" ({errors[0]})" if errors else ""
        raise UnsupportedFormat(f"{path}: directory holds no readable training log{reason}")
    runs = _read_file(path, format)
    if not runs:
        raise CorruptLog(f"{path}: no runs found")
    return _files_read(runs, [path])


def _files_read(runs: list[Run], files: list[str]) -> list[Run]:
    """Record on each run the files it was read from (``meta["files_read"]``): a report must never replace them."""
    for r in runs:
        r.meta.setdefault("files_read", []).extend(files)
    return runs


def _loss_points(run: Run) -> int:
    """How much of a training run an input holds: its loss points. Logs pasted one after another (a notebook
    of short trials, then the real run) and W&B exports of cut-short runs are reported on their longest run,
    which carries the most evidence; among equals, the first."""
    for name in ("train/loss", "val/loss"):
        if name in run.series:
            return len(run.series[name])
    return max((len(s) for s in run.series.values()), default=0)


def read(path: str, format: str | None = None, run: str | None = None) -> Run:
    """The run in ``path``: ``run`` picks one by name when the input holds several, else the one with the most
    loss points (the first of those)."""
    runs = read_runs(path, format)
    if run is None:
        chosen = max(runs, key=_loss_points)  # the first of the longest: see _loss_points
    else:
        matches = [r for r in runs if r.meta.get("run_name") == run]
        if not matches:
            names = ", ".join(str(r.meta.get("run_name")) for r in runs)
            raise InputError(f"{path}: no run named {run!r} (runs: {names})")
        chosen = matches[0]
    if len(runs) > 1:
        if run is None:
            chosen.meta["run_chosen"] = "longest"
        chosen.meta["other_runs"] = [r.meta.get("run_name") for r in runs if r is not chosen]
    return chosen


__all__ = ["FORMAT_NAMES", "READERS", "read", "read_runs", "sniff"]
