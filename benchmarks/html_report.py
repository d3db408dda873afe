"""Size and render time of the HTML report of a 1M-step run.

    $ python benchmarks/html_report.py [--steps 1000000]

Writes a 1M-step CSV (train loss with one one-step spike and one NaN, LR, grad norm, val loss every
1,000 steps), runs `lossdx analyze --format html` on it, and reports: the HTML size (target <= 2 MB),
the time lossdx takes to write it, that the spike and the NaN are in the drawn data, and the time headless
Chromium takes to run the page's script (its own `performance.now()` around the drawing, best of 3) and to
load the page (process wall time, including the browser's start).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,1100"]


def write_run(path: str, steps: int, spike: int, nan: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(steps)
    loss = 8.0 * np.exp(-t / (steps / 20)) + 2.5 + 0.02 * rng.standard_normal(steps)
    loss[spike] *= 5
    loss[nan] = np.nan
    lr = 3e-4 * np.minimum(1, t / 2000) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / steps)))
    gn = 0.8 + 0.05 * rng.standard_normal(steps)
    gn[spike] *= 20
    val = np.where(t % 1000 == 0, loss + 0.1, np.nan)
    with open(path, "w") as fh:
        fh.write("step,train_loss,lr,grad_norm,val_loss\n")
        for row in zip(t.tolist(), loss.tolist(), lr.tolist(), gn.tolist(), val.tolist()):
            s, lo, l_r, g, v = row
            fh.write(f"{s},{lo:.5f},{l_r:.4e},{g:.4f},{'' if v != v else f'{v:.5f}'}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1_000_000)
    args = ap.parse_args()
    spike, nan = int(args.steps * 0.4) + 7, int(args.steps * 0.7) + 3
    work = tempfile.mkdtemp(prefix="lossdx-html-bench-")
    try:
        csv = os.path.join(work, "metrics.csv")
        write_run(csv, args.steps, spike, nan)
        page = os.path.join(work, "report.html")
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "lossdx", "analyze", csv, "--format", "html", "-o", page],
                             env=env, capture_output=True, text=True)
        total = time.perf_counter() - t0
        assert res.returncode in (0, 1), res.stderr
        html = open(page, encoding="utf-8").read()
        data = json.loads(re.search(r'id="lossdx-data">(.*?)</script>', html, re.S).group(1))
        loss = data["panels"][0]["series"][0]
        drawn = sum(len(s["x"]) for p in data["panels"] for s in p["series"])
        out = {"steps": args.steps, "html_bytes": len(html.encode()), "analyze_html_s": round(total, 2),
               "points_drawn_all_series": drawn, "train_loss_points_drawn": len(loss["x"]),
               "spike_drawn": spike in loss["x"], "nan_marked": any(a <= nan <= b for a, b, _k in loss["nonfinite"])}
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe:
            renders, loads = [], []
            for i in range(3):
                prof = os.path.join(work, f"profile{i}")
                t0 = time.perf_counter()
                dom = subprocess.run([exe, *FLAGS, f"--user-data-dir={prof}", "--dump-dom", "file://" + page],
                                     capture_output=True, text=True, timeout=120).stdout
                loads.append(time.perf_counter() - t0)
                m = re.search(r'data-render-ms="([\d.]+)"', dom)
                renders.append(float(m.group(1)) if m else float("nan"))
            out.update({"browser_script_ms_best": min(renders), "browser_load_s_best": round(min(loads), 2)})
        else:
            out["browser"] = "chromium not installed: no render time"
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
