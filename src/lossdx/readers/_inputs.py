"""Inputs that are not a plain file on disk: standard input (``-``) and compressed logs (gzip, bzip2, xz,
and zstd through the optional ``zstd`` extra). Each is streamed into a private temporary file that the
readers then read like any other, so sniffing sees the decompressed content and every reader keeps its
file-based fast paths. The compression is told by its magic bytes, never by the file name.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import shutil
import sys
import tempfile
import zlib
from typing import BinaryIO, Iterator

from ..exceptions import CorruptLog, InputError
from .base import open_regular

STDIN = "-"
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")
_CHUNK = 1 << 20
#: A compressed log may expand this much (plus 1 GB) before it is taken for a decompression bomb.
MAX_EXPANSION = 250


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class _Inflater:
    """One incremental decompressor per stream (a file may hold several members: ``cat a.gz b.gz``), with
    every call bounded by ``max_length`` so a bomb never expands in memory."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path
        self.d = self._new()

    def _new(self):  # type: ignore[no-untyped-def]
        if self.kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.kind == "bzip2":
            return bz2.BZ2Decompressor()
        if self.kind == "xz":
            return lzma.LZMADecompressor()
        try:
            import zstandard
        except ImportError:
            raise InputError(f"{self.path} is zstd-compressed; reading it needs the zstd extra: "
                             f"pip install 'lossdx[zstd]' (or decompress it first: zstd -d {self.path})") from None
        return zstandard.ZstdDecompressor().decompressobj()

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The decompressed bytes of ``data`` (a piece of the compressed stream), in bounded pieces."""
        while data:
            d = self.d
            rest = b""
            if self.kind == "gzip":
                yield d.decompress(data, _CHUNK)
                while d.unconsumed_tail and not d.eof:  # more output waits for the same input
                    yield d.decompress(d.unconsumed_tail, _CHUNK)
                rest = d.unused_data if d.eof else b""
            elif self.kind in ("bzip2", "xz"):
                yield d.decompress(data, _CHUNK)
                while not d.eof and not d.needs_input:
                    yield d.decompress(b"", _CHUNK)
                rest = d.unused_data if d.eof else b""
            else:  # zstd's decompressobj has no output bound: small input pieces bound it (~11 MB each)
                for k in range(0, len(data), 256):
                    yield d.decompress(data[k:k + 256])
                    if d.eof:
                        rest = (getattr(d, "unused_data", b"") or b"") + data[k + 256:]
                        break
            data = b""
            if rest.strip(b"\x00"):
                self.d = self._new()  # the next member of a multi-member file (cat a.gz b.gz)
                data = rest

    @property
    def eof(self) -> bool:
        return bool(getattr(self.d, "eof", False))


def _corrupt_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, lzma.LZMAError, zlib.error, ValueError, EOFError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _copy(src: BinaryIO, dst: BinaryIO, limit: int | None, label: str, kind: str | None = None) -> str | None:
    """Copy ``src`` to ``dst``, decompressing ``kind``; return a note when the stream is cut short (a log
    compressed while still being written) or corrupt after some data: what came before is kept."""
    inflater = _Inflater(kind, label) if kind else None
    errors = _corrupt_errors()
    written = 0
    while True:
        chunk = src.read(1 << 16)
        if not chunk:
            break
        try:
            pieces = inflater.pieces(chunk) if inflater else iter((chunk,))
            for piece in pieces:
                written += len(piece)
                if limit is not None and written > limit:
                    raise InputError(f"{label} decompresses to more than {limit / 1e9:.1f} GB ({MAX_EXPANSION}x "
                                     "its size plus 1 GB): a decompression bomb? Decompress it yourself to read it")
                dst.write(piece)
        except InputError:
            raise
        except errors as err:
            if written:
                return f"the {kind} stream of {label} is corrupt after {written:,} bytes; what came before is read"
            raise CorruptLog(f"{label}: corrupt {kind} data ({str(err).splitlines()[0][:100] if str(err) else type(err).__name__})") from None
    if inflater is not None and not inflater.eof:
        if not written:
            raise CorruptLog(f"{label}: corrupt {kind} data (no complete block)")
        return f"the {kind} stream of {label} ends early (cut off); what came before is read"
    return None


def _plain_name(path: str) -> str:
    name = os.path.basename(path.rstrip("/")) or "log"
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@contextlib.contextmanager
def plain_input(path: str) -> Iterator[tuple[str, dict, list[str]]]:
    """(a path the readers can read, what to record in run.source, notes). For a plain file: itself."""
    if path != STDIN:
        if os.path.isdir(path):
            yield path, {}, []
            return
        with open_regular(path) as fh:
            kind = compression_of(fh.read(8))
        if kind is None:
            yield path, {}, []
            return
    tmpdir = tempfile.mkdtemp(prefix="lossdx-")
    try:
        notes: list[str] = []
        source: dict = {}
        if path == STDIN:
            if sys.stdin is None or sys.stdin.isatty():
                raise InputError("'-' reads the log from standard input, but nothing is piped in "
                                 "(try: cat train.log | lossdx analyze -)")
            spooled = os.path.join(tmpdir, "stdin")
            with open(spooled, "wb") as out:
                _copy(sys.stdin.buffer, out, None, "standard input")
            source["stdin"] = True
            with open(spooled, "rb") as fh:
                kind = compression_of(fh.read(8))
            if kind is None:
                yield spooled, source, notes
                return
            src_path, label = spooled, "standard input"
        else:
            src_path, label = path, path
        assert kind is not None
        plain = os.path.join(tmpdir, "plain-" + _plain_name(path if path != STDIN else "stdin"))
        size = os.path.getsize(src_path)
        with open_regular(src_path) as raw, open(plain, "wb") as out:
            note = _copy(raw, out, MAX_EXPANSION * size + (1 << 30), label, kind)
        if note:
            notes.append(note)
        source["compression"] = kind
        yield plain, source, notes
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
