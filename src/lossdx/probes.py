"""Checks to run before burning GPUs: train on one batch (``overfit_one_batch``) and an LR range test (``lr_find``).

torch is an optional extra (``pip install 'lossdx[torch]'``), imported only when a probe runs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from .exceptions import LossdxError


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise LossdxError("the probes need PyTorch: pip install 'lossdx[torch]'") from None
    return torch


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, dict):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def _move(x: Any, device: Any) -> Any:
    torch = _torch()
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict):
        return {k: _move(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_move(v, device) for v in x)
    return x


def compute_loss(model: Any, batch: Any, loss_fn: Callable[..., Any] | None = None) -> Any:
    """The loss of ``model`` on ``batch``, for the common calling conventions.

    ``loss_fn(outputs, targets)`` when given (batch = ``(inputs, targets)``); otherwise a dict batch is passed as
    keyword arguments and ``.loss`` (HF) is taken, and ``model(inputs, targets)`` may return the loss or a tuple
    holding it (nanoGPT returns ``(logits, loss)``).
    """
    torch = _torch()
    x, y = _split(batch)
    if loss_fn is not None:
        out = model(**x) if isinstance(x, dict) else model(x)
        if hasattr(out, "logits") and not isinstance(out, torch.Tensor):
            out = out.logits
        return loss_fn(out, y)
    if isinstance(x, dict):
        out = model(**x)
    elif y is None:
        out = model(x)
    else:
        out = model(x, y)
    if isinstance(out, torch.Tensor) and out.dim() == 0:
        return out
    if getattr(out, "loss", None) is not None:
        return out.loss
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor) and o.dim() == 0:
                return o
    raise LossdxError("cannot find the loss in the model's output: pass loss_fn=(outputs, targets) -> loss")


@dataclass
class OverfitResult:
    """What training on one batch showed; ``ok`` is True when the loss fell towards zero."""

    ok: bool
    initial_loss: float
    final_loss: float
    steps: int
    losses: list[float]
    verdict: str
    causes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "initial_loss": self.initial_loss, "final_loss": self.final_loss, "steps": self.steps,
                "verdict": self.verdict, "causes": list(self.causes), "losses": list(self.losses)}

    def __str__(self) -> str:
        lines = [("PASS: " if self.ok else "FAIL: ") + self.verdict]
        lines += [f"  - {c}" for c in self.causes]
        return "\n".join(lines)


def _dropout_modules(model: Any) -> list[str]:
    torch = _torch()
    return [name or type(m).__name__ for name, m in model.named_modules()
            if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0]


def overfit_one_batch(model: Any, batch: Any, loss_fn: Callable[..., Any] | None = None, steps: int = 200,
                      lr: float = 1e-3, optimizer: Any = None, target_ratio: float = 0.1,
                      restore: bool = True) -> OverfitResult:
    """Train on one batch for ``steps`` steps; a healthy pipeline drives the loss towards zero.

    "If a single batch cannot converge, the data and labels are almost certainly mismatched" (the Qwen2.5
    post-mortem). ``ok`` means the loss fell below ``target_ratio`` x its start. Where it did not, the result
    lists the causes in the order to check them: a detached graph or frozen parameters (found directly, from
    the gradients), an LR too high (the loss rose or oscillated) or too low (it fell steadily but slowly),
    dropout left on, and data/labels mismatched. The model's weights and mode are restored afterwards.
    """
    torch = _torch()
    params = [p for p in model.parameters()]
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    saved = copy.deepcopy(model.state_dict()) if restore else None
    was_training = model.training
    causes: list[str] = []
    if not trainable:
        return OverfitResult(False, math.nan, math.nan, 0, [], "no parameter requires a gradient",
                             [f"frozen parameters: all {len(params)} parameter tensors have requires_grad=False; "
                              f"unfreeze what should train"])
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    opt = optimizer or torch.optim.Adam([p for _, p in trainable], lr=lr)
    losses: list[float] = []
    model.train()
    try:
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = compute_loss(model, batch, loss_fn)
            if not loss.requires_grad:
                return OverfitResult(False, float(loss.detach()), float(loss.detach()), step, [float(loss.detach())],
                                     "the loss is detached from the graph: nothing can train",
                                     ["detached graph: the loss has no grad_fn (a .detach(), .item(), .numpy() or "
                                      "torch.no_grad() between the model and the loss); backward() would fail"])
            if not torch.isfinite(loss):
                causes.append(f"the loss became {float(loss)} at step {step}: LR {lr:g} too high, or NaN/Inf in the "
                              f"batch (run lossdx check-data)")
                losses.append(float(loss.detach()))
                break
            loss.backward()
            if step == 0:
                no_grad = [n for n, p in trainable if p.grad is None or not bool(torch.any(p.grad != 0))]
                if no_grad:
                    causes.append(f"detached graph: {len(no_grad)} of {len(trainable)} trainable parameter tensors "
                                  f"get no gradient ({', '.join(no_grad[:4])}{', ...' if len(no_grad) > 4 else ''}); "
                                  f"look for .detach()/.data/no_grad on the path from them to the loss")
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        if saved is not None:
            model.load_state_dict(saved)
        model.train(was_training)
    initial = losses[0] if losses else math.nan
    tail = losses[-max(1, len(losses) // 10):]
    final = float(np.mean(tail)) if tail else math.nan
    fell = math.isfinite(final) and final <= target_ratio * initial
    if fell and not causes:
        return OverfitResult(True, initial, final, len(losses), losses,
                             f"the loss fell from {initial:.4g} to {final:.4g} in {len(losses)} steps on one batch: "
                             f"the model, loss and labels can learn")
    if not causes or not causes[0].startswith("detached"):
        arr = np.asarray(losses)
        if arr.size >= 4 and np.isfinite(arr).all():
            ups = np.mean(np.diff(arr) > 0)
            if arr[-1] > arr[0] or ups > 0.4:
                causes.append(f"LR too high: the loss rose or oscillated ({ups:.0%} of the steps went up); retry with "
                              f"lr={lr / 10:g}")
            elif final < 0.7 * initial:
                causes.append(f"LR too low or too few steps: the loss falls steadily ({initial:.4g} -> {final:.4g}) "
                              f"but slowly; retry with lr={lr * 3:g} or steps={steps * 3}")
        drop = _dropout_modules(model)
        if drop:
            causes.append(f"dropout left on in {len(drop)} modules ({', '.join(drop[:3])}): it keeps the loss above "
                          f"zero; set p=0 for this test")
        if frozen:
            causes.append(f"frozen parameters: {len(frozen)} tensors have requires_grad=False "
                          f"({', '.join(frozen[:3])}); if they should train, unfreeze them")
        causes.append("data/labels mismatched: a model that cannot fit a single batch usually sees labels that do not "
                      "belong to its inputs (shuffled, shifted twice, or from another row); run lossdx check-data")
    verdict = (f"the loss did not fall towards zero on one batch ({initial:.4g} -> {final:.4g} after {len(losses)} "
               f"steps; needed <= {target_ratio:g}x the start)") if not fell else \
        (f"the loss fell ({initial:.4g} -> {final:.4g}) but not every parameter trains")
    return OverfitResult(False, initial, final, len(losses), losses, verdict, causes)


@dataclass
class LRFindResult:
    """An exponential LR range test: the curve and the suggested learning rates."""

    lrs: list[float]
    losses: list[float]  # smoothed
    raw_losses: list[float]
    steepest: float | None
    valley: float | None
    diverged_at: float | None

    @property
    def suggested(self) -> float | None:
        """The steepest-descent LR (Smith's and torch-lr-finder's choice); ``valley`` is fastai's alternative."""
        return self.steepest if self.steepest is not None else self.valley

    def to_dict(self) -> dict[str, Any]:
        return {"lrs": self.lrs, "losses": self.losses, "raw_losses": self.raw_losses, "steepest": self.steepest,
                "valley": self.valley, "suggested": self.suggested, "diverged_at": self.diverged_at}

    def to_html(self) -> str:
        """The curve as one self-contained HTML page, drawn by the HTML report's plotter (lossdx.report.html),
        with the suggestions marked; x is log10 of the learning rate."""
        from .report.html import e, page

        def xs(lr: float) -> float:
            return round(math.log10(lr), 6)

        def ys(v: list[float]) -> list[float | None]:
            return [float(f"{y:.6g}") if math.isfinite(y) else None for y in v]

        x = [xs(lr) for lr in self.lrs]
        marks = [(name, lr) for name, lr in (("steepest", self.steepest), ("valley", self.valley),
                                             ("diverged", self.diverged_at)) if lr is not None]
        panel = {"title": "loss vs log10(learning rate)", "height": 280, "log": True, "phases": [],  # divergence dwarfs the rest
                 "series": [{"name": "loss (smoothed)", "x": x, "y": ys(self.losses), "dash": False,
                             "nonfinite": [], "points": len(x)},
                            {"name": "loss", "x": x, "y": ys(self.raw_losses), "dash": True, "nonfinite": [],
                             "points": len(x)}],
                 "findings": [{"kind": name, "severity": "warning" if name == "diverged" else "info",
                               "start": xs(lr), "end": xs(lr), "message": f"{name}: lr {lr:.3g}", "metric": "loss"}
                              for name, lr in marks]}
        data = {"x_min": x[0] if x else 0, "x_max": x[-1] if len(x) > 1 else 1, "x_label": "log10 learning rate",
                "panels": [panel]}
        header = (f"<h1>LR range test</h1><p>{e(str(self))}</p>")
        return page("lossdx lr_find", header, data, "")

    def __str__(self) -> str:
        stop = f"; diverged at {self.diverged_at:.3g}" if self.diverged_at else ""
        return (f"suggested LR {_g(self.suggested)} (valley {_g(self.valley)}, steepest descent "
                f"{_g(self.steepest)}) from {len(self.lrs)} steps over {self.lrs[0]:.3g}..{self.lrs[-1]:.3g}{stop}")


