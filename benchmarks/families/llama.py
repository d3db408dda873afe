"""Family 9: a tiny LLaMA (HF `LlamaForCausalLM`: RMSNorm, SwiGLU, rotary) pre-trained from scratch with the HF Trainer.

Byte-level text (the prose and Python source the gpt/mlm families use), cosine schedule with warmup, some runs with
gradient accumulation, one with bf16 autocast. Each run writes trainer_state.json, the Trainer's printed log dicts
(train.log) and a TensorBoard event file with the tags the Trainer's TensorBoardCallback writes (train/loss,
train/grad_norm, train/learning_rate, eval/loss ...), and for about two runs in three training_args.json and the
model's config.json. Faults are injected in the data collator (a random-byte batch, labels rolled the wrong way),
the data stream (unshuffled domains), the data size, the TrainingArguments or the schedule.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time

import torch

from common import (RUNS, Labels, clean_dir, domain_code, domain_numbers, domain_prose, has_config, log, summarize,
                    write_tensorboard)
from finetune import _silence

FAMILY = "llama"
BLOCK = 64
VOCAB = 256

BASE = dict(seed=0, learning_rate=3e-3, lr_scheduler_type="cosine", warmup_ratio=0.1, max_steps=400,
            per_device_train_batch_size=16, gradient_accumulation_steps=1, weight_decay=0.1, logging_steps=10,
            eval_steps=50, max_grad_norm=1.0, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, intermediate_size=172, initializer_range=0.02, train_bytes=0, fault=None,
            fault_steps=(), bf16=False)

# name: (overrides, label) ; label = (verdict, cause, accept, symptom, steps, what was injected)
RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_llama": ({}, ("healthy", "healthy", [], None, [],
                           "nothing: AdamW 3e-3, cosine, 10% warmup, clip 1, batch 16, logging every 10")),
    "healthy_llama_accum4": ({"seed": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 4,
                              "gradient_accumulation_steps": 4, "logging_steps": 5, "max_steps": 300, "eval_steps": 30},
                             ("healthy", "healthy", [], None, [],
                              "nothing: lr 1e-3, batch 4 x 4 accumulation steps, logging every 5, eval every 30")),
    "healthy_llama_bf16": ({"seed": 2, "bf16": True, "logging_steps": 20, "eval_steps": 100},
                           ("healthy", "healthy", [], None, [],
                            "nothing: bf16 autocast on the CPU, logging every 20, eval every 100")),
    "healthy_llama_wide": ({"seed": 3, "hidden_size": 128, "num_hidden_layers": 4, "num_key_value_heads": 2,
                            "intermediate_size": 344, "learning_rate": 1e-3, "max_steps": 250, "warmup_ratio": 0.05,
                            "eval_steps": 25},
                           ("healthy", "healthy", [], None, [],
                            "nothing: width 128, 4 layers, grouped-query attention (2 kv heads), lr 1e-3, 5% warmup")),
    "healthy_llama_minlr": ({"seed": 4, "lr_scheduler_type": "cosine_with_min_lr", "per_device_train_batch_size": 32,
                             "max_steps": 300, "logging_steps": 15, "eval_steps": 60,
                             "args": {"lr_scheduler_kwargs": {"min_lr_rate": 0.1}}},
                            ("healthy", "healthy", [], None, [],
                             "nothing: cosine to 10% of the peak (cosine_with_min_lr), batch 32, logging every 15")),
    "healthy_llama_accum2_long": ({"seed": 5, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 2,
                                   "max_steps": 600, "warmup_ratio": 0.0, "args": {"warmup_steps": 50},
                                   "logging_steps": 20, "eval_steps": 100, "learning_rate": 2e-3},
                                  ("healthy", "healthy", [], None, [],
                                   "nothing: 600 steps, batch 8 x 2 accumulation, 50 warmup steps, lr 2e-3")),
    "healthy_llama_bs2": ({"seed": 6, "per_device_train_batch_size": 2, "logging_steps": 5, "learning_rate": 1e-3,
                           "max_steps": 500, "eval_steps": 100},
                          ("healthy", "healthy", [], None, [],
                           "nothing: batch 2 (noisy), lr 1e-3, logging every 5")),
    "lr_too_high": ({"seed": 10, "learning_rate": 0.3, "max_grad_norm": 0.0},
                    ("problem", "lr_too_high", ["lr_too_high"], "plateau", [],
                     "AdamW peak lr 0.3 (100x), no clipping (looked at: the loss falls 5.5 -> 3.0 in the warmup "
                     "and sits at 2.9-3.0 while the LR is high, 2.66 at the end; eval 3.34 -> 3.11 where the "
                     "healthy runs reach 2.1-2.5)")),
    "lr_too_low": ({"seed": 11, "learning_rate": 3e-6, "logging_steps": 5},
                   ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "AdamW peak lr 3e-6 (1000x too low)")),
    "cosine_horizon_bug": ({"seed": 12, "sched_total_steps": 100, "learning_rate": 5e-3},
                           ("warning", "lr_schedule_bug", ["lr_schedule_bug"], "lr_schedule", [100, 220, 340],
                            "get_cosine_schedule_with_warmup sized for 100 of 400 steps: past its horizon HF's cosine "
                            "rises again (0 at steps 100, 220, 340; back to the peak 5e-3 at 160, 280, 400). Looked "
                            "at: the loss shows no mark of the LR coming back (eval 2.95 -> 2.33, steady), so only "
                            "the logged LR shows the bug: warning")),
    "random_bytes_batches": ({"seed": 13, "fault": "random_bytes", "fault_steps": (200, 201, 202, 300),
                              "logging_steps": 5, "max_grad_norm": 0.0},
                             ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [205, 305],
                              "batches of random bytes at steps 201-203 and 301 (a corrupt shard), no clipping "
                              "(looked at: the 5-step windows ending at 205 and 305 log 5.58 and 2.90 between "
                              "2.00 / 2.23 and 1.68 / 1.83)")),
    "labels_rolled": ({"seed": 14, "fault": "labels_rolled"},
                      ("problem", "label_misalignment", ["label_misalignment"], "too_good", [0],
                       "labels = torch.roll(input_ids, 1) although LlamaForCausalLM shifts them itself: each "
                       "position is asked for the token it already sees")),
    "streamed_unshuffled": ({"seed": 15, "fault": "domain_stream", "logging_steps": 5, "eval_steps": 25},
                            ("problem", "data_order", ["data_order"], "instability", [295],
                             "an IterableDataset streams the shards in order (Python source, then prose, then CSV "
                             "numbers) without shuffling; eval on a mix of the three (looked at: eval 3.23 -> 3.65 "
                             "at steps 125-200 while prose replaces code, the train loss jumps 1.85 -> 4.29 at step "
                             "295 when the numbers start; eval ends 2.46)")),
    "small_data": ({"seed": 16, "train_bytes": 4_000, "max_steps": 500, "eval_steps": 25, "weight_decay": 0.0},
                   ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                    "4 KB of training text (62 blocks) for 500 steps at batch 16 = 129 epochs")),
}


class Blocks(torch.utils.data.Dataset):
    def __init__(self, data: bytes, is_eval: bool = False) -> None:
        t = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
        n = len(t) // BLOCK
        self.x, self.is_eval = t[: n * BLOCK].view(n, BLOCK), is_eval

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.is_eval


class DomainStream(torch.utils.data.IterableDataset):
    """Blocks of each domain's shard in turn, as a streaming loader that reads shards in order yields them."""

    def __init__(self, parts: list[bytes]) -> None:
        self.blocks = torch.cat([Blocks(p).x for p in parts])

    def __iter__(self):
        while True:
            for row in self.blocks:
                yield row, False


