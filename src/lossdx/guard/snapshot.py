"""Snapshots of the whole training state, written atomically, the last K good ones kept.

A snapshot holds the model, the optimizer, the LR scheduler, the GradScaler, the RNG states of python, numpy,
torch and CUDA, and the data position: everything a rollback needs to continue bit-identically. Files are written
to a temp file in the same directory, fsync'ed, then renamed, so a ``kill -9`` during a write leaves the previous
snapshot intact and loadable. The guard only snapshots steps it has checked, so a poisoned state never replaces
a good one. Loading uses ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any

import numpy as np
import torch

_NAME = re.compile(r"^snapshot-(\d+)-rank(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {"python": random.getstate(),
                             "numpy": (kind, torch.from_numpy(np.asarray(keys).astype(np.int64)), int(pos),
                                       int(has_gauss), float(cached)),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


class SnapshotStore:
    """``snapshot-<step>-rank<r>.pt`` files in ``directory``; each rank writes and reads its own (its shard)."""

    def __init__(self, directory: str, keep: int = 2, rank: int = 0) -> None:
        self.directory = directory
        self.keep = keep
        self.rank = rank
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):  # temp files a killed writer left behind
            if name.startswith("snapshot-") and f"-rank{rank}.pt.tmp" in name:
                try:
                    os.remove(os.path.join(directory, name))
                except OSError:
                    pass

    def path(self, step: int) -> str:
        return os.path.join(self.directory, f"snapshot-{step:09d}-rank{self.rank}.pt")

    def steps(self) -> list[int]:
        out = []
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m and int(m.group(2)) == self.rank:
                out.append(int(m.group(1)))
        return sorted(out)

    def save(self, step: int, state: dict[str, Any]) -> str:
        path = self.path(step)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        for old in self.steps()[:-self.keep]:
            self.remove(old)
        return path

    def remove(self, step: int) -> None:
        try:
            os.remove(self.path(step))
        except FileNotFoundError:
            pass

    def latest(self, before: int | None = None) -> int | None:
        """The newest snapshot step (strictly before ``before`` when given)."""
        ok = [s for s in self.steps() if before is None or s < before]
        return ok[-1] if ok else None

    def load(self, step: int) -> dict[str, Any]:
        return load_snapshot(self.path(step))


def load_snapshot(path: str, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a snapshot file (keys: step, position, model, optimizer, scheduler, scaler, rng, guard)."""
    with open(path, "rb") as fh:
        state: dict[str, Any] = torch.load(fh, map_location=map_location, weights_only=True)
    return state


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
