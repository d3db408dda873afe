"""Wall time of `lossdx analyze DIR` over a directory of 100 runs with 1 and 2 worker processes.

    $ python benchmarks/scan_speed.py [--runs 100] [--steps 20000] [--small-only] [--repeat 3]

Each run is a nanoGPT stdout log (`iter N: loss ..., time ...ms, mfu ...%`) of `--steps` steps with its
own seed; every tenth has a one-step spike. Times are the best of 2 runs of the CLI, in fresh processes, 1 and 2 workers alternated; the
machine's load average is printed beside them (on a shared machine 2 workers cannot beat 1).
Also: the time until the first line of a 20,000-small-log directory appears (R19).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def write_runs(d: str, runs: int, steps: int) -> None:
    import numpy as np

    for r in range(runs):
        rng = np.random.default_rng(r)
        t = np.arange(steps)
        loss = 8.0 * np.exp(-t / (steps / 15)) + 2.5 + 0.03 * rng.standard_normal(steps)
        if r % 10 == 0:
            loss[steps // 2] *= 4
        with open(os.path.join(d, f"run{r:03d}.log"), "w") as fh:
            fh.writelines(f"iter {i}: loss {v:.4f}, time 50.00ms, mfu 1.00%\n" for i, v in zip(t.tolist(), loss.tolist()))


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert res.returncode in (0, 1), res.stderr
    return time.perf_counter() - t0


def first_line_after(d: str) -> tuple[float, float, float]:
    """Seconds to the first line, seconds to the end, and CPU seconds (user + sys of the CLI and its workers:
    what a shared machine's load does not inflate the way it inflates wall time)."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lossdx", "analyze", d, "-j", "2"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()
    first = time.perf_counter() - t0
    proc.communicate()
    total = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return first, total, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--small", type=int, default=20_000, help="small logs for the time-to-first-line check")
    ap.add_argument("--small-only", action="store_true", help="only the small-log directory (R19), not the 100 runs")
    ap.add_argument("--repeat", type=int, default=1, help="scan the small-log directory this many times (R19: 3)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="lossdx-scan-bench-")
    try:
        d = os.path.join(work, "runs")
        os.mkdir(d)
        if not args.small_only:
            write_runs(d, args.runs, args.steps)
        out: dict = {"runs": args.runs, "steps_per_run": args.steps, "cpus": os.cpu_count()}
        best = {1: float("inf"), 2: float("inf")}
        for _ in range(0 if args.small_only else 2):  # alternated, so a change of the machine's load hits both alike
            for jobs in (1, 2):
                best[jobs] = min(best[jobs], timed([sys.executable, "-m", "lossdx", "analyze", d, "-j", str(jobs),
                                                    "-f", "json"]))
        if not args.small_only:
            out["wall_s_1_worker"], out["wall_s_2_workers"] = round(best[1], 2), round(best[2], 2)
        out["load_average_1min"] = os.getloadavg()[0]  # other processes on the machine share its cores
        many = os.path.join(work, "many")
        os.mkdir(many)
        body = "".join(f"iter {j}: loss {3 - j * 0.01:.3f}\n" for j in range(20))
        for i in range(args.small):
            with open(os.path.join(many, f"r{i:05d}.log"), "w") as fh:
                fh.write(body)
        for k in range(args.repeat):
            first, total, cpu = first_line_after(many)
            out.update({"small_logs": args.small, "first_line_s": round(first, 2), "all_small_logs_s": round(total, 1),
                        "all_small_logs_cpu_s": round(cpu, 1), "cpu_ms_per_small_log": round(1000 * cpu / args.small, 2),
                        "load_average_1min_after_small": os.getloadavg()[0]})
            if args.repeat > 1:
                out.setdefault("repeats", []).append({key: out[key] for key in (
                    "first_line_s", "all_small_logs_s", "all_small_logs_cpu_s", "load_average_1min_after_small")})
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
