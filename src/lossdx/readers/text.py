"""Training stdout in its many dialects, sniffed line by line.

Dedicated parsers cover the formats whose quirks matter (nanoGPT, build-nanogpt, modded-nanogpt,
llm.c, Megatron-LM / DeepSpeed / GPT-NeoX, fairseq, HF console dicts, Keras); a generic key/value
parser covers the long tail (``step 12 | loss: 3.2``, ``Iter 25: Train loss 1.59``, caffe, char-rnn,
OpenNMT, tqdm bars ...). Every parser turns a line into ``(step, {raw_name: value})`` and
:func:`lossdx.keys.canonical` names the metrics afterwards.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from ..exceptions import CorruptLog, InputError
from ..keys import STEP_TIME, canonical
from ..model import Run, SeriesBuilder
from ._floats import parse_floats
from .base import Progress, decode_text, ensure_loss, iter_line_blocks, looks_binary, make_run, open_regular, read_text

# Every regex here sees user text: each is linear in the line (possessive quantifiers, keys that start only
# where a token starts, segments anchored at their separator), and lines are capped (base.MAX_LINE_BYTES).
# tests/readers/test_repro_readers.py times each on hostile lines.
NUM = r"[-+]?(?:(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?|nan|inf(?:inity)?)"
_NUM_RE = re.compile(NUM, re.I)

# decoration that precedes the payload: quote marks, timestamps, rank prefixes, log levels
_PREFIX = re.compile(
    r"^(?:\s*>\s?)*"
    r"(?:\s*\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?\]?\s*(?:\|?\s*\w+\s*\|\s*[\w.]+\s*\|)?)?"
    r"(?:\s*\[(?:default|rank)\d+\]:)?"
    r"(?:\s*\d+:\s+(?=iter|step))?",
    re.I,
)


def to_float(s: str) -> float:
    s = s.strip().lower()
    if s in ("nan", "-nan", "+nan"):
        return math.nan
    if s.lstrip("+-") in ("inf", "infinity"):
        return -math.inf if s.startswith("-") else math.inf
    return float(s)


def _strip(line: str) -> str:
    return _PREFIX.sub("", line, count=1).strip()


@dataclass
class Record:
    step: float | None
    values: dict[str, float]
    step_after: bool = False  # belongs to the next step line (build-nanogpt prints val before the step)
    # (epoch, batch, batches per epoch, epochs count from 0 in this dialect): the step comes later
    epoch_batch: tuple[int, int, int, bool] | None = None


@dataclass
class TextFormat:
    name: str
    sniff_re: re.Pattern
    parse: Callable[[str], Record | None]
    weight: float = 1.0  # tie-break: specific formats beat the generic one


# --- nanoGPT: "iter 10: loss 3.22, time 893.76ms, mfu 16.68%" and "step 50: train loss 3.8, val loss 4.2"
_NANO_ITER = re.compile(rf"^iter\s+(\d+):\s*loss\s+({NUM})(?:,\s*time\s+({NUM})\s*ms)?(?:,\s*mfu\s+({NUM})%)?", re.I)
_NANO_EVAL = re.compile(rf"^step\s+(\d+):\s*train loss\s+({NUM}),\s*val loss\s+({NUM})", re.I)


def _parse_nanogpt(line: str) -> Record | None:
    m = _NANO_ITER.match(line)
    if m:
        vals = {"train/loss": to_float(m.group(2))}
        if m.group(3):
            vals["perf/step_time"] = to_float(m.group(3))
        if m.group(4) and to_float(m.group(4)) >= 0:  # nanoGPT prints -100% until its MFU estimate warms up
            vals["perf/mfu"] = to_float(m.group(4))
        return Record(int(m.group(1)), vals)
    m = _NANO_EVAL.match(line)
    if m:
        return Record(int(m.group(1)), {"train/loss_eval": to_float(m.group(2)), "val/loss": to_float(m.group(3))})
    return None


# --- build-nanogpt log.txt: "250 val 6.1696" / "250 train 6.160410" / "250 hella 0.2426"
_BUILD_LOGTXT = re.compile(rf"^(\d+)\s+(train|val|hella)\s+({NUM})\s*$", re.I)


def _parse_build_logtxt(line: str) -> Record | None:
    m = _BUILD_LOGTXT.match(line)
    if not m:
        return None
    name = {"train": "train/loss", "val": "val/loss", "hella": "val/hellaswag_acc"}[m.group(2).lower()]
    return Record(int(m.group(1)), {name: to_float(m.group(3))})


# --- modded-nanogpt: "step:125/1750 val_loss:4.2 train_time:61ms step_avg:nanms" (step_avg nan is not a NaN loss)
_MODDED = re.compile(r"^step:(\d+)/(\d+)\s+(.*)$")
_MODDED_KV = re.compile(rf"(?<!\w)(\w++):({NUM})(ms|s)?", re.I)


def _parse_modded(line: str) -> Record | None:
    m = _MODDED.match(line)
    if not m:
        return None
    vals = {}
    for k, v, unit in _MODDED_KV.findall(m.group(3)):
        scale = 1000.0 if unit == "s" else 1.0
        if k == "train_time":
            vals["perf/train_time_ms"] = to_float(v) * scale
        elif k == "step_avg":
            x = to_float(v) * scale
            if math.isfinite(x):
                vals["perf/step_time_avg"] = x  # a running mean since the start, not the time of this step
        else:
            vals[k] = to_float(v)
    return Record(int(m.group(1)), vals) if vals else None


# --- llm.c: "s:0 trl:10.96 lr:0.000001 norm:15.37" and "s:0 tel:11.0092"
_LLMC = re.compile(r"^s:(\d+)\s+(t[re]l:.*)$")


def _parse_llmc(line: str) -> Record | None:
    m = _LLMC.match(line)
    if not m:
        return None
    vals = {k: to_float(v) for k, v, _u in _MODDED_KV.findall(m.group(2))}
    return Record(int(m.group(1)), vals) if vals else None


# --- build-nanogpt stdout: "step     0 | loss: 10.955010 | lr 8.39e-07 | norm: 15.3421 | dt: 235.83ms | tok/sec: 22264.81"
_BUILD_STEP = re.compile(rf"^step\s+(\d+)\s*\|\s*loss:\s*({NUM})(.*)$", re.I)
_BUILD_VAL = re.compile(rf"^validation loss:\s*({NUM})", re.I)
_BUILD_HELLA = re.compile(rf"^HellaSwag accuracy:\s*\d+/\d+=({NUM})", re.I)
_PIPE_KV = re.compile(rf"(?:^|\|)[^|A-Za-z]*+([A-Za-z][\w/]*+(?: ++[\w/]++)*?):?\s++({NUM})\s*+(ms)?\s*+(?=\||$)")


def _parse_build_stdout(line: str) -> Record | None:
    m = _BUILD_STEP.match(line)
    if m:
        vals = {"train/loss": to_float(m.group(2))}
        for k, v, _u in _PIPE_KV.findall(m.group(3).strip(" |") + " "):
            vals[k.strip()] = to_float(v)
        return Record(int(m.group(1)), vals)
    m = _BUILD_VAL.match(line)
    if m:
        return Record(None, {"val/loss": to_float(m.group(1))}, step_after=True)
    m = _BUILD_HELLA.match(line)
    if m:
        return Record(None, {"val/hellaswag_acc": to_float(m.group(1))}, step_after=True)
    return None


# --- HF console: "{'loss': 1.112, 'grad_norm': nan, 'learning_rate': 0.0002, 'epoch': 0.06}"
_HF_DICT = re.compile(r"^\{\s*'[\w/]+':.*\}")
# recent transformers print the numbers of the console dict as strings: {'loss': '3.545', 'grad_norm': '1.224'}
_HF_KV = re.compile(rf"'([\w/.\-]+)':\s*'?({NUM})'?", re.I)


def _parse_hf_console(line: str) -> Record | None:
    m = _HF_DICT.match(line)
    if not m:
        return None
    vals = {k: to_float(v) for k, v in _HF_KV.findall(m.group(0))}
    if not vals or "train_runtime" in vals:
        return None  # the end-of-training summary: its train_loss is a run mean, not a point
    step = vals.pop("step", None)
    return Record(step, vals)


# --- Megatron-LM / DeepSpeed / GPT-NeoX: records joined by _join_megatron before parsing
_MEG_ITER = re.compile(r"iteration\s+(\d+)\s*/\s*(\d+)\s*\|(.*)$", re.I)
_MEG_VAL = re.compile(r"validation loss at iteration\s+(\d+)\s*\|(.*)$", re.I)
_MEG_KV = re.compile(rf"(?:^|\|)[^|A-Za-z]*+([A-Za-z][\w()/\-]*+(?: ++[\w()/\-]++)*?)\s*+:\s*+({NUM})\s*+(?=\||$)",
                     re.I)
_MEG_OVERFLOW = re.compile(r"OVERFLOW!", re.I)
_MEG_OVERFLOW_TO = re.compile(r"reducing to\s*+(" + NUM + ")", re.I)


#: Fields Megatron prints after the losses of an iteration line: a line that reached one of them had its losses
#: printed, or left out.
_MEG_AFTER_LOSS = ("loss scale", "grad norm", "num zeros", "params norm", "number of skipped iterations",
                   "number of nan iterations")


def _megatron_values(payload: str) -> dict[str, float]:
    vals: dict[str, float] = {}
    for k, v in _MEG_KV.findall(payload):
        k = " ".join(k.split())
        x = to_float(v)
        if k.endswith("(s)"):
            k, x = k[:-3] + "(ms)", x * 1000.0
        vals[k] = x
    return vals


class _MegatronState:
    """Megatron iteration lines, remembering whether the log prints a loss: Megatron's ``training_log`` prints
    a loss only when its interval mean is ``> 0``, so a NaN mean leaves the loss out of the line. With bf16
    nothing is skipped and ``number of nan iterations`` stays 0 (it counts NaNs among skipped iterations only),
    so a line without the loss that its neighbours print, with no iteration skipped, is a NaN loss."""

    def __init__(self) -> None:
        self.loss_seen = False

    def __call__(self, line: str) -> Record | None:
        m = _MEG_ITER.search(line)
        if m is None:
            return _parse_megatron(line)
        vals = _megatron_values(m.group(3))
        has_loss = "lm loss" in vals or any("loss" in k and "scale" not in k for k in vals)
        if has_loss:
            self.loss_seen = True
        elif vals.get("number of nan iterations", 0) > 0:
            vals["lm loss"] = math.nan
        elif self.loss_seen and vals.get("number of skipped iterations", 0) == 0 \
                and any(k in vals for k in _MEG_AFTER_LOSS):
            # (an fp16 overflow skips the iteration on purpose: skipped > 0, no loss and no NaN)
            vals["lm loss"] = math.nan
        return Record(int(m.group(1)), vals)


def _parse_megatron(line: str) -> Record | None:
    m = _MEG_ITER.search(line)
    if m:
        vals = _megatron_values(m.group(3))
        # Megatron leaves the loss out of a NaN iteration and counts it instead
        # (skipped iterations are fp16 loss-scale overflows, which Megatron skips on purpose: no loss, no NaN)
        if "lm loss" not in vals and not any("loss" in k and "scale" not in k for k in vals):
            if vals.get("number of nan iterations", 0) > 0:
                vals["lm loss"] = math.nan
        return Record(int(m.group(1)), vals)
    m = _MEG_VAL.search(line)
    if m:
        vals = {}
        for k, v in _MEG_KV.findall(m.group(2)):
            k = " ".join(k.split())
            if k.endswith("loss value"):
                vals["val/loss"] = to_float(v)
            elif k.endswith("PPL"):
                vals["val/ppl"] = to_float(v)
        return Record(int(m.group(1)), vals) if vals else None
    m = _MEG_OVERFLOW.search(line)
    if m and "attempted loss scale:" in line.lower():
        to = _MEG_OVERFLOW_TO.search(line, m.end())
        if to:
            return Record(None, {"train/overflow": 1.0, "train/loss_scale_after_overflow": to_float(to.group(1))},
                          step_after=True)
    return None


def _join_megatron(lines: list[str]) -> list[str]:
    """Re-join records that a terminal or a paste wrapped over several lines."""
    out: list[str] = []
    for ln in lines:
        s = ln.strip()
        if out and s and not re.search(r"iteration\s+\d+\s*/|validation loss at|OVERFLOW|^\W*$", s, re.I) \
                and re.search(r"\|\s*+$|[a-z]$|:\s*+$", out[-1]) and "|" in out[-1] \
                and not s.startswith(("[", "-", "#")) and len(out[-1]) < 4096:  # no record is longer
            out[-1] = out[-1].rstrip() + " " + s
        else:
            out.append(ln)
    return out


# --- fairseq (legacy, hydra and tqdm layouts) and fairseq-lua
_FS_UPDATES = re.compile(r"num_updates[=\s]++(\d++)")
_FS_LUA_UPDATES = re.compile(r"(?<!\d)(\d++)\s++updates\b")
# (a key may hold a slash: fairseq-lua's "words/s 4328", "s/checkpnt 767")
_FS_KV = re.compile(rf"(?<![\w/])([A-Za-z_][\w/]*+(?: \w++){{0,3}}?)(?:=|\s++)({NUM})%?\s*+(?=[,|\]]|$)", re.I)


def _parse_fairseq(line: str) -> Record | None:
    m = _FS_UPDATES.search(line) or _FS_LUA_UPDATES.search(line)
    if not m:
        return None
    step = int(m.group(1))
    payload = line
    bar = line.find("it/s,")  # tqdm: the metrics follow the rate
    if bar >= 0:
        payload = line[bar + 5:]
    is_valid = "valid on" in line or "validloss" in line or re.search(r"\|\s*valid\s*\|", line) is not None
    is_epoch_summary = re.search(r"\|\s*train\s*\||^\|?\s*epoch \d+ \| loss", line) is not None
    vals: dict[str, float] = {}
    for k, v in _FS_KV.findall(payload.replace("|", ",")):
        k = k.strip()
        if k in ("num_updates", "updates", "epoch", "wall", "train_wall", "oom", "bsz", "wpb", "best") or \
                k.startswith(("epoch", "checkpoint")):
            continue
        if k == "trainloss":
            k = "loss"
        if is_valid and not k.startswith(("valid", "test")):
            k = "valid_" + k
        elif is_epoch_summary and k in ("loss", "nll_loss", "ppl"):
            k = f"train/{k}_epoch"
        vals[k] = to_float(v)
    return Record(step, vals) if vals else None


# --- Keras fit(): "Epoch 3/150" then "518/518 [====] - 536s 1s/step - loss: 6.5920 - val_loss: 6.2037"
_KERAS_EPOCH = re.compile(r"^Epoch\s+(\d+)/(\d+)\s*$")
_KERAS_LINE = re.compile(r"^(\d+)/(\d+)\s+\[[=>.]+\]")
# verbose=2: one line per epoch, no bar: " - 4s - loss: 0.31 - acc: 0.90" (Keras 2),
# "1875/1875 - 4s - loss: 0.31 - accuracy: 0.91 - 4s/epoch - 2ms/step" (TF 2), "1875/1875 - 4s - 2ms/step - ..."
_KERAS_V2 = re.compile(rf"^(?:\d++/\d++\s++)?-?\s*+{NUM}\s*+(?:ms|s|m)\s++-\s")
_KERAS_KV = re.compile(rf"(?<!\w)(\w++):\s*+({NUM})")


class _KerasState:
    def __init__(self) -> None:
        self.epoch: int | None = None

    def __call__(self, line: str) -> Record | None:
        m = _KERAS_EPOCH.match(line)
        if m:
            self.epoch = int(m.group(1))
            return None
        m = _KERAS_LINE.match(line)
        if m and self.epoch is not None:
            if m.group(1) != m.group(2):
                return Record(self.epoch, {})  # a progress line within the epoch: understood, superseded
            tail = line[m.end():]  # the epoch's final line
            return Record(self.epoch, {k: to_float(v) for k, v in _KERAS_KV.findall(tail) if k != "ETA"})
        m = _KERAS_V2.match(line)
        if m and self.epoch is not None:
            vals = {k: to_float(v) for k, v in _KERAS_KV.findall(line[m.end() - 1:]) if k != "ETA"}
            return Record(self.epoch, vals) if vals else None
        return None


# --- generic "key: value" lines
_GEN_KV = re.compile(
    rf"(?<![A-Za-z0-9_./\-])(?P<key>[A-Za-z_][A-Za-z0-9_./\-]*+(?: [A-Za-z][A-Za-z0-9_./\-]*+){{0,3}})"
    rf"(?:\s*+[:=]\s*+|\s++)(?P<val>{NUM})(?P<unit>ms\b|s\b|%)?",
    re.I,
)
_STEP_KEYS = {"step", "steps", "iter", "iters", "iteration", "iterations", "it", "global step", "global_step",
              "num_updates", "update", "updates", "s"}
_REVERSE_STEP = re.compile(r"\b(\d++)\s++(?:iter|iters|iteration|step|steps|updates)\b", re.I)
_EPOCH_BATCH = re.compile(
    r"epoch\s*+[:#]?\s*+\[?\s*+(\d++)(?:\s*+/\s*+\d++)?\s*+\]?\s*+[:,\-]?\s*+(?:[^\d\[(|]*+\|\s*+)?"
    r"(?:\[?(?:batch|step|iter(?:ation)?|it)s?\s*+[:#]?\s*+)?[\[(]?\s*+(\d++)\s*+/\s*+(\d++)",
    re.I)
# "   100 | loss 4.3210 | lr 3.00e-04 | 152.3 ms": a bare step number opens a pipe-separated record
_ZERO_BASED_EPOCHS = re.compile(r"epoch:\s*+\[\d++\]\s*+\[", re.I)
_LIGHTNING_BAR = re.compile(r"^Epoch\s++(\d++):\s*+\d++%\|[^|]{0,200}+\|\s*+(\d++)/(\d++)\s*+\[", re.I)
_LEADING_PIPE_STEP = re.compile(r"^(\d++)\s*+\|")
_PIPE_MS = re.compile(rf"\|\s*+({NUM})\s*+ms\s*+(?=\||$)")
#: Metrics whose raw name says what they are but not in words lossdx knows:
#: canonical(raw name) -> (the series it stands for, what it is)
_RENAMED = {"grad/param_norm": ("train/grad_norm", "char-rnn's 'grad/param norm' (the gradient norm divided by the "
                                                   "parameter norm, a ratio) read as train/grad_norm")}
_LEADING_FRACTION = re.compile(r"^(\d+)\s*/\s*(\d+)\b")


#: "seconds for 100 batch: 45.91", "ms per 10 steps = 812": the time of N steps, whatever the program
_TIME_FOR_N = re.compile(rf"(?<![\w/])(ms|milliseconds|s|secs?|seconds)\s++(?:for|per)\s++(\d++)\s++"
                         rf"(?:batch(?:es)?|steps?|iter(?:ation)?s?)\s*+[:=]?\s*+({NUM})", re.I)
#: keys that count or name things (char-rnn's "evaluating loss over split index 2", Lightning's progress-bar
#: "v_num=1", the experiment's version): not metrics, and a line holding only them is no record
_COUNTER_KEY = re.compile(r"(?:^|[\s_])(?:index|idx|id|v_num|version)$", re.I)
#: "| end of epoch 3 | time: 12.1s | valid loss 3.2": an epoch summary, whose time is the epoch's
_EPOCH_SUMMARY = re.compile(r"\bend of epoch\b", re.I)


#: char-rnn prints its validation loss only in the checkpoint's name: lm_<model>_epoch<epoch>_<val loss>.t7
_CHAR_RNN_CHECKPOINT = re.compile(rf"^saving checkpoint to \S*?_epoch{NUM}_({NUM})\.t7\s*$", re.I)


def _parse_generic(line: str) -> Record | None:
    ckpt = _CHAR_RNN_CHECKPOINT.match(line)
    if ckpt is not None:
        return Record(None, {"val/loss": to_float(ckpt.group(1))})  # the step printed last
    per_n = _TIME_FOR_N.search(line)
    if per_n is not None:  # read apart, so its "100 batch" is not taken for a metric named batch
        line = line[:per_n.start()] + line[per_n.end():]
    pairs = [(m.group("key").strip(), m.group("val"), m.group("unit")) for m in _GEN_KV.finditer(line)]
    if not pairs:
        return None
    step: float | None = None
    vals: dict[str, float] = {}
    epoch_summary = _EPOCH_SUMMARY.search(line) is not None
    for k, v, unit in pairs:
        kl = k.lower()
        if step is None and kl in _STEP_KEYS:
            try:
                step = float(int(float(v)))
            except (ValueError, OverflowError):  # "step: inf" is no step
                pass
            continue
        if kl in _STEP_KEYS or _COUNTER_KEY.search(kl) or (epoch_summary and kl.endswith("end of epoch")):
            continue
        try:
            x = to_float(v)
        except ValueError:
            continue
        if epoch_summary and kl in ("time", "dt", "elapsed"):
            vals.setdefault(f"epoch_time_{unit}" if unit in ("s", "ms") else "epoch_time", x)
            continue  # the epoch's duration, not one step's: kept in the log's own unit, which its name says
        if unit == "s" and (kl in ("time", "dt", "step_time") or canonical(kl) == STEP_TIME):
            x = x * 1000.0  # step times are kept in milliseconds
        vals.setdefault(kl, x)
    if per_n is not None:
        n_steps = int(per_n.group(2))
        scale = 1.0 if per_n.group(1).lower().startswith("m") else 1000.0
        vals.setdefault("perf/step_time", to_float(per_n.group(3)) * scale / n_steps if n_steps > 0 else math.nan)
    epoch_batch = None
    m = _EPOCH_BATCH.search(line)
    bar = _LIGHTNING_BAR.match(line) if m is None else None
    if bar is not None:  # Lightning's progress bar: "Epoch 476:   1%|▏    | 1/79 [...]", epochs from 0
        m = bar
    if m and (step is None or int(step) == int(m.group(2))):  # "Epoch 2, step 100/500": a per-epoch counter
        epoch, i, n = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if 0 < n and i <= n:
            # the global step needs the log's epoch base (see _Segments); "Epoch: [21][1390/1930]" is
            # pytorch/examples' ImageNet meter, whose epochs count from 0
            zero_based = bar is not None or _ZERO_BASED_EPOCHS.match(m.group(0)) is not None
            epoch_batch, step = (epoch, i, n, zero_based), None
            for k in [k for k in vals if k.split()[-1] in ("epoch", "batch")]:
                vals.pop(k)
    if step is None and epoch_batch is None:
        m = _LEADING_PIPE_STEP.match(line)
        if m:
            step = float(int(m.group(1)))
            ms = _PIPE_MS.search(line)
            if ms:
                vals.setdefault("perf/step_time", to_float(ms.group(1)))
    if step is None and epoch_batch is None:
        m = _REVERSE_STEP.search(line)
        if m:
            step = float(int(m.group(1)))
        if step is None:
            m = _LEADING_FRACTION.match(line)
            if m:
                step = float(int(m.group(1)))
    if not any("loss" in k or k in ("xent", "trl", "tel", "ppl", "perplexity") for k in vals):
        return None  # a line without a loss is not a training record (config dumps, banners)
    return Record(step, vals, epoch_batch=epoch_batch)


# --- a logbook in Markdown: one page per day (or per report), each under a "# " heading, whose "## <metric>"
# sections hold bullet values: "## Loss" / "- Begin: 3.76" / "- End: 3.29", "## Average Grad Norm" / "- 0.34",
# "## Progress" / "- 0.94%". One record per page; a dated page ("Time: May, 30 2022 16:00") sits at its day.
_MD_HEADING = re.compile(r"^(#{1,6})\s++(.*?)[\s#]*$")
_MD_BULLET = re.compile(r"^[-*+]\s++(.*)$")
_MD_DATE_LINE = re.compile(r"^(?:time|date)\s*+:\s*+(.{6,40}?)\s*$", re.I)
_MD_VALUE = re.compile(r"^(?:([A-Za-z][\w /().\-]{0,40}?)\s*+:\s*+)?(?:~|≈|approx\.?\s|\$[^$]{0,20}\$)?\s*+"
                       r"([-+]?(?:\d{1,3}(?:,\d{3})++|\d++)(?:\.\d++)?(?:[eE][-+]?\d++)?|nan|inf)\s*+(%?)\s*$", re.I)
#: bullet keys that give a section's value at the start of the page's period: the previous page's end
_MD_START_KEYS = {"begin", "start", "first", "before", "initial"}
_MD_END_KEYS = {"end", "last", "final", "after", "current"}
_MD_MEAN_PREFIX = re.compile(r"^(?:average|mean|avg\.?)\s++", re.I)
_MD_DATE_FORMATS = ("%B, %d %Y %H:%M", "%B %d, %Y %H:%M", "%B %d %Y %H:%M", "%B, %d %Y", "%B %d, %Y", "%B %d %Y",
                    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%d %B %Y", "%b %d, %Y", "%b, %d %Y %H:%M")


def _md_date(text: str) -> float | None:
    import datetime as _dt

    text = " ".join(text.replace("\u00a0", " ").split())
    for fmt in _MD_DATE_FORMATS:
        try:
            return _dt.datetime.strptime(text, fmt).replace(tzinfo=_dt.timezone.utc).timestamp()
        except ValueError:
            continue
    return None


class _LogbookState:
    """Markdown logbook pages -> one record per page, given when the next page starts (or by ``flush`` at the end
    of the log). The step is the page's day counted from the first dated page (steps are days), or the page's
    number when the pages carry no date."""

    def __init__(self) -> None:
        self.page: dict[str, float] | None = None
        self.page_time: float | None = None
        self.section: str | None = None
        self.origin: float | None = None
        self.pages = 0
        self.last_step: float | None = None
        self.dated = True  # every page so far had a date

    def _close(self) -> Record | None:
        page, when = self.page, self.page_time
        self.page, self.page_time, self.section = None, None, None
        if not page:
            return None
        self.pages += 1
        if when is not None and self.dated:
            if self.origin is None:
                self.origin = when
            step = float(math.floor((when - self.origin) / 86400.0 + 1e-9))
        else:
            self.dated = self.dated and self.pages == 1 and when is not None
            step = (self.last_step + 1) if self.last_step is not None else 0.0
        self.last_step = step
        return Record(step, page)

    def flush(self) -> Record | None:
        return self._close()

    def __call__(self, line: str) -> Record | None:
        m = _MD_HEADING.match(line)
        if m:
            if len(m.group(1)) == 1:  # a new page
                rec = self._close()
                self.page = {}
                return rec
            if self.page is not None:
                self.section = " ".join(m.group(2).lower().split())
            return None
        if self.page is None:
            return None
        m = _MD_DATE_LINE.match(line)
        if m and self.page_time is None:
            self.page_time = _md_date(m.group(1))
            return None
        m = _MD_BULLET.match(line)
        if m is None or self.section is None:
            return None
        v = _MD_VALUE.match(m.group(1).strip())
        if v is None:
            return None
        key = (v.group(1) or "").strip().lower()
        if key in _MD_START_KEYS:
            return None
        name = _MD_MEAN_PREFIX.sub("", self.section)
        if key and key not in _MD_END_KEYS:
            name = f"{name} {key}"
        self.page.setdefault(name, to_float(v.group(2).replace(",", "")))
        return None


# --- a whitespace/tab table pasted into text: "Epoch\ttrain/loss (avg)\tval/loss" then rows
def _parse_table(lines: list[str]) -> SeriesBuilder | None:
    for i, ln in enumerate(lines[:50]):
        cells = [c.strip() for c in re.split(r"\t|\s{2,}", ln.strip()) if c.strip()]
        if len(cells) >= 2 and any("loss" in c.lower() for c in cells) and not any(_NUM_RE.fullmatch(c) for c in cells):
            b = SeriesBuilder()
            header = cells
            for row in lines[i + 1:]:
                vals = [c.strip().strip("*") for c in re.split(r"\t|\s{2,}", row.strip())]
                if len(vals) < len(header) or not _NUM_RE.fullmatch(vals[0]):
                    continue
                try:
                    step = float(vals[0])
                except ValueError:
                    continue
                for h, v in zip(header[1:], vals[1:len(header)]):
                    if _NUM_RE.fullmatch(v):
                        b.add(h, step, to_float(v))
            return b if len(b) else None
    return None


FORMATS: list[TextFormat] = [
    TextFormat("nanogpt", re.compile(r"^(?:iter \d+: loss|step \d+: train loss)", re.I), _parse_nanogpt, 1.2),
    TextFormat("buildnanogpt_logtxt", _BUILD_LOGTXT, _parse_build_logtxt, 1.2),
    TextFormat("modded_nanogpt", _MODDED, _parse_modded, 1.2),
    TextFormat("llmc", _LLMC, _parse_llmc, 1.2),
    TextFormat("buildnanogpt", re.compile(r"^step\s+\d+\s*\|\s*loss:|^validation loss:", re.I), _parse_build_stdout, 1.2),
    TextFormat("megatron", re.compile(r"iteration\s+\d+\s*/\s*\d+\s*\||validation loss at iteration", re.I),
               _parse_megatron, 1.2),
    TextFormat("fairseq", re.compile(r"num_updates[=\s]++\d|(?<!\d)\d++ updates \|"), _parse_fairseq, 1.15),
    TextFormat("hf_console", _HF_DICT, _parse_hf_console, 1.2),
    TextFormat("keras", re.compile(r"^(?:Epoch\s+\d+/\d+\s*$|\d+/\d+\s+\[[=>.]+\]|" + _KERAS_V2.pattern[1:] + ")"),
               _parse_generic, 1.1),
    TextFormat("generic", re.compile(rf"loss\w*+(?:\s*+[:=]\s*+|\s++){NUM}|xent:\s*+{NUM}", re.I), _parse_generic,
               0.5),
    # (its parser keeps state: _Parser makes a fresh _LogbookState per log)
    TextFormat("md_logbook", re.compile(r"^#{2,6}\s++(?:\w++\s++){0,3}loss\s*$", re.I), _LogbookState(), 1.0),
]
_BY_NAME = {f.name: f for f in FORMATS}


def _payload_lines(text: str) -> list[str]:
    return [s for s in (_strip(ln) for ln in text.splitlines()) if s and not s.startswith("# source:")]


#: the last lines sniff_text judged and its answer: reading a short log sniffs the very lines the format
#: sniffer did a moment before (every dialect's pattern over every line: ~5 % of a 20-line log's analysis)
_LAST_SNIFF: tuple[tuple[str, ...], tuple[str | None, float]] = ((), (None, 0.0))


def sniff_text(lines: Iterable[str]) -> tuple[str | None, float]:
    """Which text format the lines are in, and the share of lines that say so."""
    lines = list(lines)
    if not lines:
        return None, 0.0
    global _LAST_SNIFF
    key = tuple(lines)
    last = _LAST_SNIFF  # one read of the global: another thread may replace it meanwhile
    if last[0] == key:
        return last[1]
    result = _sniff_text(lines)
    _LAST_SNIFF = (key, result)
    return result


def _sniff_text(lines: list[str]) -> tuple[str | None, float]:
    best, best_score = None, 0.0
    for fmt in FORMATS:
        hits = sum(1 for ln in lines if fmt.sniff_re.search(ln))
        if hits == 0:
            continue
        share = hits / len(lines)
        score = min(1.0, (0.3 + share) * fmt.weight) if hits >= 1 else 0.0
        if score > best_score:
            best, best_score = fmt.name, score
    return best, best_score


def sniff(head: bytes, path: str) -> float:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        text = head[: err.start].decode("utf-8") if err.start > len(head) - 4 else ""
    if not text:
        return 0.0
    name, score = sniff_text(_payload_lines(text)[:400])
    if name is None:
        # plain text whose first 64 KB hold no record (shell traces before training starts):
        # worth a full read, but any other reader that recognises the content wins
        return 0.05 if b"\x00" not in head[:8192] else 0.0
    return min(0.8, 0.2 + 0.6 * score)


def _is_eval_record(values: dict[str, float]) -> bool:
    return all(k.startswith(("eval", "val")) or k == "epoch" for k in values)


class _Segments:
    """Records in file order -> one SeriesBuilder per run. A step counter that starts over begins a new
    run (logs of several runs pasted together); a step that goes back part-way is a resume and overwrites.
    Fed block by block, so a long log never holds all its records at once."""

    def __init__(self) -> None:
        self.segments: list[SeriesBuilder] = [SeriesBuilder()]
        self.b = self.segments[0]
        self.first_step: float | None = None
        self.last_step: float | None = None
        self.pending: list[dict[str, float]] = []
        self.epoch_base: int | None = None
        self.numbered = False  # the log prints no step numbers: its records were numbered 0, 1, 2 ...
        self.by_epoch = False  # the log prints no step numbers but one epoch number per record: steps are epochs
        self.per_batch = False  # records with a per-epoch batch counter were seen (global steps known)
        self.epoch_size: dict[int, int] = {}  # id(segment) -> batches per epoch, as the log states it
        self.titles: dict[int, str] = {}  # id(segment) -> the prose line above its fenced block (Markdown)
        self.pending_title: str | None = None
        self.block_opened = False  # a Markdown ``` block opened since the last record
        self.pending_epoch_size: int | None = None

    def _claim_epoch_size(self) -> None:
        """A stated epoch size ("1 epoch = 20 batches") belongs to the run whose records follow it."""
        if self.pending_epoch_size is not None:
            self.epoch_size[id(self.b)] = self.pending_epoch_size
            self.pending_epoch_size = None
        if self.pending_title is not None:
            self.titles.setdefault(id(self.b), self.pending_title)
            self.pending_title = None

    def _new_segment_if_restart(self, step: float) -> None:
        # back to (about) where this run began is a new run: a first step of 1 after one of 0 is a run pasted
        # after another, not a resume 48 steps back; so is any step back after a new Markdown block opened
        near_start = self.first_step is not None and self.last_step is not None and \
            step <= self.first_step + max(1.0, 0.02 * (self.last_step - self.first_step))
        block, self.block_opened = self.block_opened, False
        if self.last_step is not None and self.first_step is not None and step < self.last_step \
                and (near_start or block) and len(self.b):
            self.b = SeriesBuilder()
            self.segments.append(self.b)
            self.first_step = None
        if self.first_step is None:
            self.first_step = step

    def add(self, rec: Record) -> None:
        if rec.epoch_batch is not None:
            epoch, i, n, zero_based = rec.epoch_batch
            if self.epoch_base is None:
                # epochs count from 1 (PyTorch's MNIST example, Keras) unless the log shows an epoch 0 or the
                # dialect counts from 0; an excerpt that starts at epoch 5 still gets the global steps of epoch 5
                self.epoch_base = 0 if epoch == 0 or zero_based else 1
            done = max(0, epoch - self.epoch_base)
            rec = Record(float(done * n + i), {**rec.values, "epoch": done + i / n})
            self.per_batch = True
        elif rec.step is None and self.per_batch and "epoch" in rec.values and "loss" in rec.values:
            # "epoch 3/60 - loss: 0.82 - val_loss: 0.78" after that epoch's "epoch 3/60 - batch 6/6 - loss: 0.77"
            # lines: the epoch's mean, at the step of its last batch, not a second point of the per-batch loss
            vals = {k: v for k, v in rec.values.items() if k not in ("epoch", "loss")}
            rec = Record(None, {**vals, "train/loss_epoch": rec.values["loss"]}, step_after=rec.step_after)
        if rec.step is None:
            if rec.step_after or self.last_step is None:
                self.pending.append(rec.values)  # belongs to the next step line
            else:
                self.b.add_many(self.last_step, rec.values)  # context: the step printed last
            return
        self._new_segment_if_restart(rec.step)
        self._claim_epoch_size()
        for vals in self.pending:
            self.b.add_many(rec.step, vals)
        self.pending.clear()
        self.b.add_many(rec.step, rec.values)
        self.last_step = rec.step

    def add_columns(self, steps: np.ndarray, columns: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> bool:
        """Many records at once (the fast paths): False, adding nothing, unless they hold no restart
        (steps never go down, and not below the last step)."""
        if not steps.size:
            return True
        if (self.last_step is not None and steps[0] < self.last_step) or bool((steps[1:] < steps[:-1]).any()):
            return False
        self._new_segment_if_restart(float(steps[0]))
        self._claim_epoch_size()
        for vals in self.pending:
            self.b.add_many(float(steps[0]), vals)
        self.pending.clear()
        for name, (values, mask) in columns.items():
            if mask is None:
                self.b.add_arrays(name, steps, values)
            elif mask.any():
                self.b.add_arrays(name, steps[mask], values[mask])
        self.last_step = float(steps[-1])
        return True

    def finish(self) -> list[SeriesBuilder]:
        if self.last_step is None:
            # a log with no steps at all (HF console dicts, pasted excerpts): number the train records in
            # order; an eval record belongs to the step it follows
            b = SeriesBuilder()
            epochs = [vals.get("epoch") for vals in self.pending if not _is_eval_record(vals)]
            if len(epochs) >= 2 and all(e is not None and float(e).is_integer() for e in epochs) and \
                    all(b_ > a for a, b_ in zip(epochs, epochs[1:])):
                # "epoch 12/100 - loss: 0.3 - val_loss: 0.4" (Keras-like prints of a hand-written loop): one
                # record per epoch, numbered by its epoch, so an excerpt from epoch 50 starts at 50, not 0
                self.by_epoch = True
                epoch = None
                for vals in self.pending:
                    if not _is_eval_record(vals) or epoch is None:
                        epoch = vals.get("epoch", epoch)
                    if epoch is not None:
                        b.add_many(float(epoch), vals)
                return [b] if len(b) else []
            self.numbered = True
            counter = -1
            for vals in self.pending:
                if counter < 0 or not _is_eval_record(vals):
                    counter += 1
                b.add_many(counter, vals)
            return [b] if len(b) else []
        for vals in self.pending:  # trailing records with nothing after them: the last step
            self.b.add_many(self.last_step, vals)
        self.pending.clear()
        return [seg for seg in self.segments if len(seg)]


#: A line that states the epoch's size in steps (build-nanogpt's DataLoaderLite prints "1 epoch = 2640 batches"):
#: the run's epochs are its steps over it.
_EPOCH_SIZE = re.compile(r"^1 epoch\s*+=\s*+(\d++)\s++(?:batches|steps|iterations|iters)\b|"
                         r"^(\d++)\s++(?:batches|steps|iterations|iters) per epoch\b|"
                         r"^(?:batches|steps|iterations|iters) per epoch\s*+[:=]\s*+(\d++)\s*$", re.I)

#: A line that looks like a training record whatever its dialect: a loss-like name and a number.
_RECORD_LIKE = re.compile(rf"(?:loss|xent|ppl|perplexity)\w*+(?:\s*+[:=]\s*+|\s++){NUM}", re.I)


class _Parser:
    """One text dialect parsed line by line, counting the lines that look like records and the lines
    understood (``record_lines_seen`` / ``record_lines_read`` in the run's meta)."""

    def __init__(self, fmt_name: str) -> None:
        self.fmt = _BY_NAME[fmt_name]
        self.parse = _KerasState() if fmt_name == "keras" else _MegatronState() if fmt_name == "megatron" \
            else _LogbookState() if fmt_name == "md_logbook" else self.fmt.parse
        self.segments = _Segments()
        self.seen = 0
        self.read = 0
        self._megatron_tail: str | None = None  # a record that the next block may continue
        self._in_fence = False  # inside a Markdown ``` block
        self._prose: str | None = None  # the last line of prose outside one

    def feed(self, lines: list[str]) -> None:
        if self.fmt.name == "megatron":
            if self._megatron_tail is not None:
                lines = [self._megatron_tail, *lines]
            lines = _join_megatron(lines)
            self._megatron_tail = lines.pop() if lines else None
        self._feed_joined(lines)

    def _feed_joined(self, lines: list[str]) -> None:
        like = _RECORD_LIKE.search
        add = self.segments.add
        for ln in lines:
            rec = self.parse(ln)
            if rec is not None:
                self.seen += 1
                self.read += 1
                add(rec)
            else:
                if like(ln):
                    self.seen += 1
                elif ln.startswith("```"):
                    # logs pasted into Markdown, one fenced block per run: the prose above names the run
                    self._in_fence = not self._in_fence
                    if self._in_fence:
                        self.segments.block_opened = True
                        self.segments.pending_title = self._prose
                elif not self._in_fence and len(ln) >= 3:
                    self._prose = ln.lstrip("#").strip()[:80]
                size = _EPOCH_SIZE.search(ln)
                if size is not None and int(size.group(1) or size.group(2) or size.group(3)) > 0:
                    self.segments.pending_epoch_size = int(size.group(1) or size.group(2) or size.group(3))

    def finish(self) -> list[SeriesBuilder]:
        if self._megatron_tail is not None:
            tail, self._megatron_tail = self._megatron_tail, None
            self._feed_joined([tail])
        flush = getattr(self.parse, "flush", None)  # a dialect whose last record ends with the log
        rec = flush() if flush is not None else None
        if rec is not None:
            self.seen += 1
            self.read += 1
            self.segments.add(rec)
        return self.segments.finish()


def parse_lines(lines: list[str], fmt_name: str, state: Callable[[str], Record | None] | None = None) \
        -> list[SeriesBuilder]:
    """Parse lines in one format (see :class:`_Segments` for how runs and resumes are told apart). ``state``
    (from :func:`line_state`) carries what earlier pieces of the same log showed, for a caller that feeds a
    log piece by piece (``lossdx watch``)."""
    parser = _Parser(fmt_name)
    if state is not None:
        parser.parse = state
    parser.feed(lines)
    return parser.finish()


def line_state(fmt_name: str) -> Callable[[str], Record | None] | None:
    """The line parser of a dialect whose lines are read in the light of earlier ones (a Megatron line without
    the loss its predecessors print is a NaN), to keep across the pieces of one log; None for the others."""
    return _MegatronState() if fmt_name == "megatron" else None


# --- fast paths: a whole block of clean lines of the commonest dialect in a few C-speed passes
# (str.count / str.replace / one literal-led regex / np.fromstring), checked by counts so that anything
# irregular sends the block line by line; tests/readers/test_text.py proves both give the same runs.
_NANO_EVAL_FAST = re.compile(r"\nstep (\d++): train loss ([^,\n]++), val loss ([^\n]++)(?=\n)")
_NOT_ITER_LINE = re.compile(r"\n(?!iter )[^\n]*+")


def _column(tokens: list[str], suffix: str, n: int) -> np.ndarray | None:
    """Tokens that all end in ``suffix`` ("12:", "3.2,", "41.5ms,") as n floats, or None."""
    text = " ".join(tokens)
    if "_" in text:  # float() reads "1_000" as 1000, the line parser as 1: the line parser decides
        return None
    if suffix:
        if text.count(suffix) != n:
            return None
        text = text.replace(suffix, "")
    try:
        values = parse_floats(text)
    except ValueError:
        return None
    return values if values.size == n else None


def _nanogpt_block(block: str, parser: _Parser) -> bool:
    """A block of nanoGPT stdout at C speed: True when every record line in it was taken (and added),
    False (nothing added) when anything is irregular and the block must go line by line."""
    blk = "\n" + block if block.endswith("\n") else "\n" + block + "\n"
    n_it = blk.count("\niter ")
    n_ev = blk.count("\nstep ")
    n_loss = blk.count("loss")
    if not n_it or n_loss != n_it + 2 * n_ev or blk.count("train loss") != n_ev:
        return False
    if blk.lower().count("loss") != n_loss:  # "ITER 5: LOSS 9" is a record too (the dialect ignores case)
        return False
    # only iter lines: "iter N: loss X, time Yms, mfu Z%", 8 tokens each, or all of them "iter N: loss X", 4 each
    tokens = _NOT_ITER_LINE.sub("", blk).split()
    width = 8 if len(tokens) == 8 * n_it else 4 if len(tokens) == 4 * n_it else 0
    fields = ((0, "iter"), (2, "loss"), (4, "time"), (6, "mfu"))[: width // 2]
    if not width or any(tokens[k::width].count(word) != n_it for k, word in fields):
        return False
    cols: list[np.ndarray] = []
    for k, suffix in ((1, ":"), (3, ","), (5, "ms,"), (7, "%")) if width == 8 else ((1, ":"), (3, "")):
        c = _column(tokens[k::width], suffix, n_it)
        if c is None:
            return False
        cols.append(c)
    steps, loss = cols[:2]
    if not bool((steps == np.floor(steps)).all()):
        return False
    columns: dict[str, tuple[np.ndarray, np.ndarray | None]] = {"train/loss": (loss, None)}
    if width == 8:
        dt, mfu = cols[2:]
        mfu_ok: np.ndarray = mfu >= 0  # nanoGPT prints -100 % until its MFU estimate warms up
        columns.update({"perf/step_time": (dt, None), "perf/mfu": (mfu, None if bool(mfu_ok.all()) else mfu_ok)})
    if n_ev:
        evs = _NANO_EVAL_FAST.findall(blk)
        if len(evs) != n_ev:
            return False
        ev_cols: list[np.ndarray] = []
        for k in range(3):
            c = _column([t[k] for t in evs], "", n_ev)
            if c is None:
                return False
            ev_cols.append(c)
        ev = np.stack(ev_cols, axis=1)
        # the eval line of a step comes before its iter line: merge both in step order
        all_steps = np.concatenate([ev[:, 0], steps])
        if not (bool((steps[1:] >= steps[:-1]).all()) and bool((ev[1:, 0] >= ev[:-1, 0]).all())):
            return False
        order = np.argsort(all_steps, kind="stable")
        is_it = np.concatenate([np.zeros(n_ev, dtype=bool), np.ones(n_it, dtype=bool)])[order]
        pad = np.full(n_ev, np.nan)

        def col(x: np.ndarray, first: bool) -> np.ndarray:
            return (np.concatenate([x, np.full(n_it, np.nan)]) if first else np.concatenate([pad, x]))[order]

        columns = {"train/loss": (col(loss, False), is_it)}
        if width == 8:
            columns.update({"perf/step_time": (col(dt, False), is_it),
                            "perf/mfu": (col(mfu, False), is_it & (col(mfu, False) >= 0))})
        columns.update({"train/loss_eval": (col(ev[:, 1], True), ~is_it), "val/loss": (col(ev[:, 2], True), ~is_it)})
        steps = all_steps[order]
    if not parser.segments.add_columns(steps, columns):
        return False
    parser.seen += n_it + n_ev
    parser.read += n_it + n_ev
    return True


_FAST_PATHS = {"nanogpt": _nanogpt_block}


def _blocks_of_lines(path: str) -> Iterator[str]:
    with open_regular(path) as fh:
        head = fh.read(8192)
        if looks_binary(head):
            raise CorruptLog(f"{path} is a binary file, not a training log")
        fh.seek(0)
        first = True
        for raw in iter_line_blocks(fh, path):
            if first and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            first = False
            yield decode_text(raw, path)


def _needs_prefix_strip(block: str) -> bool:
    if any(c in block for c in _SPLITLINES_EXTRA):
        return True
    return _PREFIX_HINT.search(block) is not None or _PREFIX_HINT.match("\n" + block[:64]) is not None


#: What _PREFIX strips starts a line like this (and str.splitlines splits on more than "\n"); a block with
#: none of it is split on "\n" and stripped of white space: the same lines for a fraction of the cost.
#: The pattern starts with a literal newline so the regex engine skips to newlines at C speed.
_PREFIX_HINT = re.compile(r"\n[ \t]*+(?:>|\[|\d{4}-\d\d-\d\d|\d++:\s)")
_SPLITLINES_EXTRA = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _lines_of(block: str) -> list[str]:
    if _needs_prefix_strip(block):
        return _payload_lines(block)
    return [s for s in (ln.strip() for ln in block.split("\n")) if s and not s.startswith("# source:")]


def _feed_block(parser: _Parser, block: str) -> None:
    fast = _FAST_PATHS.get(parser.fmt.name)
    if fast is not None and not _needs_prefix_strip(block) and fast(block, parser):
        return
    parser.feed(_lines_of(block))


def _runners_up(lines: list[str], name: str) -> list[str]:
    """The dialects other than ``name`` that some line says the text is in, best first (sniff_text's scores)."""
    scored = []
    for fmt in FORMATS:
        hits = sum(1 for ln in lines if fmt.sniff_re.search(ln))
        if hits and fmt.name != name:
            scored.append((-min(1.0, (0.3 + hits / len(lines)) * fmt.weight), fmt.name))
    return [n for _s, n in sorted(scored, key=lambda sn: sn[0])]


def _refuse_json_document(path: str, first_block: str) -> None:
    """A whole JSON document is data, not printed lines: numbers in its prose ("loss 8.72 -> 5.58" in a notes
    file) are no records. The JSON readers took every document form a log has; what they left is not a log."""
    if not first_block.lstrip("\ufeff \t\r\n").startswith(("{", "[")):
        return
    try:
        if os.path.getsize(path) > 8 * len(first_block) + (1 << 20):
            return  # far larger than its first block: lines of records, not one document
        json.loads(read_text(path, cap_lines=False).lstrip("\ufeff"))
    except (ValueError, RecursionError, OSError, InputError):
        return  # not one JSON document (JSON lines with prints between them, a pasted dict ...): read as text
    raise CorruptLog(f"{path}: a JSON document in no form lossdx reads as a log (trainer_state.json, a list of "
                     f"records, per-epoch lists of values)")


def read(path: str, fmt_name: str | None = None) -> list[Run]:
    """Every run in a text log, streamed block by block (8 MB of whole lines at a time)."""
    name = fmt_name
    parser = _Parser(name) if name is not None else None
    early_blocks: list[str] = []  # blocks read before the dialect is known (the first 2000 lines decide)
    early_lines: list[str] = []
    progress = Progress(path)
    for block in _blocks_of_lines(path):
        progress.advance(len(block))
        if fmt_name is None and not early_blocks and parser is None:
            _refuse_json_document(path, block)
        if parser is not None:
            _feed_block(parser, block)
            continue
        early_blocks.append(block)
        early_lines.extend(_lines_of(block))
        if name is None and len(early_lines) >= 2000:
            name, _score = sniff_text(early_lines[:2000])
            if name is None:
                name = ""  # no dialect: keep every line for the table reader
            else:
                parser = _Parser(name)
                for blk in early_blocks:
                    _feed_block(parser, blk)
                early_blocks, early_lines = [], []
    progress.done()
    if parser is None and early_lines and not name:
        name, _score = sniff_text(early_lines[:2000])
        if name is not None:
            parser = _Parser(name)
            for blk in early_blocks:
                _feed_block(parser, blk)
    if parser is None and not early_lines:
        raise CorruptLog(f"{path}: empty log")
    segments = parser.finish() if parser is not None else []
    if not segments and fmt_name is None and name == "md_logbook":
        # a "## Loss" heading over pasted log lines (an issue, a notebook) sniffs as a logbook with no pages:
        # the runner-up dialect reads it
        for alt in _runners_up(early_lines or _payload_lines(read_text(path))[:2000], name):
            try:
                return read(path, alt)
            except CorruptLog:
                continue
    if not segments:
        table = _parse_table(early_lines or _payload_lines(read_text(path)))
        if table is not None:
            segments, name, parser = [table], "table", None
    if not segments:
        raise CorruptLog(f"{path}: no training-loss records found in the text")
    runs = []
    for i, seg in enumerate(segments):
        meta: dict = {"notes": []}
        if parser is not None:
            meta["record_lines_seen"] = int(parser.seen)
            meta["record_lines_read"] = int(parser.read)
        if len(segments) > 1:
            meta["run_name"] = f"run {i + 1}"
            meta["notes"].append(f"the log holds {len(segments)} runs (the step counter starts over)")
            title = parser.segments.titles.get(id(seg)) if parser is not None else None
            if title:
                meta["run_title"] = title
                meta["notes"].append(f"run {i + 1} is the block under {title!r}")
        if name == "nanogpt":
            meta["notes"].append("'step N: train loss' is nanoGPT's eval estimate, kept as train/loss_eval")
        if parser is not None and parser.segments.numbered:
            # step_unit is what the steps count now (attach_config turns record numbers into steps where
            # logging_steps is known); steps_are_record_numbers that the log printed none (the context's excerpt test)
            meta["steps_are_record_numbers"] = True
            meta["step_unit"] = "record"
            meta["notes"].append("the log prints no step numbers: steps count its training records from 0")
        if parser is not None and parser.segments.by_epoch:
            meta["step_unit"] = "epoch"
            meta["notes"].append("the log prints no step numbers, one record per epoch: steps are its epoch numbers")
        if name == "md_logbook" and isinstance(parser.parse, _LogbookState):
            book = parser.parse
            meta["notes"].append(
                "a Markdown logbook: one point per page, "
                + ("steps are days since the first page's date" if book.dated and book.origin is not None
                   else "steps are page numbers")
                + "; a section's 'End' value is taken (its 'Begin' is the previous page's end), and 'Average ...' "
                  "sections are means over the page's period")
        run = make_run(seg, path, name or "text", meta)
        for raw, (target, what) in _RENAMED.items():
            if raw in run.series and target not in run.series:
                s = run.series.pop(raw)
                run.series[target] = type(s)(target, s.steps, s.values, s.wall_times)
                run.meta["notes"].append(what)
                run.meta.setdefault("series_meaning", {})[target] = what
        if "train/loss" not in run.series and "train/loss_eval" in run.series:
            s = run.series["train/loss_eval"]
            run.series["train/loss"] = type(s)("train/loss", s.steps, s.values, s.wall_times)
        size = parser.segments.epoch_size.get(id(seg)) if parser is not None else None
        if size and "train/loss" in run.series and "train/epoch" not in run.series:
            s = run.series["train/loss"]
            run.series["train/epoch"] = type(s)("train/epoch", s.steps, s.steps / size)
            what = f"train/epoch is the step over the epoch size the log states ({size:,} steps per epoch)"
            run.meta["notes"].append(what)
            run.meta.setdefault("series_meaning", {})["train/epoch"] = what
        try:
            runs.append(ensure_loss(run, path))
        except CorruptLog:
            if len(segments) == 1:
                raise
    if not runs:
        raise CorruptLog(f"{path}: no training-loss records found in the text")
    return runs
