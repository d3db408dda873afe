"""Canonical hyperparameter names and the raw names nanoGPT, HF, Lightning, Megatron and others use."""

from __future__ import annotations

import math
from typing import Any, Mapping

#: canonical name -> raw names, first match wins (compared lower-case, "-" and "." as "_")
HPARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "lr": ("learning_rate", "lr", "max_lr", "peak_lr", "optimizer.lr", "optim.lr", "base_lr", "optimizer.params.lr"),
    "min_lr": ("min_lr", "min_learning_rate", "lr_min", "final_lr", "end_lr", "eta_min"),
    "warmup_steps": ("warmup_iters", "warmup_steps", "lr_warmup_iters", "num_warmup_steps", "warmup",
                     "lr_warmup_steps", "scheduler.warmup_steps"),
    "warmup_ratio": ("warmup_ratio", "lr_warmup_fraction", "warmup_fraction"),
    "schedule": ("schedule", "lr_scheduler_type", "lr_decay_style", "lr_schedule", "scheduler", "lr_scheduler"),
    "decay_lr": ("decay_lr",),
    "decay_steps": ("lr_decay_iters", "lr_decay_steps", "decay_steps", "lr_decay_iters_", "t_max"),
    "max_steps": ("max_iters", "max_steps", "train_iters", "total_steps", "num_training_steps", "trainer.max_steps"),
    "num_epochs": ("num_train_epochs", "max_epochs", "epochs", "num_epochs", "trainer.max_epochs"),
    "batch_size": ("batch_size", "per_device_train_batch_size", "micro_batch_size", "train_batch_size",
                   "train_micro_batch_size_per_gpu", "per_gpu_train_batch_size"),
    "global_batch_size": ("global_batch_size", "total_batch_size", "train_global_batch_size"),
    "grad_accum": ("gradient_accumulation_steps", "grad_accum", "accumulate_grad_batches", "grad_accum_steps"),
    "seq_len": ("block_size", "seq_length", "max_seq_length", "seq_len", "n_positions", "max_position_embeddings",
                "context_length", "max_length", "sequence_length", "n_ctx",
                "bptt"),
    "weight_decay": ("weight_decay", "wd", "optimizer.weight_decay"),
    "beta1": ("beta1", "adam_beta1"),
    "beta2": ("beta2", "adam_beta2"),
    "grad_clip": ("grad_clip", "max_grad_norm", "clip_grad", "gradient_clipping", "clip_grad_norm", "clip_norm",
                  "gradient_clip_val"),
    "dropout": ("dropout", "hidden_dropout", "hidden_dropout_prob", "resid_pdrop", "attention_dropout", "dropout_rate"),
    "dtype": ("dtype", "precision", "torch_dtype", "mixed_precision"),
    "vocab_size": ("vocab_size", "n_vocab", "padded_vocab_size"),
    "n_layer": ("n_layer", "num_hidden_layers", "num_layers", "n_layers",
                "nlayers"),
    "n_head": ("n_head", "num_attention_heads", "num_heads", "n_heads"),
    "n_embd": ("n_embd", "hidden_size", "d_model", "dim", "n_embed",
               "nhid"),
    "d_ff": ("intermediate_size", "ffn_hidden_size", "n_inner", "d_ff", "ffn_dim"),
    "dataset_tokens": ("dataset_tokens", "train_tokens", "num_train_tokens", "dataset_size_tokens"),
    "tokens_per_step": ("tokens_per_iter", "tokens_per_step"),
    "n_params": ("n_params", "num_params", "num_parameters"),
    "world_size": ("world_size", "num_gpus", "n_gpus", "ddp_world_size"),
    "bias": ("bias",),
    "tie_embeddings": ("tie_word_embeddings", "tie_embeddings", "weight_tying"),
    "model_type": ("model_type", "architectures",
                   "model"),
    "optimizer": ("optimizer", "optim", "optimizer_type"),
    "z_loss": ("z_loss", "z_loss_coef", "z_loss_weight"),
    "n_classes": ("num_classes", "n_classes", "num_labels"),
    "normalization": ("normalization", "norm_type", "norm_layer"),
    "residual": ("residual", "use_residual"),
    "dataset_size": ("dataset_size", "num_train_samples", "train_size", "n_train"),
    "momentum": ("momentum",),
    "grad_scaler": ("grad_scaler", "use_grad_scaler", "loss_scaling", "dynamic_loss_scale"),
    "model_dtype": ("model_dtype", "param_dtype"),
    "class_counts": ("class_counts", "label_counts"),
    "n_kv_heads": ("num_key_value_heads", "n_kv_heads", "num_kv_heads"),
    "peak_flops": ("peak_flops", "gpu_peak_flops", "promised_flops"),
}

_INT_KEYS = {"warmup_steps", "decay_steps", "max_steps", "num_epochs", "batch_size", "global_batch_size", "grad_accum",
             "seq_len", "vocab_size", "n_layer", "n_head", "n_embd", "d_ff", "dataset_tokens", "tokens_per_step",
             "n_params", "world_size", "n_classes", "dataset_size", "n_kv_heads"}
