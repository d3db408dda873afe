from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from lossdx import read_runs
from lossdx.scan import analyze_input, run_inputs, scan, summary_lines

from .conftest import GPU_RUNS, need


def _log(path, n=60, spike=None, scale=1.0):
    lines = []
    for i in range(n):
        v = scale * (3 * 0.98 ** i + 1)
        if spike is not None and i == spike:
            v *= 6
        lines.append(f"iter {i}: loss {v:.4f}, time 10.00ms, mfu 1.00%\n")
    path.write_text("".join(lines))


def _runs_dir(tmp_path, n=5):
    d = tmp_path / "runs"
    d.mkdir()
    for i in range(n):
        _log(d / f"r{i}.log", n=300, spike=150 if i == 2 else None)
    (d / "notes.bin").write_bytes(b"\x00\x01\x02" * 100)  # not a log: listed, not dropped silently
    return d


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "lossdx", *args], capture_output=True, text=True, timeout=timeout)


def test_directory_of_many_logs_analyses_them_all(tmp_path):
    d = _runs_dir(tmp_path)
    res = _cli("analyze", str(d), "-f", "json", "-j", "2")
    assert res.returncode == 1, res.stderr  # r2 has a spike
    reports = json.loads(res.stdout)
    assert isinstance(reports, list) and len(reports) == 5
    assert sorted(r["source"]["path"].rsplit("/", 1)[1] for r in reports) == [f"r{i}.log" for i in range(5)]
    assert [r["verdict"] for r in reports].count("healthy") == 4


def test_text_scan_prints_one_line_per_run_and_a_summary(tmp_path):
    d = _runs_dir(tmp_path)
    res = _cli("analyze", str(d), "-j", "1")
    lines = res.stdout.splitlines()
    assert sum(1 for ln in lines if ln.startswith(("OK ", "WARNING ", "PROBLEM "))) == 5
    assert any("notes.bin" in ln for ln in lines)  # what was not a log is said, not dropped
    assert "5 runs analysed from 6 inputs" in res.stdout
    assert res.stderr == ""  # no progress bar when the output is not a terminal


def test_one_run_in_several_formats_stays_one_run(tmp_path):
    g = need(GPU_RUNS / "bad_batch_spike")
    assert run_inputs(str(g)) is None
    d = tmp_path / "run"
    d.mkdir()
    for name in ("train.log", "metrics.csv", "metrics.jsonl", "config.json"):
        (d / name).write_bytes((g / name).read_bytes())
    assert run_inputs(str(d)) is None
    runs = read_runs(str(d))
    assert len(runs) == 1
    assert any("other formats" in n for n in runs[0].meta.get("notes", []))


def test_directory_of_run_directories(tmp_path):
    root = tmp_path / "sweep"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        _log(root / name / "train.log", n=200)
    (root / "README.md").write_text("# a sweep\n")
    inputs = run_inputs(str(root))
    assert inputs is not None and [p.rsplit("/", 1)[1] for p in inputs] == ["a", "b", "c"]
    runs = read_runs(str(root))  # the library keeps every run too
    assert len(runs) == 3


def test_gpu_runs_directory_is_a_scan():
    g = need(GPU_RUNS)
    inputs = run_inputs(str(g))
    assert inputs is not None and len(inputs) >= 20


def test_scan_workers_match_serial(tmp_path):
    d = _runs_dir(tmp_path)
    inputs = run_inputs(str(d))
    def same(r):  # the time of analysis is the one field that must differ
        d = r.to_dict()
        d.pop("analyzed_at", None)
        return d

    serial = [same(r) for res in scan(inputs, jobs=1) for r in res.reports]
    parallel = [same(r) for res in scan(inputs, jobs=2) for r in res.reports]
    assert serial == parallel
    results = list(scan(inputs, jobs=2))
    assert any("not logs" in ln for ln in summary_lines(results))


def test_unreadable_input_is_a_line_not_a_crash(tmp_path):
    p = tmp_path / "empty.log"
    p.write_text("")
    res = analyze_input(str(p))
    assert res.error and not res.reports


