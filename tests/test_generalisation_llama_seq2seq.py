"""Issue 7 on LLaMA pre-training and encoder-decoder (T5) runs: one test per phenomenon the families benchmark's
tune half showed for its `llama` and `seq2seq` families (each failed before its rule or detector change). Curves are
synthetic, shaped like the HF Trainer's logs (window means every `logging_steps`, evaluations every N steps)."""

import math

import numpy as np

from lossdx.analyze import analyze
from lossdx.model import Run

from .test_generalisation import _run as _run_of_format
from .test_generalisation import _serious


def _run(series: dict, config: dict | None = None, fmt: str = "hf_trainer_state") -> Run:
    return _run_of_format(series, config, fmt)


def _causes(rep):
    return [d.cause for d in rep.diagnoses]


def test_a_small_vocabulary_model_starting_a_nat_above_ln_v_is_no_broken_init():
    """A from-scratch T5 on a 16-token digit task logs 3.64 at step 1 (ln 16 = 2.77, 1.3x): unit-scale random logits
    add ~s^2/2 nats to ln V whatever V is, so a small vocabulary makes a normal start look like 1.3-1.5x ln V. A broken
    init starts tens of nats above (25.9 for a GPT-2 at std 1.0)."""
    steps = np.arange(1, 701)
    rng = np.random.default_rng(0)
    loss = 0.2 + 3.44 * np.exp(-steps / 150) * (1 + 0.03 * rng.standard_normal(steps.size))
    grad = 3.0 + 0.3 * rng.standard_normal(steps.size)
    lr = 2e-3 * np.minimum(1.0, steps / 35) * (1 - steps / 701)
    ev = np.arange(100, 701, 100)
    series = {"train/loss": (steps, loss), "train/grad_norm": (steps, np.abs(grad)), "train/lr": (steps, lr),
              "val/loss": (ev, 0.2 + 3.0 * np.exp(-ev / 150))}
    rep = analyze(_run(series, {"vocab_size": 16, "model_type": "t5", "optimizer": "adamw"}))
    assert not [f for f in rep.findings if f.kind == "init_loss"], [f.message for f in rep.findings]
    # the same vocabulary with a first loss 20 nats above ln V is still a broken init
    bad = dict(series, **{"train/loss": (steps, loss + 20 * np.exp(-steps / 20))})
    got = [f for f in analyze(_run(bad, {"vocab_size": 16, "model_type": "t5"})).findings if f.kind == "init_loss"]
    assert got and got[0].severity == "error"


def test_clipping_active_while_a_seq2seq_model_drops_off_its_plateau_is_information():
    """A T5 reversing digit strings (clip 1): the loss creeps on a plateau near 1.3, then drops to 0.1 as
    cross-attention finds the alignment, and the gradient norm grows 0.4 -> 5-10 as it does, so clipping is active
    on nearly every step. The loss fell to a tenth and the held-out loss with it: the clipped steps learned. The same
    clipping on a loss that stays on its plateau is still a warning."""
    steps = np.arange(20, 701, 20)
    drop = 1 / (1 + np.exp(-(steps - 450) / 40))
    loss = 2.6 * np.exp(-steps / 30) + 1.35 - 0.2 * steps / 700 - 1.1 * drop
    grad = 0.4 + 5.0 * np.minimum(1.0, steps / 300)
    ev = np.arange(100, 701, 100)
    val = 1.5 - 0.2 * ev / 700 - 1.25 / (1 + np.exp(-(ev - 450) / 40))
    cfg = {"vocab_size": 16, "model_type": "t5", "grad_clip": 1.0, "optimizer": "adamw", "lr": 1e-3}
    series = {"train/loss": (steps, loss), "train/grad_norm": (steps, grad), "train/lr": (steps, np.full(steps.size, 1e-3)),
              "val/loss": (ev, val)}
    rep = analyze(_run(series, cfg))
    clip = [f for f in rep.findings if f.evidence.get("type") == "clip_saturation"]
    assert clip and clip[0].severity == "info" and "still learned" in clip[0].message
    assert rep.verdict == "healthy", [f.message for f in _serious(rep)]
    stuck = dict(series, **{"train/loss": (steps, 2.6 * np.exp(-steps / 30) + 1.35), "val/loss": (ev, 1.5 + 0 * ev)})
    clip = [f for f in analyze(_run(stuck, cfg)).findings if f.evidence.get("type") == "clip_saturation"]
    assert clip and clip[0].severity == "warning"


