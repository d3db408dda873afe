"""Each text dialect on small real-shaped samples, with the exact (step, value) pairs expected."""

import math

import pytest

from lossdx.exceptions import CorruptLog
from lossdx.readers import read_runs, sniff


def _read(tmp_path, text, name="log.txt"):
    f = tmp_path / name
    f.write_text(text)
    runs = read_runs(str(f))
    return runs[0] if len(runs) == 1 else runs


def pts(run, key):
    return [(s, float(f"{v:.12g}") if math.isfinite(v) else str(v)) for s, v in run.series[key].points()]


def test_nanogpt(tmp_path):
    run = _read(tmp_path, """number of parameters: 13.87M
step 0: train loss 9.0729, val loss 9.0559
iter 0: loss 9.0886, time 37.62ms, mfu -100.00%
iter 10: loss 7.1132, time 42.14ms, mfu 1.64%
step 50: train loss 3.8485, val loss 4.2067
iter 50: loss 3.7566, time 46.25ms, mfu 1.49%
""")
    assert run.source["format"] == "nanogpt"
    assert pts(run, "train/loss") == [(0, 9.0886), (10, 7.1132), (50, 3.7566)]
    assert pts(run, "val/loss") == [(0, 9.0559), (50, 4.2067)]
    assert pts(run, "train/loss_eval") == [(0, 9.0729), (50, 3.8485)]
    assert pts(run, "perf/mfu") == [(10, 1.64), (50, 1.49)]  # nanoGPT's -100% placeholder dropped


def test_nanogpt_with_timestamps_and_quote_marks(tmp_path):
    run = _read(tmp_path, "> 2023-03-22 09:30:39 iter 2920: loss 3.9883, time 1099.34ms, mfu 15.34%\n>\n"
                          "> 2023-03-22 09:30:50 iter 2930: loss nan, time 1097.30ms, mfu 15.34%\n")
    assert pts(run, "train/loss") == [(2920, 3.9883), (2930, "nan")]


def test_build_nanogpt_stdout_val_belongs_to_next_step(tmp_path):
    run = _read(tmp_path, """validation loss: 10.9522
HellaSwag accuracy: 2497/10042=0.2487
step     0 | loss: 10.955010 | lr 8.3916e-07 | norm: 15.3421 | dt: 23547.83ms | tok/sec: 22264.81
step     1 | loss: 10.902707 | lr 1.6783e-06 | norm: 14.8630 | dt: 410.25ms | tok/sec: 1277966.93
validation loss: 6.1696
step     2 | loss: 10.803959 | lr 2.5175e-06 | norm: 14.4641 | dt: 416.93ms | tok/sec: 1257492.99
""")
    assert run.source["format"] == "buildnanogpt"
    assert pts(run, "train/loss") == [(0, 10.95501), (1, 10.902707), (2, 10.803959)]
    assert pts(run, "val/loss") == [(0, 10.9522), (2, 6.1696)]
    assert pts(run, "train/lr") == [(0, 8.3916e-07), (1, 1.6783e-06), (2, 2.5175e-06)]
    assert pts(run, "train/grad_norm")[0] == (0, 15.3421)
    assert pts(run, "perf/step_time")[1] == (1, 410.25)


def test_build_nanogpt_logtxt(tmp_path):
    run = _read(tmp_path, "0 val 10.9519\n0 hella 0.2487\n0 train 10.955011\n1 train 10.935991\n")
    assert run.source["format"] == "buildnanogpt_logtxt"
    assert pts(run, "train/loss") == [(0, 10.955011), (1, 10.935991)]
    assert pts(run, "val/loss") == [(0, 10.9519)]


def test_modded_nanogpt_nan_step_avg_is_not_a_nan_loss(tmp_path):
    run = _read(tmp_path, """step:0/5100 val_loss:16.0280 train_time:475ms step_avg:nanms
step:1/5100 train_loss:16.0268 train_time:35679ms step_avg:nanms
step:2/5100 train_loss:9.5039 train_time:35770ms step_avg:35.50ms
step:125/1750 val_loss:4.66393 train_time:22.870s step_avg:182.95ms
""")
    assert run.source["format"] == "modded_nanogpt"
    assert pts(run, "train/loss") == [(1, 16.0268), (2, 9.5039)]
    assert pts(run, "val/loss") == [(0, 16.028), (125, 4.66393)]
    assert all(math.isfinite(v) for v in run.series["perf/step_time_avg"].values)
    assert pts(run, "perf/train_time_ms")[-1] == (125, 22870.0)


def test_llmc(tmp_path):
    run = _read(tmp_path, "s:0 tel:11.0092\ns:0 trl:11.0091 lr:0.000001 norm:15.37\ns:1 trl:10.9598 lr:0.000002 norm:15.24\n")
    assert run.source["format"] == "llmc"
    assert pts(run, "train/loss") == [(0, 11.0091), (1, 10.9598)]
    assert pts(run, "val/loss") == [(0, 11.0092)]
    assert pts(run, "train/grad_norm") == [(0, 15.37), (1, 15.24)]