def test_many_small_logs_start_reporting_at_once(tmp_path):
    """R19: a directory of thousands of small logs must not be sniffed whole before anything happens."""
    d = tmp_path / "many"
    d.mkdir()
    body = "".join(f"iter {j}: loss {3 - j * 0.01:.3f}\n" for j in range(20))
    for i in range(3000):
        (d / f"r{i:05d}.log").write_text(body)
    t0 = time.monotonic()
    inputs = run_inputs(str(d))
    assert inputs is not None and len(inputs) == 3000
    assert time.monotonic() - t0 < 1.0
    proc = subprocess.Popen([sys.executable, "-m", "lossdx", "analyze", str(d), "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    first = proc.stdout.readline()
    first_after = time.monotonic() - t0
    out, err = proc.communicate(timeout=300)
    assert "r00000.log" in first
    assert first_after < 5.0, f"first line after {first_after:.1f} s"
    assert "3000 runs analysed from 3000 inputs" in out, err


def test_markdown_scan_is_a_table_with_escaped_names(tmp_path):
    d = _runs_dir(tmp_path, n=2)
    (d / "r_*evil*`.log").write_text((d / "r0.log").read_text())
    res = _cli("analyze", str(d), "-f", "md", "-j", "1")
    assert res.returncode == 0, res.stderr
    assert "| verdict | run | summary | top cause |" in res.stdout
    assert "r\\_\\*evil\\*\\`.log" in res.stdout


def test_directory_of_small_logs_gives_a_clean_result(tmp_path):
    """R19 (its behaviour; its speed is benchmarks/scan_speed.py's): every small log analysed by the workers,
    none unreadable or skipped, nothing on stderr, and the exit code is the worst verdict's."""
    d = tmp_path / "many"
    d.mkdir()
    body = "".join(f"iter {j}: loss {3 - j * 0.01:.3f}\n" for j in range(20))
    for i in range(200):
        (d / f"r{i:05d}.log").write_text(body)
    res = _cli("analyze", str(d), "-j", "2")
    assert res.stderr == ""
    assert "200 runs analysed from 200 inputs" in res.stdout
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith(("OK ", "WARNING ", "PROBLEM ", "ERROR ", "skipped "))]
    assert len(lines) == 200 and not any(ln.startswith(("ERROR", "skipped")) for ln in lines)
    assert "unreadable" not in res.stdout and "not logs" not in res.stdout
    worst = 0 if all(ln.startswith("OK ") for ln in lines) else 1
    assert res.returncode == worst, res.stdout[-500:]


def test_digests_give_the_lines_and_summary_of_full_reports(tmp_path):
    """R19: for the text and Markdown outputs the workers send back a digest of each report (and skip the loss
    forecast nobody sees there); every line, the summary table and the exit code stay those of the full reports."""
    d = _runs_dir(tmp_path)
    (d / "config.json").write_text(json.dumps({"learning_rate": 0.5}))  # beside every log
    rng = np.random.default_rng(0)  # a power-law descent with noise: a log whose report has a loss forecast
    (d / "r9.log").write_text("".join(f"iter {i}: loss {2 + 5 * i ** -0.5 + 0.01 * rng.standard_normal():.4f}, "
                                      "time 10.00ms, mfu 1.00%\n" for i in range(1, 301)))
    inputs = run_inputs(str(d))
    for jobs in (1, 2):
        full = list(scan(inputs, jobs=jobs))
        light = list(scan(inputs, jobs=jobs, full=False))
        assert [ln for r in light for ln in r.lines()] == [ln for r in full for ln in r.lines()]
        assert summary_lines(light) == summary_lines(full)
        reports = [r for res in full for r in res.reports]
        digests = [r for res in light for r in res.reports]
        assert len(digests) == 6 and all(type(r).__name__ == "ReportDigest" for r in digests)
        assert [r.source for r in digests] == [r.source for r in reports]
        assert all(r.source["config"] == str(d / "config.json") for r in digests)  # the folder's search, cached
        assert [r.diagnoses[:1] for r in reports] == [r.diagnoses for r in digests]
    assert any("forecast" in r.run for r in reports)  # the JSON output keeps the forecast


def test_config_search_cache_lives_only_as_long_as_the_scan(tmp_path):
    from lossdx.config import find_config_near
    from lossdx.config import readers as config_readers

    d = _runs_dir(tmp_path, n=2)
    list(scan(run_inputs(str(d)), jobs=1, full=False))
    assert config_readers._FOLDER_CONFIGS is None  # a later analysis in this process searches afresh
    (d / "config.json").write_text("{}")
    assert find_config_near(str(d / "r0.log")) == str(d / "config.json")


def test_markdown_and_text_scans_match_the_full_reports(tmp_path):
    d = _runs_dir(tmp_path)
    md = _cli("analyze", str(d), "-f", "md", "-j", "2")
    js = json.loads(_cli("analyze", str(d), "-f", "json", "-j", "2").stdout)
    for r in js:
        cause = f"{r['diagnoses'][0]['cause']} ({r['diagnoses'][0]['confidence']:.2f})" if r["diagnoses"] else ""
        assert f"| {r['verdict']} |" in md.stdout and (not cause or cause in md.stdout)
    text = _cli("analyze", str(d), "-j", "2").stdout
    assert [ln.split()[0] for ln in text.splitlines() if ln.startswith(("OK ", "WARNING ", "PROBLEM "))] == \
        [{"healthy": "OK", "warning": "WARNING", "problem": "PROBLEM"}[r["verdict"]] for r in js]


def test_scan_applies_the_settings_of_a_single_log(tmp_path):
    # --ignore (and [tool.lossdx]) hold for every run of a directory as for one log: the spike of r2 is dropped
    d = _runs_dir(tmp_path)
    res = _cli("analyze", str(d), "-f", "json", "-j", "2", "--ignore", "spike")
    reports = json.loads(res.stdout)
    assert all(f["kind"] != "spike" for r in reports for f in r["findings"])
    (d / "lossdx.toml").write_text('ignore = ["spike"]\n')
    res = _cli("analyze", str(d), "-f", "json", "-j", "1")
    assert all(f["kind"] != "spike" for r in json.loads(res.stdout) for f in r["findings"])


def test_scan_annotations_for_ci(tmp_path):
    d = _runs_dir(tmp_path)
    res = _cli("analyze", str(d), "-f", "github", "-j", "2")
    verdicts = [ln for ln in res.stdout.splitlines() if "title=lossdx verdict" in ln]
    assert len(verdicts) == 5
    assert [ln.startswith(("::error", "::warning")) for ln in verdicts] == ["r2.log" in ln for ln in verdicts]
    sarif = json.loads(_cli("analyze", str(d), "-f", "sarif", "-j", "2").stdout)
    assert sarif["version"] == "2.1.0" and len(sarif["runs"]) == 5
