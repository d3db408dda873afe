from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from lossdx import analyze
from lossdx.model import Run, Series
from lossdx.report.html import analyze_for_plot, downsample, plot_data, render_html, script_json

from ..conftest import GPU_RUNS, need
from .browser import dump_dom, screenshot

HOSTILE = "<img src=x onerror=alert(1)>"


def _plot_rect(dom: str) -> tuple[int, int, int, int]:
    m = re.search(r'data-plot-rect="(\d+),(\d+),(\d+),(\d+)"', dom)
    assert m, "the page's script did not run to the end"
    return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


def test_bad_batch_spike_report_renders_in_chromium(tmp_path):
    log = need(GPU_RUNS / "bad_batch_spike" / "train.log")
    page = tmp_path / "report.html"
    res = subprocess.run([sys.executable, "-m", "lossdx", "analyze", str(log), "--format", "html", "-o", str(page)],
                         capture_output=True, text=True)
    assert res.returncode in (0, 1), res.stderr
    text = page.read_text()
    # both injected spikes (steps 700 and 1100) are marked, and the diagnosis is there
    data = json.loads(re.search(r'<script type="application/json" id="lossdx-data">(.*?)</script>', text, re.S)
                      .group(1))
    loss = data["panels"][0]
    spikes = sorted(f["start"] for f in loss["findings"] if f["kind"] == "spike")
    assert spikes == [700, 1100]
    assert "bad data batch" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text

    shot = tmp_path / "shot.png"
    console = screenshot(page, shot)
    assert console == [], console
    dom, console = dump_dom(page)
    assert console == [], console
    assert "data-js-errors=" not in dom
    assert dom.count('class="finding"') >= 2
    x, y, w, h = _plot_rect(dom)
    from PIL import Image  # the test extra has Pillow

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    area = img[y + 2:y + h - 2, x + 2:x + w - 2]
    background = np.array([255, 255, 255])
    drawn = np.abs(area - background).sum(axis=2) > 30
    assert drawn.mean() > 0.01, f"plot area nearly empty ({drawn.mean():.4f} non-background)"
    # the curve's own colour is in the plot area, not only the shading
    blue = (np.abs(area - np.array([0x1f, 0x77, 0xb4])).sum(axis=2) < 60).sum()
    assert blue > 200


def _hostile_run(tmp_path):
    n = 400
    steps = np.arange(n)
    loss = 3 * np.exp(-steps / 80) + 1.5 + 0.02 * np.random.default_rng(0).standard_normal(n)
    loss[250] = 9.0
    loss[300] = np.nan
    path = tmp_path / f"{HOSTILE}.jsonl"
    run = Run(series={"train/loss": Series("train/loss", steps, loss),
                      f"train/{HOSTILE}": Series(f"train/{HOSTILE}", steps, loss * 2)},
              source={"path": str(path), "format": "jsonl"},
              config={"learning_rate": 3e-4, "note": "<script>alert(3)</script>", HOSTILE: "x"},
              meta={"run_name": "</script><script>alert(2)</script>"})
    return run


def test_hostile_strings_are_escaped(tmp_path):
    run = _hostile_run(tmp_path)
    report = analyze(run)
    page = render_html(report, run)
    body = page.split('<script type="application/json"')[0]
    for raw in (HOSTILE, "<script>alert(3)</script>", "</script><script>alert(2)</script>"):
        assert raw not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<" not in script_json({"k": "</script><b>&"}).replace("\\u003c", "")
    # and in a browser: the hostile names are text, no element or script of theirs exists
    f = tmp_path / "hostile.html"
    f.write_text(page, encoding="utf-8")
    dom, console = dump_dom(f)
    assert console == []
    assert "<img" not in dom and dom.count("<script") == 2
    assert "data-js-errors=" not in dom
    _plot_rect(dom)


def test_hostile_file_name_in_chromium(tmp_path):
    log = tmp_path / f"{HOSTILE}.jsonl"
    log.write_text("".join(json.dumps({"step": i, "loss": 3.0 / (1 + i / 50), HOSTILE: 1.0,
                                       "lr": 3e-4}) + "\n" for i in range(300)))
    page = tmp_path / "report.html"
    res = subprocess.run([sys.executable, "-m", "lossdx", "analyze", str(log), "--format", "html", "-o", str(page)],
                         capture_output=True, text=True)
    assert res.returncode in (0, 1), res.stderr
    dom, console = dump_dom(page)
    assert console == []
    assert "<img" not in dom  # the name is text, not an element
    assert "onerror=alert(1)" in dom  # ... and is shown (escaped)
    _plot_rect(dom)


def test_downsampling_keeps_one_step_spike_and_single_nan():
    n = 1_000_000
    rng = np.random.default_rng(1)
    steps = np.arange(n, dtype=np.int64)
    values = 2.0 + 0.01 * rng.standard_normal(n)
    values[123_457] = 50.0
    values[777_777] = np.nan
    idx = downsample(steps, values)
    assert len(idx) < 8000
    assert 123_457 in idx and 777_777 in idx
    # plain decimation would have lost both
    assert 123_457 not in steps[:: n // 6000] and 777_777 not in steps[:: n // 6000]


def test_plot_data_of_long_run_is_small_and_marks_nan():
    n = 200_000
    steps = np.arange(n)
    loss = 3 * np.exp(-steps / 20_000) + 1.0
    loss[150_001] = np.inf
    run = Run(series={"train/loss": Series("train/loss", steps, loss),
                      "train/lr": Series("train/lr", steps, np.full(n, 3e-4))},
              source={"path": "x.log", "format": "nanogpt"})
    report = analyze(run)
    data = plot_data(report, run)
    s = data["panels"][0]["series"][0]
    assert len(s["x"]) < 8000 and s["points"] == n
    assert s["nonfinite"] == [[150_001, 150_001, "Inf"]]
    assert None in s["y"]


def test_png_needs_output_file_or_matplotlib(tmp_path):
    log = need(GPU_RUNS / "bad_batch_spike" / "train.log")
    res = subprocess.run([sys.executable, "-m", "lossdx", "analyze", str(log), "--format", "png"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    out = tmp_path / "r.png"
    res = subprocess.run([sys.executable, "-m", "lossdx", "analyze", str(log), "--format", "png", "-o", str(out)],
                         capture_output=True, text=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert res.returncode == 2 and "matplotlib" in res.stderr
        return
    assert res.returncode in (0, 1), res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyze_for_plot_returns_the_curves():
    log = need(GPU_RUNS / "bad_batch_spike" / "train.log")
    report, run = analyze_for_plot(str(log))
    assert "train/loss" in run.series and report.verdict in ("warning", "problem")
    with pytest.raises(Exception):
        analyze_for_plot(str(log) + ".missing")


def test_render_dispatch_reads_the_curves_again():
    from lossdx import analyze_path
    from lossdx.report import render

    log = need(GPU_RUNS / "bad_batch_spike" / "metrics.jsonl")
    page = render(analyze_path(str(log)), "html")
    assert page.startswith("<!DOCTYPE html>") and '"train/loss"' in page
