"""Family 1: byte-level GPT trained from scratch with AdamW (nanoGPT style), one injected fault per run."""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (RUNS, Labels, clean_dir, domains, excerpt_lines, fmt_num, has_config, log, summarize,
                    write_config_py, write_jsonl, write_tensorboard)

FAMILY = "gpt"

BASE = dict(seed=0, n_layer=2, n_head=4, n_embd=64, block_size=32, batch_size=16, max_iters=500,
            learning_rate=3e-3, min_lr=3e-4, warmup_iters=30, lr_decay_iters=500, decay_lr=True,
            weight_decay=0.1, beta1=0.9, beta2=0.95, grad_clip=1.0, dropout=0.0, init_std=0.02,
            vocab_size=256, eval_interval=50, log_interval=10, data="shuffled", dataset_bytes=0,
            dtype="float32")

# name: (overrides, fault, label) ; label = (verdict, cause, accept, symptom, steps, what was injected)
RUNS_SPEC: dict[str, tuple[dict, str | None, tuple]] = {
    "healthy_a": ({}, None, ("healthy", "healthy", [], None, [], "nothing: AdamW 3e-3, warmup 30, cosine, clip 1")),
    "healthy_b": ({"seed": 1, "n_embd": 48, "n_layer": 3, "learning_rate": 1e-3, "warmup_iters": 0,
                   "decay_lr": False, "grad_clip": 0.0},
                  None, ("healthy", "healthy", [], None, [], "nothing: constant AdamW 1e-3, no warmup, no clip")),
    "healthy_c": ({"seed": 2, "batch_size": 8, "max_iters": 800, "lr_decay_iters": 800, "dropout": 0.1},
                  None, ("healthy", "healthy", [], None, [], "nothing: batch 8, dropout 0.1, 800 steps")),
    "lr_too_high": ({"learning_rate": 1.0, "min_lr": 0.1, "warmup_iters": 0, "grad_clip": 0.0}, None,
                    ("problem", "lr_too_high", ["lr_too_high"], "spike", [], "AdamW LR 1.0 (330x the healthy 3e-3), no warmup, no clip")),
    "lr_too_high_b": ({"seed": 3, "learning_rate": 5.0, "min_lr": 0.5, "warmup_iters": 20, "grad_clip": 1.0,
                       "n_layer": 3}, None,
                      ("problem", "lr_too_high", ["lr_too_high"], "plateau", [], "AdamW LR 5.0 (1700x) with warmup 20 and clip 1")),
    "lr_too_low": ({"learning_rate": 1e-5, "min_lr": 1e-6}, None,
                   ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "AdamW LR 1e-5 (300x too low)")),
    "lr_too_low_b": ({"seed": 4, "learning_rate": 3e-5, "min_lr": 3e-6, "warmup_iters": 0, "decay_lr": False}, None,
                     ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "constant AdamW LR 3e-5 (100x too low)")),
    "restart_bug": ({"lr_decay_iters": 120}, "restart",
                    ("warning", "lr_schedule_bug", ["lr_schedule_bug"], "lr_schedule", [120, 240, 360, 480],
                     "schedule step counter wraps every 120 steps: warmup and cosine restart 4 times")),
    "decay_horizon_bug": ({"lr_decay_iters": 40, "min_lr": 1e-6, "warmup_iters": 10}, None,
                          ("problem", "lr_schedule_bug", ["lr_schedule_bug", "lr_too_low"], "plateau", [40],
                           "cosine horizon 40 instead of 500: LR reaches 1e-6 at step 40 and stays there")),
    "bad_init": ({"init_std": 1.0, "grad_clip": 0.0}, None,
                 ("problem", "bad_init", ["bad_init"], "init_loss", [0], "weights initialised with std 1.0 instead of 0.02, no clip")),
    "bad_batch": ({"grad_clip": 0.0}, "bad_batch",
                  ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [250, 380], "batches of random bytes at steps 250 and 380, no clip")),
    "masked_batch_nan": ({}, "masked_nan",
                         ("problem", "loss_nan_from_data", ["loss_nan_from_data"], "nan", [300],
                          "a fully masked batch at step 300: masked mean 0/0 = NaN poisons the weights")),
    "masked_batch_skip": ({"seed": 5}, "masked_nan_skip",
                          ("problem", "loss_nan_from_data", ["loss_nan_from_data"], "nan", [200, 330],
                           "fully masked batches at steps 200 and 330 give a NaN loss; the loop skips non-finite steps")),
    "targets_not_shifted": ({}, "noshift",
                            ("problem", "label_misalignment", ["label_misalignment"], "too_good", [0],
                             "targets = inputs (no shift by one): the model copies its input, loss -> 0")),
    "targets_shuffled": ({}, "shuffled_targets",
                         ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                          "targets taken from another random window: loss stays at the byte unigram entropy")),
    "small_data": ({"dataset_bytes": 3000, "max_iters": 600, "lr_decay_iters": 600}, None,
                   ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                    "3,000 training bytes repeated ~100 epochs")),
    "tiny_model": ({"n_embd": 4, "n_head": 1, "n_layer": 1}, None,
                   ("problem", "capacity_too_small", ["capacity_too_small"], "plateau", [], "n_embd 4, 1 layer, 1 head")),
    "huge_weight_decay": ({"weight_decay": 8.0}, None,
                          ("problem", "over_regularization", ["over_regularization"], "plateau", [], "AdamW weight decay 8.0")),
    "fp16_no_loss_scaling": ({"seed": 6, "dtype": "float16", "max_iters": 150, "lr_decay_iters": 150}, "fp16_pure",
                             ("problem", "fp16_precision", ["fp16_precision"], "nan", [1],
                              "pure float16 training (weights, grads, Adam state), no loss scaling, no fp32 master "
                              "weights: Adam's eps 1e-8 rounds to 0 in fp16 and the first update is NaN")),
    "healthy_fp16_scaler": ({"seed": 9, "dtype": "float16"}, "fp16_scaler",
                            ("healthy", "healthy", [], None, [],
                             "nothing wrong: emulated fp16 gradients with a dynamic loss scaler, which skips the "
                             "steps whose scaled gradients overflow (grad_norm inf there) and halves the scale")),
    "healthy_d_bs4": ({"seed": 7, "batch_size": 4, "learning_rate": 1e-3, "min_lr": 1e-4, "max_iters": 400,
                       "lr_decay_iters": 400, "log_interval": 1, "eval_interval": 100},
                      None, ("healthy", "healthy", [], None, [], "nothing: batch size 4, stdout every step (noisy)")),
    "lr_too_high_short": ({"seed": 8, "learning_rate": 5.0, "warmup_iters": 0, "grad_clip": 0.0, "max_iters": 80,
                           "decay_lr": False, "eval_interval": 40}, None,
                          ("problem", "lr_too_high", ["lr_too_high"], "divergence", [],
                           "AdamW LR 5.0 (1700x), no warmup, no clip; only 80 steps (8 stdout records)")),
    # second runs of single-run causes (other seed and shape), so both halves of the split have them
    "bad_batch_b": ({"seed": 10, "n_embd": 48, "n_layer": 3, "grad_clip": 1.0}, "bad_batch",
                    ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [250, 380],
                     "batches of random bytes at steps 250 and 380, clip 1.0")),
    "bad_init_b": ({"seed": 11, "init_std": 0.5}, None,
                   ("problem", "bad_init", ["bad_init"], "init_loss", [0], "weights initialised with std 0.5, clip 1")),
    "small_data_b": ({"seed": 12, "dataset_bytes": 5000, "max_iters": 600, "lr_decay_iters": 600, "n_layer": 3}, None,
                     ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                      "5,000 training bytes repeated ~60 epochs")),
    # these two were meant as capacity_too_small and over_regularization but reached val loss 2.22 and 2.24, as
    # healthy_c does: labelled healthy
    "tiny_model_b": ({"seed": 13, "n_embd": 8, "n_head": 2, "n_layer": 1, "learning_rate": 1e-2}, None,
                     ("healthy", "healthy", [], None, [],
                      "nothing visible: n_embd 8, 1 layer, lr 1e-2 (meant as capacity_too_small) reached val loss "
                      "2.22, as healthy_c does")),
    "huge_weight_decay_b": ({"seed": 14, "weight_decay": 3.0, "learning_rate": 1e-2, "min_lr": 1e-3}, None,
                            ("healthy", "healthy", [], None, [],
                             "nothing visible: AdamW weight decay 3.0 at lr 1e-2 (meant as over_regularization) "
                             "reached val loss 2.24, as healthy_c does")),
    "domain_ordered_b": ({"seed": 15, "data": "ordered", "n_embd": 48}, None,
                         ("problem", "data_order", ["data_order"], "data_order", [167, 334],
                          "no shuffling: code, then prose, then CSV numbers")),
    "domain_ordered": ({"data": "ordered"}, None,
                       ("problem", "data_order", ["data_order"], "data_order", [167, 334],
                        "no shuffling: steps 0-166 code, 167-333 prose, 334-499 CSV numbers")),
    # more varied runs (issue 7: the rules must not fit the settings of the runs above): other batch sizes,
    # logging intervals, schedules, optimizers, accumulation, lengths
    "healthy_v2": ({"seed": 20, "batch_size": 64, "learning_rate": 6e-4, "min_lr": 6e-5, "schedule": "linear",
                    "max_iters": 300, "lr_decay_iters": 300, "warmup_iters": 20, "log_interval": 20,
                    "eval_interval": 60}, None,
                   ("healthy", "healthy", [], None, [], "nothing: batch 64, AdamW 6e-4, linear decay, stdout every 20")),
    "healthy_v3": ({"seed": 21, "batch_size": 2, "learning_rate": 1e-3, "decay_lr": False, "warmup_iters": 0,
                    "dropout": 0.1, "max_iters": 300, "log_interval": 1, "eval_interval": 100}, None,
                   ("healthy", "healthy", [], None, [],
                    "nothing: batch size 2, constant AdamW 1e-3, dropout 0.1, stdout every step (very noisy)")),
    "healthy_v4": ({"seed": 22, "learning_rate": 6e-3, "schedule": "step", "max_iters": 400, "lr_decay_iters": 400,
                    "warmup_iters": 20, "log_interval": 3, "eval_interval": 40}, None,
                   ("healthy", "healthy", [], None, [],
                    "nothing: AdamW 6e-3 (high end), step schedule x0.1 at 50 % and 75 %, stdout every 3")),
    "healthy_v5": ({"seed": 23, "optimizer": "adam", "batch_size": 8, "grad_accum": 4, "max_iters": 250,
                    "lr_decay_iters": 250, "log_interval": 7, "eval_interval": 50}, None,
                   ("healthy", "healthy", [], None, [],
                    "nothing: Adam without weight decay, batch 8 x 4 accumulation steps, stdout every 7")),
    "healthy_v6": ({"seed": 24, "optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.5, "min_lr": 0.05,
                    "weight_decay": 0.0, "max_iters": 400, "lr_decay_iters": 400, "log_interval": 10}, None,
                   ("healthy", "healthy", [], None, [], "nothing: SGD momentum 0.9 lr 0.5, cosine, clip 1")),
    "healthy_v7": ({"seed": 25, "max_iters": 150, "lr_decay_iters": 150, "warmup_iters": 10, "log_interval": 5,
                    "eval_interval": 25, "batch_size": 32}, None,
                   ("healthy", "healthy", [], None, [], "nothing: a short run, 150 steps of batch 32, stdout every 5")),
    "lr_too_high_v2": ({"seed": 26, "learning_rate": 2.0, "min_lr": 0.2, "batch_size": 4, "grad_clip": 0.0,
                        "schedule": "linear", "max_iters": 300, "lr_decay_iters": 300, "log_interval": 1,
                        "eval_interval": 50}, None,
                       ("problem", "lr_too_high", ["lr_too_high"], "instability", [],
                        "AdamW LR 2.0 with warmup 30, linear decay, no clip, batch 4, stdout every step (the loss "
                        "jumps to ~60 during warmup and settles only as the LR decays, ~1 nat above healthy runs)")),
    "bad_batch_v2": ({"seed": 27, "batch_size": 8, "decay_lr": False, "learning_rate": 1e-3, "grad_clip": 0.0,
                      "log_interval": 1, "max_iters": 420, "eval_interval": 100}, "bad_batch",
                     ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [250, 380],
                      "batches of random bytes at steps 250 and 380, constant AdamW 1e-3, no clip, batch 8, stdout every step")),
    "lr_too_low_v2": ({"seed": 28, "optimizer": "adam", "learning_rate": 3e-6, "min_lr": 3e-7, "schedule": "linear",
                       "grad_accum": 2, "log_interval": 20, "max_iters": 400, "lr_decay_iters": 400}, None,
                      ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [],
                       "Adam LR 3e-6 (1000x too low), linear decay, 2 accumulation steps, stdout every 20")),
    "small_data_v2": ({"seed": 29, "dataset_bytes": 4000, "dropout": 0.1, "schedule": "step", "max_iters": 600,
                       "lr_decay_iters": 600, "log_interval": 7, "eval_interval": 30}, None,
                      ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                       "4,000 training bytes repeated, dropout 0.1, step schedule")),
    # a third round (_v4): warm restarts, a long warmup and an LR that reaches 0 well before the end
    "healthy_sgdr_v4": ({"seed": 40, "schedule": "sgdr", "sgdr_period": 60, "warmup_iters": 20, "max_iters": 440,
                         "min_lr": 1e-5, "log_interval": 10, "eval_interval": 40}, None,
                        ("healthy", "healthy", [], None, [],
                         "nothing: AdamW 3e-3, cosine with warm restarts after steps 80, 200 (periods 60, 120, 240)")),
    "healthy_flat_tail_v4": ({"seed": 41, "schedule": "linear", "min_lr": 0.0, "warmup_iters": 70,
                              "lr_decay_iters": 350, "max_iters": 450, "log_interval": 10}, None,
                             ("healthy", "healthy", [], None, [],
                              "nothing: warmup over 70 of 450 steps (16 %), linear decay to lr 0 at step 350, "
                              "then 100 steps at lr 0 (a flat tail)")),
    "healthy_resume_v4": ({"seed": 42, "resume": (330, 250)}, None,
                          ("healthy", "healthy", [], None, [],
                           "nothing: the job dies at step 330 and is resumed from the checkpoint of step 250 (model "
                           "and optimizer restored, the LR computed from iter_num): steps 250-329 are logged twice")),
    "healthy_label_smoothing_v4": ({"seed": 43, "label_smoothing": 0.1, "log_interval": 5}, None,
                                   ("healthy", "healthy", [], None, [],
                                    "nothing: cross-entropy with label smoothing 0.1 over 256 bytes (a higher floor)")),
    "resume_bad_batch_v4": ({"seed": 44, "resume": (300, 200), "decay_lr": False, "learning_rate": 1e-3,
                             "grad_clip": 0.0, "log_interval": 1, "max_iters": 420}, "bad_batch",
                            ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [250, 380],
                             "resumed at step 300 from the checkpoint of step 200; batches of random bytes at steps "
                             "250 (both times it is trained) and 380, constant AdamW 1e-3, no clip")),
    # a sixth round (_v7): warmup-stable-decay and inverse-sqrt schedules, AdamW eps 1e-6 and PyTorch's default
    # betas (0.9, 0.999), a long log (every step of 3000), an LR decayed to a floor and held there, the loss of
    # every micro-batch of a 4-step accumulation, the validation of each data domain logged beside the mean
    "healthy_wsd_eps_v7": ({"seed": 70, "schedule": "wsd", "wsd_decay_from": 0.8, "max_iters": 600,
                            "lr_decay_iters": 600, "min_lr": 3e-5, "eps": 1e-6, "eval_interval": 60}, None,
                           ("healthy", "healthy", [], None, [],
                            "nothing: warmup-stable-decay (warmup 30, lr 3e-3 flat to step 480, linear to 3e-5 at "
                            "600), AdamW betas (0.9, 0.95) eps 1e-6")),
    "healthy_invsqrt_evalsets_v7": ({"seed": 71, "schedule": "invsqrt", "warmup_iters": 50, "beta2": 0.999,
                                     "weight_decay": 0.01, "eval_sets": True, "log_interval": 5}, None,
                                    ("healthy", "healthy", [], None, [],
                                     "nothing: inverse-sqrt schedule after a 50-step warmup, AdamW with PyTorch's "
                                     "defaults (betas 0.9, 0.999, eps 1e-8, weight decay 0.01); the validation of "
                                     "each domain (code, prose, csv) logged beside the mean")),
    "healthy_long_floor_v7": ({"seed": 72, "max_iters": 3000, "lr_decay_iters": 1500, "min_lr": 1e-4,
                               "log_interval": 1, "eval_interval": 250}, None,
                              ("healthy", "healthy", [], None, [],
                               "nothing: 3000 steps logged every step; cosine from 3e-3 to a floor of 1e-4 at step "
                               "1500, then held at the floor")),
    "bad_batch_long_v7": ({"seed": 74, "max_iters": 3000, "lr_decay_iters": 1500, "min_lr": 1e-4, "log_interval": 1,
                           "eval_interval": 250, "bad_steps": (1800, 2600)}, "bad_batch",
                          ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [1800, 2600],
                           "3000 steps logged every step (cosine to a floor of 1e-4 at step 1500, clip 1.0); batches "
                           "of random bytes at steps 1800 and 2600")),
    "healthy_micro_v7": ({"seed": 73, "batch_size": 8, "grad_accum": 4, "log_micro": True, "max_iters": 300,
                          "lr_decay_iters": 300, "eval_interval": 30}, None,
                         ("healthy", "healthy", [], None, [],
                          "nothing: batch 8 x 4 accumulation steps; the JSONL and TensorBoard have the loss of every "
                          "micro-batch (a micro-step counter), the stdout the optimizer steps")),
}


