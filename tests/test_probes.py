"""overfit_one_batch tells a learnable pipeline from a broken one; lr_find agrees with torch-lr-finder."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from lossdx.probes import compute_loss, lr_find, overfit_one_batch  # noqa: E402

torch.set_num_threads(1)  # tiny models: threads only fight over the shared cores
V, T, B = 32, 16, 64  # 64 rows from 32 possible starts: shuffled labels contradict each other


class TinyGPT(nn.Module):
    """A one-block causal transformer; nanoGPT's calling convention: model(idx, targets) -> (logits, loss)."""

    def __init__(self, d: int = 16, detach_logits: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.tok = nn.Embedding(V, d)
        self.pos = nn.Embedding(T, d)
        self.block = nn.TransformerEncoderLayer(d, 2, 4 * d, dropout=dropout, batch_first=True)
        self.head = nn.Linear(d, V)
        self.detach_logits = detach_logits

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(t))
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        logits = self.head(self.block(h, src_mask=mask, is_causal=True))
        if targets is None:
            return logits
        out = logits.detach() if self.detach_logits else logits  # the bug: a detach between model and loss
        return logits, F.cross_entropy(out.reshape(-1, V), targets.reshape(-1))


def structured_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of x_{t+1} = (5 x_t + 3) mod V: the next token is a function of the current one."""
    g = np.random.default_rng(seed)
    x = np.zeros((B, T + 1), dtype=np.int64)
    x[:, 0] = g.integers(0, V, B)
    for t in range(T):
        x[:, t + 1] = (5 * x[:, t] + 3) % V
    x = torch.from_numpy(x)
    return x[:, :-1], x[:, 1:]


def test_correct_tiny_gpt_overfits_one_batch_and_is_restored():
    torch.manual_seed(0)
    model = TinyGPT()
    before = copy.deepcopy(model.state_dict())
    res = overfit_one_batch(model, structured_batch(), steps=100, lr=1e-2)
    assert res.ok, str(res)
    assert res.final_loss < 0.1 * res.initial_loss
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_shuffled_labels_do_not_overfit_and_name_the_data():
    torch.manual_seed(0)
    x, y = structured_batch()
    g = torch.Generator().manual_seed(1)
    y_shuffled = y.reshape(-1)[torch.randperm(y.numel(), generator=g)].reshape(y.shape)
    res = overfit_one_batch(TinyGPT(), (x, y_shuffled), steps=100, lr=1e-2)
    assert not res.ok
    assert any("data/labels mismatched" in c for c in res.causes)


def test_detached_loss_is_found():
    torch.manual_seed(0)
    res = overfit_one_batch(TinyGPT(detach_logits=True), structured_batch(), steps=100, lr=1e-2)
    assert not res.ok
    assert res.causes and res.causes[0].startswith("detached graph")


def test_partly_detached_model_is_not_a_pass():
    class HeadOnly(TinyGPT):
        def forward(self, idx, targets=None):
            h = (self.tok(idx) + self.pos(torch.arange(idx.shape[1]))).detach()  # the body gets no gradient
            logits = self.head(h)
            return logits, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))

    torch.manual_seed(0)
    res = overfit_one_batch(HeadOnly(), structured_batch(), steps=60, lr=1e-2)
    assert not res.ok
    assert "tok.weight" in res.causes[0]


def test_frozen_model_and_dropout_are_named():
    torch.manual_seed(0)
    model = TinyGPT()
    for p in model.parameters():
        p.requires_grad_(False)
    res = overfit_one_batch(model, structured_batch(), steps=5)
    assert not res.ok and "frozen" in res.causes[0]
    torch.manual_seed(0)
    x, y = structured_batch()
    res = overfit_one_batch(TinyGPT(dropout=0.5), (x, y[torch.randperm(B)]), steps=20, lr=1e-2)
    assert any("dropout left on" in c for c in res.causes)


def _loader(n: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (n * B, T + 1), generator=g)
    x[:, 1:] = (5 * x[:, :-1] + 3) % V
    ds = torch.utils.data.TensorDataset(x[:, :-1], x[:, 1:])
    return torch.utils.data.DataLoader(ds, batch_size=B, shuffle=False)


def _criterion(logits, y):
    return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))


def test_lr_find_restores_state_and_finds_a_descent():
    torch.manual_seed(0)
    model = TinyGPT()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = copy.deepcopy(model.state_dict())
    res = lr_find(model, opt, _loader(), loss_fn=_criterion, start_lr=1e-6, end_lr=10, num_iter=100)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.param_groups[0]["lr"] == 1e-3 and not opt.state
    assert res.diverged_at is not None and res.diverged_at > res.suggested
    assert 1e-5 < res.suggested < 1.0
    assert len(res.to_dict()["lrs"]) == len(res.losses)
    html = res.to_html()
    import json
    import re

    data = json.loads(re.search(r'id="lossdx-data">(.*?)</script>', html, re.S).group(1))
    marks = {f["kind"]: f["start"] for f in data["panels"][0]["findings"]}
    assert abs(marks["steepest"] - np.log10(res.steepest)) < 1e-5 and "diverged" in marks
    assert len(data["panels"][0]["series"][0]["x"]) == len(res.lrs)


def test_lr_find_agrees_with_torch_lr_finder_within_3x():
    lr_finder = pytest.importorskip("torch_lr_finder")
    torch.manual_seed(0)
    model = TinyGPT()
    ref_model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    ours = lr_find(model, opt, _loader(), loss_fn=_criterion, start_lr=1e-6, end_lr=10, num_iter=100)
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=1e-6)
    finder = lr_finder.LRFinder(ref_model, ref_opt, _criterion, device="cpu")
    finder.range_test(_loader(), end_lr=10, num_iter=100, step_mode="exp", smooth_f=0.05, diverge_th=5)
    lrs, losses = np.array(finder.history["lr"]), np.array(finder.history["loss"])
    lrs, losses = lrs[10:-5], losses[10:-5]  # torch-lr-finder's suggestion: skip_start=10, skip_end=5
    theirs = float(lrs[np.gradient(losses).argmin()])
    assert ours.suggested == ours.steepest
    assert theirs / 3 <= ours.suggested <= theirs * 3, (ours.suggested, theirs)
    assert ours.valley is not None and ours.valley < ours.diverged_at


def test_compute_loss_conventions():
    torch.manual_seed(0)
    model = TinyGPT()
    x, y = structured_batch()
    a = compute_loss(model, (x, y))
    b = compute_loss(model, (x, y), loss_fn=_criterion)
    assert torch.allclose(a, b)


def test_hf_model_with_dict_batch():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=V, n_positions=T, resid_pdrop=0.0,
                                  embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg)
    x, _ = structured_batch()
    res = overfit_one_batch(model, {"input_ids": x, "labels": x}, steps=100, lr=1e-2)  # HF shifts the labels
    assert res.ok, str(res)
