"""The run context: kind, optimizer, coverage, noise and the norms derived from them."""

import math

import numpy as np
import pytest

from lossdx.context import LR_NORMS, RunProfile, profile_run
from lossdx.model import Run, Series


def _run(loss, steps=None, config=None, fmt="", **extra):
    steps = np.arange(len(loss)) if steps is None else np.asarray(steps)
    series = {"train/loss": Series("train/loss", steps, np.asarray(loss, dtype=float))}
    for name, values in extra.items():
        key = name.replace("__", "/")
        series[key] = Series(key, steps, np.asarray(values, dtype=float))
    run = Run(series, config=dict(config or {}))
    run.source["format"] = fmt
    return run


def _curve(first, last, n=1000):
    i = np.arange(n)
    return last + (first - last) / np.sqrt(1 + i / 20)


def test_from_scratch_lm_with_vocab():
    p = profile_run(_run(_curve(10.8, 3.0), config={"vocab_size": 50257}))
    assert p.kind == "lm_pretrain" and p.expected_init_loss == pytest.approx(math.log(50257))
    assert p.covers_start and p.first_is_initial and p.warmup_needed


def test_finetune_starts_far_below_ln_v():
    p = profile_run(_run(_curve(1.9, 1.2), config={"vocab_size": 32000}))
    assert p.kind == "lm_finetune" and not p.warmup_needed
    assert any("fine-tuning" in r for r in p.reasons)


def test_classifier_from_classes_and_ln_c():
    p = profile_run(_run(_curve(2.3, 0.1), config={"num_classes": 10, "n_classes": 10}))
    assert p.kind == "classifier" and p.expected_init_loss == pytest.approx(math.log(10))
    assert p.init_basis == "ln(C=10)"


def test_a_text_classifier_config_counts_its_labels_not_its_input_vocabulary():
    """An HF config.json of a sequence classifier keeps the input vocabulary and id2label (one entry per class, the
    default two for heads that are not classifiers): the loss is a cross-entropy over the labels."""
    raw = {"vocab_size": 260, "model_type": "bert", "id2label": {str(i): f"LABEL_{i}" for i in range(4)}}
    run = _run(np.full(60, 1.386), config={"vocab_size": 260, "model_type": "bert"}, fmt="hf_trainer_state")
    run.meta["config_raw"] = raw
    p = profile_run(run)
    assert p.kind == "classifier" and p.n_classes == 4 and p.init_basis == "ln(C=4)"
    lm = _run(_curve(5.5, 2.0), config={"vocab_size": 260, "model_type": "bert"}, fmt="hf_trainer_state")
    lm.meta["config_raw"] = dict(raw, id2label={"0": "LABEL_0", "1": "LABEL_1"})
    assert profile_run(lm).kind == "lm_pretrain"
    masked = _run(_curve(5.5, 2.0), config={"vocab_size": 260, "architectures": ["BertForMaskedLM"]},
                  fmt="hf_trainer_state")
    masked.meta["config_raw"] = dict(raw, architectures=["BertForMaskedLM"])
    assert profile_run(masked).kind == "lm_pretrain"


def test_rnn_and_sgd_norms():
    p = profile_run(_run(_curve(4.2, 1.4), config={"model_type": "lstm", "optimizer": "sgd", "lr": 20.0}))
    assert (p.kind, p.optimizer) == ("rnn_lm", "sgd")
    assert p.lr_range == LR_NORMS[("sgd", "rnn_lm")] and p.lr_ratio_high() < 1  # LR 20 is usual for SGD LSTMs


def test_adam_lr_norm_shrinks_with_model_size():
    small = profile_run(_run(_curve(9, 3), config={"vocab_size": 8192, "n_params": 2_000_000, "optimizer": "adamw"}))
    big = profile_run(_run(_curve(11, 2), config={"vocab_size": 50257, "n_params": 7_000_000_000,
                                                   "optimizer": "adamw"}))
    assert small.lr_range[1] > big.lr_range[1]


def test_excerpt_and_first_point_at_full_lr():
    steps = np.arange(5000, 6000)
    p = profile_run(_run(_curve(3.2, 3.0), steps=steps, fmt="nanogpt"))
    assert not p.covers_start and not p.first_is_initial
    steps = np.arange(10, 1010, 10)
    p = profile_run(_run(_curve(6, 3, 100), steps=steps, train__lr=np.full(100, 1.0)))
    assert p.covers_start and not p.first_is_initial
    p = profile_run(_run(_curve(6, 3, 100), steps=steps, train__lr=np.linspace(0.01, 1.0, 100)))
    assert p.first_is_initial  # at step 10 of a warmup the model is still the untrained one


def test_heavy_tails_of_per_batch_losses_and_not_of_spikes():
    rng = np.random.default_rng(0)
    base = _curve(4, 1.5, 3000)
    heavy = profile_run(_run(base * rng.gamma(2.0, 0.5, 3000)))
    calm = profile_run(_run(base * (1 + 0.02 * rng.standard_normal(3000))))
    assert heavy.heavy_tailed and not calm.heavy_tailed
    spiky = base * (1 + 0.02 * rng.standard_normal(3000))
    spiky[2000::97] *= 30  # events, not noise
    assert not profile_run(_run(spiky)).heavy_tailed


