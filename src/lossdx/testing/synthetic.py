"""Synthetic training curves with known truth, for tests and for users' own tests.

    >>> run, truth = make_curve("spike", n=2000, seed=1)
    >>> truth["spike_steps"]
    [1200]
"""

from __future__ import annotations

import math

import numpy as np

from ..model import Run, Series

KINDS = ("healthy", "spike", "nan", "diverge", "plateau", "overfit", "slow", "bad_init", "too_good", "no_warmup",
         "restart", "data_order", "grad_explosion", "noisy_growth")


def make_curve(kind: str = "healthy", n: int = 2000, seed: int = 0, vocab: int = 8192,
               noise: float = 0.03) -> tuple[Run, dict]:
    """A from-scratch LM-like run of ``n`` steps (loss from ln V to ~2) with one fault of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    rng = np.random.default_rng(seed)
    i = np.arange(n, dtype=float)
    lnv = math.log(vocab)
    floor = 2.0
    trend = floor + (lnv - floor) / np.sqrt(1.0 + i / (n / 200))
    warm = max(1, n // 50)
    lr = 6e-4 * np.minimum(1.0, (i + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * i / n)))
    grad = 1.0 + 0.1 * rng.standard_normal(n) ** 2
    truth: dict = {"kind": kind}
    if kind == "slow":
        trend = lnv - (lnv - floor) * 0.45 * (i / n) ** 0.7
    if kind == "plateau":
        trend = np.maximum(trend, 4.5)
    if kind == "bad_init":
        trend = trend + 40.0 * np.exp(-i / (n / 20))
    if kind == "no_warmup":
        lr = 6e-4 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * i / n)))
    if kind == "restart":
        period = n // 3
        lr = 6e-4 * np.minimum(1.0, (i + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (i % period) / period)))
        truth["restart_steps"] = [period, 2 * period]
    loss = trend * (1 + noise * rng.standard_normal(n))
    if kind == "noisy_growth":
        loss = trend * (1 + noise * (1 + 6 * (i / n) ** 2) * rng.standard_normal(n))
        grad = grad * (1 + 3 * i / n)
    if kind == "data_order":
        shifts = np.repeat(rng.choice([-0.25, 0.0, 0.3], size=n // 25 + 1), 25)[:n]
        loss = loss * (1 + shifts * (i > n // 10))
    if kind == "spike":
        s = int(0.6 * n)
        loss[s] = loss[s] * 4.0
        grad[s] = grad[s] * 20
        truth["spike_steps"] = [s]
    if kind == "grad_explosion":
        s = int(0.5 * n)
        grad[s:s + 3] = grad[s:s + 3] * 50
        truth["explosion_steps"] = [s]
    if kind == "nan":
        s = int(0.7 * n)
        loss[s:] = np.nan
        grad[s:] = np.nan
        truth["nan_step"] = s
    if kind == "diverge":
        s = int(0.5 * n)
        loss[s:] = loss[s:] * np.exp(np.linspace(0, 1.2, n - s))
        truth["diverge_from"] = s
    if kind == "too_good":
        loss = trend * np.maximum(1 - i / (n / 3), 3e-4) * (1 + noise * rng.standard_normal(n))
    steps = i.astype(np.int64)
    ev = np.arange(0, n, max(1, n // 40))
    val = np.interp(ev, i, trend) * 1.05
    if kind == "overfit":
        m = n // 4
        val = np.where(ev > m, np.interp(m, i, trend) * 1.05 * (1 + 0.6 * (ev - m) / n), val)
        truth["val_min_near"] = m
    if kind == "too_good":
        # targets that leak the input (no shift): training copies them at once, held-out loss never improves and
        # climbs away from the untrained level (the gpu-runs' label_noshift: val 9.06 -> 21.5)
        val = lnv * (1.0 + 1.2 * ev / n)
    series = {
        "train/loss": Series("train/loss", steps, loss),
        "val/loss": Series("val/loss", ev.astype(np.int64), val),
        "train/grad_norm": Series("train/grad_norm", steps, grad),
        "train/lr": Series("train/lr", steps, lr),
    }
    config = {"vocab_size": vocab, "max_steps": n, "lr": 6e-4, "warmup_steps": 0 if kind == "no_warmup" else warm,
              "grad_clip": 0.0, "weight_decay": 0.1}
    return Run(series=series, source={"path": f"synthetic:{kind}", "format": "synthetic"}, config=config), truth
