"""The pipeline's own notes: what it asks the user to log never includes what the log already holds."""

import numpy as np

from lossdx.analyze import analyze
from lossdx.model import Series
from lossdx.testing.synthetic import make_curve


def _undecided(rep):
    return next((n for n in rep.run["notes"] if n.startswith(("no cause is certain", "the log shows a problem"))), None)


def _grad_burst(with_lr: bool):
    """A gradient-norm burst no rule pins to a cause: an undecided, low-confidence diagnosis."""
    run, _ = make_curve("healthy", n=400, seed=0)
    run.series.pop("val/loss", None)
    if not with_lr:
        run.series.pop("train/lr", None)
    g = run.series["train/grad_norm"].values.copy()
    g[-1] = g[:-1].mean() * 1000
    run.series["train/grad_norm"] = Series("train/grad_norm", run.series["train/loss"].steps, g)
    return run


def test_the_undecided_note_asks_only_for_what_is_missing():
    rep = analyze(_grad_burst(with_lr=True))
    note = _undecided(rep)
    assert note is not None, [(d.cause, d.confidence) for d in rep.diagnoses]
    asked = note.split(": to decide, ", 1)[1]
    assert "gradient norm" not in asked and "learning rate" not in asked  # both are in the log
    assert "log a validation loss" in asked
    assert ("--config" in asked) == (not rep.run["config"])
    note = _undecided(analyze(_grad_burst(with_lr=False)))
    assert note is not None and "log the learning rate every step" in note and "gradient norm" not in note
