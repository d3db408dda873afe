"""The guard for a plain PyTorch loop; the HF and Lightning adapters drive the same object.

Per step the loop hands over the loss and the gradient norm as tensors (never ``.item()``): they go into the
device buffer (:class:`~lossdx.guard.device.DeviceStats`) and reach the detectors every ``check_every`` steps, one
chunk late, so no step waits for the host. Snapshots are written every ``policy.snapshot_every`` steps after the
steps before them were checked (a poisoned state is never saved as good).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import torch

from ..keys import GRAD_NORM, LOSS_SCALE, LR, TRAIN_LOSS
from .core import Guard, never_raises
from .device import GRAD_NORM as COL_GRAD_NORM, LOSS as COL_LOSS, LOSS_SCALE as COL_SCALE, SKIPPED as COL_SKIPPED
from .device import DeviceStats, UpdateGuard
from .policy import Action, Policy
from .snapshot import SnapshotStore, rng_state, set_rng_state

log = logging.getLogger("lossdx.guard")


def dist_info(process_group: Any = None) -> tuple[int, int]:
    """(rank, world size) of torch.distributed, or (0, 1) when it is not initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(process_group), dist.get_world_size(process_group)
    return 0, 1


class TorchGuard:
    """Guard a PyTorch training loop.

    ``guard.step(loss, grad_norm=..., batch_ids=..., position=...)`` after each optimizer step returns an
    :class:`Action`: ``stop`` (leave the loop), or ``position`` (the data position to train next: the current one
    plus one, or where a rollback resumes, skipped batches already jumped). ``guard.optimizer_step(loss, grad_norm)``
    replaces ``optimizer.step()`` when ``skip_updates=True``: it undoes a non-finite or > 6-sigma update in the graph.
    ``guard.close()`` at the end writes the report. Under torch.distributed every rank must call ``step`` every step
    (the check all-reduces a small tensor); rank 0 writes the records and the report, every rank its snapshots.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
                 scaler: Any = None, out_dir: str = "lossdx_guard", policy: Policy | None = None,
                 check_every: int = 10, skip_updates: bool = False, config: Mapping[str, Any] | None = None,
                 rewind_steps: bool = True, process_group: Any = None, sigma: float = 6.0) -> None:
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.policy = policy or Policy()
        self.rank, self.world = dist_info(process_group)
        self.process_group = process_group
        self.core = Guard(out_dir, self.policy, config=config, writer=self.rank == 0)
        self.out_dir = out_dir
        self.check_every = max(1, int(check_every))
        self.skip_updates = skip_updates
        self.rewind_steps = rewind_steps
        self.sigma = sigma
        self.stats: DeviceStats | None = None
        self.updater = UpdateGuard(optimizer) if skip_updates else None
        self.store = (SnapshotStore(os.path.join(out_dir, "snapshots"), self.policy.keep_snapshots, self.rank)
                      if self.policy.snapshot_every else None)
        self.step_no = 0
        self.meta: list[tuple[Any, ...]] = []  # host-side facts of steps not yet checked
        self.skip: set[int] = set()
        self.pending_ok: torch.Tensor | None = None
        self.closed = False
        self.disabled = False
        self.last_position: Any = None
        if self.store is not None:
            self._snapshot(0, position=0)

    # ``self.disabled``: this adapter's own code failed (logged once). The core disables itself separately; this
    # object then keeps its schedule of all-reduces, so the other ranks never wait for a rank whose core failed.

    # ----- the step -----------------------------------------------------------------------------
    def _stats(self, loss: torch.Tensor) -> DeviceStats:
        if self.stats is None:
            self.stats = DeviceStats(self.check_every, loss.device, sigma=self.sigma)
        return self.stats

    def optimizer_step(self, loss: torch.Tensor, grad_norm: Any = None) -> None:
        """``optimizer.step()``; with ``skip_updates`` the update is undone in the graph when the loss or the
        gradient norm is non-finite or more than ``sigma`` above its running mean (no host sync)."""
        if self.updater is None or self.disabled:
            self.optimizer.step()
            return
        try:
            ok = self._stats(loss).verdict(loss, grad_norm, use_loss=self.world == 1)
        except Exception as exc:  # noqa: BLE001 - never crash training: fall back to a plain step
            self.disabled = True
            log.error("lossdx guard disabled after an internal error in optimizer_step: %s", exc)
            self.optimizer.step()
            return
        self.updater.step(ok)
        self.pending_ok = ok

    def _fallback(self) -> Action:
        pos = None if self.last_position is None else self.last_position + 1
        return Action(step=self.step_no, position=pos)

    @never_raises(lambda self: self._fallback())
    def _guarded_step(self, loss: torch.Tensor, grad_norm: Any, lr: Any, batch_ids: Any, position: Any,
                      loss_scale: Any) -> Action:
        self.step_no += 1
        if lr is None and self.optimizer.param_groups:
            lr = self.optimizer.param_groups[0].get("lr")
        if torch.is_tensor(lr):
            lr = None  # a tensor LR would need a sync; the scheduler's float is enough
        if loss_scale is None and self.scaler is not None and getattr(self.scaler, "is_enabled", lambda: False)():
            loss_scale = getattr(self.scaler, "_scale", None)
        stats = self._stats(loss)
        ok, self.pending_ok = self.pending_ok, None
        full = stats.push(loss, grad_norm, loss_scale, ok)
        self.meta.append((self.step_no, None if lr is None else float(lr), batch_ids, position,
                          grad_norm is not None, loss_scale is not None))
        action = Action(step=self.step_no)
        if full:
            action = self._drain(force=False)
        if action.kind in ("continue", "warn") and self.store is not None \
                and self.step_no % self.policy.snapshot_every == 0:
            action = action.stronger(self._drain(force=True))
            if action.kind in ("continue", "warn"):
                self._snapshot(self.step_no, self._next_position(position))
        return self._act(action, position)

    def step(self, loss: torch.Tensor, grad_norm: Any = None, lr: float | None = None, batch_ids: Any = None,
             position: int | None = None, loss_scale: Any = None) -> Action:
        """Record one optimizer step (tensors stay on the device). ``grad_norm``: the norm before clipping
        (``clip_grad_norm_``'s return value); ``batch_ids``: sample indices or token offsets of this batch;
        ``position``: this batch's index in the data order (what a rollback rewinds and skips; without it a
        rollback restores the state and the loop must rewind its data itself)."""
        self.last_position = position  # before anything can fail: a disabled guard still advances the loop
        if self.closed:  # after a stop or close(): nothing more to watch
            return self._fallback()
        return self._guarded_step(loss, grad_norm, lr, batch_ids, position, loss_scale)

    def _next_position(self, position: Any) -> Any:
        if position is None:
            return None
        nxt = int(position) + 1
        while nxt in self.skip:
            nxt += 1
        return nxt

    # ----- checks -------------------------------------------------------------------------------
    def _drain(self, force: bool) -> Action:
        """Check the chunk in flight; start sending the rows written since. ``force`` also checks those (a sync):
        before a snapshot and at the end."""
        stats = self.stats
        if stats is None:
            return Action(step=self.step_no)
        action = self._check(stats.take())
        if action.kind in ("rollback", "stop"):
            return action
        if stats.n:
            if self.world > 1:
                stats.reduce(stats.n, self.world)
            stats.start_copy()
        if force:
            action = action.stronger(self._check(stats.take()))
        return action

    def _check(self, rows: list[list[float]]) -> Action:
        action = Action(step=self.step_no)
        for row in rows:
            step, lr, batch_ids, position, has_gn, has_scale = self.meta.pop(0)
            values = {TRAIN_LOSS: row[COL_LOSS]}
            if has_gn:
                values[GRAD_NORM] = row[COL_GRAD_NORM]
            if lr is not None:
                values[LR] = lr
            if has_scale:
                values[LOSS_SCALE] = row[COL_SCALE]
            if row[COL_SKIPPED] > 0:
                self.core.notes.append(f"guard: update of step {step} undone in the graph "
                                       f"(loss {row[COL_LOSS]:.4g}, grad norm {row[COL_GRAD_NORM]:.4g})")
            act = self.core.observe(step, values, batch_ids=batch_ids, position=position)
            if act.kind in ("rollback", "stop"):
                self.meta.clear()  # the rest of the chunk is thrown away with the state that produced it
                return act
            action = action.stronger(act)
        self.core.flush_history()
        return action

    # ----- actions ------------------------------------------------------------------------------
    def _act(self, action: Action, position: Any) -> Action:
        if abs(self.core.lr_scale - self._applied_lr_scale()) > 1e-12:
            self._apply_lr_scale()
        if action.kind == "rollback":
            done, resumed = self._rollback(action)
            if not done:
                action.kind = "stop"
                action.reason += " (no good snapshot to roll back to)"
            else:
                action.position = resumed
                action.step = self.step_no
                return action
        if action.kind == "stop":
            self._save_poisoned()
            self._finish(f"stopped at step {self.step_no}: {action.reason}")
            return action
        action.position = self._next_position(position)
        return action

    def _applied_lr_scale(self) -> float:
        return getattr(self, "_lr_scale_applied", 1.0)

    def _apply_lr_scale(self) -> None:
        factor = self.core.lr_scale / self._applied_lr_scale()
        for group in self.optimizer.param_groups:
            group["lr"] = group["lr"] * factor
        if self.scheduler is not None and hasattr(self.scheduler, "base_lrs"):
            self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
        self._lr_scale_applied = self.core.lr_scale

    def _snapshot(self, step: int, position: Any) -> None:
        if self.store is None:
            return
        state = {"step": step, "position": position, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                 "scaler": None if self.scaler is None else self.scaler.state_dict(),
                 "rng": rng_state(),
                 "guard": {"lr_scale": self._applied_lr_scale(), "skip": sorted(self.skip),
                           "stats": None if self.stats is None else
                           [self.stats.mean.detach().cpu(), self.stats.var.detach().cpu(),
                            self.stats.count.detach().cpu()]}}
        self.store.save(step, state)
        self.core.checkpoint(step)
        for old in list(self.core.checkpoints):
            if old not in self.store.steps():
                self.core.forget(old)

    def _save_poisoned(self) -> None:
        """The state at a stop or before a rollback, for the post-mortem (never used as a good snapshot)."""
        if self.store is None:
            return
        path = os.path.join(self.store.directory, f"poisoned-rank{self.rank}.pt")
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            torch.save({"step": self.step_no, "model": self.model.state_dict(),
                        "optimizer": self.optimizer.state_dict()}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _rollback(self, action: Action) -> tuple[bool, Any]:
        """Restore the newest good snapshot before the first offending step; skip the offending batches and the
        next ``policy.skip_next``. Returns (done, the position to continue from); not done: stop instead."""
        if self.store is None:
            return False, None
        first_bad = min(int(f.start_step) for f in action.events)
        target = self.store.latest(before=first_bad)
        while target is not None and target not in self.core.checkpoints:
            target = self.store.latest(before=target)
        if target is None:
            return False, None
        self._save_poisoned()
        for f in action.events:
            pos = self.core.position_of(int(f.start_step))
            if isinstance(pos, int):
                self.skip.update(range(pos, pos + 1 + self.policy.skip_next))
        state = self.store.load(target)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self._lr_scale_applied = state["guard"]["lr_scale"]
        self._apply_lr_scale()  # an LR cut decided after the snapshot survives the rollback
        if self.stats is not None:
            saved = state["guard"]["stats"]
            if saved is not None:
                for t, v in zip((self.stats.mean, self.stats.var, self.stats.count), saved):
                    t.copy_(v.to(t.device))
            self.stats.n = 0
            self.stats.pending = None
        self.meta.clear()
        for step in self.store.steps():
            if step > target:
                self.store.remove(step)
                self.core.forget(step)
        skipped = sorted(self.skip)
        self.core.rollback_to(target, f"{action.events[0].kind} at step {first_bad}; skipping data positions "
                                      f"{_ranges(skipped) if skipped else 'none (unknown positions)'}")
        if self.rewind_steps:
            self.step_no = target
        position = state["position"]
        while position is not None and position in self.skip:
            position += 1
        return True, position

    # ----- the end ------------------------------------------------------------------------------
    def close(self) -> Any:
        """Check the last steps, write the history and the report; returns the report on the writing rank."""
        if self.closed:
            return None
        try:
            if not self.disabled and self.stats is not None:
                self._drain(force=True)
        except Exception as exc:  # noqa: BLE001
            self.disabled = True
            log.error("lossdx guard disabled after an internal error in close: %s", exc)
        return self._finish("end of training")

    def _finish(self, reason: str) -> Any:
        self.closed = True
        return self.core.finish(reason)

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.core.records


def _ranges(xs: list[int]) -> str:
    out: list[str] = []
    start = prev = -2
    for x in xs:
        if start == -2:
            start = prev = x
        elif x == prev + 1:
            prev = x
        else:
            out.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = x
    if start != -2:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ", ".join(out)
