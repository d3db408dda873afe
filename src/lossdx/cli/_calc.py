"""``lossdx calc``: the numbers the seeds compute by hand, computed right."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click

from .. import facts as F
from ..config import read_config


if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; 8.1 (still supported) cannot be subscripted
    _ParamType = click.ParamType[Any, Any]
else:
    _ParamType = click.ParamType


class _Number(_ParamType):
    """A finite number within bounds: a calculator input that cannot be negative, zero or NaN says so in one line."""

    def __init__(self, kind: type = float, minimum: float | None = 0.0, min_open: bool = True,
                 maximum: float | None = None) -> None:
        self.kind, self.minimum, self.min_open, self.maximum = kind, minimum, min_open, maximum
        self.name = "integer" if kind is int else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            x = self.kind(value) if self.kind is int else float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a{'n integer' if self.kind is int else ' number'}", param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        lo = self.minimum
        if lo is not None and (x <= lo if self.min_open else x < lo):
            self.fail(f"{value} must be {'above' if self.min_open else 'at least'} {lo:g}", param, ctx)
        if self.maximum is not None and x > self.maximum:
            self.fail(f"{value} must be at most {self.maximum:g}", param, ctx)
        return x


POSITIVE = _Number(float)
POSITIVE_INT = _Number(int)
COUNT = _Number(int, minimum=1, min_open=False)


def _n(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


@click.group()
def calc() -> None:
    """Calculators: parameters, tokens, epochs, compute (6ND), GPU-hours, MFU, Chinchilla, LR scaling, perplexity."""


@calc.command()
@click.option("--n-layer", type=COUNT, required=True)
@click.option("--n-embd", type=COUNT, required=True)
@click.option("--vocab-size", type=COUNT, required=True)
@click.option("--block-size", type=_Number(int, minimum=0, min_open=False), default=0, help="Learned position embeddings (GPT-2/nanoGPT); 0 for RoPE.")
@click.option("--bias/--no-bias", default=False)
@click.option("--untied", is_flag=True, help="Separate input and output embeddings.")
def params(n_layer: int, n_embd: int, vocab_size: int, block_size: int, bias: bool, untied: bool) -> None:
    """Parameter count of a GPT from its shape (nanoGPT counts position embeddings in)."""
    n = F.gpt_params(n_layer, n_embd, vocab_size, block_size or None, bias=bias, tied=not untied,
                     learned_pos=block_size > 0)
    emb = vocab_size * n_embd
    click.echo(f"parameters: {n:,} ({n / 1e6:.1f} M); token embedding {emb:,}; per layer ~12*d^2 = {12 * n_embd ** 2:,}")


@calc.command()
@click.option("--batch-size", type=COUNT, required=True, help="Micro-batch size (sequences).")
@click.option("--grad-accum", type=COUNT, default=1, show_default=True)
@click.option("--seq-len", type=COUNT, required=True)
@click.option("--world-size", type=COUNT, default=1, show_default=True)
@click.option("--steps", type=COUNT, default=None, help="Iterations run.")
@click.option("--dataset-tokens", type=POSITIVE, default=None)
def tokens(batch_size: int, grad_accum: int, seq_len: int, world_size: int, steps: int | None,
           dataset_tokens: float | None) -> None:
    """Tokens per iteration, tokens seen and epochs over the dataset."""
    tps = batch_size * grad_accum * seq_len * world_size
    click.echo(f"tokens per iteration: {batch_size} x {grad_accum} x {seq_len}"
               + (f" x {world_size}" if world_size > 1 else "") + f" = {tps:,}")
    if steps:
        seen = tps * steps
        click.echo(f"tokens seen after {steps:,} iterations: {seen:,} ({seen / 1e9:.3g} B)")
        if dataset_tokens:
            click.echo(f"epochs over a {_n(dataset_tokens)}-token dataset: {seen / dataset_tokens:.3g}")


@calc.command()
@click.option("--params", "n_params", type=POSITIVE, required=True, help="N, e.g. 7e9.")
@click.option("--tokens", type=POSITIVE, required=True, help="D, e.g. 2e12.")
@click.option("--flops-per-gpu", type=POSITIVE, default=4e14, show_default=True,
              help="Sustained FLOP/s per GPU (H100 bf16 at a realistic MFU: ~4e14).")
@click.option("--gpus", type=COUNT, default=8, show_default=True)
def compute(n_params: float, tokens: float, flops_per_gpu: float, gpus: int) -> None:
    """Training compute C = 6ND and the GPU time it takes."""
    c = F.train_flops(n_params, tokens)
    sec = F.gpu_seconds(c, flops_per_gpu)
    hours = sec / 3600
    click.echo(f"C = 6 x {_n(n_params)} x {_n(tokens)} = {c:.3g} FLOPs")
    click.echo(f"at {flops_per_gpu:.3g} FLOP/s per GPU: {sec:.3g} GPU-seconds = {hours:,.0f} GPU-hours")
    click.echo(f"on {gpus} GPUs: {hours / gpus:,.0f} hours = {hours / gpus / 24:,.1f} days")
    opt = F.chinchilla_tokens(n_params)
    click.echo(f"Chinchilla-optimal tokens for {_n(n_params)} parameters: {opt:.3g} (you train on {tokens / opt:.2g}x that)")


@calc.command()
@click.option("--params", "n_params", type=POSITIVE, required=True)
@click.option("--tokens-per-sec", type=POSITIVE, required=True)
@click.option("--peak-flops", type=POSITIVE, default=989e12, show_default=True, help="H100 SXM dense bf16: 989e12.")
def mfu(n_params: float, tokens_per_sec: float, peak_flops: float) -> None:
    """Model FLOPs utilisation from throughput."""
    value = F.mfu(n_params, tokens_per_sec, peak_flops)
    click.echo(f"MFU = 6 x {_n(n_params)} x {_n(tokens_per_sec)} / {peak_flops:.3g} = {100 * value:.1f}%")
    if value > 1.0:  # physically impossible: one of the inputs is wrong
        click.echo("lossdx: warning: an MFU above 100% is impossible: check --params (N, not tokens), "
                   "--tokens-per-sec (per GPU when --peak-flops is one GPU's) and --peak-flops", err=True)


@calc.command()
@click.option("--params", "n_params", type=POSITIVE, default=None)
@click.option("--tokens", type=POSITIVE, default=None)
def chinchilla(n_params: float | None, tokens: float | None) -> None:
    """Compute-optimal pairing: ~20 tokens per parameter."""
    if n_params is None and tokens is None:
        raise click.UsageError("give --params or --tokens")
    if n_params is not None:
        click.echo(f"{_n(n_params)} parameters -> ~{F.chinchilla_tokens(n_params):.3g} tokens")
    if tokens is not None:
        click.echo(f"{_n(tokens)} tokens -> ~{F.chinchilla_params(tokens):.3g} parameters")


@calc.command()
@click.option("--lr", type=POSITIVE, required=True)
@click.option("--batch", type=POSITIVE, required=True, help="Old (global) batch size.")
@click.option("--new-batch", type=POSITIVE, required=True)
def lr(lr: float, batch: float, new_batch: float) -> None:
    """Rescale the LR for a new batch size (linear and square-root rules)."""
    click.echo(f"linear rule:      {lr:.3g} x {new_batch / batch:.3g} = {F.scale_lr(lr, batch, new_batch):.3g}")
    click.echo(f"square-root rule: {lr:.3g} x {math.sqrt(new_batch / batch):.3g} = "
               f"{F.scale_lr(lr, batch, new_batch, 'sqrt'):.3g} (more conservative; large batches)")


@calc.command()
@click.argument("loss", type=_Number(float, minimum=0.0, min_open=False))
def ppl(loss: float) -> None:
    """Perplexity = exp(loss) of a cross-entropy loss in nats (never negative)."""
    if loss < 700:
        click.echo(f"perplexity = exp({loss:g}) = {F.perplexity(loss):.4g}")
        return
    # past ~709 exp() overflows a float: write the power of ten out instead
    exponent = loss / math.log(10)
    mantissa = 10 ** (exponent - math.floor(exponent))
    click.echo(f"perplexity = exp({loss:g}) = {mantissa:.4g}e+{math.floor(exponent)}"
               f" (a loss this high means the model is broken: ln(vocab) is ~10-12)")


@calc.command("config")
@click.argument("path", type=click.Path())
@click.option("--steps", type=COUNT, default=None, help="Iterations run (default: max_iters of the config).")
def from_config(path: str, steps: int | None) -> None:
    """Everything above, from a training config (config.py / JSON / YAML)."""
    h, _raw, _notes = read_config(path)
    n = F.params_from_config(h)
    tps = F.tokens_per_step(h)
    steps = steps or h.get("max_steps")
    rows = [("parameters", f"{n:,} ({n / 1e6:.1f} M)" if n else "unknown (needs n_layer, n_embd, vocab_size)"),
            ("tokens per iteration", f"{tps:,}" if tps else "unknown (needs batch_size, seq_len)")]
    if tps and steps:
        seen = tps * steps
        rows.append(("tokens seen", f"{seen:,} over {steps:,} iterations"))
        if h.get("dataset_tokens"):
            rows.append(("epochs over the dataset", f"{seen / h['dataset_tokens']:.3g}"))
        if n:
            rows.append(("training compute 6ND", f"{F.train_flops(n, seen):.3g} FLOPs"))
            rows.append(("Chinchilla-optimal tokens", f"{F.chinchilla_tokens(n):.3g} (you use {seen / F.chinchilla_tokens(n):.2g}x)"))
    if isinstance(h.get("vocab_size"), (int, float)) and h["vocab_size"] > 0:
        rows.append(("expected initial loss ln(V)", f"{math.log(h['vocab_size']):.4f}"))
    for k, v in rows:
        click.echo(f"{k:<30} {v}")
