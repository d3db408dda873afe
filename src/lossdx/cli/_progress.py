"""A progress line on stderr while a long input is read and analysed, for a person at a terminal only.

The readers stream files themselves, so the progress is read from outside: on Linux the file offset of
the descriptor that has the input open (``/proc/self/fdinfo``, the way ``pv -d`` does it) gives the share
read; elsewhere, or once the file is closed, the line shows the elapsed time. Nothing is drawn for
inputs that take under a second, nor when stdout or stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Iterator


def _offset_of(path: str) -> int | None:
    """How far this process has read ``path`` (None when no descriptor has it open, or not on Linux)."""
    target = os.path.realpath(path)
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != target:
                continue
            with open(f"/proc/self/fdinfo/{fd}") as fh:
                for line in fh:
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


@contextlib.contextmanager
def read_progress(path: str, delay: float = 1.0, every: float = 0.25) -> Iterator[None]:
    if not (sys.stdout.isatty() and sys.stderr.isatty()) or not os.path.isfile(path):
        yield
        return
    size = os.path.getsize(path)
    done = threading.Event()
    start = time.monotonic()

    def draw() -> None:
        if done.wait(delay):
            return
        name = os.path.basename(path)
        while not done.is_set():
            pos = _offset_of(path)
            t = time.monotonic() - start
            if pos is not None and size:
                share = min(1.0, pos / size)
                bar = "#" * int(share * 30)
                line = f"reading {name} [{bar:<30}] {share:4.0%} of {size / 1e6:,.0f} MB  {t:4.0f}s"
            else:
                line = f"analysing {name} ({size / 1e6:,.0f} MB)  {t:4.0f}s"
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
            done.wait(every)
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()

    th = threading.Thread(target=draw, daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()
