"""Step time of a GPT training loop with the lossdx guard vs no guard vs a naive ``.item()``-per-step guard.

    python benchmarks/guard_overhead.py                      # CUDA if present (GPT-2-small sized, bf16), else CPU
    python benchmarks/guard_overhead.py --device cpu --threads 1

Modes (each a full training step: forward, backward, clip, AdamW, scheduler):
  none         no guard
  guard        lossdx.guard.TorchGuard: loss and grad norm stay on the device, checked every --check-every steps
  guard_skip   the same with skip_updates=True (in-graph undo of non-finite / > 6-sigma updates)
  naive        loss.item() and grad_norm.item() every step, fed to the same detectors (what a naive guard does)
Modes are interleaved over --repeats rounds; the median ms/step of the rounds is reported, with the overhead
against ``none``. Snapshots are off (--snapshot-every 0): their cost is one state_dict write per interval, not a
per-step cost. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from lossdx.guard import Guard, Policy, TorchGuard  # noqa: E402

SIZES = {  # layers, width, heads, batch, context, vocab
    "gpt2": (12, 768, 12, 16, 1024, 50304),
    "small": (4, 256, 4, 8, 256, 8192),
    "tiny": (2, 128, 4, 8, 128, 4096),
}


class GPT(nn.Module):
    def __init__(self, layers: int, width: int, heads: int, ctx: int, vocab: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(ctx, width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(ctx), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(t, device=x.device))
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        logits = self.head(self.norm(h))
        return nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


def run_mode(mode: str, size: str, device: str, steps: int, warmup: int, check_every: int, out_dir: str) -> float:
    layers, width, heads, bsz, ctx, vocab = SIZES[size]
    torch.manual_seed(0)
    model = GPT(layers, width, heads, ctx, vocab).to(device)
    fused = device == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=fused)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    data = torch.randint(0, vocab, (8, bsz, ctx + 1), device=device)
    amp = torch.autocast(device_type=device, dtype=torch.bfloat16) if device == "cuda" else None
    guard = core = None
    if mode in ("guard", "guard_skip"):
        guard = TorchGuard(model, opt, sched, out_dir=os.path.join(out_dir, mode),
                           policy=Policy(snapshot_every=0, write_report=False), check_every=check_every,
                           skip_updates=mode == "guard_skip")
    elif mode == "naive":
        core = Guard(None, Policy(write_report=False))

    spent = [0.0]  # CPU seconds of this thread inside the guard's own calls

    def one(i: int) -> None:
        batch = data[i % data.shape[0]]
        x, y = batch[:, :-1], batch[:, 1:]
        if amp is not None:
            with amp:
                loss = model(x, y)
        else:
            loss = model(x, y)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if guard is not None:
            guard.optimizer_step(loss, gn)
        else:
            opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        c0 = time.thread_time()
        if guard is not None:
            guard.step(loss, grad_norm=gn, position=i)
        elif core is not None:
            lv, gv = loss.item(), gn.item()  # two host syncs per step
            core.observe(i + 1, {"train/loss": lv, "train/grad_norm": gv, "train/lr": sched.get_last_lr()[0]})
        spent[0] += time.thread_time() - c0

    for i in range(warmup):
        one(i)
    if device == "cuda":
        torch.cuda.synchronize()
    spent[0] = 0.0
    t0, c0 = time.perf_counter(), time.thread_time()
    for i in range(warmup, warmup + steps):
        one(i)
    if device == "cuda":
        torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / steps * 1000
    cpu = (time.thread_time() - c0) / steps * 1000
    if guard is not None:
        guard.close()
    return {"wall": wall, "cpu": cpu, "guard_cpu": spent[0] / steps * 1000}


def detector_cost(n: int = 200_000) -> tuple[float, float]:
    """Host CPU microseconds per step of the detectors alone (Guard.observe over a synthetic run of ``n`` steps),
    and the bytes per step the guard then holds (tracemalloc; numpy reports its buffers to it)."""
    import tracemalloc

    from lossdx.detectors.base import iter_steps
    from lossdx.testing.synthetic import make_curve

    run, _truth = make_curve("spike", n=n, seed=1)
    rows = list(iter_steps(run, ("train/loss", "train/grad_norm", "train/lr")))
    core = Guard(None, Policy(write_report=False))
    t0 = time.thread_time()
    for step, values in rows:
        core.observe(step, values)
    us = (time.thread_time() - t0) / len(rows) * 1e6
    tracemalloc.start()
    core = Guard(None, Policy(write_report=False))
    for step, values in rows:
        core.observe(step, values)
    held = tracemalloc.get_traced_memory()[0] / len(rows)
    tracemalloc.stop()
    return us, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="gpt2 on CUDA, small on CPU by default")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--modes", default="none,guard,guard_skip,naive")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    size = args.size or ("gpt2" if device == "cuda" else "small")
    steps = args.steps or (100 if device == "cuda" else 30)
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    times: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as out_dir:
        for _ in range(args.repeats):
            for mode in modes:  # interleaved: drifts in machine load hit every mode alike
                times[mode].append(run_mode(mode, size, device, steps, args.warmup, args.check_every, out_dir))
    med = {m: {k: statistics.median(r[k] for r in v) for k in ("wall", "cpu", "guard_cpu")}
           for m, v in times.items()}
    base = med["none"] if "none" in med else {"wall": math.nan, "cpu": math.nan}
    name = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{name}, size {size} {SIZES[size]}, {steps} timed steps x {args.repeats} rounds, "
          f"check every {args.check_every}, torch {torch.__version__}")
    # wall: what training feels; cpu: this thread's CPU time (robust on a loaded CPU machine, meaningless on
    # CUDA where the work is on the device); guard: CPU time inside the guard's own calls
    print(f"{'mode':<12}{'wall ms':>10}{'overhead':>10}{'cpu ms':>10}{'overhead':>10}{'guard ms':>10}   wall rounds")
    for m in modes:
        w, c, g = med[m]["wall"], med[m]["cpu"], med[m]["guard_cpu"]
        print(f"{m:<12}{w:>10.2f}{100 * (w / base['wall'] - 1):>9.2f}%{c:>10.2f}{100 * (c / base['cpu'] - 1):>9.2f}%"
              f"{g:>10.3f}   " + " ".join(f"{r['wall']:.1f}" for r in times[m]))
    det_us, det_bytes = detector_cost()
    print(f"detectors alone (Guard.observe, host, 200k steps): {det_us:.1f} us/step, {det_bytes:.0f} bytes/step held")
    print(json.dumps({"device": name, "detectors_us_per_step": det_us, "guard_bytes_per_step": det_bytes, "size": size, "steps": steps, "repeats": args.repeats,
                      "check_every": args.check_every, "ms_per_step": med, "rounds": times}))


if __name__ == "__main__":
    main()
