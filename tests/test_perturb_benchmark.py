"""benchmarks/perturb.py builds its variants as documented: deterministic, the right window, config and points."""

import importlib.util
from pathlib import Path

import numpy as np

from lossdx.model import Run, Series

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "perturb.py"


def _perturb():
    spec = importlib.util.spec_from_file_location("perturb_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _raw():
    steps = np.arange(0, 1000, 10)
    vsteps = np.arange(0, 1000, 100)
    return Run({"train/loss": Series("train/loss", steps, 3.0 * np.exp(-steps / 300.0) + 1.0),
                "train/lr": Series("train/lr", steps, np.full(steps.size, 1e-3)),
                "val/loss": Series("val/loss", vsteps, 3.0 * np.exp(-vsteps / 300.0) + 1.1)},
               config={"lr": 1e-3}, meta={"steps_are_record_numbers": True})


def test_variants_keep_the_documented_window_config_and_points():
    p = _perturb()
    raw = _raw()
    ex, ref = p.make_variant(raw, None, "excerpt30")
    assert int(ex.series["train/loss"].steps[0]) == 300 and int(ex.series["val/loss"].steps[0]) == 300
    assert ex.config == {} and ex.meta["steps_are_record_numbers"] and len(ref) == 100
    thin, _ = p.make_variant(raw, None, "thin10")
    assert len(thin.series["train/loss"]) == 10 and len(thin.series["train/lr"]) == 10
    assert len(thin.series["val/loss"]) == 10  # sparse series keep their points
    first, _ = p.make_variant(raw, None, "first40")
    assert int(first.series["train/loss"].steps[-1]) == 400 and int(first.series["val/loss"].steps[-1]) == 400
    assert raw.config == {"lr": 1e-3} and len(raw.series["train/loss"]) == 100  # the raw run is not modified
    again, _ = p.make_variant(raw, None, "thin10")
    assert np.array_equal(again.series["train/loss"].values, thin.series["train/loss"].values)


def test_a_fault_counts_only_where_the_variant_can_still_show_it():
    p = _perturb()
    raw = _raw()
    ex, ref = p.make_variant(raw, None, "excerpt30")
    assert not p.fault_visible({"steps": [100]}, "excerpt30", ex, ref)
    assert p.fault_visible({"steps": [500]}, "excerpt30", ex, ref)
    assert not p.fault_visible({"steps": [500], "excerpt_from_step": 50}, "excerpt30", ex, ref)
    assert not p.fault_visible({"steps": []}, "excerpt30", ex, ref)  # a whole-run fault needs the whole run
    thin, ref = p.make_variant(raw, None, "thin5")
    assert p.fault_visible({"steps": [500]}, "thin5", thin, ref)  # step 500 is a kept point
    assert not p.fault_visible({"steps": [510]}, "thin5", thin, ref)  # thinned away
    assert p.fault_visible({"steps": []}, "thin5", thin, ref)


def test_the_realcorpus_set_is_the_tune_half_of_generalisation_py():
    import hashlib
    import json
    import os

    import pytest

    p = _perturb()
    labels_path = os.path.join(p.SHARED, "realcorpus", "LABELS.json")
    if not os.path.exists(labels_path):
        pytest.skip("../shared/realcorpus is not beside the repository")
    with open(labels_path) as fh:
        labels = json.load(fh)
    got = p.tune_entries("realcorpus")
    want = {n for n, lab in labels.items() if lab["verdict"] != "unknown"
            and int(hashlib.sha1(n.encode()).hexdigest(), 16) % 2 == 0}
    assert {name for name, *_ in got} == want and want
    assert all(cfg is None and path.startswith(os.path.join(p.SHARED, "realcorpus")) for _, _, path, cfg in got)
    fam = p.tune_entries("families")
    assert fam and all(lab["split"] == "tune" for _, lab, _, _ in fam)


def test_lossonly_keeps_only_the_loss_series_and_excerpt30thin5_thins_the_excerpt():
    p = _perturb()
    raw = _raw()
    raw.series["val/code/loss"] = Series("val/code/loss", raw.series["val/loss"].steps, raw.series["val/loss"].values)
    raw.series["train/loss_scale"] = Series("train/loss_scale", raw.series["train/loss"].steps,
                                            np.full(100, 65536.0))
    raw.meta["hf_max_steps"] = 1000
    lo, ref = p.make_variant(raw, None, "lossonly")
    assert set(lo.series) == {"train/loss", "val/loss", "val/code/loss"}  # no LR, no loss scale
    assert lo.config == {} and "hf_max_steps" not in lo.meta and len(lo.series["train/loss"]) == 100
    assert "train/lr" in raw.series and raw.meta["hf_max_steps"] == 1000  # the raw run is not modified
    # a whole-run fault and a loss-curve fault count; a fault only the LR curve (or no curve) shows does not
    assert p.fault_visible({"steps": [], "symptom": "slow_convergence"}, "lossonly", lo, ref)
    assert p.fault_visible({"steps": [510], "symptom": "spike"}, "lossonly", lo, ref)
    assert not p.fault_visible({"steps": [500], "symptom": "lr_schedule"}, "lossonly", lo, ref)
    assert not p.fault_visible({"steps": [], "symptom": None}, "lossonly", lo, ref)
    ex, ref = p.make_variant(raw, None, "excerpt30thin5")
    assert ex.series["train/loss"].steps.tolist() == list(range(300, 1000, 50))
    assert ex.config == {} and len(ex.series["val/loss"]) == 7  # sparse series keep their points
    assert p.fault_visible({"steps": [500]}, "excerpt30thin5", ex, ref)
    assert not p.fault_visible({"steps": [510]}, "excerpt30thin5", ex, ref)  # thinned away
    assert not p.fault_visible({"steps": [100]}, "excerpt30thin5", ex, ref)  # before the excerpt
    assert not p.fault_visible({"steps": []}, "excerpt30thin5", ex, ref)


def test_a_thinned_fault_needs_its_witness_kept_and_a_record_numbered_log_cannot_place_label_steps():
    p = _perturb()
    raw = _raw()
    loss = raw.series["train/loss"]
    loss.values[51] = 10.0  # the batch of step 500 logged at the next step, 510
    thin, ref = p.make_variant(raw, None, "thin5")
    assert not p.fault_visible({"steps": [500]}, "thin5", thin, ref)  # its witness, step 510, is thinned away
    loss.values[51] = 1.2
    thin, ref = p.make_variant(raw, None, "thin5")
    assert p.fault_visible({"steps": [500]}, "thin5", thin, ref)  # no event next: step 500 itself is the witness
    # label steps past the log's last step (990) count the trainer's steps in a log numbering its records
    for variant in ("thin5", "excerpt30thin5"):
        run, ref = p.make_variant(raw, None, variant)
        assert not p.fault_visible({"steps": [500, 2050]}, variant, run, ref)
    run, ref = p.make_variant(raw, None, "noconfig")
    assert p.fault_visible({"steps": [500, 2050]}, "noconfig", run, ref)  # the whole log: the fault is in it
