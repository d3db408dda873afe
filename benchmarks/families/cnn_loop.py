"""Family 8: a small CNN on scikit-learn's 8x8 digits in a plain PyTorch loop (the torchvision-reference style):
SGD with momentum, a step or cosine LR schedule stepped per epoch, a line per logged iteration
`[epoch 3][iter 40/88] loss 0.4130 lr 0.010000` plus an end-of-epoch validation line, and a TensorBoard event
file (train/loss, train/lr per logged iteration, val/loss and val/acc per epoch).

torch.utils.tensorboard needs the tensorboard package, which is not installed here: the event file is written by
lossdx.testing.events (the same framing and protos), as the gpt family does.
"""

from __future__ import annotations

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
            bad_batch_iter=None, clip=None)

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
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def make_scheduler(opt, c: dict):
    if c["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=c["epochs"])
    return torch.optim.lr_scheduler.StepLR(opt, step_size=c["step_size"], gamma=c["gamma"])


def train(c: dict):
    torch.manual_seed(c["seed"])
    xtr, ytr, xva, yva = data(c)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xva_t, yva_t = torch.from_numpy(xva), torch.from_numpy(yva)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"])
    sched = make_scheduler(opt, c)
    gen = torch.Generator().manual_seed(c["seed"])
    n = len(ytr)
    per_epoch = math.ceil(n / c["batch_size"])
    lines: list[str] = []
    rows: list[dict] = []  # every iteration (for the curve summary and the TensorBoard file)
    evals: list[dict] = []
    it = 0
    for epoch in range(c["epochs"]):
        if c["schedule_bug"] and epoch == 6:
            # "resume": optimizer and scheduler rebuilt from the config, the scheduler's state not restored
            for g in opt.param_groups:
                g["lr"] = c["lr"]
                g["initial_lr"] = c["lr"]
            sched = make_scheduler(opt, c)
        model.train()
        order = torch.randperm(n, generator=gen) if c["shuffle"] else torch.arange(n)
        for b in range(per_epoch):
            idx = order[b * c["batch_size"]:(b + 1) * c["batch_size"]]
            x, y = xtr_t[idx], ytr_t[idx]
            if c["bad_batch_iter"] is not None and it == c["bad_batch_iter"]:
                # garbage pixels: raw 0..16 pixel values that skipped normalisation
                x = torch.rand(x.shape, generator=torch.Generator().manual_seed(it)) * 16.0
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if c["clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
            opt.step()
            lr = opt.param_groups[0]["lr"]
            rows.append({"iter": it, "loss": loss.item(), "lr": lr})
            if b % c["print_freq"] == 0:
                lines.append(f"[epoch {epoch}][iter {b}/{per_epoch}] loss {fmt_num(loss.item())} lr {lr:.6f}")
            it += 1
        sched.step()
        model.eval()
        with torch.no_grad():
            logits = model(xva_t)
            vl = F.cross_entropy(logits, yva_t).item()
            acc = (logits.argmax(-1) == yva_t).float().mean().item()
        evals.append({"iter": it, "epoch": epoch, "val_loss": vl, "val_acc": acc})
        lines.append(f"[epoch {epoch}] val loss {fmt_num(vl)} acc {100 * acc:.2f}%")
    return lines, rows, evals, per_epoch


_LINE = re.compile(r"^\[epoch (\d+)\]\[iter (\d+)/(\d+)\]")


def make_step_of(per_epoch: int):
    def step_of(line: str):
        m = _LINE.match(line)
        return int(m.group(1)) * per_epoch + int(m.group(2)) if m else None
    return step_of


EXCERPTS = {"healthy_step": 200, "lr_schedule_bug": 350, "bad_data_batch": 250}


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
        if name in EXCERPTS:
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            (e / "train.log").write_text(excerpt_lines(text, start, make_step_of(per_epoch)))
            labels.add(e / "train.log", fmt="torchvision_stdout", excerpt_from=start,
                       **dict(common, config=None, steps=[s for s in steps if s >= start],
                              evidence=f"excerpt from iteration {start} of {name}; " + common["evidence"]))
