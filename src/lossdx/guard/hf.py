"""The guard as an HF ``TrainerCallback`` (``pip install 'lossdx[hf]'``).

Per-step values without waiting for ``logging_steps``: a forward hook takes the loss of every training
micro-batch (so a NaN that ``logging_nan_inf_filter`` hides from the logged loss is seen at its step), the
gradient norm is computed on the device at ``on_pre_optimizer_step``. The callback steers the Trainer only through
``TrainerControl`` (``should_training_stop``); a rollback restores the model, optimizer and scheduler in place from
the last good snapshot, and the Trainer continues with the next batches (those since the snapshot are skipped).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("lossdx.guard.hf needs transformers: pip install 'lossdx[hf]'") from exc

from .device import grad_norm
from .loop import TorchGuard
from .policy import Policy


class LossdxCallback(TrainerCallback):
    """``Trainer(..., callbacks=[LossdxCallback(policy=Policy(on_nan="rollback"))])``.

    ``out_dir`` defaults to ``<output_dir>/lossdx_guard``. ``batch_ids(inputs) -> ids`` may name the samples of a
    micro-batch from the model inputs (e.g. an index column kept with ``remove_unused_columns=False``).
    Note: HF clips before ``on_pre_optimizer_step``, so with ``max_grad_norm > 0`` the norm the guard sees is the
    clipped one (non-finite stays non-finite).
    """

    def __init__(self, out_dir: str | None = None, policy: Policy | None = None, check_every: int = 10,
                 skip_updates: bool = False, batch_ids: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.out_dir, self.policy, self.check_every = out_dir, policy, check_every
        self.skip_updates, self.batch_ids = skip_updates, batch_ids
        self.guard: TorchGuard | None = None
        self._hook: Any = None
        self._loss: torch.Tensor | None = None
        self._n = 0
        self._ids: list[Any] = []
        self._gn: torch.Tensor | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       lr_scheduler: Any = None, **kwargs: Any) -> None:
        self.guard = TorchGuard(model, optimizer, lr_scheduler, out_dir=self.out_dir or os.path.join(
            args.output_dir, "lossdx_guard"), policy=self.policy, check_every=self.check_every,
            skip_updates=self.skip_updates, rewind_steps=False,
            config={"learning_rate": args.learning_rate, "max_steps": state.max_steps or None})
        self.guard.step_no = state.global_step
        self._hook = model.register_forward_hook(self._on_forward, with_kwargs=True)

    def _on_forward(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if loss is None:
            return
        loss = loss.detach()
        self._loss = loss if self._loss is None else self._loss + loss
        self._n += 1
        if self.batch_ids is not None:
            self._ids.append(self.batch_ids(kwargs))

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                              **kwargs: Any) -> None:
        g = self.guard
        if g is None or g.disabled:
            return
        self._gn = grad_norm(model.parameters())
        if g.updater is not None and self._loss is not None:
            ok = g._stats(self._loss).verdict(self._loss / max(self._n, 1), self._gn, use_loss=g.world == 1)
            g.updater.before(ok)
            g.pending_ok = ok

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.guard is not None and self.guard.updater is not None:
            self.guard.updater.after()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        g = self.guard
        if g is None or self._loss is None:
            return control
        loss, ids, gn = self._loss / max(self._n, 1), self._ids, self._gn
        self._loss, self._n, self._ids, self._gn = None, 0, [], None
        g.step_no = state.global_step - 1  # the Trainer's count is the truth (resumed runs)
        act = g.step(loss, grad_norm=gn, batch_ids=ids or None)
        if act.stop:
            control.should_training_stop = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.guard is not None:
            self.guard.close()
