import math

import pytest

from lossdx.readers import read


def test_jsonl_rows_eval_rows_and_nan(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 0, "loss": 9.0, "grad_norm": 17.3, "lr": 1.5e-05}\n'
                 '{"step": 0, "val_loss": 9.05, "train_loss_eval": 9.07}\n'
                 '{"step": 1, "loss": NaN, "grad_norm": Infinity, "lr": 3e-05}\n'
                 '{"step": 2, "loss": 8.1, "grad_norm": 10.5, "lr": 4.5e-05, "loss_scale": 65536}\n')
    run = read(str(f))
    loss = run.series["train/loss"]
    assert loss.steps.tolist() == [0, 1, 2] and math.isnan(loss.values[1])
    assert run.series["val/loss"].points() == [(0, 9.05)]
    assert run.series["train/loss_scale"].points() == [(2, 65536.0)]


def test_torn_last_line_is_skipped_and_noted(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 0, "loss": 2.0}\n{"step": 1, "loss": 1.5}\n{"step": 2, "lo')
    run = read(str(f))
    assert run.series["train/loss"].steps.tolist() == [0, 1]
    assert any("unparseable" in n for n in run.meta["notes"])


def test_many_rows_across_chunks(tmp_path):
    f = tmp_path / "metrics.jsonl"
    n = 120_000
    with open(f, "w") as fh:
        for i in range(n):
            fh.write(f'{{"step": {i}, "loss": {1.0 + 1.0 / (i + 1)}}}\n')
            if i % 1000 == 0:
                fh.write(f'{{"step": {i}, "val_loss": 2.0}}\n')
    run = read(str(f))
    assert len(run.series["train/loss"]) == n
    assert len(run.series["val/loss"]) == n // 1000
    assert run.series["train/loss"].values[-1] == 1.0 + 1.0 / n


def test_uniform_fast_path_and_json_path_agree_exactly(tmp_path, monkeypatch):
    import json
    import random

    import numpy as np

    from lossdx.readers import jsonl

    rnd = random.Random(1)
    p = tmp_path / "metrics.jsonl"
    with open(p, "w") as fh:
        for i in range(30_000):
            row = {"step": i, "loss": rnd.random() * 3, "lr": 3e-4, "grad_norm": rnd.random(), "tokens": i * 2 ** 40}
            if i % 1000 == 0:
                row = {"step": i, "val_loss": rnd.random() * 3}  # irregular rows: those chunks take the json path
            fh.write(json.dumps(row, separators=(",", ":") if i > 20_000 else (", ", ": ")) + "\n")
    monkeypatch.setattr(jsonl, "CHUNK_LINES", 50)  # many chunks: most uniform, some not
    monkeypatch.setattr(jsonl._arrow, "json_installed", lambda: False)  # the plain paths, pyarrow or not
    calls = []
    real = jsonl._uniform_chunk
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: calls.append(r := real(text)) or r)
    fast = read(str(p))
    assert sum(c is not None for c in calls) > len(calls) // 2, "the uniform path was not taken"
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: None)
    slow = read(str(p))
    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values, slow.series[k].values, equal_nan=True), k


@pytest.mark.parametrize("text", [
    '{"step": 1, "loss": true}\n{"step": 2, "loss": false}\n',
    '{"step": 1, "loss": "1.5"}\n{"step": 2, "loss": "2.5"}\n',
    '{"step": 1, "loss": 1.5, "name": "a b"}\n{"step": 2, "loss": 2.5, "name": "a b"}\n',
    '{"step": 1, "train": {"loss": 1.5}}\n{"step": 2, "train": {"loss": 2.5}}\n',
    '{"step": 1, "loss": 1.5}\n{"step": 2, "lr": 2.5}\n',
    '{"step": 1, "loss": 1.5}\n{"step": 2, "loss": 2.5',
    '{"a:b": 1, "loss": 1.5}\n{"a:b": 2, "loss": 2.5}\n',
])
def test_uniform_fast_path_declines_what_it_cannot_read_exactly(text):
    from lossdx.readers import jsonl

    assert jsonl._uniform_chunk(text) is None


