"""JSON Lines: one JSON object per line (our own training scripts, W&B history, many custom loggers).

Parsed in chunks with one ``json.loads`` per chunk (the C decoder does the work), then turned
into columns with list comprehensions, so 1M rows cost about as much as pandas and stay under 200 MB.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..exceptions import CorruptLog
from ..keys import canonical, pick_step_name
from ..model import Run, Series
from .base import decode_text, ensure_loss, make_run

CHUNK_LINES = 50_000


def sniff(head: bytes, path: str) -> float:
    lines = [ln.strip() for ln in head.splitlines()[:20] if ln.strip()]
    if len(lines) < 1:
        return 0.0
    ok = 0
    for ln in lines[:-1] or lines:  # the last line of the head may be cut
        if ln.startswith(b"{") and ln.endswith(b"}"):
            try:
                if isinstance(json.loads(ln), dict):
                    ok += 1
            except ValueError:
                pass
    n = len(lines[:-1] or lines)
    # a pretty-printed JSON document starts with "{" alone on a line: that is not JSONL
    return 0.9 * ok / n if n and ok else 0.0


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


class _Columns:
    """Column store filled chunk by chunk; remembers which rows had a key at all (absent != NaN)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[int, np.ndarray, np.ndarray | None]]] = {}
        self.rows = 0

    def add_chunk(self, rows: list[dict]) -> None:
        keys: set[str] = set()
        for r in rows:
            keys.update(r)
        for k in sorted(keys):
            col = [r.get(k) for r in rows]
            try:
                arr = np.array(col, dtype=np.float64)  # None -> nan
            except (TypeError, ValueError):
                conv = [_as_float(v) for v in col]
                if all(v is None for v in conv):
                    continue
                col = conv
                arr = np.array([math.nan if v is None else v for v in conv], dtype=np.float64)
            present = np.array([v is not None for v in col], dtype=bool) if None in col else None
            self.parts.setdefault(k, []).append((self.rows, arr, present))
        self.rows += len(rows)

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        values, present = {}, {}
        for k, parts in self.parts.items():
            v = np.full(self.rows, np.nan)
            p = np.zeros(self.rows, dtype=bool)
            for offset, arr, mask in parts:
                v[offset:offset + arr.size] = arr
                p[offset:offset + arr.size] = True if mask is None else mask
            values[k], present[k] = v, p
        return values, present


def _parse_chunk(lines: list[str], bad: list[int]) -> list[dict]:
    try:
        rows = json.loads("[" + ",".join(lines) + "]")
        if all(isinstance(r, dict) for r in rows):
            return rows
    except ValueError:
        pass
    rows = []
    for ln in lines:  # salvage: skip what does not parse (a torn last line, a stray print)
        try:
            r = json.loads(ln)
        except ValueError:
            bad.append(1)
            continue
        if isinstance(r, dict):
            rows.append(r)
        else:
            bad.append(1)
    return rows


def _flatten(rows: list[dict]) -> list[dict]:
    """W&B history nests dicts ({"train": {"loss": ...}}); flatten one level as train/loss."""
    if not any(isinstance(v, dict) for v in rows[0].values()):
        return rows
    out = []
    for r in rows:
        flat = {}
        for k, v in r.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    flat[f"{k}/{k2}"] = v2
            else:
                flat[k] = v
        out.append(flat)
    return out


def read(path: str) -> list[Run]:
    cols = _Columns()
    bad: list[int] = []
    with open(path, "rb") as fh:
        while True:
            raw = fh.readlines(CHUNK_LINES * 120)
            if not raw:
                break
            text = decode_text(b"".join(raw), path)
            lines = [ln for ln in text.split("\n") if ln.strip()]
            rows = _parse_chunk(lines, bad)
            if rows:
                cols.add_chunk(_flatten(rows))
    if cols.rows == 0:
        raise CorruptLog(f"{path}: no JSON object lines")
    values, present = cols.arrays()
    step_key = pick_step_name(sorted(values))
    steps = values.pop(step_key) if step_key else np.arange(cols.rows, dtype=np.float64)
    if step_key:
        present_steps = present.pop(step_key)
        steps = np.where(present_steps, steps, np.nan)
    series: dict[str, Series] = {}
    for k, v in values.items():
        ok = present[k] & np.isfinite(steps)
        if not ok.any():
            continue
        key = canonical(k)
        s = Series.from_points(key, steps[ok], v[ok])
        if key not in series or len(series[key]) < len(s):
            series[key] = s
    meta = {"notes": [f"{len(bad)} unparseable line(s) skipped"]} if bad else {}
    run = make_run(series, path, "jsonl", meta, already_canonical=True)
    return [ensure_loss(run, path)]
