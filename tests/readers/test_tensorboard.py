import math

import pytest

from lossdx.exceptions import CorruptLog
from lossdx.readers import read, read_runs, sniff
from lossdx.readers.tensorboard import masked_crc32c
from lossdx.testing.events import record, scalar_event, write_events


def _write(path, events):
    with open(path, "wb") as fh:
        write_events(fh, events)


def test_crc32c_known_value():
    # CRC-32C of "123456789" is 0xE3069283 (RFC 3720); masked per TFRecord
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_simple_value_and_tensor_scalars(tmp_path):
    f = tmp_path / "events.out.tfevents.1.host"
    evs = [scalar_event("train/loss", 5.0 - i * 0.5, i, 100.0 + i) for i in range(5)]
    evs += [scalar_event("epoch_loss", 3.0 - i, i, tensor=True, plugin="scalars" if i == 0 else None)
            for i in range(3)]
    evs.append(scalar_event("train/lr", 1e-3, 4))
    _write(f, evs)
    assert sniff(str(f))[0] == "tensorboard"
    run = read(str(f))
    loss = run.series["train/loss"]
    assert loss.steps.tolist() == [0, 1, 2, 3, 4]
    assert loss.values.tolist() == [5.0, 4.5, 4.0, 3.5, 3.0]
    assert loss.wall_times.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert run.series["epoch_loss"].values.tolist() == [3.0, 2.0, 1.0]
    assert run.series["train/lr"].values[0] == pytest.approx(1e-3)


def test_non_scalar_plugins_are_ignored(tmp_path):
    f = tmp_path / "events.out.tfevents.2.host"
    _write(f, [scalar_event("loss", 1.0, 0), scalar_event("text_summary", 7.0, 0, tensor=True, plugin="text")])
    run = read(str(f))
    assert "text_summary" not in run.series


def test_nan_scalars_are_kept(tmp_path):
    f = tmp_path / "events.out.tfevents.3.host"
    _write(f, [scalar_event("loss", v, i) for i, v in enumerate([2.0, float("nan"), float("inf")])])
    vals = read(str(f)).series["train/loss"].values
    assert vals[0] == 2.0 and math.isnan(vals[1]) and math.isinf(vals[2])


def test_truncated_last_record_reads_up_to_it(tmp_path):
    f = tmp_path / "events.out.tfevents.4.host"
    good = b"".join(record(scalar_event("loss", 1.0 / (i + 1), i)) for i in range(10))
    torn = record(scalar_event("loss", 0.01, 10))[:-7]
    f.write_bytes(record(b"\x1a\x0dbrain.Event:2") + good + torn)
    run = read(str(f))
    assert run.series["train/loss"].steps.tolist() == list(range(10))
    assert any("torn" in n for n in run.meta["notes"])


def test_directory_with_several_runs(tmp_path):
    for name, offset in (("version_0", 0.0), ("version_1", 1.0)):
        d = tmp_path / name
        d.mkdir()
        _write(d / "events.out.tfevents.5.host", [scalar_event("loss", offset + 3 - i, i) for i in range(3)])
    runs = read_runs(str(tmp_path))
    assert sorted(r.meta["run_name"] for r in runs) == ["version_0", "version_1"]
    picked = read(str(tmp_path), run="version_1")
    assert picked.series["train/loss"].values.tolist() == [4.0, 3.0, 2.0]


def test_garbage_after_valid_header_is_an_input_error(tmp_path):
    f = tmp_path / "events.out.tfevents.6.host"
    f.write_bytes(record(b"\x1a\x0dbrain.Event:2") + b"\xff" * 40)
    with pytest.raises(CorruptLog):
        read(str(f))


def test_records_cut_by_block_edges_are_read_whole(tmp_path, monkeypatch):
    from lossdx.readers import tensorboard

    f = tmp_path / "events.out.tfevents.7.host"
    evs = [scalar_event("train/loss", 1.0 + i, i, float(i)) for i in range(300)]
    evs += [scalar_event("val/loss", 2.0 + i, i * 10, tensor=True, plugin="scalars") for i in range(30)]
    _write(f, evs)
    whole = read(str(f))
    monkeypatch.setattr(tensorboard, "_BLOCK", 37)  # every record straddles some block edge
    cut = read(str(f))
    for key in ("train/loss", "val/loss"):
        assert cut.series[key].points() == whole.series[key].points()
    assert not cut.meta["notes"]


