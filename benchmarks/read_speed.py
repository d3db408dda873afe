"""End-to-end speed and memory of ``lossdx analyze FILE --format json`` for every format, side by side
with the fastest Python reader of that format.

    $ python benchmarks/read_speed.py [--steps 1000000,5000000] [--repeats 3] [--formats csv,jsonl,tb,text]

For each format and size it generates one run (train loss, grad norm, LR, tokens, step time), then runs

* lossdx end to end in a fresh process: interpreter start, imports, read, analysis, JSON report;
* lossdx's read alone (``lossdx.read``, imports not timed), to show what analysis adds;
* the competitors, each in a fresh process of benchmarks/.venv-bench with imports not timed:
  CSV: ``pyarrow.csv.read_csv``, ``polars.read_csv``; JSONL: ``polars.read_ndjson``,
  ``pyarrow.json.read_json``; text (nanoGPT stdout): one ``re.finditer`` pass, ``numpy.fromregex``;
  TensorBoard: ``tbparse.SummaryReader``, tensorboard's ``EventAccumulator``.

Time ratio = lossdx end to end / the fastest competitor's read. Peak RSS is each process's VmHWM.
Best of ``--repeats`` wall times (competitors slower than 20 s run once). CPU s = user + sys of all threads
(lossdx: of its whole process; competitors: of the read call), the least of the repeats: on a loaded machine
it moves far less than wall time, and it shows what the multi-threaded readers spend in all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _venv import bench_python, run_timed  # noqa: E402

DATA = os.path.join(HERE, "_data")
SRC = os.path.join(HERE, "..", "src")
FORMATS = ("csv", "jsonl", "tb", "text")
EXT = {"csv": "csv", "jsonl": "jsonl", "tb": "tfevents", "text": "log"}


def _rows(steps: int):
    rnd = random.Random(0)
    for i in range(steps):
        loss = 2.0 + 8.0 * math.exp(-i / (steps / 20)) + rnd.gauss(0, 0.05)
        yield i, loss, 0.5 + rnd.random(), 3e-4 * min(1, i / 2000), (i + 1) * 8192, 40 + rnd.random()


def make_data(steps: int, formats: tuple[str, ...]) -> dict[str, str]:
    os.makedirs(DATA, exist_ok=True)
    paths = {k: os.path.join(DATA, f"{k}_{steps}.{EXT[k]}") for k in formats}
    for kind, path in paths.items():
        if os.path.exists(path):
            continue
        tmp = path + ".part"
        if kind == "csv":
            with open(tmp, "w") as fh:
                fh.write("step,train_loss,grad_norm,lr,tokens,dt_ms\n")
                fh.writelines(f"{s},{lo:.6f},{g:.6f},{lr:.6e},{t},{dt:.3f}\n" for s, lo, g, lr, t, dt in _rows(steps))
        elif kind == "jsonl":
            with open(tmp, "w") as fh:
                fh.writelines(json.dumps({"step": s, "loss": lo, "grad_norm": g, "lr": lr, "tokens": t, "dt_ms": dt})
                              + "\n" for s, lo, g, lr, t, dt in _rows(steps))
        elif kind == "text":  # nanoGPT's train.py stdout, with its eval line every 2000 iterations
            with open(tmp, "w") as fh:
                fh.write("number of parameters: 10.65M\n")
                for s, lo, _g, _lr, _t, dt in _rows(steps):
                    if s % 2000 == 0:
                        fh.write(f"step {s}: train loss {lo:.4f}, val loss {lo + 0.05:.4f}\n")
                    fh.write(f"iter {s}: loss {lo:.4f}, time {dt:.2f}ms, mfu {-100.0 if s < 5 else 12.5:.2f}%\n")
        else:
            sys.path.insert(0, SRC)
            from lossdx.testing.events import record, scalar_event

            with open(tmp, "wb") as fh:
                fh.write(record(b"\x1a\x0dbrain.Event:2"))
                for s, lo, g, *_ in _rows(steps):
                    fh.write(record(scalar_event("train/loss", lo, s, 1.7e9 + s * 0.04)))
        os.replace(tmp, path)
    return paths


_MEASURE = """
import json, sys, time
{setup}
t0, c0 = time.perf_counter(), time.process_time()
{body}
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]  # peak RSS of this process
print(json.dumps({{"seconds": dt, "cpu_s": cpu, "rss_mb": int(hwm) / 1024, "n": n}}))
"""

_NANO_RE = r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms, mfu (-?[\d.]+)%$"
COMPETITORS = {
    "csv": [("pyarrow.csv.read_csv", "import pyarrow.csv as pc", "n = pc.read_csv({p!r}).num_rows"),
            ("polars.read_csv", "import polars as pl", "n = pl.read_csv({p!r}).height")],
    "jsonl": [("polars.read_ndjson", "import polars as pl", "n = pl.read_ndjson({p!r}).height"),
              ("pyarrow.json.read_json", "import pyarrow.json as pj", "n = pj.read_json({p!r}).num_rows")],
    "text": [("re.finditer, one pass", "import re",
              f"rx = re.compile(r'{_NANO_RE}', re.M)\n"
              "text = open({p!r}).read()\n"
              "cols = [[], [], [], []]\n"
              "for m in rx.finditer(text):\n"
              "    s, lo, dt, mfu = m.groups(); cols[0].append(int(s)); cols[1].append(float(lo))\n"
              "    cols[2].append(float(dt)); cols[3].append(float(mfu))\n"
              "n = len(cols[0])"),
             ("numpy.fromregex", "import numpy as np",
              f"a = np.fromregex({{p!r}}, r'{_NANO_RE}'.replace('^', '').replace('$', '\\n'),"
              " [('s', 'i8'), ('loss', 'f8'), ('dt', 'f8'), ('mfu', 'f8')])\n"
              "n = len(a)")],
    "tb": [("tbparse.SummaryReader", "from tbparse import SummaryReader", "n = len(SummaryReader({p!r}).scalars)"),
           ("tensorboard EventAccumulator",
            "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator",
            "ea = EventAccumulator({p!r}, size_guidance={{'scalars': 0}}); ea.Reload()\n"
            "n = len(ea.Scalars('train/loss'))")],
}
_READ_ONLY = ("from lossdx.readers import read", "n = len(read({p!r}).series['train/loss'])")


def _best(results: list[dict]) -> dict:
    best = dict(min(results, key=lambda r: r["seconds"]))
    best["rss_mb"] = max(r["rss_mb"] for r in results)
    best["cpu_s"] = min(r["cpu_s"] for r in results)
    return best


def measure(py: str, setup: str, body: str, p: str, repeats: int, env: dict | None = None) -> dict:
    code = _MEASURE.format(setup=setup, body=body.format(p=p))
    out = []
    for _ in range(repeats):
        if env is None:
            out.append(run_timed(py, code))
        else:
            res = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
            out.append(json.loads(res.strip().splitlines()[-1]))
        if out[-1]["seconds"] > 20:
            break
    return _best(out)


def end_to_end(p: str, repeats: int, env: dict) -> dict:
    """``lossdx analyze p --format json`` in a fresh process: wall time, and its peak RSS by GNU time."""
    out = []
    timing = os.path.join(DATA, ".time")
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", timing, sys.executable, "-m", "lossdx", "analyze",
                               p, "--format", "json", "--no-auto-config"], capture_output=True, env=env)
        seconds = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            raise SystemExit(f"lossdx failed on {p}: {proc.stderr.decode()[-500:]}")
        json.loads(proc.stdout)
        with open(timing) as fh:
            rss_kb, user, system = fh.read().split()[-3:]
        out.append({"seconds": seconds, "rss_mb": int(rss_kb) / 1024, "cpu_s": float(user) + float(system)})
        if seconds > 20:
            break
    return _best(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="1000000,5000000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args()
    formats = tuple(args.formats.split(","))
    bench = bench_python(["pyarrow", "polars", "tbparse", "tensorboard"])
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed lossdx has its bytecode compiled: do not time the compiler
    rows = []
    for steps in (int(s) for s in args.steps.split(",")):
        paths = make_data(steps, formats)
        for kind in formats:
            p = paths[kind]
            ours = end_to_end(p, args.repeats, env)
            read_only = measure(sys.executable, *_READ_ONLY, p, args.repeats, env)
            assert read_only["n"] == steps, (kind, read_only["n"])
            theirs = []
            for name, setup, body in COMPETITORS[kind]:
                try:
                    r = measure(bench, setup, body, p, args.repeats if kind != "tb" else 1)
                except subprocess.CalledProcessError as err:
                    print(f"  {name} failed: {err.stderr.strip().splitlines()[-1][:120]}", file=sys.stderr)
                    continue
                theirs.append((name, r))
            best_name, best = min(theirs, key=lambda t: t[1]["seconds"])
            row = {"format": kind, "steps": steps, "mb": round(os.path.getsize(p) / 1e6),
                   "lossdx_s": round(ours["seconds"], 2), "lossdx_cpu_s": round(ours["cpu_s"], 2),
                   "lossdx_rss_mb": round(ours["rss_mb"]),
                   "lossdx_read_s": round(read_only["seconds"], 2),
                   "competitor": best_name, "competitor_s": round(best["seconds"], 2),
                   "competitor_cpu_s": round(best["cpu_s"], 2),
                   "competitor_rss_mb": round(best["rss_mb"]),
                   "others": {n: round(r["seconds"], 2) for n, r in theirs if n != best_name},
                   "ratio": round(ours["seconds"] / best["seconds"], 2),
                   "cpu_ratio": round(ours["cpu_s"] / max(best["cpu_s"], 1e-9), 2)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{'format':<7}{'steps':>10}{'MB':>6} {'lossdx e2e s':>13}{'CPU s':>7}{'RSS MB':>8}{'read s':>8}  "
          f"{'fastest reader':<30}{'its s':>7}{'CPU s':>7}{'RSS MB':>8}{'ratio':>7}{'CPU ratio':>10}")
    for r in rows:
        print(f"{r['format']:<7}{r['steps']:>10,}{r['mb']:>6} {r['lossdx_s']:>13.2f}{r['lossdx_cpu_s']:>7.2f}"
              f"{r['lossdx_rss_mb']:>8}{r['lossdx_read_s']:>8.2f}  {r['competitor']:<30}{r['competitor_s']:>7.2f}"
              f"{r['competitor_cpu_s']:>7.2f}{r['competitor_rss_mb']:>8}{r['ratio']:>6.2f}x{r['cpu_ratio']:>9.2f}x")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
