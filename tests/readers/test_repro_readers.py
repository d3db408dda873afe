"""Regression tests for the reader defects of issue 9 (reproducers R01, R02, R04, R11, R16, R17, R21).

Each runs the real CLI in a fresh process where a hang or a crash is the defect, with the limits the
issue sets: 5 s and 300 MB per input, exit 0/1 with a report or exit 2 with one line, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import threading
import time

import pytest

from lossdx.readers import read, text
from lossdx.testing.events import file_version_event, record, scalar_event

LIMIT_S = 5.0
LIMIT_MB = 300


# The child's own peak RSS. Linux keeps ru_maxrss across fork+exec, so a child of a big test process starts with
# its parent's high-water mark: reset it (clear_refs 5) first, then read VmHWM at exit.
_RSS_PROBE = ("import atexit, sys\n"
              "try:\n"
              "    open('/proc/self/clear_refs', 'w').write('5')\n"
              "except OSError:\n"
              "    pass\n"
              "def _peak():\n"
              "    try:\n"
              "        kb = next(int(ln.split()[1]) for ln in open('/proc/self/status') if ln.startswith('VmHWM'))\n"
              "    except (OSError, StopIteration):\n"
              "        import resource\n"
              "        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "    sys.stderr.write('\\nLOSSDX_RSS_KB=%d\\n' % kb)\n"
              "atexit.register(_peak)\n"
              "from lossdx.cli import run\n"
              "sys.argv = ['lossdx', *sys.argv[1:]]\n"
              "run()\n")


def _cli(*args: str, timeout: float = LIMIT_S) -> tuple[int, str, str, float, float]:
    """(exit code, stdout, stderr, seconds, peak RSS MB) of ``lossdx analyze ARGS --format json``; the peak RSS is
    the child's own (RUSAGE_CHILDREN would be the largest of every child the test process ever waited for)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _RSS_PROBE, "analyze", *args, "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"lossdx analyze {' '.join(args)} still running after {timeout} s")
    seconds = time.perf_counter() - t0
    text = err.decode()
    rss_mb = 0.0
    if "LOSSDX_RSS_KB=" in text:
        text, _, tail = text.rpartition("LOSSDX_RSS_KB=")
        rss_mb = int(tail.strip()) / 1024
        text = text.rstrip("\n") + ("\n" if text.strip() else "")
    return proc.returncode, out.decode(), text, seconds, rss_mb


def _assert_clean(rc: int, out: str, err: str) -> None:
    assert rc in (0, 1, 2), (rc, err[-500:])
    assert "Traceback" not in err and "internal error" not in err, err[-500:]
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, err
    else:
        json.loads(out)


def _log(n: int = 100) -> str:
    return "".join(f"iter {i}: loss {3 * 0.98 ** i + 1:.4f}, time 10.00ms, mfu 1.00%\n" for i in range(n))


# --- R01: a long digit run in the first 64 KB made the fairseq sniff quadratic (a 60 KB line: minutes)
def test_r01_digit_run_in_head_is_linear(tmp_path):
    p = tmp_path / "digits.log"
    p.write_text("7" * 60_000 + "\n" + _log())
    rc, out, err, seconds, _ = _cli(str(p))
    _assert_clean(rc, out, err)
    assert rc in (0, 1) and seconds < LIMIT_S


# --- R02: a long token on a record line made every key/value regex quadratic
def test_r02_long_token_on_record_line_is_linear(tmp_path):
    p = tmp_path / "token.log"
    p.write_text("step 1 loss: 2.0 " + "a" * 40_000 + "\nstep 2 loss: 1.0\n")
    rc, out, err, seconds, _ = _cli(str(p))
    _assert_clean(rc, out, err)
    assert seconds < LIMIT_S


