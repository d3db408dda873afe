import json
import math

import pytest

from lossdx.exceptions import CorruptLog
from lossdx.readers import read

STATE = """{
  "best_metric": null, "epoch": 1.0, "global_step": 40, "logging_steps": 10,
  "log_history": [
    {"epoch": 0.25, "grad_norm": 4.5, "learning_rate": 0.0001, "loss": 7.77, "step": 10},
    {"epoch": 0.5, "grad_norm": NaN, "learning_rate": 0.0002, "loss": 6.6, "step": 20},
    {"epoch": 0.5, "eval_loss": 6.9, "eval_runtime": 1.5, "eval_samples_per_second": 100.0, "step": 20},
    {"epoch": 0.5, "eval_g0_loss": 7.1, "step": 20},
    {"epoch": 0.75, "grad_norm": Infinity, "learning_rate": 0.0003, "loss": 5.3, "step": 30},
    {"epoch": 1.0, "step": 40, "total_flos": 1e15, "train_loss": 6.5, "train_runtime": 12.0}
  ]
}"""


def test_trainer_state(tmp_path):
    f = tmp_path / "trainer_state.json"
    f.write_text(STATE)
    run = read(str(f))
    assert run.source["format"] == "hf_trainer_state"
    assert run.series["train/loss"].points() == [(10, 7.77), (20, 6.6), (30, 5.3)]  # summary row is not a point
    g = run.series["train/grad_norm"].values
    assert g[0] == 4.5 and math.isnan(g[1]) and math.isinf(g[2])
    assert run.series["val/loss"].points() == [(20, 6.9)]
    assert run.series["val/g0_loss"].points() == [(20, 7.1)]
    assert run.meta["log_window"] == 10
    assert run.meta["hf_summary"]["train_loss"] == 6.5
    assert any("logging_nan_inf_filter" in n for n in run.meta["notes"])


def test_window_inferred_when_logging_steps_missing(tmp_path):
    doc = json.loads(STATE.replace("NaN", "1.0").replace("Infinity", "2.0"))
    del doc["logging_steps"]
    f = tmp_path / "trainer_state.json"
    f.write_text(json.dumps(doc))
    assert read(str(f)).meta["log_window"] == 10


def test_truncated_json_is_an_input_error(tmp_path):
    f = tmp_path / "trainer_state.json"
    f.write_text(STATE[: len(STATE) // 2])
    with pytest.raises(CorruptLog, match="invalid JSON"):
        read(str(f))
