"""Score lossdx on the labelled runs and the real corpus, and run the peer tools on the same inputs.

    $ python benchmarks/score.py [--no-peers] [--json out.json]

gpu-runs (every format) and vision-runs: verdict flagged or clean as labelled, injected spikes located
(within 3 steps, 10 on HF windows), first NaN step exact, and, once the diagnosis engine exists, the
top-ranked cause. realcorpus: healthy modded-nanogpt logs must be clean; logs labelled problematic
should be flagged. trainspotter 0.2.6 and losslint 0.4.1 run in benchmarks/.venv-bench on the same files.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("LOSSDX_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, HERE)

from lossdx.analyze import analyze_path  # noqa: E402
from lossdx.exceptions import InputError  # noqa: E402

FORMATS = {"jsonl": "metrics.jsonl", "csv": "metrics.csv", "log": "train.log", "hf": "trainer_state.json",
           "tb": "tb"}


def _flagged(report) -> bool:
    return report.verdict != "healthy"


def _located(report, steps: list[int], symptom: str | None, tol: int, logged_steps=None,
             one_based: bool = False) -> tuple[bool, str]:
    if not steps or symptom not in ("spike", "nan"):
        return True, ""
    if symptom == "nan":
        found = [f.start_step for f in report.findings if f.kind == "nan" and f.metric in ("train/loss", "train/grad_norm")
                 and not (f.metric == "train/grad_norm" and not f.evidence.get("hidden_by_window"))]
        first = min(found) if found else None
        # exact at the granularity of the log: the first logged step at or after the injected one
        expect = steps[0]
        if logged_steps is not None:
            # HF numbers a log row by updates done: its row s covers 0-based steps up to s-1
            later = [s for s in logged_steps if s >= steps[0] + (1 if one_based else 0)]
            expect = later[0] if later else steps[0]
        return first == expect, f"first NaN at {first} (injected {steps[0]}, first logged {expect})"
    found = [f.start_step for f in report.findings if f.kind == "spike" and f.severity != "info"]
    missing = [s for s in steps if not any(abs(f - s) <= tol for f in found)]
    return not missing, f"spikes at {found[:6]} (injected {steps})"


def score_labelled(dirname: str, auto_config: bool = True) -> list[dict]:
    base = os.path.join(SHARED, "benchmarks", dirname)
    labels = json.load(open(os.path.join(base, "LABELS.json")))
    rows = []
    for name, lab in sorted(labels.items()):
        if not lab.get("scored", True):
            continue
        for fmt, fname in FORMATS.items():
            path = os.path.join(base, name, fname)
            if not os.path.exists(path):
                continue
            t0 = time.perf_counter()
            try:
                rep = analyze_path(path, auto_config=auto_config)
            except InputError as err:
                rows.append({"run": name, "format": fmt, "error": str(err)})
                continue
            dt = time.perf_counter() - t0
            want_problem = lab["verdict"] == "problem"
            tol = 10 if fmt == "hf" else 3
            from lossdx.readers import read

            logged = read(path).series.get("train/loss")
            loc_ok, loc_msg = _located(rep, lab.get("injected_steps") or [], lab.get("symptom"), tol,
                                       None if logged is None else logged.steps.tolist(), one_based=fmt == "hf")
            top = [d.cause for d in rep.diagnoses]
            accept = set(lab.get("accept") or [])
            rows.append({
                "run": name, "format": fmt, "label": lab["verdict"], "cause": lab.get("cause"),
                "verdict": rep.verdict, "verdict_ok": _flagged(rep) == want_problem, "located": loc_ok,
                "location": loc_msg, "top_cause": top[0] if top else None,
                "top1": bool(top) and top[0] in accept if want_problem else None,
                "top3": bool(set(top[:3]) & accept) if want_problem else None,
                "healthy_max_conf": max((d.confidence for d in rep.diagnoses), default=0.0) if not want_problem else None,
                "predictions": [(d.cause, d.confidence, d.cause in accept) for d in rep.diagnoses],
                "findings": [f"{f.kind}@{f.start_step}:{f.severity[0]}" for f in rep.findings if f.severity != "info"],
                "seconds": round(dt, 3),
            })
    return rows


def score_realcorpus() -> list[dict]:
    base = os.path.join(SHARED, "realcorpus")
    with open(os.path.join(base, "MANIFEST.tsv"), encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh, delimiter="\t"))
    rows = []
    for m in manifest:
        path = os.path.join(base, m["file"])
        try:
            rep = analyze_path(path)
            verdict = rep.verdict
            finds = [f"{f.kind}@{f.start_step}:{f.severity[0]}" for f in rep.findings if f.severity != "info"]
        except InputError as err:
            verdict, finds = "unreadable", [str(err)]
        rows.append({"file": m["file"], "format": m["format"], "label": m["problem_label"], "n_points": m["n_points"],
                     "verdict": verdict, "findings": finds, "known": m["what_is_known"][:140]})
    return rows


PEER_COMMANDS = {
    "trainspotter": lambda exe, p: [exe, "analyze", p, "--fail-on", "warning", "--output", "json"],
    "losslint": lambda exe, p: [exe, "check", p, "--fail-severity", "warning", "--format", "json"],
}


def peers(paths: list[str]) -> dict[str, dict[str, str]]:
    """Verdicts of trainspotter 0.2.6 and losslint 0.4.1 on the given files, by their own exit codes
    (0 clean, 1 a warning or worse, anything else: could not read it). They run in the bench venv."""
    from _venv import bench_python

    py = bench_python(["trainspotter==0.2.6", "losslint==0.4.1"])
    bindir = os.path.dirname(py)
    out: dict[str, dict[str, str]] = {}
    for tool, cmd in PEER_COMMANDS.items():
        exe = os.path.join(bindir, tool)
        res = {}
        for p in paths:
            try:
                cp = subprocess.run(cmd(exe, p), capture_output=True, text=True, timeout=300)
                res[p] = {0: "clean", 1: "flagged"}.get(cp.returncode, "unreadable")
            except subprocess.TimeoutExpired:
                res[p] = "timeout"
        out[tool] = res
    return out


def config_effect() -> None:
    """Top cause of every gpu-run file with its config and without (the curve must carry the diagnosis)."""
    with_cfg = {(r["run"], r["format"]): r for r in score_labelled("gpu-runs")}
    without = {(r["run"], r["format"]): r for r in score_labelled("gpu-runs", auto_config=False)}
    differ, right = [], 0
    for key, a in sorted(with_cfg.items()):
        b = without.get(key, {})
        if b.get("top1") or (a.get("label") == "healthy" and b.get("verdict") == "healthy"):
            right += 1
        if (a.get("top_cause"), a.get("verdict")) != (b.get("top_cause"), b.get("verdict")):
            differ.append(f"  {key[0]}/{key[1]}: with config {a.get('verdict')} {a.get('top_cause')}; without "
                          f"{b.get('verdict')} {b.get('top_cause')} {b.get('findings')}")
    print(f"gpu-runs without config: right {right}/{len(with_cfg)}; top cause or verdict differs on {len(differ)}")
    print("\n".join(differ))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("-v", action="store_true", help="print every run")
    ap.add_argument("--config-effect", action="store_true",
                    help="gpu-runs with and without their config: list the runs whose top cause differs")
    args = ap.parse_args()
    if args.config_effect:
        config_effect()
        return
    gpu = score_labelled("gpu-runs")
    vision = score_labelled("vision-runs")
    corpus = score_realcorpus()
    summary = {}
    for label, rows in (("gpu-runs", gpu), ("vision-runs", vision)):
        ok_rows = [r for r in rows if "error" not in r]
        problems = [r for r in ok_rows if r["label"] == "problem"]
        healthy = [r for r in ok_rows if r["label"] == "healthy"]
        s = {
            "analyses": len(rows), "unreadable": len(rows) - len(ok_rows),
            "healthy_clean": f"{sum(r['verdict_ok'] for r in healthy)}/{len(healthy)}",
            "problems_flagged": f"{sum(r['verdict_ok'] for r in problems)}/{len(problems)}",
            "located": f"{sum(r['located'] for r in ok_rows)}/{len(ok_rows)}",
        }
        diag = [r for r in problems if r["top1"] is not None]
        if any(r["top_cause"] for r in ok_rows):
            s["top1"] = f"{sum(bool(r['top1']) for r in diag)}/{len(diag)}"
            s["top3"] = f"{sum(bool(r['top3']) for r in diag)}/{len(diag)}"
            s["healthy_max_confidence"] = max((r["healthy_max_conf"] for r in healthy), default=0.0)
        summary[label] = s
        print(f"\n== {label}: {json.dumps(s)}")
        for r in rows:
            bad = "error" in r or not r["verdict_ok"] or not r["located"] or (r["label"] == "problem" and r["top1"] is False)
            if bad or args.v:
                print(f"  {'!!' if bad else '  '} {r['run']:22s} {r['format']:5s} {r.get('label', ''):8s} -> "
                      f"{r.get('verdict', r.get('error'))!s:8s} top={r.get('top_cause')} {r.get('location', '')} "
                      f"{' '.join(r.get('findings', [])[:6])}")
    # calibration over all labelled predictions
    preds = [p for r in gpu + vision if "error" not in r for p in r["predictions"]]
    if preds:
        bins = [(0.0, 0.3), (0.3, 0.5), (0.5, 0.8), (0.8, 1.01)]
        table = []
        for lo, hi in bins:
            sel = [ok for _c, conf, ok in preds if lo <= conf < hi]
            table.append({"confidence": f"[{lo:.1f},{min(hi, 1):.1f})", "n": len(sel),
                          "right": f"{100 * sum(sel) / len(sel):.0f}%" if sel else "-"})
        summary["calibration"] = table
        print("\n== calibration (a prediction is right when its cause is in the run's accept list)")
        for row in table:
            print(f"  {row['confidence']:<10} n={row['n']:<4} right={row['right']}")
    mng = [r for r in corpus if r["format"] == "modded_nanogpt" and r["label"] == "no"]
    probs = [r for r in corpus if r["label"] in ("yes", "inferred")]
    summary["realcorpus"] = {
        "modded_nanogpt_healthy_clean": f"{sum(r['verdict'] == 'healthy' for r in mng)}/{len(mng)}",
        "problem_labelled_flagged": f"{sum(r['verdict'] in ('warning', 'problem') for r in probs)}/{len(probs)}",
        "unreadable": sum(r["verdict"] == "unreadable" for r in corpus),
    }
    print(f"\n== realcorpus: {json.dumps(summary['realcorpus'])}")
    for r in mng:
        if r["verdict"] != "healthy":
            print(f"  !! healthy modded-nanogpt flagged: {r['file']} {r['findings'][:4]}")
    for r in probs:
        if r["verdict"] not in ("warning", "problem"):
            print(f"  -- not flagged ({r['label']}): {r['file']} [{r['verdict']}] n={r['n_points']}: {r['known']}")
    if not args.no_peers:
        paths = [os.path.join(SHARED, "benchmarks", "gpu-runs", r["run"], FORMATS[r["format"]])
                 for r in gpu if "error" not in r and r["format"] in ("jsonl", "csv", "hf", "tb")]
        verdicts = peers(paths)
        print("\n== peers on gpu-runs (jsonl, csv, hf, tb): flagged as labelled")
        lab = {os.path.join(SHARED, "benchmarks", "gpu-runs", r["run"], FORMATS[r["format"]]): r for r in gpu
               if "error" not in r}
        for tool, res in verdicts.items():
            n = len(res)
            unread = sum(v in ("unreadable", "timeout") for v in res.values())
            healthy_ok = sum(1 for p, v in res.items() if lab[p]["label"] == "healthy" and v == "clean")
            prob_ok = sum(1 for p, v in res.items() if lab[p]["label"] == "problem" and v == "flagged")
            n_h = sum(1 for p in res if lab[p]["label"] == "healthy")
            print(f"  {tool:<13} healthy clean {healthy_ok}/{n_h}, problems flagged {prob_ok}/{n - n_h}, unreadable {unread}")
            summary[tool] = {"healthy_clean": f"{healthy_ok}/{n_h}", "problems_flagged": f"{prob_ok}/{n - n_h}",
                             "unreadable": unread}
        ours = [r for r in gpu if "error" not in r and r["format"] in ("jsonl", "csv", "hf", "tb")]
        print(f"  {'lossdx':<13} healthy clean {sum(r['verdict_ok'] for r in ours if r['label'] == 'healthy')}/"
              f"{sum(r['label'] == 'healthy' for r in ours)}, problems flagged "
              f"{sum(r['verdict_ok'] for r in ours if r['label'] == 'problem')}/{sum(r['label'] == 'problem' for r in ours)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"summary": summary, "gpu": gpu, "vision": vision, "realcorpus": corpus}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
