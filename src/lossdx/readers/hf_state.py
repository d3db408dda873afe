"""Hugging Face ``trainer_state.json``: ``log_history`` rows of train logs, eval logs and a final summary.

Quirks handled: bare ``NaN``/``Infinity`` literals; eval rows (``eval_*`` keys, several eval sets as
``eval_<set>_loss``); the final summary row (``train_runtime``, ``train_loss`` = mean over the run) that
must not become a loss point; ``loss`` being the mean over ``logging_steps`` steps, with NaN filtered
out by ``logging_nan_inf_filter`` while ``grad_norm`` still shows it.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from ..exceptions import CorruptLog
from ..model import Run, SeriesBuilder
from .base import ensure_loss, make_run, read_text

_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos"}
_NON_METRIC = {"step", "epoch_step"}


def sniff(head: bytes, path: str) -> float:
    h = head.lstrip()
    if not h.startswith(b"{"):
        return 0.0
    if b'"log_history"' in head:
        return 0.98
    if b'"global_step"' in head and b'"best_metric"' in head:
        return 0.9
    return 0.0


def _number(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(v.strip().lower().replace("infinity", "inf"))
    return None


def read(path: str) -> list[Run]:
    text = read_text(path, cap_lines=False)  # one JSON document: a compact one is a single long line
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptLog(f"{path}: invalid JSON at line {err.lineno} column {err.colno} ({err.msg})") from None
    except RecursionError:
        raise CorruptLog(f"{path}: JSON nested too deeply to be a trainer_state.json") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("log_history"), list):
        raise CorruptLog(f"{path}: no log_history list; not a trainer_state.json")
    b = SeriesBuilder()
    last_step = 0.0
    summary: dict[str, float] = {}
    for i, row in enumerate(doc["log_history"]):
        if not isinstance(row, dict):
            continue
        step = _number(row.get("step"))
        if step is None or not math.isfinite(step):
            step = last_step
        last_step = step
        if _SUMMARY_KEYS & row.keys() and "loss" not in row:
            summary = {k: v for k, v in row.items() if _number(v) is not None}
            continue
        is_eval = any(k.startswith("eval_") for k in row)
        for k, v in row.items():
            if k in _NON_METRIC:
                continue
            x = _number(v)
            if x is None:
                continue
            if is_eval and k == "epoch":
                continue  # the train rows carry epoch already
            if k.startswith("eval_") and re.search(r"_(runtime|samples_per_second|steps_per_second)$", k):
                k = "perf/" + k
            b.add(k, step, x)
    logging_steps = doc.get("logging_steps")
    meta: dict = {
        "log_window": int(logging_steps) if isinstance(logging_steps, (int, float)) and logging_steps > 1 else 1,
        "notes": [],
    }
    if meta["log_window"] > 1:
        meta["notes"].append(f"train loss is a mean over {meta['log_window']}-step windows (HF logging_steps)")
    meta["notes"].append("HF's logging_nan_inf_filter (on by default) hides NaN losses; grad_norm still shows them")
    for k in ("global_step", "max_steps", "num_train_epochs", "train_batch_size", "eval_steps", "save_steps"):
        if _number(doc.get(k)) is not None:
            meta[f"hf_{k}"] = doc[k]
    if summary:
        meta["hf_summary"] = summary
    run = make_run(b, path, "hf_trainer_state", meta)
    if not run.series:
        raise CorruptLog(f"{path}: log_history holds no metrics")
    if "val/loss" not in run.series:
        sets = sorted(k for k in run.series if k.startswith("val/") and k.endswith("_loss"))
        if sets:  # several eval sets (eval_<set>_loss) and no plain eval_loss: the first stands for validation
            s = run.series[sets[0]]
            run.series["val/loss"] = type(s)("val/loss", s.steps, s.values, s.wall_times)
            run.meta["notes"].append(f"validation loss taken from '{sets[0]}' (of {len(sets)} eval sets)")
    loss = run.series.get("train/loss")
    if logging_steps is None and loss is not None and len(loss) > 2:
        # older trainer_state.json files lack logging_steps: the logging interval is the window
        window = int(np.median(np.diff(loss.steps)))
        run.meta["log_window"] = max(1, window)
        if window > 1:
            run.meta["notes"].insert(0, f"train loss is a mean over ~{window}-step windows (HF logging interval)")
    return [ensure_loss(run, path)]
