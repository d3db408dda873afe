"""Settings: [tool.lossdx] / lossdx.toml discovery, validation, command-line overrides, effect on the analysis."""

from __future__ import annotations

import json
import math
import random

import pytest

from lossdx import analyze, read
from lossdx.cli import main
from lossdx.exceptions import ConfigError
from lossdx.settings import Settings, find_settings_file, from_mapping, load_settings


def spiky_log(path, n=1500, every=100):
    rnd = random.Random(0)
    lines = []
    for i in range(n):
        loss = 2 + 3 * math.exp(-i / 200) + rnd.gauss(0, 0.02)
        if i % every == 50 and i > 200:
            loss *= 2.0
        lines.append(f"iter {i}: loss {loss:.4f}, time 10.00ms, mfu 1.00%\n")
    path.write_text("".join(lines))
    return path


def test_nearest_settings_file_from_the_log_upwards(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.lossdx]\nignore = ["throughput"]\n')
    deep = tmp_path / "runs" / "exp3"
    deep.mkdir(parents=True)
    log = spiky_log(deep / "train.log")
    assert find_settings_file(str(log)) == str(tmp_path / "pyproject.toml")
    (deep / "lossdx.toml").write_text("spike_z = 12\n")
    s = load_settings(str(log))
    assert s.spike_z == 12 and s.ignore == () and s.sources == [str(deep / "lossdx.toml")]
    # a pyproject.toml without [tool.lossdx] is passed over
    (deep / "lossdx.toml").unlink()
    (deep / "pyproject.toml").write_text('[project]\nname = "y"\n')
    assert load_settings(str(log)).ignore == ("throughput",)


def test_cwd_is_searched_when_nothing_is_above_the_log(tmp_path, monkeypatch):
    proj, logs = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir()
    logs.mkdir()
    (proj / "lossdx.toml").write_text('[tool.lossdx]\nselect = ["spike", "nan"]\n')
    monkeypatch.chdir(proj)
    assert load_settings(str(logs / "train.log")).select == ("spike", "nan")


@pytest.mark.parametrize("table, message", [
    ({"spike-zz": 3}, "unknown setting 'spike-zz' (did you mean spike_z"),
    ({"ignore": ["spikes"]}, "unknown finding kind 'spikes' in ignore (did you mean spike"),
    ({"spike_z": -1}, "spike_z = -1 is out of range"),
    ({"plateau_window": 2.0}, "out of range"),
    ({"typical_lr": "3e-4"}, "typical_lr must be a number"),
    ({"fail_on": "always"}, "fail_on must be one of"),
    ({"select": ["nan"], "ignore": ["nan"]}, "nan both selected and ignored"),
])
def test_bad_settings_are_one_clear_error(table, message):
    with pytest.raises(ConfigError, match=None) as err:
        from_mapping(table, origin="pyproject.toml")
    assert message in str(err.value) and str(err.value).startswith("pyproject.toml: ")


def test_thresholds_reach_the_detectors_and_kinds_are_filtered(tmp_path):
    log = spiky_log(tmp_path / "train.log")
    base = analyze(read(str(log)))
    assert any(f.kind == "spike" for f in base.findings)
    calm = analyze(read(str(log)), settings=Settings(spike_z=1e6))
    dets = Settings(spike_z=50.0, plateau_window=0.5, grad_norm_ratio=30).detectors()
    byname = {type(d).__name__: d for d in dets}
    assert byname["SpikeDetector"].z == 50.0 and byname["PlateauDetector"].tail == 0.5
    assert byname["GradNormDetector"].ratio == 30 and byname["SpikeDetector"].rel == 0.3  # the rest untouched
    assert calm.settings == {"spike_z": 1e6, "sources": []}
    ignored = analyze(read(str(log)), settings=Settings(ignore=("spike", "log_limit")))
    assert not any(f.kind in ("spike", "log_limit") for f in ignored.findings)
    assert ignored.to_dict()["settings"]["ignore"] == ["spike", "log_limit"]
    only = analyze(read(str(log)), settings=Settings(select=("spike",)))
    assert {f.kind for f in only.findings} <= {"spike", "phase"} and any(f.kind == "spike" for f in only.findings)


def test_typical_lr_becomes_a_norm_of_the_run_context(tmp_path):
    run = read(str(spiky_log(tmp_path / "train.log")))
    analyze(run, settings=Settings(typical_lr=3e-4))
    assert run.meta["norms"]["typical_lr"] == 3e-4


def test_cli_flags_override_the_file_and_the_report_records_both(tmp_path, capsys):
    log = spiky_log(tmp_path / "train.log")
    (tmp_path / "lossdx.toml").write_text('ignore = ["log_limit"]\nfail_on = "never"\nspike_z = 9\n')
    code = main(["analyze", str(log), "-f", "json", "--spike-z", "11", "--ignore", "throughput,plateau"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0  # fail_on = "never" from the file
    assert doc["settings"]["spike_z"] == 11 and doc["settings"]["ignore"] == ["throughput", "plateau"]
    assert doc["settings"]["sources"] == [str(tmp_path / "lossdx.toml"), "command line"]
    assert not any(f["kind"] in ("throughput", "plateau") for f in doc["findings"])
    assert main(["analyze", str(log), "-f", "json", "--fail-on", "warning"]) == 1  # the flag beats the file


def test_cli_bad_setting_exits_2_with_one_line(tmp_path, capsys):
    log = spiky_log(tmp_path / "train.log")
    assert main(["analyze", str(log), "--ignore", "spikes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean spike" in err
    (tmp_path / "lossdx.toml").write_text("spike_z = [\n")
    assert main(["analyze", str(log)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid TOML" in err
    assert main(["analyze", str(log), "--settings", str(tmp_path / "missing.toml")]) == 2
