"""What every reader shares: regular files only, streamed blocks, capped lines, the progress bar."""

from __future__ import annotations

import io
import os

import pytest

from lossdx.exceptions import InputError
from lossdx.readers import base


class _Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_on_a_terminal_and_erased_when_done(monkeypatch, tmp_path, tty):
    p = tmp_path / "train.log"
    p.write_bytes(b"x" * 1000)
    stream = _Terminal(tty)
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(base.Progress, "DELAY_S", 0.0)
    monkeypatch.setattr(base.Progress, "EVERY_S", 0.0)
    bar = base.Progress(str(p))
    bar.advance(500)
    bar.advance(500)
    shown = stream.getvalue()
    bar.done()
    if tty:
        assert "train.log" in shown and "100%" in shown and "\n" not in shown
        assert stream.getvalue().endswith("\r")
    else:
        assert stream.getvalue() == ""


def test_no_progress_bar_for_short_reads(monkeypatch, tmp_path):
    stream = _Terminal(True)
    monkeypatch.setattr("sys.stderr", stream)
    bar = base.Progress(str(tmp_path))
    bar.advance(10)
    bar.done()
    assert stream.getvalue() == ""  # under a second: nothing drawn


def test_only_regular_files_are_opened(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        base.open_regular(str(tmp_path))
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(InputError, match="not a regular file"):
            base.open_regular(str(tmp_path / "fifo"))


def test_line_blocks_cap_long_lines_drop_nuls_and_keep_every_line(tmp_path):
    p = tmp_path / "log"
    lines = [b"a" * 10, b"b" * 5000, b"c\x00d", b"", b"e" * 3]
    p.write_bytes(b"\n".join(lines) + b"\n" + b"f" * 7000)  # the last line has no newline
    with base.open_regular(str(p)) as fh:
        got = b"".join(base.iter_line_blocks(fh, str(p), block=1024, max_line=1000)).split(b"\n")
    assert got[:6] == [b"a" * 10, b"b" * 1000, b"cd", b"", b"e" * 3, b"f" * 1000]
    assert got[6:] in ([], [b""])  # a cut line ends with a newline of its own


def test_sparse_holes_are_skipped(tmp_path):
    p = tmp_path / "sparse"
    p.write_bytes(b"head\n")
    os.truncate(p, 1 << 30)
    with open(p, "r+b") as fh:
        fh.seek((1 << 30) - 5)
        fh.write(b"tail\n")
    with base.open_regular(str(p)) as fh:
        data = b"".join(base.iter_line_blocks(fh, str(p)))
    assert data.startswith(b"head\n") and data.endswith(b"tail\n") and len(data) < (64 << 20)


def test_cap_lines_shortcut_agrees_with_splitting_every_line():
    """The window test that skips splitting a block into lines: the same bytes as cutting every line, on lines
    just under, at and over the cap, at the start, the end and without a final newline."""
    import random

    def reference(body: bytes, max_line: int) -> bytes:
        if max(map(len, body.split(b"\n"))) <= max_line:
            return body
        return b"\n".join(ln[:max_line] for ln in body.split(b"\n"))

    rnd = random.Random(5)
    for max_line in (1, 2, 3, 7, 8, 64, 65):
        for _ in range(300):
            lengths = [rnd.choice([0, 1, max_line - 1, max_line, max_line + 1, 2 * max_line, rnd.randint(0, 3 * max_line)])
                       for _ in range(rnd.randint(1, 12))]
            body = b"\n".join(b"x" * max(n, 0) for n in lengths) + rnd.choice([b"", b"\n"])
            assert base._cap_lines(body, max_line) == reference(body, max_line)
            assert base._no_line_longer(body, max_line) <= (max(map(len, body.split(b"\n"))) <= max_line)