class Block(nn.Module):
    def __init__(self, d: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, n_head, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        d = c["n_embd"]
        self.wte, self.wpe = nn.Embedding(c["vocab_size"], d), nn.Embedding(c["block_size"], d)
        self.drop = nn.Dropout(c["dropout"])
        self.blocks = nn.ModuleList(Block(d, c["n_head"], c["dropout"]) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, c["vocab_size"], bias=False)
        self.head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=c["init_std"])
        for n, p in self.named_parameters():
            if n.endswith("in_proj_weight") or n.endswith("out_proj.weight"):
                nn.init.normal_(p, std=c["init_std"])

    def forward(self, idx):
        t = idx.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(t)))
        for b in self.blocks:
            x = b(x, mask)
        return self.head(self.ln_f(x))


def lr_at(it: int, c: dict, fault: str | None) -> float:
    if not c["decay_lr"]:
        return c["learning_rate"]
    if fault == "restart":
        it = it % c["lr_decay_iters"]
    if it < c["warmup_iters"]:
        return c["learning_rate"] * (it + 1) / c["warmup_iters"]
    r = min(1.0, (it - c["warmup_iters"]) / max(1, c["lr_decay_iters"] - c["warmup_iters"]))
    schedule = c.get("schedule", "cosine")  # later runs (_v2 ...) vary it; the first runs are all cosine
    if schedule == "linear":
        return c["min_lr"] + (1 - r) * (c["learning_rate"] - c["min_lr"])
    if schedule == "sgdr":  # cosine with warm restarts (_v4): periods sgdr_period, 2x, 4x ... after the warmup
        t, period = it - c["warmup_iters"], c["sgdr_period"]
        while t >= period:
            t, period = t - period, period * 2
        return c["min_lr"] + 0.5 * (1 + math.cos(math.pi * t / period)) * (c["learning_rate"] - c["min_lr"])
    if schedule == "wsd":  # (_v7) warmup-stable-decay: flat after the warmup, linear to min_lr over the last part
        start = int(c["wsd_decay_from"] * c["lr_decay_iters"])
        if it < start:
            return c["learning_rate"]
        return c["learning_rate"] + min(1.0, (it - start) / max(1, c["lr_decay_iters"] - start)) * (
            c["min_lr"] - c["learning_rate"])
    if schedule == "invsqrt":  # (_v7) inverse square root after the warmup (fairseq's inverse_sqrt)
        return c["learning_rate"] * math.sqrt(c["warmup_iters"] / (it + 1))
    if schedule == "step":  # x0.1 at 50 % and again at 75 % of the decay horizon
        return c["learning_rate"] * (0.1 ** ((r >= 0.5) + (r >= 0.75)))
    return c["min_lr"] + 0.5 * (1 + math.cos(math.pi * r)) * (c["learning_rate"] - c["min_lr"])


