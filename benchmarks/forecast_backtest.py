"""Backtest the loss forecast: fit on the first half of each healthy run, predict the last logged loss.

    $ python benchmarks/forecast_backtest.py [--tune] [--json out.json]

Runs: every run labelled healthy in ../shared/benchmarks/{gpu-runs,vision-runs,public-logs} and ../shared/realcorpus
with a long record: >= 100 train-loss points, or else >= 40 val-loss points (modded-nanogpt logs only the latter). They are split by a hash of their name into a tuning half and a
test half; ``--tune`` searches the skip share and the interval scale on the tuning half only (what
``lossdx.forecast`` ships was chosen that way), then every figure is reported on both halves.
Figures: the median absolute error of the predicted last logged loss in % of that loss, the share of runs whose
last logged loss falls inside the 90 % interval, and how many runs the forecast refused (and why); the baseline
"the loss stays at the median of the last 5 % of the fitted half" on the same runs shows what the law adds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("LOSSDX_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
sys.path.insert(0, os.path.join(ROOT, "src"))

from lossdx import forecast as fc  # noqa: E402
from lossdx.exceptions import InputError  # noqa: E402
from lossdx.readers import read  # noqa: E402

MIN_TRAIN_POINTS = 100
MIN_VAL_POINTS = 40


def _labelled_dirs(root: str) -> list[tuple[str, str]]:
    labels = json.load(open(os.path.join(root, "LABELS.json")))
    out = []
    for name, lab in sorted(labels.items()):
        if lab.get("verdict") != "healthy":
            continue
        files = lab.get("files") or {}
        path = os.path.join(root, name, files.get("jsonl") or files.get("log") or "train.log")
        if not os.path.exists(path):
            path = os.path.join(root, name, "metrics.jsonl")
        if os.path.exists(path):
            out.append((os.path.basename(root) + "/" + name, path))
    return out


def collect() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every healthy labelled run; the train loss where it has >= 100 points, else the val loss (>= 40)."""
    runs = []
    for sub in ("gpu-runs", "vision-runs", "public-logs"):
        root = os.path.join(SHARED, "benchmarks", sub)
        if os.path.exists(os.path.join(root, "LABELS.json")):
            runs += _labelled_dirs(root)
    rc = os.path.join(SHARED, "realcorpus")
    labels = json.load(open(os.path.join(rc, "LABELS.json")))
    for rel, lab in sorted(labels.items()):
        if lab.get("verdict") == "healthy":
            runs.append(("realcorpus/" + rel, os.path.join(rc, rel)))
    out = []
    for name, path in runs:
        try:
            run = read(path)
        except InputError:
            continue
        for metric, need in (("train/loss", MIN_TRAIN_POINTS), ("val/loss", MIN_VAL_POINTS)):
            s = run.get(metric)
            if s is None:
                continue
            ok = np.isfinite(s.values) & (s.steps > 0)
            if ok.sum() >= need:
                out.append((f"{name} [{metric}]", s.steps[ok].astype(float), s.values[ok]))
                break
    return out


def is_tuning(name: str) -> bool:
    return hashlib.sha1(name.encode()).digest()[0] % 2 == 0


def backtest(runs, skip: float, scale: float) -> list[dict]:
    rows = []
    for name, t, y in runs:
        half = t <= t[0] + (t[-1] - t[0]) / 2
        f = fc.forecast_curve(t[half], y[half], float(t[-1]), skip=skip, interval_scale=scale)
        th, yh = t[half], y[half]
        flat = float(np.median(yh[th >= th[-1] - 0.05 * (th[-1] - th[0])]))  # baseline: the loss stays where it is
        row = {"run": name, "tuning": is_tuning(name), "ok": f.ok, "actual": float(y[-1]),
               "flat_err_pct": 100 * abs(flat - y[-1]) / abs(y[-1])}
        if f.ok:
            row.update(predicted=f.expected_loss, err_pct=100 * abs(f.expected_loss - y[-1]) / abs(y[-1]),
                       covered=bool(f.interval[0] <= y[-1] <= f.interval[1]),
                       interval=list(f.interval))
        else:
            row["reason"] = f.reason.split(":")[0].split("(")[0].strip()
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["ok"]]
    errs = np.array([r["err_pct"] for r in ok]) if ok else np.array([np.nan])
    return {"runs": len(rows), "forecast": len(ok), "refused": len(rows) - len(ok),
            "median_abs_err_pct": float(np.median(errs)) if ok else None,
            "p90_abs_err_pct": float(np.quantile(errs, 0.9)) if ok else None,
            "flat_baseline_median_abs_err_pct": float(np.median([r["flat_err_pct"] for r in ok])) if ok else None,
            "coverage": float(np.mean([r["covered"] for r in ok])) if ok else None,
            "median_interval_width_pct": float(np.median([100 * (r["interval"][1] - r["interval"][0]) / abs(r["actual"])
                                                          for r in ok])) if ok else None,
            "refusals": dict(Counter(r["reason"] for r in rows if not r["ok"]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", action="store_true", help="search skip and interval scale on the tuning half")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    runs = collect()
    skip, scale = fc.SKIP, fc.INTERVAL_SCALE
    if args.tune:
        tune = [r for r in runs if is_tuning(r[0])]
        best = None
        for s in (0.1, 0.2, 0.3, 0.4, 0.5):
            sm = summary(backtest(tune, s, 1.0))
            if sm["forecast"] < 0.8 * len(tune):  # a method that refuses most runs is not a forecast
                continue
            print(f"tune skip={s}: {sm}")
            if best is None or sm["median_abs_err_pct"] < best[1]:
                best = (s, sm["median_abs_err_pct"])
        skip = best[0] if best else skip
        for sc in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0):
            sm = summary(backtest(tune, skip, sc))
            print(f"tune scale={sc}: coverage {sm['coverage']}")
            scale = sc
            if sm["coverage"] is not None and sm["coverage"] >= fc.LEVEL:
                break
        print(f"chosen on the tuning half: skip={skip} interval_scale={scale}")
    rows = backtest(runs, skip, scale)
    out = {"skip": skip, "interval_scale": scale, "level": fc.LEVEL,
           "tuning": summary([r for r in rows if r["tuning"]]),
           "test": summary([r for r in rows if not r["tuning"]]), "all": summary(rows), "runs": rows}
    for k in ("tuning", "test", "all"):
        print(f"{k:>7}: {json.dumps(out[k])}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
