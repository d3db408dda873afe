"""Shared pieces of the family generators: corpora, log writers in each family's usual style, labels."""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
LABELS_PATH = HERE / "labels.json"


# ----------------------------------------------------------------------------------------------------------------
# corpora: three text domains that exist on every machine with this Python (no download)

def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def domain_code(n: int = 200_000) -> bytes:
    """Python source of the standard library (the same files every time: sorted, first n bytes)."""
    out, size = [], 0
    for p in sorted(_stdlib().glob("*.py")):
        data = p.read_bytes()
        out.append(data)
        size += len(data)
        if size > n:
            break
    return b"".join(out)[:n]


def domain_prose(n: int = 200_000) -> bytes:
    """English documentation prose: the topic texts pydoc ships (pydoc_data/topics.py)."""
    text = (_stdlib() / "pydoc_data" / "topics.py").read_bytes()
    return text[5_000:5_000 + n]


def domain_numbers(n: int = 200_000, seed: int = 0) -> bytes:
    """CSV rows of numbers (a third, very different byte distribution)."""
    rng = random.Random(seed)
    rows, size = [], 0
    while size < n:
        row = ",".join(str(rng.randint(0, 99999)) for _ in range(rng.randint(3, 7))) + "\n"
        rows.append(row)
        size += len(row)
    return "".join(rows).encode()[:n]


def domains() -> list[bytes]:
    return [domain_code(), domain_prose(), domain_numbers()]


# ----------------------------------------------------------------------------------------------------------------
# writers (rows: list of dicts with "step" and metric keys; NaN stays NaN as Python writes it)

def fmt_num(x: float, spec: str = ".4f") -> str:
    if x is None:
        return "nan"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return format(x, spec)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def write_tensorboard(directory: Path, scalars: list[tuple[str, int, float]]) -> Path:
    """A TensorBoard event file (the framing and protos TensorBoard's writer produces; no tensorboard needed)."""
    sys.path.insert(0, str(HERE.parent.parent / "src"))
    from lossdx.testing.events import scalar_event, write_events  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "events.out.tfevents.1700000000.cpu-bench.1.0"
    with open(path, "wb") as fh:
        write_events(fh, (scalar_event(tag, float(v), int(s), wall_time=1_700_000_000.0 + s) for tag, s, v in scalars))
    return path


def write_json(path: Path, obj) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")


def write_config_py(path: Path, cfg: dict) -> None:
    with open(path, "w") as fh:
        for k, v in cfg.items():
            fh.write(f"{k} = {v!r}\n")


def clean_dir(d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def has_config(family: str, name: str) -> bool:
    """Whether a run gets its config file beside its logs: about two runs in three, fixed by a hash of the name."""
    return int(hashlib.sha256(f"{family}/{name}/config".encode()).hexdigest(), 16) % 3 != 0


def excerpt_lines(text: str, from_step: int, step_of) -> str:
    """The lines of a text log from the first record at or after from_step (what people paste into issues)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = step_of(line)
        if s is not None and s >= from_step:
            return "\n".join(lines[i:]) + "\n"
    raise ValueError(f"no record at or after step {from_step}")


# ----------------------------------------------------------------------------------------------------------------
# curve summaries for labels and for looking at every run

def summarize(values: list[float], width: int = 12) -> str:
    """A few points across the curve, for the evidence text and for eyeballing."""
    if not values:
        return "(none)"
    idx = sorted({round(i * (len(values) - 1) / (width - 1)) for i in range(width)})
    return " ".join(fmt_num(values[i], ".3g") for i in idx)


# ----------------------------------------------------------------------------------------------------------------
# labels

class Labels:
    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}

    def add(self, path: Path, *, family: str, fmt: str, group: str, verdict: str, cause: str,
            accept: list[str] | None = None, symptom: str | None = None, steps: list[int] | None = None,
            evidence: str, config: Path | None = None, strength: str = "established",
            excerpt_from: int | None = None) -> None:
        rel = str(path.relative_to(HERE))
        if cause == "healthy":
            accept = []
        self.entries[rel] = {
            "verdict": verdict, "cause": cause, "accept": list(accept if accept is not None else [cause]),
            "symptom": symptom, "steps": list(steps or []), "evidence": evidence, "strength": strength,
            "family": family, "format": fmt, "config": str(config.relative_to(HERE)) if config else None,
            "group": group, "excerpt_from_step": excerpt_from,
        }

    def save(self, full_families: set[str] = frozenset()) -> None:
        """Merge into labels.json and give new runs a split. A run keeps the split it was first given (tuning may
        already have used it); new runs (groups) go, cause by cause in SHA-256 order of their names, to the half
        that has fewer runs of that family and cause, then of that family, so both halves see each cause."""
        existing = json.loads(LABELS_PATH.read_text()) if LABELS_PATH.exists() else {}
        previous = {e["group"]: e["split"] for e in existing.values() if e.get("split")}
        groups = {e["group"] for e in self.entries.values()}
        merged = {k: v for k, v in existing.items() if v.get("family") not in full_families and v["group"] not in groups
                  and (HERE / k).exists()}
        merged.update(self.entries)
        cause_of = {e["group"]: (e["family"], e["cause"]) for e in merged.values() if e["cause"] != "healthy"}
        cause_of.update({e["group"]: (e["family"], "healthy") for e in merged.values() if e["group"] not in cause_of})
        split_of = {g: previous[g] for g in cause_of if g in previous}

        def count(pred, half):
            return sum(1 for g, s in split_of.items() if s == half and pred(g))

        for g in sorted((g for g in cause_of if g not in split_of),
                        key=lambda g: (cause_of[g], hashlib.sha256(g.encode()).hexdigest())):
            fam, cause = cause_of[g]
            key = [(count(lambda x: cause_of[x] == (fam, cause), h), count(lambda x: cause_of[x][0] == fam, h),
                    int(hashlib.sha256(f"{g}/{h}".encode()).hexdigest(), 16) % 2, h) for h in ("tune", "holdout")]
            split_of[g] = min(key)[3]
        for e in merged.values():
            e["split"] = split_of[e["group"]]
        with open(LABELS_PATH, "w") as fh:
            json.dump(dict(sorted(merged.items())), fh, indent=1)
            fh.write("\n")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