def train(c: dict, fault: str | None) -> tuple[list[dict], list[dict], int]:
    torch.manual_seed(c["seed"])
    gen = torch.Generator().manual_seed(c["seed"])
    doms = [torch.frombuffer(bytearray(d), dtype=torch.uint8).long() for d in domains()]
    trains = [d[: int(0.9 * len(d))] for d in doms]
    vals = [d[int(0.9 * len(d)):] for d in doms]
    if c["dataset_bytes"]:
        trains = [torch.cat(trains)[: c["dataset_bytes"]]]
    B, T = c["batch_size"], c["block_size"]

    def sample(parts, n):
        out_x, out_y = [], []
        for _ in range(n):
            src = parts[int(torch.randint(len(parts), (1,), generator=gen))]
            i = int(torch.randint(len(src) - T - 1, (1,), generator=gen))
            out_x.append(src[i:i + T])
            out_y.append(src[i + 1:i + 1 + T])
        return torch.stack(out_x), torch.stack(out_y)

    model = TinyGPT(c)
    n_params = sum(p.numel() for p in model.parameters())
    if fault == "fp16_pure":
        # pure fp16: weights, activations, gradients and Adam state in float16, no loss scaling, no fp32 master
        # weights; Adam's eps=1e-8 is below fp16's smallest subnormal (6e-8) and rounds to 0
        model.half()
    optimizer = c.get("optimizer", "adamw")  # later runs (_v2 ...) vary it; the first runs are all AdamW
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=c["learning_rate"], momentum=c.get("momentum", 0.9),
                              weight_decay=c["weight_decay"])
    elif optimizer == "adam":  # Adam without weight decay
        opt = torch.optim.Adam(model.parameters(), lr=c["learning_rate"], betas=(c["beta1"], c["beta2"]), eps=1e-8)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=c["learning_rate"], betas=(c["beta1"], c["beta2"]),
                                weight_decay=c["weight_decay"], eps=c.get("eps", 1e-8))
    accum = c.get("grad_accum", 1)  # micro-batches per optimizer step (the logged loss is their mean)
    rows, evals = [], []
    scaler = {"scale": 2.0 ** 16, "clean": 0}
    smooth = c.get("label_smoothing", 0.0)  # later runs (_v4) set it; 0 is cross_entropy's default
    resume = c.get("resume")  # (_v4) (step the job dies at, step of the checkpoint it is resumed from)
    ckpt = None
    step = 0
    while step < c["max_iters"]:
        if resume and ckpt is not None and step == resume[0]:
            # the job died; `init_from='resume'` reloads model and optimizer from the checkpoint and goes on from
            # its iter_num: the steps since the checkpoint are trained (and logged) again
            model.load_state_dict(ckpt[0])
            opt.load_state_dict(ckpt[1])
            step, resume = ckpt[2], None
            rows.append({"resumed_from": step})
        if step % c["eval_interval"] == 0 or step == c["max_iters"] - 1:
            model.eval()
            with torch.no_grad():
                tl = sum(F.cross_entropy(model(x).flatten(0, 1), y.flatten(), label_smoothing=smooth).item()
                         for x, y in (sample(trains, B) for _ in range(4))) / 4
                vl = sum(F.cross_entropy(model(x).flatten(0, 1), y.flatten(), label_smoothing=smooth).item()
                         for x, y in (sample(vals, B) for _ in range(4))) / 4
            model.train()
            evals.append({"step": step, "train_loss": tl, "val_loss": vl})
            if c.get("eval_sets"):  # (_v7) the validation split of each domain evaluated on its own as well
                with torch.no_grad():
                    for dom, part in zip(("code", "prose", "csv"), vals):
                        evals[-1][f"val_{dom}_loss"] = sum(
                            F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
                            for x, y in (sample([part], B) for _ in range(2))) / 2
            if resume and step == resume[1]:
                import copy

                ckpt = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), step)
        t0 = time.perf_counter()
        if c["data"] == "ordered":
            x, y = sample([trains[min(2, step * 3 // c["max_iters"])]], B)
        else:
            x, y = sample(trains, B)
        if fault == "noshift":
            y = x
        elif fault == "shuffled_targets":
            _, y = sample(trains, B)
        if fault == "bad_batch" and step in c.get("bad_steps", (250, 380)):  # (_v7 runs move them)
            x = torch.randint(0, 256, x.shape, generator=gen)
            y = torch.randint(0, 256, y.shape, generator=gen)
        mask = torch.ones_like(y, dtype=torch.float)
        if (fault == "masked_nan" and step == 300) or (fault == "masked_nan_skip" and step in (200, 330)):
            mask.zero_()  # every target is padding in this batch
        lr = lr_at(step, c, fault)
        for g in opt.param_groups:
            g["lr"] = lr
        ce = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none", label_smoothing=smooth)
        loss = (ce * mask.flatten()).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        micro = [float(loss.item())]
        if accum > 1:
            (loss / accum).backward()
            for _ in range(accum - 1):
                xm, ym = sample(trains, B) if c["data"] != "ordered" else sample(
                    [trains[min(2, step * 3 // c["max_iters"])]], B)
                lm = F.cross_entropy(model(xm).flatten(0, 1), ym.flatten(), label_smoothing=smooth)
                (lm / accum).backward()
                micro.append(float(lm.item()))
                loss = loss + (lm.detach() - loss.detach()) / (_ + 2)  # running mean of the micro-batch losses
        else:
            loss.backward()
        skip = fault == "masked_nan_skip" and not torch.isfinite(loss)
        if fault == "fp16_scaler":
            # emulated fp16 gradients under a dynamic loss scaler (torch.cuda.amp.GradScaler's rules): the scaled
            # gradients are stored in float16; an overflow skips the step and halves the scale, 100 clean steps
            # double it
            with torch.no_grad():
                overflow = any(not torch.isfinite((p.grad * scaler["scale"]).half()).all()
                               for p in model.parameters() if p.grad is not None)
            if overflow:
                scaler["scale"] /= 2
                scaler["clean"] = 0
                skip = True
            else:
                scaler["clean"] += 1
                if scaler["clean"] == 100:
                    scaler["scale"] *= 2
                    scaler["clean"] = 0
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"] if c["grad_clip"] else float("inf"))
        if fault == "fp16_scaler" and overflow:
            norm = torch.tensor(float("inf"))  # what the unscaled fp16 gradients' norm is on an overflow step
        if not skip:
            opt.step()
        dt = (time.perf_counter() - t0) * 1000
        rows.append({"step": step, "loss": float(loss.item()), "grad_norm": float(norm.item()), "lr": lr,
                     "tokens": (step + 1) * B * T * accum, "dt_ms": round(dt, 2)})
        if c.get("log_micro"):
            rows[-1]["micro"] = micro
        step += 1
    return rows, evals, n_params


def mfu_of(c: dict, n_params: int, dt_s: float) -> float:
    """nanoGPT's GPT.estimate_mfu: 6N + 12 L H Q T flops per token against 312e12 flop/s."""
    L, H, Q, T = c["n_layer"], c["n_head"], c["n_embd"] // c["n_head"], c["block_size"]
    flops_per_iter = (6 * n_params + 12 * L * H * Q * T) * T * c["batch_size"]
    return flops_per_iter / max(dt_s, 1e-9) / 312e12


def nanogpt_log(rows, evals, c, n_params) -> str:
    """nanoGPT's train.py stdout: parameter count, eval lines every eval_interval, iter lines every log_interval."""
    out = [f"number of parameters: {n_params / 1e6:.2f}M",
           f"tokens per iteration will be: {c['batch_size'] * c['block_size']:,}"]
    pending = list(evals)  # in the order they ran (a resumed run evaluates its checkpoint's step again)
    running_mfu = -1.0
    for r in rows:
        if "resumed_from" in r:
            out += [f"Resuming training from out (iter_num {r['resumed_from']})",
                    f"number of parameters: {n_params / 1e6:.2f}M"]
            running_mfu = -1.0
            continue
        s = r["step"]
        if pending and pending[0]["step"] == s:
            e = pending.pop(0)
            out.append(f"step {s}: train loss {fmt_num(e['train_loss'])}, val loss {fmt_num(e['val_loss'])}")
        if s % c["log_interval"] == 0:
            if s >= 5:  # nanoGPT's running MFU against an A100's 312 TFLOPS (tiny on a CPU, as it is)
                mfu = mfu_of(c, n_params, r["dt_ms"] / 1000)
                running_mfu = mfu if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * mfu
            out.append(f"iter {s}: loss {fmt_num(r['loss'])}, time {r['dt_ms']:.2f}ms, mfu {running_mfu * 100:.2f}%")
    return "\n".join(out) + "\n"


def nanogpt_step(line: str):
    for prefix in ("iter ", "step "):
        if line.startswith(prefix):
            return int(line[len(prefix):].split(":")[0])
    return None



# faults seen only in the LR trace: the loss shows no mark of them (looked at: 10-step means stay on the healthy
# trend through every restart), so a log without the LR (nanoGPT stdout) is honestly healthy
LR_TRACE_ONLY = {"restart_bug"}

EXCERPTS = {  # run -> first step of the pasted excerpt (the fault must be visible after it)
    "healthy_a": 200, "healthy_c": 300, "lr_too_high": 100, "bad_batch": 200, "masked_batch_nan": 250,
    "targets_not_shifted": 150, "small_data": 250, "domain_ordered": 100, "restart_bug": 200,
    "lr_too_low": 250, "tiny_model": 200,
    "healthy_v3": 120, "healthy_v4": 150, "bad_batch_v2": 200,
    "healthy_long_floor_v7": 1400, "healthy_wsd_eps_v7": 300,
}


def generate(labels: Labels, only: set[str] | None = None) -> None:
    root = RUNS / FAMILY
    for name, (over, fault, lab) in RUNS_SPEC.items():
        if only and name not in only:
            continue
        c = dict(BASE, **over)
        t0 = time.time()
        logged, evals, n_params = train(c, fault)
        rows = [r for r in logged if "resumed_from" not in r]  # (the stdout shows where a job was resumed)
        verdict, cause, accept, symptom, steps, injected = lab
        losses = [r["loss"] for r in rows]
        vals = [e["val_loss"] for e in evals]
        curve = (f"train loss {summarize(losses)}; val loss {summarize(vals, 6)}; grad norm "
                 f"{summarize([r['grad_norm'] for r in rows], 6)}")
        log(f"[gpt] {name:22s} {time.time() - t0:5.1f}s  {curve}")
        evidence = f"injected: {injected}. curve: {curve}"
        d = clean_dir(root / name)
        cfg_path = None
        if has_config(FAMILY, name):
            cfg_path = d / "config.py"
            write_config_py(cfg_path, dict(c, n_params=n_params, tokens_per_iter=c["batch_size"] * c["block_size"],
                                           dataset_tokens=c["dataset_bytes"] or 540_000))  # 0.9 x 3 x 200 KB
        text = nanogpt_log(logged, evals, c, n_params)
        (d / "train.log").write_text(text)
        eval_keys = [k for k in (evals[0] if evals else {}) if k.startswith("val_")]  # val_loss [, val_<set>_loss]
        if c.get("log_micro"):
            # (_v7) a line per micro-batch: its own loss and a micro-step counter; the LR changes and the gradient
            # norm exists once per optimizer step (on its last micro-batch)
            a = c["grad_accum"]
            train_rows = [{"micro_step": r["step"] * a + k, "step": r["step"], "loss": m, "lr": r["lr"]}
                          | ({"grad_norm": r["grad_norm"]} if k == a - 1 else {})
                          for r in rows for k, m in enumerate(r["micro"])]
            eval_rows = [{"micro_step": e["step"] * a, "step": e["step"]} | {k: e[k] for k in eval_keys}
                         for e in evals]
            write_jsonl(d / "metrics.jsonl", train_rows + eval_rows)
            tb = write_tensorboard(d / "tb", [(t, r["micro_step"], r[k]) for r in train_rows for t, k in
                                              (("train/loss", "loss"), ("train/lr", "lr"))]
                                   + [("val/loss", e["micro_step"], e["val_loss"]) for e in eval_rows])
        else:
            write_jsonl(d / "metrics.jsonl", rows + [{"step": e["step"]} | {k: e[k] for k in eval_keys} for e in evals])
            tb = write_tensorboard(d / "tb", [(t, r["step"], r[k]) for r in rows for t, k in
                                              (("train/loss", "loss"), ("train/lr", "lr"),
                                               ("train/grad_norm", "grad_norm"))]
                                   + [("val/loss" if k == "val_loss" else f"{k[:-5]}/loss",
                                       e["step"], e[k]) for e in evals for k in eval_keys])
        common = dict(family=FAMILY, group=f"{FAMILY}/{name}", verdict=verdict, cause=cause, accept=accept,
                      symptom=symptom, steps=steps, evidence=evidence, config=cfg_path)
        stdout_common = common
        if name in LR_TRACE_ONLY:
            stdout_common = dict(common, verdict="healthy", cause="healthy", accept=[], symptom=None, steps=[],
                                 evidence="this log has no LR and the loss shows no mark of the fault; " + evidence)
        labels.add(d / "train.log", fmt="nanogpt_stdout", **stdout_common)
        labels.add(d / "metrics.jsonl", fmt="jsonl", **common)
        labels.add(tb, fmt="tensorboard", **common)
        if name in EXCERPTS:
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            (e / "train.log").write_text(excerpt_lines(text, start, nanogpt_step))
            ex_steps = [s for s in steps if s >= start]
            labels.add(e / "train.log", fmt="nanogpt_stdout", excerpt_from=start,
                       **dict(stdout_common, config=None, steps=ex_steps if name not in LR_TRACE_ONLY else [],
                              evidence=f"excerpt from step {start} of {name}; " + stdout_common["evidence"]))