def test_large_uniform_chunks_agree_with_json_bit_for_bit(tmp_path, monkeypatch):
    """Whole default-size chunks of extreme values (tiny and huge floats, ints past 2^53, NaN, -0.0) through the
    uniform path: bit for bit what json gives."""
    import json
    import random

    import numpy as np

    from lossdx.readers import jsonl

    rnd = random.Random(2)
    p = tmp_path / "metrics.jsonl"
    with open(p, "w") as fh:
        for i in range(12_000):
            fh.write(json.dumps({"step": i, "loss": rnd.random() * 10 ** rnd.randint(-30, 30), "lr": rnd.gauss(0, 1),
                                 "tokens": i * 2 ** 53 + 1, "gn": float("nan") if i % 977 == 0 else -0.0}) + "\n")
    monkeypatch.setattr(jsonl._arrow, "json_installed", lambda: False)  # the plain paths, pyarrow or not
    calls = []
    real = jsonl._uniform_chunk
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: calls.append(r := real(text)) or r)
    fast = read(str(p))
    assert calls and all(c is not None for c in calls), "the uniform path was not taken"
    monkeypatch.setattr(jsonl, "_uniform_chunk", lambda text: None)
    slow = read(str(p))
    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values.view(np.int64), slow.series[k].values.view(np.int64)), k


def _same_runs(fast, slow):
    import numpy as np

    assert sorted(fast.series) == sorted(slow.series)
    for k in fast.series:
        assert np.array_equal(fast.series[k].steps, slow.series[k].steps), k
        assert np.array_equal(fast.series[k].values.view(np.int64), slow.series[k].values.view(np.int64)), k
    assert fast.meta == slow.meta and fast.source == slow.source


def _read_both(path, monkeypatch):
    """(run or error message) through the pyarrow path, then through the plain one; and the blocks pyarrow took."""
    from lossdx.exceptions import LossdxError
    from lossdx.readers import _arrow

    taken = []
    real = _arrow.read_json_block
    out = []
    for fast in (True, False):
        monkeypatch.setattr(_arrow, "json_installed", (lambda: True) if fast else (lambda: False))
        monkeypatch.setattr(_arrow, "read_json_block", lambda raw: taken.append(r := real(raw)) or r)
        try:
            out.append(read(str(path)))
        except LossdxError as err:
            out.append(str(err))
    return out[0], out[1], taken


