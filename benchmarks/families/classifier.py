"""Family 4: MLP and CNN classifiers of scikit-learn's 8x8 digits trained through the real Lightning Trainer,
logged by Lightning's CSVLogger (lightning_logs/version_0/metrics.csv, hparams.yaml beside it)."""

from __future__ import annotations

import logging
import math
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import HERE, RUNS, Labels, has_config, clean_dir, log, summarize

FAMILY = "classifier"

BASE = dict(seed=0, arch="mlp", hidden=128, optimizer="adam", lr=1e-3, momentum=0.0, weight_decay=0.0,
            batch_size=32, max_epochs=10, log_every_n_steps=1, batchnorm=False, init_gain=1.0, shuffle=True,
            train_subset="all", label_fault=None, nan_input=False, lr_monitor=False)

RUNS_SPEC: dict[str, tuple[dict, tuple]] = {
    "healthy_mlp_adam": ({}, ("healthy", "healthy", [], None, [], "nothing: MLP 128, Adam 1e-3, batch 32")),
    "healthy_cnn_adam": ({"seed": 1, "arch": "cnn", "log_every_n_steps": 10, "lr_monitor": True},
                         ("healthy", "healthy", [], None, [], "nothing: CNN, Adam 1e-3, logged every 10 steps")),
    "healthy_mlp_sgd": ({"seed": 2, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "log_every_n_steps": 10},
                        ("healthy", "healthy", [], None, [], "nothing: MLP, SGD 0.05 momentum 0.9")),
    "healthy_cnn_bn": ({"seed": 3, "arch": "cnn", "batchnorm": True, "log_every_n_steps": 5},
                       ("healthy", "healthy", [], None, [], "nothing: CNN with BatchNorm, batch 32")),
    "healthy_cnn_sgd": ({"seed": 7, "arch": "cnn", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                         "log_every_n_steps": 10, "lr_monitor": True},
                        ("healthy", "healthy", [], None, [], "nothing: CNN, SGD 0.05 momentum 0.9")),
    "lr_too_high": ({"lr": 1.0, "lr_monitor": True},
                    ("problem", "lr_too_high", ["lr_too_high"], "plateau", [], "Adam lr 1.0 (1000x the healthy 1e-3)")),
    "healthy_mlp_default_logging": ({"seed": 5, "max_epochs": 20, "log_every_n_steps": 50},
                                    ("healthy", "healthy", [], None, [],
                                     "nothing: MLP, Adam 1e-3, 20 epochs, Lightning's default log_every_n_steps=50")),
    "sgd_lr_too_high": ({"seed": 6, "optimizer": "sgd", "lr": 5.0, "momentum": 0.9, "log_every_n_steps": 5},
                        ("problem", "lr_too_high", ["lr_too_high"], "divergence", [], "SGD lr 5.0 momentum 0.9 (100x)")),
    "lr_too_low": ({"optimizer": "sgd", "lr": 1e-4, "log_every_n_steps": 10},
                   ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "plain SGD lr 1e-4")),
    "shuffled_labels": ({"label_fault": "shuffle"},
                        ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                         "training labels randomly permuted (they no longer pair with the images)")),
    "class_imbalance": ({"train_subset": "imbalanced", "max_epochs": 60, "batch_size": 16},
                        ("problem", "class_imbalance", ["class_imbalance", "overfitting_small_data"], "overfitting", [],
                         "training set: every 0, 3% of each other digit (validation set balanced)")),
    "nan_input": ({"nan_input": True, "log_every_n_steps": 1},
                  ("problem", "nan_in_input", ["nan_in_input", "loss_nan_from_data"], "nan", [],
                   "one training image has NaN pixels; its batch poisons the weights")),
    "small_data": ({"train_subset": "tiny", "hidden": 512, "max_epochs": 150, "batch_size": 10, "log_every_n_steps": 5},
                   ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                    "50 training images, MLP 512, 150 epochs")),
    "huge_weight_decay": ({"weight_decay": 1.0, "log_every_n_steps": 10},
                          ("problem", "over_regularization", ["over_regularization"], "plateau", [],
                           "Adam with L2 weight decay 1.0")),
    "tiny_model": ({"hidden": 2},
                   ("problem", "capacity_too_small", ["capacity_too_small"], "plateau", [], "MLP with 2 hidden units")),
    "sorted_unshuffled": ({"shuffle": False, "train_subset": "sorted"},
                          ("problem", "data_order", ["data_order"], "data_order", [],
                           "training set sorted by digit and not shuffled: each epoch walks 0..9")),
    "bad_init": ({"init_gain": 30.0, "log_every_n_steps": 1},
                 ("problem", "bad_init", ["bad_init"], "init_loss", [0], "weights initialised 30x the default scale")),
    # second runs of the causes above (other seed, architecture or optimiser), so both halves of the split have them
    "lr_too_low_cnn": ({"seed": 8, "arch": "cnn", "lr": 1e-6, "log_every_n_steps": 10},
                       ("problem", "lr_too_low", ["lr_too_low"], "slow_convergence", [], "CNN, Adam lr 1e-6")),
    "shuffled_labels_cnn": ({"seed": 9, "arch": "cnn", "label_fault": "shuffle", "log_every_n_steps": 5},
                            ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                             "CNN; training labels randomly permuted")),
    "nan_input_cnn": ({"seed": 10, "arch": "cnn", "nan_input": True, "log_every_n_steps": 10},
                      ("problem", "nan_in_input", ["nan_in_input", "loss_nan_from_data"], "nan", [],
                       "CNN; one training image has NaN pixels")),
    "small_data_cnn": ({"seed": 11, "arch": "cnn", "train_subset": "tiny", "max_epochs": 150, "batch_size": 10,
                        "log_every_n_steps": 10},
                       ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                        "CNN, 50 training images, 150 epochs")),
    "weight_decay_sgd": ({"seed": 12, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.5,
                          "log_every_n_steps": 10},
                         ("problem", "over_regularization", ["over_regularization"], "plateau", [],
                          "MLP, SGD 0.05 momentum 0.9 with L2 weight decay 0.5")),
    "tiny_model_sgd": ({"seed": 13, "hidden": 3, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "max_epochs": 20,
                        "log_every_n_steps": 10},
                       ("problem", "capacity_too_small", ["capacity_too_small"], "plateau", [],
                        "MLP with 3 hidden units, SGD, 20 epochs")),
    "sorted_unshuffled_cnn": ({"seed": 14, "arch": "cnn", "shuffle": False, "train_subset": "sorted",
                               "log_every_n_steps": 5},
                              ("problem", "data_order", ["data_order"], "plateau", [],
                               "CNN; training set sorted by digit and not shuffled (it never learns: loss stays "
                               "near ln 10 with no sawtooth)")),
    "bad_init_cnn": ({"seed": 15, "arch": "cnn", "init_gain": 10.0, "log_every_n_steps": 5},
                     ("problem", "bad_init", ["bad_init"], "init_loss", [0], "CNN weights initialised 10x the default")),
    "batchnorm_batch2": ({"seed": 4, "arch": "cnn", "batchnorm": True, "batch_size": 2, "max_epochs": 2,
                          "log_every_n_steps": 10},
                         ("healthy", "healthy", [], None, [],
                          "CNN with BatchNorm at batch size 2 (meant as batchnorm_instability, but the run is fine: "
                          "noisy per-step loss, validation loss 0.16 -> 0.07; labelled healthy)")),
    # more varied runs (issue 7): other batch sizes, logging intervals, LR ends, schedules, optimizers, dropout
    "healthy_mlp_adamw_v2": ({"seed": 20, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.01, "batch_size": 64,
                              "schedule": "cosine", "max_epochs": 15, "log_every_n_steps": 3, "lr_monitor": True},
                             ("healthy", "healthy", [], None, [],
                              "nothing: MLP, AdamW 3e-3 (high end), cosine over 15 epochs, batch 64, logged every 3")),
    # first made with lr 0.01 and 15 epochs: it ended at val loss 0.85 where the other runs reach ~0.1 (the step
    # schedule cut the LR before it had learned), so it was remade with lr 0.02 over 30 epochs
    "healthy_cnn_sgd_v3": ({"seed": 21, "arch": "cnn", "optimizer": "sgd", "lr": 0.02, "momentum": 0.9,
                            "batch_size": 128, "schedule": "step", "max_epochs": 30, "log_every_n_steps": 1},
                           ("healthy", "healthy", [], None, [],
                            "nothing: CNN, SGD 0.02 (low end) momentum 0.9, step x0.1 every 10 epochs, batch 128, "
                            "logged every step")),
    "healthy_mlp_dropout_v4": ({"seed": 22, "dropout": 0.3, "batch_size": 4, "lr": 3e-4, "max_epochs": 3,
                                "log_every_n_steps": 20},
                               ("healthy", "healthy", [], None, [],
                                "nothing: MLP with dropout 0.3, Adam 3e-4 (low end), batch 4, logged every 20")),
    "healthy_mlp_bs1_v5": ({"seed": 23, "batch_size": 1, "lr": 1e-4, "max_epochs": 2, "log_every_n_steps": 7},
                           ("healthy", "healthy", [], None, [],
                            "nothing: MLP, Adam 1e-4, batch size 1 (per-sample loss, very noisy), logged every 7")),
    "lr_too_high_v2": ({"seed": 24, "optimizer": "adamw", "lr": 0.5, "weight_decay": 0.01, "batch_size": 64,
                        "schedule": "cosine", "max_epochs": 15, "log_every_n_steps": 3},
                       ("problem", "lr_too_high", ["lr_too_high"], "plateau", [],
                        "MLP, AdamW lr 0.5 (170x the v2 run's 3e-3), cosine, batch 64")),
    "shuffled_labels_v2": ({"seed": 25, "label_fault": "shuffle", "dropout": 0.3, "batch_size": 4,
                            "max_epochs": 3, "log_every_n_steps": 20},
                           ("problem", "label_misalignment", ["label_misalignment"], "plateau", [0],
                            "MLP with dropout, batch 4; training labels randomly permuted")),
    "nan_input_v2": ({"seed": 27, "nan_input": True, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                      "batch_size": 64, "log_every_n_steps": 1},
                     ("problem", "nan_in_input", ["nan_in_input", "loss_nan_from_data"], "nan", [],
                      "MLP, SGD momentum, batch 64; one training image has NaN pixels")),
    # a fourth round of varied runs (issue 7, _v5): Lightning callbacks, ReduceLROnPlateau, clipping, smoothing
    "healthy_mlp_early_stop_v5": ({"seed": 30, "early_stop": 3, "max_epochs": 40, "lr_monitor": True},
                                  ("healthy", "healthy", [], None, [],
                                   "nothing: MLP, Adam 1e-3, EarlyStopping(val_loss, patience 3) of 40 epochs, "
                                   "LearningRateMonitor, log every step")),
    "healthy_cnn_plateau_v5": ({"seed": 31, "arch": "cnn", "cnn_width": 2, "schedule": "plateau", "lr_monitor": True,
                                "gradient_clip_val": 1.0, "max_epochs": 15, "log_every_n_steps": 50},
                               ("healthy", "healthy", [], None, [],
                                "nothing: 2x wider CNN, Adam 1e-3 with ReduceLROnPlateau (x0.5, patience 2), "
                                "gradient_clip_val 1, log_every_n_steps 50")),
    "healthy_mlp_ls_clip_v5": ({"seed": 32, "label_smoothing": 0.1, "gradient_clip_val": 0.5, "lr_monitor": True},
                               ("healthy", "healthy", [], None, [],
                                "nothing: MLP, Adam 1e-3, label smoothing 0.1, gradient_clip_val 0.5")),
    "overfit_plateau_v5": ({"seed": 33, "train_subset": "tiny", "schedule": "plateau", "lr_monitor": True,
                            "max_epochs": 80, "hidden": 256},
                           ("problem", "overfitting_small_data", ["overfitting_small_data"], "overfitting", [],
                            "50 training images, MLP 256, Adam 1e-3 with ReduceLROnPlateau, 80 epochs")),
    "lr_too_high_plateau_v5": ({"seed": 34, "lr": 0.3, "schedule": "plateau", "lr_monitor": True,
                                "max_epochs": 15},
                               ("problem", "lr_too_high", ["lr_too_high"], "plateau", [],
                                "Adam lr 0.3 (300x) with ReduceLROnPlateau")),
    # a fifth round of varied runs (issue 7, _v6): log_every_n_steps twins, per-sample losses, a per-batch schedule
    "healthy_mlp_log1_v6": ({"seed": 40, "max_epochs": 8, "log_every_n_steps": 1, "lr_monitor": True},
                            ("healthy", "healthy", [], None, [],
                             "nothing: MLP, Adam 1e-3, 8 epochs, log_every_n_steps 1 (twin of healthy_mlp_log50_v6)")),
    "healthy_mlp_log50_v6": ({"seed": 40, "max_epochs": 8, "log_every_n_steps": 50, "lr_monitor": True},
                             ("healthy", "healthy", [], None, [],
                              "nothing: MLP, Adam 1e-3, 8 epochs, log_every_n_steps 50 (twin of healthy_mlp_log1_v6)")),
    "healthy_mlp_bs1_log1_v6": ({"seed": 41, "batch_size": 1, "lr": 3e-4, "max_epochs": 2, "log_every_n_steps": 1},
                                ("healthy", "healthy", [], None, [],
                                 "nothing: MLP, Adam 3e-4, batch size 1, every per-sample loss logged, 2 epochs")),
    "healthy_mlp_continued_v6": ({"seed": 43, "schedule": "cosine", "max_epochs": 12, "stop_at": 5, "lr_monitor": True,
                                  "log_every_n_steps": 5},
                                 ("healthy", "healthy", [], None, [],
                                  "nothing: MLP, Adam 1e-3 cosine over 12 epochs; the job stopped after epoch 5 and "
                                  "continued from its checkpoint in lightning_logs/version_1")),
    "sched_per_batch_v6": ({"seed": 42, "lr": 3e-3, "schedule": "step", "sched_interval": "step", "max_epochs": 30,
                            "lr_monitor": True},
                           ("problem", "lr_schedule_bug", ["lr_schedule_bug", "lr_too_low"], "plateau", [],
                            "Adam 3e-3 with StepLR(step_size 10, x0.1) meant per epoch but stepped per batch: the LR "
                            "is 3e-6 after 30 batches of 1320")),
    # a sixth round (_v7): SGD with Nesterov momentum and dropout 0.3
    "healthy_mlp_nesterov_v7": ({"seed": 70, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                                 "dropout": 0.3, "log_every_n_steps": 10, "max_epochs": 8},
                                ("healthy", "healthy", [], None, [],
                                 "nothing: MLP with dropout 0.3, SGD 0.05 with Nesterov momentum 0.9, 8 epochs")),
}


