"""Family 5: BERT-style masked-LM pretraining (tiny HF BertConfig, byte vocabulary) with the real HF Trainer.

Masking is done by a collator in the usual 15 % / 80-10-10 way; faults are injected in the collator (a batch
with no masked token, labels left on every position) or in the TrainingArguments/BertConfig.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time

import torch

from common import RUNS, Labels, has_config, clean_dir, domain_code, domain_prose, log, summarize
from finetune import _silence

FAMILY = "mlm"
BLOCK = 64
MASK, PAD, VOCAB = 256, 257, 260

BASE = dict(seed=0, learning_rate=1e-3, lr_scheduler_type="linear", warmup_ratio=0.1, max_steps=400,
            per_device_train_batch_size=16, weight_decay=0.01, logging_steps=10, eval_steps=50, max_grad_norm=1.0,
            num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128,
            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, fault=None, fault_steps=(), initializer_range=0.02,
            logging_nan_inf_filter=True)

RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_mlm": ({}, ("healthy", "healthy", [], None, [], "nothing: lr 1e-3, 10% warmup, linear decay, clip 1")),
    "healthy_mlm_b": ({"seed": 1, "learning_rate": 5e-4, "warmup_ratio": 0.0, "lr_scheduler_type": "constant",
                       "logging_steps": 1, "eval_steps": 25},
                      ("healthy", "healthy", [], None, [], "nothing: constant lr 5e-4 without warmup, logging every step")),
    # with the Trainer's default logging_nan_inf_filter=True the NaN step loss is replaced in the logged mean and the
    # update leaves no mark (looked at: the log is a healthy run's), so the fault run turns the filter off
    "healthy_mlm_c": ({"seed": 4, "learning_rate": 2e-3, "logging_steps": 25, "eval_steps": 100},
                      ("healthy", "healthy", [], None, [], "nothing: lr 2e-3, 10% warmup, logging every 25 steps")),
    "fully_masked_batch": ({"fault": "no_mask", "fault_steps": (150, 262), "logging_nan_inf_filter": False},
                           ("problem", "loss_nan_from_data", ["loss_nan_from_data"], "nan", [151, 263],
                            "the batches of steps 151 and 263 have no masked token: every label is -100, the mean "
                            "loss is 0/0 (logging_nan_inf_filter=False)")),
    # second runs of single-run causes (other seed and settings), so both halves of the split have them
    "fully_masked_batch_b": ({"seed": 9, "fault": "no_mask", "fault_steps": (90,), "logging_nan_inf_filter": False,
                              "logging_steps": 5},
                             ("problem", "loss_nan_from_data", ["loss_nan_from_data"], "nan", [91],
                              "the batch of step 91 has no masked token (logging_nan_inf_filter=False)")),
    "labels_on_every_token_b": ({"seed": 8, "fault": "labels_everywhere", "logging_steps": 5},
                                ("problem", "label_misalignment", ["label_misalignment"], "too_good", [0],
                                 "labels kept on the unmasked positions too")),
    "bad_init_b": ({"seed": 7, "initializer_range": 1.0},
                   ("problem", "bad_init", ["bad_init"], "init_loss", [0],
                    "BertConfig initializer_range 1.0 instead of 0.02, clip 1")),
    "lr_too_low_b": ({"seed": 6, "learning_rate": 3e-6},
                     ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "lr 3e-6")),
    "labels_on_every_token": ({"fault": "labels_everywhere"},
                              ("problem", "label_misalignment", ["label_misalignment"], "too_good", [0],
                               "labels kept on the unmasked positions too: 85% of the targets are visible inputs")),
    "bad_init": ({"seed": 5, "initializer_range": 2.0, "max_grad_norm": 0.0, "logging_steps": 1},
                 ("problem", "bad_init", ["bad_init"], "init_loss", [0],
                  "BertConfig initializer_range 2.0 instead of 0.02, no clipping")),
    "lr_too_high": ({"learning_rate": 3.0, "max_grad_norm": 0.0},
                    ("problem", "lr_too_high", ["lr_too_high"], "plateau", [], "lr 3.0 (3000x), no clipping")),
    "lr_too_low": ({"learning_rate": 1e-6, "logging_steps": 5},
                   ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "lr 1e-6 (1000x too low)")),
    "heavy_regularization": ({"hidden_dropout_prob": 0.5, "attention_probs_dropout_prob": 0.5, "weight_decay": 200.0},
                             ("problem", "over_regularization", ["over_regularization"], "plateau", [],
                              "dropout 0.5 everywhere and AdamW weight decay 200 (lr x wd = 0.2 per step)")),
    # meant as missing_warmup, but it trained like its warmup twin (eval loss 3.29 both): labelled healthy
    "deep_no_warmup": ({"seed": 2, "num_hidden_layers": 6, "learning_rate": 5e-3, "warmup_ratio": 0.0,
                        "lr_scheduler_type": "constant", "logging_steps": 5},
                       ("healthy", "healthy", [], None, [],
                        "nothing visible: post-LN BERT, 6 layers, constant lr 5e-3 from step 0 without warmup "
                        "(meant as missing_warmup) trained like its twin deep_with_warmup, eval loss 3.29 both")),
    # meant as missing_warmup too; it also trained like its warmup twin (eval loss 3.26 both): labelled healthy
    "no_warmup_lr2e-2": ({"seed": 3, "num_hidden_layers": 4, "learning_rate": 2e-2, "warmup_ratio": 0.0,
                          "lr_scheduler_type": "constant", "logging_steps": 5, "max_steps": 250},
                         ("healthy", "healthy", [], None, [],
                          "nothing visible: post-LN BERT, 4 layers, constant lr 2e-2 from step 0 without warmup "
                          "(meant as missing_warmup) trained like its twin warmup_lr2e-2, eval loss 3.26 both")),
    "warmup_lr2e-2": ({"seed": 3, "num_hidden_layers": 4, "learning_rate": 2e-2, "warmup_ratio": 0.2,
                       "lr_scheduler_type": "constant_with_warmup", "logging_steps": 5, "max_steps": 250},
                      ("healthy", "healthy", [], None, [], "nothing: the twin of no_warmup_lr2e-2 with 50 warmup steps")),
    "deep_with_warmup": ({"seed": 2, "num_hidden_layers": 6, "learning_rate": 5e-3, "warmup_ratio": 0.15,
                          "lr_scheduler_type": "constant_with_warmup", "logging_steps": 5},
                         ("healthy", "healthy", [], None, [], "nothing: the twin of deep_no_warmup with 60 warmup steps")),
    # more varied runs (issue 7): other batch sizes, logging intervals, LR ends, schedules, accumulation, dropout
    "healthy_mlm_v2": ({"seed": 20, "learning_rate": 3e-4, "lr_scheduler_type": "cosine", "warmup_ratio": 0.05,
                        "per_device_train_batch_size": 64, "max_steps": 250, "logging_steps": 20, "eval_steps": 50,
                        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
                       ("healthy", "healthy", [], None, [],
                        "nothing: lr 3e-4 (low end) cosine, batch 64, no dropout, logging every 20")),
    "healthy_mlm_v3": ({"seed": 21, "learning_rate": 3e-3, "per_device_train_batch_size": 4,
                        "gradient_accumulation_steps": 2, "max_steps": 300, "logging_steps": 3, "eval_steps": 60},
                       ("healthy", "healthy", [], None, [],
                        "nothing: lr 3e-3 (high end), linear, batch 4 x 2 accumulation steps, logging every 3 "
                        "(looked at: the logged train loss is twice the eval loss from the first record on, 11.0 "
                        "where ln 260 = 5.6: with 2 accumulation steps this Trainer and model log twice the mean loss; eval loss 3.30 -> "
                        "3.18 as the healthy runs)")),
    "healthy_mlm_v4": ({"seed": 22, "weight_decay": 0.0, "lr_scheduler_type": "constant_with_warmup",
                        "warmup_ratio": 0.05, "logging_steps": 7, "eval_steps": 70,
                        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
                       ("healthy", "healthy", [], None, [],
                        "nothing: Adam without weight decay, constant lr 1e-3 after 20 warmup steps, no dropout, "
                        "logging every 7")),
    "lr_too_low_v2": ({"seed": 23, "learning_rate": 1e-6, "lr_scheduler_type": "cosine",
                       "per_device_train_batch_size": 32, "logging_steps": 20, "eval_steps": 100},
                      ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [],
                       "lr 1e-6 (1000x too low), cosine, batch 32, logging every 20")),
    "fully_masked_batch_v2": ({"seed": 24, "fault": "no_mask", "fault_steps": (120,), "logging_nan_inf_filter": False,
                               "logging_steps": 3, "per_device_train_batch_size": 8, "max_steps": 250},
                              ("problem", "loss_nan_from_data", ["loss_nan_from_data"], "nan", [121],
                               "the batch of step 121 has no masked token (logging_nan_inf_filter=False), batch 8, "
                               "logging every 3")),
    # a fourth round of varied runs (issue 7, _v5): HF schedules, label smoothing, accumulation, clip 0.1, bf16
    "healthy_mlm_restarts_v5": ({"seed": 30, "lr_scheduler_type": "cosine_with_restarts", "eval_steps": 10,
                                 "args": {"lr_scheduler_kwargs": {"num_cycles": 2}}},
                                ("healthy", "healthy", [], None, [],
                                 "nothing: cosine_with_restarts (2 cycles), eval every 10")),
    "healthy_mlm_poly_ls_v5": ({"seed": 31, "lr_scheduler_type": "polynomial", "warmup_ratio": 0.2,
                                "args": {"label_smoothing_factor": 0.1}},
                               ("healthy", "healthy", [], None, [],
                                "nothing: polynomial, 20% warmup, label_smoothing_factor 0.1")),
    "healthy_mlm_accum4_v5": ({"seed": 32, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
                               "max_steps": 150, "weight_decay": 0.1, "max_grad_norm": 0.1, "logging_steps": 5,
                               "args": {"bf16": True}},
                              ("healthy", "healthy", [], None, [],
                               "nothing: batch 4 x 4 accumulation steps, weight decay 0.1, max_grad_norm 0.1, bf16 on CPU")),
    # a fifth round of varied runs (issue 7, _v6): evaluation per epoch
    "healthy_mlm_eval_epoch_v6": ({"seed": 40, "max_steps": 704, "args": {"eval_strategy": "epoch"}},
                                  ("healthy", "healthy", [], None, [],
                                   "nothing: lr 1e-3 linear, 10% warmup, eval_strategy epoch (176 steps per epoch)")),
}


class MaskedBlocks(torch.utils.data.Dataset):
    def __init__(self, data: bytes, is_eval: bool = False) -> None:
        self.is_eval = is_eval
        t = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
        n = len(t) // BLOCK
        self.x = t[: n * BLOCK].view(n, BLOCK)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.is_eval


class Collator:
    """15 % of positions predicted; of those 80 % [MASK], 10 % random byte, 10 % unchanged (BERT's recipe)."""

    def __init__(self, seed: int, fault: str | None = None, fault_batches: tuple[int, ...] = ()) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.fault, self.fault_batches, self.calls = fault, set(fault_batches), 0

    def __call__(self, rows):
        x = torch.stack([r[0] for r in rows])
        labels = x.clone()
        chosen = torch.rand(x.shape, generator=self.gen) < 0.15
        if not rows[0][1]:  # training batches are counted (eval batches come through the same collator)
            if self.fault == "no_mask" and self.calls in self.fault_batches:
                chosen[:] = False
            self.calls += 1
        inputs = x.clone()
        r = torch.rand(x.shape, generator=self.gen)
        inputs[chosen & (r < 0.8)] = MASK
        rand_pos = chosen & (r >= 0.8) & (r < 0.9)
        inputs[rand_pos] = torch.randint(0, 256, (int(rand_pos.sum()),), generator=self.gen)
        if self.fault != "labels_everywhere":
            labels[~chosen] = -100
        return {"input_ids": inputs, "labels": labels, "attention_mask": torch.ones_like(x)}


def train(c: dict, out):
    from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

    torch.manual_seed(c["seed"])
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
                     num_attention_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
                     max_position_embeddings=BLOCK, hidden_dropout_prob=c["hidden_dropout_prob"],
                     attention_probs_dropout_prob=c["attention_probs_dropout_prob"], pad_token_id=PAD,
                     initializer_range=c["initializer_range"])
    model = BertForMaskedLM(cfg)
    text = domain_prose(100_000) + domain_code(100_000)
    train_ds = MaskedBlocks(text[:-20_000])
    eval_ds = MaskedBlocks(text[-20_000:], is_eval=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, max_steps=c["max_steps"], per_device_train_batch_size=c["per_device_train_batch_size"],
            per_device_eval_batch_size=64, learning_rate=c["learning_rate"], lr_scheduler_type=c["lr_scheduler_type"],
            warmup_steps=int(c["warmup_ratio"] * c["max_steps"]), weight_decay=c["weight_decay"],
            max_grad_norm=c["max_grad_norm"], logging_steps=c["logging_steps"],
            gradient_accumulation_steps=c.get("gradient_accumulation_steps", 1), **({"optim": c["optim"]} if "optim" in c else {}),
            # later runs (_v6) may set eval_strategy="epoch" in args
            **{"eval_strategy": "steps", "eval_steps": c["eval_steps"], **c.get("args", {})}, save_strategy="no",
            report_to=[], seed=c["seed"], data_seed=c["seed"],
            disable_tqdm=True, use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False,
            logging_nan_inf_filter=c["logging_nan_inf_filter"])
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                          data_collator=Collator(c["seed"], c["fault"], c["fault_steps"]))
        trainer.eval_dataset = eval_ds
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            trainer.train()
        trainer.state.save_to_json(str(out / "trainer_state.json"))
        args_dict = json.loads(args.to_json_string())
    args_dict["output_dir"] = f"out/{out.name}"
    args_dict["logging_dir"] = f"out/{out.name}/runs"
    return buf.getvalue(), args_dict, model.config



EXCERPTS = {"healthy_mlm": 150, "fully_masked_batch": 100, "labels_on_every_token": 100, "healthy_mlm_v3": 90}


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
        if c["fault"] == "no_mask":  # where the NaN shows in the log (batch k is consumed by update k + 1)
            steps = [h["step"] for h in hist if "loss" in h and not all(
                isinstance(h.get(k), (int, float)) and abs(h[k]) < float("inf") for k in ("loss", "grad_norm"))][:1]
        curve = (f"logged train loss {summarize(losses)}; eval loss {summarize(vals, 6)}; grad norm "
                 f"{summarize([h['grad_norm'] for h in hist if 'grad_norm' in h], 6)}")
        log(f"[mlm] {name:22s} {time.time() - t0:5.1f}s  {curve}")
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
