"""A private virtual environment for the benchmarks' competitors (pandas, tbparse, peer tools).

They are measured, never depended on: they live in benchmarks/.venv-bench, not in lossdx's deps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv-bench")


def bench_python(packages: list[str]) -> str:
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        venv.create(VENV, with_pip=True)
    missing = []
    for spec in packages:
        name = spec.split("==")[0].split(">=")[0]
        mod = {"pyyaml": "yaml"}.get(name, name).replace("-", "_")
        if subprocess.run([py, "-c", f"import {mod}"], capture_output=True).returncode != 0:
            missing.append(spec)
    if missing:
        print(f"installing into {VENV}: {' '.join(missing)}", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "-q", *missing], check=True)
    return py


def run_timed(py: str, code: str) -> dict:
    """Run ``code`` (which prints a JSON dict) in ``py`` and return that dict."""
    import json

    out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
