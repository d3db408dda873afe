"""The guard in a plain PyTorch loop with a tiny GPT on the CPU: catch, record, roll back, skip, stop."""

from __future__ import annotations

import json
import math
import os

import pytest

torch = pytest.importorskip("torch")

import lossdx  # noqa: E402
from lossdx.guard import Policy, TorchGuard, load_snapshot  # noqa: E402

from .tiny import BATCH, batch, make, train  # noqa: E402


def _json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_garbage_batch_caught_at_its_step_with_its_batch_ids(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(on_spike="warn", snapshot_every=0),
                       check_every=8)
    trained = train(model, opt, sched, guard, n=140, garbage_at=(100,))
    report = guard.close()
    assert len(trained) == 140  # warn only: training went on
    spikes = [r for r in guard.records if r["kind"] == "spike"]
    assert len(spikes) == 1
    rec = spikes[0]
    assert rec["step"] == 101 and rec["position"] == 100  # step 101 trained batch 100
    assert rec["batch_ids"] == [100 * BATCH + i for i in range(BATCH)]
    assert rec["loss"] > 3 * guard.core.row(100)["train/loss"] and rec["action"] == "warn"
    on_disk = _jsonl(tmp_path / "guard_events.jsonl")
    assert on_disk[0]["batch_ids"] == rec["batch_ids"]
    # the report of its own history: a normal lossdx report, the spike at the same step
    assert report is not None and any(f.kind == "spike" and f.start_step == 101 for f in report.findings)
    assert _json(tmp_path / "guard_report.json")["verdict"] == report.verdict


def test_analysis_of_the_history_finds_what_the_guard_raised_live(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(on_nan="warn", snapshot_every=0),
                       check_every=5)
    train(model, opt, sched, guard, n=150, garbage_at=(90,), nan_at=(140,))
    guard.close()
    live = sorted(json.dumps(f.to_dict(), sort_keys=True) for f in guard.core.findings)
    pinned = lossdx.analyze(guard.core.history_run())  # the history with the context the guard judged with
    assert sorted(json.dumps(f.to_dict(), sort_keys=True) for f in pinned.findings) == live
    offline = lossdx.analyze_path(str(tmp_path / "guard_history.jsonl"), auto_config=False)  # `lossdx analyze`
    assert sorted(json.dumps(f.to_dict(), sort_keys=True) for f in offline.findings) == live
    assert {"spike", "nan"} <= {f.kind for f in guard.core.findings}


def test_nan_input_rolls_back_and_skips_bit_identical_to_a_clean_run(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(snapshot_every=20), check_every=5)
    trained = train(model, opt, sched, guard, n=130, nan_at=(100,))
    guard.close()
    assert [r["action"] for r in guard.records] == ["rollback", "rollback"]  # loss and grad norm, step 101
    assert {r["step"] for r in guard.records} == {101} and guard.skip == {100}
    assert trained.count(101) == 2 and 100 not in trained[trained.index(101) + 1:]
    assert any("rolled back to step 100" in n for n in guard.core.notes)
    clean_model, clean_opt, clean_sched = make()
    train(clean_model, clean_opt, clean_sched, None, n=130, skip=(100,))
    assert _same_weights(model, clean_model)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], clean_opt.state_dict()["state"][0]["exp_avg"])
    assert sched.last_epoch == clean_sched.last_epoch
    poisoned = load_snapshot(str(tmp_path / "snapshots" / "poisoned-rank0.pt"))
    assert not all(torch.isfinite(t).all() for t in poisoned["model"].values())  # kept for the post-mortem


def test_rollback_skips_the_next_batches_too(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(snapshot_every=20, skip_next=3),
                       check_every=5)
    trained = train(model, opt, sched, guard, n=110, nan_at=(70,))
    guard.close()
    assert guard.skip == {70, 71, 72, 73}
    after = trained[trained.index(69, trained.index(69) + 1) + 1:]  # positions trained after the replayed 69
    assert after[0] == 74
    clean_model, clean_opt, clean_sched = make()
    train(clean_model, clean_opt, clean_sched, None, n=110, skip=(70, 71, 72, 73))
    assert _same_weights(model, clean_model)


