"""Family 3: character-level LSTM/GRU language models with SGD (PyTorch word_language_model style) and Adam
(char-rnn style), including per-batch logs at batch size 1."""

from __future__ import annotations

import math
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (RUNS, Labels, has_config, clean_dir, domains, excerpt_lines, log, summarize, write_json, write_jsonl)

FAMILY = "rnn"

# an "epoch" is one pass over the 3 x 34 KB training text in windows of batch_size x bptt bytes
BASE = dict(seed=0, model="LSTM", emsize=32, nhid=128, nlayers=1, bptt=32, batch_size=16, epochs=3,
            optimizer="sgd", lr=20.0, momentum=0.0, clip=0.25, weight_decay=0.0, dropout=0.0, log_interval=20,
            domain_bytes=34_000, data="shuffled", eval_interval=50, style="wlm", bad_steps=())

RUNS_SPEC: dict[str, tuple[dict, str | None, tuple]] = {
    "healthy_lstm_sgd": ({}, None, ("healthy", "healthy", [], None, [], "nothing: LSTM, SGD lr 20, clip 0.25 (the word_language_model defaults)")),
    "healthy_gru_sgd": ({"seed": 1, "model": "GRU", "lr": 10.0, "clip": 0.25, "nhid": 96}, None,
                        ("healthy", "healthy", [], None, [], "nothing: GRU 96, SGD lr 10, clip 0.25")),
    "healthy_lstm_adam": ({"optimizer": "adam", "lr": 3e-3, "clip": 5.0, "style": "charrnn"}, None,
                          ("healthy", "healthy", [], None, [], "nothing: LSTM, Adam 3e-3 constant, no warmup, clip 5")),
    "healthy_gru_adam_bs1": ({"seed": 2, "model": "GRU", "optimizer": "adam", "lr": 1e-3, "batch_size": 1,
                              "epochs": 1, "domain_bytes": 16_000, "style": "charrnn"}, None,
                             ("healthy", "healthy", [], None, [],
                              "nothing: GRU, Adam 1e-3, batch size 1, loss logged per batch (noisy)")),
    "explosion_sgd_noclip": ({"clip": 0.0}, None,
                             ("problem", "gradient_explosion", ["gradient_explosion", "lr_too_high"], "instability", [],
                              "LSTM, SGD lr 20 as the healthy twin but without clipping (clip 0.25 removed)")),
    "lr_too_high_adam": ({"optimizer": "adam", "lr": 1.0, "clip": 0.0, "style": "charrnn"}, None,
                         ("problem", "lr_too_high", ["lr_too_high"], "plateau", [], "LSTM, Adam lr 1.0 (300x), no clip")),
    "lr_too_low_sgd": ({"lr": 0.05}, None,
                       ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "LSTM, SGD lr 0.05 (400x below the healthy 20)")),
    "domain_ordered": ({"seed": 3, "data": "ordered", "optimizer": "adam", "lr": 3e-3, "style": "charrnn"}, None,
                       ("problem", "data_order", ["data_order"], "data_order", [200, 400],
                        "no shuffling: epoch 1 code, epoch 2 prose, epoch 3 CSV numbers")),
    "small_data": ({"domain_bytes": 1_000, "epochs": 150, "optimizer": "adam", "lr": 3e-3, "nhid": 256,
                    "log_interval": 2}, None,
                   ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                    "3 x 1 KB of training text repeated 150 epochs, LSTM 256")),
    "bad_batches_adam": ({"seed": 4, "optimizer": "adam", "lr": 3e-3, "clip": 0.0, "style": "charrnn",
                          "bad_steps": (300, 450)}, "bad_batch",
                         ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [300, 450],
                          "LSTM, Adam 3e-3 without clipping; batches of random bytes at steps 300 and 450")),
    "healthy_lstm_sgd_b": ({"seed": 5, "nhid": 64, "log_interval": 10}, None,
                           ("healthy", "healthy", [], None, [], "nothing: LSTM 64, SGD lr 20, clip 0.25, log every 10")),
    "healthy_lstm_sgd_bs1": ({"seed": 6, "batch_size": 1, "epochs": 1, "domain_bytes": 8_000, "log_interval": 50},
                             None, ("healthy", "healthy", [], None, [],
                                    "nothing: LSTM, SGD lr 20, clip 0.25, batch size 1, 50-batch log windows")),
    "explosion_gru_noclip": ({"seed": 1, "model": "GRU", "lr": 10.0, "clip": 0.0, "nhid": 96}, None,
                             ("problem", "gradient_explosion", ["gradient_explosion", "lr_too_high"], "instability", [],
                              "GRU, SGD lr 10 as healthy_gru_sgd but without clipping (clip 0.25 removed)")),
    "weight_decay_sgd": ({"seed": 7, "weight_decay": 0.005}, None,
                         ("problem", "over_regularization", ["over_regularization"], "plateau", [],
                          "LSTM, SGD lr 20 with L2 weight decay 0.005 (10% of every weight removed per step)")),
    # second runs of single-run causes (other cell, optimiser or seed), so both halves of the split have them
    "lr_too_high_gru_adam": ({"seed": 8, "model": "GRU", "optimizer": "adam", "lr": 0.5, "clip": 0.0,
                              "style": "charrnn"}, None,
                             ("problem", "lr_too_high", ["lr_too_high"], "plateau", [], "GRU, Adam lr 0.5, no clip")),
    "lr_too_low_adam": ({"seed": 9, "optimizer": "adam", "lr": 1e-5, "style": "charrnn"}, None,
                        ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "LSTM, Adam lr 1e-5")),
    "domain_ordered_sgd": ({"seed": 10, "data": "ordered"}, None,
                           ("problem", "data_order", ["data_order"], "data_order", [199, 398],
                            "LSTM SGD, no shuffling: epoch 1 code, epoch 2 prose, epoch 3 CSV numbers")),
    "tiny_model_sgd": ({"seed": 11, "nhid": 4, "emsize": 4}, None,
                       ("problem", "capacity_too_small", ["capacity_too_small"], "plateau", [],
                        "LSTM with 4 hidden units, SGD lr 20")),
    "tiny_model": ({"nhid": 4, "emsize": 4, "optimizer": "adam", "lr": 3e-3, "style": "charrnn"}, None,
                   ("problem", "capacity_too_small", ["capacity_too_small"], "plateau", [], "LSTM with 4 hidden units")),
    # more varied runs (issue 7): other batch sizes, logging intervals, LR ends, annealing, momentum, dropout
    "healthy_lstm_sgd_v2": ({"seed": 20, "batch_size": 64, "lr": 5.0, "dropout": 0.2, "anneal": 0.25, "epochs": 4,
                             "log_interval": 3}, None,
                            ("healthy", "healthy", [], None, [],
                             "nothing: LSTM, batch 64, SGD lr 5 annealed x0.25 per epoch, dropout 0.2, log every 3")),
    "healthy_gru_adam_v3": ({"seed": 21, "model": "GRU", "optimizer": "adam", "lr": 1e-2, "batch_size": 4,
                             "epochs": 1, "clip": 5.0, "style": "charrnn", "eval_interval": 100}, None,
                            ("healthy", "healthy", [], None, [],
                             "nothing: GRU, Adam 1e-2 (high end), batch size 4, clip 5, loss per batch")),
    "healthy_lstm_sgdm_v4": ({"seed": 22, "nlayers": 2, "lr": 1.0, "momentum": 0.9, "log_interval": 7,
                              "epochs": 3}, None,
                             ("healthy", "healthy", [], None, [],
                              "nothing: 2-layer LSTM, SGD lr 1 momentum 0.9, clip 0.25, log every 7")),
    "healthy_lstm_adam_v5": ({"seed": 23, "optimizer": "adam", "lr": 3e-4, "batch_size": 32, "epochs": 6,
                              "clip": 1.0, "style": "charrnn", "eval_interval": 20}, None,
                             ("healthy", "healthy", [], None, [],
                              "nothing: LSTM, Adam 3e-4 (low end), batch 32, 6 epochs, checkpoint every 20")),
    "explosion_lstm_v2": ({"seed": 24, "batch_size": 32, "lr": 20.0, "clip": 0.0, "dropout": 0.2,
                           "log_interval": 7}, None,
                          ("problem", "gradient_explosion", ["gradient_explosion", "lr_too_high"], "instability", [2],
                           "LSTM, SGD lr 20 without clipping, batch 32, dropout 0.2, log every 7 (looked at: the loss "
                           "jumps 5.6 -> 42.7 in steps 1-3 with grad norm 9.8, recovers, and ends at valid loss "
                           "2.17 where the clipped runs reach ~1.8)")),
    "lr_too_low_gru_v2": ({"seed": 25, "model": "GRU", "lr": 0.02, "batch_size": 8, "epochs": 2,
                           "log_interval": 20}, None,
                          ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [],
                           "GRU, plain SGD lr 0.02 (500x below the healthy 10), batch 8, log every 20")),
    "bad_batches_sgd_v2": ({"seed": 26, "batch_size": 8, "epochs": 1, "log_interval": 1,
                            "bad_steps": (200, 320)}, "bad_batch",
                           ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [200, 320],
                            "LSTM, SGD lr 20, clip 0.25, batch 8, log every batch; random-byte batches at 200 and 320")),
    # a fourth round of varied runs (issue 7, _v5): word_language_model's annealing, dropout 0.5, bptt 70, tied
    "healthy_lstm_anneal_v5": ({"seed": 30, "plateau_anneal": True, "dropout": 0.5, "bptt": 70, "epochs": 6,
                                "log_interval": 10}, None,
                               ("healthy", "healthy", [], None, [],
                                "nothing: LSTM, SGD lr 20 divided by 4 when validation does not improve, dropout 0.5, "
                                "bptt 70")),
    "healthy_lstm_tied_v5": ({"seed": 31, "tied": True, "emsize": 128, "plateau_anneal": True, "dropout": 0.5,
                              "epochs": 5}, None,
                             ("healthy", "healthy", [], None, [],
                              "nothing: LSTM with tied weights (emsize = nhid = 128), SGD lr 20 annealed on plateau, "
                              "dropout 0.5")),
    "bad_batches_anneal_v5": ({"seed": 32, "plateau_anneal": True, "bptt": 70, "dropout": 0.5, "epochs": 4,
                               "log_interval": 5, "bad_steps": (100, 170)}, "bad_batch",
                              ("problem", "bad_data_batch", ["bad_data_batch"], "spike", [100, 170],
                               "LSTM, SGD lr 20 annealed on plateau, bptt 70, dropout 0.5; random-byte batches at 100 "
                               "and 170")),
    # a sixth round (_v7): word_language_model logs every 100 batches (one window an epoch, 3 windows and 3 validations)
    "healthy_lstm_short_v7": ({"seed": 71, "log_interval": 100}, None,
                              ("healthy", "healthy", [], None, [],
                               "nothing: LSTM, SGD lr 20, clip 0.25, stdout every 100 batches (3 windows, 3 validations)")),
    "explosion_lstm_short_v7": ({"seed": 70, "clip": 0.0, "log_interval": 100}, None,
                                ("problem", "gradient_explosion", ["gradient_explosion", "lr_too_high"], "instability",
                                 [], "LSTM, SGD lr 20 without clipping, stdout every 100 batches (3 windows, 3 validations)")),
}


