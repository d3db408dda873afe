"""check_data finds each defect, with its location, in every input format; clean data gives no warning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossdx.datacheck import check_data, sources
from lossdx.exceptions import InputError
from lossdx.report import load_schema

VOCAB = 1000


def serious(report):
    return [f for f in report.findings if f.severity != "info"]


def kinds(report):
    return {f.kind for f in serious(report)}


def one(report, kind):
    found = [f for f in report.findings if f.kind == kind]
    assert len(found) == 1, [f.to_dict() for f in report.findings]
    return found[0]


def valid(report):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(report.to_json()), load_schema())
    return report


def clean_tokens(n=200_000, seed=0, vocab=VOCAB):
    return np.random.default_rng(seed).integers(0, vocab - 1, n).astype(np.uint16)


# ---------------------------------------------------------------- token files
def test_clean_bin_gives_no_warning(tmp_path):
    p = tmp_path / "train.bin"
    clean_tokens().tofile(p)
    r = valid(check_data(str(p), vocab_size=VOCAB, block_size=64))
    assert r.verdict == "healthy" and not serious(r), [f.to_dict() for f in serious(r)]
    assert r.run["facts"]["tokens"] == 200_000
    assert r.source["format"] == "bin-uint16"


def test_out_of_range_ids_located_by_offset(tmp_path):
    a = clean_tokens()
    a[[1234, 150_001]] = [VOCAB, VOCAB + 7]
    p = tmp_path / "train.bin"
    a.tofile(p)
    r = valid(check_data(str(p), vocab_size=VOCAB))
    f = one(r, "token_range")
    assert f.severity == "error" and f.evidence["locations"] == [1234, 150_001] and f.evidence["count"] == 2
    assert f.evidence["max_id"] == VOCAB + 7 and r.verdict == "problem"


def test_repeated_ngram_across_a_chunk_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_TOKENS", 4096)
    a = clean_tokens(20_000)
    a[4000:4000 + 3 * 40] = np.tile([5, 6, 7], 40)  # 40 repeats of a 3-token unit, spanning offset 4096
    a[10_000:10_000 + 3 * 20] = np.tile([8, 9, 10], 20)  # only 20 repeats: below OLMo's threshold
    p = tmp_path / "train.bin"
    a.tofile(p)
    f = one(check_data(str(p), vocab_size=VOCAB), "repeated_ngram")
    assert f.evidence["stretches"] == 1
    loc = f.evidence["locations"][0]
    assert loc["period"] == 3 and 3998 <= loc["offset"] <= 4000 and loc["length"] >= 120


def test_duplicate_documents_with_end_of_text(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_TOKENS", 1000)
    g = np.random.default_rng(1)
    eot = VOCAB - 1
    docs = [g.integers(0, eot, g.integers(50, 300)).astype(np.uint16) for _ in range(60)]
    docs[41] = docs[7].copy()  # an exact duplicate document
    offsets, parts, pos = [], [], 0
    for d in docs:
        offsets.append(pos)
        parts += [d, np.array([eot], np.uint16)]
        pos += d.size + 1
    p = tmp_path / "train.bin"
    np.concatenate(parts).tofile(p)
    r = check_data(str(p), vocab_size=VOCAB, eot_id=eot)
    f = one(r, "duplicates")
    assert f.evidence["duplicates"] == 1 and f.evidence["locations"] == [offsets[41]]
    assert f.evidence["copy_of"] == [[offsets[41], offsets[7]]]
    assert r.run["facts"]["documents"] == 60


def test_epochs_from_config(tmp_path):
    p = tmp_path / "train.bin"
    clean_tokens(100_000).tofile(p)
    cfg = tmp_path / "config.py"
    cfg.write_text("batch_size = 8\nblock_size = 256\ngradient_accumulation_steps = 2\nmax_iters = 1000\n"
                   f"vocab_size = {VOCAB}\n")
    r = valid(check_data(str(p), config=str(cfg)))
    f = one(r, "data_epochs")
    assert f.severity == "warning" and abs(f.evidence["epochs"] - 8 * 256 * 2 * 1000 / 100_000) < 1e-9
    assert r.run["facts"]["vocab_size"] == VOCAB and "token_range" not in kinds(r)
    cfg.write_text("batch_size = 8\nblock_size = 256\nmax_iters = 10\n")
    assert one(check_data(str(p), config=str(cfg)), "data_epochs").severity == "info"


def test_npy_tokens_and_uint32(tmp_path):
    a = clean_tokens().astype(np.int64)
    a[99] = -3
    p = tmp_path / "tok.npy"
    np.save(p, a)
    f = one(check_data(str(p), vocab_size=VOCAB), "token_range")
    assert f.evidence["locations"] == [99]
    b = clean_tokens().astype(np.uint32)
    b[5] = 70_000
    q = tmp_path / "big.bin"
    b.tofile(q)
    r = check_data(str(q), vocab_size=65_000, dtype="uint32")
    assert one(r, "token_range").evidence["locations"] == [5]


# ---------------------------------------------------------------- rows (HF layout)
def lm_rows(n=300, length=48, seed=0, shift=0):
    g = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        ids = g.integers(0, VOCAB, length).tolist()
        labels = ids[shift:] + [-100] * shift
        rows.append({"input_ids": ids, "labels": labels, "attention_mask": [1] * length})
    return rows


def write_jsonl(path, rows):
    with open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return str(path)


def test_clean_rows_give_no_warning(tmp_path):
    r = valid(check_data(write_jsonl(tmp_path / "d.jsonl", lm_rows()), vocab_size=VOCAB))
    assert r.verdict == "healthy", [f.to_dict() for f in serious(r)]
    assert r.run["facts"]["label_shift"] == 0 and r.run["facts"]["rows"] == 300


def test_each_row_defect_located(tmp_path):
    rows = lm_rows()
    rows[17]["labels"] = [-100] * 48  # all ignored
    rows[33]["input_ids"][5] = VOCAB + 3  # out of range
    rows[33]["labels"][5] = VOCAB + 3
    rows[50]["labels"] = list(rows[51]["input_ids"])  # shifted against the next row
    rows[60]["attention_mask"][-4:] = [0] * 4  # labels kept on padding
    rows[90]["input_ids"][:40] = [4] * 40  # 40 repeats of a 1-token unit
    rows[90]["labels"] = list(rows[90]["input_ids"])
    rows[200] = dict(rows[100])  # an exact duplicate row
    rows[250]["attention_mask"] = [1] * 40  # a mask of the wrong length must not hide the other rows' masks
    r = valid(check_data(write_jsonl(tmp_path / "d.jsonl", rows), vocab_size=VOCAB))
    assert one(r, "ignored_labels").evidence["locations"] == [17]
    rng = [f for f in r.findings if f.kind == "token_range"]
    assert {f.metric for f in rng} == {"input_ids", "labels"} and all(f.evidence["locations"] == [33] for f in rng)
    align = {f.metric: f for f in r.findings if f.kind == "label_alignment"}
    assert align["labels"].evidence["locations"] == [50]
    assert align["labels"].evidence["neighbour_rows"] == [[50, 51]]
    assert align["attention_mask"].evidence["locations"] == [60]
    rep = one(r, "repeated_ngram")
    assert rep.evidence["locations"][0]["row"] == 90 and rep.evidence["locations"][0]["period"] == 1
    assert one(r, "duplicates").evidence["copy_of"] == [[200, 100]]


def test_labels_shifted_twice_and_not_shifted(tmp_path):
    shifted = write_jsonl(tmp_path / "s.jsonl", lm_rows(shift=1))
    f = one(check_data(shifted), "label_alignment")
    assert f.evidence["shift"] == 1 and "shifted twice" in f.message and f.severity == "error"
    # the same data is right for a model that does not shift
    assert not serious(check_data(shifted, vocab_size=VOCAB, model_shifts_labels=False))
    same = write_jsonl(tmp_path / "n.jsonl", lm_rows())
    f = one(check_data(same, model_shifts_labels=False), "label_alignment")
    assert f.evidence["shift"] == 0 and "copy" in f.message
    twice = write_jsonl(tmp_path / "t.jsonl", lm_rows(shift=2))
    assert one(check_data(twice, model_shifts_labels=False), "label_alignment").evidence["shift"] == 2


def test_nan_in_float_list_column(tmp_path):
    rows = [{"pixel_values": [0.1, 0.2, 0.3], "label": i % 2} for i in range(50)]
    rows[12]["pixel_values"][1] = float("nan")
    p = tmp_path / "f.jsonl"
    p.write_text("\n".join(json.dumps(r).replace("NaN", "NaN") for r in rows) + "\n")
    f = one(check_data(str(p)), "nonfinite_data")
    assert f.metric == "pixel_values" and f.evidence["locations"] == [12]


def test_parquet_and_hf_arrow_dataset(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = lm_rows(n=100)
    rows[44]["labels"] = [-100] * 48
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=30)
    r = valid(check_data(str(tmp_path / "d.parquet"), vocab_size=VOCAB))
    assert r.source["format"] == "parquet" and one(r, "ignored_labels").evidence["locations"] == [44]
    ds = tmp_path / "saved"
    ds.mkdir()
    with pa.OSFile(str(ds / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as w:
            for batch in table.to_batches(max_chunksize=25):
                w.write_batch(batch)
    (ds / "dataset_info.json").write_text("{}")
    (ds / "state.json").write_text('{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}')
    r = check_data(str(ds), vocab_size=VOCAB)
    assert r.source["format"] == "arrow" and one(r, "ignored_labels").evidence["locations"] == [44]
    assert r.run["facts"]["rows"] == 100


def test_missing_pyarrow_is_one_clear_error(tmp_path, monkeypatch):
    import builtins

    (tmp_path / "d.parquet").write_bytes(b"PAR1" + b"\0" * 32)
    real = builtins.__import__

    def no_pyarrow(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(InputError, match=r"pip install 'lossdx\[parquet\]'"):
        check_data(str(tmp_path / "d.parquet"))


# ---------------------------------------------------------------- tables
def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return str(path)


def test_clean_balanced_table_gives_no_warning(tmp_path):
    g = np.random.default_rng(0)
    x = g.normal(size=(400, 3))
    rows = [[*np.round(x[i], 6), i % 3] for i in range(400)]
    r = valid(check_data(write_csv(tmp_path / "t.csv", ["a", "b", "c", "label"], rows)))
    assert r.verdict == "healthy", [f.to_dict() for f in serious(r)]
    assert one(r, "class_imbalance").severity == "info"


def test_table_defects(tmp_path):
    g = np.random.default_rng(0)
    x = g.normal(size=(1000, 3))
    x[:, 2] = g.uniform(0, 255, 1000)  # raw pixel values, not normalised
    rows = [[i, *np.round(x[i], 6), "spam" if i % 50 == 0 else "ham"] for i in range(1000)]  # an id column first
    rows[77][1] = "nan"
    rows[123][2] = 400.0  # an outlier in a normalised column
    rows[999] = [999, *rows[501][1:]]  # the same content under another id: a duplicate
    r = valid(check_data(write_csv(tmp_path / "t.csv", ["id", "f0", "f1", "pixel", "target"], rows)))
    assert one(r, "nonfinite_data").evidence["locations"] == [77]
    fr = {f.metric: f for f in r.findings if f.kind == "feature_range"}
    assert fr["f1"].evidence["locations"] == [123]
    assert [c["name"] for c in fr["pixel"].evidence["columns"]] == ["pixel"]
    ci = one(r, "class_imbalance")
    assert ci.severity == "warning" and ci.evidence["minority"] == "spam"
    assert abs(ci.evidence["minority_share"] - 0.02) < 1e-9
    assert abs(ci.evidence["balancing_weights"]["spam"] - 1000 / (2 * 20)) < 1e-3
    assert one(r, "duplicates").evidence["copy_of"] == [[999, 501]]


def test_unnamed_label_is_the_last_categorical_column(tmp_path):
    g = np.random.default_rng(0)
    rows = [[*np.round(g.normal(size=2), 6), 1 if i % 20 == 0 else 0] for i in range(400)]
    ci = one(check_data(write_csv(tmp_path / "t.csv", ["x1", "x2", "is_fraud"], rows)), "class_imbalance")
    assert ci.metric == "is_fraud" and ci.severity == "warning" and ci.evidence["counts"] == {"0": 380, "1": 20}
    reg = [[*np.round(g.normal(size=2), 6), round(float(g.normal()), 6)] for _ in range(100)]  # a regression target
    assert not [f for f in check_data(write_csv(tmp_path / "r.csv", ["x1", "x2", "price"], reg)).findings
                if f.kind == "class_imbalance"]


def test_npy_features_with_inf(tmp_path):
    a = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    a[42, 3] = np.inf
    np.save(tmp_path / "x.npy", a)
    f = one(check_data(str(tmp_path / "x.npy")), "nonfinite_data")
    assert f.metric == "feature_3" and f.evidence["locations"] == [42]


# ---------------------------------------------------------------- errors, progress
@pytest.mark.parametrize("content, match", [
    (None, "no such file"), (b"", "empty file"), (b"[1, 2, 3]", "JSON array"),
    (b"\x80\x04\x95", "pickle"), (b"{\"a\": 1}\nnot json\n", "line 2 is not JSON"),
])
def test_unreadable_inputs(tmp_path, content, match):
    p = tmp_path / "x.dat"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(InputError, match=match):
        check_data(str(p))


def test_odd_sized_token_file(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x01\x00\x02")
    with pytest.raises(InputError, match="not a whole number of uint16"):
        check_data(str(p))


def test_progress_reaches_the_total(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_TOKENS", 10_000)
    p = tmp_path / "train.bin"
    clean_tokens(55_000).tofile(p)
    seen = []
    check_data(str(p), progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == 6 and seen[-1] == (110_000, 110_000)
