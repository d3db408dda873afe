"""check-data on a 2 GB uint16 token file: peak memory and throughput against numpy.fromfile.

    $ python benchmarks/check_data_speed.py [--gb 2] [--keep]
    $ python benchmarks/check_data_speed.py --jsonl [--rows 50000]

Writes a GPT-2-like token file (random ids below 50257, documents ending in <|endoftext|>) into /tmp chunk by
chunk with real data (no sparse holes, which would read back as free zeros), then:
  1. reads it with numpy.fromfile in 16 MB chunks (the physical limit: nothing but the read);
  2. runs `lossdx check-data FILE --vocab-size 50257 --format json` in a child process and takes its peak RSS
     (ru_maxrss of the children: the larger of the two runs) and wall time;
  3. the same with --no-dedupe (no document hashing);
  4. reads it with numpy.fromfile once more (the page cache is warm for all timed passes alike).
The file is deleted at the end unless --keep.

``--jsonl`` measures the HF layout instead: rows of input_ids / labels / attention_mask (512 tokens each) in
JSONL, against a pass that only parses each line with json.loads (the limit for JSONL in Python).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHUNK = 8 * 1024 * 1024  # tokens, as lossdx.datacheck.sources.CHUNK_TOKENS


def write_tokens(path: str, n_bytes: int, seed: int = 0) -> None:
    g = np.random.default_rng(seed)
    left = n_bytes // 2
    with open(path, "wb") as fh:
        while left:
            n = min(CHUNK, left)
            a = g.integers(0, 50256, n, dtype=np.uint16)
            a[g.integers(0, n, max(1, n // 600))] = 50256  # documents of ~600 tokens
            a.tofile(fh)
            left -= n
        fh.flush()
        os.fsync(fh.fileno())


def fromfile_pass(path: str) -> float:
    t0 = time.perf_counter()
    total = 0
    with open(path, "rb") as fh:
        while True:
            a = np.fromfile(fh, dtype=np.uint16, count=CHUNK)
            if not a.size:
                break
            total += a.size
    return time.perf_counter() - t0


def jsonl_bench(rows: int, keep: bool) -> None:
    path = "/tmp/lossdx_check_data_bench.jsonl"
    g = np.random.default_rng(0)
    with open(path, "w") as fh:
        for _ in range(rows):
            ids = g.integers(0, 50257, 512).tolist()
            fh.write(json.dumps({"input_ids": ids, "labels": ids, "attention_mask": [1] * 512}) + "\n")
    try:
        mb = os.path.getsize(path) / 1e6
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            for line in fh:
                json.loads(line)
        t_json = time.perf_counter() - t0
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "lossdx", "check-data", path, "--vocab-size", "50257",
                            "--format", "json", "--no-progress", "--fail-on", "never"],
                           capture_output=True, text=True, env=env)
        t_ck = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"check-data failed: {p.stderr.strip()}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps({"file_mb": round(mb, 1), "rows": rows, "check_data_s": round(t_ck, 2),
                          "check_data_mb_s": round(mb / t_ck, 1), "json_loads_only_s": round(t_json, 2),
                          "json_loads_mb_s": round(mb / t_json, 1), "peak_rss_mb": round(rss_mb, 1)}, indent=1))
    finally:
        if not keep:
            os.remove(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jsonl", action="store_true", help="measure JSONL rows instead of a token file")
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--path", default="/tmp/lossdx_check_data_bench.bin")
    args = ap.parse_args()
    if args.jsonl:
        jsonl_bench(args.rows, args.keep)
        return
    n_bytes = int(args.gb * 1e9) // 2 * 2
    if not os.path.exists(args.path) or os.path.getsize(args.path) != n_bytes:
        print(f"writing {n_bytes / 1e9:.2f} GB to {args.path} ...", file=sys.stderr)
        write_tokens(args.path, n_bytes)
    try:
        mb = n_bytes / 1e6
        t_np1 = fromfile_pass(args.path)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "lossdx", "check-data", args.path, "--vocab-size", "50257",
                            "--format", "json", "--no-progress", "--fail-on", "never"],
                           capture_output=True, text=True, env=env)
        t_ck = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"check-data failed: {p.stderr.strip()}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        t0 = time.perf_counter()
        q = subprocess.run([sys.executable, "-m", "lossdx", "check-data", args.path, "--vocab-size", "50257",
                            "--format", "json", "--no-progress", "--fail-on", "never", "--no-dedupe"],
                           capture_output=True, text=True, env=env)
        t_nd = time.perf_counter() - t0
        if q.returncode != 0:
            sys.exit(f"check-data --no-dedupe failed: {q.stderr.strip()}")
        t_np2 = fromfile_pass(args.path)
        rep = json.loads(p.stdout)
        t_np = min(t_np1, t_np2)
        out = {"file_gb": round(n_bytes / 1e9, 3), "tokens": rep["run"]["facts"]["tokens"],
               "check_data_s": round(t_ck, 2), "check_data_mb_s": round(mb / t_ck, 1),
               "no_dedupe_s": round(t_nd, 2), "no_dedupe_mb_s": round(mb / t_nd, 1),
               "numpy_fromfile_s": round(t_np, 2), "numpy_fromfile_mb_s": round(mb / t_np, 1),
               "ratio_of_fromfile": round(t_np / t_ck, 3), "peak_rss_mb": round(rss_mb, 1),
               "rss_limit_mb": 300, "within_limit": rss_mb <= 300,
               "findings": [f["kind"] for f in rep["findings"]]}
        print(json.dumps(out, indent=1))
    finally:
        if not args.keep:
            os.remove(args.path)


if __name__ == "__main__":
    main()