AWKWARD_JSONL = [
    b'{"step": 1, "loss": NaN, "gn": Infinity}\n{"step": 2, "loss": 1.5, "gn": -Infinity}\n',
    b'{"step": 1, "loss": Inf}\n{"step": 2, "loss": 1.5}\n',  # json refuses Inf, pyarrow reads it
    b'{"step": 1, "loss": -NaN}\n{"step": 2, "loss": 1.5}\n',
    b'{"step": 1, "loss": -0}\n{"step": 2, "loss": 1.5}\n',  # int -0: json 0 -> +0.0
    b'{"step": 1, "loss": -0.0}\n{"step": 2, "loss": -0e3}\n',
    b'{"step": 1, "loss": 1.5, "big": 92233720368547758070}\n{"step": 2, "loss": 1, "big": 9007199254740993}\n',
    b'{"step": 1, "loss": 1.5, "n": 1' + b"0" * 310 + b'}\n',  # past the double range: both refuse alike
    b'{"step": 1, "loss": 1e400}\n{"step": 2, "loss": 4.9e-324}\n',
    b'{"step": 1, "train": {"loss": 1.5}}\n{"step": 2, "train": {"loss": 2.5}}\n',
    b'{"step": 1, "loss": true}\n{"step": 2, "loss": 2.5}\n',
    b'{"step": 1, "loss": "1.5"}\n{"step": 2, "loss": 2.5, "note": "x"}\n',
    b'{"step": 1, "loss": 1.5, "when": "2020-01-01"}\n',  # pyarrow would make a timestamp
    b'{"step": 1, "loss": 1.5}\n\n   \n{"step": 2, "loss": 2.5}\n',
    b'{"step": 1, "loss": 1.5}\r\n{"step": 2, "loss": 2.5}\r\n',
    b'{"step": 1, "loss": 1.5} {"step": 2, "loss": 2.5}\n{"step": 3, "loss": 3.5}\n\n',
    b'{"step": 1, "loss": 1.5}\n{"step": 2, "lo',
    b'{"step": 1, "loss": 1.5}\n{"step": 2,\n"loss": 2.5}\n',
    b'{"step": 1, "loss": null, "lr": 0.1}\n{"step": 2, "lr": 0.2}\n{}\n{"step": 3, "loss": 1.0}\n',
    b'{"step": 1, "loss": 1.5, "loss": 2.5}\n{"step": 2, "loss": 2.5}\n',
    b'{"step": 1, "\\u006coss": 1.5}\n{"step": 2, "loss": 2.5}\n',
    b'{"step": 1, "loss": 1.5, "\\ud800": 1}\n',
    '{"step": 1, "loss": 1.5, "d\u00e9bit": 3}\n'.encode(),
    b'\xef\xbb\xbf{"step": 1, "loss": 1.5}\n\xef\xbb\xbf{"step": 2, "loss": 2.5}\n',
    b'{"step": 1, "loss": 1.5}\n{"step": 2, "loss": 2.5}\n\xff\n',
    b'{"step": 1, "loss": 1.5}\n[1, 2]\n7\n{"step": 2, "loss": 2.5}\n',
    b'{"step": 1, "loss": 01}\n{"step": 2, "loss": .5}\n{"step": 3, "loss": +1}\n{"step": 4, "loss": 1.}\n',
    b'{"step": 1, "loss": 1.5}\t\n{"step":\t2,"loss":2.5}\n',
    b'{"step": 1, "loss": 1.5, "Info": 1}\n',
    b'{"step": 1, "loss": 1.5}\n{"step": 2, "loss": 2.5}',  # no newline at the end
    b'{"step": 3, "loss": 1.5}\n{"step": 1, "loss": 2.5}\n{"step": 1, "loss": 0.5}\n',
    b'{"step": 1.5, "loss": 1.5}\n{"step": null, "loss": 2.5}\n{"loss": 3.5}\n',
]


@pytest.mark.parametrize("body", AWKWARD_JSONL, ids=range(len(AWKWARD_JSONL)))
def test_pyarrow_and_plain_paths_agree_on_awkward_lines(tmp_path, monkeypatch, body):
    """Every awkward case, alone and inside blocks of clean rows, read through pyarrow (where it takes the block)
    and through the plain path: the same run, or the same error."""
    pytest.importorskip("pyarrow")
    from lossdx.readers import _arrow, jsonl

    monkeypatch.setattr(_arrow, "MIN_BYTES", 0)
    monkeypatch.setattr(jsonl, "CHUNK_LINES", 2)  # blocks of ~240 bytes: the case has blocks of its own
    clean = b"".join(b'{"step": %d, "loss": %r, "lr": 0.001}\n' % (i, 1 / (i + 1)) for i in range(100, 110))
    for i, content in enumerate((body, clean + body + clean)):
        path = tmp_path / f"m{i}.jsonl"
        path.write_bytes(content)
        fast, slow, taken = _read_both(path, monkeypatch)
        if isinstance(fast, str) or isinstance(slow, str):
            assert fast == slow
        else:
            _same_runs(fast, slow)
        if i == 1:
            assert any(t is not None for t in taken), "pyarrow took no block"


