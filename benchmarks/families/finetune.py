"""Family 2: fine-tuning a "pretrained" tiny GPT-2 with the real HF Trainer.

The base model is pretrained here (a byte-level GPT-2, 300 AdamW steps on Python source), saved with
save_pretrained and loaded with from_pretrained for each fine-tune on English prose (no hub download).
Each run writes trainer_state.json (Trainer.state), the Trainer's printed log dicts (train.log, as
PrinterCallback prints them with disable_tqdm=True) and, for about two runs in three, training_args.json
and the model's config.json beside them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import torch

from common import RUNS, Labels, has_config, clean_dir, domain_code, domain_prose, log, summarize

FAMILY = "finetune"
BLOCK = 64

BASE = dict(seed=0, learning_rate=5e-4, lr_scheduler_type="linear", warmup_ratio=0.1, max_steps=300,
            per_device_train_batch_size=8, weight_decay=0.0, logging_steps=10, eval_steps=50, max_grad_norm=1.0,
            train_bytes=60_000, label_fault=None, num_train_epochs=None)

RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_ft": ({}, ("healthy", "healthy", [], None, [], "nothing: lr 5e-4, 10% warmup, linear decay")),
    "healthy_ft_b": ({"seed": 1, "learning_rate": 1e-4, "lr_scheduler_type": "cosine", "warmup_ratio": 0.0,
                      "logging_steps": 1, "eval_steps": 25},
                     ("healthy", "healthy", [], None, [], "nothing: lr 1e-4 cosine, no warmup, logging every step")),
    "healthy_ft_c": ({"seed": 2, "logging_steps": 25, "per_device_train_batch_size": 4, "max_steps": 400,
                      "weight_decay": 0.01},
                     ("healthy", "healthy", [], None, [], "nothing: batch 4, logging every 25 steps")),
    "healthy_ft_d": ({"seed": 4, "learning_rate": 2e-4, "logging_steps": 50, "max_steps": 500, "eval_steps": 100},
                     ("healthy", "healthy", [], None, [], "nothing: lr 2e-4, 500 steps, logging every 50 steps")),
    "lr_too_high": ({"learning_rate": 0.05, "warmup_ratio": 0.0, "max_grad_norm": 0.0},
                    ("problem", "lr_too_high", ["lr_too_high"], "divergence", [],
                     "fine-tune lr 0.05 (100x), no warmup, no clipping")),
    "lr_too_low": ({"learning_rate": 1e-7, "logging_steps": 5},
                   ("problem", "lr_too_low", ["lr_too_low"], "plateau", [], "fine-tune lr 1e-7 (5000x too low)")),
    "small_data_overfit": ({"train_bytes": 1_600, "max_steps": 400, "learning_rate": 1e-3, "eval_steps": 20},
                           ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                            "1.6 KB of fine-tuning text (25 blocks) for 400 steps = 128 epochs")),
    # second runs of single-run causes (other seed and settings), so both halves of the split have them
    "lr_too_high_b": ({"seed": 5, "learning_rate": 0.2, "warmup_ratio": 0.0, "max_grad_norm": 0.0},
                      ("problem", "lr_too_high", ["lr_too_high"], "divergence", [],
                       "fine-tune lr 0.2 (400x), no warmup, no clipping")),
    "lr_too_low_b": ({"seed": 6, "learning_rate": 3e-8, "lr_scheduler_type": "cosine"},
                     ("problem", "lr_too_low", ["lr_too_low"], "plateau", [], "fine-tune lr 3e-8, cosine")),
    "small_data_overfit_b": ({"seed": 7, "train_bytes": 3_200, "max_steps": 500, "eval_steps": 25},
                             ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                              "3.2 KB of fine-tuning text (50 blocks) for 500 steps = 80 epochs")),
    "labels_shuffled": ({"label_fault": "shuffled"},
                        ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                         "labels of each example taken from another example (collator pairs them wrongly)")),
    "labels_double_shift": ({"seed": 3, "label_fault": "double_shift", "logging_steps": 5},
                            ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                             "labels shifted by one in the dataset although the model shifts them again")),
    # more varied runs (issue 7): other batch sizes, logging intervals, LR ends, schedules, optimizers, accumulation
    "healthy_ft_v2": ({"seed": 20, "learning_rate": 1e-4, "lr_scheduler_type": "constant", "warmup_ratio": 0.0,
                       "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4, "max_steps": 150,
                       "logging_steps": 3, "eval_steps": 30},
                      ("healthy", "healthy", [], None, [],
                       "nothing: constant lr 1e-4, batch 2 x 4 accumulation steps, 150 steps, logging every 3")),
    "healthy_ft_v3": ({"seed": 21, "learning_rate": 1e-3, "lr_scheduler_type": "cosine", "warmup_ratio": 0.05,
                       "per_device_train_batch_size": 32, "max_steps": 200, "logging_steps": 7, "eval_steps": 40,
                       "weight_decay": 0.1},
                      ("healthy", "healthy", [], None, [],
                       "nothing: lr 1e-3 (high end) cosine, 5% warmup, batch 32, weight decay 0.1, logging every 7")),
    "healthy_ft_v4": ({"seed": 22, "optim": "sgd", "learning_rate": 0.05, "warmup_ratio": 0.0,
                       "logging_steps": 20, "eval_steps": 60, "max_steps": 300},
                      ("healthy", "healthy", [], None, [],
                       "nothing: SGD (HF optim sgd) lr 0.05, linear decay, logging every 20")),
    "lr_too_high_v2": ({"seed": 23, "learning_rate": 0.03, "lr_scheduler_type": "constant", "warmup_ratio": 0.0,
                        "per_device_train_batch_size": 4, "logging_steps": 3, "eval_steps": 30, "max_steps": 150},
                       ("problem", "lr_too_high", ["lr_too_high"], "instability", [],
                        "fine-tune constant lr 0.03 (60x), clip 1, batch 4, logging every 3 (looked at: the first "
                        "steps undo the pretraining, loss 2.1 -> 3.6 by step 6, and the run never gets back below "
                        "its start: eval loss 2.30 -> 2.18 where the healthy fine-tunes reach 1.4-1.7)")),
    "labels_shuffled_v2": ({"seed": 24, "label_fault": "shuffled", "lr_scheduler_type": "cosine",
                            "per_device_train_batch_size": 16, "logging_steps": 20, "eval_steps": 50},
                           ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                            "labels of each example taken from another example; cosine, batch 16, logging every 20")),
    # a fourth round of varied runs (issue 7, _v5): HF schedules, label smoothing, accumulation, clip 0.1
    "healthy_ft_restarts_v5": ({"seed": 30, "lr_scheduler_type": "cosine_with_restarts", "warmup_ratio": 0.05,
                                "args": {"lr_scheduler_kwargs": {"num_cycles": 3}}},
                               ("healthy", "healthy", [], None, [],
                                "nothing: lr 5e-4 cosine_with_restarts (3 cycles), 5% warmup")),
    "healthy_ft_poly_v5": ({"seed": 31, "lr_scheduler_type": "polynomial", "warmup_ratio": 0.2, "weight_decay": 0.1,
                            "max_grad_norm": 0.1},
                           ("healthy", "healthy", [], None, [],
                            "nothing: lr 5e-4 polynomial, 20% warmup, weight decay 0.1, max_grad_norm 0.1")),
    "healthy_ft_ls_accum_v5": ({"seed": 32, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                                "max_steps": 150, "eval_steps": 10, "logging_steps": 5,
                                "args": {"label_smoothing_factor": 0.1}},
                               ("healthy", "healthy", [], None, [],
                                "nothing: label_smoothing_factor 0.1, batch 2 x 4 accumulation steps, eval every 10")),
    "lr_too_high_v5": ({"seed": 33, "learning_rate": 0.5, "lr_scheduler_type": "constant_with_warmup",
                        "warmup_ratio": 0.2},
                       ("problem", "lr_too_high", ["lr_too_high"], "instability", [],
                        "constant_with_warmup to lr 0.5 (1000x) over 60 steps, clip 1")),
    # a fifth round of varied runs (issue 7, _v6): evaluation per epoch, a schedule sized for one epoch
    "healthy_ft_eval_epoch_v6": ({"seed": 40, "max_steps": 468, "logging_steps": 10, "args": {"eval_strategy": "epoch"}},
                                 ("healthy", "healthy", [], None, [],
                                  "nothing: lr 5e-4 linear, 10% warmup, eval_strategy epoch (117 steps/epoch)")),
    "sched_one_epoch_v6": ({"seed": 41, "sched_total_steps": 117, "logging_steps": 5},
                           ("problem", "lr_schedule_bug", ["lr_schedule_bug", "lr_too_low"], "plateau", [],
                            "a linear schedule built for one epoch (117 steps, len(dataloader)) in a 300-step run: "
                            "warmup 30, the LR reaches 0 at step 117 and stays there")),
    "healthy_ft_resumed_v6": ({"seed": 42, "kill_at": 190, "args": {"save_strategy": "steps", "save_steps": 150}},
                              ("healthy", "healthy", [], None, [],
                               "nothing: lr 5e-4 linear; the job died at step 190 and was resumed from checkpoint-150 "
                               "(trainer_state.json continues; train.log prints the dicts of steps 160-190 twice)")),
    "resume_sched_restart_v6": ({"seed": 43, "kill_at": 190, "restart_sched": True, "learning_rate": 2e-3,
                                 "args": {"save_strategy": "steps", "save_steps": 150}},
                                ("problem", "lr_schedule_bug", ["lr_schedule_bug"], "lr_schedule", [],
                                 "lr 2e-3 linear over 300 steps, 10% warmup; the job died at step 190 and was "
                                 "restarted from checkpoint-150's weights only: fresh optimizer, schedule and step "
                                 "counter, the LR warms up to its peak again and 300 more steps run (only the "
                                 "stdout of the whole job kept)")),
    # a sixth round (_v7): two evaluation sets logged side by side (the prose being learnt and the Python source
    # the base model was pretrained on)
    "healthy_ft_two_evals_v7": ({"seed": 70, "eval_sets": True, "eval_steps": 25, "logging_steps": 5},
                                ("healthy", "healthy", [], None, [],
                                 "nothing: lr 5e-4, 10 % warmup, linear; eval_dataset={'prose', 'code'}: "
                                 "eval_prose_loss and eval_code_loss every 25 steps (looked at: the prose eval falls 1.8 -> 1.48 "
                                 "while the code eval rises 2.0 -> 2.2, the forgetting of the pretraining domain a "
                                 "fine-tune shows)")),
}


def _silence() -> None:
    warnings.filterwarnings("ignore")
    for name in ("transformers", "transformers.trainer", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def pretrain(path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=256, n_positions=BLOCK, n_embd=64, n_layer=2, n_head=4, bos_token_id=0,
                     eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    data = torch.frombuffer(bytearray(domain_code()), dtype=torch.uint8).long()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    for step in range(300):
        ix = torch.randint(len(data) - BLOCK, (16,), generator=gen)
        x = torch.stack([data[i:i + BLOCK] for i in ix])
        for g in opt.param_groups:
            g["lr"] = 3e-3 * min(1.0, (step + 1) / 30)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    log(f"[finetune] pretrained base model: final loss {loss.item():.3f}")
    model.save_pretrained(path)


class Blocks(torch.utils.data.Dataset):
    def __init__(self, data: bytes, label_fault: str | None, seed: int) -> None:
        t = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
        n = len(t) // BLOCK
        self.x = t[: n * BLOCK].view(n, BLOCK)
        self.y = self.x.clone()
        if label_fault == "shuffled":
            self.y = self.x[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]
        elif label_fault == "double_shift":
            self.y = torch.cat([self.x[:, 1:], torch.full((n, 1), -100)], dim=1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.y[i]}


def _StopAt(step: int):
    """A callback that ends training after `step` without saving: a job killed between checkpoints."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= step:
                control.should_training_stop = True
                control.should_save = False
            return control

    return StopAt()


