"""Start-up cost of the CLI and what the terminal renderer (rich) adds.

    $ python benchmarks/startup.py

Each figure is the median of 9 fresh processes: `lossdx --help`, `lossdx demo -q` (read, analyse, render text)
and `lossdx demo -q -f json` (the same without the text renderer); and the cumulative import time of
rich.console inside `lossdx demo -q` from `python -X importtime` (0 when it is not imported, as for --help).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def wall(args: list[str], n: int = 9) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lossdx", *args], env=ENV, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rich_import_ms(args: list[str], n: int = 5) -> float:
    costs = []
    for _ in range(n):
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "lossdx", *args], env=ENV, capture_output=True,
                           text=True, check=False)
        us = [int(line.split("|")[1]) for line in p.stderr.splitlines() if line.rstrip().endswith("| rich.console")]
        costs.append(sum(us) / 1000)
    return statistics.median(costs)


def main() -> None:
    rows = [("lossdx --help", wall(["--help"]), rich_import_ms(["--help"])),
            ("lossdx demo -q", wall(["demo", "-q"]), rich_import_ms(["demo", "-q"])),
            ("lossdx demo -q -f json", wall(["demo", "-q", "-f", "json"]), rich_import_ms(["demo", "-f", "json"]))]
    print(f"{'command':<26} {'wall (median of 9)':>20} {'rich.console import':>22}")
    for name, t, ms in rows:
        print(f"{name:<26} {t * 1000:>17.0f} ms {ms:>19.1f} ms")


if __name__ == "__main__":
    main()
