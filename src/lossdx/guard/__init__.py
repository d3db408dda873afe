"""The live guard: watch training from inside the loop, and warn, stop, snapshot, roll back or skip.

The core (:class:`Guard`, :class:`Policy`, :class:`Action`) needs numpy only. The torch parts load on first use:
:class:`TorchGuard` (plain PyTorch loops), ``lossdx.guard.hf.LossdxCallback`` (HF Trainer) and
``lossdx.guard.lightning.LossdxLightningCallback`` (Lightning).
"""

from __future__ import annotations

from typing import Any

from .core import Guard
from .policy import Action, Policy

_LAZY = {"TorchGuard": ("loop", "torch"), "load_snapshot": ("snapshot", "torch")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, extra = _LAZY[name]
        try:
            import torch  # noqa: F401 - only to give a helpful error when it is missing
        except ImportError as exc:
            raise ImportError(f"lossdx.guard.{name} needs PyTorch: pip install 'lossdx[{extra}]'") from exc
        import importlib

        return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Action", "Guard", "Policy", "TorchGuard", "load_snapshot"]