_FLOAT_KEYS = {"lr", "min_lr", "warmup_ratio", "weight_decay", "beta1", "beta2", "grad_clip", "dropout", "z_loss",
               "momentum"}
#: The largest count a config may give (2^53: every integer below it is exact as a float, so arithmetic on
#: counts such as 6 N D cannot overflow); larger counts are typos or attacks, not hyperparameters.
MAX_COUNT = 2 ** 53
#: Counts that must be at least 1 (a vocabulary of -1 would make ln(V) a domain error); other integer keys may be 0.
_POSITIVE_KEYS = {"batch_size", "global_batch_size", "grad_accum", "seq_len", "vocab_size", "n_layer", "n_head",
                  "n_embd", "d_ff", "dataset_tokens", "tokens_per_step", "n_params", "world_size", "n_classes",
                  "dataset_size", "n_kv_heads"}
#: Valid ranges of the float hyperparameters (all others: >= 0).
_FLOAT_RANGES = {"beta1": (0.0, 1.0), "beta2": (0.0, 1.0), "dropout": (0.0, 1.0), "warmup_ratio": (0.0, 1.0)}


def is_float16(dtype: Any) -> bool:
    """Whether a dtype / precision setting names IEEE float16 ("float16", "fp16", "16-mixed"), not bfloat16."""
    d = str(dtype or "").lower()
    return "16" in d and "bf" not in d


def _norm(k: str) -> str:
    return k.strip().lower().replace("-", "_")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return float(v) if v.bit_length() <= 1023 else None  # math.isfinite(10 ** 400) raises OverflowError
    if isinstance(v, float) and math.isfinite(v):
        return v
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def _dtype(raw: Mapping[str, Any]) -> str | None:
    """fp16/bf16 flags (HF) or a dtype/precision string, as float16 / bfloat16 / float32."""
    flags = {_norm(k): v for k, v in raw.items()}
    if flags.get("bf16") is True:
        return "bfloat16"
    if flags.get("fp16") is True:
        return "float16"
    for name in HPARAM_ALIASES["dtype"]:
        v = flags.get(name)
        if v is None:
            continue
        s = str(v).lower()
        if "bf16" in s or "bfloat16" in s:
            return "bfloat16"
        if "16" in s or "half" in s:
            return "float16"
        if "32" in s or "float" in s or "full" in s:
            return "float32"
    return None


def _shown(v: Any) -> str:
    if isinstance(v, int) and v.bit_length() > 64:
        return f"<integer of {v.bit_length()} bits>"  # str() of a 5000-digit int raises ValueError
    return f"{v!r:.40}"


def _out_of_range(canon: str, x: float) -> str | None:
    """Why the number ``x`` cannot be the hyperparameter ``canon``, or None when it can."""
    if canon in _INT_KEYS:
        low = 1 if canon in _POSITIVE_KEYS else 0
        if not low <= x <= MAX_COUNT:
            return f"must be an integer from {low} to 2^53"
        return None
    low, high = _FLOAT_RANGES.get(canon, (0.0, math.inf))
    if not low <= x <= high:
        return f"must be from {low:g} to {high:g}" if high < math.inf else f"must be >= {low:g}"
    return None


def canonical_hparams(raw: Mapping[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """Canonical hyperparameters from a raw (possibly nested) config mapping.

    A number out of range for its hyperparameter (a vocabulary of -1, a batch of 1e300) is ignored; when
    ``notes`` is given, a line saying so is appended to it.

    Example:
        >>> canonical_hparams({"learning_rate": 6e-4, "warmup_iters": 100, "block_size": 1024})
        {'lr': 0.0006, 'warmup_steps': 100, 'seq_len': 1024}
    """
    flat = _flatten(raw)
    by_norm: dict[str, Any] = {}
    for k, v in flat.items():
        nk = _norm(k)
        by_norm.setdefault(nk, v)
        by_norm.setdefault(nk.rsplit(".", 1)[-1], v)  # nested keys also match by their leaf
    out: dict[str, Any] = {}
    for canon, names in HPARAM_ALIASES.items():
        if canon == "dtype":
            continue
        for name in names:
            if name not in by_norm:
                continue
            v = by_norm[name]
            if canon in _INT_KEYS or canon in _FLOAT_KEYS:
                x = _num(v)
                if x is None:
                    if notes is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
                        notes.append(f"{name} = {_shown(v)} ignored: {canon} must be a finite number")
                    continue
                if canon == "max_steps" and x <= 0:
                    continue  # HF writes max_steps=-1 for "derive from epochs"
                why = _out_of_range(canon, x)
                if why:
                    if notes is not None:
                        notes.append(f"{name} = {_shown(v)} ignored: {canon} {why}")
                    continue
                out[canon] = int(x) if canon in _INT_KEYS else x
            elif canon == "model_type" and isinstance(v, list):
                out[canon] = str(v[0]) if v else None
            elif isinstance(v, (str, int, float, bool)):
                out[canon] = v
            else:
                continue
            break
    dtype = _dtype(flat)
    if dtype:
        out["dtype"] = dtype
    if out.get("warmup_steps") == 0 and out.get("warmup_ratio"):
        out.pop("warmup_steps")
    return out
