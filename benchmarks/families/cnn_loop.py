"""Family 8: a small CNN on scikit-learn's 8x8 digits in a plain PyTorch loop (the torchvision-reference style):
SGD with momentum, a step or cosine LR schedule stepped per epoch, a line per logged iteration
`[epoch 3][iter 40/88] loss 0.4130 lr 0.010000` plus an end-of-epoch validation line, and a TensorBoard event
file (train/loss, train/lr per logged iteration, val/loss and val/acc per epoch).

torch.utils.tensorboard needs the tensorboard package, which is not installed here: the event file is written by
lossdx.testing.events (the same framing and protos), as the gpt family does.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import RUNS, Labels, clean_dir, excerpt_lines, fmt_num, has_config, log, summarize, write_config_py
from common import write_tensorboard

FAMILY = "cnn_loop"

BASE = dict(seed=0, lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=16, epochs=8, schedule="step",
            step_size=3, gamma=0.1, print_freq=10, shuffle=True, sorted_data=False, schedule_bug=False,
            bad_batch_iter=None, clip=None,
            # later runs (_v4 ...) vary these; the defaults train exactly as the first runs did
            optimizer="sgd", label_smoothing=0.0, bf16=False, width=1, train_size=None, eval_every=0,
            early_stop=0, resume=None, resume_sched_reset=False, warmup_frac=0.0, cycle_epochs=2, csv=False,
            # the sixth round (_v7) varies these; the defaults train exactly as before
            nesterov=False, dropout=0.0, channels=None, fp16=False, clip_scaled=False, nan_image=None,
            keep_frac=None, wandb=False, jsonl=False)

RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_step": ({}, ("healthy", "healthy", [], None, [],
                          "nothing: SGD 0.05 momentum 0.9, StepLR(3, 0.1), batch 16, printed every 10 iterations")),
    "healthy_cosine": ({"seed": 1, "lr": 0.03, "schedule": "cosine", "epochs": 10, "print_freq": 20},
                       ("healthy", "healthy", [], None, [],
                        "nothing: SGD 0.03 momentum 0.9, cosine over 10 epochs, printed every 20 iterations")),
    "healthy_batch64": ({"seed": 2, "lr": 0.02, "batch_size": 64, "epochs": 12, "step_size": 5, "print_freq": 5},
                        ("healthy", "healthy", [], None, [],
                         "nothing: SGD 0.02, batch 64, StepLR(5, 0.1), printed every 5 iterations")),
    "lr_too_high": ({"seed": 3, "lr": 1.5},
                    ("problem", "lr_too_high", ["lr_too_high"], "divergence", [], "SGD lr 1.5 momentum 0.9 (30x)")),
    "lr_schedule_bug": ({"seed": 4, "epochs": 9, "schedule_bug": True},
                        ("problem", "lr_schedule_bug", ["lr_schedule_bug"], "lr_schedule", [],
                         "the StepLR scheduler is rebuilt (no state) when training resumes at epoch 6: the lr "
                         "jumps from 0.0005 back to 0.05")),
    "bad_data_batch": ({"seed": 5, "bad_batch_iter": 304},
                       ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [304],
                        "the batch of iteration 304 is garbage (random raw pixel values 0..16, not normalised)")),
    "sorted_by_class": ({"seed": 6, "shuffle": False, "sorted_data": True},
                        ("problem", "data_order", ["data_order"], "data_order", [],
                         "training set sorted by digit and not shuffled: each epoch walks 0..9")),
    # a third round of varied runs (issue 7): schedules with restarts, resumed runs, label smoothing, early
    # stopping, long warmup, LR decayed to 0, bf16 autocast, tight clipping, AdamW weight decay 0.1, evaluation
    # every 10 iterations, a wider CNN, a small training set, a CSV beside the stdout
    "healthy_sgdr_v4": ({"seed": 40, "schedule": "sgdr", "cycle_epochs": 2, "epochs": 14, "csv": True},
                        ("healthy", "healthy", [], None, [],
                         "nothing: SGD 0.05, cosine with warm restarts per iteration (periods 2, 4, 8 epochs)")),
    "healthy_cyclic_v4": ({"seed": 41, "lr": 0.04, "schedule": "cyclic", "cycle_epochs": 2, "epochs": 10,
                           "print_freq": 5},
                          ("healthy", "healthy", [], None, [],
                           "nothing: SGD, triangular cyclic LR 0.004..0.04 with a 2-epoch cycle, printed every 5")),
    "healthy_resume_v4": ({"seed": 42, "resume": (5 * 88 + 41, 3), "csv": True},
                          ("healthy", "healthy", [], None, [],
                           "nothing: the job dies at iteration 481 (epoch 5) and is resumed from the checkpoint of "
                           "epoch 3 with model, optimizer and scheduler restored: iterations 352-480 repeat")),
    "healthy_label_smoothing_v4": ({"seed": 43, "label_smoothing": 0.1, "schedule": "cosine", "epochs": 10},
                                   ("healthy", "healthy", [], None, [],
                                    "nothing: label smoothing 0.1 (the loss floor is ~0.5, not 0), cosine")),
    "healthy_early_stop_v4": ({"seed": 44, "lr": 0.02, "schedule": "cosine", "epochs": 40, "early_stop": 3,
                               "print_freq": 20},
                              ("healthy", "healthy", [], None, [],
                               "nothing: SGD 0.02, cosine over 40 epochs, stopped early when val loss had not "
                               "improved for 3 epochs")),
    "healthy_long_warmup_v4": ({"seed": 45, "schedule": "warmup_cosine", "warmup_frac": 0.15, "epochs": 10},
                               ("healthy", "healthy", [], None, [],
                                "nothing: linear warmup over 15 % of the iterations, then cosine per iteration")),
    "healthy_lr_to_zero_v4": ({"seed": 46, "schedule": "linear_to_zero", "warmup_frac": 0.05, "epochs": 10,
                               "csv": True},
                              ("healthy", "healthy", [], None, [],
                               "nothing: linear decay that reaches lr 0 at 80 % of the run (flat tail)")),
    "healthy_bf16_v4": ({"seed": 47, "bf16": True},
                        ("healthy", "healthy", [], None, [],
                         "nothing: torch.autocast('cpu', dtype=torch.bfloat16), StepLR(3, 0.1)")),
    "healthy_clip_v4": ({"seed": 48, "clip": 0.1, "schedule": "cosine", "epochs": 10},
                        ("healthy", "healthy", [], None, [],
                         "nothing: gradient clipping at 0.1 (active on nearly every iteration), cosine")),
    "healthy_adamw_wd_v4": ({"seed": 49, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.1,
                             "schedule": "cosine", "epochs": 10},
                            ("healthy", "healthy", [], None, [], "nothing: AdamW 1e-3, weight decay 0.1, cosine")),
    "healthy_eval10_v4": ({"seed": 50, "schedule": "cosine", "eval_every": 10, "print_freq": 5},
                          ("healthy", "healthy", [], None, [],
                           "nothing: validation every 10 iterations and at each epoch's end, cosine")),
    "healthy_wide_v4": ({"seed": 51, "width": 4, "lr": 0.02, "schedule": "cosine", "epochs": 6},
                        ("healthy", "healthy", [], None, [], "nothing: a 4x wider CNN (64/128 channels), SGD 0.02")),
    "healthy_small_data_v4": ({"seed": 52, "train_size": 160, "lr": 0.02, "schedule": "cosine", "epochs": 25,
                               "print_freq": 3, "weight_decay": 5e-4},
                              ("healthy", "healthy", [], None, [],
                               "nothing: 160 training images (10 iterations per epoch), 25 epochs, cosine")),
    "lr_too_high_sgdr_v4": ({"seed": 53, "lr": 0.3, "schedule": "sgdr", "cycle_epochs": 2, "epochs": 6},
                            ("problem", "lr_too_high", ["lr_too_high"], "plateau", [],
                             "SGD lr 0.3 momentum 0.9 (6x the healthy 0.05) with warm restarts")),
    "lr_too_high_adamw_warmup_v4": ({"seed": 54, "optimizer": "adamw", "lr": 0.1, "weight_decay": 0.01,
                                     "schedule": "warmup_cosine", "warmup_frac": 0.15, "epochs": 8},
                                    ("problem", "lr_too_high", ["lr_too_high"], "plateau", [],
                                     "AdamW lr 0.1 (100x the healthy 1e-3) after a warmup over 15 % of the run")),
    "bad_batch_bf16_v4": ({"seed": 55, "bf16": True, "bad_batch_iter": 402, "print_freq": 5},
                          ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [402],
                           "bf16 autocast; the batch of iteration 402 is raw 0..16 pixel values, not normalised")),
    "bad_batch_smoothing_v4": ({"seed": 56, "label_smoothing": 0.1, "schedule": "cosine", "bad_batch_iter": 300,
                                "eval_every": 10, "print_freq": 2},
                               ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [300],
                                "label smoothing 0.1; the batch of iteration 300 is raw 0..16 pixel values")),
    "resume_sched_reset_v4": ({"seed": 57, "epochs": 9, "resume": (7 * 88 + 30, 6), "resume_sched_reset": True,
                               "csv": True},
                              ("problem", "lr_schedule_bug", ["lr_schedule_bug"], "lr_schedule", [],
                               "the job dies at iteration 646 (epoch 7) and resumes from the checkpoint of epoch 6 "
                               "with a new StepLR: the lr jumps from 0.0005 back to its peak 0.05")),
    "overfit_small_wide_v4": ({"seed": 58, "train_size": 40, "width": 4, "optimizer": "adamw", "lr": 1e-3,
                               "weight_decay": 0.0, "step_size": 1000, "epochs": 150, "batch_size": 20,
                               "print_freq": 1},
                              ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                               "40 training images, a 4x wider CNN, constant AdamW 1e-3 without weight decay, "
                               "150 epochs")),
    # a sixth round of varied runs (_v7): SGD+Nesterov, fp16 autocast with a GradScaler (the loss scale logged),
    # dropout 0.3 vs 0, per-epoch-only logs (~10 points), a W&B history CSV and a per-epoch JSONL beside the
    # stdout, and faults rare in the labels (nan_in_input, capacity_too_small, over_regularization,
    # class_imbalance, fp16_precision, data_order in a short log)
    "healthy_nesterov_wandb_v7": ({"seed": 70, "nesterov": True, "lr": 0.03, "schedule": "cosine", "epochs": 10,
                                   "print_freq": 5, "wandb": True},
                                  ("healthy", "healthy", [], None, [],
                                   "nothing: SGD 0.03 with Nesterov momentum 0.9, cosine, a W&B history CSV")),
    "healthy_fp16_scaler_v7": ({"seed": 71, "fp16": True, "clip": 1.0, "wandb": True},
                               ("healthy", "healthy", [], None, [],
                                "nothing: fp16 autocast with a GradScaler (the loss scale logged), unscale_ then "
                                "clip 1.0, StepLR(3, 0.1)")),
    "fp16_clip_scaled_v7": ({"seed": 72, "fp16": True, "clip": 1.0, "clip_scaled": True, "wandb": True},
                            ("problem", "fp16_precision", ["fp16_precision", "lr_too_low"], "plateau", [0],
                             "fp16 autocast with a GradScaler, but the gradients are clipped to norm 1 before "
                             "scaler.unscale_: the scaled (x65536) gradients are clipped, then divided by the scale, "
                             "so every update is ~65536x too small")),
    "healthy_dropout_epoch_v7": ({"seed": 73, "dropout": 0.3, "lr": 0.03, "schedule": "cosine", "epochs": 10,
                                  "print_freq": 1000, "jsonl": True},
                                 ("healthy", "healthy", [], None, [],
                                  "nothing: dropout 0.3 before the last layer, cosine; the stdout prints only the "
                                  "first iteration of each epoch, the JSONL one line per epoch")),
    "healthy_nodropout_epoch_v7": ({"seed": 73, "lr": 0.03, "schedule": "cosine", "epochs": 10,
                                    "print_freq": 1000, "jsonl": True},
                                   ("healthy", "healthy", [], None, [],
                                    "nothing: the twin of healthy_dropout_epoch_v7 without dropout (per-epoch logs)")),
    "sorted_epoch_v7": ({"seed": 74, "shuffle": False, "sorted_data": True, "lr": 0.03, "schedule": "cosine",
                         "epochs": 10, "print_freq": 1000, "jsonl": True},
                        ("problem", "data_order", ["data_order"], "data_order", [],
                         "training set sorted by digit and not shuffled; logged per epoch only")),
    "healthy_floor_v7": ({"seed": 79, "schedule": "cosine_floor", "lr": 0.03, "epochs": 12, "print_freq": 8,
                          "wandb": True},
                         ("healthy", "healthy", [], None, [],
                          "nothing: SGD 0.03, cosine per iteration to a floor of 0.003 at 60 % of the run, then held "
                          "there for the last 40 %")),
    "tiny_cnn_v7": ({"seed": 75, "channels": (1, 1, 2), "lr": 0.05, "schedule": "cosine", "epochs": 12,
                     "wandb": True},
                    ("problem", "capacity_too_small", ["capacity_too_small"], "plateau", [],
                     "a CNN with 1 and 1 channels and 2 hidden units (the healthy one has 16, 32, 64)")),
    "wd_too_high_v7": ({"seed": 76, "weight_decay": 0.1, "lr": 0.05, "schedule": "cosine", "epochs": 10,
                        "print_freq": 5},
                       ("problem", "over_regularization", ["over_regularization"], "plateau", [],
                        "SGD weight decay 0.1 (1000x the healthy 1e-4)")),
    "nan_image_v7": ({"seed": 77, "nan_image": 659, "print_freq": 5, "wandb": True},
                     ("problem", "nan_in_input", ["nan_in_input"], "nan", [],
                      "one pixel of training image 659 is NaN: the loss of its batch is NaN and SGD spreads it "
                      "to every weight")),
    "imbalance_v7": ({"seed": 78, "keep_frac": 0.1, "lr": 0.03, "schedule": "cosine", "epochs": 20,
                      "print_freq": 4},
                     ("problem", "class_imbalance", ["class_imbalance", "overfitting_small_data"], "overfitting", [],
                      "every training image of digit 0 kept, 10 % of the other digits (0 is ~37 % of the set); "
                      "validation stays balanced")),
}


def data(c: dict):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(1234).permutation(len(y))
    x, y = x[perm], y[perm]
    xtr, ytr, xva, yva = x[:1400], y[:1400], x[1400:], y[1400:]
    mean, std = xtr.mean(), xtr.std()
    xtr, xva = (xtr - mean) / std, (xva - mean) / std
    if c["sorted_data"]:
        order = np.argsort(ytr, kind="stable")
        xtr, ytr = xtr[order], ytr[order]
    return xtr.reshape(-1, 1, 8, 8), ytr, xva.reshape(-1, 1, 8, 8), yva


class SmallCNN(nn.Module):
    def __init__(self, width: int = 1, dropout: float = 0.0, channels: tuple | None = None) -> None:
        super().__init__()
        c1, c2, h = channels or (16 * width, 32 * width, 64 * width)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 4 * 4, h)
        self.fc2 = nn.Linear(h, 10)
        self.dropout = dropout  # (_v7) before the classifier layer; 0 draws no random numbers

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        h = F.relu(self.fc1(x.flatten(1)))
        if self.dropout:
            h = F.dropout(h, self.dropout, self.training)
        return self.fc2(h)


PER_ITER_SCHEDULES = ("sgdr", "cyclic", "warmup_cosine", "linear_to_zero", "cosine_floor")


def lr_factor(it: int, total: int, per_epoch: int, c: dict) -> float:
    """LR multiplier of the per-iteration schedules of the _v4 runs (LambdaLR, stepped every iteration)."""
    if c["schedule"] == "sgdr":  # cosine with warm restarts, period doubling from cycle_epochs (T_mult 2)
        period, t = c["cycle_epochs"] * per_epoch, it
        while t >= period:
            t, period = t - period, period * 2
        return 0.5 * (1 + math.cos(math.pi * t / period))
    if c["schedule"] == "cyclic":  # triangular between lr/10 and lr, half a cycle per cycle_epochs/2
        half = c["cycle_epochs"] * per_epoch / 2
        x = abs((it / half) % 2 - 1)
        return 0.1 + 0.9 * (1 - x)
    if c["schedule"] == "cosine_floor":  # (_v7) cosine to 10 % of the peak at 60 % of the run, then held there
        r = min(1.0, it / (0.6 * total))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * r))
    warm = int(c["warmup_frac"] * total)
    if it < warm:
        return (it + 1) / warm
    r = (it - warm) / max(1, total - warm)
    if c["schedule"] == "linear_to_zero":  # reaches 0 at 80 % of the run and stays there
        return max(0.0, 1 - r / 0.8)
    return 0.5 * (1 + math.cos(math.pi * r))


def make_scheduler(opt, c: dict, per_epoch: int = 0):
    if c["schedule"] in PER_ITER_SCHEDULES:
        total = c["epochs"] * per_epoch
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(it, total, per_epoch, c))
    if c["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=c["epochs"])
    return torch.optim.lr_scheduler.StepLR(opt, step_size=c["step_size"], gamma=c["gamma"])


def amp_dtype(c: dict):
    return torch.float16 if c["fp16"] else torch.bfloat16


def evaluate(model, xva_t, yva_t, c: dict) -> tuple[float, float]:
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=amp_dtype(c), enabled=c["bf16"] or c["fp16"]):
        logits = model(xva_t).float()
        vl = F.cross_entropy(logits, yva_t).item()
        acc = (logits.argmax(-1) == yva_t).float().mean().item()
    model.train()
    return vl, acc


def train(c: dict):
    import copy

    torch.manual_seed(c["seed"])
    xtr, ytr, xva, yva = data(c)
    if c["train_size"]:
        xtr, ytr = xtr[: c["train_size"]], ytr[: c["train_size"]]
    if c["keep_frac"] is not None:
        # (_v7) class imbalance: every image of digit 0 kept, keep_frac of each other digit
        keep = (ytr == 0) | (np.random.default_rng(c["seed"]).random(len(ytr)) < c["keep_frac"])
        xtr, ytr = xtr[keep], ytr[keep]
    if c["nan_image"] is not None:
        xtr = xtr.copy()
        xtr[c["nan_image"], 0, 3, 4] = np.nan  # (_v7) one pixel of one training image is NaN (a corrupt file)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xva_t, yva_t = torch.from_numpy(xva), torch.from_numpy(yva)
    model = SmallCNN(c["width"], c["dropout"], c["channels"])
    if c["optimizer"] == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
    elif c["nesterov"]:
        opt = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"],
                              nesterov=True)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"])
    # (_v7) fp16 autocast with torch.amp's dynamic loss scaler (init 65536, halved on overflow, doubled after
    # 2000 clean steps); clip_scaled: the clipping happens before scaler.unscale_, on the scaled gradients
    scaler = torch.amp.GradScaler("cpu", enabled=c["fp16"])
    t_start = time.time()
    gen = torch.Generator().manual_seed(c["seed"])
    n = len(ytr)
    per_epoch = math.ceil(n / c["batch_size"])
    sched = make_scheduler(opt, c, per_epoch)
    lines: list[str] = []
    rows: list[dict] = []  # every iteration (for the curve summary and the TensorBoard file)
    evals: list[dict] = []
    it = 0
    ckpt = None
    resumed = False
    best, since_best = math.inf, 0
    epoch = 0
    while epoch < c["epochs"]:
        if c["schedule_bug"] and epoch == 6:
            # "resume": optimizer and scheduler rebuilt from the config, the scheduler's state not restored
            for g in opt.param_groups:
                g["lr"] = c["lr"]
                g["initial_lr"] = c["lr"]
            sched = make_scheduler(opt, c)
        model.train()
        order = torch.randperm(n, generator=gen) if c["shuffle"] else torch.arange(n)
        crashed = False
        for b in range(per_epoch):
            if c["resume"] and not resumed and it == c["resume"][0]:
                crashed = True  # the job dies here; it is restarted from the last checkpoint
                break
            idx = order[b * c["batch_size"]:(b + 1) * c["batch_size"]]
            x, y = xtr_t[idx], ytr_t[idx]
            if c["bad_batch_iter"] is not None and it == c["bad_batch_iter"]:
                # garbage pixels: raw 0..16 pixel values that skipped normalisation
                x = torch.rand(x.shape, generator=torch.Generator().manual_seed(it)) * 16.0
            with torch.autocast("cpu", dtype=amp_dtype(c), enabled=c["bf16"] or c["fp16"]):
                loss = F.cross_entropy(model(x).float(), y, label_smoothing=c["label_smoothing"])
            opt.zero_grad()
            if c["fp16"]:
                scale = scaler.get_scale()  # the scale this step's loss is multiplied by
                scaler.scale(loss).backward()
                if c["clip"]:
                    if not c["clip_scaled"]:
                        scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                if c["clip"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
                opt.step()
            lr = opt.param_groups[0]["lr"]
            rows.append({"iter": it, "loss": loss.item(), "lr": lr, "seq": len(rows) + len(evals),
                         "runtime": time.time() - t_start})
            if c["fp16"]:
                rows[-1]["loss_scale"] = scale
            if b % c["print_freq"] == 0:
                extra = f" loss_scale {scale:.1f}" if c["fp16"] else ""
                lines.append(f"[epoch {epoch}][iter {b}/{per_epoch}] loss {fmt_num(loss.item())} lr {lr:.6f}{extra}")
            it += 1
            if c["schedule"] in PER_ITER_SCHEDULES:
                sched.step()
            if c["eval_every"] and it % c["eval_every"] == 0 and b + 1 < per_epoch:
                vl, acc = evaluate(model, xva_t, yva_t, c)
                evals.append({"iter": it, "epoch": epoch, "val_loss": vl, "val_acc": acc,
                              "seq": len(rows) + len(evals), "runtime": time.time() - t_start})
                lines.append(f"[epoch {epoch}][iter {b + 1}/{per_epoch}] val loss {fmt_num(vl)} acc {100 * acc:.2f}%")
        if crashed:
            # restart from the checkpoint of the end of epoch ckpt["epoch"]: model and optimizer restored; the
            # scheduler too unless resume_sched_reset (then rebuilt from the config: back at its peak)
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["opt"])
            if c["resume_sched_reset"]:
                for g in opt.param_groups:
                    g["lr"] = c["lr"]
                    g["initial_lr"] = c["lr"]
                sched = make_scheduler(opt, c, per_epoch)
            else:
                sched.load_state_dict(ckpt["sched"])
            gen.set_state(ckpt["gen"])
            epoch, it, resumed = ckpt["epoch"] + 1, ckpt["it"], True
            lines.append(f"=> loading checkpoint 'checkpoint_epoch{ckpt['epoch']}.pth' (epoch {ckpt['epoch']})")
            continue
        if c["schedule"] not in PER_ITER_SCHEDULES:
            sched.step()
        vl, acc = evaluate(model, xva_t, yva_t, c)
        evals.append({"iter": it, "epoch": epoch, "val_loss": vl, "val_acc": acc, "seq": len(rows) + len(evals),
                      "runtime": time.time() - t_start})
        lines.append(f"[epoch {epoch}] val loss {fmt_num(vl)} acc {100 * acc:.2f}%")
        if c["resume"] and epoch == c["resume"][1]:
            ckpt = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
                    "sched": copy.deepcopy(sched.state_dict()), "gen": gen.get_state(), "epoch": epoch, "it": it}
        if c["early_stop"]:
            if vl < best - 1e-4:
                best, since_best = vl, 0
            else:
                since_best += 1
                if since_best >= c["early_stop"]:
                    lines.append(f"early stopping at epoch {epoch}: val loss has not improved for {since_best} epochs "
                                 f"(best {fmt_num(best)})")
                    break
        epoch += 1
    return lines, rows, evals, per_epoch


def write_csv(path, logged: list[dict], evals: list[dict]) -> None:
    """step,epoch,train_loss,lr,val_loss,val_acc: one row per logged iteration and per evaluation, in log order."""
    out = [(r["seq"], 0, f"{r['iter']},,{fmt_num(r['loss'], '.6g')},{r['lr']:.6g},,") for r in logged]
    out += [(e["seq"], 1, f"{e['iter']},{e['epoch']},,,{fmt_num(e['val_loss'], '.6g')},{e['val_acc']:.4f}")
            for e in evals]
    with open(path, "w") as fh:
        fh.write("step,epoch,train_loss,lr,val_loss,val_acc\n")
        fh.writelines(row + "\n" for _s, _k, row in sorted(out))


def write_wandb_csv(path, logged: list[dict], evals: list[dict]) -> None:
    """A W&B run-history export (`run.history()` / the UI's CSV): `_step`, `_runtime`, `_timestamp` and the
    logged keys; wandb.log(..., step=iteration) merges an evaluation into the row of the iteration it shares a
    step with, and a key not logged at a step is empty there."""
    by_step: dict[int, dict] = {}
    for r in logged:
        row = by_step.setdefault(r["iter"], {"_runtime": r["runtime"]})
        row.update({"train/loss": r["loss"], "train/lr": r["lr"]})
        if "loss_scale" in r:
            row["train/loss_scale"] = r["loss_scale"]
    for e in evals:
        row = by_step.setdefault(e["iter"], {"_runtime": e["runtime"]})
        row.update({"val/loss": e["val_loss"], "val/acc": e["val_acc"]})
    keys = ["train/loss", "train/lr"] + (["train/loss_scale"] if any("loss_scale" in r for r in logged) else [])
    keys += ["val/acc", "val/loss"]
    with open(path, "w") as fh:
        fh.write(",".join(["_step", "_runtime", "_timestamp"] + keys) + "\n")
        for step in sorted(by_step):
            row = by_step[step]
            vals = [str(step), f"{row['_runtime']:.6g}", f"{1_764_000_000 + row['_runtime']:.6f}"]
            vals += [fmt_num(row[k], ".8g") if k in row else "" for k in keys]
            fh.write(",".join(vals) + "\n")


def write_epoch_jsonl(path, rows: list[dict], evals: list[dict], per_epoch: int) -> None:
    """One JSON line per epoch (the mean train loss of its iterations and the validation), as a loop that logs
    only per epoch writes it."""
    out = []
    for e in evals:
        its = [r["loss"] for r in rows if r["iter"] // per_epoch == e["epoch"]]
        out.append({"epoch": e["epoch"], "step": e["iter"], "train_loss": sum(its) / len(its) if its else None,
                    "val_loss": e["val_loss"], "val_acc": e["val_acc"]})
    with open(path, "w") as fh:
        for r in out:
            fh.write(json.dumps(r) + "\n")


_LINE = re.compile(r"^\[epoch (\d+)\]\[iter (\d+)/(\d+)\]")


def make_step_of(per_epoch: int):
    def step_of(line: str):
        m = _LINE.match(line)
        return int(m.group(1)) * per_epoch + int(m.group(2)) if m else None
    return step_of


EXCERPTS = {"healthy_step": 200, "lr_schedule_bug": 350, "bad_data_batch": 250, "healthy_fp16_scaler_v7": 300}


def generate(labels: Labels, only: set[str] | None = None) -> None:
    root = RUNS / FAMILY
    for name, (over, lab) in RUNS_SPEC.items():
        if only and name not in only:
            continue
        c = dict(BASE, **over)
        t0 = time.time()
        lines, rows, evals, per_epoch = train(c)
        verdict, cause, accept, symptom, steps, injected = lab
        if c["schedule_bug"]:
            steps = [6 * per_epoch]
        if c["resume_sched_reset"]:
            steps = [(c["resume"][1] + 1) * per_epoch]
        if c["nan_image"] is not None:  # the iteration whose batch holds the NaN image
            steps = [next(r["iter"] for r in rows if not math.isfinite(r["loss"]))]
        curve = (f"train loss {summarize([r['loss'] for r in rows])}; lr {summarize([r['lr'] for r in rows], 6)}; "
                 f"val loss per epoch {summarize([e['val_loss'] for e in evals], 6)}; {per_epoch} iterations/epoch")
        log(f"[cnn_loop] {name:18s} {time.time() - t0:5.1f}s  {curve}")
        d = clean_dir(root / name)
        text = "\n".join(lines) + "\n"
        (d / "train.log").write_text(text)
        logged = [r for r in rows if (r["iter"] % per_epoch) % c["print_freq"] == 0]
        tb = write_tensorboard(d / "tb", [(t, r["iter"], r[k]) for r in logged for t, k in
                                          (("train/loss", "loss"), ("train/lr", "lr"))]
                               + [(t, e["iter"], e[k]) for e in evals for t, k in
                                  (("val/loss", "val_loss"), ("val/acc", "val_acc"))])
        if c["csv"]:
            write_csv(d / "metrics.csv", logged, evals)
        if c["wandb"]:
            write_wandb_csv(d / "wandb_history.csv", logged, evals)
        if c["jsonl"]:
            write_epoch_jsonl(d / "metrics.jsonl", rows, evals, per_epoch)
        cfg_path = None
        if has_config(FAMILY, name):
            cfg_path = d / "config.py"
            write_config_py(cfg_path, {k: v for k, v in c.items()
                                       if k not in ("sorted_data", "schedule_bug", "bad_batch_iter")}
                            | {"model": "SmallCNN", "dataset": "digits8x8", "optimizer": "sgd"})
        common = dict(family=FAMILY, group=f"{FAMILY}/{name}", verdict=verdict, cause=cause, accept=accept,
                      symptom=symptom, steps=steps, evidence=f"injected: {injected}. curve: {curve}", config=cfg_path)
        labels.add(d / "train.log", fmt="torchvision_stdout", **common)
        labels.add(tb, fmt="tensorboard", **common)
        if c["csv"]:
            labels.add(d / "metrics.csv", fmt="csv", **common)
        if c["wandb"]:
            labels.add(d / "wandb_history.csv", fmt="wandb_csv", **common)
        if c["jsonl"]:
            labels.add(d / "metrics.jsonl", fmt="jsonl", **common)
        if name in EXCERPTS:
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            (e / "train.log").write_text(excerpt_lines(text, start, make_step_of(per_epoch)))
            labels.add(e / "train.log", fmt="torchvision_stdout", excerpt_from=start,
                       **dict(common, config=None, steps=[s for s in steps if s >= start],
                              evidence=f"excerpt from iteration {start} of {name}; " + common["evidence"]))