class Collator:
    def __init__(self, seed: int, fault: str | None, fault_batches: tuple[int, ...]) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.fault, self.fault_batches, self.calls = fault, set(fault_batches), 0

    def __call__(self, rows):
        x = torch.stack([r[0] for r in rows])
        if not rows[0][1]:  # training batches are counted (eval batches come through the same collator)
            if self.fault == "random_bytes" and self.calls in self.fault_batches:
                x = torch.randint(0, VOCAB, x.shape, generator=self.gen)
            self.calls += 1
        labels = x.clone()
        if self.fault == "labels_rolled" and not rows[0][1]:
            labels = torch.roll(x, 1, dims=1)
            labels[:, 0] = -100
        return {"input_ids": x, "labels": labels}


def train(c: dict, out):
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(c["seed"])
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
                      num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
                      num_key_value_heads=c["num_key_value_heads"], max_position_embeddings=BLOCK,
                      initializer_range=c["initializer_range"], rms_norm_eps=1e-6, tie_word_embeddings=False,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(cfg)
    text = domain_prose(100_000) + domain_code(100_000)
    if c["fault"] == "domain_stream":
        train_ds = DomainStream([domain_code(150_000), domain_prose(150_000), domain_numbers(150_000)])
        mix = [domain_code(170_000)[-8_000:], domain_prose(170_000)[-8_000:], domain_numbers(170_000)[-8_000:]]
        eval_ds = Blocks(b"".join(mix), is_eval=True)
    else:
        train_ds = Blocks(text[: c["train_bytes"]] if c["train_bytes"] else text[:-20_000])
        eval_ds = Blocks(text[-20_000:], is_eval=True)
    with tempfile.TemporaryDirectory() as tmp:
        extra = dict(c.get("args", {}))
        if "warmup_steps" not in extra:
            extra["warmup_steps"] = int(c["warmup_ratio"] * c["max_steps"])
        args = TrainingArguments(
            output_dir=tmp, max_steps=c["max_steps"], per_device_train_batch_size=c["per_device_train_batch_size"],
            per_device_eval_batch_size=64, learning_rate=c["learning_rate"], lr_scheduler_type=c["lr_scheduler_type"],
            weight_decay=c["weight_decay"], max_grad_norm=c["max_grad_norm"], logging_steps=c["logging_steps"],
            gradient_accumulation_steps=c["gradient_accumulation_steps"], bf16=c["bf16"],
            eval_strategy="steps", eval_steps=c["eval_steps"], save_strategy="no", report_to=[], seed=c["seed"],
            data_seed=c["seed"], disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
            remove_unused_columns=False, **extra)
        optimizers = (None, None)
        if "sched_total_steps" in c:  # a bug: the cosine schedule is built for fewer steps than the run makes
            from transformers import get_cosine_schedule_with_warmup

            decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
            no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=c["learning_rate"])
            optimizers = (opt, get_cosine_schedule_with_warmup(opt, args.warmup_steps, c["sched_total_steps"]))
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, optimizers=optimizers,
                          data_collator=Collator(c["seed"], c["fault"], c["fault_steps"]))
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            trainer.train()
        trainer.state.save_to_json(str(out / "trainer_state.json"))
        args_dict = json.loads(args.to_json_string())
    args_dict["output_dir"] = f"out/{out.name}"
    args_dict["logging_dir"] = f"out/{out.name}/runs"
    return buf.getvalue(), args_dict, model.config


