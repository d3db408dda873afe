"""The framework-free core of the live guard: the offline detectors fed one step at a time, and a policy.

It sees host floats only; the torch adapters keep the values on the device and hand them over every k steps
(:mod:`lossdx.guard.device`). The detectors are the very objects ``lossdx analyze`` runs, with the same
thresholds, so an analysis of the guard's history (:meth:`Guard.history_run`) finds what the guard raised live.
"""

from __future__ import annotations

import collections
import copy
import functools
import json
import logging
import math
import os
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from ..detectors import Detector, default_detectors
from ..detectors.base import Context, PointBuffer
from ..detectors.wholerun import share_point_buffers
from ..findings import Finding
from ..keys import GRAD_NORM, LOSS_SCALE, LR, TRAIN_LOSS
from ..model import Run, Series
from .policy import Action, Policy

log = logging.getLogger("lossdx.guard")

#: finding kinds a live guard acts on; the other detectors only feed the final report
TRIGGER_KINDS = ("nan", "spike", "grad_norm", "divergence")
_HISTORY_NAMES = {TRAIN_LOSS: "loss", GRAD_NORM: "grad_norm", LR: "lr", LOSS_SCALE: "loss_scale"}


F = TypeVar("F", bound=Callable[..., Any])


def never_raises(default: Callable[[Any], Any]) -> Callable[[F], F]:
    """The guard must never crash training by its own fault: log the first internal error, disable the guard,
    and return ``default(self)`` from then on."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.disabled:
                return default(self)
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - by design: training goes on without the guard
                self.disabled = True
                log.error("lossdx guard disabled after an internal error in %s: %s: %s",
                          fn.__name__, type(exc).__name__, exc, exc_info=True)
                return default(self)
        return inner  # type: ignore[return-value]
    return wrap


def write_atomic(path: str, text: str) -> None:
    """Temp file in the same directory, fsync, rename: a reader never sees a half-written file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class History:
    """Every step the guard saw, in columns (about 9 bytes per metric and step, not a dict per step)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.steps = np.empty(1024, dtype=np.int64)
        self.values = np.empty((1024, 0))
        self.present = np.zeros((1024, 0), dtype=bool)  # absent is not NaN
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def append(self, step: int, values: Mapping[str, float]) -> None:
        for name in values:
            if name not in self.names:
                self.names.append(name)
                self.values = np.hstack([self.values, np.full((self.values.shape[0], 1), np.nan)])
                self.present = np.hstack([self.present, np.zeros((self.present.shape[0], 1), dtype=bool)])
        if self.n == self.steps.shape[0]:
            size = 2 * self.n
            self.steps = np.resize(self.steps, size)
            self.values = np.vstack([self.values, np.full(self.values.shape, np.nan)])
            self.present = np.vstack([self.present, np.zeros(self.present.shape, dtype=bool)])
        i = self.n
        self.steps[i] = step
        self.present[i] = False
        for name, v in values.items():
            j = self.names.index(name)
            self.values[i, j] = v
            self.present[i, j] = True
        self.n += 1

    def truncate(self, n: int) -> None:
        self.n = min(self.n, n)

    def step_at(self, i: int) -> int:
        return int(self.steps[i])

    def row_at(self, i: int) -> dict[str, float]:
        return {name: float(self.values[i, j]) for j, name in enumerate(self.names) if self.present[i, j]}

    def row(self, step: int) -> dict[str, float] | None:
        """The values of ``step`` (the latest row holding it)."""
        hits = np.flatnonzero(self.steps[: self.n] == step)
        return self.row_at(int(hits[-1])) if hits.size else None

    def series(self) -> dict[str, Series]:
        out = {}
        for j, name in enumerate(self.names):
            keep = self.present[: self.n, j]
            out[name] = Series.from_points(name, self.steps[: self.n][keep], self.values[: self.n, j][keep])
        return out


class Guard:
    """Feed it every step (:meth:`observe`); it returns the :class:`Action` the policy asks for.

    ``out_dir`` receives ``guard_events.jsonl`` (one spike record per trigger: step, loss, grad norm, LR, loss
    scale, batch ids, data position, action), ``guard_history.jsonl`` (every step, readable by ``lossdx analyze``)
    and, at :meth:`finish`, ``guard_report.json`` (a normal lossdx report). ``writer=False`` (ranks > 0) writes
    nothing. ``config`` holds the run's hyperparameters in lossdx's canonical names (used by the config checks).
    """

    def __init__(self, out_dir: str | None = None, policy: Policy | None = None,
                 config: Mapping[str, Any] | None = None, detectors: Sequence[Detector] | None = None,
                 writer: bool = True, ids_kept: int = 4096) -> None:
        self.disabled = False
        self.policy = policy or Policy()
        self.out_dir = out_dir
        self.writer = writer and out_dir is not None
        if out_dir is not None and self.writer:
            os.makedirs(out_dir, exist_ok=True)
        self.config = dict(config or {})
        self.detectors = list(default_detectors() if detectors is None else detectors)
        # per-step values; the run profile is the default one (a live guard cannot derive it from a whole run), and
        # history_run() pins it so the offline analysis judges with the same context
        self.context = ctx = Context(config=dict(self.config), log_window=1, log_interval=1,
                                     max_steps=self.config.get("max_steps"))
        for det in self.detectors:
            det.reset(ctx)
        share_point_buffers(self.detectors)  # one buffer per metric, not one per whole-run detector
        self.findings: list[Finding] = []  # everything the detectors emitted live (plus finalize at the end)
        self.records: list[dict[str, Any]] = []  # spike records, as written to guard_events.jsonl
        self.notes: list[str] = []  # what the guard did, for the report
        self.history = History()  # every step, rolled-back steps removed
        self.ids: collections.OrderedDict[int, tuple[Any, Any]] = collections.OrderedDict()
        self.ids_kept = ids_kept
        self.seen: set[tuple[str, str, int]] = set()
        # step -> (detector states, history length, seen events, findings count, LR scale)
        self.checkpoints: dict[int, tuple[list[dict[str, Any]], int, set[tuple[str, str, int]], int, float]] = {}
        self.loss_spikes = 0
        self.rollbacks = 0
        self.lr_scale = 1.0
        self.finished = False
        self._history_written = 0

    # ----- feeding ------------------------------------------------------------------------------
    @never_raises(lambda self: Action())
    def observe(self, step: int, values: Mapping[str, float], batch_ids: Any = None, position: Any = None) -> Action:
        """One optimizer step: ``values`` maps canonical names (``train/loss``, ``train/grad_norm``, ``train/lr``,
        ``train/loss_scale``) to floats. Returns the strongest action any new event asks for."""
        step = int(step)
        vals = {k: float(v) for k, v in values.items() if v is not None}
        self.history.append(step, vals)
        self.ids[step] = (batch_ids, position)
        while len(self.ids) > self.ids_kept:
            self.ids.popitem(last=False)
        new: list[Finding] = []
        for det in self.detectors:
            emitted = det.update(step, vals)
            self.findings.extend(emitted)
            new.extend(emitted)
            open_events = getattr(det, "open_events", None)
            if open_events is not None:  # events still open are acted on at their first step, not at their end
                new.extend(open_events())
        action = Action(step=step)
        for f in new:
            key = (f.kind, f.metric, int(f.start_step))
            if f.kind not in TRIGGER_KINDS or f.severity == "info" or key in self.seen:
                continue
            self.seen.add(key)
            action = action.stronger(self._trigger(f, step))
        return action

    def _trigger(self, f: Finding, step: int) -> Action:
        kind = self.policy.action_for(f.kind, f.metric)
        if kind == "rollback" and self.rollbacks >= self.policy.max_rollbacks:
            kind = "stop"
            self.notes.append(f"guard: {self.rollbacks} rollbacks already, stopping instead at step {step}")
        act = Action(kind=kind, step=step, reason=f.message, events=[f])
        if f.kind == "spike" and f.metric == TRAIN_LOSS:
            self.loss_spikes += 1
            n = self.policy.lr_cut_after
            if n and self.loss_spikes % n == 0 and self.policy.lr_cut < 1:
                self.lr_scale *= self.policy.lr_cut
                self.notes.append(f"guard: learning rate multiplied by {self.policy.lr_cut:g} after "
                                  f"{self.loss_spikes} loss spikes (now x{self.lr_scale:g}) at step {step}")
        self.record(f, kind)
        return act

    def record(self, f: Finding, action: str) -> dict[str, Any]:
        """A spike record: the values and the data of the step where the event began."""
        start = int(f.start_step)
        vals = dict(self.row(start) or {})
        batch_ids, position = self.ids.get(start, (None, None))
        now = self.last_step()
        rec = {"step": start, "detected_at": start if now is None else now, "kind": f.kind,
               "metric": f.metric, "action": action, "loss": vals.get(TRAIN_LOSS),
               "grad_norm": vals.get(GRAD_NORM), "lr": vals.get(LR), "loss_scale": vals.get(LOSS_SCALE),
               "batch_ids": _plain(batch_ids), "position": _plain(position), "message": f.message}
        self.records.append(rec)
        if self.writer:
            self._write(lambda: _append(os.path.join(self._dir, "guard_events.jsonl"),
                                        [json.dumps(_json_safe(rec))]))
        return rec

    @property
    def _dir(self) -> str:
        return self.out_dir or "."

    def _write(self, fn: Callable[[], None]) -> None:
        """A file the guard cannot write (disk full, permissions) stops its writing, not its watching."""
        try:
            fn()
        except OSError as exc:
            self.writer = False
            log.error("lossdx guard: cannot write to %s (%s); it goes on watching without writing files",
                      self.out_dir, exc)

    def row(self, step: int) -> dict[str, float] | None:
        """What the guard recorded at ``step``."""
        return self.history.row(int(step))

    def last_step(self) -> int | None:
        return self.history.step_at(len(self.history) - 1) if len(self.history) else None

    def position_of(self, step: int) -> Any:
        return self.ids.get(int(step), (None, None))[1]

    # ----- snapshots and rollback ---------------------------------------------------------------
    @never_raises(lambda self: None)
    def checkpoint(self, step: int) -> None:
        """Remember the detectors' state at ``step`` (a good snapshot was written there) for a rollback."""
        self.checkpoints[int(step)] = ([_state_of(d) for d in self.detectors], len(self.history), set(self.seen),
                                       len(self.findings), self.lr_scale)

    def forget(self, step: int) -> None:
        self.checkpoints.pop(int(step), None)

    def rollback_to(self, step: int, reason: str) -> None:
        """Restore the detectors and the history to ``step``: the steps after it will be trained again."""
        states, n_rows, _seen, _n_findings, _lr = self.checkpoints[int(step)]
        for det, st in zip(self.detectors, states):
            det.load_state_dict(st)
        share_point_buffers(self.detectors)
        self.history.truncate(n_rows)
        self._history_written = min(self._history_written, n_rows)
        self.rollbacks += 1
        self.notes.append(f"guard: rolled back to step {step} ({reason}); the steps after it are trained again")

    # ----- the end ------------------------------------------------------------------------------
    def history_run(self) -> Run:
        """The guard's own history as a lossdx Run (what ``lossdx analyze guard_history.jsonl`` reads)."""
        return Run(series=self.history.series(), source={"path": os.path.join(self.out_dir or ".", "guard_history.jsonl"),
                                             "format": "jsonl"},
                   config=dict(self.config), meta={"notes": list(self.notes), "log_window": 1,
                                                   "profile": self.context.profile.to_dict()})

    @never_raises(lambda self: None)
    def flush_history(self) -> None:
        """Append the steps not yet written to ``guard_history.jsonl`` (a rolled-back step is written again; the
        reader keeps the last value of a step, as for resumed runs)."""
        if not self.writer:
            return
        h = self.history
        if self._history_written >= len(h):
            return
        lines = [json.dumps({"step": h.step_at(i), **{_HISTORY_NAMES.get(k, k): v for k, v in h.row_at(i).items()}})
                 for i in range(self._history_written, len(h))]
        self._write(lambda: _append(os.path.join(self._dir, "guard_history.jsonl"), lines))
        self._history_written = len(h)

    @never_raises(lambda self: None)
    def finish(self, reason: str = "end of training") -> Any:
        """Close open events (detectors' ``finalize``), write the history and a lossdx report of it; returns the
        report (None on ranks that do not write). Called once; later calls return None."""
        if self.finished:
            return None
        self.finished = True
        for det in self.detectors:
            self.findings.extend(det.finalize())
        from ..detectors.wholerun import clear_caches

        clear_caches()
        self.notes.append(f"guard: finished ({reason})")
        self.flush_history()
        if not (self.writer and self.policy.write_report) or not len(self.history):
            return None
        from ..analyze import analyze
        from ..report import render_json

        report = analyze(self.history_run())
        if self.writer:
            self._write(lambda: write_atomic(os.path.join(self._dir, "guard_report.json"), render_json(report)))
        return report


def _state_of(det: Detector) -> dict[str, Any]:
    """``det.state_dict()`` without copying the whole-run point buffers: they are append-only (entries below ``n``
    never change, growth allocates anew), so a checkpoint may share their arrays and keep its own ``n``. A
    rollback deep-copies them back (``load_state_dict``), and drops every later checkpoint, the only ones that
    could see entries written after the restore."""
    state = {k: v for k, v in vars(det).items() if k.endswith("_")}
    memo: dict[int, Any] = {}
    for buf in _point_buffers(state):
        shared = PointBuffer.__new__(PointBuffer)
        shared._s, shared._v, shared.n = buf._s, buf._v, buf.n
        memo[id(buf)] = shared
    return copy.deepcopy(state, memo)


def _point_buffers(x: Any) -> Iterator[PointBuffer]:
    if isinstance(x, PointBuffer):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _point_buffers(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _point_buffers(v)


def _append(path: str, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))


def _plain(x: Any) -> Any:
    """Batch ids as JSON: tensors and arrays become lists."""
    if x is None or isinstance(x, (int, float, str, bool)):
        return x
    tolist = getattr(x, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return str(x)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x