def train(c: dict, base: Path, out: Path):
    from transformers import GPT2LMHeadModel, Trainer, TrainingArguments

    prose = domain_prose()
    train_ds = Blocks(prose[: c["train_bytes"]], c["label_fault"], c["seed"])
    eval_ds = Blocks(prose[-16_000:], None, c["seed"])
    if c.get("eval_sets"):  # (_v7) two evaluation sets side by side: eval_prose_loss and eval_code_loss
        eval_ds = {"prose": eval_ds, "code": Blocks(domain_code()[-16_000:], None, c["seed"])}
    model = GPT2LMHeadModel.from_pretrained(base)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, max_steps=c["max_steps"], per_device_train_batch_size=c["per_device_train_batch_size"],
            per_device_eval_batch_size=32, learning_rate=c["learning_rate"], lr_scheduler_type=c["lr_scheduler_type"],
            warmup_steps=int(c["warmup_ratio"] * c["max_steps"]), weight_decay=c["weight_decay"], max_grad_norm=c["max_grad_norm"],
            logging_steps=c["logging_steps"],
            gradient_accumulation_steps=c.get("gradient_accumulation_steps", 1), **({"optim": c["optim"]} if "optim" in c else {}),
            # later runs (_v6) may set eval_strategy="epoch" in args
            **{"eval_strategy": "steps", "eval_steps": c["eval_steps"], "save_strategy": "no", **c.get("args", {})},
            report_to=[], seed=c["seed"], data_seed=c["seed"], disable_tqdm=True, use_cpu=True,
            dataloader_num_workers=0, logging_nan_inf_filter=True)
        optimizers = (None, None)
        if "sched_total_steps" in c:  # later runs (_v6): a schedule built for the wrong number of steps (a bug)
            from transformers import get_linear_schedule_with_warmup

            opt = torch.optim.AdamW(model.parameters(), lr=c["learning_rate"], weight_decay=c["weight_decay"])
            optimizers = (opt, get_linear_schedule_with_warmup(opt, args.warmup_steps, c["sched_total_steps"]))
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, optimizers=optimizers)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            if "kill_at" in c:  # later runs (_v6): the job died at step kill_at and was resumed from its checkpoint
                trainer.add_callback(_StopAt(c["kill_at"]))
                trainer.train()
                if c.get("restart_sched"):  # a bug: only the weights reloaded, optimizer, schedule and step from zero
                    ckpt = max(Path(tmp).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
                    model = GPT2LMHeadModel.from_pretrained(ckpt)
                    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds)
                    trainer.train()
                else:
                    model = GPT2LMHeadModel.from_pretrained(base)
                    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds)
                    trainer.train(resume_from_checkpoint=True)
            else:
                trainer.train()
        trainer.state.save_to_json(str(out / "trainer_state.json"))
        args_json = args.to_json_string()
    args_dict = json.loads(args_json)
    args_dict["output_dir"] = f"out/{out.name}"
    args_dict["logging_dir"] = f"out/{out.name}/runs"
    return buf.getvalue(), args_dict, model.config



