"""Regression tests of the reliability defects R03-R20 (issue 9) in configs, facts and report output.

Each test is one reproducer of ../shared/repro, rebuilt here so it runs without that folder; each
failed before its fix (exit 3 "internal error", a lost input file, a replaced device node, ...).
"""

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

import pytest

from lossdx.cli import _output, main

from .conftest import GPU_RUNS, need


def curve(path, n=60):
    path.write_text("".join(f"iter {i}: loss {3 * 0.98 ** i + 1:.4f}, time 10.00ms, mfu 1.00%\n" for i in range(n)))
    return path


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "internal error" not in err, err
    return code, out, err


def report_of(capsys, *args):
    code, out, err = cli(capsys, *args, "--format", "json")
    assert code in (0, 1), err
    return json.loads(out)


def test_R03_lr_decay_below_zero(tmp_path, capsys):
    lines = []
    for i in range(200):
        lr = 1e-3 * min(1, (i + 1) / 10) if i < 100 else 1e-3 - (i - 100) * 1.2e-5
        lines.append(json.dumps({"step": i, "loss": 3.0 * 0.99 ** i + 0.5, "lr": lr}))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    report_of(capsys, "analyze", tmp_path / "metrics.jsonl")


@pytest.mark.parametrize("name,text", [
    ("config.py", "learning_rate = 1000000 ** 64\n"),
    ("config.json", '{"batch_size": 1' + "0" * 400 + "}\n"),
    ("config.json", '{"learning_rate": ' + "9" * 5000 + "}\n"),
    ("hparams.yaml", "lr: " + "9" * 5000 + "\n"),
])
def test_R05_config_numbers_beyond_float_and_int_string_limits(tmp_path, capsys, name, text):
    curve(tmp_path / "train.log")
    (tmp_path / name).write_text(text)
    report = report_of(capsys, "analyze", tmp_path / "train.log")
    assert "lr" not in report["run"]["config"] and "batch_size" not in report["run"]["config"]
    assert any("converted" in n or "ignored" in n for n in report["run"]["notes"])


def test_R06_negative_vocab_is_a_note_and_ignored(tmp_path, capsys):
    curve(tmp_path / "train.log", 100)
    (tmp_path / "config.json").write_text('{"vocab_size": -1, "learning_rate": 6e-4}')
    report = report_of(capsys, "analyze", tmp_path / "train.log")
    assert "vocab_size" not in report["run"]["config"] and report["run"]["config"]["lr"] == 6e-4
    assert any("vocab_size = -1 ignored" in n for n in report["run"]["notes"])


@pytest.mark.parametrize("cfg", [
    {"n_layer": 1e300, "n_embd": 1e300, "vocab_size": 50000, "batch_size": 8, "block_size": 1024},
    {"batch_size": 1e300, "block_size": 1e300, "dataset_tokens": 7},
])
def test_R07_huge_finite_config_numbers_do_not_overflow_facts(tmp_path, capsys, cfg):
    curve(tmp_path / "train.log")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    report = report_of(capsys, "analyze", tmp_path / "train.log")
    assert sum("ignored" in n for n in report["run"]["notes"]) == 2


@pytest.mark.parametrize("yaml_lr,shown", [("2001-12-14", "2001-12-14"), ("!!binary aGVsbG8=", "<5 bytes>"),
                                           ("!!set {a, b}", "['a', 'b']")])
def test_R08_yaml_dates_bytes_sets_reach_the_report_as_json(tmp_path, capsys, yaml_lr, shown):
    shutil.copy(need(GPU_RUNS / "lr_too_high_diverge" / "trainer_state.json"), tmp_path)
    (tmp_path / "hparams.yaml").write_text(f"lr: {yaml_lr}\n")
    report = report_of(capsys, "analyze", tmp_path / "trainer_state.json")
    patches = [d["config_patch"]["lr"] for d in report["diagnoses"] if "lr" in d.get("config_patch", {})]
    assert patches, "the run needs an LR diagnosis for the raw value to reach the report"
    assert str(patches[0]["from"]) == shown