def test_pyarrow_path_declines_what_json_reads_otherwise():
    pytest.importorskip("pyarrow")
    from lossdx.readers import _arrow

    for body in (AWKWARD_JSONL[1], AWKWARD_JSONL[2], AWKWARD_JSONL[3], AWKWARD_JSONL[6], AWKWARD_JSONL[8],
                 AWKWARD_JSONL[9], AWKWARD_JSONL[11], AWKWARD_JSONL[12], AWKWARD_JSONL[14], AWKWARD_JSONL[16],
                 AWKWARD_JSONL[18], AWKWARD_JSONL[22]):
        assert _arrow.read_json_block(body) is None, body
    cols, n = _arrow.read_json_block(AWKWARD_JSONL[17])
    assert n == 4 and cols["lr"][1].tolist() == [True, True, False, False]


def test_pyarrow_and_plain_paths_agree_on_a_large_mixed_file(tmp_path, monkeypatch):
    """1M-scale shape at default block size: clean blocks (pyarrow), a few awkward ones (plain), eval rows with
    other keys, extreme floats: bit for bit the same run, and most blocks went through pyarrow."""
    import json
    import random

    pytest.importorskip("pyarrow")
    rnd = random.Random(3)
    path = tmp_path / "metrics.jsonl"
    with open(path, "w") as fh:
        for i in range(60_000):
            row = {"step": i, "loss": rnd.random() * 10 ** rnd.randint(-30, 30), "lr": rnd.gauss(0, 1),
                   "tokens": i * 2 ** 53 + 1, "gn": float("nan") if i % 977 == 0 else -0.0}
            if i % 500 == 0:
                row = {"step": i, "val_loss": rnd.random()}
            if i == 20_000:
                row["note"] = "resumed"
            if i == 40_000:
                row["gn"] = float("inf")
            fh.write(json.dumps(row) + "\n")
    fast, slow, taken = _read_both(path, monkeypatch)
    _same_runs(fast, slow)
    assert sum(t is not None for t in taken) >= len(taken) - 2 and len(taken) > 2


def test_fuzz_pyarrow_and_plain_jsonl_paths_agree(tmp_path_factory, monkeypatch):
    """Random lines from JSON-ish pieces (valid and not): both paths give the same run or the same error."""
    hypothesis = pytest.importorskip("hypothesis")
    pytest.importorskip("pyarrow")
    from hypothesis import strategies as st

    from lossdx.readers import _arrow, jsonl

    monkeypatch.setattr(_arrow, "MIN_BYTES", 0)
    monkeypatch.setattr(jsonl, "CHUNK_LINES", 3)
    value = st.sampled_from(["1", "-0", "-0.0", "0.5", "1e5", "1E-400", "1e400", "NaN", "-NaN", "Infinity",
                             "-Infinity", "Inf", "true", "null", '"2"', "[1]", '{"a": 1}', "01", ".5", "2.",
                             "92233720368547758070", "4.9e-324", "1.7976931348623157e308", "-12.25"])
    key = st.sampled_from(["step", "loss", "lr", "val_loss", "a b", "\\u0041", "", "gn"])
    obj = st.lists(st.tuples(key, value), max_size=4).map(
        lambda kv: "{" + ", ".join(f'"{k}": {v}' for k, v in kv) + "}")
    line = st.one_of(obj, obj, obj, st.sampled_from(["", "  ", "{", "[1]", "}{", '{"loss": 1} {"loss": 2}']))
    ending = st.sampled_from(["\n", "\r\n"])

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(st.tuples(line, ending), min_size=1, max_size=12))
    def check(lines):
        path = tmp_path_factory.mktemp("fz") / "m.jsonl"
        path.write_bytes(('{"step": 0, "loss": 1.0}\n' + "".join(a + b for a, b in lines)).encode())
        fast, slow, _taken = _read_both(path, monkeypatch)
        if isinstance(fast, str) or isinstance(slow, str):
            assert fast == slow
        else:
            _same_runs(fast, slow)

    check()


