"""Per-step statistics kept on the device: no host synchronisation inside the training step.

Every step writes (loss, grad norm, loss scale, update skipped) into a k-row device buffer with tensor ops only;
every k steps the rows travel to the host in one copy (non-blocking into pinned memory on CUDA, read when its
event has completed), so the detectors see every step a few steps late. A running mean/variance on the device
feeds the in-graph skip: an update whose loss or gradient norm is non-finite or more than ``sigma`` standard
deviations above its running mean is undone with ``torch.where`` (OLMo-core's SkipStep idea), again without a sync.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

LOSS, GRAD_NORM, LOSS_SCALE, SKIPPED = range(4)


class DeviceStats:
    def __init__(self, check_every: int, device: torch.device | str, sigma: float = 6.0, warmup: int = 50,
                 beta: float = 0.99, rel_floor: float = 0.01) -> None:
        self.k = max(1, int(check_every))
        self.device = torch.device(device)
        self.sigma, self.warmup, self.beta, self.rel_floor = sigma, warmup, beta, rel_floor
        self.buf = torch.full((self.k, 4), math.nan, dtype=torch.float32, device=self.device)
        self.n = 0  # rows written since the last drain (a host counter: no sync)
        self.mean = torch.zeros(2, dtype=torch.float32, device=self.device)  # loss, grad norm
        self.var = torch.zeros(2, dtype=torch.float32, device=self.device)
        self.count = torch.zeros((), dtype=torch.float32, device=self.device)
        self.cuda = self.device.type == "cuda"
        self.nan = torch.full((), math.nan, dtype=torch.float32, device=self.device)
        self.host = torch.empty((self.k, 4), dtype=torch.float32, pin_memory=self.cuda)
        self.masks: dict[tuple[bool, bool], torch.Tensor] = {}
        self.pending: tuple[int, Any] | None = None  # rows in flight to self.host, and their CUDA event

    def _pair(self, loss: torch.Tensor, grad_norm: torch.Tensor | float | None) -> torch.Tensor:
        x = loss.detach().reshape(()).to(torch.float32)
        if grad_norm is None:
            g = self.nan
        elif torch.is_tensor(grad_norm):
            g = grad_norm.detach().reshape(()).to(device=self.device, dtype=torch.float32)
        else:
            g = torch.tensor(float(grad_norm), dtype=torch.float32, device=self.device)
        return torch.stack([x.to(self.device), g])

    def verdict(self, loss: torch.Tensor, grad_norm: torch.Tensor | float | None,
                use_loss: bool = True) -> torch.Tensor:
        """A 0-dim bool tensor: may this step's update be applied? Updates the running statistics with the
        steps it accepts. ``use_loss=False`` judges the gradient norm only (under DDP the norm is the same on
        every rank while the local loss is not, so every rank must reach the same verdict from the norm)."""
        x = self._pair(loss, grad_norm)
        key = (use_loss, grad_norm is not None)
        has = self.masks.get(key)
        if has is None:  # made once: a host-to-device copy every step could wait on the device
            has = self.masks[key] = torch.tensor(key, device=self.device)
        finite = torch.isfinite(x) | ~has
        std = torch.maximum(self.var.clamp_min(0).sqrt(), self.rel_floor * self.mean.abs())
        over = (x - self.mean > self.sigma * std) & has & (self.count >= self.warmup)
        ok = finite.all() & ~over.any()
        d = torch.where(torch.isfinite(x), x - self.mean, torch.zeros_like(x))
        first = self.count == 0
        new_mean = torch.where(first, torch.where(torch.isfinite(x), x, self.mean), self.mean + (1 - self.beta) * d)
        new_var = torch.where(first, torch.zeros_like(x), self.beta * (self.var + (1 - self.beta) * d * d))
        self.mean.copy_(torch.where(ok, new_mean, self.mean))
        self.var.copy_(torch.where(ok, new_var, self.var))
        self.count.add_(ok.to(torch.float32))
        return ok

    def push(self, loss: torch.Tensor, grad_norm: Any = None, loss_scale: Any = None,
             ok: torch.Tensor | None = None) -> bool:
        """Write one step's row; True when the buffer is full (time to drain)."""
        row = self.buf[self.n]
        row[:2].copy_(self._pair(loss, grad_norm))
        if loss_scale is not None:
            row[LOSS_SCALE].copy_(loss_scale.detach().reshape(()) if torch.is_tensor(loss_scale)
                                  else torch.tensor(float(loss_scale)))
        if ok is not None:
            row[SKIPPED].copy_((~ok).to(torch.float32))
        else:
            row[SKIPPED].fill_(0.0)
        self.n += 1
        return self.n >= self.k

    def reduce(self, rows: int, world_size: int) -> None:
        """Average the rows over the ranks (one all-reduce of a k x 4 tensor, on the device): every rank then
        decides on the same numbers, and a NaN on one rank is a NaN on all."""
        import torch.distributed as dist

        view = self.buf[:rows]
        dist.all_reduce(view, op=dist.ReduceOp.SUM)
        view.div_(world_size)

    def start_copy(self) -> None:
        """Send the filled rows to the host; on CUDA without waiting (pinned memory, an event marks the end)."""
        rows, self.n = self.n, 0
        if rows == 0:
            return
        if self.cuda:
            self.host[:rows].copy_(self.buf[:rows], non_blocking=True)
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()
            self.pending = (rows, event)
        else:
            self.host[:rows].copy_(self.buf[:rows])
            self.pending = (rows, None)

    def ready(self) -> bool:
        return self.pending is not None and (self.pending[1] is None or self.pending[1].query())

    def take(self) -> list[list[float]]:
        """The rows in flight, waiting for them if they have not arrived (a sync only when forced)."""
        if self.pending is None:
            return []
        rows, event = self.pending
        if event is not None:
            event.synchronize()
        self.pending = None
        return self.host[:rows].tolist()


