"""The CLI as a user sees it: under a pseudo-terminal (colour, wrapping), with NO_COLOR, -q/-v, errors, --debug."""

from __future__ import annotations

import fcntl
import json
import math
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from rich.cells import cell_len

from lossdx import __version__

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG_NAME = "a_rather_long_directory_name_for_an_experiment_" * 3


def spiky_log(path, n=1500, every=100):
    lines = []
    for i in range(n):
        loss = 2 + 3 * math.exp(-i / 200) + 0.02 * math.sin(i * 1.7)
        if i % every == 50 and i > 200:
            loss *= 2.5
        lines.append(f"iter {i}: loss {loss:.4f}, time 10.00ms, mfu 1.00%\n")
    path.write_text("".join(lines))
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM")}
    env.update(extra)
    return env


def run_in_pty(args, columns=80, **env):
    """Run ``lossdx ARGS`` with stdout on a pseudo-terminal of ``columns`` columns; (exit code, output, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "lossdx", *args], stdout=slave, stderr=subprocess.PIPE,
                         env=clean_env(TERM="xterm-256color", **env))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    with p.stderr:
        err = p.stderr.read().decode()
    code = p.wait(timeout=120)
    return code, b"".join(chunks).decode().replace("\r\n", "\n"), err


def run_cli(*args, **env):
    p = subprocess.run([sys.executable, "-m", "lossdx", *args], capture_output=True, text=True, timeout=120,
                       env=clean_env(**env))
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    d = tmp_path_factory.mktemp("t") / LONG_NAME
    d.mkdir()
    return spiky_log(d / "train.log")


def test_terminal_report_is_coloured_and_wrapped_to_80_columns(log):
    code, out, err = run_in_pty(["analyze", str(log)], columns=80)
    assert code == 1, err
    assert ANSI.search(out), "no colour on a terminal"
    plain = ANSI.sub("", out)
    assert "\x1b" not in plain  # nothing but our colour codes
    widths = [cell_len(line) for line in plain.splitlines()]
    assert max(widths) <= 80, [line for line in plain.splitlines() if cell_len(line) > 80]
    assert "loss spikes on train/loss" in plain and "--all lists them" in plain


def test_no_color_is_honoured_on_a_terminal(log):
    code, out, _ = run_in_pty(["analyze", str(log)], columns=80, NO_COLOR="1")
    assert "\x1b" not in out and max(cell_len(line) for line in out.splitlines()) <= 80
    _, narrow, _ = run_in_pty(["analyze", str(log), "--all"], columns=50, NO_COLOR="1")
    assert max(cell_len(line) for line in narrow.splitlines()) <= 50


def test_force_color_colours_a_pipe_and_a_pipe_is_plain_otherwise(log):
    _, out, _ = run_cli("analyze", str(log), FORCE_COLOR="1")
    assert ANSI.search(out)
    _, out, _ = run_cli("analyze", str(log))
    assert "\x1b" not in out
    assert any(len(line) > 80 for line in out.splitlines())  # not wrapped: a pipe or file gets whole lines
    _, out, _ = run_cli("analyze", str(log), "--color", "always", NO_COLOR="1")
    assert ANSI.search(out)


def test_quiet_prints_the_verdict_line_only(log):
    code, out, _ = run_cli("analyze", str(log), "-q")
    assert code == 1 and out.count("\n") == 1 and out.startswith("WARNING: ")
    code, out, _ = run_cli("analyze", str(log), "-v")
    assert "evidence:" in out and f"lossdx {__version__}, analysed " in out


def test_github_and_sarif_formats(log):
    code, out, _ = run_cli("analyze", str(log), "-f", "github")
    assert code == 1 and all(line.startswith("::") for line in out.splitlines())
    code, out, _ = run_cli("analyze", str(log), "-f", "sarif")
    assert json.loads(out)["version"] == "2.1.0"


def test_version_from_one_place():
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"lossdx, version {__version__}"
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert __version__ == meta["version"]


# --- errors: one line, exit 2 -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["calc", "ppl", "--", "-1"], "must be at least 0"),
    (["calc", "ppl", "nan"], "not a finite number"),
    (["calc", "compute", "--params", "-7e9", "--tokens", "1e9"], "--params"),
    (["calc", "lr", "--lr", "1e-3", "--batch", "0", "--new-batch", "8"], "--batch"),
    (["calc", "tokens", "--batch-size", "0", "--seq-len", "8"], "--batch-size"),
    (["calc", "params", "--n-layer", "1e99", "--n-embd", "8", "--vocab-size", "8"], "not an integer"),
    (["explain", "LR_too_high"], "did you mean lr_too_high?"),
    (["explain", "explosion"], "did you mean gradient_explosion?"),
    (["analyze"], "Missing argument"),
    (["analyze", "x.log", "--format", "yaml"], "--format"),
    (["nosuchcommand"], "No such command"),
])
def test_bad_usage_is_one_line_and_exit_2(args, needle):
    code, out, err = run_cli(*args)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("lossdx: error: ") and needle in err, err
    assert "Traceback" not in err


def test_explain_suggests_the_nearest_name_once():
    _, _, err = run_cli("explain", "lr-too-high")
    assert err.count("lr_too_high") == 1


def test_calculator_edge_cases():
    code, out, err = run_cli("calc", "ppl", "1000")
    assert code == 0 and "1.97e+434" in out and not err
    code, out, err = run_cli("calc", "mfu", "--params", "7e9", "--tokens-per-sec", "1e6")
    assert code == 0 and "4246.7%" in out and err.count("\n") == 1 and "above 100% is impossible" in err


def test_internal_error_is_one_line_exit_2_and_debug_shows_the_traceback(tmp_path):
    """A bug of ours (forced here by a broken detector) is exit 2 and one line; --debug adds the traceback."""
    (tmp_path / "sitecustomize.py").write_text(
        "import lossdx.detectors as d\n"
        "def boom():\n    raise RuntimeError('detector exploded\\nsecond line')\n"
        "d.default_detectors = boom\n")
    log = spiky_log(tmp_path / "train.log", n=300)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    code, out, err = run_cli("analyze", str(log), **env)
    assert code == 2 and err.count("\n") == 1 and "internal error: RuntimeError: detector exploded" in err
    assert "--debug shows the traceback" in err
    code, out, err = run_cli("analyze", str(log), "--debug", **env)
    assert code == 2 and "Traceback (most recent call last)" in err and err.rstrip().splitlines()[-1].startswith(
        "lossdx: internal error")


# --- R18 through the CLI ------------------------------------------------------------------------------------

def test_r18_hostile_file_names_and_run_names_through_the_cli(tmp_path):
    """The reproducer of R18: ESC/OSC in a file name reach a terminal raw; a backtick breaks Markdown."""
    hostile = tmp_path / "run\x1b[2J\x1b]0;pwned-title\x07.log"
    spiky_log(hostile, n=300)
    code, out, _ = run_in_pty(["analyze", str(hostile), "--fail-on", "never"])
    assert code == 0
    plain = ANSI.sub("", out)
    assert "\x1b" not in plain and "\x07" not in plain
    assert "run\\x1b[2J\\x1b]0;pwned-title\\x07.log" in re.sub(r"\n +", "", plain)  # shown, visibly
    tick = tmp_path / "x`<img src=x onerror=alert(1)>`.log"
    spiky_log(tick, n=300)
    code, out, _ = run_cli("analyze", str(tick), "--format", "md", "--fail-on", "never")
    assert code == 0 and "<img" not in out and "`" not in out.replace("\\`", "")
    csv = tmp_path / "wandb.csv"
    rows = ['"Step","a<script>alert(1)</script> - train/loss","b - train/loss"']
    rows += [f"{i},{3 * 0.98 ** i + 1:.4f},{3 * 0.97 ** i + 1:.4f}" for i in range(60)]
    csv.write_text("\n".join(rows) + "\n")
    code, out, _ = run_cli("analyze", str(csv), "--format", "md", "--fail-on", "never")
    assert code == 0 and "<script>" not in out and "&lt;script&gt;" in out


def test_annotations_point_at_the_line_of_the_step(log):
    _, out, _ = run_cli("analyze", str(log), "-f", "github", "--all")
    first = next(line for line in out.splitlines() if "lossdx spike" in line)
    step = int(first.split("@ step ")[1].split(":")[0].split("-")[0].split("::")[0])
    line = int(first.split(",line=")[1].split(",")[0])
    assert log.read_text().splitlines()[line - 1].startswith(f"iter {step}:")
    _, out, _ = run_cli("analyze", str(log), "-f", "sarif")
    region = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] >= 1


def test_explain_is_wrapped_on_a_terminal():
    code, out, _ = run_in_pty(["explain", "lr_too_high"], columns=80)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    assert "\n                  " in out  # continuation lines under the text column
    _, piped, _ = run_cli("explain", "lr_too_high")
    assert max(len(line) for line in piped.splitlines()) > 80  # a pipe gets whole lines


def test_r18_error_messages_show_control_characters_visibly(tmp_path):
    code, _, err = run_cli("analyze", str(tmp_path / "nope\x1b]0;x\x07.log"))
    assert code == 2 and "\x1b" not in err and "\x07" not in err and "nope\\x1b]0;x\\x07.log" in err


def test_formats_shows_an_example_and_what_is_read_within_the_terminal_width():
    code, out, _ = run_in_pty(["formats"], columns=80)
    lines = out.strip().splitlines()
    assert code == 0
    assert "iter 10: loss 3.2210" in out and "reads: " in out and "megatron" in out
    assert all(cell_len(line) <= 80 for line in lines)
