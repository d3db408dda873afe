"""Canonical metric names and the alias table that maps what logs call them onto those names.

Every reader passes raw metric names through :func:`canonical`, so ``loss``, ``train_loss``,
``lm loss``, ``trl`` and ``Loss/train`` all become ``train/loss``. A name with no alias keeps a
normalised form of itself (``eval_rouge1`` -> ``val/rouge1``), so nothing the log holds is lost.
"""

from __future__ import annotations

import re
from functools import lru_cache

TRAIN_LOSS = "train/loss"
VAL_LOSS = "val/loss"
GRAD_NORM = "train/grad_norm"
LR = "train/lr"
LOSS_SCALE = "train/loss_scale"
EPOCH = "train/epoch"
TOKENS = "train/tokens"
STEP_TIME = "perf/step_time"  # milliseconds per optimizer step
TOKENS_PER_SEC = "perf/tokens_per_sec"
MFU = "perf/mfu"  # percent

#: Raw names (after :func:`_normalise`) -> canonical key.
ALIASES: dict[str, str] = {}


def _register(canonical_key: str, *raw: str) -> None:
    for name in raw:
        ALIASES[_normalise(name)] = canonical_key


def _normalise(name: str) -> str:
    n = name.strip().lower()
    n = re.sub(r"[\s\-]+", "_", n)
    n = re.sub(r"_+", "_", n)
    return n.strip("_")


_register(
    TRAIN_LOSS,
    "loss", "train_loss", "train/loss", "training_loss", "training/loss", "trainloss", "train loss",
    "lm loss", "lm_loss", "trl", "train_loss_step", "loss/train", "train/loss_step", "loss_step",
    "train/lm_loss", "lm-loss", "train_lm_loss", "total_loss", "train/total_loss", "xent",
    "training loss", "train_loss_iter", "train/loss_iter", "train/loss (avg)", "train_avg_loss",
    "loss/train_loss", "trainer/loss", "train/train_loss", "train/loss_avg", "loss_avg", "avg_loss",
)
_register(
    VAL_LOSS,
    "val_loss", "val/loss", "eval_loss", "eval/loss", "valid_loss", "valid/loss", "validation_loss",
    "validation/loss", "val loss", "validation loss", "tel", "loss/val", "loss/valid", "loss/validation",
    "validloss", "val_lm_loss", "lm loss validation", "lm-loss-validation/lm loss validation",
    "val/lm_loss", "eval_lm_loss", "loss/eval", "val_loss_epoch", "valid_loss_epoch", "val/loss_epoch",
    "test_loss_eval",
)
_register(
    GRAD_NORM,
    "grad_norm", "grad norm", "gnorm", "norm", "train/grad_norm", "grad-norm", "gradient_norm",
    "train/gradient_norm", "grad_norm/total", "grad-norm/grad-norm", "train/gnorm", "optim/grad_norm",
    "total_grad_norm", "grad_norm_before_clip",
)
_register(
    LR,
    "lr", "learning_rate", "learning rate", "train/lr", "train/learning_rate", "lr_adamw", "lr_adam",
    "lr_sgd", "learning-rate/learning-rate", "learning-rate", "optim/lr", "lr/group_0", "lr-adamw",
    "learning_rate/lr", "lr/lr",
)
_register(LOSS_SCALE, "loss_scale", "loss scale", "train/loss_scale", "loss-scale/loss-scale", "scale")
_register(EPOCH, "epoch", "train/epoch", "epochs")
_register(TOKENS, "tokens", "consumed tokens", "num_tokens", "trained tokens", "train/tokens", "tokens_seen",
          "consumed_tokens", "train/num_tokens")
_register(STEP_TIME, "dt", "dt_ms", "time", "step_time", "perf/step_time", "iteration time",
          "elapsed time per iteration (ms)", "time/batch", "step_time_ms", "train/step_time")
_register(TOKENS_PER_SEC, "tok/sec", "tokens_per_sec", "tokens/sec", "tokens/s", "tok/s",
          "perf/tokens_per_sec", "throughput", "tokens_per_second", "tps", "train/tokens_per_second")
