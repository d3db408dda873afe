"""What every reader shares: the Reader protocol, safe decoding, and turning raw metrics into a Run."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

from ..exceptions import CorruptLog, InputError
from ..keys import canonical, is_loss_key
from ..model import Run, Series, SeriesBuilder

#: How much of a file the sniffers look at.
HEAD_BYTES = 64 * 1024


class Reader(Protocol):
    """A log format. ``sniff`` scores how sure it is (0..1) that ``head`` is its format;
    ``read`` returns one Run per training run the file holds (W&B exports and TB dirs hold several)."""

    name: str

    def sniff(self, head: bytes, path: str) -> float: ...

    def read(self, path: str) -> list[Run]: ...


@dataclass(frozen=True)
class FunctionReader:
    """A reader made of two functions; most formats need no more."""

    name: str
    sniff_fn: Callable[[bytes, str], float]
    read_fn: Callable[[str], list[Run]]

    def sniff(self, head: bytes, path: str) -> float:
        return self.sniff_fn(head, path)

    def read(self, path: str) -> list[Run]:
        return self.read_fn(path)


def read_head(path: str, n: int = HEAD_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as err:
        raise InputError(f"cannot open {path}: {err.strerror or err}") from None


def looks_binary(head: bytes) -> bool:
    return b"\x00" in head[:8192]


def decode_text(data: bytes, path: str) -> str:
    """Decode a text log as UTF-8 (BOM tolerated); anything else is an input error, not a guess."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text (invalid byte at offset {err.start})") from None


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    if looks_binary(data):
        raise InputError(f"{path} is a binary file, not a training log")
    return decode_text(data, path)


def canonical_series(raw: Mapping[str, Series]) -> dict[str, Series]:
    """Rename raw series to canonical keys; when two raw names map to one key keep the longer one."""
    out: dict[str, Series] = {}
    for name, s in raw.items():
        key = canonical(name)
        if key in out and len(out[key]) >= len(s):
            continue
        out[key] = Series(key, s.steps, s.values, s.wall_times)
    return out


def make_run(
    builder: SeriesBuilder | Mapping[str, Series],
    path: str,
    fmt: str,
    meta: dict | None = None,
    already_canonical: bool = False,
) -> Run:
    raw = builder.build() if isinstance(builder, SeriesBuilder) else dict(builder)
    series = raw if already_canonical else canonical_series(raw)
    series = {k: v for k, v in series.items() if len(v)}
    return Run(series=series, source={"path": path, "format": fmt}, meta=dict(meta or {}))


def ensure_loss(run: Run, path: str) -> Run:
    """Promote a lone loss-like series to train/loss, or fail with a clear reason."""
    if "train/loss" in run.series or "val/loss" in run.series:
        return run
    losses = [k for k in run.series if is_loss_key(k) and not k.startswith(("test/", "val/"))]
    losses += [k for k in run.series if is_loss_key(k) and k.startswith("val/")]
    if not losses:
        # a column merely containing "loss" (loss_end, loss_begin, lm_loss_avg ...)
        losses = [k for k in run.series if "loss" in k and not k.startswith("test/")
                  and "scale" not in k and "overflow" not in k]
    if not losses:
        raise CorruptLog(f"{path}: no loss-like metric found (metrics: {', '.join(run.metrics[:8]) or 'none'})")
    best = losses[0]
    target = "val/loss" if best.startswith("val/") else "train/loss"
    s = run.series[best]
    run.series[target] = Series(target, s.steps, s.values, s.wall_times)
    run.meta.setdefault("notes", []).append(f"'{best}' taken as {target}")
    return run
