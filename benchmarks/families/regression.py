"""Family 6: an MLP regressor trained with MSE on scikit-learn's bundled diabetes data (442 patients, 10 features)
in a plain PyTorch loop, logged Keras-style (`epoch N/M - loss: X - val_loss: Y`) on stdout and as a CSV.

The loss is a mean squared error, not a cross-entropy: there is no ln V / ln C starting level. Targets are
standardised (variance 1: a constant predictor scores ~1) in some runs and left raw (disease progression 25-346,
variance ~5900) in others, as both occur in the wild.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn

from common import RUNS, Labels, clean_dir, fmt_num, has_config, log, summarize, write_json

FAMILY = "regression"

BASE = dict(seed=0, hidden=32, layers=2, optimizer="adam", lr=1e-3, momentum=0.0, batch_size=32, epochs=60,
            standardize_y=True, train_size=350, log_every=1, per_batch_every=0, nan_input_row=None, init_gain=1.0,
            # later runs (_v4 ...): weight decay, early stopping, a cyclic LR, a TensorBoard file beside the text
            weight_decay=0.0, early_stop=0, cyclic=False, tb=False,
            # the sixth round (_v7): AdamW betas/eps, an inverse-sqrt schedule per epoch, a JSONL log per epoch
            betas=(0.9, 0.999), eps=1e-8, invsqrt_warmup=0, jsonl=False)

RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_adam": ({}, ("healthy", "healthy", [], None, [],
                          "nothing: MLP 32x2, Adam 1e-3, batch 32, 60 epochs, standardised targets, printed every epoch")),
    "healthy_raw_targets": ({"seed": 1, "standardize_y": False, "lr": 1e-2, "batch_size": 16, "log_every": 3},
                            ("healthy", "healthy", [], None, [],
                             "nothing: raw targets (MSE starts near 29000), Adam 1e-2, batch 16, printed every 3 "
                             "epochs")),
    "healthy_sgd_batches": ({"seed": 2, "optimizer": "sgd", "lr": 0.005, "momentum": 0.9, "batch_size": 64,
                             "per_batch_every": 2},
                            ("healthy", "healthy", [], None, [],
                             "nothing: SGD 0.005 momentum 0.9, batch 64, a batch-loss line every 2 batches")),
    "lr_too_high": ({"seed": 3, "optimizer": "sgd", "lr": 0.3, "momentum": 0.9, "epochs": 60},
                    ("problem", "lr_too_high", ["lr_too_high"], "divergence", [],
                     "SGD lr 0.3 momentum 0.9 (60x the healthy SGD run)")),
    "lr_too_low": ({"seed": 4, "optimizer": "sgd", "lr": 1e-5, "momentum": 0.0, "epochs": 150, "log_every": 2},
                   ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "plain SGD lr 1e-5")),
    "nan_input": ({"seed": 5, "nan_input_row": 123, "per_batch_every": 1, "epochs": 40},
                  ("problem", "nan_in_input", ["nan_in_input", "loss_nan_from_data"], "nan", [],
                   "one training row has a NaN feature (a missing value never imputed)")),
    "bad_init": ({"seed": 6, "init_gain": 20.0, "epochs": 100},
                 ("problem", "bad_init", ["bad_init"], "init_loss", [0],
                  "every weight initialised 20x PyTorch's default scale")),
    "small_data_big_model": ({"seed": 7, "train_size": 25, "hidden": 256, "layers": 3, "batch_size": 25,
                              "lr": 1e-4, "epochs": 600, "log_every": 10},
                             ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                              "25 training patients (full batch), MLP 256x3, Adam 1e-4, 600 epochs")),
    # a third round (_v4): early stopping, AdamW weight decay 0.1, a cyclic LR, a small data set that is still
    # fine, a TensorBoard file (Keras' TensorBoard callback: epoch_loss, epoch_val_loss) beside the text
    "healthy_early_stop_v4": ({"seed": 40, "epochs": 300, "early_stop": 10, "tb": True},
                              ("healthy", "healthy", [], None, [],
                               "nothing: Adam 1e-3, up to 300 epochs, stopped when val_loss had not improved for 10")),
    "healthy_adamw_wd_v4": ({"seed": 41, "lr": 1e-3, "weight_decay": 0.1, "epochs": 40, "log_every": 2, "tb": True},
                            ("healthy", "healthy", [], None, [], "nothing: AdamW 1e-3, weight decay 0.1, 40 epochs")),
    "healthy_cyclic_v4": ({"seed": 42, "cyclic": True, "lr": 3e-3, "epochs": 40},
                          ("healthy", "healthy", [], None, [],
                           "nothing: Adam, triangular cyclic LR 3e-4..3e-3 with a 10-epoch cycle")),
    "healthy_small_data_v4": ({"seed": 43, "train_size": 60, "hidden": 16, "batch_size": 16, "epochs": 80,
                               "log_every": 4, "weight_decay": 0.1, "tb": True},
                              ("healthy", "healthy", [], None, [],
                               "nothing: 60 training patients, a 16x2 MLP, AdamW weight decay 0.1, 80 epochs")),
    "lr_too_high_cyclic_v4": ({"seed": 44, "cyclic": True, "optimizer": "sgd", "momentum": 0.9, "lr": 0.2,
                               "epochs": 40, "tb": True},
                              ("problem", "lr_too_high", ["lr_too_high"], "instability", [],
                               "SGD momentum 0.9 with a cyclic LR peaking at 0.2 (40x the healthy SGD run)")),
    # a sixth round (_v7): AdamW betas (0.9, 0.95) eps 1e-6 with an inverse-sqrt schedule, a 10-epoch log, a JSONL
    # per epoch (this family had only stdout, CSV and TensorBoard), and over-regularisation (rare in the labels)
    "healthy_invsqrt_betas_v7": ({"seed": 70, "weight_decay": 0.01, "betas": (0.9, 0.95), "eps": 1e-6,
                                  "lr": 3e-3, "invsqrt_warmup": 5, "epochs": 30, "log_every": 5, "jsonl": True},
                                 ("healthy", "healthy", [], None, [],
                                  "nothing: AdamW 3e-3 betas (0.9, 0.95) eps 1e-6 weight decay 0.01, 5 warmup "
                                  "epochs then inverse-sqrt, printed every 5 epochs, a JSONL per epoch")),
    "healthy_ten_epochs_v7": ({"seed": 71, "lr": 3e-3, "epochs": 10, "jsonl": True},
                              ("healthy", "healthy", [], None, [],
                               "nothing: Adam 3e-3, a 10-epoch run (10 logged points)")),
    "healthy_nesterov_v7": ({"seed": 73, "optimizer": "sgd", "lr": 0.005, "momentum": 0.9, "nesterov": True,
                             "batch_size": 64, "epochs": 50, "log_every": 2, "jsonl": True},
                            ("healthy", "healthy", [], None, [],
                             "nothing: SGD 0.005 with Nesterov momentum 0.9, batch 64, printed every 2 epochs, a JSONL")),
    "over_reg_v7": ({"seed": 72, "weight_decay": 15.0, "lr": 1e-3, "epochs": 40, "log_every": 4, "jsonl": True},
                    ("problem", "over_regularization", ["over_regularization"], "plateau", [],
                     "AdamW weight decay 15 (the healthy AdamW run has 0.1)")),
}


def data(c: dict):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    x, y = d.data.astype(np.float32), d.target.astype(np.float32)
    perm = np.random.default_rng(1234).permutation(len(y))
    x, y = x[perm], y[perm]
    x = (x - x.mean(0)) / x.std(0)  # features standardised (sklearn ships them scaled by sqrt(n) already)
    xtr, ytr, xva, yva = x[:350], y[:350], x[350:], y[350:]
    if c["standardize_y"]:
        mu, sd = ytr.mean(), ytr.std()
        ytr, yva = (ytr - mu) / sd, (yva - mu) / sd
    xtr, ytr = xtr[: c["train_size"]], ytr[: c["train_size"]]
    if c["nan_input_row"] is not None:
        xtr = xtr.copy()
        xtr[c["nan_input_row"], 3] = np.nan
    return xtr, ytr, xva, yva


def make_model(c: dict) -> nn.Module:
    dims = [10] + [c["hidden"]] * c["layers"]
    mods: list[nn.Module] = []
    for a, b in zip(dims, dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*mods, nn.Linear(dims[-1], 1))
    if c["init_gain"] != 1.0:
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    m.weight.mul_(c["init_gain"])
                    m.bias.mul_(c["init_gain"])
    return net


def train(c: dict):
    torch.manual_seed(c["seed"])
    xtr, ytr, xva, yva = data(c)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xva_t, yva_t = torch.from_numpy(xva), torch.from_numpy(yva)
    net = make_model(c)
    if c["optimizer"] == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"],
                              nesterov=c.get("nesterov", False))
    elif c["weight_decay"]:
        opt = torch.optim.AdamW(net.parameters(), lr=c["lr"], weight_decay=c["weight_decay"], betas=c["betas"],
                                eps=c["eps"])
    else:
        opt = torch.optim.Adam(net.parameters(), lr=c["lr"])
    gen = torch.Generator().manual_seed(c["seed"])
    n = len(ytr)
    n_batches = math.ceil(n / c["batch_size"])
    lines, rows, batch_losses = [], [], []
    step = 0
    best, since_best = math.inf, 0
    for epoch in range(1, c["epochs"] + 1):
        net.train()
        if c["invsqrt_warmup"]:  # linear warmup over invsqrt_warmup epochs, then lr * sqrt(warmup / epoch)
            w = c["invsqrt_warmup"]
            for g in opt.param_groups:
                g["lr"] = c["lr"] * (epoch / w if epoch < w else math.sqrt(w / epoch))
        perm = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for b in range(n_batches):
            idx = perm[b * c["batch_size"]:(b + 1) * c["batch_size"]]
            pred = net(xtr_t[idx]).squeeze(-1)
            loss = ((pred - ytr_t[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            if c["cyclic"]:  # triangular between lr/10 and lr, a 10-epoch cycle, set per batch
                x = abs(((step / n_batches) / 5) % 2 - 1)
                for g in opt.param_groups:
                    g["lr"] = c["lr"] * (0.1 + 0.9 * (1 - x))
            opt.step()
            step += 1
            lv = loss.item()
            batch_losses.append(lv)
            total += lv * len(idx)
            seen += len(idx)
            if c["per_batch_every"] and (b + 1) % c["per_batch_every"] == 0:
                lines.append(f"epoch {epoch}/{c['epochs']} - batch {b + 1}/{n_batches} - loss: {fmt_num(lv)}")
        net.eval()
        with torch.no_grad():
            val = ((net(xva_t).squeeze(-1) - yva_t) ** 2).mean().item()
        train_loss = total / seen
        rows.append({"epoch": epoch, "step": step, "loss": train_loss, "val_loss": val,
                     "lr": opt.param_groups[0]["lr"]})
        if epoch % c["log_every"] == 0 or epoch == 1:
            lines.append(f"epoch {epoch}/{c['epochs']} - loss: {fmt_num(train_loss)} - val_loss: {fmt_num(val)}")
        if c["early_stop"]:  # Keras EarlyStopping(monitor="val_loss", patience=early_stop)
            if val < best:
                best, since_best = val, 0
            else:
                since_best += 1
                if since_best >= c["early_stop"]:
                    lines.append(f"Epoch {epoch}: early stopping")
                    break
    return lines, rows, batch_losses


def write_csv(path, rows: list[dict]) -> None:
    with open(path, "w") as fh:
        fh.write("epoch,step,loss,val_loss\n")
        for r in rows:
            fh.write(f"{r['epoch']},{r['step']},{fmt_num(r['loss'], '.6g')},{fmt_num(r['val_loss'], '.6g')}\n")


def epoch_of(line: str):
    if line.startswith("epoch ") and " - loss:" in line:
        return int(line.split()[1].split("/")[0])
    return None


EXCERPTS = {"healthy_adam": 20, "small_data_big_model": 150, "lr_too_low": 50}


def generate(labels: Labels, only: set[str] | None = None) -> None:
    from common import excerpt_lines

    root = RUNS / FAMILY
    for name, (over, lab) in RUNS_SPEC.items():
        if only and name not in only:
            continue
        c = dict(BASE, **over)
        t0 = time.time()
        lines, rows, batch_losses = train(c)
        verdict, cause, accept, symptom, steps, injected = lab
        if c["nan_input_row"] is not None:  # the epoch in which the NaN first shows
            steps = [next(r["epoch"] for r in rows if not math.isfinite(r["loss"]))]
        curve = (f"train loss per epoch {summarize([r['loss'] for r in rows])}; val loss per epoch "
                 f"{summarize([r['val_loss'] for r in rows])}; {len(batch_losses)} batches")
        log(f"[reg] {name:22s} {time.time() - t0:5.1f}s  {curve}")
        d = clean_dir(root / name)
        text = "\n".join(lines) + "\n"
        (d / "train.log").write_text(text)
        write_csv(d / "metrics.csv", rows)
        if c["jsonl"]:
            from common import write_jsonl

            write_jsonl(d / "metrics.jsonl", rows)
        if c["tb"]:
            from common import write_tensorboard

            tb = write_tensorboard(d / "tb", [(t, r["step"], r[k]) for r in rows
                                              for t, k in (("epoch_loss", "loss"), ("epoch_val_loss", "val_loss"))])
        cfg_path = None
        if has_config(FAMILY, name):
            cfg_path = d / "args.json"
            write_json(cfg_path, {k: v for k, v in c.items() if k not in ("nan_input_row", "init_gain")}
                       | {"loss": "mse", "model": f"mlp {c['hidden']}x{c['layers']}"})
        common = dict(family=FAMILY, group=f"{FAMILY}/{name}", verdict=verdict, cause=cause, accept=accept,
                      symptom=symptom, evidence=f"injected: {injected}. curve: {curve}", config=cfg_path)
        # the stdout counts epochs; the CSV has both, and lossdx reads its step column
        labels.add(d / "train.log", fmt="keras_like_stdout", steps=steps, **common)
        csv_steps = [next(r["step"] for r in rows if r["epoch"] == s) for s in steps] if steps != [0] else steps
        labels.add(d / "metrics.csv", fmt="csv", steps=csv_steps, **common)
        if c["tb"]:
            labels.add(tb, fmt="tensorboard", steps=csv_steps, **common)
        if c["jsonl"]:
            labels.add(d / "metrics.jsonl", fmt="jsonl", steps=csv_steps, **common)
        if name in EXCERPTS:
            start = EXCERPTS[name]
            e = clean_dir(root / f"{name}.excerpt")
            (e / "train.log").write_text(excerpt_lines(text, start, epoch_of))
            labels.add(e / "train.log", fmt="keras_like_stdout", excerpt_from=start,
                       **dict(common, config=None, steps=[s for s in steps if s >= start],
                              evidence=f"excerpt from epoch {start} of {name}; " + common["evidence"]))