def data(c: dict):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(1234).permutation(len(y))
    x, y = x[perm], y[perm]
    xtr, ytr, xva, yva = x[:1400], y[:1400], x[1400:], y[1400:]
    rng = np.random.default_rng(c["seed"])
    if c["train_subset"] == "tiny":
        xtr, ytr = xtr[:50], ytr[:50]
    elif c["train_subset"] == "imbalanced":
        keep = np.array([yy == 0 or rng.random() < 0.03 for yy in ytr])
        xtr, ytr = xtr[keep], ytr[keep]
    elif c["train_subset"] == "sorted":
        order = np.argsort(ytr, kind="stable")
        xtr, ytr = xtr[order], ytr[order]
    if c["label_fault"] == "shuffle":
        ytr = rng.permutation(ytr)
    if c["nan_input"]:
        xtr = xtr.copy()
        xtr[777, 10:20] = np.nan
    return xtr, ytr, xva, yva


def make_module(c: dict):
    import lightning as L

    class DigitsClassifier(L.LightningModule):
        def __init__(self, **hp) -> None:
            super().__init__()
            self.save_hyperparameters()
            h = hp["hidden"]
            if hp["arch"] == "mlp" and hp.get("dropout"):  # later runs (_v2 ...) may use dropout
                p = hp["dropout"]
                self.net = nn.Sequential(nn.Linear(64, h), nn.ReLU(), nn.Dropout(p), nn.Linear(h, h), nn.ReLU(),
                                         nn.Dropout(p), nn.Linear(h, 10))
            elif hp["arch"] == "mlp":
                self.net = nn.Sequential(nn.Linear(64, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))
            else:
                bn = (lambda n: nn.BatchNorm2d(n)) if hp["batchnorm"] else (lambda n: nn.Identity())
                w = hp.get("cnn_width", 1)  # later runs (_v5): a wider CNN
                self.net = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16 * w, 3, padding=1), bn(16 * w),
                                         nn.ReLU(), nn.Conv2d(16 * w, 32 * w, 3, padding=1), bn(32 * w), nn.ReLU(),
                                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * w * 16, 10))
            if hp["init_gain"] != 1.0:
                with torch.no_grad():
                    for m in self.net.modules():
                        if isinstance(m, (nn.Linear, nn.Conv2d)):
                            m.weight.mul_(hp["init_gain"])
            self.train_losses: list[float] = []

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            loss = F.cross_entropy(self(x), y, label_smoothing=self.hparams.get("label_smoothing", 0.0))
            self.train_losses.append(loss.item())
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            logits = self(x)
            self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True)
            self.log("val_acc", (logits.argmax(-1) == y).float().mean(), on_epoch=True)

        def configure_optimizers(self):
            hp = self.hparams
            if hp["optimizer"] == "sgd":
                opt = torch.optim.SGD(self.parameters(), lr=hp["lr"], momentum=hp["momentum"],
                                      weight_decay=hp["weight_decay"], nesterov=hp.get("nesterov", False))
            elif hp["optimizer"] == "adamw":
                opt = torch.optim.AdamW(self.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
            else:
                opt = torch.optim.Adam(self.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
            schedule = hp.get("schedule")  # later runs (_v2 ...): an epoch-wise schedule
            if schedule == "cosine":
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp["max_epochs"])
            elif schedule == "plateau":  # later runs (_v5): ReduceLROnPlateau on the validation loss
                sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
                return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}
            elif schedule == "step":
                sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, hp["max_epochs"] // 3), gamma=0.1)
            else:
                return opt
            # later runs (_v6): an epoch-wise schedule stepped per batch (a bug) when sched_interval is "step"
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": hp.get("sched_interval", "epoch")}}

    keys = ("arch", "hidden", "optimizer", "lr", "momentum", "weight_decay", "batchnorm", "init_gain", "batch_size",
            "max_epochs")
    keys += tuple(k for k in ("dropout", "schedule", "cnn_width", "label_smoothing", "sched_interval", "nesterov") if k in c)  # only later runs set them
    return DigitsClassifier(**{k: c[k] for k in keys})


