"""The HF TrainerCallback with a tiny GPT-2 built from its config (no downloads), on the CPU."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lossdx.guard import Policy  # noqa: E402
from lossdx.guard.hf import LossdxCallback  # noqa: E402

from .tiny import batch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


class Counting(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.rows = []
        for pos in range(n):
            x, y, _ids = batch(pos)
            for row in torch.cat([x, y[:, -1:]], dim=1):
                self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def _train(tmp_path, policy, nan_at_call: int | None, max_steps: int = 60, logging_steps: int = 10):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=32, n_positions=32, n_embd=32, n_layer=1, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(config)
    calls = {"n": 0}

    def poison(module, args, output):  # the injected NaN input, at one training forward
        if module.training:
            calls["n"] += 1
            if calls["n"] == nan_at_call:
                return output * math.nan
        return output

    model.transformer.wte.register_forward_hook(poison)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=max_steps, per_device_train_batch_size=8,
        learning_rate=3e-3, logging_steps=logging_steps, save_strategy="no", report_to=[], use_cpu=True,
        disable_tqdm=True, dataloader_num_workers=0, logging_nan_inf_filter=True, seed=0)
    callback = LossdxCallback(out_dir=str(tmp_path / "guard"), policy=policy, check_every=5)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Counting(80), callbacks=[callback])
    trainer.train()
    return trainer, callback


def test_nan_hidden_by_logging_nan_inf_filter_is_caught_at_its_step(tmp_path):
    trainer, callback = _train(tmp_path, Policy(on_nan="warn", snapshot_every=0), nan_at_call=23)
    logged = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert logged and all(math.isfinite(v) for v in logged)  # HF's log shows no NaN at all
    nan_records = [r for r in callback.guard.records if r["kind"] == "nan" and r["metric"] == "train/loss"]
    assert nan_records and nan_records[0]["step"] == 23  # the 23rd optimizer step
    with open(tmp_path / "guard" / "guard_report.json", encoding="utf-8") as fh:
        report = json.load(fh)
    assert any(f["kind"] == "nan" and f["start_step"] == 23 for f in report["findings"])


def test_stop_through_trainer_control(tmp_path):
    trainer, callback = _train(tmp_path, Policy(on_nan="stop", snapshot_every=0), nan_at_call=20)
    assert trainer.state.global_step < 60
    assert callback.guard.records[0]["action"] == "stop" and callback.guard.closed


def test_rollback_restores_good_weights_and_training_goes_on(tmp_path):
    trainer, callback = _train(tmp_path, Policy(on_nan="rollback", snapshot_every=10), nan_at_call=33)
    assert trainer.state.global_step == 60
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert any("rolled back to step 30" in n for n in callback.guard.core.notes)
    last = callback.guard.core.row(60)["train/loss"]
    assert math.isfinite(last) and last < math.log(32)
