"""What the log cannot show: said as info findings, so a clean report is not read as a clean run."""

from __future__ import annotations

import numpy as np

from ..findings import Finding
from ..model import Series
from .wholerun import WholeRunDetector, clean


class LogLimitsDetector(WholeRunDetector):
    name = "log_limits"
    requires = ("train/loss", "val/loss", "train/grad_norm", "train/lr")

    def analyze(self, series: dict[str, Series]) -> list[Finding]:
        out = []
        ls, lv = clean(series.get("train/loss"))
        if not lv.size:
            return out
        a, b = int(ls[0]), int(ls[-1])

        def note(msg: str, **ev) -> None:
            out.append(Finding("log_limit", "train/loss", a, b, "info", msg, ev))

        w = self.context_.log_window
        if w > 1:
            note(f"each logged loss is a mean over {w} steps: single-step spikes look ~{w}x smaller and a NaN can be "
                 f"averaged away or filtered out", window=w)
        elif self.context_.log_interval > 1:
            note(f"the loss is logged every {self.context_.log_interval} steps: events between logged steps are "
                 f"invisible", interval=self.context_.log_interval)
        if "val/loss" not in series or not np.isfinite(series["val/loss"].values).any():
            note("no validation loss logged: overfitting cannot be judged")
        if "train/grad_norm" not in series:
            note("no gradient norm logged: explosions and spike precursors cannot be seen")
        if "train/lr" not in series and not self.context_.config:
            note("no learning rate logged and no config: the schedule cannot be checked")
        prof = self.context_.profile
        if prof.kind == "classifier":
            if not prof.n_classes:
                note("number of classes unknown (no config): the loss cannot be checked against ln(C), the loss of a "
                     "uniform guess")
        elif not self.context_.config.get("vocab_size"):
            note("vocabulary size unknown (no config): the initial loss cannot be checked against ln(V)")
        if not prof.covers_start:
            excerpt = next((r for r in prof.reasons if r.startswith("the log has no step numbers")), None)
            where = excerpt.split(": an excerpt")[0] if excerpt else f"the log starts at step {prof.first_step}"
            note(f"{where}: the start of training (initial loss, warmup) is not in it")
        seen, read = prof.record_lines_seen, prof.record_lines_read
        if seen and read is not None and seen >= 5 and read < 0.5 * seen:
            out.append(Finding("log_limit", "train/loss", a, b, "warning",
                               f"only {read} of {seen} record-looking lines of the log were understood: the report "
                               f"judges a fraction of the run (pass --input-format, or report the format)",
                               {"record_lines_seen": seen, "record_lines_read": read}))
        return out
