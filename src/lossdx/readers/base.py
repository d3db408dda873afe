"""What every reader shares: the Reader protocol, safe decoding, and turning raw metrics into a Run."""

from __future__ import annotations

import codecs
import errno
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Mapping, Protocol

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


#: The most one line (or one JSON record) of a log may cost: a longer line keeps its first MAX_LINE_BYTES
#: (no record is that long; a dumped tensor or a binary tail is not worth parsing, and every regex then
#: sees bounded input).
MAX_LINE_BYTES = 16 * 1024
#: Blocks in which logs are streamed.
BLOCK_BYTES = 8 << 20


def open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (a FIFO, a device or a socket would block
    or never end). O_NONBLOCK keeps the open itself from blocking on a FIFO; it is harmless for files."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise InputError(f"cannot open {path}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path} is not a regular file (a FIFO, device or socket); save the log to a file first")
        # unbuffered: iter_blocks moves the descriptor's offset itself (SEEK_DATA), which a buffer would hide
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_head(path: str, n: int = HEAD_BYTES) -> bytes:
    with open_regular(path) as fh:
        try:
            return fh.read(n)
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror or err}") from None


def iter_blocks(fh: BinaryIO, path: str, block: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The file's bytes in blocks; holes of a sparse file are skipped (they hold only zeros, never a
    record), so a 2 GB sparse file costs what its data costs."""
    fd = fh.fileno()
    seek_data = getattr(os, "SEEK_DATA", None)
    pos = fh.tell()
    while True:
        if seek_data is not None:
            try:
                nxt = os.lseek(fd, pos, seek_data)
            except OSError as err:
                if err.errno == errno.ENXIO:  # only a hole is left
                    return
                nxt = pos  # the file system cannot tell: read on
            pos = nxt
        try:
            # asked for no more than the file holds (plus room to see it grow): an unbuffered read allocates all
            # it is asked for, and 8 MB per small log was most of the cost of reading 20,000 of them (R19)
            data = _read_full(fh, min(block, max(os.fstat(fd).st_size - pos, 0) + 65536))
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror or err}") from None
        if not data:
            return
        pos += len(data)
        yield data


def _read_full(fh: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes; a raw read may return fewer before the end."""
    data = fh.read(n)
    if not data or len(data) == n:
        return data or b""
    parts = [data]
    got = len(data)
    while got < n:
        more = fh.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def iter_line_blocks(fh: BinaryIO, path: str, block: int = BLOCK_BYTES,
                     max_line: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Blocks of whole lines (each ending at a newline except perhaps the last); a line longer than
    ``max_line`` is cut to its first ``max_line`` bytes, so no line costs more than that however long it is.
    NUL bytes (a zero-filled tail after a crash) are dropped."""
    carry = b""
    skipping = False  # inside the rest of an over-long line
    for data in iter_blocks(fh, path, block):
        if b"\x00" in data:
            data = data.replace(b"\x00", b"")
            if not data:
                continue
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data = data[nl + 1:]  # the cut line already ended with its own newline
            skipping = False
        data = carry + data
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            body, carry = b"", data
        else:
            body, carry = data[: last_nl + 1], data[last_nl + 1:]
        if len(carry) > max_line:
            carry, skipping = carry[:max_line] + b"\n", True
            body += carry
            carry = b""
        if body:
            yield _cap_lines(body, max_line)
    if carry:
        yield _cap_lines(carry, max_line)


def _cap_lines(body: bytes, max_line: int) -> bytes:
    if len(body) <= max_line or _no_line_longer(body, max_line) or max(map(len, body.split(b"\n"))) <= max_line:
        return body
    return b"\n".join(ln[:max_line] for ln in body.split(b"\n"))


def _no_line_longer(body: bytes, max_line: int) -> bool:
    """True when a newline falls in every window of max_line // 2 bytes: then no line is longer than max_line,
    without splitting the block into lines (each ``find`` stops at the window's first newline)."""
    half = max_line // 2
    if half < 1:
        return False
    for start in range(0, len(body), half):
        if body.find(b"\n", start, start + half) < 0:
            return False
    return True


def looks_binary(head: bytes) -> bool:
    i = head.find(b"\x00", 0, 8192)
    # a zero-filled tail (a crash before the data reached the disk, a preallocated file) is not binary
    return i >= 0 and bool(head[i:].strip(b"\x00"))


def decode_text(data: bytes, path: str) -> str:
    """Decode a text log as UTF-8 (BOM tolerated); anything else is an input error, not a guess."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text (invalid byte at offset {err.start})") from None


def read_text(path: str, cap_lines: bool = True) -> str:
    """The whole text of a log, streamed: sparse holes skipped; with ``cap_lines`` (line-oriented logs)
    lines are cut at MAX_LINE_BYTES and NULs dropped, so a hostile line costs no more than a normal one."""
    with open_regular(path) as fh:
        head = fh.read(8192)
        if looks_binary(head):
            raise InputError(f"{path} is a binary file, not a training log")
        fh.seek(0)
        data = b"".join(iter_line_blocks(fh, path) if cap_lines else iter_blocks(fh, path))
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


class Progress:
    """A one-line progress bar on stderr for reads longer than about a second; only when stderr is a
    terminal (never in pipes, files or CI logs), and erased when the read is done."""

    DELAY_S = 1.0
    EVERY_S = 0.1

    def __init__(self, path: str, total: int | None = None) -> None:
        import sys
        import time

        self._clock = time.monotonic
        self._start = self._clock()
        self._last = 0.0
        self._done = 0
        self._shown = False
        self._stream = sys.stderr
        try:
            self._enabled = bool(self._stream.isatty())
        except (AttributeError, ValueError):
            self._enabled = False
        self._name = os.path.basename(path) or path
        if total is None and self._enabled:
            try:
                total = os.stat(path).st_size
            except OSError:
                total = None
        self._total = total

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        if not self._enabled:
            return
        now = self._clock()
        if now - self._start < self.DELAY_S or now - self._last < self.EVERY_S:
            return
        self._last = now
        mb = self._done / 1e6
        if self._total:
            frac = min(1.0, self._done / self._total)
            bar = "#" * int(frac * 20)
            text = f"lossdx: reading {self._name} [{bar:<20}] {frac:4.0%} ({mb:,.0f} of {self._total / 1e6:,.0f} MB)"
        else:
            text = f"lossdx: reading {self._name} ({mb:,.0f} MB)"
        self._stream.write("\r" + text[:78])
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self._stream.write("\r" + " " * 78 + "\r")
            self._stream.flush()
            self._shown = False
