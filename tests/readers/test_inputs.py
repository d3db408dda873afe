"""Standard input and compressed logs: the same runs as the plain file, told by content, cleaned up after."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import tempfile

import pytest

from lossdx.exceptions import CorruptLog, InputError
from lossdx.readers import _inputs, read, read_runs

LOG = "".join(f"iter {i}: loss {3 * 0.98 ** i + 1:.4f}, time 10.00ms, mfu 1.00%\n" for i in range(200)).encode()


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.mark.parametrize("name,compress", [
    ("train.log.gz", gzip.compress), ("train.log.bz2", bz2.compress), ("train.log.xz", lzma.compress),
    ("train.log.zst", _zstd), ("no_suffix.txt", gzip.compress),
])
def test_compressed_logs_read_as_the_plain_file(tmp_path, private_tmp, name, compress):
    plain = tmp_path / "train.log"
    plain.write_bytes(LOG)
    p = tmp_path / name
    p.write_bytes(compress(LOG))
    run, ref = read(str(p)), read(str(plain))
    assert run.source["path"] == str(p) and run.source["format"] == "nanogpt" and run.source["compression"]
    assert run.series["train/loss"].points() == ref.series["train/loss"].points()
    assert os.listdir(private_tmp) == []  # the decompressed copy is gone


def test_compressed_csv_keeps_its_name_for_name_based_rules(tmp_path, private_tmp):
    p = tmp_path / "train_loss.csv.gz"  # a W&B chart export: the metric is named only by the file name
    p.write_bytes(gzip.compress(b'"Step","run-a","run-b"\n0,3.0,3.1\n1,2.5,2.7\n'))
    runs = read_runs(str(p))
    assert [r.meta["run_name"] for r in runs] == ["run-a", "run-b"]
    assert runs[0].series["train/loss"].points() == [(0, 3.0), (1, 2.5)]


def test_zstd_without_the_extra_is_a_clear_error(tmp_path, monkeypatch):
    p = tmp_path / "train.log.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails as when it is not installed
    with pytest.raises(InputError, match=r"lossdx\[zstd\]"):
        read(str(p))


def test_corrupt_and_cut_compressed_logs(tmp_path, private_tmp):
    bad = tmp_path / "bad.log.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 50)
    with pytest.raises(CorruptLog, match="corrupt gzip"):
        read(str(bad))
    cut = tmp_path / "cut.log.gz"
    whole = gzip.compress(LOG * 50)
    cut.write_bytes(whole[: len(whole) // 2])  # a log gzipped while still being written
    run = read(str(cut))
    assert len(run.series["train/loss"]) >= 100
    assert any("ends early" in n for n in run.meta["notes"])
    assert os.listdir(private_tmp) == []


def test_decompression_bomb_is_refused(tmp_path, monkeypatch, private_tmp):
    p = tmp_path / "bomb.log.gz"
    p.write_bytes(gzip.compress(LOG + b"\n" * 5_000_000))
    monkeypatch.setattr(_inputs, "MAX_EXPANSION", 0)
    monkeypatch.setattr(_inputs, "_CHUNK", 1 << 16)
    real = _inputs._copy
    monkeypatch.setattr(_inputs, "_copy", lambda src, dst, limit, *a: real(src, dst, None if limit is None else
                                                                           limit - (1 << 30) + 100_000, *a))
    with pytest.raises(InputError, match="decompression bomb"):
        read(str(p))
    assert os.listdir(private_tmp) == []


def _cli_stdin(data: bytes, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lossdx", "analyze", "-", "--format", "json", *args],
                          input=data, capture_output=True, timeout=60)


@pytest.mark.parametrize("data", [LOG, gzip.compress(LOG)], ids=["plain", "gzip"])
def test_dash_reads_standard_input(data):
    proc = _cli_stdin(data)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["source"]["format"] == "nanogpt"
    assert b"Traceback" not in proc.stderr


def test_empty_standard_input_is_one_line_exit_2():
    proc = _cli_stdin(b"")
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().count("\n") == 0 and "standard input" in proc.stderr.decode()


def test_multi_member_gzip_reads_every_member(tmp_path, private_tmp):
    half = len(LOG) // 2
    cut = LOG.rfind(b"\n", 0, half) + 1
    p = tmp_path / "train.log.gz"
    p.write_bytes(gzip.compress(LOG[:cut]) + gzip.compress(LOG[cut:]))  # cat a.gz b.gz
    assert len(read(str(p)).series["train/loss"]) == 200
