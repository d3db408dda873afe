"""What each cause is, how it shows in the curves, how to confirm it and how to fix it (``lossdx explain``).
The text follows the seeds (the handbook, the Qwen2.5 post-mortem, the nanoGPT plateau analysis)."""

from __future__ import annotations

EXPLANATIONS: dict[str, dict[str, str]] = {
    "lr_too_high": {
        "what": "The learning rate is too large for the model and batch: each update overshoots the valley.",
        "curves": "Loss rising above its start in the first steps, spikes, grad norm growing over training, a plateau "
                  "well above where the same model gets with a smaller LR, or divergence (a rise that never recovers).",
        "confirm": "Re-run ~1000 steps with LR x0.5 and x0.3: a smoother, lower curve confirms it (a 3-5 value sweep).",
        "fix": "Halve the LR (the handbook's first move on divergence); pre-training usually 1e-4..3e-4, fine-tuning "
               "1e-5..5e-5; enable clipping at 1.0; add z-loss 1e-4 if logits grow.",
    },
    "lr_too_low": {
        "what": "The learning rate is so small that the optimizer barely moves.",
        "curves": "A from-scratch run that keeps falling slowly and steadily, far above what it should reach; no fast "
                  "descent in the first 5-10% of steps.",
        "confirm": "A short run with LR x10 descends much faster without instability.",
        "fix": "Raise the LR toward 1e-4..3e-4 (pre-training) and confirm with a 3-5 value sweep of ~1000 steps.",
    },
    "missing_warmup": {
        "what": "The LR starts at its peak with no warmup: the first updates, with badly-scaled Adam statistics, are "
                "too large.",
        "curves": "Loss jumping up or stalling in the first steps, grad-norm spikes early, an LR trace that starts at its "
                  "maximum.",
        "confirm": "The logged LR at step 0 equals the peak; a run with warmup avoids the early damage.",
        "fix": "Warm up linearly over 0.5-2% of the steps (e.g. 30 of 1500; LLaMA-2 used 2000).",
    },
    "lr_schedule_bug": {
        "what": "The schedule in code or config is not what was intended: restarts, jumps, a decay horizon shorter "
                "than the run.",
        "curves": "The LR trace jumping back up after decaying (often with the loss worsening right after), or sitting "
                  "at its floor for a large part of the run.",
        "confirm": "Plot the logged LR against the step; compare lr_decay_iters with max_iters.",
        "fix": "Set the decay horizon to the run length and compute the LR from the global step, not a counter that "
               "resets (on resume, per epoch).",
    },
    "gradient_explosion": {
        "what": "Gradients grow exponentially through depth or time and one update wrecks the weights.",
        "curves": "Gradient norm growing by orders of magnitude (or to Inf) before the loss jumps or turns NaN.",
        "confirm": "Log the grad norm per layer: the growth concentrates in the deepest layers / earliest in backprop.",
        "fix": "Clip gradients at max_norm 1.0, lower the LR, scaled init (std 0.02, residual projections / "
               "sqrt(2L)), normalisation and residual connections in deep stacks.",
    },
    "bad_init": {
        "what": "Weights initialised too large (or the loss computed wrong), so the untrained model is confidently "
                "wrong.",
        "curves": "First loss far above ln(V) (a uniform guess over V classes), huge early gradient norms, a long "
                  "climb down.",
        "confirm": "The untrained model's loss on one batch should be ~ln(V); print the logits' scale.",
        "fix": "std 0.02 init, zero biases, residual projections scaled by 1/sqrt(2*n_layer); check the softmax/log is "
               "applied once and the loss averaged over tokens.",
    },
    "fp16_precision": {
        "what": "float16 overflows (max 65504) or underflows without working loss scaling.",
        "curves": "NaN/Inf right at the start or after a growth phase, a loss scale collapsing toward 1, many "
                  "overflow-skipped steps.",
        "confirm": "The same run in bfloat16 or float32 does not produce the NaN.",
        "fix": "Train in bfloat16 (same range as float32, no scaling needed); with float16 keep float32 master weights "
               "and dynamic loss scaling (GradScaler).",
    },
    "bad_data_batch": {
        "what": "A corrupted or anomalous batch (garbage text, repeated n-grams, wrong encoding).",
        "curves": "An isolated loss spike, often with a grad-norm spike at the same step, back to trend within a few "
                  "steps.",
        "confirm": "Look at the samples of that step; re-running from a checkpoint with the same batch reproduces it.",
        "fix": "Clip at 1.0, filter the data (repeated n-grams, non-text), skip the batch (the live guard records its "
               "offsets).",
    },
    "loss_nan_from_data": {
        "what": "The loss itself is NaN for some batch: a fully masked target (0/0), log(0), a division by zero.",
        "curves": "A NaN at one step that disappears at the next, with nothing building up before it.",
        "confirm": "Count unmasked target tokens of that batch; evaluate the loss on it alone.",
        "fix": "Skip steps with zero target tokens, use a safe reduction (sum / max(n, 1)), clamp log inputs.",
    },
    "nan_in_input": {
        "what": "NaN/Inf values in the input features reach the network and poison the weights.",
        "curves": "A healthy curve that turns NaN at one step and stays NaN, without a spike or grad growth before.",
        "confirm": "torch.isfinite(batch).all() on the batches around that step.",
        "fix": "Validate and clean the dataset once before training; assert finite inputs in the loader; make the guard "
               "skip the step instead of applying NaN gradients.",
    },
    "label_misalignment": {
        "what": "Targets wrong, shuffled relative to inputs, or leaking the input (no next-token shift).",
        "curves": "Train loss -> ~0 while validation explodes (leak), or a loss stuck from the start at the entropy of "
                  "the labels alone (shuffled labels).",
        "confirm": "Print (input, target) pairs; single-batch overfit test; compare the plateau with the unigram entropy.",
        "fix": "Shift targets by one for language modelling (y = x[1:]); fix the pairing of samples and labels.",
    },
    "overfitting_small_data": {
        "what": "The dataset is small or repeated many epochs: the model memorises it.",
        "curves": "Validation loss rising after its minimum while training loss keeps falling; many epochs over the data.",
        "confirm": "tokens per iteration x iterations / dataset tokens = epochs >> 1.",
        "fix": "More or more diverse data, early stopping at the best validation step, dropout 0.05-0.1 and weight decay "
               "0.1 for fine-tuning, a smaller model or LoRA.",
    },
    "capacity_too_small": {
        "what": "The model is too small for the data: it has learned what it can.",
        "curves": "Loss flattening early at a high level with train and validation close together (underfitting).",
        "confirm": "Tokens per parameter far above Chinchilla's ~20; a larger model on the same data goes lower.",
        "fix": "Scale the model up (layers / width) keeping ~20 tokens per parameter.",
    },
    "over_regularization": {
        "what": "Weight decay or dropout so strong that the model cannot fit.",
        "curves": "A higher plateau than expected, gradient norm growing while the loss falls slowly.",
        "confirm": "The config's weight_decay / dropout far above 0.01-0.1 / 0.1.",
        "fix": "Weight decay 0.01-0.1 (not on biases / LayerNorm), dropout 0 for pre-training and 0.05-0.1 for "
               "fine-tuning.",
    },
    "data_order": {
        "what": "Data not shuffled: batches come in runs from one source/domain.",
        "curves": "Loss shifting level and staying there for tens of steps, validation (mixed data) above train.",
        "confirm": "Check the loader's shuffle; look at the sources of consecutive batches.",
        "fix": "Shuffle globally or interleave shards; use a shuffle buffer longer than a same-source run.",
    },
    "batchnorm_instability": {
        "what": "BatchNorm statistics are unreliable at tiny batches or shifting data.",
        "curves": "Eval-mode loss jumping around while training continues, training loss spiking.",
        "confirm": "Batch size below ~8 per BatchNorm; eval with batch statistics vs running statistics differ a lot.",
        "fix": "Batch >= 16-32 per BN (or SyncBatchNorm), GroupNorm/LayerNorm instead, lower BN momentum or freeze "
               "BN statistics when fine-tuning.",
    },
    "class_imbalance": {
        "what": "Some classes are far rarer than others; the majority dominates the gradient.",
        "curves": "Loss oscillating as rare-class batches appear, a plateau set by the majority class.",
        "confirm": "Class counts / per-class loss.",
        "fix": "Class-weighted loss or focal loss, over/under-sampling, augmenting the rare classes.",
    },
    "hardware_fault": {
        "what": "A faulty device or silent data corruption, or a slow node.",
        "curves": "A spike that does not reproduce from the same checkpoint and batch, a throughput drop with a healthy "
                  "loss.",
        "confirm": "Re-run the same steps on another device (Megatron's rerun state machine); check ECC / clocks.",
        "fix": "Replace or drain the device; restart from the last good checkpoint.",
    },
}


def explain(cause: str) -> str:
    e = EXPLANATIONS[cause]
    return (f"{cause}\n\n  what it is:     {e['what']}\n  in the curves:  {e['curves']}\n"
            f"  to confirm:     {e['confirm']}\n  to fix:         {e['fix']}\n")