class UpdateGuard:
    """Undo an optimizer update in the graph when ``ok`` is False: gradients that are not finite become zeros (so
    optimizer state created by this step holds no NaN), parameters and the optimizer's tensors on the parameters'
    device are restored with ``torch.where``. Costs one copy of the parameters and optimizer state per step;
    counters kept on another device (Adam's CPU ``step`` on CUDA) still advance for a skipped update."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.ok: torch.Tensor | None = None
        self.tensors: list[torch.Tensor] = []
        self.saved: list[torch.Tensor] = []

    def _tensors(self) -> list[torch.Tensor]:
        out = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                out.append(p.data)
                for t in self.optimizer.state.get(p, {}).values():
                    if torch.is_tensor(t) and t.device == p.device:
                        out.append(t)
        return out

    def before(self, ok: torch.Tensor) -> None:
        """Call just before ``optimizer.step()`` (gradients final)."""
        zero = torch.zeros((), device=ok.device)
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad
                    g.copy_(torch.where(ok.to(g.device), g, zero.to(device=g.device, dtype=g.dtype)))
        self.ok = ok
        self.tensors = self._tensors()
        self.saved = [t.clone() for t in self.tensors]

    def after(self) -> None:
        """Call just after ``optimizer.step()``: keep the update where ``ok``, else restore."""
        tensors, saved, ok = self.tensors, self.saved, self.ok
        self.tensors, self.saved, self.ok = [], [], None
        if ok is None:
            return
        for t, old in zip(tensors, saved):
            t.copy_(torch.where(ok.to(t.device), t, old))

    def step(self, ok: torch.Tensor) -> None:
        self.before(ok)
        self.optimizer.step()
        self.after()


def grad_norm(parameters: Iterable[torch.Tensor]) -> torch.Tensor | None:
    """The total L2 norm of the gradients, as a device tensor (no sync); None when there are no gradients."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return None
    norms = torch._foreach_norm(grads, 2.0) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
    total: torch.Tensor = torch.linalg.vector_norm(torch.stack([n.to(grads[0].device, torch.float32) for n in norms]))
    return total
