"""Speed, scaling and memory of the analysis, and false spikes on pure noise.

    $ python benchmarks/analyze_speed.py

Targets (issue #3): analysing a 1M-step CSV costs <= 2x reading it; 10k -> 1M steps grows <= 110x;
<= 200 MB peak RSS for read + analysis; 1M steps of pure noise around a decaying trend give zero
spike findings. Each measurement runs in a fresh process; times are the best of 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "_data")

MEASURE = r"""
import json, time
from lossdx.readers import read
from lossdx.analyze import analyze
path = {path!r}
best_r = best_a = float("inf")
for _ in range(3):
    t0 = time.perf_counter(); run = read(path); t1 = time.perf_counter()
    rep = analyze(run); t2 = time.perf_counter()
    best_r, best_a = min(best_r, t1 - t0), min(best_a, t2 - t1)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
spikes = [f for f in rep.findings if f.kind == "spike"]
print(json.dumps({{"read": best_r, "analyze": best_a, "rss_mb": int(hwm) / 1024, "spikes": len(spikes),
                   "warnings": sorted({{f.kind for f in rep.findings if f.severity != "info"}})}}))
"""


def write_csv(path: str, steps: int, seed: int = 0, noise: float = 0.02) -> None:
    """A healthy-looking run: loss decaying from ~10 to ~2.5 with Gaussian noise of `noise` x level."""
    import numpy as np

    if os.path.exists(path):
        return
    rng = np.random.default_rng(seed)
    i = np.arange(steps)
    trend = 2.0 + 8.0 / np.sqrt(1.0 + i / (steps / 200))  # a power law: still falling at the end, as healthy runs do
    loss = trend * (1 + noise * rng.standard_normal(steps))
    gn = 0.8 + 0.1 * rng.standard_normal(steps) ** 2
    warm = max(1, steps // 100)
    lr = 3e-4 * np.minimum(1, (i + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * i / steps)))
    dt = 40 + rng.random(steps)
    # the same six columns as benchmarks/read_speed.py: a typical per-step training CSV
    with open(path, "w") as fh:
        fh.write("step,train_loss,grad_norm,lr,tokens,dt_ms\n")
        for row in zip(i.tolist(), loss.tolist(), gn.tolist(), lr.tolist(), ((i + 1) * 8192).tolist(), dt.tolist()):
            fh.write("%d,%.6f,%.6f,%.6e,%d,%.3f\n" % row)


def measure(path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE.format(path=path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    os.makedirs(DATA, exist_ok=True)
    results = {}
    for steps in (10_000, 100_000, 1_000_000):
        p = os.path.join(DATA, f"noise_{steps}.csv")
        write_csv(p, steps)
        results[steps] = r = measure(p)
        print(f"{steps:>9,} steps: read {r['read']:.3f}s  analyze {r['analyze']:.3f}s  "
              f"ratio {r['analyze'] / r['read']:.2f}x  peak RSS {r['rss_mb']:.0f} MB  spike findings {r['spikes']}  "
              f"non-info kinds {r['warnings']}")
    growth = results[1_000_000]["analyze"] / results[10_000]["analyze"]
    print(f"analysis time 10k -> 1M steps: x{growth:.0f} (linear would be x100)")
    summary = {"analyze_over_read_1M": round(results[1_000_000]["analyze"] / results[1_000_000]["read"], 2),
               "growth_10k_to_1M": round(growth, 1), "rss_mb_1M": round(results[1_000_000]["rss_mb"]),
               "false_spikes_1M": results[1_000_000]["spikes"]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
