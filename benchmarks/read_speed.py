"""Reading speed and memory of lossdx's readers against the standard tools.

    $ python benchmarks/read_speed.py [--steps 1000000]

Targets (issue #2): a 1M-step CSV/JSONL read costs <= 1.5x pandas (``read_csv`` for the CSV,
``read_json(lines=True)`` for the JSONL) and <= 200 MB RSS; a 1M-scalar TensorBoard file reads
>= 10x faster than tbparse. Competitors run in benchmarks/.venv-bench; lossdx runs in this
interpreter, each measurement in a fresh process (best of 3 wall times; peak RSS of that process).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _venv import bench_python, run_timed  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data")


def make_data(steps: int) -> dict[str, str]:
    os.makedirs(DATA, exist_ok=True)
    paths = {k: os.path.join(DATA, f"{k}_{steps}.{ext}") for k, ext in
             (("csv", "csv"), ("jsonl", "jsonl"), ("tb", "tfevents"))}
    rnd = random.Random(0)
    rows = []
    if not all(os.path.exists(p) for p in paths.values()):
        for i in range(steps):
            loss = 2.0 + 8.0 * math.exp(-i / (steps / 20)) + rnd.gauss(0, 0.05)
            rows.append((i, loss, 0.5 + rnd.random(), 3e-4 * min(1, i / 2000), (i + 1) * 8192, 40 + rnd.random()))
    if not os.path.exists(paths["csv"]):
        with open(paths["csv"], "w") as fh:
            fh.write("step,train_loss,grad_norm,lr,tokens,dt_ms\n")
            fh.writelines(f"{s},{lo:.6f},{g:.6f},{lr:.6e},{t},{dt:.3f}\n" for s, lo, g, lr, t, dt in rows)
    if not os.path.exists(paths["jsonl"]):
        with open(paths["jsonl"], "w") as fh:
            fh.writelines(json.dumps({"step": s, "loss": lo, "grad_norm": g, "lr": lr, "tokens": t, "dt_ms": dt}) + "\n"
                          for s, lo, g, lr, t, dt in rows)
    if not os.path.exists(paths["tb"]):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
        from lossdx.testing.events import record, scalar_event

        with open(paths["tb"], "wb") as fh:
            fh.write(record(b"\x1a\x0dbrain.Event:2"))
            for s, lo, *_ in rows:
                fh.write(record(scalar_event("train/loss", lo, s, 1.7e9 + s * 0.04)))
    return paths


_MEASURE = """
import json, sys, time
{setup}
t0 = time.perf_counter()
{body}
dt = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]  # peak RSS of this process
print(json.dumps({{"seconds": dt, "rss_mb": int(hwm) / 1024, "n": n}}))
"""

# (setup, timed body): imports are not timed, for us or for them
_OURS = ("from lossdx.readers import read", "n = len(read({p!r}).series['train/loss'])")
LOSSDX = {"csv": _OURS, "jsonl": _OURS, "tb": _OURS}
COMPETITOR = {
    "csv": ("pandas.read_csv", ("import pandas as pd", "n = len(pd.read_csv({p!r}))")),
    "jsonl": ("pandas.read_json(lines=True)", ("import pandas as pd", "n = len(pd.read_json({p!r}, lines=True))")),
    "tb": ("tbparse.SummaryReader", ("from tbparse import SummaryReader", "n = len(SummaryReader({p!r}).scalars)")),
}
BASELINE = ("", "n = 0")


def best_of(py: str, code: tuple[str, str], repeats: int, p: str = "") -> dict:
    setup, body = code
    results = [run_timed(py, _MEASURE.format(setup=setup, body=body.format(p=p))) for _ in range(repeats)]
    best = min(results, key=lambda r: r["seconds"])
    best["rss_mb"] = max(r["rss_mb"] for r in results)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    paths = make_data(args.steps)
    bench = bench_python(["pandas", "tbparse", "tensorboard"])
    me = sys.executable
    base = best_of(me, BASELINE, 1)
    print(f"{args.steps:,} steps; interpreter baseline RSS {base['rss_mb']:.0f} MB")
    print(f"{'input':<6} {'lossdx s':>9} {'RSS MB':>7} {'competitor':<30} {'its s':>8} {'ratio':>7}")
    summary = {}
    for kind in ("csv", "jsonl", "tb"):
        p = paths[kind]
        ours = best_of(me, LOSSDX[kind], args.repeats, p)
        name, code = COMPETITOR[kind]
        theirs = best_of(bench, code, 1 if kind == "tb" else args.repeats, p)
        ratio = ours["seconds"] / theirs["seconds"]
        summary[kind] = {"lossdx_s": round(ours["seconds"], 3), "lossdx_rss_mb": round(ours["rss_mb"], 1),
                         "competitor": name, "competitor_s": round(theirs["seconds"], 3), "ratio": round(ratio, 3)}
        shown = f"{ratio:.2f}x" if kind != "tb" else f"1/{1 / ratio:.0f}"
        print(f"{kind:<6} {ours['seconds']:>9.3f} {ours['rss_mb']:>7.0f} {name:<30} {theirs['seconds']:>8.3f} {shown:>7}")
        assert ours["n"] == args.steps, (kind, ours["n"])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
