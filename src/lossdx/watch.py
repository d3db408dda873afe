"""Follow a growing training log and report findings as they appear (``lossdx watch``).

Each poll costs one ``os.stat`` while the file does not grow (idle CPU near zero). When it grows, only
the new bytes are read, like TensorBoard's loaders: text, CSV and JSONL up to the last complete line, an
event file up to the last complete record; a torn last line or record is left for the next poll, never
an error. The new points go through the same online detectors as ``lossdx analyze`` (``update``), and a
value turning non-finite is reported at once (the NaN detector itself waits to see whether it recovers).

Example:
    >>> from lossdx.watch import Watcher
    >>> w = Watcher("runs/exp3/train.log")          # doctest: +SKIP
    >>> while True:                                  # doctest: +SKIP
    ...     for f in w.poll(): print(f.message)
    ...     time.sleep(2)
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Callable, Mapping

import numpy as np

from .exceptions import CorruptLog, InputError
from .findings import Finding
from .model import Series, SeriesBuilder

#: metrics whose first non-finite value is reported at once
LIVE_NONFINITE = ("train/loss", "val/loss", "train/grad_norm")
_MAX_CHUNK = 64 << 20  # read at most this much per poll: a huge backlog is taken in several polls


class Tail:
    """The points a log file gained since the last :meth:`poll` (canonical metric names)."""

    def __init__(self, path: str, fmt: str | None = None) -> None:
        self.path = path
        self.fmt = fmt  # reader name; text dialect in self.dialect
        self.dialect: str | None = None
        self.line_state: Callable[[str], Any] | None = None  # what earlier lines of the log showed (text dialects)
        self.offset = 0
        self.header: str | None = None  # CSV header line
        self.plugins: dict[str, str] = {}
        self.identity: tuple[int, int] | None = None
        self.notes: list[str] = []
        self.restarted = False  # set when the file was truncated or replaced: the watcher starts over
        self.rows_seen = 0  # data rows of CSV / JSONL returned so far (logs without a step column)
        self.seen_step = -(1 << 62)  # files rewritten whole: the last step already returned

    def _reset(self) -> None:
        self.offset, self.header, self.dialect, self.plugins, self.rows_seen = 0, None, None, {}, 0
        self.line_state = None

    def _grown(self) -> bytes:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return b""  # not created yet (or being rotated): wait
        ident = (st.st_dev, st.st_ino)
        if self.identity is not None and (ident != self.identity or st.st_size < self.offset):
            if self.fmt != "hf_trainer_state":  # that one is replaced at every save, by design
                self.notes.append(f"{self.path} was replaced or truncated: reading it from the start (a new run)")
                self.restarted = True
            self._reset()
        self.identity = ident
        if st.st_size <= self.offset:
            return b""
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(min(st.st_size - self.offset, _MAX_CHUNK))

    def poll(self) -> dict[str, Series]:
        data = self._grown()
        if not data:
            return {}
        if self.fmt is None:
            from .readers import sniff

            try:
                self.fmt, _score = sniff(self.path)
            except InputError:
                if len(data) < 4096:
                    return {}  # too little to tell yet
                raise
        if self.fmt == "tensorboard":
            from .readers import tensorboard

            b = SeriesBuilder()
            used, bad = tensorboard.parse_block(data, b, self.plugins)
            if bad:
                raise CorruptLog(f"{self.path}: corrupt record at byte {self.offset + used}")
            self.offset += used
            return _canonical(b)
        if self.fmt == "hf_trainer_state":
            return self._rewritten()
        end = data.rfind(b"\n") + 1  # complete lines only: a torn last line waits for its end
        if end == 0:
            return {}
        chunk = data[:end].decode("utf-8", "replace")
        self.offset += end
        lines = [ln for ln in chunk.splitlines() if ln.strip()]
        if not lines:
            return {}
        if self.fmt in ("csv", "jsonl"):
            return self._via_reader(lines)
        return self._text(lines)

    def _rewritten(self) -> dict[str, Series]:
        """HF's trainer_state.json is rewritten whole at each save: read it again, keep the steps not seen."""
        from .readers import hf_state

        try:
            runs = hf_state.read(self.path)
        except (InputError, ValueError):
            self.offset = 0  # caught mid-write: read it again at the next poll
            return {}
        self.offset = os.path.getsize(self.path)
        out: dict[str, Series] = {}
        for name, s in runs[0].series.items():
            keep = s.steps > self.seen_step
            if keep.any():
                out[name] = Series(name, s.steps[keep], s.values[keep],
                                   None if s.wall_times is None else s.wall_times[keep])
        steps = [int(s.steps[-1]) for s in out.values() if len(s)]
        if steps:
            self.seen_step = max(steps)
        return out

    def _text(self, lines: list[str]) -> dict[str, Series]:
        from .readers import text

        stripped = text._payload_lines("\n".join(lines))
        if self.dialect is None:
            self.dialect, _ = text.sniff_text(stripped[:2000])
            if self.dialect is None:
                return {}
        out: dict[str, Series] = {}
        if self.line_state is None:
            self.line_state = text.line_state(self.dialect)
        for b in text.parse_lines(stripped, self.dialect, self.line_state):
            out.update(_canonical(b))
        if "train/loss" not in out and "train/loss_eval" in out:
            s = out["train/loss_eval"]
            out["train/loss"] = Series("train/loss", s.steps, s.values, s.wall_times)
        return out

    def _via_reader(self, lines: list[str]) -> dict[str, Series]:
        """New rows through the format's own reader (column names, step column, W&B quirks): the header
        line and the new rows are handed to it as a small file of their own."""
        from .readers import delimited, jsonl

        if self.fmt == "csv":
            if self.header is None:
                self.header, lines = lines[0], lines[1:]
            if not lines:
                return {}
            lines = [self.header, *lines]
        read = delimited.read if self.fmt == "csv" else jsonl.read
        fd, tmp = tempfile.mkstemp(prefix="lossdx-watch-", suffix="." + str(self.fmt))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
            runs = read(tmp)
        except CorruptLog:
            return {}  # rows without a loss (an eval-only row): nothing for the detectors
        finally:
            os.unlink(tmp)
        out: dict[str, Series] = {}
        for run in runs:
            out.update(run.series)
        rows = len(lines) - (1 if self.fmt == "csv" else 0)
        if self.rows_seen and out and all(len(s) and s.steps[0] == 0 and s.steps[-1] < rows for s in out.values()):
            # no step column: the reader numbered this chunk's rows from 0; continue the file's numbering
            out = {k: Series(k, s.steps + self.rows_seen, s.values, s.wall_times) for k, s in out.items()}
        self.rows_seen += rows
        return out


