"""Family 10: a tiny encoder-decoder (HF `T5ForConditionalGeneration`, from scratch) on synthetic algorithmic tasks.

Digit strings are reversed, sorted or copied, with the real `Seq2SeqTrainer` (adding two 5-digit numbers was tried:
it sat on its plateau at 1.72 for 1,500 steps without dropping, too long for this CPU budget).
Such tasks typically sit on a plateau (the decoder has learnt the digit statistics but not yet where to look) and
then drop suddenly when cross-attention finds the alignment: a healthy phenomenon. Each run writes
trainer_state.json, the Trainer's printed log dicts (train.log) and a metrics.jsonl written by a `TrainerCallback`
(one JSON object per `on_log`), and for about two runs in three training_args.json and the model's config.json.
Faults are injected in the TrainingArguments, the schedule, the collator (decoder inputs not shifted, a batch of
garbage targets) or the data size and model size.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time

import torch

from common import RUNS, Labels, clean_dir, has_config, log, summarize, write_jsonl
from finetune import _silence

FAMILY = "seq2seq"
PAD, EOS = 0, 1
VOCAB = 16

BASE = dict(seed=0, task="reverse", digits=10, learning_rate=1e-3, lr_scheduler_type="linear", warmup_ratio=0.05,
            max_steps=900, per_device_train_batch_size=32, gradient_accumulation_steps=1, weight_decay=0.0,
            logging_steps=10, eval_steps=100, max_grad_norm=1.0, d_model=64, num_layers=2, d_ff=128, num_heads=4,
            train_examples=20_000, fault=None, fault_steps=())

# name: (overrides, label) ; label = (verdict, cause, accept, symptom, steps, what was injected)
RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_reverse": ({}, ("healthy", "healthy", [], None, [],
                             "nothing: reverse 10 digits, AdamW 1e-3, linear, 5% warmup, batch 32, logging every 10")),
    "healthy_reverse_bs64_const": ({"seed": 1, "per_device_train_batch_size": 64, "lr_scheduler_type": "constant",
                                    "warmup_ratio": 0.0, "logging_steps": 20, "eval_steps": 100, "max_steps": 700},
                                   ("healthy", "healthy", [], None, [],
                                    "nothing: reverse, batch 64, constant lr 1e-3, logging every 20")),
    "healthy_sort_bs48": ({"seed": 2, "task": "sort", "learning_rate": 2e-3, "per_device_train_batch_size": 48,
                           "warmup_ratio": 0.1, "max_steps": 500, "logging_steps": 25, "eval_steps": 125,
                           "weight_decay": 0.01},
                          ("healthy", "healthy", [], None, [],
                           "nothing: sort 10 digits, lr 2e-3, 10% warmup, batch 48, weight decay 0.01, logging every 25")),
    "healthy_sort_cosine": ({"seed": 3, "task": "sort", "lr_scheduler_type": "cosine", "logging_steps": 5,
                             "eval_steps": 50, "max_steps": 600},
                            ("healthy", "healthy", [], None, [],
                             "nothing: sort 10 digits, cosine, logging every 5, eval every 50")),
    "healthy_reverse_accum": ({"seed": 4, "per_device_train_batch_size": 16, "gradient_accumulation_steps": 2,
                               "logging_steps": 25, "eval_steps": 150},
                              ("healthy", "healthy", [], None, [],
                               "nothing: reverse, batch 16 x 2 accumulation steps, logging every 25")),
    "healthy_copy_log1": ({"seed": 5, "task": "copy", "logging_steps": 1, "eval_steps": 100, "max_steps": 700,
                           "learning_rate": 2e-3},
                          ("healthy", "healthy", [], None, [],
                           "nothing: copy 10 digits, lr 2e-3, logging every step")),
    "healthy_reverse_ls": ({"seed": 6, "digits": 8, "args": {"label_smoothing_factor": 0.1}, "eval_steps": 50,
                            "max_steps": 700},
                           ("healthy", "healthy", [], None, [],
                            "nothing: reverse 8 digits, label_smoothing_factor 0.1 (loss floor ~0.4), eval every 50")),
    "lr_too_high": ({"seed": 10, "learning_rate": 0.05, "max_grad_norm": 0.0, "max_steps": 600},
                    ("problem", "lr_too_high", ["lr_too_high"], "plateau", [],
                     "AdamW lr 0.05 (50x), no clipping (looked at: the loss falls 2.9 -> 2.3 = ln 10, a uniform "
                     "guess over the digits, in the warmup and stays there; eval 2.28-2.33)")),
    "lr_too_low": ({"seed": 11, "learning_rate": 1e-5, "max_steps": 600},
                   ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [],
                    "AdamW lr 1e-5 (100x too low) (looked at: 4.25 -> 2.71 over 600 steps, eval 2.69, where the "
                    "healthy runs pass 2.0 within 50 steps)")),
    "sched_horizon_epochs": ({"seed": 12, "sched_total_steps": 50, "max_steps": 700, "logging_steps": 5},
                             ("problem", "lr_schedule_bug", ["lr_schedule_bug", "lr_too_low"], "plateau", [50],
                              "get_linear_schedule_with_warmup given num_training_steps=50 (the epoch count) in a "
                              "700-step run: the LR is 0 from step 50 on, on the task's plateau (looked at: the "
                              "loss sits at 2.12-2.15 and every eval at 2.13 from then on)")),
    "decoder_inputs_unshifted": ({"seed": 13, "fault": "unshifted", "max_steps": 500},
                                 ("problem", "label_misalignment", ["label_misalignment"], "too_good", [0],
                                  "the training collator passes decoder_input_ids = labels (not shifted right): the "
                                  "decoder sees the token it must predict; evaluation shifts them correctly (looked "
                                  "at: the train loss is 0.23 at the first log and 0.003 at the end, the eval loss "
                                  "7.3 -> 7.9)")),
    "garbage_target_batches": ({"seed": 14, "fault": "garbage", "fault_steps": (600, 601, 750), "logging_steps": 5},
                               ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [605, 755],
                                "batches whose targets are random digit strings (a corrupt shard) at steps 601-602 "
                                "and 751, after the drop (looked at: the 5-step windows ending at 605 and 755 log "
                                "2.12 and 1.22 between 0.59 / 0.62 and 0.41 / 0.41)")),
    "small_data": ({"seed": 15, "train_examples": 128, "max_steps": 900, "eval_steps": 50},
                   ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                    "128 training examples for 900 steps at batch 32 = 225 epochs (looked at: train 3.9 -> 0.007, "
                    "eval 2.10 at its first point then rising to 4.20)")),
    "tiny_model": ({"seed": 16, "d_model": 8, "d_ff": 16, "num_heads": 2, "num_layers": 1},
                   ("problem", "capacity_too_small", ["capacity_too_small"], "plateau", [],
                    "d_model 8, d_ff 16, one encoder and one decoder layer, 2 heads (looked at: 3.3 -> 2.32 and "
                    "flat, above the 2.09 of a uniform guess over the digits with a known eos)")),
}


def make_task(task: str, n: int, digits: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (0 pad, 1 eos, 2-11 the digits) of n source/target pairs, each ending with eos."""
    d = torch.randint(0, 10, (n, digits), generator=gen)
    tgt = {"reverse": d.flip(1), "sort": d.sort(1).values, "copy": d}[task] + 2
    src = d + 2
    eos = torch.full((n, 1), EOS)
    return torch.cat([src, eos], 1), torch.cat([tgt, eos], 1)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, src: torch.Tensor, tgt: torch.Tensor, is_eval: bool = False) -> None:
        self.src, self.tgt, self.is_eval = src, tgt, is_eval

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i):
        return self.src[i], self.tgt[i], self.is_eval