MEGATRON = """[default7]: iteration    31218/  115311 | consumed samples:     47776688 | consumed tokens:  97846657024 | elapsed time per iteration (s): 107.53 | learning rate: 5.279E-05 | global batch size:  2048 | lm loss: 2.345279E+00 | grad norm: 145.119 | num zeros: 0.0 | number of skipped iterations:   0 | number of nan iterations:   0 |
[default7]: iteration    31219/  115311 | consumed samples:     47778736 | consumed tokens:  97850851328 | elapsed time per iteration (s): 106.36 | learning
 rate: 5.279E-05 | global batch size:  2048 | lm loss: 5.098124E+00 | grad norm: 960.351 | num zeros: 0.0 | number of skipped iterations:   0 | number of nan
iterations:   0 |
------------------------------------------------------------------------------------------------
 validation loss at iteration 31220 | lm loss value: 2.174200E+00 | lm loss PPL: 8.795315E+00 |
------------------------------------------------------------------------------------------------
[2022-01-19 13:09:13,305] [INFO] [stage_1_and_2.py:1644:step] [deepscale] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 1048576.0, reducing to 524288.0
 iteration    31220/  115311 | consumed samples:     47780784 | elapsed time per iteration (ms): 106360.0 | learning rate: 5.279E-05 | global batch size:  2048 | loss scale: 524288.0 | grad norm: 960.351 | number of skipped iterations:   1 | number of nan iterations:   1 |
"""


def test_megatron_wrapped_lines_validation_overflow_and_nan_iteration(tmp_path):
    run = _read(tmp_path, MEGATRON)
    assert run.source["format"] == "megatron"
    assert pts(run, "train/loss") == [(31218, 2.345279), (31219, 5.098124), (31220, "nan")]
    assert pts(run, "val/loss") == [(31220, 2.1742)]
    assert pts(run, "train/grad_norm")[:2] == [(31218, 145.119), (31219, 960.351)]
    assert pts(run, "train/lr")[1] == (31219, 5.279e-05)  # "learning\n rate" re-joined
    assert pts(run, "perf/step_time") == [(31218, 107530.0), (31219, 106360.0), (31220, 106360.0)]
    assert pts(run, "train/overflow") == [(31220, 1.0)]
    assert pts(run, "train/loss_scale") == [(31220, 524288.0)]
    assert pts(run, "train/tokens")[0] == (31218, 97846657024.0)


def test_fairseq_layouts(tmp_path):
    run = _read(tmp_path, """| epoch 008 | loss 6.326 | nll_loss 5.193 | ppl 36.58 | wps 12876 | num_updates 21896 | lr 0.000213706 | gnorm 1.201 | clip 0%
| epoch 008 | valid on 'valid' subset | valid_loss 6.43844 | valid_nll_loss 5.23288 | valid_ppl 37.61 | num_updates 21896 | best 6.43844
| epoch 009:   1000 / 2737 loss=6.220, nll_loss=5.070, ppl=33.60, wps=12800, num_updates=22897, lr=0.000208983, gnorm=1.242, clip=0%, oom=0
""")
    assert run.source["format"] == "fairseq"
    assert pts(run, "train/loss") == [(22897, 6.22)]
    assert pts(run, "train/loss_epoch") == [(21896, 6.326)]
    assert pts(run, "val/loss") == [(21896, 6.43844)]
    assert pts(run, "train/grad_norm") == [(21896, 1.201), (22897, 1.242)]


def test_fairseq_tqdm(tmp_path):
    run = _read(tmp_path, "epoch 002:  18%|▏| 1386/7494 [06:49<29:04,  3.50it/s, loss=nan, nll_loss=nan, ppl=nan, "
                          "wps=216.1, ups=3.4, num_updates=8880, lr=1.71077e-05, gnorm=nan, clip=0\n"
                          "epoch 002:  19%|▏| 1387/7494 [06:49<28:22,  3.59it/s, loss=2.5, nll_loss=2, ppl=4, "
                          "wps=216, ups=3.4, num_updates=8881, lr=1.71062e-05, gnorm=1.5, clip=0\n")
    assert pts(run, "train/loss") == [(8880, "nan"), (8881, 2.5)]


def test_hf_console_dicts(tmp_path):
    run = _read(tmp_path, """{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 0.0005142857142857142, 'epoch': 0.01}
{'loss': 1.28,  'grad_norm':     9.78}
{'eval_loss': 1.5, 'eval_runtime': 3.2, 'epoch': 0.02}
{'train_runtime': 100.0, 'train_loss': 0.7, 'epoch': 1.0}
""")
    assert run.source["format"] == "hf_console"
    assert pts(run, "train/loss") == [(0, 0.0), (1, 1.28)]
    assert pts(run, "train/grad_norm") == [(0, "nan"), (1, 9.78)]
    assert pts(run, "val/loss") == [(1, 1.5)]