@pytest.mark.parametrize("name,text,why", [
    ("config.json", '{"a":' * 100000 + "1" + "}" * 100000, "nested"),
    ("config.py", "learning_rate = " + "1+" * 200000 + "1\n", "nested"),
    ("hparams.yaml", "a: &a {b: *a}\n", "contains itself"),
])
def test_R09_deep_and_self_referencing_configs(tmp_path, capsys, name, text, why):
    curve(tmp_path / "train.log")
    (tmp_path / name).write_text(text)
    report = report_of(capsys, "analyze", tmp_path / "train.log")  # found beside the log: a note
    assert any(why in n for n in report["run"]["notes"])
    code, _, err = cli(capsys, "analyze", tmp_path / "train.log", "--config", tmp_path / name)  # asked for: an error
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.mark.parametrize("name,text", [
    ("hparams.yaml", "l0: &l0 {" + ", ".join(f"k{j}: lol" for j in range(10)) + "}\n" + "".join(
        f"l{i}: &l{i} {{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(10)) + "}\n" for i in range(1, 10))),
    ("config.py", 's0 = "xxxxxxxx"\n' + "".join(f"s{i} = s{i - 1} + s{i - 1}\n" for i in range(1, 41))),
    ("config.py", "a0 = 999999 ** 64\n" + "".join(f"a{i} = a{i - 1} * a{i - 1}\n" for i in range(1, 40))),
])
def test_R10_small_config_bombs_cost_little(tmp_path, name, text):
    curve(tmp_path / "train.log")
    (tmp_path / name).write_text(text)
    # a subprocess under a 3 GB address-space limit and a timeout: before the fix these took 10^9 keys,
    # ~4 GB or hours
    p = subprocess.run([sys.executable, "-m", "lossdx", "analyze", str(tmp_path / "train.log")], capture_output=True,
                       text=True, timeout=60, preexec_fn=_limit_memory)
    assert p.returncode in (0, 1), p.stderr


def test_R12_output_never_replaces_a_file_that_was_read(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = tmp_path / "real"
    real.mkdir()
    curve(real / "train.log")
    (tmp_path / "linkdir").symlink_to(real)
    (tmp_path / "rd").mkdir()
    curve(tmp_path / "rd" / "train.log")
    (tmp_path / "cf").mkdir()
    curve(tmp_path / "cf" / "train.log")
    (tmp_path / "cf" / "config.py").write_text("learning_rate = 6e-4\n")
    curve(tmp_path / "victim.log")
    (tmp_path / "alias.log").symlink_to("victim.log")
    os.link(real / "train.log", tmp_path / "hardlink.log")
    cases = [("real/train.log", "linkdir/train.log", real / "train.log"),  # (a) through a symlinked directory
             ("rd", "rd/train.log", tmp_path / "rd" / "train.log"),  # (b) the log inside a directory input
             ("cf/train.log", "cf/config.py", tmp_path / "cf" / "config.py"),  # (c) the auto-discovered config
             ("alias.log", "victim.log", tmp_path / "victim.log"),  # (d) the input given through a symlink
             ("real/train.log", "hardlink.log", real / "train.log")]  # a hard link to the input
    for src, out, victim in cases:
        before = victim.read_bytes()
        code, _, err = cli(capsys, "analyze", src, "-o", out)
        assert code == 2 and "refusing to write the report over the input" in err, (src, out, err)
        assert victim.read_bytes() == before, (src, out)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_R13_output_to_a_device_node_writes_it_in_place(tmp_path, capsys):
    curve(tmp_path / "train.log")
    node = tmp_path / "fakenull"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    code, _, _ = cli(capsys, "analyze", tmp_path / "train.log", "-o", node, "--fail-on", "never")
    assert code == 0 and stat.S_ISCHR(os.stat(node).st_mode)


def test_R13_output_to_a_fifo_goes_through_it(tmp_path, capsys):
    curve(tmp_path / "train.log")
    fifo = tmp_path / "fifo.out"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, _ = cli(capsys, "analyze", tmp_path / "train.log", "-o", fifo, "--format", "json", "--fail-on", "never")
    reader.join(10)
    assert code == 0 and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(got[0])["schema"] == "lossdx.report/1"


def test_R13_fifo_without_a_reader_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_output, "FIFO_WAIT_S", 0.2)
    curve(tmp_path / "train.log")
    os.mkfifo(tmp_path / "fifo.out")
    code, _, err = cli(capsys, "analyze", tmp_path / "train.log", "-o", tmp_path / "fifo.out")
    assert code == 2 and "no process is reading it" in err and stat.S_ISFIFO(os.stat(tmp_path / "fifo.out").st_mode)


def test_R14_planted_symlink_at_the_old_temp_name_is_not_followed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    curve(tmp_path / "train.log")
    (tmp_path / "victim.txt").write_text("precious data\n")
    (tmp_path / "report.json.lossdx-tmp").symlink_to("victim.txt")
    code, _, _ = cli(capsys, "analyze", "train.log", "-o", "report.json", "--format", "json", "--fail-on", "never")
    assert code == 0 and (tmp_path / "victim.txt").read_text() == "precious data\n"
    assert json.loads((tmp_path / "report.json").read_text())["schema"] == "lossdx.report/1"


def test_R14_concurrent_writers_of_one_report_all_succeed(tmp_path):
    target = str(tmp_path / "same.json")
    texts = [json.dumps({"writer": i, "pad": "x" * 200_000}) for i in range(6)]
    errors = []

    def write(text):
        try:
            for _ in range(15):
                _output.write_report(text, target)
        except Exception as err:  # noqa: BLE001 (any failure of a writer is the defect)
            errors.append(err)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with open(target) as fh:
        assert fh.read() in texts  # whole, from one writer
    assert os.listdir(tmp_path) == ["same.json"]  # no temp file left behind


def test_R14_a_failed_write_leaves_the_old_report_and_no_temp_file(tmp_path, capsys, monkeypatch):
    curve(tmp_path / "train.log")
    (tmp_path / "report.txt").write_text("the previous report\n")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    code, _, err = cli(capsys, "analyze", tmp_path / "train.log", "-o", tmp_path / "report.txt")
    assert code == 2 and "no space left on device" in err
    assert (tmp_path / "report.txt").read_text() == "the previous report\n"
    assert sorted(os.listdir(tmp_path)) == ["report.txt", "train.log"]


def test_R15_missing_directory_is_exit_2(tmp_path, capsys):
    curve(tmp_path / "train.log")
    code, _, err = cli(capsys, "analyze", tmp_path / "train.log", "-o", tmp_path / "nonexistent" / "r.json")
    assert code == 2 and err.startswith("lossdx: error: cannot write the report to") and "no such directory" in err
    assert len(err.strip().splitlines()) == 1


def test_R15_permission_denied_is_exit_2(tmp_path, capsys):
    if os.geteuid() != 0:
        work = tmp_path
    else:  # pytest's folders are 0700: the unprivileged child below needs one it can enter
        work = type(tmp_path)(tempfile.mkdtemp())
        work.chmod(0o755)
    curve(work / "train.log").chmod(0o644)
    ro = work / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    args = ["analyze", str(work / "train.log"), "-o", str(ro / "r.json")]
    try:
        if os.geteuid() != 0:
            code, _, err = cli(capsys, *args)
        else:  # root ignores directory permissions: write as nobody from a fork that has everything imported
            main(["analyze", str(work / "train.log"), "-o", str(tmp_path / "warm.txt")])
            capsys.readouterr()
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover (the child)
                sys.stderr = open(w, "w", closefd=False)
                os.setgid(65534)
                os.setuid(65534)
                code = main(args)
                sys.stderr.flush()
                os._exit(code)
            os.close(w)
            code = os.waitpid(pid, 0)[1] >> 8
            with os.fdopen(r) as fh:
                err = fh.read()
        assert code == 2 and "permission denied" in err, err
        assert not os.listdir(ro)
    finally:
        if work != tmp_path:
            shutil.rmtree(work)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_R15_stdout_on_a_full_disk_is_exit_2(tmp_path):
    curve(tmp_path / "train.log")
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "lossdx", "analyze", str(tmp_path / "train.log")], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr == "lossdx: error: cannot write the report to standard output: no space " \
                                             "left on device\n"


def test_R20_unreadable_auto_config_is_a_note_explicit_one_an_error(tmp_path, capsys):
    curve(tmp_path / "train.log")
    (tmp_path / "config.yaml").write_text("- a\n- b\n")
    (tmp_path / "config.json").write_text('{"learning_rate": 1e-3,}')
    report = report_of(capsys, "analyze", tmp_path / "train.log")
    assert any("config found beside the log was not used" in n and "invalid JSON" in n for n in report["run"]["notes"])
    code, _, err = cli(capsys, "analyze", tmp_path / "train.log", "--config", tmp_path / "config.json")
    assert code == 2 and "invalid JSON" in err