def train(c: dict, d):
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    L.seed_everything(c["seed"], workers=False, verbose=False)
    xtr, ytr, xva, yva = data(c)
    tr = DataLoader(TensorDataset(torch.from_numpy(xtr), torch.from_numpy(ytr)), batch_size=c["batch_size"],
                    shuffle=c["shuffle"], generator=torch.Generator().manual_seed(c["seed"]))
    va = DataLoader(TensorDataset(torch.from_numpy(xva), torch.from_numpy(yva)), batch_size=128)
    model = make_module(c)
    logger = CSVLogger(save_dir=str(d), name="lightning_logs", version=0)
    callbacks = [LearningRateMonitor()] if c["lr_monitor"] else []
    if c.get("early_stop"):  # later runs (_v5): EarlyStopping on the validation loss
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(EarlyStopping(monitor="val_loss", patience=c["early_stop"]))
    extra = {"gradient_clip_val": c["gradient_clip_val"]} if "gradient_clip_val" in c else {}
    trainer = L.Trainer(max_epochs=c.get("stop_at", c["max_epochs"]), accelerator="cpu", devices=1, logger=logger, **extra,
                        log_every_n_steps=c["log_every_n_steps"], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks, num_sanity_val_steps=0)
    trainer.fit(model, tr, va)
    if c.get("stop_at"):  # later runs (_v6): the job stopped at epoch stop_at and continued from its checkpoint
        ckpt = d / "last.ckpt"
        trainer.save_checkpoint(str(ckpt))
        logger = CSVLogger(save_dir=str(d), name="lightning_logs", version=1)
        trainer = L.Trainer(max_epochs=c["max_epochs"], accelerator="cpu", devices=1, logger=logger, **extra,
                            log_every_n_steps=c["log_every_n_steps"], enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                            callbacks=[LearningRateMonitor()] if c["lr_monitor"] else [])
        trainer.fit(model, tr, va, ckpt_path=str(ckpt))
        ckpt.unlink()
    return model.train_losses, len(tr), len(ytr)