EXCERPTS = {"healthy_ft": 100, "small_data_overfit": 120, "lr_too_high": 60, "healthy_ft_v3": 80,
            "healthy_ft_restarts_v5": 120, "healthy_ft_eval_epoch_v6": 200}


def generate(labels: Labels, only: set[str] | None = None) -> None:
    _silence()
    root = RUNS / FAMILY
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        pretrain(base)
        for name, (over, lab) in RUNS_SPEC.items():
            if only and name not in only:
                continue
            c = dict(BASE, **over)
            t0 = time.time()
            d = clean_dir(root / name)
            text, args_dict, model_cfg = train(c, base, d)
            state = json.loads((d / "trainer_state.json").read_text())
            hist = state["log_history"]
            losses = [h["loss"] for h in hist if "loss" in h]
            vals = [h["eval_loss"] for h in hist if "eval_loss" in h]
            if c.get("eval_sets"):
                vals = [h["eval_prose_loss"] for h in hist if "eval_prose_loss" in h]
                log(f"[finetune] {name}: eval code loss "
                    f"{summarize([h['eval_code_loss'] for h in hist if 'eval_code_loss' in h], 6)}")
            verdict, cause, accept, symptom, steps, injected = lab
            curve = (f"logged train loss {summarize(losses)}; eval loss {summarize(vals, 6)}; grad norm "
                     f"{summarize([h['grad_norm'] for h in hist if 'grad_norm' in h], 6)}")
            log(f"[finetune] {name:20s} {time.time() - t0:5.1f}s  {curve}")
            (d / "train.log").write_text(text)
            if c.get("restart_sched"):  # the second job's trainer_state.json knows nothing of the first: not kept
                (d / "trainer_state.json").unlink()
            cfg_path = None
            if has_config(FAMILY, name):
                cfg_path = d / "training_args.json"
                cfg_path.write_text(json.dumps(args_dict, indent=2) + "\n")
                model_cfg.to_json_file(str(d / "config.json"))
            common = dict(family=FAMILY, group=f"{FAMILY}/{name}", verdict=verdict, cause=cause, accept=accept,
                          symptom=symptom, steps=steps, evidence=f"injected: {injected}. curve: {curve}",
                          config=cfg_path)
            if not c.get("restart_sched"):
                labels.add(d / "trainer_state.json", fmt="hf_trainer_state", **common)
            labels.add(d / "train.log", fmt="hf_stdout", **common)
            if name in EXCERPTS:
                # a pasted trainer_state.json excerpt: log_history from step N on (global_step stays the end)
                start = EXCERPTS[name]
                e = clean_dir(root / f"{name}.excerpt")
                cut = dict(state, log_history=[h for h in hist if h.get("step", 0) >= start])
                (e / "trainer_state.json").write_text(json.dumps(cut, indent=2) + "\n")
                ex_common = dict(common, config=None, steps=[s for s in steps if s >= start],
                                 evidence=f"excerpt from step {start} of {name}; " + common["evidence"])
                labels.add(e / "trainer_state.json", fmt="hf_trainer_state", excerpt_from=start, **ex_common)
                # the printed dicts are log_history in order: cut the stdout at the same record
                lines = text.splitlines()
                dict_lines = [i for i, ln in enumerate(lines) if ln.startswith("{")]
                first = next(k for k, h in enumerate(hist) if h.get("step", 0) >= start)
                (e / "train.log").write_text("\n".join(lines[dict_lines[first]:]) + "\n")
                labels.add(e / "train.log", fmt="hf_stdout", excerpt_from=start, **ex_common)