def test_stop_policy_stops_cleanly_and_writes_the_report(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(on_nan="stop", snapshot_every=50),
                       check_every=4)
    trained = train(model, opt, sched, guard, n=200, nan_at=(60,))
    assert len(trained) < 70  # stopped within a couple of check intervals
    assert guard.records[0]["action"] == "stop" and guard.records[0]["step"] == 61
    report = _json(tmp_path / "guard_report.json")
    assert report["verdict"] == "problem"
    assert any(f["kind"] == "nan" and f["start_step"] == 61 for f in report["findings"])
    assert os.path.exists(tmp_path / "snapshots" / "poisoned-rank0.pt")


def test_no_good_snapshot_means_stop_not_a_bad_rollback(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(snapshot_every=0), check_every=4)
    trained = train(model, opt, sched, guard, n=100, nan_at=(30,))
    assert len(trained) < 40 and guard.records[0]["action"] == "rollback"
    assert guard.closed


def test_repeated_spikes_cut_the_learning_rate(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path),
                       policy=Policy(on_spike="warn", snapshot_every=0, lr_cut=0.5, lr_cut_after=2), check_every=4)
    train(model, opt, sched, guard, n=200, garbage_at=(100, 140))
    guard.close()
    assert sum(r["kind"] == "spike" for r in guard.records) >= 2
    assert guard.core.lr_scale == 0.5
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.5)  # the scheduler's base LR was cut too


def test_in_graph_skip_undoes_a_nan_update_without_a_rollback(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(on_nan="warn", snapshot_every=0),
                       check_every=8, skip_updates=True)
    train(model, opt, sched, guard, n=100, nan_at=(80,))
    guard.close()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any("update of step 81 undone" in n for n in guard.core.notes)
    assert guard.core.row(100)["train/loss"] < 1.5  # training went on from the good weights


def test_in_graph_skip_is_exact_when_nothing_is_skipped(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(snapshot_every=0), check_every=8,
                       skip_updates=True)
    train(model, opt, sched, guard, n=40)
    guard.close()
    ref_model, ref_opt, ref_sched = make()
    train(ref_model, ref_opt, ref_sched, None, n=40)
    assert _same_weights(model, ref_model)


def test_internal_error_disables_the_guard_and_training_goes_on(tmp_path, caplog):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(snapshot_every=0), check_every=4)

    def broken(*a, **k):
        raise RuntimeError("detector bug")

    guard.core.detectors[0].update = broken
    trained = train(model, opt, sched, guard, n=30)
    guard.close()
    assert trained == list(range(30)) and guard.core.disabled
    assert sum("lossdx guard disabled" in r.message for r in caplog.records) == 1


def test_snapshot_holds_everything_a_resume_needs(tmp_path):
    model, opt, sched = make()
    guard = TorchGuard(model, opt, sched, out_dir=str(tmp_path), policy=Policy(snapshot_every=10), check_every=5)
    train(model, opt, sched, guard, n=20)
    snap = load_snapshot(str(tmp_path / "snapshots" / "snapshot-000000020-rank0.pt"))
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "position", "step"} <= set(snap)
    assert snap["step"] == 20 and snap["position"] == 20
    assert {"python", "numpy", "torch"} <= set(snap["rng"])
    assert sorted(os.listdir(tmp_path / "snapshots")) == ["snapshot-000000010-rank0.pt",
                                                          "snapshot-000000020-rank0.pt"]  # keep 2
    assert math.isfinite(snap["scheduler"]["_last_lr"][0])


def test_grad_scaler_loss_scale_is_recorded_and_snapshotted(tmp_path):
    model, opt, sched = make()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    guard = TorchGuard(model, opt, sched, scaler=scaler, out_dir=str(tmp_path), policy=Policy(snapshot_every=10),
                       check_every=5)
    for pos in range(20):
        x, y, ids = batch(pos)
        loss = model(x, y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        sched.step()
        opt.zero_grad(set_to_none=True)
        guard.step(loss, grad_norm=gn, batch_ids=ids, position=pos)
    guard.close()
    assert guard.core.row(20)["train/loss_scale"] == 1024.0
    assert load_snapshot(str(tmp_path / "snapshots" / "snapshot-000000020-rank0.pt"))["scaler"]["scale"] == 1024.0
