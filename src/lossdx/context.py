"""The run context: what kind of run a log comes from and what the log covers, with the reasons.

Detectors and rules judge a curve against norms — the usual learning rate, whether warmup matters,
the loss of an untrained model, the noise of one logged point. Those norms are not global
constants: an SGD LSTM language model trains at LR 1-20, an Adam fine-tune at 1e-5; a per-batch loss
at batch size 1 is heavy-tailed where a 500k-token batch is smooth; a log pasted from the middle of a
run says nothing about its start. :func:`profile_run` derives them once per run, from the curves
first and the config second, and every judgement reads them from here.

Overrides: ``run.meta["norms"]`` (e.g. ``{"typical_lr": 1e-3}`` from ``[tool.lossdx]``) wins over the
derived values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from .detectors._stats import MAD_TO_SIGMA
from .model import Run

#: (optimizer family, regime) -> the usual peak LR range (low, high). Sources: the seeds (handbook Q3:
#: pre-training 1e-4..3e-4, small models up to ~1e-3 — the top of the range, since healthy small GPTs train
#: at 6e-4..1e-3 and 2x-6x that already spikes; fine-tuning 1e-5..5e-5, LoRA up to ~2e-4..1e-3),
#: char-rnn / Keras defaults (Adam 1e-3..2e-3), Zaremba et al. / AWD-LSTM (SGD 1..30 on word-level LSTMs),
#: ImageNet SGD recipes (0.1 x batch/256).
LR_NORMS: dict[tuple[str, str], tuple[float, float]] = {
    ("adam", "lm_pretrain"): (1e-5, 1e-3),
    ("adam", "lm_finetune"): (1e-6, 1e-3),
    ("adam", "rnn_lm"): (1e-4, 5e-3),
    ("adam", "classifier"): (1e-5, 5e-3),
    ("adam", "vision"): (1e-5, 5e-3),
    ("adam", "unknown"): (1e-6, 3e-3),
    ("sgd", "lm_pretrain"): (1e-2, 30.0),
    ("sgd", "lm_finetune"): (1e-4, 1.0),
    ("sgd", "rnn_lm"): (1e-2, 30.0),
    ("sgd", "classifier"): (1e-3, 1.0),
    ("sgd", "vision"): (1e-3, 1.0),
    ("sgd", "unknown"): (1e-3, 30.0),
}
#: LR ranges when the optimizer is unknown: the union of what Adam and SGD use for that regime
_ANY_OPTIMIZER = "unknown"

#: the largest plausible ln(V) of a token-level model (V = 262,144): a first loss far above it is no
#: uniform prediction whatever the vocabulary
LN_MAX_VOCAB = math.log(262_144)

#: formats whose framework defaults to AdamW when the log does not say
_ADAM_FORMATS = ("nanogpt", "buildnanogpt", "buildnanogpt_logtxt", "modded_nanogpt", "llmc", "megatron",
                 "hf_trainer_state", "hf_console")
_LM_FORMATS = ("nanogpt", "buildnanogpt", "buildnanogpt_logtxt", "modded_nanogpt", "llmc", "megatron", "fairseq")


#: field values that RunProfile.to_dict copies as they are (immutable)
_PLAIN = frozenset({str, int, float, bool, type(None)})


@dataclass
class RunProfile:
    """What a run is and what its log covers; ``reasons`` says why for each call."""

    kind: str = "unknown"  # lm_pretrain | lm_finetune | rnn_lm | classifier | vision | unknown
    optimizer: str = "unknown"  # adam | sgd | other | unknown
    batch_size: int | None = None
    tokens_per_step: int | None = None
    first_step: int = 0
    covers_start: bool = True  # the log begins at the start of training
    first_is_initial: bool = True  # the first logged loss is the untrained model's loss
    log_window: int = 1  # steps one logged point averages
    log_interval: int = 1
    heavy_tailed: bool = False  # per-point noise with outliers far beyond a Gaussian (per-batch, tiny batches)
    tail_factor: float = 1.0  # how much larger the extreme residuals are than a Gaussian's of the same MAD
    rel_noise: float = 0.0  # robust sigma of one logged loss around its local level, relative to that level
    expected_init_loss: float | None = None
    init_basis: str | None = None  # "ln(V=50257)", "ln(C=10)", or None when unknown
    lr_range: tuple[float, float] = (1e-6, 30.0)
    peak_lr: float | None = None
    lr_source: str | None = None  # "logged" or "config"
    warmup_needed: bool = False
    n_classes: int | None = None
    record_lines_seen: int | None = None  # text logs: lines that look like records, and how many were read
    record_lines_read: int | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # asdict's deep copy took ~45 us, ~2 % of a 20-line log's whole analysis (R19): plain values are copied as
        # they are, and asdict only does what they cannot (a field holding something else)
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if all(type(v) in _PLAIN for k, v in d.items() if k not in ("lr_range", "reasons")) \
                and type(self.reasons) is list and all(type(r) is str for r in self.reasons):
            d["reasons"] = list(self.reasons)
        else:
            d = asdict(self)
        d["lr_range"] = list(self.lr_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunProfile":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "lr_range" in known:
            known["lr_range"] = tuple(known["lr_range"])
        return cls(**known)

    # -- norms -----------------------------------------------------------------------------
    def lr_ratio_high(self) -> float | None:
        """Peak LR over the top of the usual range (> 1: above it)."""
        return None if not self.peak_lr else self.peak_lr / self.lr_range[1]

    def lr_ratio_low(self) -> float | None:
        """Bottom of the usual range over the peak LR (> 1: below it)."""
        return None if not self.peak_lr else self.lr_range[0] / self.peak_lr

    def lr_norm_text(self) -> str:
        lo, hi = self.lr_range
        what = {"lm_pretrain": "LM pre-training", "lm_finetune": "fine-tuning", "rnn_lm": "RNN language models",
                "classifier": "classifiers", "vision": "vision models"}.get(self.kind, "this kind of run")
        opt = {"adam": "Adam", "sgd": "SGD"}.get(self.optimizer, "any optimizer")
        return f"the usual {_f(lo)}-{_f(hi)} for {opt} on {what}"


def _f(x: float) -> str:
    return f"{x:.3g}" if (abs(x) >= 1e3 or abs(x) < 1e-2) else f"{x:g}"


def _optimizer(run: Run, reasons: list[str]) -> str:
    raw = str(run.config.get("optimizer") or "").lower()
    for name, fam in (("adam", "adam"), ("lion", "adam"), ("adafactor", "adam"), ("muon", "adam"),
                      ("sgd", "sgd"), ("momentum", "sgd"), ("nesterov", "sgd"), ("nag", "sgd"), ("rmsprop", "adam"),
                      ("adagrad", "adam")):
        if name in raw:
            reasons.append(f"optimizer {raw!r} from the config")
            return fam
    if run.config.get("beta2") is not None or run.config.get("beta1") is not None:
        reasons.append("Adam betas in the config")
        return "adam"
    if run.config.get("momentum") is not None and run.config.get("beta2") is None:
        reasons.append("SGD momentum in the config")
        return "sgd"
    fmt = _origin(run)
    if fmt in _ADAM_FORMATS:
        reasons.append(f"{fmt} trains with AdamW by default")
        return "adam"
    return "unknown"


def _origin(run: Run) -> str:
    """The framework that wrote the log: its format, or HF Trainer when its own metrics (total_flos,
    train_runtime) show up in a TensorBoard / W&B / CSV export."""
    fmt = str(run.source.get("format", ""))
    names = " ".join(run.metrics).lower()
    if "total_flos" in names or "train_samples_per_second" in names or fmt == "hf_console":
        return "hf_trainer_state"  # the HF Trainer, whatever wrote its numbers down
    return fmt


def _int_cfg(run: Run, key: str) -> int | None:
    return _positive_int(run.config.get(key))


def _positive_int(v: object) -> int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        return None
    return int(v)


def one_sample_per_step(config: Mapping[str, Any]) -> bool:
    """The config trains on one sample per optimizer step (batch size 1, no gradient accumulation): each logged
    loss and gradient is one sample's."""
    return _positive_int(config.get("batch_size")) == 1 and (_positive_int(config.get("grad_accum")) or 1) == 1