class Collator:
    def __init__(self, seed: int, fault: str | None, fault_batches: tuple[int, ...], shift: bool = False) -> None:
        self.gen = torch.Generator().manual_seed(seed + 1000)
        self.fault, self.fault_batches, self.calls, self.shift = fault, set(fault_batches), 0, shift

    def __call__(self, rows):
        src = torch.stack([r[0] for r in rows])
        labels = torch.stack([r[1] for r in rows])
        batch = {"input_ids": src, "attention_mask": torch.ones_like(src)}
        if not rows[0][2]:  # training batches are counted (eval batches come through the same collator)
            if self.fault == "garbage" and self.calls in self.fault_batches:
                labels = torch.cat([torch.randint(2, 12, (len(rows), labels.shape[1] - 1), generator=self.gen),
                                    labels[:, -1:]], 1)
            self.calls += 1
            if self.fault == "unshifted":  # the bug: decoder inputs are the labels themselves, not shifted right
                batch["decoder_input_ids"] = labels.clone()
        if self.shift and "decoder_input_ids" not in batch:
            # what DataCollatorForSeq2Seq(model=...) does: with label smoothing the Trainer pops the labels before
            # the forward pass, so the decoder inputs (labels shifted right) must come from the collator
            batch["decoder_input_ids"] = torch.cat([torch.full((len(rows), 1), PAD), labels[:, :-1]], 1)
        batch["labels"] = labels
        return batch


def _JsonlLogger(path):
    """The callback people write to keep metrics as JSON lines: one object per Trainer log event."""
    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            with open(path, "a") as fh:
                fh.write(json.dumps({"step": state.global_step, **(logs or {})}) + "\n")

    return JsonlLogger()


