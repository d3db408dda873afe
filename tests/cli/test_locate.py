"""Line numbers of steps in text logs, for CI annotations."""

from __future__ import annotations

import gzip

from lossdx.cli._locate import step_lines


def test_steps_are_found_where_each_format_writes_them(tmp_path):
    cases = {
        "nanogpt.log": ["iter 0: loss 3.0, time 1ms", "step 10: train loss 2.9, val loss 3.0", "iter 10: loss 2.9"],
        "llmc.log": ["s:0 trl:3.0", "s:10 trl:2.9"],
        "megatron.log": [" iteration        0/ 100 | lm loss: 3.0E+00", " iteration       10/ 100 | lm loss: 2.9E+00"],
        "metrics.jsonl": ['{"step": 0, "loss": 3.0}', '{"step": 10, "loss": 2.9}'],
    }
    for name, lines in cases.items():
        f = tmp_path / name
        f.write_text("\n".join(lines) + "\n")
        assert step_lines(str(f), [10, 999]) == {10: 2}, name


def test_csv_uses_the_step_column_not_the_first(tmp_path):
    f = tmp_path / "metrics.csv"
    f.write_text('epoch,step,"train,loss"\n10,0,3.0\n10,5,2.9\n11,10,2.8\n')
    assert step_lines(str(f), [10, 5], delimited=True) == {5: 3, 10: 4}
    g = tmp_path / "nostep.csv"
    g.write_text("epoch,loss\n10,3.0\n")
    assert step_lines(str(g), [10], delimited=True) == {}


def test_unreadable_binary_and_compressed_inputs_give_no_lines(tmp_path):
    assert step_lines(str(tmp_path / "missing.log"), [1]) == {}
    assert step_lines(str(tmp_path), [1]) == {}
    b = tmp_path / "x.log"
    b.write_bytes(b"iter 1: loss\x00\x01")
    assert step_lines(str(b), [1]) == {}
    z = tmp_path / "x.log.gz"
    z.write_bytes(gzip.compress(b"iter 1: loss 2.0\n"))
    assert step_lines(str(z), [1]) == {}
