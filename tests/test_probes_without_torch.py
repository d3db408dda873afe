"""Without PyTorch the probes fail with one clear line, and importing lossdx never needs it."""

import builtins

import pytest

from lossdx.exceptions import LossdxError
from lossdx.probes import lr_find, overfit_one_batch


def test_missing_torch_is_a_clear_error(monkeypatch):
    real = builtins.__import__

    def no_torch(name, *a, **k):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(LossdxError, match=r"pip install 'lossdx\[torch\]'"):
        overfit_one_batch(object(), None)
    with pytest.raises(LossdxError, match=r"pip install 'lossdx\[torch\]'"):
        lr_find(object(), object(), [])