def test_pyarrow_and_plain_paths_agree_on_every_stored_jsonl_log(monkeypatch):
    """Every JSONL log of ../shared (GPU, vision and real runs) and of benchmarks/families, each through pyarrow
    (no size floor) and through json: the same runs bit for bit, or the same error."""
    pytest.importorskip("pyarrow")
    from lossdx.exceptions import LossdxError
    from lossdx.readers import _arrow
    from lossdx.readers import read_runs as read_all

    from ..conftest import ROOT, SHARED

    files = sorted(SHARED.rglob("*.jsonl")) + sorted((ROOT / "benchmarks" / "families").rglob("*.jsonl"))
    if not files:
        pytest.skip("no stored JSONL logs (../shared missing)")
    monkeypatch.setattr(_arrow, "MIN_BYTES", 0)
    taken = []
    real = _arrow.read_json_block
    monkeypatch.setattr(_arrow, "read_json_block", lambda raw: taken.append(r := real(raw)) or r)
    for path in files:
        out = []
        for installed in (True, False):
            monkeypatch.setattr(_arrow, "json_installed", lambda installed=installed: installed)
            try:
                out.append(read_all(str(path)))
            except LossdxError as err:
                out.append(str(err))
        fast, slow = out
        if isinstance(fast, str) or isinstance(slow, str):
            assert fast == slow, path
            continue
        assert len(fast) == len(slow), path
        for a, b in zip(fast, slow):
            _same_runs(a, b)
    assert sum(t is not None for t in taken) > len(files) // 2, "pyarrow took too few chunks to compare anything"


# --- one JSON document (json.dump of a Keras history or of a list of records)

def test_keras_history_dumped_as_json_is_read_per_epoch(tmp_path):
    import json as _json

    f = tmp_path / "history.json"
    f.write_text(_json.dumps({"loss": [2.3, 1.9, 1.7, 1.6], "val_loss": [2.2, 2.0, 1.9, 1.95],
                              "accuracy": [0.1, 0.3, 0.4, 0.45]}, indent=2))
    run = read(str(f))
    assert run.source["format"] == "json" and run.meta["step_unit"] == "epoch"
    assert run.series["train/loss"].points() == [(1, 2.3), (2, 1.9), (3, 1.7), (4, 1.6)]
    assert run.series["val/loss"].points()[-1] == (4, 1.95)


def test_json_list_of_records_and_history_under_a_key(tmp_path):
    import json as _json

    f = tmp_path / "metrics.json"
    f.write_text(_json.dumps([{"step": 10 * i, "loss": 3 - 0.1 * i, "lr": 1e-3} for i in range(6)], indent=2))
    run = read(str(f))
    assert run.source["format"] == "json" and run.series["train/loss"].steps.tolist() == [0, 10, 20, 30, 40, 50]
    g = tmp_path / "log.json"
    g.write_text(_json.dumps({"history": {"train_loss": [3.0, 2.0, 1.5, 1.2], "val_loss": [2.9, 2.1]}}))
    run = read(str(g))
    assert run.series["train/loss"].points()[0] == (1, 3.0)
    assert run.series["val/loss"].steps.tolist() == [2, 4]  # a shorter list spread over the longest, said in a note
    assert any("different lengths" in n for n in run.meta["notes"])


def test_json_documents_that_are_not_logs_are_not_read_as_logs(tmp_path):
    import json as _json

    from lossdx.readers import sniff

    cfg = tmp_path / "config.json"  # a run's config holding a loss-named list
    cfg.write_text(_json.dumps({"loss_weights": [1.0, 0.5], "lr": 3e-4}, indent=2))
    assert sniff(str(cfg))[0] != "json"
    line = tmp_path / "one.jsonl"  # one JSON object per line stays JSON lines
    line.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.9}\n')
    assert sniff(str(line))[0] == "jsonl"
    notes = tmp_path / "labels.json"  # prose about losses, no values
    notes.write_text(_json.dumps({"a.txt": {"evidence": "loss 8.72 -> 5.58", "steps": []}}, indent=1))
    from lossdx.exceptions import InputError

    with pytest.raises(InputError, match="JSON document"):
        read(str(notes))
