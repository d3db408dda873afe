"""When no rule explains a problem: the usual causes of each symptom, ranked by how often they cause it
(handbook: "Loss Divergence" / "NaN Loss" / "Loss Spike" / "Plateau" sections list them in that order), at
low confidence, with what to log or check to decide. A problem verdict never comes without a ranked list.

Data, not code: ``FALLBACKS[kind]`` lists ``(cause, confidence, why)``; the engine uses it only for the
serious findings that no rule explained.
"""

from __future__ import annotations

FALLBACKS: dict[str, tuple[tuple[str, float, str], ...]] = {
    "nan": (("fp16_precision", 0.3, "float16 overflow is the most common source of a NaN loss"),
            ("lr_too_high", 0.25, "a too-high LR blows the weights up until the loss overflows"),
            ("loss_nan_from_data", 0.2, "one batch whose loss is 0/0 or log(0) (e.g. fully masked) makes it NaN")),
    "divergence": (("lr_too_high", 0.35, "the handbook's first cause of a divergence"),
                   ("gradient_explosion", 0.2, "gradients growing without clipping"),
                   ("missing_warmup", 0.15, "an unwarmed start at full LR")),
    "spike": (("bad_data_batch", 0.3, "an anomalous batch is the usual cause of an isolated spike"),
              ("lr_too_high", 0.25, "repeated spikes mean the LR is near its stability limit"),
              ("gradient_explosion", 0.15, "a gradient burst without clipping")),
    "instability": (("lr_too_high", 0.35, "growing noise or gradient norm: updates too large to settle"),
                    ("gradient_explosion", 0.2, "gradients growing without bound")),
    "grad_norm": (("gradient_explosion", 0.35, "gradient-norm bursts"),
                  ("lr_too_high", 0.25, "updates too large")),
    "plateau": (("lr_too_low", 0.25, "an LR too small to move the weights"),
                ("capacity_too_small", 0.2, "a model too small for the data"),
                ("lr_too_high", 0.15, "an LR so high the optimizer bounces around the valley")),
    "slow_convergence": (("lr_too_low", 0.4, "slow descent is the signature of a small LR"),),
    "overfitting": (("overfitting_small_data", 0.45, "validation rising while training falls"),),
    "too_good": (("label_misalignment", 0.35, "targets that leak the input or are masked out"),
                 ("overfitting_small_data", 0.25, "memorising a small training set")),
    "init_loss": (("bad_init", 0.5, "a first loss far from a uniform guess"),),
    "lr_schedule": (("lr_schedule_bug", 0.35, "an LR trace that deviates from its schedule"),),
    "data_order": (("data_order", 0.5, "level shifts of domain-ordered batches"),),
    "throughput": (("hardware_fault", 0.3, "a slower step with an unchanged model points at the machine"),),
}

CHECKS: dict[str, str] = {
    "nan": "log the dtype, the loss scale and the gradient norm every step; re-run the NaN step in float32",
    "divergence": "re-run the last 1000 steps with half the LR: if the loss then holds, the LR was the cause",
    "spike": "log the gradient norm every step and the data indices of each batch (the live guard does both)",
    "instability": "log the gradient norm and the LR every step",
    "grad_norm": "log the loss scale (fp16) and the LR beside the gradient norm",
    "plateau": "run a short LR sweep (x0.3, x1, x3) and compare the curves after ~1000 steps",
    "slow_convergence": "run a short LR sweep upward (x3, x10)",
    "overfitting": "log the dataset size and the number of epochs; keep the best-validation checkpoint",
    "too_good": "print a few (input, target) pairs and count the unmasked target tokens per batch",
    "init_loss": "print the loss of the untrained model on one batch: it should be ~ln(V)",
    "lr_schedule": "print the LR of each step against the global step",
    "data_order": "check that the data loader shuffles across sources",
    "throughput": "compare the node's GPU clocks, ECC counters and data-loader wait time before and after",
}

#: the first thing to try for each cause when the log cannot pin it (the seeds' standard fixes)
FIXES: dict[str, str] = {
    "fp16_precision": "train in bfloat16 instead of float16, or keep float32 master weights with dynamic loss scaling",
    "lr_too_high": "halve the peak learning rate and clip gradients at max_norm=1.0",
    "loss_nan_from_data": "skip a batch whose loss is not finite and log the number of unmasked targets per batch",
    "gradient_explosion": "clip gradients at max_norm=1.0",
    "missing_warmup": "warm the LR up linearly over 0.5-2% of the steps",
    "bad_data_batch": "inspect the batches at the spike steps and filter garbage / repeated documents",
    "lr_too_low": "raise the learning rate x3-x10 and compare after ~1000 steps",
    "capacity_too_small": "scale the model up (more layers / wider), ~20 tokens per parameter",
    "overfitting_small_data": "stop at the best validation step (early stopping) and get more data or train fewer epochs",
    "label_misalignment": "check that targets are the inputs shifted by one (LM) or paired with their inputs",
    "bad_init": "initialise with std 0.02 and scale residual projections by 1/sqrt(2*n_layer)",
    "lr_schedule_bug": "compute the LR from the global step and set the decay horizon to the run length",
    "data_order": "shuffle the training data globally before batching",
    "hardware_fault": "re-run the same steps on another node; check GPU health and the data loader",
}
