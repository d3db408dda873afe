"""What the guard does when a detector fires: the policy, and the action it hands back to the training loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: actions, mildest first; when several triggers meet in one check, the strongest wins
ACTIONS = ("warn", "rollback", "stop")
_RANK = {"continue": 0, "warn": 1, "rollback": 2, "stop": 3}


@dataclass
class Policy:
    """Which action each kind of live event triggers, and how snapshots and rollbacks behave.

    ``on_*`` take ``"warn"`` (record it), ``"stop"`` (stop training cleanly) or ``"rollback"`` (restore the last
    good snapshot and skip the offending batches plus the next ``skip_next``). Every trigger also writes a spike
    record. After ``lr_cut_after`` loss spikes the learning rate is multiplied by ``lr_cut``; after
    ``max_rollbacks`` rollbacks a further rollback trigger stops training instead (it is not getting better).
    """

    on_nan: str = "rollback"  # a non-finite loss or gradient norm
    on_spike: str = "warn"  # the loss leaves its local level (the offline spike detector's threshold)
    on_grad_spike: str = "warn"  # the gradient norm leaves its level (10x by default)
    on_divergence: str = "stop"  # the loss stays well above its best level
    skip_next: int = 0  # batches skipped after the offending ones on a rollback (PaLM skipped 200-500)
    snapshot_every: int = 100  # steps between snapshots (0: no snapshots, so no rollback)
    keep_snapshots: int = 2  # good snapshots kept on disk (the newest K)
    lr_cut: float = 0.5  # factor applied to the learning rate ...
    lr_cut_after: int = 3  # ... after this many loss spikes (0: never)
    max_rollbacks: int = 3  # then a rollback trigger becomes a stop
    write_report: bool = True  # a lossdx report of the guard's history at the end or at a stop

    def __post_init__(self) -> None:
        for name in ("on_nan", "on_spike", "on_grad_spike", "on_divergence"):
            if getattr(self, name) not in ACTIONS:
                raise ValueError(f"Policy.{name} must be one of {', '.join(ACTIONS)}, not {getattr(self, name)!r}")
        if self.snapshot_every < 0 or self.keep_snapshots < 1 or self.skip_next < 0:
            raise ValueError("Policy: snapshot_every and skip_next must be >= 0 and keep_snapshots >= 1")
        if not 0 < self.lr_cut <= 1:
            raise ValueError("Policy.lr_cut must be in (0, 1]")

    def action_for(self, kind: str, metric: str) -> str:
        if kind == "nan":
            return self.on_nan
        if kind == "spike":
            return self.on_spike
        if kind == "grad_norm":
            return self.on_grad_spike
        if kind == "divergence":
            return self.on_divergence
        return "warn"


@dataclass
class Action:
    """What the training loop must do after a guard step.

    ``stop``: leave the loop (the guard has written its report). ``rollback``: the guard restored the last good
    snapshot; continue from ``position`` (the plain-loop adapter sets it; skipped batches are already jumped).
    ``step`` is the optimizer step the loop is at after the action.
    """

    kind: str = "continue"  # continue | warn | rollback | stop
    step: int = 0
    position: int | None = None
    reason: str = ""
    events: list[Any] = field(default_factory=list)

    @property
    def stop(self) -> bool:
        return self.kind == "stop"

    @property
    def rollback(self) -> bool:
        return self.kind == "rollback"

    def stronger(self, other: "Action") -> "Action":
        return other if _RANK[other.kind] > _RANK[self.kind] else self
