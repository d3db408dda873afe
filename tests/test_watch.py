from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lossdx.testing.events import file_version_event, record, scalar_event
from lossdx.watch import Tail, Watcher

POLL = 0.2


def _loss(i: int) -> float:
    return 3.0 * math.exp(-i / 60) + 1.5 + 0.01 * math.sin(i)


# one writer per format: header (bytes written first), then the bytes of step i (NaN when bad)
def _text(i, bad):
    v = "nan" if bad else f"{_loss(i):.4f}"
    return f"iter {i}: loss {v}, time 50.00ms, mfu 1.00%\n".encode()


def _csv(i, bad):
    return f"{i},{'nan' if bad else f'{_loss(i):.4f}'},0.0003\n".encode()


def _jsonl(i, bad):
    return (json.dumps({"step": i, "loss": "NaN" if bad else round(_loss(i), 4), "lr": 3e-4}) + "\n").encode()


def _tb(i, bad):
    return record(scalar_event("train/loss", float("nan") if bad else _loss(i), i))


WRITERS = {
    "train.log": (b"", _text),
    "metrics.csv": (b"step,train_loss,lr\n", _csv),
    "metrics.jsonl": (b"", _jsonl),
    "events.out.tfevents.1.host": (record(file_version_event()), _tb),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_nan_from_a_concurrent_writer_is_caught_within_one_poll(tmp_path, name):
    header, line = WRITERS[name]
    path = tmp_path / name
    nan_step = 150
    written: dict[str, float] = {}

    def writer():
        with open(path, "wb", buffering=0) as fh:
            fh.write(header)
            for i in range(nan_step + 20):
                data = line(i, i == nan_step)
                if i % 7 == 3:  # torn writes: half a line / record now, the rest a moment later
                    fh.write(data[: len(data) // 2])
                    time.sleep(0.01)
                    fh.write(data[len(data) // 2:])
                else:
                    fh.write(data)
                if i == nan_step:
                    written["nan"] = time.monotonic()
                time.sleep(0.004)

    t = threading.Thread(target=writer)
    w = Watcher(str(path))
    t.start()
    caught = None
    starts: list[float] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and caught is None:
            starts.append(time.monotonic())
            for f in w.poll():
                if f.kind == "nan":
                    caught = (f, starts[-1])
            time.sleep(POLL)
    finally:
        t.join()
    assert caught is not None, "NaN not reported"
    f, poll_start = caught
    assert f.start_step == nan_step and f.severity == "error"
    # reported by the first poll that started after the NaN was written (so within one poll interval),
    # however slow a loaded machine makes each poll
    missed = [s for s in starts if written["nan"] < s < poll_start]
    assert not missed, f"{len(missed)} poll(s) after the write did not report it"
    assert poll_start - written["nan"] <= POLL + 0.5
    assert w.steps_seen >= nan_step


def test_tail_reads_only_new_bytes_and_waits_for_a_torn_line(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(b"".join(_text(i, False) for i in range(10)) + b"iter 10: loss 2.")
    t = Tail(str(path))
    first = t.poll()
    assert first["train/loss"].steps.tolist() == list(range(10))
    offset = t.offset
    assert t.poll() == {} and t.offset == offset  # nothing new: nothing read
    with open(path, "ab") as fh:
        fh.write(b"5000, time 50.00ms, mfu 1.00%\n")
    again = t.poll()
    assert again["train/loss"].steps.tolist() == [10] and again["train/loss"].values[0] == pytest.approx(2.5)


def test_truncated_file_is_read_again_from_the_start(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(_jsonl(i, False) for i in range(50)))
    t = Tail(str(path))
    assert len(t.poll()["train/loss"]) == 50
    path.write_bytes(b"".join(_jsonl(i, False) for i in range(5)))
    assert len(t.poll()["train/loss"]) == 5 and t.notes


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("Content-Length", 0))
        _Hook.received.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_cli_watch_posts_webhook_runs_command_and_exits_on_problem(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    log = tmp_path / "train.log"
    log.write_bytes(b"".join(_text(i, False) for i in range(40)))
    marker = tmp_path / "alert.json"
    proc = subprocess.Popen([sys.executable, "-m", "lossdx", "watch", str(log), "--interval", "0.1", "--timeout",
                             "30", "--webhook", url, "--on-problem", f"cat > '{marker}'", "--exit-on", "problem",
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        with open(log, "ab") as fh:
            fh.write(_text(40, True))
        out, err = proc.communicate(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[-1]["kind"] == "nan" and lines[-1]["start_step"] == 40
    assert _Hook.received and _Hook.received[-1]["kind"] == "nan"
    assert json.loads(marker.read_text())["start_step"] == 40


def test_cli_watch_timeout_on_a_healthy_log_exits_zero(tmp_path):
    log = tmp_path / "train.log"
    log.write_bytes(b"".join(_text(i, False) for i in range(100)))
    res = subprocess.run([sys.executable, "-m", "lossdx", "watch", str(log), "--interval", "0.1", "--timeout", "0.5"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr


def test_idle_watch_uses_almost_no_cpu(tmp_path):
    import resource

    log = tmp_path / "train.log"
    log.write_bytes(b"".join(_text(i, False) for i in range(100)))
    w = Watcher(str(log))
    w.poll()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        assert w.poll() == []
        time.sleep(0.05)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.1, f"{cpu:.3f} s of CPU in 1 s of idle polling every 50 ms"


def test_trainer_state_rewritten_whole_gives_only_new_steps(tmp_path):
    path = tmp_path / "trainer_state.json"

    def save(n, nan_at=None):
        rows = [{"step": i, "loss": "NaN" if i == nan_at else round(_loss(i), 4), "learning_rate": 3e-4}
                for i in range(1, n + 1)]
        tmp = tmp_path / "tmp.json"
        tmp.write_text(json.dumps({"log_history": rows, "global_step": n}).replace('"NaN"', "NaN"))
        tmp.replace(path)  # HF writes a new file each save

    save(50)
    w = Watcher(str(path))
    assert w.poll() == [] and w.steps_seen == 50
    save(80, nan_at=70)
    found = w.poll()
    assert w.steps_seen == 80
    assert any(f.kind == "nan" and f.start_step == 70 for f in found)


def test_csv_without_a_step_column_keeps_counting_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("loss,lr\n" + "".join(f"{_loss(i):.4f},0.001\n" for i in range(30)))
    t = Tail(str(path))
    assert t.poll()["train/loss"].steps.tolist() == list(range(30))
    with open(path, "a") as fh:
        fh.write("".join(f"{_loss(i):.4f},0.001\n" for i in range(30, 35)))
    assert t.poll()["train/loss"].steps.tolist() == list(range(30, 35))


def test_a_restarted_log_is_watched_as_a_new_run(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(b"".join(_text(i, False) for i in range(60)))
    w = Watcher(str(path))
    w.poll()
    path.write_bytes(b"".join(_text(i, i == 20) for i in range(30)))  # a new run from step 0
    found = w.poll()
    assert any(f.kind == "nan" and f.start_step == 20 for f in found)
    assert w.tail.notes


def test_a_megatron_nan_iteration_in_a_later_poll_is_a_nan(tmp_path):
    """Under bf16 Megatron prints no loss for a NaN iteration: the line tells it only against the earlier lines,
    which an earlier poll read."""
    line = ("iteration {i}/ 8000 | consumed samples: {s} | elapsed time per iteration (ms): 7613.1 | learning rate: "
            "6.680E-06 | global batch size: 64 | {loss}loss scale: 1.0 | grad norm: 0.752 | "
            "number of skipped iterations: 0 | number of nan iterations: 0 |\n")
    path = tmp_path / "train.log"
    path.write_text("".join(line.format(i=i, s=64 * i, loss="lm loss: 7.3E-01 | ") for i in range(1, 6)))
    t = Tail(str(path))
    assert t.poll()["train/loss"].steps.tolist() == [1, 2, 3, 4, 5]
    with open(path, "a") as fh:
        fh.write(line.format(i=6, s=384, loss=""))
    got = t.poll()["train/loss"]
    assert got.steps.tolist() == [6] and math.isnan(got.values[0])