_FILLS = ["a", "7", "a ", " ", "a1", "| ", "1 ", "1.", "e1", "a=", "a:", "(", "'", "-", "1:", "\t", "/", "1/", "a|"]
_TRIGGERS = ["", "epoch 1", "loss", "step 1", "iter 1:", "iteration 1/ 2 |", "Epoch 1/", "num_updates=",
             "OVERFLOW! Attempted loss scale: 1", "| a", "{'a':", "s:1 ", "step:1/2 ", "loss: 1 ", "epoch 1 |",
             "1 updates", "validation loss at iteration 1 |", "a: 1 |", "4s - loss: 1 -", "Epoch 1, batch 1/"]


def _text_patterns() -> list[tuple[str, re.Pattern]]:
    found = [(n, v) for n, v in vars(text).items() if isinstance(v, re.Pattern)]
    return found + [(f"FORMATS[{f.name}]", f.sniff_re) for f in text.FORMATS]


def _seconds(pattern: re.Pattern, line: str) -> float:
    best = math.inf
    for _ in range(2):  # the better of two: a busy machine may stall one
        t0 = time.perf_counter()
        for _m in pattern.finditer(line):
            pass
        best = min(best, time.perf_counter() - t0)
        if best < 0.05:
            break
    return best


@pytest.mark.parametrize("name,pattern", _text_patterns(), ids=lambda x: x if isinstance(x, str) else "")
def test_r02_every_text_regex_is_linear_on_hostile_lines(name, pattern):
    n = 16 * 1024  # the longest line a reader passes on (base.MAX_LINE_BYTES)
    lines = [trig + (fill * n)[:n] + "x" for trig in _TRIGGERS for fill in _FILLS]
    lines += [(trig + " ") * (n // (len(trig) + 1)) for trig in _TRIGGERS]
    # a linear regex takes well under a millisecond on a 16 KB line; a quadratic one 0.1 s to minutes
    slow = [(line[:40], s) for line in lines if (s := _seconds(pattern, line)) > 0.05]
    assert not slow, (name, slow[:3])


def test_r02_over_long_lines_are_cut_not_slurped(tmp_path):
    p = tmp_path / "long.log"
    p.write_text(_log(5) + "x" * 3_000_000 + "\n" + _log(5).replace("iter 0:", "iter 100:"))
    run = read(str(p))
    assert len(run.series["train/loss"]) == 6  # 0..4 and the line after the 3 MB one


# --- R04: a line nested ~1000 deep raised RecursionError -> "internal error", exit 3
@pytest.mark.parametrize("name,body", [
    ("deep.log", '{"a":' + "[" * 1000 + "]" * 1000 + "}\n"),
    ("deep.jsonl", '{"step": 0, "loss": 1.0}\n{"a":' + "[" * 5000 + "]" * 5000 + '}\n{"step": 1, "loss": 0.5}\n'),
    ("trainer_state.json", '{"log_history": [{"loss": 1.0, "step": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}]}"),
])
def test_r04_deep_json_is_an_input_error_or_skipped(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(body)
    rc, out, err, _s, _m = _cli(str(p))
    _assert_clean(rc, out, err)


# --- R11: FIFOs blocked forever; a 2 GB sparse file was slurped whole (6 GB RSS)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_r11_fifo_input_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    rc, out, err, seconds, _ = _cli(str(fifo))
    assert rc == 2 and "not a regular file" in err and seconds < LIMIT_S
    tb = tmp_path / "tb"
    tb.mkdir()
    os.mkfifo(tb / "events.out.tfevents.1.h")
    rc, out, err, seconds, _ = _cli(str(tb))
    _assert_clean(rc, out, err)
    assert rc == 2 and seconds < LIMIT_S


def test_r11_sparse_2gb_file_costs_what_its_data_costs(tmp_path):
    p = tmp_path / "sparse.log"
    p.write_text(_log(100))
    os.truncate(p, 2 << 30)
    rc, out, err, seconds, rss_mb = _cli(str(p))
    _assert_clean(rc, out, err)
    assert rc in (0, 1), err  # the log before the zero-filled tail is read
    assert seconds < LIMIT_S and rss_mb < LIMIT_MB, (seconds, rss_mb)
    assert read(str(p)).series["train/loss"].steps.tolist() == list(range(100))


# --- R16: a legal negative step made the whole event file unreadable
def test_r16_negative_tensorboard_step_is_kept(tmp_path):
    p = tmp_path / "events.out.tfevents.1.h"
    recs = [record(file_version_event())]
    recs += [record(scalar_event("train/loss", 3 * 0.98 ** i + 1, -1 if i == 20 else i, float(i))) for i in range(100)]
    p.write_bytes(b"".join(recs))
    run = read(str(p))
    steps = run.series["train/loss"].steps.tolist()
    assert -1 in steps and len(steps) == 100
    # the slow path (a record the fast pattern does not take) reads the same signed step
    recs.append(record(scalar_event("other", 1.0, -5, tensor=True, plugin="scalars")))
    p.write_bytes(b"".join(recs))
    assert read(str(p)).series["other"].steps.tolist() == [-5]


# --- R17: a record corrupted on disk (stale CRCs) was read as a value x2^32
def _corrupt_file(path, flip_at: int = 151, where: str = "data") -> None:
    data = bytearray(b"".join([record(file_version_event())] + [
        record(scalar_event("train/loss", 3.0 * 0.99 ** i + 1.0, i, float(i))) for i in range(300)]))
    pos = 0
    for _ in range(flip_at):
        (ln,) = struct.unpack_from("<Q", data, pos)
        pos += 16 + ln
    (ln,) = struct.unpack_from("<Q", data, pos)
    if where == "data":
        data[pos + 12 + ln - 1] ^= 0x70  # the float's top byte; CRCs left stale
    else:
        data[pos + 1] ^= 0x01  # the length itself: nothing after it can be framed
    path.write_bytes(bytes(data))


def test_r17_record_with_bad_crc_is_skipped_with_a_note(tmp_path):
    p = tmp_path / "events.out.tfevents.1.h"
    _corrupt_file(p)
    run = read(str(p))
    loss = run.series["train/loss"]
    assert len(loss) == 299 and 150 not in loss.steps.tolist()
    assert float(loss.values.max()) <= 4.0
    assert any("corrupt" in n and "CRC" in n for n in run.meta["notes"])
    rc, out, err, _s, _m = _cli(str(p))
    assert rc == 0, out  # healthy: no "bad data batch" made of a flipped bit


def test_r17_bad_length_crc_ends_the_read_with_a_note(tmp_path):
    p = tmp_path / "events.out.tfevents.1.h"
    _corrupt_file(p, where="length")
    run = read(str(p))
    assert run.series["train/loss"].steps.tolist() == list(range(150))
    assert any("corrupt" in n for n in run.meta["notes"])


# --- R21: the C accelerator mmapped the CSV: a rewrite while reading killed the process with SIGBUS
def test_r21_csv_rewritten_while_read_never_kills_the_process(tmp_path):
    p = tmp_path / "metrics.csv"
    body = ("step,train_loss,grad_norm,lr\n" + "".join(
        f"{i},{3 * 0.9999 ** i + 1:.6f},1.0,0.0003\n" for i in range(60_000))).encode()
    p.write_bytes(body)
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            with open(p, "wb") as fh:  # truncate, then write back in pieces: what loggers do on save
                for k in range(0, len(body), 1 << 16):
                    fh.write(body[k:k + (1 << 16)])
                    fh.flush()
            time.sleep(0.02)

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    try:
        codes = []
        for _ in range(6):
            rc, out, err, _s, _m = _cli(str(p), "--no-auto-config", timeout=20)
            _assert_clean(rc, out, err)
            codes.append(rc)
    finally:
        stop.set()
        writer.join()
    assert all(c in (0, 1, 2) for c in codes)
    from lossdx.readers import delimited

    with open(delimited.__file__, encoding="utf-8") as fh:
        assert "import mmap" not in fh.read()
