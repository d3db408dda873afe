"""Family 7: sequence classification with the real HF Trainer: `BertForSequenceClassification` from a tiny
`BertConfig` (byte vocabulary, trained from scratch) tells which of 4 byte domains a 48-byte snippet comes from
(Python source, English prose, CSV numbers, base64 text). Chance is ln 4 = 1.386 nats.

Each run writes trainer_state.json, the Trainer's printed log dicts (train.log) and, for about two runs in three,
training_args.json and the model's config.json beside them.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import tempfile
import time

import torch

from common import RUNS, Labels, clean_dir, domains, has_config, log, summarize
from finetune import _silence

FAMILY = "seqcls"
SNIPPET = 48
CLS, PAD, VOCAB = 256, 257, 260

BASE = dict(seed=0, learning_rate=5e-4, lr_scheduler_type="linear", warmup_ratio=0.1, max_steps=300,
            per_device_train_batch_size=16, weight_decay=0.01, logging_steps=10, eval_steps=50, max_grad_norm=1.0,
            label_fault=None)

RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_cls": ({}, ("healthy", "healthy", [], None, [], "nothing: lr 5e-4, 10% warmup, linear decay, clip 1")),
    "healthy_cls_b": ({"seed": 1, "learning_rate": 2e-4, "lr_scheduler_type": "cosine", "warmup_ratio": 0.0,
                       "logging_steps": 1, "eval_steps": 25},
                      ("healthy", "healthy", [], None, [], "nothing: lr 2e-4 cosine, no warmup, logging every step")),
    "healthy_cls_c": ({"seed": 2, "learning_rate": 1e-3, "per_device_train_batch_size": 32, "logging_steps": 25,
                       "max_steps": 400, "eval_steps": 100},
                      ("healthy", "healthy", [], None, [], "nothing: lr 1e-3, batch 32, logging every 25 steps")),
    "labels_shuffled": ({"seed": 3, "label_fault": "shuffle", "logging_steps": 5},
                        ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                         "training labels randomly permuted (they no longer pair with the snippets): loss at ln 4")),
    "lr_too_high": ({"seed": 4, "learning_rate": 0.5, "max_grad_norm": 0.0, "warmup_ratio": 0.0},
                    ("problem", "lr_too_high", ["lr_too_high"], "plateau", [], "lr 0.5 (1000x), no warmup, no clip")),
    "lr_too_low": ({"seed": 5, "learning_rate": 1e-7, "logging_steps": 5},
                   ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "lr 1e-7 (5000x too low)")),
    # a fourth round of varied runs (issue 7, _v5): HF schedules, label smoothing, accumulation, clip 0.1
    "healthy_cls_cwr_v5": ({"seed": 30, "lr_scheduler_type": "constant_with_warmup", "warmup_ratio": 0.2,
                            "args": {"label_smoothing_factor": 0.1, "gradient_accumulation_steps": 4},
                            "per_device_train_batch_size": 4, "max_steps": 150, "logging_steps": 5},
                           ("healthy", "healthy", [], None, [],
                            "nothing: constant_with_warmup, 20% warmup, label_smoothing_factor 0.1, batch 4 x 4")),
    "healthy_cls_poly_v5": ({"seed": 31, "lr_scheduler_type": "polynomial", "max_grad_norm": 0.1, "weight_decay": 0.1,
                             "eval_steps": 10},
                            ("healthy", "healthy", [], None, [],
                             "nothing: polynomial, max_grad_norm 0.1, weight decay 0.1, eval every 10")),
    # a fifth round of varied runs (issue 7, _v6): per-sample losses at batch size 1, evaluation per epoch
    # first made at lr 1e-4 over 600 steps: the loss sat at ln 4 for 200 steps and ended at 1.05 (eval 1.39 ->
    # 1.05, healthy runs reach ~0.3-0.4): slow, not healthy to look at, so it was remade longer at 3e-4
    "healthy_cls_bs1_v6": ({"seed": 40, "per_device_train_batch_size": 1, "learning_rate": 3e-4, "max_steps": 1500,
                            "logging_steps": 1, "eval_steps": 250},
                           ("healthy", "healthy", [], None, [],
                            "nothing: batch size 1, lr 3e-4, every per-sample loss logged (logging_steps 1)")),
    "healthy_cls_eval_epoch_v6": ({"seed": 41, "per_device_train_batch_size": 64, "max_steps": 315,
                                   "logging_steps": 5, "args": {"eval_strategy": "epoch"}},
                                  ("healthy", "healthy", [], None, [],
                                   "nothing: batch 64 (63 steps/epoch), eval_strategy epoch, 5 epochs")),
    # a sixth round (_v7): AdamW betas (0.9, 0.95) eps 1e-6 with a W&B history export beside the Trainer's files;
    # class imbalance (rare in the labels)
    "healthy_cls_wandb_v7": ({"seed": 70, "args": {"adam_beta2": 0.95, "adam_epsilon": 1e-6}, "logging_steps": 5,
                              "eval_steps": 25, "wandb": True},
                             ("healthy", "healthy", [], None, [],
                              "nothing: lr 5e-4, AdamW betas (0.9, 0.95) eps 1e-6, logging every 5 steps, a W&B "
                              "history export (its _step counts log calls; train/global_step is the Trainer's step)")),
    "class_imbalance_v7": ({"seed": 71, "class_counts": (2000, 12, 12, 12), "logging_steps": 5, "eval_steps": 25},
                           ("problem", "class_imbalance", ["class_imbalance", "overfitting_small_data"], "overfitting",
                            [], "2000 training snippets of Python source, 12 of each other domain; evaluation "
                            "balanced (100 of each) (looked at: eval 1.42 -> 3.18 at the first evaluation after the "
                            "start and 3.8 at the end while the train loss is ~0.08: the 36 minority snippets are "
                            "memorised, so overfitting_small_data is accepted too)")),
}


def corpus() -> list[bytes]:
    code, prose, numbers = domains()
    return [code, prose, numbers, base64.b64encode(prose[:150_000])[:200_000]]


class Snippets(torch.utils.data.Dataset):
    def __init__(self, parts: list[bytes], n_per_class: int, offset: int, seed: int, shuffle_labels: bool,
                 counts: tuple | None = None) -> None:
        gen = torch.Generator().manual_seed(seed + offset)
        xs, ys = [], []
        for label, data in enumerate(parts):
            if counts:  # (_v7) snippets per class (class imbalance); the default is n_per_class of each
                n_per_class = counts[label]
            t = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
            half = len(t) // 2  # train snippets from the first half of each domain, eval from the second
            lo, hi = (0, half - SNIPPET) if offset == 0 else (half, len(t) - SNIPPET)
            for s in torch.randint(lo, hi, (n_per_class,), generator=gen).tolist():
                xs.append(torch.cat([torch.tensor([CLS]), t[s:s + SNIPPET]]))
                ys.append(label)
        self.x = torch.stack(xs)
        self.y = torch.tensor(ys)
        if shuffle_labels:
            self.y = self.y[torch.randperm(len(self.y), generator=gen)]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.y[i], "attention_mask": torch.ones_like(self.x[i])}


def train(c: dict, out):
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(c["seed"])
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=SNIPPET + 1, pad_token_id=PAD, num_labels=4)
    model = BertForSequenceClassification(cfg)
    parts = corpus()
    train_ds = Snippets(parts, 1000, 0, c["seed"], c["label_fault"] == "shuffle", c.get("class_counts"))
    eval_ds = Snippets(parts, 100, 1, 0, False)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, max_steps=c["max_steps"], per_device_train_batch_size=c["per_device_train_batch_size"],
            per_device_eval_batch_size=100, learning_rate=c["learning_rate"], lr_scheduler_type=c["lr_scheduler_type"],
            warmup_steps=int(c["warmup_ratio"] * c["max_steps"]), weight_decay=c["weight_decay"],
            max_grad_norm=c["max_grad_norm"], logging_steps=c["logging_steps"], save_strategy="no",
            **{"eval_strategy": "steps", "eval_steps": c["eval_steps"], **c.get("args", {})}, report_to=[], seed=c["seed"], data_seed=c["seed"],
            disable_tqdm=True, use_cpu=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            trainer.train()
        trainer.state.save_to_json(str(out / "trainer_state.json"))
        args_dict = json.loads(args.to_json_string())
    args_dict["output_dir"] = f"out/{out.name}"
    args_dict["logging_dir"] = f"out/{out.name}/runs"
    return buf.getvalue(), args_dict, model.config


EXCERPTS = {"healthy_cls": 100, "labels_shuffled": 100}


def write_wandb_export(path, hist: list[dict]) -> None:
    """The run-history CSV W&B exports for a Trainer run with report_to="wandb": the WandbCallback logs each
    log_history record as one wandb.log call, its keys renamed `train/<key>` and `eval/<key>` (the Trainer's step as
    `train/global_step`); `_step` is W&B's own counter of those calls, not the Trainer's step. The final summary
    record (train_runtime ...) goes to the run summary, not the history."""
    rows = []
    for h in hist:
        if "train_runtime" in h:
            continue
        row = {"train/global_step": h["step"]}
        for k, v in h.items():
            if k in ("step",):
                continue
            if k.startswith("eval_"):
                row["eval/" + k[5:]] = v
            elif k == "epoch":
                row["train/epoch"] = v
            else:
                row["train/" + k] = v
        rows.append(row)
    keys = sorted({k for r in rows for k in r})
    runtime = 0.0
    with open(path, "w") as fh:
        fh.write(",".join(["_step", "_runtime", "_timestamp"] + keys) + "\n")
        for i, r in enumerate(rows):
            runtime += 0.41 + 0.013 * (i % 7)  # (the Trainer's log calls come ~0.4 s apart on this CPU)
            fh.write(",".join([str(i), f"{runtime:.3f}", f"{1_764_000_000 + runtime:.3f}"]
                              + ["" if k not in r else str(r[k]) for k in keys]) + "\n")


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
                 f"{summarize([h['grad_norm'] for h in hist if 'grad_norm' in h], 6)}")
        log(f"[seqcls] {name:20s} {time.time() - t0:5.1f}s  {curve}")
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
        if c.get("wandb"):
            write_wandb_export(d / "wandb_history.csv", hist)
            labels.add(d / "wandb_history.csv", fmt="wandb_csv", **common)
        if name in EXCERPTS:
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            lines = text.splitlines()
            dict_lines = [i for i, ln in enumerate(lines) if ln.startswith("{")]
            first = next(k for k, h in enumerate(hist) if h.get("step", 0) >= start)
            (e / "train.log").write_text("\n".join(lines[dict_lines[first]:]) + "\n")
            labels.add(e / "train.log", fmt="hf_stdout", excerpt_from=start,
                       **dict(common, config=None, steps=[s for s in steps if s >= start],
                              evidence=f"excerpt from step {start} of {name}; " + common["evidence"]))
