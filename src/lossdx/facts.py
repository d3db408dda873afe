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


#: the largest count taken from a config (as in ``config.hparams``): products of such counts stay far below
#: the float range, so 6 N D and its kin cannot overflow
_MAX_COUNT = 2 ** 53


def _count(cfg: dict[str, Any], key: str) -> int | None:
    """``cfg[key]`` as a count from 1 to 2^53, or None: a config set by hand may hold anything."""
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    if isinstance(v, (float, np.floating)) and not math.isfinite(v):
        return None
    return int(v) if 1 <= v <= _MAX_COUNT else None


def _finite(x: float | int) -> float | None:
    """``x`` as a finite float, or None where it overflows (nothing the report can show as a number)."""
    try:
        f = float(x)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _median(values: np.ndarray) -> float:
    with np.errstate(over="ignore"):  # the mean of two middle values near 1.8e308 is inf, not a warning
        return float(np.median(values))


def params_from_config(cfg: dict[str, Any]) -> int | None:
    if _count(cfg, "n_params"):
        return _count(cfg, "n_params")
    n_layer, n_embd, vocab = _count(cfg, "n_layer"), _count(cfg, "n_embd"), _count(cfg, "vocab_size")
    if not (n_layer and n_embd and vocab):
        return None
    model_type = str(cfg.get("model_type") or "").lower()
    llama_like = any(t in model_type for t in ("llama", "mistral", "qwen", "gemma", "phi3", "olmo"))
    return gpt_params(
        n_layer, n_embd, vocab, _count(cfg, "seq_len"),
        bias=bool(cfg.get("bias", False)), d_ff=_count(cfg, "d_ff"),
        tied=bool(cfg.get("tie_embeddings", not llama_like)), learned_pos=not llama_like,
        gated_mlp=llama_like, n_kv_heads=_count(cfg, "n_kv_heads"), n_head=_count(cfg, "n_head"),
    )


def tokens_per_step(cfg: dict[str, Any]) -> int | None:
    """batch x grad_accum x seq_len (x world size): 16 x 32 x 1024 = 524,288 in the seed."""
    if _count(cfg, "tokens_per_step"):
        return _count(cfg, "tokens_per_step")
    seq_len = _count(cfg, "seq_len")
    if _count(cfg, "global_batch_size") and seq_len:
        return _count(cfg, "global_batch_size") * seq_len
    if _count(cfg, "batch_size") and seq_len:
        return _count(cfg, "batch_size") * (_count(cfg, "grad_accum") or 1) * seq_len * (_count(cfg, "world_size") or 1)
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
    classes = _count(cfg, "vocab_size") or _count(cfg, "n_classes")
    if classes and classes >= 2:
        facts["init_loss_expected"] = round(math.log(classes), 4)
    n = params_from_config(cfg)
    if n:
        facts["n_params"] = n
    tps = tokens_per_step(cfg)
    rng = run.step_range()
    if tps:
        facts["tokens_per_step"] = tps
        if rng:
            facts["tokens_seen"] = tps * (rng[1] + 1)
            if _count(cfg, "dataset_tokens"):
                epochs_seen = _finite(facts["tokens_seen"] / _count(cfg, "dataset_tokens"))
                if epochs_seen is not None:
                    facts["epochs_seen"] = round(epochs_seen, 4)
            flops = _finite(6 * n * facts["tokens_seen"]) if n else None
            if flops is not None:
                facts["train_flops"] = flops
        if n:
            facts["chinchilla_tokens"] = 20 * n
    tok_s = run.series.get("perf/tokens_per_sec")
    tok_ok = tok_s.finite().values if tok_s is not None else None
    if n and tok_ok is not None and tok_ok.size:
        rate = _median(tok_ok)
        achieved = _finite(6 * float(n) * rate)  # achieved, by 6N per token
        if achieved is not None:
            facts["model_flops_per_sec"] = achieved
            peak = _finite(cfg["peak_flops"]) if isinstance(cfg.get("peak_flops"), (int, float)) else None
            if peak and peak > 0 and _finite(achieved / peak) is not None:
                facts["mfu"] = round(achieved / peak, 4)
    dt = run.series.get("perf/step_time")
    dt_ok = dt.finite().values if dt is not None else None
    if dt_ok is not None and dt_ok.size > 1 and rng:
        per_step = _median(dt_ok) / 1000.0
        hours = _finite(per_step * (rng[1] - rng[0] + 1) / 3600.0)
        if hours is not None:
            facts["train_hours_estimate"] = round(hours, 4)
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