EXCERPTS = {"healthy_mlp_adam": 200, "nan_input": 20, "sorted_unshuffled": 100, "small_data": 200,
            "lr_too_high": 100, "shuffled_labels": 150, "healthy_mlp_bs1_v5": 700, "healthy_cnn_sgd_v3": 40}


def write_excerpt(labels: Labels, name: str, full_label: dict) -> None:
    """metrics.csv from step N on (header kept), no hparams.yaml: a pasted or truncated Lightning log."""
    import csv

    start = EXCERPTS[name]
    src = RUNS / FAMILY / name / "lightning_logs" / "version_0" / "metrics.csv"
    e = clean_dir(RUNS / FAMILY / f"{name}.excerpt")
    with open(src) as fh, open(e / "metrics.csv", "w", newline="") as out:
        reader = csv.reader(fh)
        writer = csv.writer(out, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        step_col = header.index("step")
        writer.writerows(r for r in reader if int(r[step_col]) >= start)
    lab = {k: v for k, v in full_label.items() if k not in ("split", "excerpt_from_step", "format", "config")}
    lab.update(steps=[s for s in full_label["steps"] if s >= start],
               evidence=f"excerpt from step {start} of {name}; " + full_label["evidence"])
    labels.add(e / "metrics.csv", fmt="lightning_csv", config=None, excerpt_from=start, **lab)



def generate(labels: Labels, only: set[str] | None = None) -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    root = RUNS / FAMILY
    for name, (over, lab) in RUNS_SPEC.items():
        if only and name not in only:
            continue
        c = dict(BASE, **over)
        t0 = time.time()
        d = clean_dir(root / name)
        losses, steps_per_epoch, n_train = train(c, d)
        vdir = d / "lightning_logs" / "version_0"
        import csv

        with open(vdir / "metrics.csv") as fh:
            vals = [float(r["val_loss"]) for r in csv.DictReader(fh) if r.get("val_loss")]
        verdict, cause, accept, symptom, steps, injected = lab
        if c["nan_input"]:
            steps = [next(i for i, x in enumerate(losses) if not math.isfinite(x))]
        curve = (f"train loss {summarize(losses)}; val loss per epoch {summarize(vals, 6)}; "
                 f"{n_train} training images, {steps_per_epoch} steps/epoch")
        log(f"[cls] {name:22s} {time.time() - t0:5.1f}s  {curve}")
        cfg = vdir / "hparams.yaml"
        if not has_config(FAMILY, name):
            cfg.unlink()
            cfg = None
        labels.add(vdir / "metrics.csv", family=FAMILY, fmt="lightning_csv", group=f"{FAMILY}/{name}",
                   verdict=verdict, cause=cause, accept=accept, symptom=symptom, steps=steps,
                   evidence=f"injected: {injected}. curve: {curve}", config=cfg)
        if c.get("stop_at"):  # the continued part (version_1), labelled like the whole run
            v1 = d / "lightning_logs" / "version_1"
            cfg1 = v1 / "hparams.yaml"
            if cfg is None:
                cfg1.unlink()
                cfg1 = None
            labels.add(v1 / "metrics.csv", family=FAMILY, fmt="lightning_csv", group=f"{FAMILY}/{name}",
                       verdict=verdict, cause=cause, accept=accept, symptom=symptom, steps=steps,
                       evidence=f"continued from epoch {c['stop_at']}; injected: {injected}. curve: {curve}",
                       config=cfg1)
        if name in EXCERPTS:
            write_excerpt(labels, name, labels.entries[str((vdir / "metrics.csv").relative_to(HERE))])