def _g(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _steepest(lrs: np.ndarray, losses: np.ndarray, skip_start: int = 10, skip_end: int = 5) -> float | None:
    """The LR where the smoothed loss falls fastest per log-LR (torch-lr-finder's and fastai's 'steep')."""
    if lrs.size < skip_start + skip_end + 3:
        skip_start, skip_end = 0, 0
    lr, ls = lrs[skip_start: lrs.size - skip_end], losses[skip_start: losses.size - skip_end]
    if lr.size < 3:
        return None
    g = np.gradient(ls)
    return float(lr[int(np.argmin(g))])


def _valley(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """fastai's 'valley': the longest descending subsequence of the loss, and an LR half-way down it."""
    n = losses.size
    if n < 3:
        return None
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        lower = losses[:i] > losses[i]
        if lower.any():
            lds[i] = max(lds[i], int(lds[:i][lower].max()) + 1)
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - int(lds[max_end])
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[max(0, min(n - 1, idx))])


def lr_find(model: Any, optimizer: Any, loader: Iterable[Any], loss_fn: Callable[..., Any] | None = None,
            start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100, smooth: float = 0.05,
            diverge_th: float = 5.0) -> LRFindResult:
    """Exponential LR range test (Smith 2015, fastai, torch-lr-finder): raise the LR from ``start_lr`` to
    ``end_lr`` over ``num_iter`` steps, stop when the smoothed loss exceeds ``diverge_th`` x its best, and
    suggest an LR: ``steepest`` (the fastest fall of the smoothed loss, the ``suggested`` one) and ``valley``
    (fastai's, half-way down the longest descent). The model's and the optimizer's
    states are restored afterwards, so training can start from the same point.
    """
    _torch()  # a clear error when PyTorch is missing
    if num_iter < 2:
        raise LossdxError("lr_find needs num_iter >= 2")
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    best = math.inf
    diverged = None
    it = iter(loader)
    model.train()
    try:
        for i in range(num_iter):
            lr = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))
            for g in optimizer.param_groups:
                g["lr"] = lr
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            optimizer.zero_grad(set_to_none=True)
            loss = compute_loss(model, batch, loss_fn)
            loss.backward()
            optimizer.step()
            v = float(loss.detach())
            lrs.append(lr)
            raw.append(v)
            s = v if not smoothed else smooth * v + (1 - smooth) * smoothed[-1]
            smoothed.append(s)
            if not math.isfinite(s) or s > diverge_th * best:
                diverged = lr
                break
            best = min(best, s)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        model.train(was_training)
    a_lr, a_loss = np.asarray(lrs), np.asarray(smoothed)
    keep = np.isfinite(a_loss)
    a_lr, a_loss = a_lr[keep], a_loss[keep]
    return LRFindResult(lrs, smoothed, raw, _steepest(a_lr, a_loss), _valley(a_lr, a_loss), diverged)


__all__ = ["LRFindResult", "OverfitResult", "compute_loss", "lr_find", "overfit_one_batch"]