def train(c: dict, out):
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, T5Config, T5ForConditionalGeneration

    torch.manual_seed(c["seed"])
    cfg = T5Config(vocab_size=VOCAB, d_model=c["d_model"], d_kv=c["d_model"] // c["num_heads"], d_ff=c["d_ff"],
                   num_layers=c["num_layers"], num_decoder_layers=c["num_layers"], num_heads=c["num_heads"],
                   dropout_rate=0.0, feed_forward_proj="relu", pad_token_id=PAD, eos_token_id=EOS,
                   decoder_start_token_id=PAD)
    model = T5ForConditionalGeneration(cfg)
    gen = torch.Generator().manual_seed(c["seed"])
    train_ds = Pairs(*make_task(c["task"], c["train_examples"], c["digits"], gen))
    eval_ds = Pairs(*make_task(c["task"], 512, c["digits"], torch.Generator().manual_seed(12345)), is_eval=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = Seq2SeqTrainingArguments(
            output_dir=tmp, max_steps=c["max_steps"], per_device_train_batch_size=c["per_device_train_batch_size"],
            per_device_eval_batch_size=128, learning_rate=c["learning_rate"], lr_scheduler_type=c["lr_scheduler_type"],
            warmup_steps=int(c["warmup_ratio"] * c["max_steps"]), weight_decay=c["weight_decay"],
            max_grad_norm=c["max_grad_norm"], logging_steps=c["logging_steps"],
            gradient_accumulation_steps=c["gradient_accumulation_steps"], eval_strategy="steps",
            eval_steps=c["eval_steps"], save_strategy="no", report_to=[], seed=c["seed"], data_seed=c["seed"],
            disable_tqdm=True, use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False,
            predict_with_generate=False, **c.get("args", {}))
        optimizers = (None, None)
        if "sched_total_steps" in c:  # a bug: the schedule is given the number of epochs where steps were meant
            from transformers import get_linear_schedule_with_warmup

            opt = torch.optim.AdamW(model.parameters(), lr=c["learning_rate"], weight_decay=c["weight_decay"])
            optimizers = (opt, get_linear_schedule_with_warmup(opt, 0, c["sched_total_steps"]))
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                                 optimizers=optimizers, data_collator=Collator(c["seed"], c["fault"], c["fault_steps"],
                                                                  shift="label_smoothing_factor" in c.get("args", {})),
                                 callbacks=[_JsonlLogger(out / "metrics.jsonl")])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            trainer.train()
        trainer.state.save_to_json(str(out / "trainer_state.json"))
        args_dict = json.loads(args.to_json_string())
    args_dict["output_dir"] = f"out/{out.name}"
    args_dict["logging_dir"] = f"out/{out.name}/runs"
    return buf.getvalue(), args_dict, model.config


EXCERPTS = {"healthy_reverse": 300, "garbage_target_batches": 400, "healthy_sort_cosine": 200}


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
        curve = (f"logged train loss {summarize(losses, 16)}; eval loss {summarize(vals, 8)}; grad norm "
                 f"{summarize([h['grad_norm'] for h in hist if 'grad_norm' in h], 6)}; lr "
                 f"{summarize([h['learning_rate'] for h in hist if 'learning_rate' in h], 6)}")
        log(f"[seq2seq] {name:26s} {time.time() - t0:5.1f}s  {curve}")
        (d / "train.log").write_text(text)
        cfg_path = None
        if has_config(FAMILY, name):
            cfg_path = d / "training_args.json"
            cfg_path.write_text(json.dumps(args_dict, indent=2) + "\n")
            model_cfg.to_json_file(str(d / "config.json"))
        common = dict(family=FAMILY, group=f"{FAMILY}/{name}", verdict=verdict, cause=cause, accept=accept,
                      symptom=symptom, steps=steps, evidence=f"injected: {injected}. curve: {curve}", config=cfg_path)
        labels.add(d / "trainer_state.json", fmt="hf_trainer_state", **common)
        labels.add(d / "train.log", fmt="hf_stdout", **common)
        labels.add(d / "metrics.jsonl", fmt="jsonl", **common)
        if name in EXCERPTS:  # the callback's JSON lines from step N on, as pasted into an issue
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            rows = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
            write_jsonl(e / "metrics.jsonl", [r for r in rows if r["step"] >= start])
            labels.add(e / "metrics.jsonl", fmt="jsonl", excerpt_from=start,
                       **dict(common, config=None, steps=[s for s in steps if s >= start],
                              evidence=f"excerpt from step {start} of {name}; " + common["evidence"]))
