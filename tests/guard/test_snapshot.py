"""Snapshots are atomic: a writer killed with SIGKILL mid-snapshot leaves the previous one loadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from lossdx.guard.snapshot import SnapshotStore, load_snapshot, rng_state, set_rng_state  # noqa: E402

_WRITER = textwrap.dedent("""
    import os, sys, time
    import torch
    from lossdx.guard.snapshot import SnapshotStore
    store = SnapshotStore(sys.argv[1], keep=2)
    store.save(10, {"step": 10, "model": {"w": torch.ones(256, 256)}})
    real_fsync = os.fsync
    def stall(fd):  # the new snapshot is in its temp file, not yet renamed: get killed here
        real_fsync(fd)
        print("WRITING", flush=True)
        time.sleep(120)
    os.fsync = stall
    store.save(20, {"step": 20, "model": {"w": torch.full((256, 256), float("nan"))}})
    print("NOT KILLED", flush=True)
""")


def test_kill_9_during_a_snapshot_leaves_the_previous_one_loadable(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.path.abspath("src"),
                                                                       os.environ.get("PYTHONPATH", "")] if p))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "WRITING"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert any(".tmp" in n for n in os.listdir(tmp_path))  # the half-done snapshot is still a temp file
    store = SnapshotStore(str(tmp_path), keep=2)  # a new run cleans the leftovers of its rank
    assert store.steps() == [10] and store.latest() == 10
    assert not any(".tmp" in n for n in os.listdir(tmp_path))
    snap = store.load(10)
    assert snap["step"] == 10 and torch.equal(snap["model"]["w"], torch.ones(256, 256))


def test_keep_k_and_latest_before(tmp_path):
    store = SnapshotStore(str(tmp_path), keep=2)
    for step in (0, 10, 20, 30):
        store.save(step, {"step": step})
    assert store.steps() == [20, 30]
    assert store.latest(before=30) == 20 and store.latest(before=20) is None
    other_rank = SnapshotStore(str(tmp_path), keep=2, rank=1)
    assert other_rank.steps() == []


def test_rng_states_round_trip_through_a_snapshot_file(tmp_path):
    import random

    import numpy as np

    store = SnapshotStore(str(tmp_path))
    store.save(1, {"rng": rng_state()})
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    set_rng_state(load_snapshot(store.path(1))["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