def test_hf_origin_in_a_tensorboard_export():
    run = _run(_curve(2.0, 1.7, 400), steps=np.arange(500, 200_001, 500), train__total_flos=np.ones(400))
    run.source["format"] = "tensorboard"
    p = profile_run(run)
    assert p.optimizer == "adam" and p.kind == "lm_finetune"


def test_user_norm_overrides():
    run = _run(_curve(9, 3), config={"vocab_size": 8192})
    run.meta["norms"] = {"typical_lr": 0.05, "warmup_needed": False}
    p = profile_run(run)
    assert p.lr_range == (pytest.approx(0.005), pytest.approx(0.5)) and not p.warmup_needed


def test_profile_serialises():
    d = RunProfile().to_dict()
    assert isinstance(d["lr_range"], list) and d["kind"] == "unknown"


def test_a_pinned_profile_is_used_as_recorded():
    """The live guard records the context it judged with; offline analysis of its history must use the same."""
    from lossdx.detectors.base import Context

    run = _run(_curve(10.8, 3.0), config={"vocab_size": 50257})
    run.meta["profile"] = RunProfile(kind="rnn_lm", optimizer="sgd").to_dict()
    ctx = Context.from_run(run)
    assert (ctx.profile.kind, ctx.profile.optimizer) == ("rnn_lm", "sgd")


def test_a_log_without_step_numbers_starting_epochs_in_is_an_excerpt(tmp_path):
    """HF console dicts carry no step: the reader numbers the records, so the first is 'step 0' wherever the run
    was. The epoch counter says where: 0.06 that never moves over 6 records is > 30 records in; 0.05, 0.1, 0.15
    is the first record of the run."""
    from lossdx.readers import read

    f = tmp_path / "console.txt"
    f.write_text("".join(f"{{'loss': {1.1 + 0.01 * i}, 'learning_rate': 0.0002, 'epoch': 0.06}}\n" for i in range(6)))
    prof = profile_run(read(str(f)))
    assert not prof.covers_start and any("more than 30 records into the run" in r for r in prof.reasons)
    f.write_text("".join(f"{{'loss': {5.5 - 0.1 * i}, 'learning_rate': 0.0002, 'epoch': {0.05 * (i + 1):.2f}}}\n"
                         for i in range(6)))
    assert profile_run(read(str(f))).covers_start


def test_a_loss_nan_at_every_one_of_a_hundred_points_has_no_tails_and_no_crash():
    """The heavy-tail check counted the logged points (>= 96) and then took the minimum of the finite ones: none
    (a JSONL of 130 NaN losses was an internal error of `lossdx analyze`)."""
    prof = profile_run(_run(np.full(130, np.nan), fmt="jsonl"))
    assert not prof.heavy_tailed


def test_per_sample_losses_scattering_over_a_decade_are_heavy_tailed_not_a_run_above_its_start():
    """A batch-size-1 classifier excerpt: losses scatter lognormally (sigma 1.2) around 0.12; the least of its first
    five points (0.05) lies far below that median, as the sixth-lowest of any stretch of it does. Compared with the
    later median it read as a run far above where it started, and its heavy tails went unseen."""
    rng = np.random.default_rng(0)
    v = 0.12 * np.exp(rng.normal(0, 1.2, 1120))
    v[:5] = [0.85, 0.12, 0.34, 0.05, 0.2]
    steps = np.arange(1680, 2800)
    prof = profile_run(Run({"train/loss": Series("train/loss", steps, v)}))
    assert prof.heavy_tailed and prof.rel_noise > 0.5
    # the same noise around a level three times the start's is still a broken run, not noisy batches
    w = v.copy()
    w[560:] *= 6.0
    assert not profile_run(Run({"train/loss": Series("train/loss", steps, w)})).heavy_tailed


def test_per_sample_losses_of_a_batch_size_one_run_are_heavy_tailed_before_their_tails_can_be_measured():
    """150 points of a batch-size-1 classifier (every 10th of 1,500) scattering by ~35 % of their level: too few to
    measure how heavy the extremes are, but every point is one sample's loss: heavy-tailed, as a longer log of the
    same run measures. Without the config, or with gradient accumulation, the same points are not."""
    rng = np.random.default_rng(0)
    steps = np.arange(0, 1500, 10)
    loss = (0.4 + 0.9 * np.exp(-steps / 300)) * rng.gamma(8.0, 1 / 8.0, steps.size)
    prof = profile_run(_run(loss, steps=steps, config={"batch_size": 1}))
    assert prof.heavy_tailed and prof.tail_factor >= 1.6 and prof.rel_noise >= 0.25
    assert not profile_run(_run(loss, steps=steps)).heavy_tailed
    assert not profile_run(_run(loss, steps=steps, config={"batch_size": 1, "grad_accum": 8})).heavy_tailed
