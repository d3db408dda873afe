"""Run by tests/guard/test_distributed.py: DDP on gloo (CPU), one rank gets a NaN batch. Each rank writes what it
saw and decided to <out>/rank<r>.json."""

from __future__ import annotations

import datetime
import json
import math
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lossdx.guard import Policy, TorchGuard  # noqa: E402
from tests.guard.tiny import batch, make  # noqa: E402


def worker(rank: int, world: int, out: str, mode: str, nan_rank: int, nan_at: int, steps: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=90))
    model, opt, sched = make(seed=0)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    skip_updates = mode == "skip"
    policy = Policy(on_nan="warn" if skip_updates else "rollback", snapshot_every=10)
    guard = TorchGuard(ddp, opt, sched, out_dir=os.path.join(out, "guard"), policy=policy, check_every=5,
                       skip_updates=skip_updates)
    if mode == "skip" and rank == 0:  # a guard bug on one rank: its core disables itself, nobody may hang

        def broken(step, values):
            raise RuntimeError("detector bug")

        guard.core.detectors[0].update = broken
    nonfinite_weights_at = []
    pos = 0
    while pos < steps:
        x, y, ids = batch(pos * world + rank)  # each rank its shard
        poison = math.nan if (rank == nan_rank and pos == nan_at) else 0.0
        loss = ddp(x, y, poison=poison)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(ddp.parameters(), 1.0)
        guard.optimizer_step(loss, gn)
        sched.step()
        opt.zero_grad(set_to_none=True)
        if not all(torch.isfinite(p).all() for p in model.parameters()):  # the test's own check, a sync
            nonfinite_weights_at.append(pos)
        act = guard.step(loss, grad_norm=gn, batch_ids=ids, position=pos)
        if act.stop:
            break
        pos = act.position
    guard.close()
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as fh:
        json.dump({"rank": rank, "records": [[r["step"], r["kind"], r["metric"], r["action"]]
                                             for r in guard.records],
                   "notes": guard.core.notes, "skip": sorted(guard.skip), "final_position": pos,
                   "nonfinite_weights_at": nonfinite_weights_at, "weights": flat[:64].tolist(),
                   "finite": bool(torch.isfinite(flat).all()), "disabled": guard.disabled,
                   "core_disabled": guard.core.disabled}, fh)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    world, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    mp.spawn(worker, args=(world, out, mode, world - 1, 40, 70), nprocs=world, join=True)