def test_keras_fit(tmp_path):
    run = _read(tmp_path, """Epoch 1/150
517/518 [============================>.] - ETA: 0s - loss: 9.2551
518/518 [==============================] - 561s 1s/step - loss: 9.2517 - val_loss: 7.3800
Epoch 2/150
518/518 [==============================] - 540s 1s/step - loss: 7.1810 - val_loss: 6.6189
""")
    assert pts(run, "train/loss") == [(1, 9.2517), (2, 7.181)]
    assert pts(run, "val/loss") == [(1, 7.38), (2, 6.6189)]


@pytest.mark.parametrize("text,expected", [
    ("Iter 25: Train loss 1.593, Learning Rate 7.000e-05, It/sec 0.999\nIter 50: Train loss 1.406, Learning Rate 7.000e-05\n",
     [(25, 1.593), (50, 1.406)]),
    ("I0515 11:05:31.873651 37636 solver.cpp:239] Iteration 0 (-nan iter/s, 26.7698s/20 iters), loss = 6.91161\n"
     "I0515 11:05:51.320263 37636 solver.cpp:239] Iteration 20 (1.02848 iter/s, 19.4461s/20 iters), loss = 6.90501\n",
     [(0, 6.91161), (20, 6.90501)]),
    ("924/9500 (epoch 4.863), train_loss = 1.63392434, grad/param norm = 3.0235e-02, time/batch = 0.1694s\n"
     "925/9500 (epoch 4.868), train_loss = 1.61581607, grad/param norm = 2.8926e-02, time/batch = 0.1699s\n",
     [(924, 1.63392434), (925, 1.61581607)]),
    ("Epoch: [21][1390/1930]  Time 0.690 (0.986)  Data 0.004 (0.009)  Loss 2.5681 (10.9521)\n"
     "Epoch: [21][1391/1930]  Time 0.782 (0.986)  Data 0.004 (0.009)  Loss 4.3603 (10.9519)\n",
     [(21 * 1930 + 1390, 2.5681), (21 * 1930 + 1391, 4.3603)]),
    ("step 12972 \t loss = 0.428, (1.019 sec/step)\nstep 12973 \t loss = 0.737, (1.016 sec/step)\n",
     [(12972, 0.428), (12973, 0.737)]),
    ("000 epoch, 00000 iter, average time 7.0951, loss 37.2266\n000 epoch, 02000 iter, average time 0.6359, loss nan\n",
     [(0, 37.2266), (2000, "nan")]),
])
def test_generic_dialects(tmp_path, text, expected):
    assert pts(_read(tmp_path, text), "train/loss") == expected


def test_pasted_runs_are_split_when_the_step_counter_starts_over(tmp_path):
    runs = _read(tmp_path, "step 0, loss: 10.9\nstep 1, loss: 9.5\nstep 2, loss: 8.0\n"
                           "step 0, loss: 11.0\nstep 1, loss: 10.2\n")
    assert [len(r.series["train/loss"]) for r in runs] == [3, 2]
    assert [r.meta["run_name"] for r in runs] == ["run 1", "run 2"]


def test_pasted_table(tmp_path):
    run = _read(tmp_path, "Epoch\ttrain/loss (avg)\tval/loss\t\n0\t0.1554\t0.1907\t\n1\t0.1108\t**0.2017**\tval jumps UP\n")
    assert pts(run, "train/loss") == [(0, 0.1554), (1, 0.1108)]
    assert pts(run, "val/loss") == [(0, 0.1907), (1, 0.2017)]


