"""A tiny GPT and a deterministic data source for the guard tests (CPU, a few ms per step)."""

from __future__ import annotations

import math

import torch
from torch import nn

# one thread: the CI machine has two cores, and torch's default thread pool thrashes on them (15x slower)
torch.set_num_threads(1)

VOCAB, CTX, BATCH = 32, 16, 8


class TinyGPT(nn.Module):
    def __init__(self, vocab: int = VOCAB, ctx: int = CTX, dim: int = 32) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(ctx, dim)
        self.block = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(ctx), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, poison: float = 0.0) -> torch.Tensor:
        t = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(t))
        if poison != 0.0 or math.isnan(poison):
            h = h + poison  # the injected NaN input
        h = self.block(h, src_mask=self.mask[:t, :t], is_causal=True)
        return nn.functional.cross_entropy(self.head(h).reshape(-1, VOCAB), y.reshape(-1))


def batch(position: int, garbage: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Batch ``position`` of the data order: sequences counting up by a per-sample stride (learnable fast);
    a garbage batch holds random tokens. Sample ids are position * BATCH + row."""
    g = torch.Generator().manual_seed(1000 + position)
    start = torch.randint(0, VOCAB, (BATCH, 1), generator=g)
    stride = torch.randint(1, 3, (BATCH, 1), generator=g)
    seq = (start + stride * torch.arange(CTX + 1)) % VOCAB
    if garbage:
        seq = torch.randint(0, VOCAB, (BATCH, CTX + 1), generator=g)
    return seq[:, :-1], seq[:, 1:], [position * BATCH + i for i in range(BATCH)]


def make(seed: int = 0, lr: float = 3e-3):
    torch.manual_seed(seed)
    model = TinyGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    return model, opt, sched


def train(model, opt, sched, guard=None, n: int = 120, garbage_at=(), nan_at=(), skip=(), stop_at_action=True):
    """The README's plain loop. Returns the list of positions trained, in order."""
    trained = []
    pos = 0
    while pos < n:
        if pos in skip:
            pos += 1
            continue
        x, y, ids = batch(pos, garbage=pos in garbage_at)
        loss = model(x, y, poison=math.nan if pos in nan_at else 0.0)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if guard is not None:
            guard.optimizer_step(loss, gn)
        else:
            opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        trained.append(pos)
        if guard is None:
            pos += 1
            continue
        act = guard.step(loss, grad_norm=gn, batch_ids=ids, position=pos)
        if act.stop and stop_at_action:
            break
        pos = act.position
    return trained