def _canonical(b: SeriesBuilder) -> dict[str, Series]:
    from .readers.base import canonical_series

    return {k: v for k, v in canonical_series(b.build()).items() if len(v)}


def _by_step(series: Mapping[str, Series]) -> list[tuple[int, dict[str, float]]]:
    if not series:
        return []
    steps = np.unique(np.concatenate([s.steps for s in series.values()]))
    rows: dict[int, dict[str, float]] = {int(st): {} for st in steps.tolist()}
    for name, s in series.items():
        for st, v in zip(s.steps.tolist(), s.values.tolist()):
            rows[int(st)][name] = v
    return sorted(rows.items())


class Watcher:
    """Online analysis of one growing log: :meth:`poll` returns the findings new since the last call."""

    def __init__(self, path: str, fmt: str | None = None, config: Mapping[str, Any] | None = None) -> None:
        from .detectors import Context, default_detectors
        from .detectors.wholerun import share_point_buffers

        self.tail = Tail(path, fmt)
        self.detectors = default_detectors()
        ctx = Context(config=dict(config or {}), max_steps=(config or {}).get("max_steps"))
        self.context = ctx
        for d in self.detectors:
            d.reset(ctx)
        share_point_buffers(self.detectors)  # (one buffer per metric, not one per whole-run detector)
        self.last_step: int | None = None
        self.steps_seen = 0
        self.late_points = 0
        self._reported: set[tuple[str, str, int]] = set()
        self._nonfinite: set[str] = set()

    def _new(self, findings: list[Finding]) -> list[Finding]:
        out = []
        for f in findings:
            key = (f.kind, f.metric, int(f.start_step))
            if f.kind == "phase" or key in self._reported:
                continue
            self._reported.add(key)
            out.append(f)
        return out

    def _start_over(self) -> None:
        from .detectors.wholerun import share_point_buffers

        for d in self.detectors:
            d.reset(self.context)
        share_point_buffers(self.detectors)
        self.last_step = None
        self._reported.clear()
        self._nonfinite.clear()

    def poll(self) -> list[Finding]:
        found: list[Finding] = []
        new = self.tail.poll()
        if self.tail.restarted:
            self.tail.restarted = False
            self._start_over()
        for step, values in _by_step(new):
            if self.last_step is not None and step < self.last_step:
                self.late_points += 1  # an online detector cannot go back in time
                continue
            self.last_step = step
            self.steps_seen += 1
            for m in LIVE_NONFINITE:
                v = values.get(m)
                if v is None:
                    continue
                if not math.isfinite(v) and m not in self._nonfinite:
                    self._nonfinite.add(m)
                    what = "NaN" if math.isnan(v) else "Inf"
                    found.append(Finding("nan", m, step, step, "error", f"{m} became {what} at step {step}",
                                         {"value": what, "live": True}))
                elif math.isfinite(v):
                    self._nonfinite.discard(m)
            for d in self.detectors:
                try:
                    found.extend(d.update(step, values))
                except (ValueError, ArithmeticError, IndexError):
                    continue  # one detector's trouble must not stop the watch
        return self._new(found)

    def finish(self) -> list[Finding]:
        """What can only be decided once the log ends."""
        found: list[Finding] = []
        for d in self.detectors:
            try:
                found.extend(d.finalize())
            except (ValueError, ArithmeticError, IndexError):
                continue
        return self._new(found)


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 5.0) -> str | None:
    """POST the JSON payload; return an error message instead of raising (a dead hook must not stop the watch)."""
    import json
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        return f"webhook {url!r}: only http(s) URLs"
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "lossdx-watch"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (the user's own URL)
            resp.read(1024)
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"webhook {url}: {err}"
    return None


def run_hook(cmd: str, payload: dict[str, Any], timeout: float = 60.0) -> str | None:
    """Run the user's --on-problem command with the finding as JSON on stdin and in $LOSSDX_FINDING."""
    import json
    import subprocess

    text = json.dumps(payload)
    try:
        subprocess.run(cmd, shell=True, input=text, text=True, timeout=timeout,  # noqa: S602 (user's command)
                       env={**os.environ, "LOSSDX_FINDING": text}, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"--on-problem {cmd!r}: {err}"
    return None


def watch(path: str, on_finding: Callable[[Finding], bool], interval: float = 2.0, timeout: float | None = None,
          fmt: str | None = None, config: Mapping[str, Any] | None = None,
          sleep: Callable[[float], None] | None = None) -> Watcher:
    """Poll ``path`` every ``interval`` seconds until ``timeout`` (or forever), calling ``on_finding`` for each
    new finding; stop early when it returns True. Returns the watcher (its ``finish`` has run)."""
    import time

    sleep = sleep or time.sleep
    w = Watcher(path, fmt, config)
    start = time.monotonic()
    while True:
        for f in w.poll():
            if on_finding(f):
                return w
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        sleep(interval)
    for f in w.finish():
        if on_finding(f):
            break
    return w


__all__ = ["Tail", "Watcher", "post_webhook", "run_hook", "watch"]
