"""Generalisation check on runs lossdx has never seen: tiny GPTs trained here on the CPU, one fault each.

    $ pip install torch==2.13.0 && python benchmarks/cpu_runs.py

Reuses the bundled example's model and data (examples/make_example.py) with different faults, writes each
run as JSONL and nanoGPT stdout plus its config.py, and scores verdict and top-ranked cause against the fault.
Not a unit test (needs torch, ~3 minutes on 2 cores); the thresholds were never tuned on these runs.
"""

from __future__ import annotations

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
import make_example as ex  # noqa: E402

from lossdx.analyze import analyze_path  # noqa: E402

OUT = os.path.join(HERE, "_data", "cpu_runs")
BASE = dict(ex.CONFIG, max_iters=600, lr_decay_iters=600, warmup_iters=12, grad_clip=1.0, eval_interval=25)
# a second, differently seeded and shaped set checks that fixes made after the first did not just fit it
VARIANTS = {"a": {}, "b": {"seed": 7, "n_embd": 96, "n_layer": 3, "n_head": 4}}
RUNS = {
    "healthy": ({}, None, ()),
    "bad_batch": ({"grad_clip": 0.0}, "bad_batch", ("bad_data_batch",)),
    "lr_too_high": ({"learning_rate": 6e-2, "warmup_iters": 0, "grad_clip": 0.0}, None,
                    ("lr_too_high", "missing_warmup")),
    "lr_too_low": ({"learning_rate": 3e-6, "min_lr": 3e-7}, None, ("lr_too_low",)),
    "nan_poison": ({}, "nan_poison", ("nan_in_input", "loss_nan_from_data")),
    "label_noshift": ({}, "noshift", ("label_misalignment",)),
    "small_data": ({"dataset_bytes": 12_000}, None, ("overfitting_small_data",)),
    "restart_bug": ({"lr_decay_iters": 150}, "restart", ("lr_schedule_bug",)),
}


def train(name: str, overrides: dict, fault: str | None) -> str:
    c = dict(BASE, **overrides)
    torch.manual_seed(c["seed"])
    torch.set_num_threads(2)
    raw = ex.corpus()
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    if c.get("dataset_bytes"):
        train_data = train_data[: c["dataset_bytes"]]
    gen = torch.Generator().manual_seed(c["seed"])

    def batch(split):
        ix = torch.randint(len(split) - c["block_size"] - 1, (c["batch_size"],), generator=gen)
        x = torch.stack([split[i:i + c["block_size"]] for i in ix])
        y = torch.stack([split[i + 1:i + 1 + c["block_size"]] for i in ix])
        return x, y

    model = ex.TinyGPT(c)
    opt = torch.optim.AdamW(model.parameters(), lr=c["learning_rate"], betas=(c["beta1"], c["beta2"]),
                            weight_decay=c["weight_decay"])

    def lr_at(it):
        if fault == "restart":
            it = it % c["lr_decay_iters"]  # the bug: a step counter that wraps
        if it < c["warmup_iters"]:
            return c["learning_rate"] * (it + 1) / c["warmup_iters"]
        r = min(1.0, (it - c["warmup_iters"]) / max(1, c["lr_decay_iters"] - c["warmup_iters"]))
        return c["min_lr"] + 0.5 * (1 + math.cos(math.pi * r)) * (c["learning_rate"] - c["min_lr"])

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    rows, log = [], []
    tpi = c["batch_size"] * c["block_size"]
    for step in range(c["max_iters"]):
        if step % c["eval_interval"] == 0:
            model.eval()
            with torch.no_grad():
                vl = sum(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
                         for x, y in (batch(val_data) for _ in range(4))) / 4
            model.train()
            rows.append({"step": step, "val_loss": vl})
            log.append(f"step {step}: train loss {vl:.4f}, val loss {vl:.4f}")
        x, y = batch(train_data)
        if fault == "noshift":
            y = x
        if fault == "bad_batch" and step == 400:
            x = torch.randint(0, 256, x.shape, generator=gen)
            y = torch.randint(0, 256, y.shape, generator=gen)
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        if fault == "nan_poison" and step == 420:
            with torch.no_grad():
                model.wte.weight[x[0, 0]] = float("nan")  # a NaN arrives with the data and poisons the weights
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"] if c["grad_clip"] else float("inf"))
        opt.step()
        rows.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": lr})
        if step % 5 == 0:
            log.append(f"iter {step}: loss {loss.item():.4f}, time 20.00ms, mfu 1.00%")
    with open(os.path.join(d, "metrics.jsonl"), "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    with open(os.path.join(d, "train.log"), "w") as fh:
        fh.write("\n".join(log) + "\n")
    cfg = dict(c, n_params=sum(p.numel() for p in model.parameters()), tokens_per_iter=tpi,
               dataset_tokens=len(train_data), max_iters=c["max_iters"])
    with open(os.path.join(d, "config.py"), "w") as fh:
        fh.writelines(f"{k} = {v!r}\n" for k, v in cfg.items())
    return d


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="a")
    args = ap.parse_args()
    BASE.update(VARIANTS[args.variant])
    ok = total = 0
    for name, (over, fault, accept) in RUNS.items():
        run_name = name if args.variant == "a" else f"{name}_{args.variant}"
        d = os.path.join(OUT, run_name)
        if not os.path.exists(os.path.join(d, "metrics.jsonl")):
            train(run_name, over, fault)
        for fmt in ("metrics.jsonl", "train.log"):
            rep = analyze_path(os.path.join(d, fmt))
            causes = [x.cause for x in rep.diagnoses]
            right = (rep.verdict == "healthy") if not accept else (bool(causes) and causes[0] in accept)
            ok += right
            total += 1
            print(f"{'ok' if right else '!!'} {name:14s} {fmt:14s} {rep.verdict:8s} top={causes[:3]} "
                  f"{[f'{f.kind}@{f.start_step}' for f in rep.findings if f.severity != 'info'][:5]}")
    print(f"{ok}/{total} right (healthy clean, or top cause accepted)")


if __name__ == "__main__":
    main()
