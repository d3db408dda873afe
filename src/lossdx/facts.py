"""Numbers derived from the config and the curves: what the seeds compute by hand.

Parameter count of a GPT from its shape, tokens per step, tokens seen and epochs over the
dataset, expected initial loss ln(V), compute C ~ 6ND. Each function is small and pinned by tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .model import Run


def gpt_params(
    n_layer: int,
    n_embd: int,
    vocab_size: int,
    seq_len: int | None = None,
    *,
    bias: bool = False,
    d_ff: int | None = None,
    tied: bool = True,
    learned_pos: bool = True,
    gated_mlp: bool = False,
    n_kv_heads: int | None = None,
    n_head: int | None = None,
) -> int:
    """Parameters of a GPT-style decoder (nanoGPT counts wpe in, weights tied).

    Example:
        >>> gpt_params(12, 384, 50304, 1024)  # the seed's "125 M" model is ~40 M
        40953216
    """
    d = n_embd
    ff = d_ff if d_ff else 4 * d
    kv = d if not (n_kv_heads and n_head) else d * n_kv_heads // n_head
    attn = d * d + 2 * d * kv + d * d  # q, k, v, o
    mlp = (3 if gated_mlp else 2) * d * ff
    norms = 2 * (2 * d if bias else d)
    biases = (d + 2 * kv + d + ff * (2 if gated_mlp else 1) + d) if bias else 0
    per_layer = attn + mlp + norms + biases
    emb = vocab_size * d * (1 if tied else 2)
    pos = (seq_len or 0) * d if learned_pos else 0
    final_norm = 2 * d if bias else d
    return int(n_layer * per_layer + emb + pos + final_norm)


def params_from_config(cfg: dict[str, Any]) -> int | None:
    if cfg.get("n_params"):
        return int(cfg["n_params"])
    need = ("n_layer", "n_embd", "vocab_size")
    if not all(cfg.get(k) for k in need):
        return None
    model_type = str(cfg.get("model_type") or "").lower()
    llama_like = any(t in model_type for t in ("llama", "mistral", "qwen", "gemma", "phi3", "olmo"))
    return gpt_params(
        int(cfg["n_layer"]), int(cfg["n_embd"]), int(cfg["vocab_size"]), cfg.get("seq_len"),
        bias=bool(cfg.get("bias", False)), d_ff=cfg.get("d_ff"),
        tied=bool(cfg.get("tie_embeddings", not llama_like)), learned_pos=not llama_like,
        gated_mlp=llama_like, n_kv_heads=cfg.get("n_kv_heads"), n_head=cfg.get("n_head"),
    )


def tokens_per_step(cfg: dict[str, Any]) -> int | None:
    """batch x grad_accum x seq_len (x world size): 16 x 32 x 1024 = 524,288 in the seed."""
    if cfg.get("tokens_per_step"):
        return int(cfg["tokens_per_step"])
    if cfg.get("global_batch_size") and cfg.get("seq_len"):
        return int(cfg["global_batch_size"]) * int(cfg["seq_len"])
    if cfg.get("batch_size") and cfg.get("seq_len"):
        return int(cfg["batch_size"]) * int(cfg.get("grad_accum") or 1) * int(cfg["seq_len"]) * int(
            cfg.get("world_size") or 1)
    return None


def compute_facts(run: Run) -> dict[str, Any]:
    cfg = run.config
    facts: dict[str, Any] = {}
    loss = run.series.get("train/loss")
    if loss is not None and len(loss):
        finite = loss.finite()
        facts["train_points"] = len(loss)
        if len(finite):
            facts["train_loss_first"] = round(float(finite.values[0]), 6)
            facts["train_loss_last"] = round(float(finite.values[-1]), 6)
            i = int(np.argmin(finite.values))
            facts["train_loss_min"] = round(float(finite.values[i]), 6)
            facts["train_loss_min_step"] = int(finite.steps[i])
            facts["perplexity_last"] = _ppl(float(finite.values[-1]))
        if len(loss) > 1:
            facts["log_interval"] = int(np.median(np.diff(loss.steps)))
    val = run.series.get("val/loss")
    fv = val.finite() if val is not None else None
    if fv is not None and len(fv):
        i = int(np.argmin(fv.values))
        facts["val_points"] = len(val)
        facts["val_loss_min"] = round(float(fv.values[i]), 6)
        facts["val_loss_min_step"] = int(fv.steps[i])
        facts["val_loss_last"] = round(float(fv.values[-1]), 6)
    classes = cfg.get("vocab_size") or cfg.get("n_classes")
    if classes and int(classes) >= 2:
        facts["init_loss_expected"] = round(math.log(int(classes)), 4)
    n = params_from_config(cfg)
    if n:
        facts["n_params"] = n
    tps = tokens_per_step(cfg)
    rng = run.step_range()
    if tps:
        facts["tokens_per_step"] = tps
        if rng:
            facts["tokens_seen"] = tps * (rng[1] + 1)
            if cfg.get("dataset_tokens"):
                facts["epochs_seen"] = round(facts["tokens_seen"] / int(cfg["dataset_tokens"]), 4)
            if n:
                facts["train_flops"] = float(6 * n * facts["tokens_seen"])
        if n:
            facts["chinchilla_tokens"] = 20 * n
    tok_s = run.series.get("perf/tokens_per_sec")
    tok_ok = tok_s.finite().values if tok_s is not None else None
    if n and tok_ok is not None and tok_ok.size:
        rate = float(np.median(tok_ok))
        facts["model_flops_per_sec"] = float(6 * n * rate)  # achieved, by 6N per token
        peak = cfg.get("peak_flops")
        if isinstance(peak, (int, float)) and peak > 0:
            facts["mfu"] = round(6 * n * rate / float(peak), 4)
    dt = run.series.get("perf/step_time")
    dt_ok = dt.finite().values if dt is not None else None
    if dt_ok is not None and dt_ok.size > 1 and rng:
        per_step = float(np.median(dt_ok)) / 1000.0
        facts["train_hours_estimate"] = round(per_step * (rng[1] - rng[0] + 1) / 3600.0, 4)
    return facts


def _ppl(loss: float) -> float | None:
    return round(math.exp(loss), 4) if loss < 700 else None


# --- calculators (``lossdx calc``) --------------------------------------------------------------

def train_flops(n_params: float, tokens: float) -> float:
    """Training compute C ~ 6 N D (forward 2ND + backward 4ND).

    Example:
        >>> train_flops(7e9, 2e12)  # the handbook's 7B model on 2T tokens
        8.4e+22
    """
    return 6.0 * n_params * tokens


def gpu_seconds(flops: float, sustained_flops_per_gpu: float) -> float:
    return flops / sustained_flops_per_gpu


def gpu_hours(flops: float, sustained_flops_per_gpu: float) -> float:
    """GPU-hours at a sustained throughput: 8.4e22 FLOPs at 4e14 FLOP/s = 2.1e8 s = ~58,333 GPU-hours.

    (The handbook's note says ~6,700; its own numbers give 58,333: 2.1e8 s / 3600.)
    """
    return gpu_seconds(flops, sustained_flops_per_gpu) / 3600.0


def mfu(n_params: float, tokens_per_sec: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: 6 N x tokens/s over the hardware's peak FLOP/s."""
    return 6.0 * n_params * tokens_per_sec / peak_flops


def chinchilla_tokens(n_params: float) -> float:
    """Compute-optimal training tokens, ~20 per parameter (Hoffmann et al. 2022)."""
    return 20.0 * n_params


def chinchilla_params(tokens: float) -> float:
    return tokens / 20.0


def scale_lr(lr: float, old_batch: float, new_batch: float, rule: str = "linear") -> float:
    """LR for a new batch size: linear rule (x k) or square-root rule (x sqrt k, more conservative)."""
    k = new_batch / old_batch
    if rule == "linear":
        return lr * k
    if rule == "sqrt":
        return lr * math.sqrt(k)
    raise ValueError(f"unknown rule {rule!r} (linear or sqrt)")


def perplexity(loss: float) -> float:
    return math.exp(loss)


def epochs(tokens_seen: float, dataset_tokens: float) -> float:
    return tokens_seen / dataset_tokens
