"""The seeds' worked examples, computed right (and the one the note gets wrong)."""

import math

import pytest

from lossdx import facts as F


def test_seed_model_is_about_40m_not_125m():
    n = F.gpt_params(12, 384, 50304, 1024)  # nanoGPT: 12 layers, 384 wide, vocab 50304, block 1024
    assert n == 40_953_216
    assert 40e6 < n < 42e6


def test_gpu_run_param_count_matches_nanogpt():
    assert F.gpt_params(6, 384, 8192, 256) == 13_865_856  # the gpu-runs' n_params


def test_tokens_per_iteration_and_epochs():
    cfg = {"batch_size": 16, "grad_accum": 32, "seq_len": 1024}
    assert F.tokens_per_step(cfg) == 524_288
    assert F.tokens_per_step({**cfg, "world_size": 8}) == 8 * 524_288
    assert 14500 * 524_288 == 7_602_176_000  # the nanoGPT note's ~7.6 B tokens by step 14500
    assert F.epochs(7_602_176_000, 1e9) == pytest.approx(7.602176)


def test_compute_and_gpu_hours_of_the_handbook_example():
    c = F.train_flops(7e9, 2e12)
    assert c == pytest.approx(8.4e22)
    assert F.gpu_seconds(c, 4e14) == pytest.approx(2.1e8)
    assert F.gpu_hours(c, 4e14) == pytest.approx(58_333.3, rel=1e-4)  # not the 6,700 the note states
    assert F.gpu_hours(c, 4e14) / 8 / 24 == pytest.approx(303.8, rel=1e-3)  # days on one 8-GPU node


def test_chinchilla_mfu_lr_scaling_perplexity():
    assert F.chinchilla_tokens(7e9) == pytest.approx(1.4e11)
    assert F.chinchilla_params(2e12) == pytest.approx(1e11)
    assert F.mfu(124e6, 1.28e6, 989e12) == pytest.approx(6 * 124e6 * 1.28e6 / 989e12)
    assert F.scale_lr(3e-4, 256, 1024) == pytest.approx(1.2e-3)
    assert F.scale_lr(3e-4, 256, 1024, "sqrt") == pytest.approx(6e-4)
    assert F.perplexity(3.6) == pytest.approx(math.exp(3.6))
    assert 36 < F.perplexity(3.6) < 37  # the note's "exp(3.6) ~ 36"
    with pytest.raises(ValueError):
        F.scale_lr(1, 1, 2, "cubic")


def test_params_from_hf_llama_config():
    cfg = {"n_layer": 22, "n_embd": 2048, "vocab_size": 32000, "d_ff": 5632, "n_head": 32, "n_kv_heads": 4,
           "model_type": "llama", "tie_embeddings": False}
    n = F.params_from_config(cfg)
    assert 1.05e9 < n < 1.15e9  # TinyLlama-1.1B


@pytest.mark.parametrize("cfg", [
    {"n_layer": 1e300, "n_embd": 1e300, "vocab_size": 50000, "batch_size": 8, "seq_len": 1024},
    {"batch_size": 1e300, "seq_len": 1e300, "dataset_tokens": 7},
    {"n_layer": 10 ** 400, "n_embd": 10 ** 400, "vocab_size": 10 ** 400, "tokens_per_step": float("inf")},
    {"vocab_size": -1, "n_classes": "ten", "n_params": True, "peak_flops": 1e-300},
    {"n_layer": 2 ** 53, "n_embd": 2 ** 53, "vocab_size": 2 ** 53, "batch_size": 2 ** 53, "seq_len": 2 ** 53,
     "grad_accum": 2 ** 53, "world_size": 2 ** 53, "dataset_tokens": 1, "peak_flops": 1e-300},
])
def test_compute_facts_never_overflows_on_a_hand_set_config(cfg):
    """run.config may be set by a library user to anything: facts ignore what is no count and never overflow."""
    import json

    import numpy as np

    from lossdx.model import Run, Series

    run = Run(series={"train/loss": Series("train/loss", np.arange(50), np.linspace(5, 2, 50)),
                      "perf/tokens_per_sec": Series("perf/tokens_per_sec", np.arange(50), np.full(50, 1e308)),
                      "perf/step_time": Series("perf/step_time", np.arange(50), np.full(50, 1e308))}, config=cfg)
    facts = F.compute_facts(run)
    json.dumps(facts, allow_nan=False)
    assert "init_loss_expected" not in facts or facts["init_loss_expected"] > 0