_register(MFU, "mfu", "perf/mfu", "mfu(%)", "mfu_percent")
_register(STEP_TIME, "ms/batch", "ms/step", "ms/it", "ms_per_batch", "ms_per_step")  # word_language_model & kin
_register("test/loss", "testloss", "test loss")  # fairseq-lua prints trainloss / validloss / testloss
_register("train/ppl", "ppl", "perplexity", "train ppl", "train_ppl", "train_perplexity", "train/perplexity",
          "train_perplexity_step")
_register("val/ppl", "valid ppl", "val_ppl", "valid_ppl", "val_perplexity", "val/perplexity", "eval_perplexity",
          "lm loss ppl", "lm loss validation ppl")
_register("train/accuracy", "acc", "accuracy", "train_acc", "train/acc", "train_accuracy", "train_acc_step",
          "mean_token_accuracy")
_register("val/accuracy", "val_acc", "valid_acc", "eval_accuracy", "val/acc", "val_accuracy")
_register("train/skipped_iters", "number of skipped iterations", "skipped_iters", "skipped iterations")
_register("train/nan_iters", "number of nan iterations", "nan iterations", "nan_iters")

_STEP_NAMES = {
    "step", "steps", "iter", "iteration", "iterations", "it", "s", "global_step", "num_updates",
    "trainer/global_step", "_step", "global step", "update", "updates", "batch", "train/global_step",
}


_STEP_PRIORITY = ("step", "global_step", "train/global_step", "trainer/global_step", "iter", "iteration",
                  "num_updates", "steps", "it", "s", "update", "updates", "_step", "global step", "iterations",
                  "batch")


def pick_step_name(names: "list[str] | set[str] | dict") -> str | None:
    """The column/key that holds the step, by priority (``step`` beats W&B's ``_step``)."""
    names = list(names)
    exact = {n.strip().lower(): n for n in names}
    for cand in _STEP_PRIORITY:
        if cand in exact:
            return exact[cand]
    by_norm: dict[str, str] = {}
    for n in names:
        by_norm.setdefault(_normalise(n), n)
    for cand in _STEP_PRIORITY:
        if cand in by_norm:
            return by_norm[cand]
    return None


def is_step_name(name: str) -> bool:
    """Whether a column/key name denotes the training step."""
    return _normalise(name) in _STEP_NAMES


@lru_cache(maxsize=4096)
def canonical(name: str) -> str:
    """Map a raw metric name to its canonical key.

    Example:
        >>> canonical("lm loss"), canonical("eval_loss"), canonical("lr-AdamW")
        ('train/loss', 'val/loss', 'train/lr')
    """
    n = _normalise(name)
    if n in ALIASES:
        return ALIASES[n]
    # lightning's LearningRateMonitor names the column after the optimizer: lr-AdamW, lr-SGD/pg1
    if re.match(r"^lr[_/]", n) or n.startswith("learning_rate"):
        return LR
    # HF prefixes every eval metric with eval_, and custom eval sets as eval_<set>_<metric>
    for prefix, split in (("eval_", "val"), ("eval/", "val"), ("valid_", "val"), ("val_", "val"),
                          ("validation_", "val"), ("train_", "train"), ("train/", "train"),
                          ("test_", "test"), ("test/", "test")):
        if n.startswith(prefix) and len(n) > len(prefix):
            rest = n[len(prefix):]
            inner = ALIASES.get(rest)
            if inner is not None and inner.split("/", 1)[0] in ("train", "val"):
                return f"{split}/{inner.split('/', 1)[1]}"
            return f"{split}/{rest}"
    return n


def is_loss_key(key: str) -> bool:
    """Whether a canonical key is a loss of some split (train/loss, val/loss, val/g0_loss, ...)."""
    leaf = key.rsplit("/", 1)[-1]
    return leaf == "loss" or leaf.endswith("_loss") or key in (TRAIN_LOSS, VAL_LOSS)
