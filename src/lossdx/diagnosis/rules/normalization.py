"""BatchNorm instability (Qwen2.5 post-mortem: BatchNorm at small batches / shifting data)."""

from __future__ import annotations

import numpy as np

from ..engine import Evidence, Hit, Rule


def batchnorm_small_batch(ev: Evidence) -> Hit | None:
    norm = str(ev.cfg("normalization", "")).lower() + " " + str(ev.raw_value("model") or "").lower()
    if "batch" not in norm and "bn" not in norm.split("_"):
        return None
    bs = ev.cfg_num("batch_size")
    v = ev.series("val/loss")
    trouble = [k for k in ("spike", "divergence", "instability", "plateau") if ev.has(k)]
    jumpy = None
    if v is not None and len(v) >= 5:
        x = v.values[np.isfinite(v.values)]
        if x.size >= 5:
            rises = np.diff(x)
            jumpy = float(np.sum(rises[rises > 0]) / max(abs(x[0] - x.min()), 1e-12))
    if not (bs is not None and bs <= 8) and not (jumpy and jumpy > 0.5):
        return None
    if not trouble and not (jumpy and jumpy > 0.5):
        return None
    hit = Hit(0.5, [f"BatchNorm in the model (config {ev.raw_key('normalization') or 'normalization'} = "
                    f"{ev.cfg('normalization')!r})"])
    if bs is not None and bs <= 8:
        hit.evidence.append(f"batch size {int(bs)}: batch statistics over {int(bs)} sample(s) are noise, and the "
                            "running mean/variance used at eval time swing with them")
        hit.confidence = 0.75
    if jumpy and jumpy > 0.5:
        hit.evidence.append(f"eval-mode loss jumps back up by {100 * jumpy:.0f}% of its total descent over the run")
        hit.confidence += 0.1
    if trouble:
        hit.evidence.append(f"the training curve shows {', '.join(trouble)}")
    hit.fixes += ["use a batch of at least 16-32 per BatchNorm (or accumulate statistics across devices: SyncBatchNorm)",
                  "switch to GroupNorm / LayerNorm, which do not depend on the batch", "or lower the BatchNorm "
                  "momentum / freeze BN statistics when fine-tuning"]
    if bs is not None and bs <= 8:
        hit.patch["batch_size"] = 32
    return hit


RULES = (
    Rule("BATCHNORM_SMALL_BATCH", "batchnorm_instability",
         "Qwen2.5 post-mortem: BatchNorm unstable with small batches or shifting data", batchnorm_small_batch),
)
