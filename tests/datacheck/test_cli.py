"""``lossdx check-data``: exit codes, formats, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np


def lossdx(*args):
    return subprocess.run([sys.executable, "-m", "lossdx", *args], capture_output=True, text=True)


def test_check_data_exit_codes_and_json(tmp_path):
    p = tmp_path / "train.bin"
    a = np.random.default_rng(0).integers(0, 500, 10_000).astype(np.uint16)
    a.tofile(p)
    ok = lossdx("check-data", str(p), "--vocab-size", "500", "--no-progress")
    assert ok.returncode == 0 and "No problem found in 10,000 tokens" in ok.stdout
    a[77] = 600
    a.tofile(p)
    bad = lossdx("check-data", str(p), "--vocab-size", "500", "--format", "json")
    assert bad.returncode == 1
    rep = json.loads(bad.stdout)
    assert rep["verdict"] == "problem" and rep["findings"][0]["kind"] == "token_range"
    assert rep["findings"][0]["evidence"]["locations"] == [77]
    md = lossdx("check-data", str(p), "--vocab-size", "500", "-f", "md", "--fail-on", "never")
    assert md.returncode == 0 and "| error | token\\_range |" in md.stdout  # Markdown escapes the underscore


def test_check_data_unreadable_is_one_line_exit_2(tmp_path):
    r = lossdx("check-data", str(tmp_path / "missing.bin"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such file" in r.stderr
    (tmp_path / "x.json").write_text("[1, 2]")
    r = lossdx("check-data", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "JSONL" in r.stderr


def test_check_data_never_overwrites_the_input(tmp_path):
    p = tmp_path / "d.bin"
    np.zeros(100, np.uint16).tofile(p)
    before = p.read_bytes()
    r = lossdx("check-data", str(p), "-o", str(p))
    assert r.returncode == 2 and p.read_bytes() == before
