import json
import subprocess
import sys

import jsonschema
import pytest

from lossdx.cli import main
from lossdx.report import load_schema

from .conftest import GPU_RUNS, need


def run_cli(*args):
    """The real console entry point in a subprocess: what a user sees, tracebacks included."""
    p = subprocess.run([sys.executable, "-m", "lossdx", *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


BAD_INPUTS = {
    "empty.log": b"",
    "binary.bin": bytes(range(256)) * 8,
    "latin1.log": "iter 0: loss 2.5, caf\xe9\n".encode("latin-1"),
    "trainer_state.json": b'{"log_history": [{"loss": 1.0, "step": 1}, {"loss": 0.9, ',
    "noloss.csv": b"step,accuracy\n0,0.1\n1,0.2\n",
    "prose.txt": b"Dear diary, today the model trained.\nIt was fine.\n",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(tmp_path, name):
    f = tmp_path / name
    f.write_bytes(BAD_INPUTS[name])
    code, out, err = run_cli("analyze", str(f))
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("lossdx: error:")
    assert f.read_bytes() == BAD_INPUTS[name]  # nothing the user had is touched


def test_missing_path_and_empty_directory(tmp_path):
    code, _, err = run_cli("analyze", str(tmp_path / "nope.log"))
    assert code == 2 and "no such file" in err
    code, _, err = run_cli("analyze", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_json_report_validates_against_the_schema(tmp_path):
    f = tmp_path / "train.log"
    f.write_text("".join(f"iter {i}: loss {3.0 / (1 + i / 50):.4f}, time 40.0ms, mfu 1.5%\n" for i in range(0, 500, 10)))
    code, out, err = run_cli("analyze", str(f), "--format", "json", "--no-auto-config")
    assert code in (0, 1), err
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema())
    assert doc["schema"] == "lossdx.report/1" and doc["source"]["format"] == "nanogpt"


def test_formats_md_and_text(tmp_path):
    f = tmp_path / "train.log"
    f.write_text("iter 0: loss 3.0, time 40.0ms, mfu 1.5%\niter 10: loss 2.5, time 40.0ms, mfu 1.5%\n")
    for fmt, marker in (("text", "facts:"), ("md", "# lossdx report")):
        code, out, _ = run_cli("analyze", str(f), "-f", fmt)
        assert marker in out


def test_output_file_is_written_and_never_over_the_input(tmp_path):
    f = tmp_path / "train.log"
    original = "iter 0: loss 3.0, time 40.0ms, mfu 1.5%\niter 10: loss 2.5, time 40.0ms, mfu 1.5%\n"
    f.write_text(original)
    out = tmp_path / "report.json"
    assert main(["analyze", str(f), "-f", "json", "-o", str(out)]) in (0, 1)
    assert json.loads(out.read_text())["schema"] == "lossdx.report/1"
    code, _, err = run_cli("analyze", str(f), "-o", str(f))
    assert code == 2 and "refusing" in err
    assert f.read_text() == original


def test_input_format_override(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("step 0 | loss: 3.0 | lr 1e-4\nstep 1 | loss: 2.9 | lr 2e-4\n")
    code, out, _ = run_cli("analyze", str(f), "--input-format", "generic", "-f", "json")
    assert json.loads(out)["source"]["format"] == "generic"


def test_gpu_run_directory_reads_config_beside_it():
    d = need(GPU_RUNS / "healthy_cosine")
    code, out, err = run_cli("analyze", str(d), "-f", "json")
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema())
    assert doc["run"]["facts"]["n_params"] == 13865856
    assert doc["run"]["facts"]["init_loss_expected"] == pytest.approx(9.0109, abs=1e-3)


def test_demo_runs():
    code, out, err = run_cli("demo")
    assert code == 0, err
    assert "bundled example" in out


def test_fail_on(tmp_path):
    from lossdx.cli._options import exit_code

    assert exit_code("warning", "warning") == 1 and exit_code("warning", "problem") == 0
    assert exit_code("problem", "problem") == 1 and exit_code("problem", "never") == 0
    assert exit_code("healthy", "warning") == 0


def test_calc_commands():
    code, out, _ = run_cli("calc", "params", "--n-layer", "12", "--n-embd", "384", "--vocab-size", "50304",
                           "--block-size", "1024")
    assert code == 0 and "40,953,216" in out
    code, out, _ = run_cli("calc", "tokens", "--batch-size", "16", "--grad-accum", "32", "--seq-len", "1024")
    assert "524,288" in out
    code, out, _ = run_cli("calc", "compute", "--params", "7e9", "--tokens", "2e12")
    assert "8.4e+22" in out and "58,333 GPU-hours" in out
    code, out, _ = run_cli("calc", "lr", "--lr", "3e-4", "--batch", "256", "--new-batch", "1024")
    assert "0.0012" in out and "0.0006" in out


def test_explain_every_cause():
    from lossdx.diagnosis import CAUSES

    for cause in CAUSES:
        code, out, _ = run_cli("explain", cause)
        assert code == 0 and "to fix:" in out and "in the curves:" in out
    code, _, err = run_cli("explain", "cosmic_rays")
    assert code == 2


def test_config_only_evidence_is_advice_with_a_patch():
    """Issue 7 (2): the text log of the no-warmup run logs neither LR nor grad norm, and its 10-step loss shows no
    damage: only the config says "warmup 0". That is advice (healthy verdict, low-confidence cause), still with
    the patch in the user's own key names."""
    d = need(GPU_RUNS / "no_warmup")
    code, out, err = run_cli("analyze", str(d / "train.log"), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema())
    assert doc["verdict"] == "healthy"
    top = doc["diagnoses"][0]
    assert top["cause"] == "missing_warmup" and top["confidence"] <= 0.3
    assert top["config_patch"]["warmup_iters"] == {"from": 0, "to": 30}


def test_problem_report_with_diagnoses_validates_and_patches_the_config():
    d = need(GPU_RUNS / "no_warmup")
    code, out, err = run_cli("analyze", str(d / "metrics.jsonl"), "-f", "json")
    assert code == 1, err
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema())
    assert doc["verdict"] in ("warning", "problem")
    top = doc["diagnoses"][0]
    assert top["cause"] in ("missing_warmup", "lr_too_high") and len(top["evidence"]) >= 2
    patches = {k: v for dg in doc["diagnoses"] for k, v in dg.get("config_patch", {}).items()}
    assert patches["warmup_iters"] == {"from": 0, "to": 30}  # 2 % of max_iters = 1500
    code, _, _ = run_cli("analyze", str(d / "metrics.jsonl"), "--fail-on", "never")
    assert code == 0