def _relative_block_noise(v: np.ndarray, k: int, min_points: int) -> tuple[np.ndarray, float] | None:
    """(residuals relative to the median of each block of ``k`` points, their MAD-sigma) of the first whole blocks
    of ``v``; None for fewer than ``min_points`` points or a level near zero (relative noise says nothing of the
    batches there)."""
    n = v.size // k * k
    if n < min_points:
        return None
    blocks = v[:n].reshape(-1, k)
    level = np.median(blocks, axis=1, keepdims=True)
    if float(np.median(np.abs(level))) < 0.05:
        return None
    r = ((blocks - level) / np.maximum(np.abs(level), 1e-12)).ravel()
    return r, MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))


def _first_values(run: Run) -> tuple[np.ndarray, np.ndarray]:
    s = run.series.get("train/loss") or run.series.get("val/loss")
    if s is None or not len(s):
        return np.empty(0, dtype=np.int64), np.empty(0)
    ok = np.isfinite(s.values)
    return s.steps[ok], s.values[ok]


def _kind(run: Run, first_loss: float | None, covers: bool, reasons: list[str]) -> tuple[str, int | None]:
    cfg = run.config
    text = " ".join(str(cfg.get(k) or "") for k in ("model_type", "architectures", "model_name_or_path",
                                                     "_name_or_path")).lower()
    raw = run.meta.get("config_raw") or {}
    keys = " ".join(str(k).lower() for k in raw)
    n_classes = _int_cfg(run, "n_classes")
    vocab = _int_cfg(run, "vocab_size")
    metrics = " ".join(run.metrics).lower()
    fmt = _origin(run)
    if any(w in text for w in ("lstm", "gru", "rnn")) or fmt in ("char_rnn",):
        reasons.append("recurrent model (LSTM/GRU/RNN) in the config or log format")
        return "rnn_lm", n_classes
    # an HF config of a classification head keeps the input vocabulary and one id2label entry per class (heads that
    # are not classifiers keep the default two): the loss is a cross-entropy over the labels, not the vocabulary
    labels = raw.get("id2label")
    lm_head = any(w in text for w in ("causallm", "lmhead", "maskedlm", "seq2seqlm", "conditionalgeneration"))
    label_head = isinstance(labels, dict) and not lm_head and ("classification" in text or len(labels) > 2)
    if label_head and not n_classes:
        n_classes = len(labels)
    if n_classes and (not vocab or label_head):
        reasons.append(f"{n_classes} classes in the config" + (" (id2label of a classification head)"
                                                               if label_head else ""))
        return "classifier", n_classes
    if any(w in text for w in ("resnet", "unet", "vit", "convnext", "efficientnet", "yolo")) or "image_size" in keys:
        reasons.append("an image model in the config")
        return "vision", n_classes
    if fmt in _LM_FORMATS:
        if first_loss is not None and covers and first_loss < 3.0 and not vocab:
            reasons.append(f"{fmt} log starting at loss {first_loss:.3g}: fine-tuning a pretrained language model")
            return "lm_finetune", n_classes
        reasons.append(f"{fmt}: a language model")
        return "lm_pretrain", n_classes
    if vocab is None and first_loss is not None and covers and 6.5 <= first_loss <= LN_MAX_VOCAB * 1.05 and \
            "acc" not in metrics:
        reasons.append(f"first loss {first_loss:.3g} = ln({math.exp(first_loss):,.0f}): a uniform guess over a "
                       "token vocabulary, a language model from scratch")
        return "lm_pretrain", n_classes
    if vocab is None and first_loss is not None and covers and first_loss > LN_MAX_VOCAB and "acc" not in metrics:
        s = run.series.get("train/loss")
        v = s.values[np.isfinite(s.values)] if s is not None else np.empty(0)
        end = float(np.median(v[-max(1, v.size // 10):])) if v.size >= 10 else None
        if end is not None and 1.0 <= end <= 8.0:
            reasons.append(f"the loss falls from {first_loss:.3g} into the range of a token cross-entropy "
                           f"({end:.3g}): a language model that started far above any uniform guess")
            return "lm_pretrain", n_classes
    if ("acc" in metrics or fmt == "keras") and not vocab and "token" not in metrics:
        reasons.append("accuracy is logged and no vocabulary is known: a classifier")
        return "classifier", n_classes
    finetune_hint = any(w in keys for w in ("lora", "peft", "model_name_or_path", "base_model")) or \
        any(w in text for w in ("lora", "peft"))
    if vocab and first_loss is not None and covers:
        if first_loss < 0.6 * math.log(vocab):
            reasons.append(f"first loss {first_loss:.3g} far below ln(V={vocab}) = {math.log(vocab):.3g}: the model "
                           "starts trained (fine-tuning)")
            return "lm_finetune", n_classes
        reasons.append(f"first loss {first_loss:.3g} near ln(V={vocab}) = {math.log(vocab):.3g}: trained from scratch")
        return "lm_pretrain", n_classes
    if finetune_hint:
        reasons.append("LoRA/PEFT or a pretrained model path in the config: fine-tuning")
        return "lm_finetune", n_classes
    if fmt == "hf_trainer_state" and first_loss is not None and covers and first_loss < 5.0:
        reasons.append(f"HF Trainer run starting at loss {first_loss:.3g}: fine-tuning a pretrained model")
        return "lm_finetune", n_classes
    if fmt in _LM_FORMATS or vocab:
        reasons.append(f"{fmt or 'config'}: a language model")
        return "lm_pretrain", n_classes
    return "unknown", n_classes


def _tails(run: Run, window: int) -> tuple[bool, float, float]:
    """Heavy tails of the logged loss around its trend, past the fast descent (second half of the run):
    the 99th percentile of |residual| over the MAD-sigma, divided by a Gaussian's 2.58. Per-batch logs of
    tiny batches (one sequence, one image) reach 1.7-5; shuffled LM batches of thousands of tokens stay
    near 1. Residuals are taken relative to the local level so a loss near zero does not inflate them."""
    s = run.series.get("train/loss")
    if s is None or len(s) < 96:
        return False, 1.0, 0.0
    v = s.values[np.isfinite(s.values)]
    if not v.size:
        return False, 1.0, 0.0  # (a loss NaN at every point has no tails)
    start = float(np.min(v[:5]))  # the early level; a median would already include a blow-up
    v = v[v.size // 2:]
    # like against like: the least of five points is about the sixth-lowest of a noisy curve (per-sample losses
    # scattering over a decade put it far below their median), so the later level is its sixth-lowest as well
    if start > 0 and float(np.quantile(v, 1 / 6)) > 1.5 * start:
        return False, 1.0, 0.0  # a loss far above where it started is a broken run, not noisy batches
    noise = _relative_block_noise(v, 16, 48)  # three blocks of 16 at least
    if noise is None:
        return False, 1.0, 0.0
    r, mad = noise
    n = r.size
    if mad <= 0:
        return False, 1.0, 0.0
    one_sample = mad >= 0.25 and one_sample_per_step(run.config) and window <= 1
    if len(s) < 200 or n < 96:
        # three blocks measure the size of the noise (a short per-step log, an excerpt: its first point is one
        # draw of that noise), not yet how heavy its extremes are; unless every point is one sample's loss (batch
        # size 1 without accumulation in the config) and the curve shows that spread (a quarter of the level or
        # more): per-sample losses are skewed, with extremes at least the 1.6x of the smallest batches'
        if one_sample:
            factor = float(np.quantile(np.abs(r), 0.99)) / mad / 2.58
            return True, min(8.0, max(1.6, factor)), mad
        return False, 1.0, mad
    factor = float(np.quantile(np.abs(r), 0.99)) / mad / 2.58
    # 1.6-8x a Gaussian's extremes is what per-sample losses look like (skewed, exponential-like tails); far beyond
    # that the extremes are events (spikes of a broken run), not the noise of a small batch
    # a per-point spread as large as half the level itself is per-sample noise (batch 1 near convergence: most
    # losses ~0.01-0.1, a misclassified sample a few nats): its extremes reach further and are still ordinary
    per_sample = (mad >= 0.5 or one_sample) and factor <= 30.0
    return (1.6 <= factor <= 8.0 or per_sample) and window <= 1, factor, mad


def _excerpt_noise(run: Run) -> float:
    """The point-to-point noise of a short excerpt (too short for :func:`_tails`), relative to its level: its first
    point is one draw of that noise, not a baseline, and this is the only measure of the noise a short paste has.
    Blocks of 8 points around their median; an excerpt is past the fast descent, so the trend inside a block is
    small against the noise."""
    s = run.series.get("train/loss")
    if s is None:
        return 0.0
    noise = _relative_block_noise(s.values[np.isfinite(s.values)], 8, 16)  # two blocks of 8 at least
    return 0.0 if noise is None else noise[1]


def _epochs_before_first_record(run: Run) -> tuple[float, float, str] | None:
    """(first epoch, records before it) when a log numbered record by record (no step numbers: HF console dicts)
    starts more than two records' worth of epoch into the run. The epoch advance per record is measured over the
    log; printed with two decimals (HF), an epoch that never moves advances less than 0.01 over all records."""
    ep = run.series.get("train/epoch")
    if ep is None:
        return None
    e = ep.values[np.isfinite(ep.values)]
    if e.size < 3 or e[0] <= 0:
        return None
    span = float(e[-1] - e[0])
    per_record = span / (e.size - 1) if span > 0 else 0.01 / (e.size - 1)
    before = float(e[0]) / per_record
    return (float(e[0]), before, "about" if span > 0 else "more than") if before > 2 else None


def profile_run(run: Run, log_window: int | None = None, log_interval: int | None = None) -> RunProfile:
    """Derive the :class:`RunProfile` of a run (cheap: a few numpy passes over the loss)."""
    reasons: list[str] = []
    steps, vals = _first_values(run)
    window = int(log_window if log_window is not None else run.meta.get("log_window", 1) or 1)
    if log_interval is None:
        log_interval = max(1, int(np.median(np.diff(steps)))) if steps.size > 2 else 1
    first_step = int(steps[0]) if steps.size else 0
    last_step = int(steps[-1]) if steps.size else 0
    # the log covers the start of training when it begins within two logging intervals (a first line or two can be
    # lost to start-up output) or 2 % of the run
    covers = first_step <= max(2 * log_interval, 10, 0.02 * max(last_step, 1))
    if not covers:
        reasons.append(f"the log starts at step {first_step}: an excerpt from the middle of a run")
    elif run.meta.get("steps_are_record_numbers"):
        epochs_in = _epochs_before_first_record(run)
        if epochs_in is not None:
            covers = False
            reasons.append(f"the log has no step numbers and its first record is at epoch {epochs_in[0]:g}, "
                           f"{epochs_in[2]} {epochs_in[1]:,.0f} records into the run: an excerpt")
    lr_s = run.series.get("train/lr")
    lr_vals = lr_s.values[np.isfinite(lr_s.values)] if lr_s is not None else np.empty(0)
    peak_lr, lr_source = None, None
    if lr_vals.size and float(lr_vals.max()) > 0:
        peak_lr, lr_source = float(lr_vals.max()), "logged"
    else:
        v = run.config.get("lr")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            peak_lr, lr_source = float(v), "config"
    # the first logged loss is the untrained model's when it is logged at step 0/1, or within the first
    # logging interval while the LR is still small (a warmup): at full LR ten steps can already be a blow-up
    first_is_initial = covers and first_step <= 1
    if covers and not first_is_initial and first_step <= max(log_interval, 10):
        if lr_s is not None and len(lr_s) and peak_lr:
            lr0 = float(lr_s.values[0]) if math.isfinite(float(lr_s.values[0])) else peak_lr
            first_is_initial = lr0 <= 0.3 * peak_lr
        else:
            first_is_initial = window > 1  # an HF first window: the mean of the first steps, still early
        if not first_is_initial:
            reasons.append(f"the first logged loss is at step {first_step} at full LR: not the initial loss")
    first_loss = float(vals[0]) if vals.size else None
    kind, n_classes = _kind(run, first_loss, covers, reasons)
    optimizer = _optimizer(run, reasons)
    lr_range = LR_NORMS.get((optimizer, kind)) or LR_NORMS[("adam" if optimizer == "other" else optimizer, kind)] \
        if optimizer != "unknown" else _union(kind)
    vocab = _int_cfg(run, "vocab_size")
    expected, basis = None, None
    if vocab and kind != "classifier":
        expected, basis = math.log(vocab), f"ln(V={vocab})"
    elif n_classes:
        expected, basis = math.log(n_classes), f"ln(C={n_classes})"
    heavy, tail, rel_noise = _tails(run, window)
    if not covers and not rel_noise:
        rel_noise = _excerpt_noise(run)
    if heavy:
        reasons.append(f"per-point loss noise is heavy-tailed (extremes {tail:.1f}x a Gaussian's): per-batch "
                       "losses of small batches; single outliers are ordinary")
    bs = _int_cfg(run, "batch_size")
    from .facts import tokens_per_step

    tps = tokens_per_step(run.config)
    # warmup matters for from-scratch Adam training of deep/attention models (handbook: 0.5-2 % of steps);
    # SGD RNNs, small classifiers and fine-tunes at their usual LR train fine without it
    warmup_needed = optimizer in ("adam", "unknown") and kind in ("lm_pretrain",)
    prof = RunProfile(kind=kind, optimizer=optimizer, batch_size=bs, tokens_per_step=tps, first_step=first_step,
                      covers_start=covers, first_is_initial=first_is_initial, log_window=window,
                      log_interval=int(log_interval), heavy_tailed=heavy, tail_factor=round(tail, 2),
                      rel_noise=round(rel_noise, 4),
                      expected_init_loss=expected, init_basis=basis, lr_range=lr_range, peak_lr=peak_lr,
                      lr_source=lr_source, warmup_needed=warmup_needed, n_classes=n_classes, reasons=reasons)
    if optimizer in ("adam", "unknown") and kind == "lm_pretrain":
        n = _int_cfg(run, "n_params")
        if n is None:
            from .facts import params_from_config

            n = params_from_config(run.config)
        if n:
            # the usual peak LR falls with model size (GPT-3 table: 125M 6e-4, 1.3B 2e-4, 175B 0.6e-4); tiny models
            # train well at a few 1e-3
            top = 5e-3 if n < 5e6 else 2e-3 if n < 5e7 else 1e-3 if n < 5e8 else 5e-4
            prof.lr_range = (prof.lr_range[0], top if optimizer == "adam" else max(top, prof.lr_range[1]))
            reasons.append(f"{n:,} parameters: usual peak LR up to {top:g}")
        else:
            # size unknown: small models are the ones people debug, and they train at up to ~3e-3
            prof.lr_range = (prof.lr_range[0], 3e-3)
    for key in ("record_lines_seen", "record_lines_read"):
        v = run.meta.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            setattr(prof, key, v)
    _apply_overrides(prof, run.meta.get("norms") or {})
    return prof


def _union(kind: str) -> tuple[float, float]:
    if kind in ("lm_pretrain", "lm_finetune"):
        return LR_NORMS[("adam", kind)]  # transformer LMs train with Adam-type optimizers unless told otherwise
    a = LR_NORMS[("adam", kind)]
    s = LR_NORMS[("sgd", kind)]
    return (min(a[0], s[0]), max(a[1], s[1]))


def _apply_overrides(prof: RunProfile, norms: dict[str, Any]) -> None:
    lr = norms.get("typical_lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
        prof.lr_range = (float(lr) / 10, float(lr) * 10)
        prof.reasons.append(f"typical LR {lr:g} set by the user")
    if "warmup_needed" in norms:
        prof.warmup_needed = bool(norms["warmup_needed"])


__all__ = ["LR_NORMS", "RunProfile", "profile_run"]
