"""The canonical data model every reader produces and every detector consumes.

A :class:`Run` is a set of named metric series (step -> value, optional wall time), the
hyperparameters, where it came from, and metadata about how it was logged. Names are
canonical keys (see :mod:`lossdx.keys`), so detectors never care about the source format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class Series:
    """One metric over training steps. Steps are sorted ascending; duplicates keep the last value."""

    name: str
    steps: np.ndarray  # int64
    values: np.ndarray  # float64, may hold NaN/Inf: they are data, not errors
    wall_times: np.ndarray | None = None  # float64 seconds, same length, or None

    def __post_init__(self) -> None:
        if len(self.steps) != len(self.values):
            raise ValueError(f"series {self.name}: {len(self.steps)} steps but {len(self.values)} values")

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @classmethod
    def from_points(
        cls,
        name: str,
        steps: Iterable[float] | np.ndarray,
        values: Iterable[float] | np.ndarray,
        wall_times: Iterable[float] | np.ndarray | None = None,
        repeats: str = "last",
    ) -> "Series":
        """Build a series from unsorted points; a step logged twice keeps its last value (resumed runs).

        With ``repeats="mean"`` (tables and JSON records, where a row is one record of one kind), a step
        logged several times in a row, for most steps, while the steps never go back (one record per micro-batch
        of a gradient-accumulation step, or per rank of a distributed job writing one file) is the mean of its
        records: the loss the optimizer step saw, not whichever micro-batch or rank was written last. Text logs
        keep "last": there two lines of one step may name different things "loss" (caffe's smoothed and raw).
        """
        s = np.asarray(steps, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        w = None if wall_times is None else np.asarray(wall_times, dtype=np.float64)
        ok = np.isfinite(s) & (np.abs(s) < 2.0 ** 62)  # a step must be an integer a run can reach
        if not ok.all():
            s, v = s[ok], v[ok]
            w = None if w is None else w[ok]
        if s.size > 1 and not bool((s[1:] > s[:-1]).all()):
            if repeats == "mean" and bool((s[1:] >= s[:-1]).all()):
                starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
                counts = np.diff(np.r_[starts, s.size])
                # the log's pattern (most steps repeated), not an accident of one line (a record a reader gave
                # the next step): the latter keeps its last value, below
                if np.count_nonzero(counts > 1) * 2 >= counts.size:
                    v = np.add.reduceat(v, starts) / counts
                    w = None if w is None else np.maximum.reduceat(w, starts)
                    return cls(name, s[starts].astype(np.int64), v, w)
            # stable sort, then keep the last occurrence of each step: a resumed run overwrites
            order = np.argsort(s, kind="stable")
            s, v = s[order], v[order]
            w = None if w is None else w[order]
            last = np.ones(s.size, dtype=bool)
            last[:-1] = s[1:] != s[:-1]
            s, v = s[last], v[last]
            w = None if w is None else w[last]
        return cls(name, s.astype(np.int64), v, w)

    def finite(self) -> "Series":
        """The same series without its NaN/Inf points."""
        ok = np.isfinite(self.values)
        w = None if self.wall_times is None else self.wall_times[ok]
        return Series(self.name, self.steps[ok], self.values[ok], w)

    def points(self) -> list[tuple[int, float]]:
        return list(zip(self.steps.tolist(), self.values.tolist()))


@dataclass
class Run:
    """A training run as lossdx sees it, whatever it was read from."""

    series: dict[str, Series]
    source: dict[str, Any] = field(default_factory=dict)  # {"path": ..., "format": ...}
    config: dict[str, Any] = field(default_factory=dict)  # canonical hyperparameters
    meta: dict[str, Any] = field(default_factory=dict)  # how it was logged: notes, log window, run name

    def __contains__(self, name: str) -> bool:
        return name in self.series

    def get(self, name: str) -> Series | None:
        return self.series.get(name)

    @property
    def metrics(self) -> list[str]:
        return sorted(self.series)

    @property
    def name(self) -> str:
        return str(self.meta.get("run_name") or self.source.get("path") or "run")

    def step_range(self) -> tuple[int, int] | None:
        steps = [s.steps for s in self.series.values() if len(s)]
        if not steps:
            return None
        return int(min(a[0] for a in steps)), int(max(a[-1] for a in steps))


class SeriesBuilder:
    """Collects (step, value) points of many metrics while a reader streams through a file."""

    def __init__(self) -> None:
        self._steps: dict[str, list[float]] = {}
        self._values: dict[str, list[float]] = {}
        self._walls: dict[str, list[float]] = {}
        self._arrays: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = {}

    def add_arrays(self, name: str, steps: np.ndarray, values: np.ndarray, wall_times: np.ndarray | None = None) -> None:
        """Add many points at once (readers with a vectorised fast path)."""
        self._arrays.setdefault(name, []).append((steps, values, wall_times))

    def add(self, name: str, step: float, value: float, wall_time: float | None = None) -> None:
        self._steps.setdefault(name, []).append(step)
        self._values.setdefault(name, []).append(value)
        if wall_time is not None:
            self._walls.setdefault(name, []).append(wall_time)

    def add_many(self, step: float, values: Mapping[str, float], wall_time: float | None = None) -> None:
        for name, value in values.items():
            self.add(name, step, value, wall_time)

    def __len__(self) -> int:
        return sum(len(v) for v in self._values.values()) + sum(
            len(a[0]) for chunks in self._arrays.values() for a in chunks)

    def names(self) -> list[str]:
        return list(dict.fromkeys([*self._values, *self._arrays]))

    def build(self) -> dict[str, Series]:
        out: dict[str, Series] = {}
        for name in self.names():
            parts = list(self._arrays.get(name, []))
            if name in self._steps:
                walls = self._walls.get(name)
                if walls is not None and len(walls) != len(self._steps[name]):
                    walls = None
                parts.append((np.asarray(self._steps[name], dtype=np.float64),
                              np.asarray(self._values[name], dtype=np.float64),
                              None if walls is None else np.asarray(walls, dtype=np.float64)))
            steps = np.concatenate([p[0] for p in parts])
            values = np.concatenate([p[1] for p in parts])
            wall = None if any(p[2] is None for p in parts) else np.concatenate([p[2] for p in parts])
            out[name] = Series.from_points(name, steps, values, wall)
        return out
