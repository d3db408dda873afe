"""NaN/Inf in the loss, the validation loss, the gradient norm (where HF hides a NaN loss) and the loss scale."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..config.hparams import is_float16
from ..findings import Finding
from ..model import Run
from .base import Context, Detector

_METRICS = ("train/loss", "val/loss", "train/grad_norm")


class NonFiniteDetector(Detector):
    """One finding per metric and stretch of non-finite values: first step exact, whether it recovered.

    A stretch is closed (and reported) by the first finite value after it, or by the end of the data.
    """

    name = "nan"
    requires = _METRICS  # Megatron's "number of nan iterations" arrives as a NaN loss point (readers)

    def reset(self, context: Context | None = None) -> None:
        super().reset(context)
        self.open_: dict[str, list] = {}  # metric -> [first_step, last_step, count, first_value, loss_ok, loss_fin]
        self.reported_: dict[str, int] = {}
        self.last_step_ = None

    def update(self, step: int, values: Mapping[str, float]) -> list[Finding]:
        out: list[Finding] = []
        self.last_step_ = step
        for m in _METRICS:
            if m not in values:
                continue
            v = values[m]
            if math.isfinite(v):
                if m in self.open_:
                    out.append(self._close(m, recovered_at=step))
            elif m in self.open_:
                ev = self.open_[m]
                ev[1] = step
                ev[2] += 1
            else:
                loss_fin = m == "train/grad_norm" and math.isfinite(values.get("train/loss", math.nan))
                loss_ok = loss_fin and self.context_.points_averaged > 1
                self.open_[m] = [step, step, 1, v, loss_ok, loss_fin]
        return out

    def _close(self, m: str, recovered_at: int | None) -> Finding:
        first, last, count, value, loss_ok, loss_fin = self.open_.pop(m)
        self.reported_[m] = self.reported_.get(m, 0) + 1
        what = "Inf" if math.isinf(value) else "NaN"
        tail = f"recovered at step {recovered_at}" if recovered_at is not None else "until the end of the log"
        fp16 = is_float16(self.context_.config.get("dtype"))
        severity = "error"
        if m == "train/grad_norm" and fp16 and recovered_at is not None and count <= 2:
            # float16 with a loss scaler: an overflowing step's gradients are Inf, the scaler skips the step and
            # lowers its scale — routine, as long as it stays rare
            msg = (f"gradient norm was {what} at step {first} and finite again at step {recovered_at} in a float16 "
                   f"run: an overflow the loss scaler skipped")
            severity = "info"
        elif m == "train/grad_norm" and loss_fin and not loss_ok and recovered_at is not None and count <= 2 \
                and not self.context_.config.get("dtype"):
            # a per-step log whose loss stayed finite while one step's gradient norm was Inf, finite again at once:
            # the weights survived an Inf gradient, so that step was skipped, not applied — what a float16 loss
            # scaler does on an overflow (the dtype is not in the log)
            msg = (f"gradient norm was {what} at step {first} and finite again at step {recovered_at} while the loss "
                   "stayed finite: the step was skipped (a float16 loss scaler skips an overflowing step)")
            severity = "info"
        elif m == "train/grad_norm" and loss_ok:
            msg = (f"gradient norm became {what} at step {first} while the logged loss stayed finite: the NaN loss "
                   f"was probably hidden by HF's logging_nan_inf_filter ({count} point(s), {tail})")
        else:
            msg = f"{m} became {what} at step {first} ({count} logged point(s), {tail})"
        return Finding("nan", m, first, last, severity, msg, {
            "first_step": first, "count": count, "recovered": recovered_at is not None,
            "recovered_at": recovered_at, "value": what, "hidden_by_window": bool(loss_ok)})

    def finalize(self) -> list[Finding]:
        return [self._close(m, None) for m in sorted(self.open_, key=_METRICS.index)]

    def open_events(self) -> list[Finding]:
        """Provisional findings for the live guard: stretches still open at this step."""
        return [Finding("nan", m, ev[0], ev[1], "error", f"{m} is non-finite since step {ev[0]}", {"count": ev[2]})
                for m, ev in self.open_.items()]

    def detect(self, run: Run, context: Context | None = None) -> list[Finding]:
        """Vectorised twin of the online path (same findings, see the parity tests)."""
        self.reset(context or Context.from_run(run))
        events: list[tuple[int, int, Finding]] = []
        loss = run.series.get("train/loss")
        for m in _METRICS:
            s = run.series.get(m)
            if s is None or not len(s):
                continue
            bad = ~np.isfinite(s.values)
            if not bad.any():
                continue
            idx = np.flatnonzero(bad)
            # stretches of consecutive non-finite points
            breaks = np.flatnonzero(np.diff(idx) > 1)
            starts = np.concatenate([[idx[0]], idx[breaks + 1]])
            ends = np.concatenate([idx[breaks], [idx[-1]]])
            for a, b in zip(starts.tolist(), ends.tolist()):
                first, last = int(s.steps[a]), int(s.steps[b])
                loss_fin = False
                if m == "train/grad_norm" and loss is not None:
                    j = np.searchsorted(loss.steps, first)
                    loss_fin = bool(j < len(loss) and loss.steps[j] == first and np.isfinite(loss.values[j]))
                loss_ok = loss_fin and self.context_.points_averaged > 1
                self.open_[m] = [first, last, b - a + 1, float(s.values[a]), loss_ok, loss_fin]
                rec = int(s.steps[b + 1]) if b + 1 < len(s) else None
                f = self._close(m, rec)
                events.append((rec if rec is not None else 1 << 62, _METRICS.index(m), f))
        # the online path reports a stretch when it closes, metrics in _METRICS order within a step
        events.sort(key=lambda e: (e[0], e[1]))
        return [f for _k, _m, f in events]