def test_text_without_loss_is_an_input_error(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello world\nthis is not a training log\naccuracy went up\n")
    with pytest.raises(CorruptLog):
        read_runs(str(f))


def test_sniffing_ignores_the_file_name(tmp_path):
    f = tmp_path / "metrics.csv"  # a nanoGPT log with a misleading name
    f.write_text("iter 0: loss 9.0886, time 37.62ms, mfu -100.00%\niter 10: loss 7.1132, time 42.14ms, mfu 1.64%\n")
    assert sniff(str(f))[0] == "text"
    assert read_runs(str(f))[0].source["format"] == "nanogpt"


# --- issue 7 reader phenomena (#10, #4, #8)
@pytest.mark.parametrize("text", [
    # Keras 2 (standalone) verbose=2
    "Epoch 1/10\n - 4s - loss: 0.3100 - acc: 0.9061 - val_loss: 0.1525 - val_acc: 0.9541\n"
    "Epoch 2/10\n - 3s - loss: 0.1400 - acc: 0.9580 - val_loss: 0.1100 - val_acc: 0.9660\n",
    # tf.keras 2.x verbose=2
    "Epoch 1/10\n1875/1875 - 4s - loss: 0.3100 - accuracy: 0.9061 - val_loss: 0.1525 - 4s/epoch - 2ms/step\n"
    "Epoch 2/10\n1875/1875 - 3s - loss: 0.1400 - accuracy: 0.9580 - val_loss: 0.1100 - 3s/epoch - 2ms/step\n",
    # Keras 3 verbose=2
    "Epoch 1/10\n1875/1875 - 4s - 2ms/step - accuracy: 0.9061 - loss: 0.3100 - val_loss: 0.1525\n"
    "Epoch 2/10\n1875/1875 - 3s - 2ms/step - accuracy: 0.9580 - loss: 0.1400 - val_loss: 0.1100\n",
])
def test_keras_verbose_2(tmp_path, text):
    run = _read(tmp_path, text)
    assert run.source["format"] == "keras"
    assert pts(run, "train/loss") == [(1, 0.31), (2, 0.14)]
    assert pts(run, "val/loss") == [(1, 0.1525), (2, 0.11)]
    assert run.meta["record_lines_read"] == run.meta["record_lines_seen"] == 2


def test_pipe_lines_with_a_bare_step_number(tmp_path):
    run = _read(tmp_path, "   100 | loss 4.3210 | lr 3.00e-04 | 152.3 ms\n   110 | loss 4.2980 | lr 3.00e-04 | 150.1 ms\n"
                          "   120 | loss 4.2711 | lr 2.90e-04 | 151.0 ms\n")
    assert pts(run, "train/loss") == [(100, 4.321), (110, 4.298), (120, 4.2711)]
    assert pts(run, "train/lr")[-1] == (120, 2.9e-4)
    assert pts(run, "perf/step_time") == [(100, 152.3), (110, 150.1), (120, 151.0)]


def test_char_rnn_grad_param_norm_is_a_grad_norm_series_that_says_what_it_is(tmp_path):
    run = _read(tmp_path, "924/9500 (epoch 4.863), train_loss = 1.63392434, grad/param norm = 3.0235e-02, time/batch = 0.1694s\n"
                          "925/9500 (epoch 4.868), train_loss = 1.61581607, grad/param norm = 2.8926e-02, time/batch = 0.1699s\n")
    assert pts(run, "train/grad_norm") == [(924, 0.030235), (925, 0.028926)]
    assert "grad/param_norm" not in run.series
    assert "ratio" in run.meta["series_meaning"]["train/grad_norm"]
    assert any("grad/param norm" in n for n in run.meta["notes"])


@pytest.mark.parametrize("text,expected", [
    # 1-based epochs: epoch 2 batch 100 of 500 is global step 600 (500 batches done, then 100)
    ("Epoch 1, batch 400/500, loss: 0.90\nEpoch 1, batch 500/500, loss: 0.80\nEpoch 2, batch 100/500, loss: 0.70\n",
     [(400, 0.9), (500, 0.8), (600, 0.7)]),
    # 0-based epochs
    ("Epoch 0, batch 400/500, loss: 0.90\nEpoch 1, batch 100/500, loss: 0.70\n", [(400, 0.9), (600, 0.7)]),
    # "step" as a per-epoch counter is not the global step
    ("Epoch [2/10], Step [100/600], Loss: 0.7000\nEpoch [2/10], Step [200/600], Loss: 0.6500\n",
     [(700, 0.7), (800, 0.65)]),
    # an excerpt that starts mid-run keeps the global steps of its epochs
    ("Epoch 5, batch 100/500, loss: 0.50\nEpoch 5, batch 200/500, loss: 0.48\n", [(2100, 0.5), (2200, 0.48)]),
    # a bracketed "[epoch 0][iter 80/88]" line of a hand-written loop (0-based epochs)
    ("[epoch 0][iter 80/88] loss 0.9000 lr 0.050000\n[epoch 1][iter 10/88] loss 0.7000 lr 0.050000\n",
     [(80, 0.9), (98, 0.7)]),
    # PyTorch's MNIST example (1-based epochs, samples as the counter)
    ("Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.300000\nTrain Epoch: 1 [640/60000 (1%)]\tLoss: 2.100000\n"
     "Train Epoch: 2 [0/60000 (0%)]\tLoss: 0.300000\n", [(0, 2.3), (640, 2.1), (60000, 0.3)]),
])
def test_per_epoch_batch_counters_become_global_steps(tmp_path, text, expected):
    run = _read(tmp_path, text)
    assert pts(run, "train/loss") == expected
    assert "batch" not in run.series


def test_record_lines_seen_and_read(tmp_path):
    lines = ["iter %d: loss %.2f, time 10.00ms, mfu 1.00%%" % (i, 3 - i / 100) for i in range(3)]
    lines += ["iter 3 | loss 2.9 (it looks like a record but no dialect reads it)"] * 5
    lines += ["number of parameters: 13.87M", "compiling the model..."]
    run = _read(tmp_path, "\n".join(lines) + "\n")
    assert run.meta["record_lines_read"] == 3
    assert run.meta["record_lines_seen"] == 8
    assert isinstance(run.meta["record_lines_seen"], int)


def _nanogpt_log(n, restart_at=None, resume_at=None):
    out = ["number of parameters: 13.87M"]
    i = 0
    while i < n:
        if i % 500 == 0:
            out.append(f"step {i}: train loss {5 - i / n:.4f}, val loss {5.1 - i / n:.4f}")
        mfu = "-100.00" if i < 5 else f"{1 + (i % 7) / 10:.2f}"
        out.append(f"iter {i}: loss {5 - i / n + (i % 13) / 100:.4f}, time {40 + i % 5:.2f}ms, mfu {mfu}%")
        i += 1
        if resume_at is not None and i == resume_at:
            resume_at, i = None, i - 300  # a resume from a checkpoint 300 steps back: overwrites
        if restart_at is not None and i == restart_at:
            restart_at, i = None, 0  # a second run pasted after the first
            out.append("number of parameters: 13.87M")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("kw", [{}, {"resume_at": 7000}, {"restart_at": 6000}])
def test_nanogpt_fast_path_equals_line_by_line(tmp_path, monkeypatch, kw):
    from lossdx.readers import base, text as text_mod

    log = _nanogpt_log(12_000, **kw)
    monkeypatch.setattr(base, "BLOCK_BYTES", 64 * 1024)  # many blocks, records cut at block edges
    fast = _read(tmp_path, log)
    monkeypatch.setattr(text_mod, "_FAST_PATHS", {})
    slow = _read(tmp_path, log, name="log2.txt")
    fast, slow = (r if isinstance(r, list) else [r] for r in (fast, slow))
    assert len(fast) == len(slow) == (2 if "restart_at" in kw else 1)
    for a, b in zip(fast, slow):
        assert sorted(a.series) == sorted(b.series)
        for k in a.series:
            assert pts(a, k) == pts(b, k), k
        assert a.meta["record_lines_read"] == b.meta["record_lines_read"]
        assert a.meta["record_lines_seen"] == b.meta["record_lines_seen"]
    assert fast[0].series["perf/mfu"].steps[0] == 5  # nanoGPT's -100 % warm-up MFU is no value


def _fast_and_slow(tmp_path, monkeypatch, log):
    from lossdx.readers import text as text_mod

    fast = read_runs(str(tmp_path / "fast.log")) if (tmp_path / "fast.log").write_text(log) else None
    monkeypatch.setattr(text_mod, "_FAST_PATHS", {})
    slow = read_runs(str(tmp_path / "slow.log")) if (tmp_path / "slow.log").write_text(log) else None
    return fast, slow


@pytest.mark.parametrize("log", [
    "".join(f"iter {j}: loss {3 - j * 0.01:.3f}\n" for j in range(20)),  # R19's small logs: loss only
    "".join((f"step {j}: train loss {3.1 - j / 100:.4f}, val loss {3.2 - j / 100:.4f}\n" if j % 5 == 0 else "")
            + f"iter {j}: loss {3 - j / 100:.4f}\n" for j in range(40)) + "iter 3: loss 2.5\niter 4: loss 2.4\n",
    "iter 0: loss 3.0\niter 1: loss 1_0\niter 2: loss 2.0\n",  # float() reads 1_0 as 10, the line parser as 1
    "iter 0: loss 3.0, time 1.0ms, mfu 1.0%\nITER 1: LOSS 9.0, time 1.0ms, mfu 1.0%\n"  # the dialect ignores case
    "iter 2: loss 2.0, time 1.0ms, mfu 1.0%\nSTEP 2: TRAIN LOSS 2.1, VAL LOSS 2.2\n",
    "iter 0: loss 3.0\niter 1: loss 2.5, time 1.0ms, mfu 1.0%\niter 2: loss 2.0\n",  # mixed widths: line by line
])
def test_nanogpt_loss_only_fast_path_equals_line_by_line(tmp_path, monkeypatch, log):
    fast, slow = _fast_and_slow(tmp_path, monkeypatch, log)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert list(a.series) == list(b.series)
        for k in a.series:
            assert a.series[k].steps.tolist() == b.series[k].steps.tolist(), k
            assert a.series[k].values.tobytes() == b.series[k].values.tobytes(), k
        for key in ("record_lines_read", "record_lines_seen", "notes"):
            assert a.meta[key] == b.meta[key], key


def test_megatron_record_cut_by_a_block_edge(tmp_path, monkeypatch):
    from lossdx.readers import base

    line = (" iteration {i:8d}/  159576 | consumed samples: 260912 | elapsed time per iteration (ms): 18706.1 | "
            "learning rate: 6.000E-05 | lm loss: {l:.6E} | loss scale: 2048.0 | grad norm: 9.265 |\n")
    log = "".join(line.format(i=i, l=6 - i / 1000) for i in range(1, 400))
    monkeypatch.setattr(base, "BLOCK_BYTES", 4096)
    run = _read(tmp_path, log)
    assert run.series["train/loss"].steps.tolist() == list(range(1, 400))


def test_hf_console_dicts_with_quoted_numbers(tmp_path):
    """Recent transformers print the console dict's numbers as strings; issue 7 (10): such logs were unreadable."""
    from lossdx.readers import read

    p = tmp_path / "train.log"
    p.write_text("".join(f"{{'loss': '{3.5 - i * 0.1:.3f}', 'grad_norm': '1.2', 'learning_rate': '0.0485', "
                         f"'epoch': '{i / 10:.4g}'}}\n" for i in range(12)))
    run = read(str(p))
    assert run.series["train/loss"].values[0] == 3.5 and len(run.series["train/loss"]) == 12
    assert "train/grad_norm" in run.series


def test_megatron_line_without_its_loss_is_a_nan_iteration(tmp_path):
    """Megatron prints a loss only when its interval mean is > 0: under bf16 a NaN loss leaves `lm loss` out of the
    line while nothing is skipped (nan iterations count skipped ones only). An fp16 skip (skipped > 0) is no NaN,
    and a line cut before its loss field is no record of a loss at all."""
    head = ("iteration     3384/    8000 | consumed samples:       216576 | elapsed time per iteration (ms): 7845.5 | "
            "learning rate: 6.678E-06 | global batch size:    64 | lm loss: 7.072597E-01 | loss scale: 1.0 | "
            "grad norm: 0.741 | number of skipped iterations:   0 | number of nan iterations:   0 |\n")
    nan_line = ("iteration     3385/    8000 | consumed samples:       216640 | "
                "elapsed time per iteration (ms): 7624.3 | learning rate: 6.676E-06 | global batch size:    64 | "
                "loss scale: 1.0 | gr\n")
    run = _read(tmp_path, head + nan_line)
    assert pts(run, "train/loss") == [(3384, 0.7072597), (3385, "nan")]
    skipped = ("iteration     3386/    8000 | consumed samples:       216704 | "
               "elapsed time per iteration (ms): 7624.3 | learning rate: 6.676E-06 | global batch size:    64 | "
               "loss scale: 32768.0 | "
               "number of skipped iterations:   1 | number of nan iterations:   0 |\n")
    cut = "iteration     3387/    8000 | consumed samples:       216768 | elapsed time per iteration (ms): 7624.3 |\n"
    run = _read(tmp_path, head + skipped + cut)
    assert pts(run, "train/loss") == [(3384, 0.7072597)]
    # a log that never prints a loss in its iteration lines gets no NaN from the missing field
    with pytest.raises(CorruptLog):
        _read(tmp_path, nan_line.replace("| gr", "| grad norm: 0.7 |") * 3)


LOGBOOK = """<!-- logs/2022-05-30.md -->

# Training Log (May, 30)

Time: May, 30 2022 16:00

## Loss
- Begin: 10.33
- End: 3.76

## Completed Data
- $\\approx$ 4.37GB

## Average Grad Norm
- 0.56

## Progress
- 0.47%

## Comment

The loss dropped below 4.0 today!

# Training Log (May, 31)

Time: May, 31 2022 16:00

## Loss
- Begin: 3.76
- End: 3.29

## Average Grad Norm
- 0.34

## Comment
- loss 9.9 once at 3:00, back at once

# Training Log (June, 2)

Time: June, 2 2022 16:00

## Loss
- Begin: 3.29
- End: nan

## Average Grad Norm
- 1,234.5
"""


def test_markdown_logbook_one_point_per_page_at_its_day(tmp_path):
    run = _read(tmp_path, LOGBOOK, name="log.md")
    assert run.source["format"] == "md_logbook"
    assert pts(run, "train/loss") == [(0, 3.76), (1, 3.29), (3, "nan")]  # June 2 is day 3; 'Begin' is not a point
    assert pts(run, "train/grad_norm") == [(0, 0.56), (1, 0.34), (3, 1234.5)]
    assert pts(run, "progress") == [(0, 0.47)]
    assert set(run.series) == {"train/loss", "train/grad_norm", "progress"}  # no series from prose or GB counts
    assert run.meta["record_lines_read"] == 3
    assert any("steps are days since the first page's date" in n for n in run.meta["notes"])


def test_markdown_logbook_without_dates_numbers_its_pages(tmp_path):
    undated = "\n".join(ln for ln in LOGBOOK.splitlines() if not ln.startswith("Time:"))
    run = _read(tmp_path, undated, name="log.md")
    assert run.source["format"] == "md_logbook"
    assert pts(run, "train/loss") == [(0, 3.76), (1, 3.29), (2, "nan")]
    assert any("steps are page numbers" in n for n in run.meta["notes"])


def test_char_rnn_units_eval_lines_and_checkpoint_validation_loss(tmp_path):
    """char-rnn: time/batch is in seconds (kept in ms), 'evaluating loss over split index 2' names a split (no
    series), and the validation loss is printed only in the checkpoint's file name."""
    run = _read(tmp_path, "49/597 (epoch 0.241), train_loss = 2.70712256, grad/param norm = 4.8086e-03, "
                          "time/batch = 0.0761s\n"
                          "50/597 (epoch 0.246), train_loss = 2.63796425, grad/param norm = 3.7579e-03, "
                          "time/batch = 0.0576s\n"
                          "evaluating loss over split index 2\n"
                          "saving checkpoint to cv/lm_lstm_epoch0.25_2.5784.t7\n"
                          "51/597 (epoch 0.251), train_loss = 2.81535769, grad/param norm = 4.2660e-03, "
                          "time/batch = 0.0635s\n")
    assert pts(run, "perf/step_time") == [(49, 76.1), (50, 57.6), (51, 63.5)]
    assert pts(run, "val/loss") == [(50, 2.5784)]
    assert set(run.series) == {"train/loss", "train/grad_norm", "train/epoch", "perf/step_time", "val/loss"}


def test_word_language_model_ms_per_batch_and_epoch_summaries(tmp_path):
    """pytorch/examples word_language_model: 'ms/batch' is the step time; '| end of epoch 1 | time: 16.99s' is an
    epoch summary whose time is the epoch's, not a step's, and whose epoch number is no metric."""
    run = _read(tmp_path, "| epoch   1 |    20/  199 batches | lr 20.00 | ms/batch 116.55 | loss  3.79 | ppl    44.13\n"
                          "| epoch   1 |    40/  199 batches | lr 20.00 | ms/batch 85.67 | loss  2.64 | ppl    14.04\n"
                          "-----------------------------------------------------------------------------------------\n"
                          "| end of epoch   1 | time: 16.99s | valid loss  2.11 | valid ppl     8.25\n"
                          "-----------------------------------------------------------------------------------------\n")
    assert pts(run, "perf/step_time") == [(20, 116.55), (40, 85.67)]
    assert pts(run, "epoch_time_s") == [(40, 16.99)]
    assert pts(run, "val/loss") == [(40, 2.11)]
    assert not any("end" in k or "ms/" in k for k in run.series)


def test_time_for_n_batches_and_progress_bar_version_number(tmp_path):
    run = _read(tmp_path, "steps 100, seconds for 100 batch: 45.91 , loss: 8.439692\n"
                          "steps 200, seconds for 100 batch: 53.07 , loss: 8.152159\n")
    assert pts(run, "perf/step_time") == [(100, 459.1), (200, 530.7)]
    assert set(run.series) == {"train/loss", "perf/step_time"}
    run = _read(tmp_path, "Epoch 476:   1%|▏         | 1/79 [00:00<01:00,  1.29it/s, loss=16.8, v_num=1]\n"
                          "Epoch 476:   3%|▎         | 2/79 [00:01<00:43,  1.77it/s, loss=16.7, v_num=1]\n")
    assert not any("v_num" in k for k in run.series)


def test_fairseq_lua_names_with_slashes_and_test_loss(tmp_path):
    run = _read(tmp_path, "| epoch 000 | 0001000 updates | words/s    4328| trainloss     8.72 | train ppl   420.34\n"
                          "| checkpoint 001 | epoch 001 | 0002645 updates | s/checkpnt     767 | words/s    4461 | "
                          "lr 0.25\n"
                          "| checkpoint 001 | epoch 001 | 0002645 updates | validloss     5.87 | valid ppl    58.37 | "
                          "testloss     5.82 | test ppl    56.55\n")
    assert pts(run, "words/s") == [(1000, 4328.0), (2645, 4461.0)]
    assert pts(run, "s/checkpnt") == [(2645, 767.0)]
    assert pts(run, "test/loss") == [(2645, 5.82)] and pts(run, "val/loss") == [(2645, 5.87)]
    assert "s" not in run.series and "checkpnt" not in run.series


def test_an_epoch_size_the_log_states_gives_each_run_its_epochs(tmp_path):
    """build-nanogpt's DataLoaderLite prints '1 epoch = N batches' before each run: the run's epochs are its steps
    over N, and each pasted run keeps its own N."""
    runs = _read(tmp_path, "loaded 338025 tokens\n1 epoch = 2640 batches\n"
                           "step 0, loss: 10.9\nstep 1, loss: 10.6\nstep 2, loss: 10.1\n"
                           "loaded 338025 tokens\n1 epoch = 20 batches\n"
                           + "".join(f"step {i}, loss: {10 - i * 0.1:.2f}\n" for i in range(41)))
    first, second = runs
    assert [(s, round(v * 2640, 6)) for s, v in first.series["train/epoch"].points()] == [(0, 0), (1, 1), (2, 2)]
    assert pts(second, "train/epoch")[-1] == (40, 2.0)
    assert any("20 steps per epoch" in n for n in second.meta["notes"])
    assert "train/epoch" not in _read(tmp_path, "step 0, loss: 10.9\nstep 1, loss: 10.6\n").series


def test_a_loss_heading_over_pasted_log_lines_is_not_a_logbook(tmp_path):
    """An issue's '### Training loss' heading followed by a paste of log lines: no logbook page holds a value, so
    the lines are read in their own dialect."""
    run = _read(tmp_path, "## What happened\nthe loss went up\n### Training loss\n\n```\n"
                          "Step 100 - loss 3.2 - lr 1e-4\nStep 200 - loss 2.9 - lr 1e-4\n```\n", name="issue.md")
    assert pts(run, "train/loss") == [(100, 3.2), (200, 2.9)]


def test_lightning_progress_bar_lines_give_global_steps(tmp_path):
    """Lightning's tqdm bar counts epochs from 0 and batches within the epoch: 'Epoch 476: 1%|▏ | 1/79 [' is global
    step 476 * 79 + 1; the bar redrawn at the same batch is the same step."""
    run = _read(tmp_path, "Epoch 476:   0%|          | 0/79 [00:00<?, ?it/s, loss=16.8, v_num=1]\n"
                          "Epoch 476:   1%|▏         | 1/79 [00:00<01:00,  1.29it/s, loss=16.8, v_num=1]\n"
                          "Epoch 476:   1%|▏         | 1/79 [00:00<01:00,  1.29it/s, loss=16.8, v_num=1]\n"
                          "Epoch 477:   3%|▎         | 2/79 [00:01<00:43,  1.77it/s, loss=16.7, v_num=1]\n")
    assert pts(run, "train/loss") == [(37604, 16.8), (37605, 16.8), (37685, 16.7)]


def test_runs_pasted_into_markdown_blocks_are_kept_apart_and_named(tmp_path):
    """Logs pasted into Markdown, one ``` block per run under a line of prose: a block whose steps go back is a new
    run even when it starts at step 1 after a run that started at 0 (not a resume 48 steps back), and the prose
    names it."""
    first = "".join(f"step {i:04d}, loss: {10 - i * 0.1:.3f}\n" for i in range(50))
    second = "".join(f"step {i:04d}, loss: {9 - i * 0.1:.3f}\n" for i in range(1, 51))
    runs = _read(tmp_path, "Added lr scheduler\n\n```\n" + first + "```\n\nFinal model training with 5000 steps\n\n```\n"
                 + second + "```\n", name="notes.md")
    assert [len(r.series["train/loss"]) for r in runs] == [50, 50]
    assert pts(runs[1], "train/loss")[0] == (1, 8.9)
    assert [r.meta.get("run_title") for r in runs] == ["Added lr scheduler", "Final model training with 5000 steps"]


def test_epoch_lines_without_steps_are_numbered_by_their_epoch(tmp_path):
    """'epoch 50/150 - loss: X - val_loss: Y' (a hand-written loop's Keras-like print): steps are the epochs, so an
    excerpt from epoch 50 starts at 50, not at a record number 0."""
    f = tmp_path / "train.log"
    f.write_text("".join(f"epoch {e}/150 - loss: {1 / e:.4f} - val_loss: {1.1 / e:.4f}\n" for e in range(50, 60, 2)))
    run = read_runs(str(f))[0]
    assert list(run.series["train/loss"].steps) == [50, 52, 54, 56, 58]
    assert list(run.series["val/loss"].steps) == [50, 52, 54, 56, 58]
    assert run.meta["step_unit"] == "epoch"


def test_batch_lines_within_epochs_get_global_steps_and_the_epoch_mean_apart(tmp_path):
    """'epoch 2/60 - batch 4/6 - loss: X' is a per-epoch counter (global step 6 + 4); the epoch's own line
    'epoch 2/60 - loss: M - val_loss: V' is that epoch's mean at its last batch, not a second per-batch point."""
    f = tmp_path / "train.log"
    lines = []
    for e in (1, 2, 3):
        lines += [f"epoch {e}/60 - batch {b}/6 - loss: {1 / (e * 6 + b):.4f}\n" for b in (2, 4, 6)]
        lines.append(f"epoch {e}/60 - loss: {2 / e:.4f} - val_loss: {3 / e:.4f}\n")
    f.write_text("".join(lines))
    run = read_runs(str(f))[0]
    assert list(run.series["train/loss"].steps) == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert "batch" not in run.series
    assert list(run.series["train/loss_epoch"].steps) == [6, 12, 18]
    assert list(run.series["val/loss"].steps) == [6, 12, 18]
