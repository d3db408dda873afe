"""The Lightning Callback with the tiny GPT on the CPU: every batch seen, stop and rollback."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from lossdx.guard import Policy  # noqa: E402
from lossdx.guard.lightning import LossdxLightningCallback  # noqa: E402

from .tiny import TinyGPT, batch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


class Positions(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 200

    def __getitem__(self, pos: int):
        x, y, _ids = batch(pos)
        return x, y, pos


class Module(pl.LightningModule):
    def __init__(self, nan_at: int | None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = TinyGPT()
        self.nan_at = nan_at

    def training_step(self, b, batch_idx):
        x, y, pos = b
        return self.net(x[0], y[0], poison=math.nan if int(pos[0]) == self.nan_at else 0.0)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


def _fit(tmp_path, policy, nan_at, max_steps=60, accumulate=1):
    callback = LossdxLightningCallback(out_dir=str(tmp_path / "guard"), policy=policy, check_every=5,
                                       batch_ids=lambda b: int(b[2][0]))
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=50, gradient_clip_val=1.0, default_root_dir=str(tmp_path),
                         callbacks=[callback], accumulate_grad_batches=accumulate)
    module = Module(nan_at)
    trainer.fit(module, torch.utils.data.DataLoader(Positions(), batch_size=1))
    return trainer, module, callback


def test_every_batch_is_seen_and_a_nan_stops_training(tmp_path):
    trainer, _module, callback = _fit(tmp_path, Policy(on_nan="stop", snapshot_every=0), nan_at=25)
    assert trainer.global_step < 60
    rec = callback.guard.records[0]
    assert rec["action"] == "stop" and rec["step"] == 26 and rec["batch_ids"] == 25
    assert len(callback.guard.core.history) >= 26  # every step, not Lightning's sampled logging steps


def test_rollback_restores_good_weights(tmp_path):
    trainer, module, callback = _fit(tmp_path, Policy(on_nan="rollback", snapshot_every=10), nan_at=35)
    assert trainer.global_step == 60
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert any("rolled back to step 30" in n for n in callback.guard.core.notes)


def test_gradient_accumulation_gives_one_row_per_optimizer_step(tmp_path):
    trainer, _module, callback = _fit(tmp_path, Policy(on_nan="stop", snapshot_every=0), nan_at=None,
                                      max_steps=20, accumulate=2)
    assert trainer.global_step == 20
    history = callback.guard.core.history
    assert len(history) == 20 and [history.step_at(i) for i in range(20)] == list(range(1, 21))
    assert callback.guard.records == []