def tb_scalars(hist: list[dict]) -> list[tuple[str, int, float]]:
    """What transformers' TensorBoardCallback writes for each log: eval_x -> eval/x, everything else -> train/x."""
    out = []
    for h in hist:
        step = h.get("step", 0)
        for k, v in h.items():
            if k in ("step",) or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            tag = "eval/" + k[5:] if k.startswith("eval_") else "train/" + k
            out.append((tag, step, float(v)))
    return out


EXCERPTS = {"healthy_llama": 150, "random_bytes_batches": 150, "healthy_llama_accum2_long": 250}


def generate(labels: Labels, only: set[str] | None = None) -> None:
    _silence()
    root = RUNS / FAMILY
    for name, (over, lab) in RUNS_SPEC.items():
        if only and name not in only:
            continue
        c = dict(BASE, **over)
        t0 = time.time()
        d = clean_dir(root / name)
        text, args_dict, model_cfg = train(c, d)
        state = json.loads((d / "trainer_state.json").read_text())
        hist = state["log_history"]
        losses = [h["loss"] for h in hist if "loss" in h]
        vals = [h["eval_loss"] for h in hist if "eval_loss" in h]
        verdict, cause, accept, symptom, steps, injected = lab
        curve = (f"logged train loss {summarize(losses)}; eval loss {summarize(vals, 6)}; grad norm "
                 f"{summarize([h['grad_norm'] for h in hist if 'grad_norm' in h], 6)}; lr "
                 f"{summarize([h['learning_rate'] for h in hist if 'learning_rate' in h], 6)}")
        log(f"[llama] {name:26s} {time.time() - t0:5.1f}s  {curve}")
        (d / "train.log").write_text(text)
        tb = write_tensorboard(d / "runs", tb_scalars(hist))
        cfg_path = None
        if has_config(FAMILY, name):
            cfg_path = d / "training_args.json"
            cfg_path.write_text(json.dumps(args_dict, indent=2) + "\n")
            model_cfg.to_json_file(str(d / "config.json"))
        common = dict(family=FAMILY, group=f"{FAMILY}/{name}", verdict=verdict, cause=cause, accept=accept,
                      symptom=symptom, steps=steps, evidence=f"injected: {injected}. curve: {curve}", config=cfg_path)
        labels.add(d / "trainer_state.json", fmt="hf_trainer_state", **common)
        labels.add(d / "train.log", fmt="hf_stdout", **common)
        labels.add(tb, fmt="tensorboard", **common)
        if name in EXCERPTS:  # the printed dicts from step N on, as pasted into an issue
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            lines = text.splitlines()
            dict_lines = [i for i, ln in enumerate(lines) if ln.startswith("{")]
            first = next(k for k, h in enumerate(hist) if h.get("step", 0) >= start)
            (e / "train.log").write_text("\n".join(lines[dict_lines[first]:]) + "\n")
            labels.add(e / "train.log", fmt="hf_stdout", excerpt_from=start,
                       **dict(common, config=None, steps=[s for s in steps if s >= start],
                              evidence=f"excerpt from step {start} of {name}; " + common["evidence"]))