def test_big_steps_and_long_tags_use_the_general_path(tmp_path):
    f = tmp_path / "events.out.tfevents.8.host"
    tag = "a/" + "x" * 200 + "/loss"  # tag longer than 127 bytes: two-byte length varint
    _write(f, [scalar_event(tag, 0.5, 10**12), scalar_event("loss", 0.25, 2**40 + 3)])
    run = read(str(f))
    assert run.series["train/loss"].points() == [(2**40 + 3, 0.25)]
    assert any(s.points() == [(10**12, 0.5)] for s in run.series.values())


def _events_file(path, points, tag="train/loss"):
    with open(path, "wb") as fh:
        write_events(fh, [scalar_event(tag, v, s, 1000.0 + s) for s, v in points])


def test_unrelated_runs_in_one_directory_are_kept_apart(tmp_path):
    d = tmp_path / "tb"
    d.mkdir()
    _events_file(d / "events.out.tfevents.1000.host", [(i, 3.0 - i / 100) for i in range(100)])
    _events_file(d / "events.out.tfevents.2000.host", [(i, 9.0 - i / 100) for i in range(50)])  # starts over
    runs = read_runs(str(d))
    assert [len(r.series["train/loss"]) for r in runs] == [100, 50]
    assert runs[1].series["train/loss"].values[0] == 9.0
    names = [r.meta["run_name"] for r in runs]
    assert len(set(names)) == 2 and all("tfevents" in n for n in names)
    assert read(str(d), run=names[1]).series["train/loss"].values[0] == 9.0


def test_a_resume_and_a_second_writer_stay_one_run(tmp_path):
    d = tmp_path / "tb"
    d.mkdir()
    _events_file(d / "events.out.tfevents.1000.host", [(i, 3.0 - i / 100) for i in range(100)])
    _events_file(d / "events.out.tfevents.2000.host", [(i, 2.0 - i / 1000) for i in range(80, 200)])  # resume
    _events_file(d / "events.out.tfevents.3000.host", [(i * 10, 3.5) for i in range(20)], tag="val/loss")
    runs = read_runs(str(d))
    assert len(runs) == 1
    loss = runs[0].series["train/loss"]
    assert loss.steps.tolist() == list(range(200))
    assert loss.values[80] == pytest.approx(1.92)  # the resumed run overwrites the steps it repeats (not 2.2)
    assert len(runs[0].series["val/loss"]) == 20


def test_bulk_and_record_by_record_decoding_agree(tmp_path, monkeypatch):
    import numpy as np

    from lossdx.readers import tensorboard

    f = tmp_path / "events.out.tfevents.9.host"
    evs = []
    for i in range(3000):
        step = i * 97 if i != 1500 else -3  # 1- to 3-byte varints, and a negative (10-byte) step
        evs.append(scalar_event("train/loss", 3.0 - i / 1000 if i % 500 else float("nan"), step, 1e9 + i))
        if i % 10 == 0:
            evs.append(scalar_event("a/much/longer/tag/name/for/the/learning_rate", 1e-3, step, 1e9 + i))
            evs.append(scalar_event("val/loss", 2.0, step, tensor=True, plugin="scalars"))
    _write(f, evs)
    bulk = read(str(f))
    monkeypatch.setattr(tensorboard, "_simple_scalars",
                        lambda buf, st, ln, builder: np.zeros(st.size, dtype=bool))
    one_by_one = read(str(f))
    assert sorted(bulk.series) == sorted(one_by_one.series)
    for k in bulk.series:
        a, b = bulk.series[k], one_by_one.series[k]
        assert np.array_equal(a.steps, b.steps), k
        assert np.array_equal(a.values, b.values, equal_nan=True), k
        assert np.array_equal(a.wall_times, b.wall_times), k
    assert -3 in bulk.series["train/loss"].steps
