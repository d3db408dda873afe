from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lossdx.compare import compare, compare_paths, labels_for
from lossdx.model import Run, Series

from .conftest import GPU_RUNS, need


def _sweep():
    g = need(GPU_RUNS)
    # three formats on purpose: runs of a sweep need not be logged the same way
    return [str(g / "healthy_cosine" / "train.log"), str(g / "lr_too_high_diverge" / "metrics.csv"),
            str(g / "lr_too_low" / "tb")]


def test_lr_sweep_picks_the_healthy_run_and_explains_the_losers():
    c = compare_paths(_sweep())
    assert c.axis == "tokens"
    assert c.winner.label == "healthy_cosine/train.log"
    high, low = {r.label: r for r in c.runs[1:]}["lr_too_high_diverge/metrics.csv"], \
        {r.label: r for r in c.runs[1:]}["lr_too_low/tb"]
    assert high.value > c.winner.value and low.value > c.winner.value
    assert any("50x the winner's 0.0006" in x for x in high.reasons)
    assert any("lr_too_high" in x for x in high.reasons)
    assert any("below the winner's 0.0006" in x for x in low.reasons)
    assert any("lr_too_low" in x for x in low.reasons)
    assert "healthy_cosine/train.log wins" in c.summary and "lr too high" in c.summary and "lr too low" in c.summary
    assert c.varied[0] == "lr"


@pytest.mark.parametrize("fmt", ["text", "json", "md", "html"])
def test_cli_compare_formats(fmt, tmp_path):
    res = subprocess.run([sys.executable, "-m", "lossdx", "compare", *_sweep(), "--format", fmt],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    if fmt == "json":
        d = json.loads(res.stdout)
        assert d["schema"] == "lossdx.compare/1" and d["winner"] == "healthy_cosine/train.log"
        assert [r["rank"] for r in d["runs"]] == [1, 2, 3]
    elif fmt == "html":
        assert res.stdout.startswith("<!DOCTYPE html>") and "healthy_cosine/train.log wins" in res.stdout
    else:
        assert "healthy_cosine/train.log" in res.stdout.replace("\\_", "_")


def _run(name, loss, lr):
    steps = np.arange(len(loss))
    return Run(series={"train/loss": Series("train/loss", steps, np.asarray(loss, dtype=float))},
               source={"path": f"{name}.log", "format": "nanogpt"}, config={"learning_rate": lr},
               meta={"run_name": name})


def test_a_run_that_went_nan_cannot_win_even_if_its_last_finite_loss_is_lowest():
    n = 600
    t = np.arange(n)
    good = 3 * np.exp(-t / 100) + 2.0
    nan = 3 * np.exp(-t / 50) + 1.0
    nan[400:] = np.nan
    c = compare([_run("a", good, 1e-3), _run("b", nan, 1e-2)])
    assert c.winner.label == "a"
    loser = c.runs[1]
    assert any("non-finite" in f for f in loser.flags)


def test_compare_needs_two_runs(tmp_path):
    log = need(GPU_RUNS / "healthy_cosine" / "train.log")
    res = subprocess.run([sys.executable, "-m", "lossdx", "compare", str(log)], capture_output=True, text=True)
    assert res.returncode == 2 and "at least two runs" in res.stderr and "Traceback" not in res.stderr


def test_labels_use_the_directory_when_files_share_a_name():
    runs = [_run("x", [1, 2], 1), _run("y", [1, 2], 1)]
    assert labels_for(["a/train.log", "b/train.log"], runs) == ["a/train.log", "b/train.log"]
    assert labels_for(["a/one.log", "a/two.log"], runs) == ["one.log", "two.log"]


def test_compare_html_escapes_hostile_file_names(tmp_path):
    from lossdx.compare import compare_paths
    from lossdx.report.html import render_compare_html

    paths = []
    for i, lr in enumerate((1e-3, 3e-3)):
        d = tmp_path / f"<img src=x onerror=alert({i})>"
        d.mkdir()
        (d / "train.log").write_text("".join(f"iter {j}: loss {3 * 0.99 ** (j * (i + 1)) + 1:.4f}, time 1.00ms\n"
                                             for j in range(200)))
        (d / "config.json").write_text(json.dumps({"learning_rate": lr, "note": "<script>alert(9)</script>"}))
        paths.append(str(d / "train.log"))
    page = render_compare_html(compare_paths(paths))
    assert "<img" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(0)&gt;" in page
