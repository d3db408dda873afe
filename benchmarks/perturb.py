"""Perturbation benchmark: the families TUNE half read the way users often paste logs.

    $ python benchmarks/perturb.py [--variant excerpt30,thin5,...] [--family gpt,rnn] [--show] [--json out.json]
    $ python benchmarks/perturb.py --set realcorpus [--show]     # the same variants of the real logs' TUNE half

The rules were tuned on whole logs with their config; the untuned half holds many mid-run excerpts, logs without
config and coarse logs. Variations of the TUNE half show the same over-fitting without looking at the holdout.
Every variant is deterministic and built from ``benchmarks/families/labels.json`` entries with ``split == "tune"``
(``--set families``, the default) or, with ``--set realcorpus``, from the ``../shared/realcorpus/LABELS.json`` entries
of the TUNE half by the hash rule of ``benchmarks/generalisation.py`` (real logs pasted in issue threads are often
excerpts already: their variants are the nearest stand-in for unseen real logs; they have no config file, so there
``noconfig`` is the log as stored):

- ``excerpt30``, ``excerpt60``: only the points from 30 % / 60 % of the train loss's points on (steps stay global, as
  in a pasted mid-run excerpt), no config file and none of the log's own header settings;
- ``noconfig``: the whole log, no config file (what the log itself says is kept);
- ``thin5``, ``thin10``: every 5th / 10th point of the densely logged series (a larger logging interval; sparse
  series such as per-epoch validation are kept), config kept;
- ``first40``: the first 40 % of the train loss's points (a run still going), config kept;
- ``lossonly``: the whole log as a plain stdout log shows it: only the train and held-out loss series (``train/loss``,
  ``train/loss_eval``, ``train/loss_epoch``, ``val/...loss``, ``test/...loss``), no LR, gradient norm, loss scale,
  throughput or other metric, no config file, no header settings and no trainer summary (``hf_*`` meta);
- ``excerpt30thin5``: ``excerpt30`` thinned to every 5th point of its densely logged series (a coarse mid-run paste).

Healthy runs: false alarms (verdict != healthy). Faulty runs: only variants that can still contain the fault:
a fault labelled with steps must have every labelled step inside the kept window (and, thinned, its witness kept: the
labelled step's nearest logged point, or the next one where that is the event, non-finite or 1.5x the loss before it,
as a batch labelled by its index is logged at the next step; not in an excerpt entry cut again, nor, thinned, where a labelled step lies past
the log's last step (a log that numbers its records, not the trainer's steps: no kept point can be matched to it)); a fault
without steps (lr_too_low, overfitting ...) is a property of the whole run and is scored only
in ``noconfig``, ``thin*`` and ``lossonly``. In ``lossonly`` a fault counts only if its label's ``symptom`` (the
finding kind it should produce) can be read from a loss curve: ``lr_schedule`` (witnessed by the LR series) and a
label without a symptom (e.g. a hardware fault seen in throughput) are not counted; every other symptom (spike, nan,
divergence, instability, plateau, slow_convergence, overfitting, too_good, init_loss, data_order) is a loss-curve
shape. For those: flagged (verdict != healthy) and top cause in ``accept`` (strength
established/by_symptom only, as in generalisation.py). Variants that leave fewer than 5 train loss points are skipped.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))

from lossdx.analyze import analyze, attach_config  # noqa: E402
from lossdx.exceptions import InputError  # noqa: E402
from lossdx.model import Run, Series  # noqa: E402
from lossdx.readers import read  # noqa: E402

sys.path.insert(0, HERE)
from generalisation import SHARED, _hash_split  # noqa: E402  (one split rule for both benchmarks)

FAMILIES = os.path.join(HERE, "families")
STRONG = ("established", "by_symptom")
VARIANTS = ("excerpt30", "excerpt60", "noconfig", "thin5", "thin10", "first40", "lossonly", "excerpt30thin5")
# label symptoms only a series that ``lossonly`` drops can witness (None: the label names no curve symptom)
LOSS_BLIND_SYMPTOMS = ("lr_schedule", None)
MIN_POINTS = 5


def _reference(run: Run) -> Series | None:
    """The series whose points define cuts and thinning: the train loss, else the longest series."""
    s = run.series.get("train/loss")
    if s is not None and len(s):
        return s
    longest = max(run.series.values(), key=len, default=None)
    return longest if longest is not None and len(longest) else None


def _window(run: Run, keep) -> None:
    """Keep only the points whose step passes ``keep`` (a numpy predicate on steps); drop emptied series."""
    out = {}
    for name, s in run.series.items():
        m = keep(s.steps)
        if m.any():
            out[name] = Series(name, s.steps[m], s.values[m], None if s.wall_times is None else s.wall_times[m])
    run.series = out


def _thin(run: Run, every: int, ref: Series) -> None:
    """Every ``every``-th point of the densely logged series (those with at least half the reference's points)."""
    out = {}
    for name, s in run.series.items():
        if len(s) >= len(ref) / 2:
            idx = np.arange(0, len(s), every)
            s = Series(name, s.steps[idx], s.values[idx], None if s.wall_times is None else s.wall_times[idx])
        out[name] = s
    run.series = out


def _is_loss_series(name: str) -> bool:
    """Whether a plain stdout log would print ``name``: the train loss or a held-out (validation/test) loss."""
    if name in ("train/loss", "train/loss_eval", "train/loss_epoch"):
        return True
    return name.startswith(("val/", "test/")) and "loss" in name.rsplit("/", 1)[-1]


def make_variant(raw: Run, config: str | None, variant: str) -> tuple[Run, Series] | None:
    """The run of ``variant`` (``raw`` is the log read without config; not modified) and its original reference."""
    run = copy.deepcopy(raw)
    ref = _reference(run)
    if ref is None:
        return None
    if variant.startswith("excerpt"):
        cut = int(ref.steps[int(int(variant[7:9]) / 100 * len(ref))])
        _window(run, lambda st: st >= cut)
        run.config = {}  # the header lines that printed the settings are not in a mid-run excerpt
        # (a log without step numbers keeps its record numbers and says so: the context tells an excerpt of it by
        # its epoch counter, as it would for a pasted one)
        run.meta["perturb_window"] = (cut, None)
        if variant.endswith("thin5"):
            _thin(run, 5, _reference(run))
    elif variant == "noconfig":
        pass
    elif variant == "lossonly":
        run.series = {name: s for name, s in run.series.items() if _is_loss_series(name)}
        run.config = {}
        for key in [k for k in run.meta if k.startswith("hf_")]:
            del run.meta[key]  # max_steps, batch size, epochs and the final summary: a trainer's, not stdout's
    else:
        attach_config(run, config, auto=config is None)
        if variant.startswith("thin"):
            _thin(run, int(variant[4:]), ref)
        elif variant == "first40":
            cut = int(ref.steps[int(0.4 * len(ref))])
            _window(run, lambda st: st <= cut)
            run.meta.pop("hf_summary", None)  # a run still going has printed no final summary
            run.meta["perturb_window"] = (None, cut)
    new_ref = _reference(run)
    if new_ref is None or len(new_ref) < MIN_POINTS:
        return None
    return run, ref


def fault_visible(lab: dict, variant: str, run: Run, ref: Series) -> bool:
    """Whether the labelled fault can still be in the variant's log (see the module docstring)."""
    steps = lab.get("steps") or []
    if variant == "lossonly" and lab.get("symptom") in LOSS_BLIND_SYMPTOMS:
        return False
    if not steps:
        return variant in ("noconfig", "lossonly") or variant.startswith("thin")
    lo, hi = run.meta.get("perturb_window", (None, None))
    if (lo is not None or hi is not None) and lab.get("excerpt_from_step") is not None:
        return False  # an excerpt's steps may be numbered otherwise than its label's (epochs counted from 1)
    if "thin" in variant and max(steps) > int(ref.steps[-1]):
        return False  # the label counts the trainer's steps past the log's last (it numbers its records): no kept
        # point can be matched to them
    if lo is not None and min(steps) < lo:
        return False
    if hi is not None and max(steps) > hi:
        return False
    if "thin" in variant:
        kept = set(_reference(run).steps.tolist())
        for s in steps:
            # the fault's witness: the labelled step's nearest logged point, or the next one where that is the
            # event (a batch labelled by its index is logged at the next step): non-finite, or 1.5x the loss before
            i = int(np.argmin(np.abs(ref.steps - s)))
            if i + 1 < len(ref):
                a, b = float(ref.values[i]), float(ref.values[i + 1])
                if (np.isfinite(a) and not np.isfinite(b)) or (np.isfinite(b) and a > 0 and b >= 1.5 * a):
                    i += 1
            if int(ref.steps[i]) not in kept:
                return False
    return True


def tune_entries(set_name: str, families: set[str] | None = None) -> list[tuple[str, dict, str, str | None]]:
    """(name, label, log path, config path) of every scored TUNE-half entry of ``set_name`` (families|realcorpus)."""
    if set_name == "realcorpus":
        base = os.path.join(SHARED, "realcorpus")
        with open(os.path.join(base, "LABELS.json")) as fh:
            labels = {name: dict(lab, split=_hash_split(name), config=None) for name, lab in json.load(fh).items()}
    else:
        base = FAMILIES
        with open(os.path.join(base, "labels.json")) as fh:
            labels = json.load(fh)
    return [(name, lab, os.path.join(base, name), os.path.join(base, lab["config"]) if lab.get("config") else None)
            for name, lab in sorted(labels.items())
            if lab.get("split") == "tune" and lab["verdict"] != "unknown"
            and not (families and lab.get("family") not in families)]


def judge(run: Run) -> dict:
    rep = analyze(run)
    return {"verdict": rep.verdict, "top": rep.diagnoses[0].cause if rep.diagnoses else None,
            "causes": [(d.cause, round(d.confidence, 2)) for d in rep.diagnoses[:3]],
            "findings": sorted(Counter(f"{f.kind}:{f.severity}" for f in rep.findings if f.severity != "info").items())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--set", default="families", choices=["families", "realcorpus"],
                    help="whose TUNE half to perturb: the generated families (default) or the real logs")
    ap.add_argument("--family", default=None, help="only these model families (comma-separated; --set families)")
    ap.add_argument("--show", action="store_true", help="list every false alarm, missed fault and wrong cause")
    ap.add_argument("--json", help="write every result to this file")
    args = ap.parse_args()
    variants = [v for v in args.variant.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant {bad[0]!r}; choose from {', '.join(VARIANTS)}")
    families = set(args.family.split(",")) if args.family else None
    results = []
    for name, lab, path, cfg in tune_entries(args.set, families):
        try:
            raw = read(path)
        except InputError:
            continue
        for variant in variants:
            made = make_variant(raw, cfg, variant)
            if made is None:
                continue
            run, ref = made
            healthy = lab["verdict"] == "healthy"
            if not healthy and not fault_visible(lab, variant, run, ref):
                continue
            res = {"name": name, "variant": variant, "label": lab["cause"], "accept": lab.get("accept") or [],
                   "healthy": healthy, "causal": bool(lab.get("accept")) and lab.get("strength") in STRONG}
            res.update(judge(run))
            results.append(res)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    total = Counter()
    for variant in variants:
        rs = [r for r in results if r["variant"] == variant]
        healthy = [r for r in rs if r["healthy"]]
        faulty = [r for r in rs if not r["healthy"]]
        causal = [r for r in faulty if r["causal"]]
        fa = [r for r in healthy if r["verdict"] != "healthy"]
        missed = [r for r in faulty if r["verdict"] == "healthy"]
        wrong = [r for r in causal if r["top"] not in r["accept"]]
        total.update(h=len(healthy), fa=len(fa), f=len(faulty), fl=len(faulty) - len(missed), c=len(causal),
                     r=len(causal) - len(wrong))
        print(f"{variant:10s} false alarms {len(fa):3d}/{len(healthy):3d}   flagged {len(faulty) - len(missed):3d}/"
              f"{len(faulty):3d}   top cause right {len(causal) - len(wrong):3d}/{len(causal):3d}")
        if args.show:
            for tag, group in (("FALSE ALARM", fa), ("MISSED", missed), ("WRONG CAUSE", wrong)):
                for r in group:
                    print(f"  {tag:11s} {r['name']}: label {r['label']}, got {r['verdict']} top={r['top']} "
                          f"{r['causes']} {r['findings']}")
    print(f"{'all':10s} false alarms {total['fa']:3d}/{total['h']:3d}   flagged {total['fl']:3d}/{total['f']:3d}   "
          f"top cause right {total['r']:3d}/{total['c']:3d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