def test_a_first_window_mean_the_loss_only_falls_from_is_the_start_of_a_slow_run():
    """HF logs the mean of the first 10 steps at step 10; at lr 1e-5 during a warmup that has reached a third of its
    peak those steps moved nothing (4.25, then 4.23, 4.19 ...). The loss then creeps 4.25 -> 2.71 in 600 steps where
    a healthy run of the task passes 2.0 in 50: slow convergence, an LR too low (lr 9.8e-6 logged)."""
    steps = np.arange(10, 601, 10)
    loss = 2.6 + 1.7 * np.exp(-steps / 180)
    lr = 1e-5 * np.minimum(1.0, steps / 30) * (1 - steps / 601)
    lr[0] = 0.305 * lr.max()
    ev = np.arange(100, 601, 100)
    series = {"train/loss": (steps, loss), "train/lr": (steps, lr), "train/grad_norm": (steps, 1 + 3 * np.exp(-steps / 200)),
              "val/loss": (ev, 2.6 + 1.0 * np.exp(-ev / 180))}
    rep = analyze(_run(series, {"vocab_size": 16, "model_type": "t5", "optimizer": "adamw"}))
    assert rep.run["context"]["first_is_initial"] is False  # (the LR at the first record is not small enough)
    assert [f for f in rep.findings if f.kind == "slow_convergence" and f.severity == "warning"]
    assert _causes(rep)[:1] == ["lr_too_low"]


def _creep_series() -> dict:
    """A byte-level LLaMA at lr 3e-6: the train loss creeps 5.54 -> 5.36 while the eval loss falls at each of its 8
    evaluations (5.54 -> 5.42)."""
    steps = np.arange(5, 401, 5)
    rng = np.random.default_rng(1)
    loss = 5.545 - 0.19 * (1 - np.exp(-steps / 150)) + 0.012 * rng.standard_normal(steps.size)
    lr = 3e-6 * np.minimum(1.0, steps / 40) * 0.5 * (1 + np.cos(np.pi * steps / 400))
    ev = np.arange(50, 401, 50)
    series = {"train/loss": (steps, loss), "train/lr": (steps, lr), "train/grad_norm": (steps, 3.5 + 0 * steps),
              "val/loss": (ev, 5.545 - 0.125 * (1 - np.exp(-ev / 130)))}
    return series


def test_a_loss_stuck_near_its_start_while_the_held_out_loss_falls_at_every_evaluation_is_a_tiny_step():
    """A byte-level LLaMA at lr 3e-6, no config: the train loss creeps 5.54 -> 5.36 (a plateau of the whole run to
    the detector) while the eval loss falls at each of its 8 evaluations (5.54 -> 5.42). Targets that do not match
    their inputs would not carry over to held-out text; a tiny step does: LR too low, not label misalignment."""
    rep = analyze(_run(_creep_series()))
    assert rep.verdict != "healthy"
    assert _causes(rep)[0] == "lr_too_low", [(d.cause, d.confidence) for d in rep.diagnoses]
    assert rep.diagnoses[0].confidence >= 0.5


def test_a_bad_batch_before_the_spike_detectors_baseline_is_seen_against_the_points_before_it():
    """An HF log of 80 window means (logging_steps 5): random-byte batches at steps 201-203 log 5.58 at step 205 where
    the model is at ~2.0, and 2.90 at step 305 where it is at ~1.8. Both lie within the first 64 points, before the
    spike detector's block baseline exists, and below the first loss 5.5 (no early rise): a short stretch judged
    against the 8 points before it. Per-batch losses as noisy as their level (0.24-1.13 around 0.7) are not."""
    steps = np.arange(5, 401, 5)
    rng = np.random.default_rng(3)
    loss = (1.75 + 3.75 * np.exp(-steps / 30)) * np.exp(0.04 * rng.standard_normal(steps.size))
    loss[40], loss[60] = 5.58, 2.9
    ev = np.arange(50, 401, 50)
    series = {"train/loss": (steps, loss), "val/loss": (ev, 2.3 + 0.8 * np.exp(-ev / 60)),
              "train/lr": (steps, 3e-3 * np.minimum(1.0, steps / 40) * 0.5 * (1 + np.cos(np.pi * steps / 400)))}
    rep = analyze(_run(series))
    got = [f for f in _serious(rep) if f.kind == "spike"]
    assert {f.start_step for f in got} == {205, 305}, [f.message for f in _serious(rep)]
    assert _causes(rep)[0] == "bad_data_batch"
    noisy = 0.7 * np.exp(0.45 * rng.standard_normal(steps.size))
    noisy[:6] = [2.3, 2.2, 2.1, 2.0, 1.8, 1.5]
    noisy[30] = 2.1
    rep = analyze(_run({"train/loss": (steps, noisy)}, fmt="lightning_csv"))
    assert not [f for f in _serious(rep) if f.kind == "spike"], [f.message for f in _serious(rep)]