class CharRNN(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.emb = nn.Embedding(256, c["emsize"])
        if c["model"] == "RNN_TANH":
            self.rnn = nn.RNN(c["emsize"], c["nhid"], c["nlayers"], nonlinearity="tanh", batch_first=True)
        else:
            self.rnn = getattr(nn, c["model"])(c["emsize"], c["nhid"], c["nlayers"], batch_first=True)
        self.drop = nn.Dropout(c["dropout"])
        self.out = nn.Linear(c["nhid"], 256)
        if c.get("tied"):  # later runs (_v5): word_language_model's --tied (needs emsize == nhid)
            self.out.weight = self.emb.weight

    def forward(self, x):
        h, _ = self.rnn(self.drop(self.emb(x)))
        return self.out(self.drop(h))


def steps_per_epoch(c: dict) -> int:
    return max(1, 3 * c["domain_bytes"] // (c["batch_size"] * c["bptt"]))


def train(c: dict, fault: str | None):
    torch.manual_seed(c["seed"])
    gen = torch.Generator().manual_seed(c["seed"])
    doms = [torch.frombuffer(bytearray(d), dtype=torch.uint8).long() for d in domains()]
    trains = [d[: c["domain_bytes"]] for d in doms]
    vals = [d[-20_000:] for d in doms]
    B, T = c["batch_size"], c["bptt"]
    spe = steps_per_epoch(c)
    total = spe * c["epochs"]

    def sample(parts, n):
        xs, ys = [], []
        for _ in range(n):
            src = parts[int(torch.randint(len(parts), (1,), generator=gen))]
            i = int(torch.randint(len(src) - T - 1, (1,), generator=gen))
            xs.append(src[i:i + T])
            ys.append(src[i + 1:i + 1 + T])
        return torch.stack(xs), torch.stack(ys)

    model = CharRNN(c)
    if c["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
    rows, evals = [], []
    for step in range(total):
        t0 = time.perf_counter()
        if c["data"] == "ordered":
            x, y = sample([trains[min(2, step // spe)]], B)
        else:
            x, y = sample(trains, B)
        if fault == "bad_batch" and step in c["bad_steps"]:
            x = torch.randint(0, 256, x.shape, generator=gen)  # a corrupted shard: random bytes
            y = torch.randint(0, 256, y.shape, generator=gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"] if c["clip"] else float("inf"))
        pnorm = torch.sqrt(sum((p.detach() ** 2).sum() for p in model.parameters()))
        opt.step()
        dt = time.perf_counter() - t0
        rows.append({"step": step, "epoch": step / spe, "loss": loss.item(), "grad_norm": norm.item(),
                     "grad_param_ratio": (norm / pnorm).item(), "lr": opt.param_groups[0]["lr"], "dt_s": round(dt, 4)})
        if (step + 1) % spe == 0 and c.get("anneal", 1.0) != 1.0:  # later runs (_v2 ...): lr x anneal per epoch
            for g in opt.param_groups:
                g["lr"] *= c["anneal"]
        if (step + 1) % spe == 0 or (c["style"] == "charrnn" and (step + 1) % c["eval_interval"] == 0):
            model.eval()
            with torch.no_grad():
                vl = sum(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
                         for x, y in (sample(vals, 16) for _ in range(4))) / 4
            model.train()
            evals.append({"step": step, "epoch": (step + 1) / spe, "val_loss": vl})
            # later runs (_v5): word_language_model's own annealing, lr / 4 when validation did not improve
            if c.get("plateau_anneal") and (step + 1) % spe == 0:
                epoch_vals = [e["val_loss"] for e in evals if round(e["epoch"]) == e["epoch"]]
                if len(epoch_vals) > 1 and epoch_vals[-1] >= min(epoch_vals[:-1]):
                    for g in opt.param_groups:
                        g["lr"] /= 4.0
    return rows, evals, spe, total


def wlm_log(rows, evals, c, spe) -> str:
    """The stdout of PyTorch's examples/word_language_model/main.py (loss averaged over log_interval batches)."""
    out, bar = [], "-" * 89
    ev = {e["step"]: e for e in evals}
    win, t_win, t_epoch = [], 0.0, 0.0
    for r in rows:
        epoch, batch = r["step"] // spe + 1, r["step"] % spe + 1
        win.append(r["loss"])
        t_win += r["dt_s"]
        t_epoch += r["dt_s"]
        if batch % c["log_interval"] == 0:
            cur = sum(win) / len(win)
            ppl = math.exp(cur) if cur < 700 else float("inf")
            out.append(f"| epoch {epoch:3d} | {batch:5d}/{spe:5d} batches | lr {r['lr']:02.2f} | ms/batch "
                       f"{t_win * 1000 / len(win):5.2f} | loss {cur:5.2f} | ppl {ppl:8.2f}")
            win, t_win = [], 0.0
        if r["step"] in ev:
            vl = ev[r["step"]]["val_loss"]
            out += [bar, f"| end of epoch {epoch:3d} | time: {t_epoch:5.2f}s | valid loss {vl:5.2f} | "
                         f"valid ppl {math.exp(vl):8.2f}", bar]
            win, t_win, t_epoch = [], 0.0, 0.0
    return "\n".join(out) + "\n"


def charrnn_log(rows, evals, c, total) -> str:
    """The stdout of karpathy/char-rnn's train.lua: every iteration, grad/param norm, checkpoints with val loss."""
    out = []
    ev = {e["step"]: e for e in evals}
    for r in rows:
        i = r["step"] + 1
        out.append(f"{i}/{total} (epoch {r['epoch']:.3f}), train_loss = {r['loss']:6.8f}, grad/param norm = "
                   f"{r['grad_param_ratio']:6.4e}, time/batch = {r['dt_s']:.4f}s")
        if r["step"] in ev:
            vl = ev[r["step"]]["val_loss"]
            out.append("evaluating loss over split index 2")
            out.append(f"saving checkpoint to cv/lm_{c['model'].lower()}_epoch{ev[r['step']]['epoch']:.2f}_{vl:.4f}.t7")
    return "\n".join(out) + "\n"



_WLM = re.compile(r"\| epoch\s+(\d+) \|\s+(\d+)/\s*(\d+) batches")
_CHAR = re.compile(r"^(\d+)/\d+ \(epoch")

EXCERPTS = {"healthy_lstm_sgd": 250, "bad_batches_adam": 250, "healthy_gru_adam_bs1": 400, "explosion_sgd_noclip": 200,
            "lr_too_low_sgd": 250, "domain_ordered": 150, "small_data": 150, "lr_too_high_adam": 250,
            "healthy_gru_adam_v3": 300, "healthy_lstm_sgdm_v4": 100, "healthy_lstm_anneal_v5": 200}


def generate(labels: Labels, only: set[str] | None = None) -> None:
    root = RUNS / FAMILY
    for name, (over, fault, lab) in RUNS_SPEC.items():
        if only and name not in only:
            continue
        c = dict(BASE, **over)
        t0 = time.time()
        rows, evals, spe, total = train(c, fault)
        verdict, cause, accept, symptom, steps, injected = lab
        curve = (f"train loss {summarize([r['loss'] for r in rows])}; val loss "
                 f"{summarize([e['val_loss'] for e in evals], 6)}; grad norm {summarize([r['grad_norm'] for r in rows], 6)}")
        log(f"[rnn] {name:22s} {time.time() - t0:5.1f}s  {curve}")
        evidence = f"injected: {injected}. curve: {curve}"
        d = clean_dir(root / name)
        cfg_path = None
        if has_config(FAMILY, name):
            cfg_path = d / "args.json"
            write_json(cfg_path, {k: v for k, v in c.items() if k not in ("style", "domain_bytes", "data", "bad_steps")}
                       | {"dataset_bytes": 3 * c["domain_bytes"], "steps_per_epoch": spe})
        if c["style"] == "wlm":
            text, fmt = wlm_log(rows, evals, c, spe), "pytorch_wlm_stdout"

            def step_of(line, spe=spe):
                m = _WLM.search(line)
                return (int(m.group(1)) - 1) * spe + int(m.group(2)) - 1 if m else None
        else:
            text, fmt = charrnn_log(rows, evals, c, total), "charrnn_stdout"

            def step_of(line):
                m = _CHAR.match(line)
                return int(m.group(1)) - 1 if m else None
        (d / "train.log").write_text(text)
        write_jsonl(d / "metrics.jsonl", [{k: r[k] for k in ("step", "epoch", "loss", "grad_norm", "lr")} for r in rows]
                    + [{"step": e["step"], "val_loss": e["val_loss"]} for e in evals])
        common = dict(family=FAMILY, group=f"{FAMILY}/{name}", verdict=verdict, cause=cause, accept=accept,
                      symptom=symptom, steps=steps, evidence=evidence, config=cfg_path)
        labels.add(d / "train.log", fmt=fmt, **common)
        labels.add(d / "metrics.jsonl", fmt="jsonl", **common)
        if name in EXCERPTS:
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            (e / "train.log").write_text(excerpt_lines(text, start, step_of))
            labels.add(e / "train.log", fmt=fmt, excerpt_from=start,
                       **dict(common, config=None, steps=[s for s in steps if s >= start],
                              evidence=f"excerpt from step {start} of {name}; " + evidence))
