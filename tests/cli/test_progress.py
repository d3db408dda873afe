from __future__ import annotations

import io
import sys

import pytest

from lossdx.cli._progress import _offset_of, read_progress


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fdinfo is Linux's")
def test_offset_of_an_open_file_is_how_far_it_was_read(tmp_path):
    p = tmp_path / "big.log"
    p.write_bytes(b"x" * 10_000)
    assert _offset_of(str(p)) is None  # not open
    with open(p, "rb") as fh:
        fh.read(4096)
        assert _offset_of(str(p)) == 4096


def test_no_progress_line_when_not_a_terminal(tmp_path, monkeypatch):
    p = tmp_path / "x.log"
    p.write_text("iter 0: loss 1.0\n")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with read_progress(str(p), delay=0.0):
        pass
    assert err.getvalue() == ""
