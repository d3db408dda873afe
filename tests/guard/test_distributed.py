"""torch.distributed on gloo (CPU): every rank takes the same decision at the same step, nobody hangs when only
one rank sees a NaN, the in-graph skip keeps the NaN out of every rank's weights. Each run has a timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

WORKER = os.path.join(os.path.dirname(__file__), "dist_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, world: int, mode: str, timeout: float = 240) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.path.join(ROOT, "src"), ROOT, os.environ.get("PYTHONPATH", "")] if p))
    proc = subprocess.Popen([sys.executable, WORKER, str(world), str(tmp_path), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the spawned ranks too
        proc.communicate()
        pytest.fail(f"{world} ranks did not finish within {timeout} s (a hang)")
    assert proc.returncode == 0, out[-3000:]
    results = []
    for r in range(world):
        with open(tmp_path / f"rank{r}.json", encoding="utf-8") as fh:
            results.append(json.load(fh))
    return results


@pytest.mark.parametrize("world", [2, 4])
def test_nan_on_one_rank_rolls_back_every_rank_at_the_same_step(tmp_path, world):
    results = _run(tmp_path, world, "rollback")
    first = results[0]
    assert first["records"] and first["records"][0][:2] == [41, "nan"] and first["records"][0][3] == "rollback"
    for res in results:
        assert res["records"] == first["records"]  # the same decisions at the same steps on every rank
        assert res["skip"] == [40] and res["final_position"] == 70 and res["finite"] and not res["disabled"]
        assert res["weights"] == first["weights"]  # still in sync after the rollback
    names = os.listdir(tmp_path / "guard" / "snapshots")
    for r in range(world):  # every rank snapshots its own state
        assert any(n.endswith(f"-rank{r}.pt") and n.startswith("snapshot-") for n in names)
    assert os.path.exists(tmp_path / "guard" / "guard_report.json")  # rank 0 writes the report


def test_in_graph_skip_keeps_the_nan_out_of_every_ranks_weights(tmp_path):
    """Rank 1 gets the NaN batch; rank 0's guard core has a bug and disables itself: still no hang."""
    results = _run(tmp_path, 2, "skip")
    for res in results:
        assert res["nonfinite_weights_at"] == []  # never, on any rank
        assert res["finite"] and res["final_position"] == 70 and not res["disabled"]
    assert results[0]["core_disabled"] and not results[1]["core_disabled"]
    assert any("update of step 41 undone" in n for n in results[1]["notes"])
    assert results[0]["weights"] == results[1]["weights"]
