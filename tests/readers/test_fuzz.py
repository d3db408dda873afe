"""Mutated inputs never raise anything but an InputError (exit 2), for every reader."""

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossdx.analyze import analyze
from lossdx.exceptions import InputError
from lossdx.readers import read_runs
from lossdx.testing.events import record, scalar_event

SEEDS = {
    "nanogpt.log": b"step 0: train loss 9.07, val loss 9.05\niter 0: loss 9.08, time 37.62ms, mfu -100.00%\n"
                   b"iter 10: loss 7.11, time 42.14ms, mfu 1.64%\niter 20: loss nan, time 42.14ms, mfu 1.64%\n",
    "megatron.log": b" iteration     7000/  159576 | consumed samples: 260912 | elapsed time per iteration (ms): 18706.1 |"
                    b" learning rate: 6.000E-05 | lm loss: 6.444662E+00 | loss scale: 2048.0 | grad norm: 98258.265 |"
                    b" number of skipped iterations: 0 | number of nan iterations: 0 |\n validation loss at iteration"
                    b" 7000 | lm loss value: 7.174200E+00 | lm loss PPL: 1.305315E+03 |\n",
    "fairseq.log": b"| epoch 001:    450 / 1891 loss=11.521, nll_loss=10.881, ppl=1886.05, num_updates=445, lr=8.9e-05,"
                   b" gnorm=1.543, clip=0%\n| epoch 001 | valid on 'valid' subset | valid_loss 8.11425 | num_updates 600\n",
    "modded.log": b"step:0/5100 val_loss:16.0280 train_time:475ms step_avg:nanms\n"
                  b"step:1/5100 train_loss:16.0268 train_time:35679ms step_avg:nanms\n",
    "hfconsole.log": b"{'loss': 1.112, 'grad_norm': nan, 'learning_rate': 0.0002, 'epoch': 0.06}\n"
                     b"{'eval_loss': 1.2, 'epoch': 0.06}\n",
    "trainer_state.json": b'{"global_step": 20, "logging_steps": 10, "log_history": [{"loss": 7.7, "grad_norm": NaN,'
                          b' "learning_rate": 1e-4, "epoch": 0.1, "step": 10}, {"eval_loss": 6.9, "step": 10},'
                          b' {"loss": 6.6, "step": 20}, {"train_runtime": 3.0, "train_loss": 7.0, "step": 20}]}',
    "metrics.csv": b"epoch,step,train_loss,grad_norm,lr-AdamW,val_loss\n0,0,9.08,17.3,1.5e-05,\n0,0,,,,9.05\n"
                   b"0,1,8.69,16.8,3e-05,\n",
    "wandb.csv": b'"Step","a - train/loss","a - train/loss__MIN"\n"0","10.5","10.4"\n"1","9.5","9.4"\n',
    "metrics.jsonl": b'{"step": 0, "loss": 9.0, "grad_norm": 17.3}\n{"step": 0, "val_loss": 9.05}\n'
                     b'{"step": 1, "loss": NaN, "grad_norm": 3.0}\n',
    "events.out.tfevents.1": record(b"\x1a\x0dbrain.Event:2") + b"".join(
        record(scalar_event("train/loss", 3.0 - i * 0.1, i, 1.0 * i)) for i in range(6)),
}


@st.composite
def mutated(draw, seed: bytes):
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "splice"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[i:]
        elif op == "dup":
            j = draw(st.integers(i, len(data)))
            data[j:j] = data[i:j]
        else:
            data[i:i] = draw(st.sampled_from([b"nan", b"inf", b"-1e999", b"\n", b"|", b",", b":", b"{", b"\"",
                                              b"step ", b"loss ", b"\x00", b"\xff\xfe", b"1e308"]))
    return bytes(data)


def _check(name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            runs = read_runs(path)
        except InputError:
            return
        for run in runs:
            report = analyze(run)
            report.to_json()  # strict JSON: no NaN leaks into the report


def _make(name):
    @settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(SEEDS[name]))
    def test(data):
        _check(name, data)

    test.__name__ = f"test_fuzz_{name.replace('.', '_')}"
    return test


for _name in SEEDS:
    globals()[f"test_fuzz_{_name.replace('.', '_')}"] = _make(_name)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    _check("random.log", data)


def test_seeds_themselves_parse():
    for name, data in SEEDS.items():
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, name)
            with open(path, "wb") as fh:
                fh.write(data)
            assert read_runs(path), name
