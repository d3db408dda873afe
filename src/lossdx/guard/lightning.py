"""The guard as a Lightning ``Callback`` (``pip install 'lossdx[lightning]'``).

It sees every batch (``on_train_batch_end``), not only Lightning's sampled logging steps, and the gradient norm
before clipping (``on_before_optimizer_step`` runs before Lightning clips). A stop sets ``trainer.should_stop``; a
rollback restores the module, optimizer and scheduler in place from the last good snapshot and training goes on
with the next batches (those since the snapshot are skipped).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("lossdx.guard.lightning needs lightning: pip install 'lossdx[lightning]'") from exc

from .device import grad_norm
from .loop import TorchGuard
from .policy import Policy


class LossdxLightningCallback(Callback):
    """``Trainer(callbacks=[LossdxLightningCallback(policy=Policy(on_spike="rollback"))])``; one optimizer,
    automatic optimization. With gradient accumulation one optimizer step's loss is the mean of its batches.

    ``batch_ids(batch) -> ids`` names the samples of the step's last batch (default: ``(epoch, batch_idx)``).
    """

    def __init__(self, out_dir: str | None = None, policy: Policy | None = None, check_every: int = 10,
                 skip_updates: bool = False, batch_ids: Callable[[Any], Any] | None = None) -> None:
        self.out_dir, self.policy, self.check_every = out_dir, policy, check_every
        self.skip_updates, self.batch_ids = skip_updates, batch_ids
        self.guard: TorchGuard | None = None
        self._gn: torch.Tensor | None = None
        self._stepped = False  # the optimizer stepped during this batch (not an accumulation micro-batch)
        self._loss: torch.Tensor | None = None
        self._count = 0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        optimizer = trainer.optimizers[0]
        configs = getattr(trainer, "lr_scheduler_configs", None) or []
        scheduler = configs[0].scheduler if configs else None
        out = self.out_dir or os.path.join(trainer.default_root_dir, "lossdx_guard")
        self.guard = TorchGuard(pl_module, optimizer, scheduler, out_dir=out, policy=self.policy,
                                check_every=self.check_every, skip_updates=self.skip_updates, rewind_steps=False,
                                config={"max_steps": trainer.max_steps if trainer.max_steps > 0 else None})
        self.guard.step_no = trainer.global_step

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        g = self.guard
        self._stepped = True
        if g is None or g.disabled:
            return
        self._gn = grad_norm(pl_module.parameters())
        if g.updater is not None and self._gn is not None:
            # the loss is not known here: judge the update by its gradient norm (non-finite or > sigma)
            g.pending_ok = g._stats(self._gn).verdict(self._gn, self._gn, use_loss=False)
            g.updater.before(g.pending_ok)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        g = self.guard
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if g is None or loss is None or not hasattr(loss, "detach"):
            return
        total = loss.detach() if self._loss is None else self._loss + loss.detach()
        self._loss = total
        self._count += 1
        if not self._stepped:  # gradient accumulation: the step ends with a later batch
            return
        step_loss = total / self._count
        self._loss, self._count, self._stepped = None, 0, False
        ids = self.batch_ids(batch) if self.batch_ids is not None else (trainer.current_epoch, batch_idx)
        gn, self._gn = self._gn, None
        if g.updater is not None:
            g.updater.after()
        g.step_no = trainer.global_step - 1
        act = g.step(step_loss, grad_norm=gn, batch_ids=ids)
        if act.stop:
            trainer.should_stop = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.guard is not None:
            self.guard.close()
