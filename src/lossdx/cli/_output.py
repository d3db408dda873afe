"""Write a report where the user asked, without ever losing what the user had.

* Never over a file that was read: compared by identity (device and inode), so a symlinked directory, a
  hard link, a log inside a directory input or an auto-discovered config are all recognised.
* A regular file is replaced atomically: the report goes to a fresh temporary file (``mkstemp``: an
  unpredictable name opened with O_EXCL, so a planted symlink or a second lossdx writing the same report
  cannot interfere), is flushed to disk, then renamed over the target. A crash leaves the old file whole.
* A special file (``/dev/null``, a FIFO, a terminal) is written directly: replacing it would turn the
  device node into a regular file.
* Every failure is one line and exit code 2 (:class:`OutputError`), never a traceback.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
from typing import Iterable

import click

from ..exceptions import OutputError

#: how long to wait for a reader to open a FIFO given as ``--output`` before giving up
FIFO_WAIT_S = 10.0

_REASONS = {errno.ENOENT: "no such directory", errno.ENOTDIR: "a parent is not a directory",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOSPC: "no space left on device",
            errno.EROFS: "read-only file system", errno.EDQUOT: "disk quota exceeded", errno.EISDIR: "is a directory",
            errno.ENAMETOOLONG: "file name too long", errno.ENXIO: "no process is reading it"}


def _reason(err: OSError) -> str:
    return _REASONS.get(err.errno or 0) or (err.strerror or str(err)).lower()


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def write_report(text: str | bytes, output: str | None, inputs: Iterable[str] = ()) -> None:
    """Write ``text`` (or an image's bytes) to standard output (``output`` None or "-") or to the file ``output``.

    Raises OutputError when ``output`` is one of ``inputs`` (the files read, by identity) or cannot be written.
    """
    if output is None or output == "-":
        try:
            click.echo(text, nl=False, color=True)  # the renderer colours only when asked: never strip it
        except BrokenPipeError:
            raise  # the reader went away (``| head``): not an error of ours
        except OSError as err:
            raise OutputError(f"cannot write the report to standard output: {_reason(err)}") from None
        return
    if "\0" in output:
        raise OutputError("cannot write the report to a file name holding a NUL character")
    target = _identity(output)
    if target is not None and any(_identity(p) == target for p in inputs if p):
        raise OutputError(f"refusing to write the report over the input {output}")
    try:
        st = os.stat(output)
    except FileNotFoundError:
        st = None  # a new file (or a dangling symlink, which the new file replaces)
    except OSError as err:
        raise OutputError(f"cannot write the report to {output}: {_reason(err)}") from None
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"cannot write the report to {output}: it is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            _write_special(output, data, stat.S_ISFIFO(st.st_mode))
        else:
            # through a symlink to a regular file, as `> output` would: the link stays, its file gets the report
            _replace_atomically(os.path.realpath(output) if st is not None else output, data, st)
    except OSError as err:
        raise OutputError(f"cannot write the report to {output}: {_reason(err)}") from None


def _write_special(path: str, data: bytes, fifo: bool) -> None:
    import fcntl  # POSIX only, and only needed here

    flags = os.O_WRONLY | os.O_NOCTTY  # no O_CREAT, no O_TRUNC: the node stays what it is
    if not fifo:
        fd = os.open(path, flags)
    else:
        # opening a FIFO blocks until a reader comes; wait a while for one, then say why nothing was written
        deadline = time.monotonic() + FIFO_WAIT_S
        while True:
            try:
                fd = os.open(path, flags | os.O_NONBLOCK)
                break
            except OSError as err:
                if err.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _replace_atomically(path: str, data: bytes, old: os.stat_result | None) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".lossdx-tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            if old is not None:  # the replaced report keeps its permissions
                os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode))
            else:  # mkstemp makes 0600; a new report gets what `> output` would give
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fh.fileno(), 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every file system lets a directory be synced
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