def test_a_loss_stalled_far_above_its_reach_while_the_lr_sits_at_its_peak_is_an_lr_too_high():
    """A byte-level LLaMA at AdamW 0.3 (60x the norm) with cosine decay: the loss falls to ~3.0 in the warmup, sits
    there (-2 %) while the LR stays near its peak, and falls again only as the LR decays (2.75 at the end), where
    such models reach ~2.5 (0.45 ln 256) and the healthy runs 1.5-2.0. A healthy run falls through its peak."""
    steps = np.arange(10, 401, 10)
    lr = 0.3 * np.minimum(1.0, steps / 40) * 0.5 * (1 + np.cos(np.pi * np.clip(steps - 40, 0, None) / 360))
    rng = np.random.default_rng(2)
    stuck = 2.95 - 0.3 * np.clip(1 - lr / 0.3, 0, None) * (steps > 180)
    loss = np.where(steps < 40, 5.5 - 0.0625 * steps, stuck) + 0.04 * rng.standard_normal(steps.size)
    loss[0] = 4.0
    ev = np.arange(50, 401, 50)
    cfg = {"vocab_size": 256, "model_type": "llama", "optimizer": "adamw", "n_layer": 2, "n_embd": 64}
    series = {"train/loss": (steps, loss), "train/lr": (steps, lr), "val/loss": (ev, 3.35 - 0.0006 * ev)}
    rep = analyze(_run(series, cfg))
    assert [f for f in _serious(rep) if f.kind == "plateau" and f.evidence.get("type") == "peak_lr_stall"]
    assert _causes(rep)[0] == "lr_too_high", [(d.cause, d.confidence) for d in rep.diagnoses]
    healthy = dict(series, **{"train/loss": (steps, 1.6 + 3.9 * np.exp(-steps / 60) + 0.03 * rng.standard_normal(steps.size)),
                              "train/lr": (steps, lr / 100)})
    assert not [f for f in analyze(_run(healthy, cfg)).findings if f.evidence.get("type") == "peak_lr_stall"]


def test_a_loss_flattening_near_a_uniform_guess_while_the_lr_anneals_is_still_stuck():
    """A T5 with d_model 8 on 16 tokens: 3.1-3.3 at its first records (a from-scratch T5 starts a nat above ln 16 =
    2.77), then 2.7, 2.5 and flat at 2.32 while a linear schedule takes the LR to 0. A loss flattening as the LR anneals is where
    such a schedule converges, unless it converges at 0.84 ln V, hardly better than a uniform guess over the
    vocabulary: the model is stuck (here too small), whatever the schedule does."""
    steps = np.arange(10, 901, 10)
    loss = 2.31 + 0.6 * np.exp(-steps / 90) + 0.3 * np.exp(-steps / 300)
    lr = 1e-3 * np.minimum(1.0, steps / 45) * np.clip((901 - steps) / 855, 0, None)
    ev = np.arange(100, 901, 100)
    cfg = {"vocab_size": 16, "model_type": "t5", "optimizer": "adamw", "d_model": 8, "n_params": 664}
    series = {"train/loss": (steps, loss), "train/lr": (steps, lr), "val/loss": (ev, 2.31 + 0.3 * np.exp(-ev / 250)),
              "train/grad_norm": (steps, 0.2 + 0 * steps)}
    rep = analyze(_run(series, cfg))
    assert [f for f in _serious(rep) if f.kind == "plateau"], [f.message for f in rep.findings]
    assert _causes(rep)[:1] == ["capacity_too_small"], [(d.cause, d.confidence) for d in rep.diagnoses]


def test_a_creeping_loss_at_a_configured_tiny_lr_says_where_it_stands_once():
    """The creep of the test above with its config read (lr 3e-6 for a byte-level model): where the loss stands
    against its start is said once (it was said twice, against two different starts), and the held-out loss's run of
    falls is counted as falls between evaluations (7 over 8 evaluations, not 'at each of its 8')."""
    rep = analyze(_run(_creep_series(), {"vocab_size": 256, "lr": 3e-6, "optimizer": "adamw"}))
    d = rep.diagnoses[0]
    assert d.cause == "lr_too_low" and d.confidence >= 0.7, [(x.cause, x.confidence) for x in rep.diagnoses]
    assert sum(e.startswith("the loss is still at") for e in d.evidence) == 1, d.evidence
    assert any("fell 7 times in a row over its 8 evaluations" in e for e in d.evidence), d.evidence
