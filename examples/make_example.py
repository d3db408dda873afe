"""Make the bundled example log: a tiny GPT trained on the CPU for about a minute, with a known fault.

    $ pip install torch==2.13.0 && python examples/make_example.py

The model is a 2-layer, 64-wide byte-level GPT trained on Python source from the standard library,
with AdamW at 3e-3, a 40-step warmup, cosine decay and *no gradient clipping*. The fault: at step
520 the data loader serves one batch of random bytes (a corrupted shard), the classic "bad batch".
The log is written the way Karpathy's build-nanogpt prints it (``step N | loss: ... | lr ... | norm:
... | dt: ...ms | tok/sec: ...`` plus ``validation loss: ...`` every 50 steps), together with the
config the user would have, into ``src/lossdx/examples/`` where ``lossdx demo`` finds them.
"""

from __future__ import annotations

import math
import os
import sys
import sysconfig
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "lossdx", "examples")
CONFIG = dict(
    n_layer=2, n_head=4, n_embd=64, block_size=64, batch_size=16, gradient_accumulation_steps=1,
    max_iters=800, learning_rate=3e-3, min_lr=3e-4, warmup_iters=40, lr_decay_iters=800, schedule="cosine",
    weight_decay=0.1, beta1=0.9, beta2=0.95, grad_clip=0.0, dropout=0.0, dtype="float32", vocab_size=256,
    eval_interval=50, eval_iters=10, seed=1337,
)
BAD_BATCH_STEP = 520


class Block(nn.Module):
    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.attn = nn.MultiheadAttention(d, n_head, bias=False, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d, bias=False), nn.GELU(), nn.Linear(4 * d, d, bias=False))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        d = c["n_embd"]
        self.wte, self.wpe = nn.Embedding(c["vocab_size"], d), nn.Embedding(c["block_size"], d)
        self.blocks = nn.ModuleList(Block(d, c["n_head"]) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.head = nn.Linear(d, c["vocab_size"], bias=False)
        self.head.weight = self.wte.weight  # tied, as in nanoGPT
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for b in self.blocks:
            x = b(x, mask)
        return self.head(self.ln_f(x))


def corpus() -> bytes:
    """Python source of the standard library: real text, on every machine, no download."""
    root = sysconfig.get_paths()["stdlib"]
    chunks, size = [], 0
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), "rb") as fh:
                data = fh.read()
            chunks.append(data)
            size += len(data)
        if size > 3_000_000:
            break
    return b"".join(chunks)


def lr_at(it: int, c: dict) -> float:
    if it < c["warmup_iters"]:
        return c["learning_rate"] * (it + 1) / c["warmup_iters"]
    ratio = min(1.0, (it - c["warmup_iters"]) / (c["lr_decay_iters"] - c["warmup_iters"]))
    return c["min_lr"] + 0.5 * (1 + math.cos(math.pi * ratio)) * (c["learning_rate"] - c["min_lr"])


def main() -> None:
    c = CONFIG
    torch.manual_seed(c["seed"])
    torch.set_num_threads(2)
    data = torch.frombuffer(bytearray(corpus()), dtype=torch.uint8).long()
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    gen = torch.Generator().manual_seed(c["seed"])

    def batch(split: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(split) - c["block_size"] - 1, (c["batch_size"],), generator=gen)
        x = torch.stack([split[i:i + c["block_size"]] for i in ix])
        y = torch.stack([split[i + 1:i + 1 + c["block_size"]] for i in ix])
        return x, y

    model = TinyGPT(c)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["learning_rate"], betas=(c["beta1"], c["beta2"]))
    n_params = sum(p.numel() for p in model.parameters())
    tokens_per_iter = c["batch_size"] * c["block_size"] * c["gradient_accumulation_steps"]
    lines = [f"number of parameters: {n_params / 1e6:.2f}M", f"tokens per iteration will be: {tokens_per_iter:,}"]
    for step in range(c["max_iters"]):
        t0 = time.time()
        if step % c["eval_interval"] == 0 or step == c["max_iters"] - 1:
            model.eval()
            with torch.no_grad():
                losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
                          for x, y in (batch(val) for _ in range(c["eval_iters"]))]
            model.train()
            lines.append(f"validation loss: {sum(losses) / len(losses):.4f}")
        x, y = batch(train)
        if step == BAD_BATCH_STEP:  # the fault: a corrupted shard serves random bytes
            x = torch.randint(0, 256, x.shape, generator=gen)
            y = torch.randint(0, 256, y.shape, generator=gen)
        lr = lr_at(step, c)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))  # measure only: no clipping
        opt.step()
        dt = time.time() - t0
        lines.append(f"step {step:5d} | loss: {loss.item():.6f} | lr {lr:.4e} | norm: {norm.item():.4f} | "
                     f"dt: {dt * 1000:.2f}ms | tok/sec: {tokens_per_iter / dt:.2f}")
        if step % 100 == 0:
            print(lines[-1], file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "train.log"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    cfg = dict(c, n_params=n_params, dataset_tokens=int(n), tokens_per_iter=tokens_per_iter)
    with open(os.path.join(OUT, "config.py"), "w") as fh:
        fh.write("# config of the bundled example run (examples/make_example.py)\n")
        for k, v in cfg.items():
            fh.write(f"{k} = {v!r}\n")
    print(f"wrote {OUT}/train.log and config.py; the bad batch is at step {BAD_BATCH_STEP}", file=sys.stderr)


if __name__ == "__main__":
    main()
