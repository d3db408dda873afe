"""Generate the model-family generalisation benchmark: real small models trained on the CPU, faults injected.

    $ pip install torch==2.13.0 transformers lightning scikit-learn
    $ nice python benchmarks/families/generate.py --jobs=2        # every family, two at a time
    $ python benchmarks/families/generate.py --check              # labels.json against the files
    $ nice python benchmarks/families/generate.py gpt rnn         # some families
    $ nice python benchmarks/families/generate.py gpt:bad_batch   # one run of a family

Writes benchmarks/families/runs/<family>/<run>/ (logs in the family's usual formats, a config beside about two
runs in three), runs/<family>/<run>.excerpt/ (a log that starts mid-run, no config) and labels.json (one entry
per log file; entries of families not regenerated are kept). Seeded: the same machine gives the same losses
(one thread); the time columns are measured and differ between regenerations.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FAMILIES = ("gpt", "rnn", "classifier", "finetune", "mlm", "regression", "seqcls", "cnn_loop", "llama", "seq2seq")


LOG_NAMES = ("train.log", "metrics.jsonl", "metrics.csv", "trainer_state.json",
             "wandb_history.csv")
CONTRACT_CAUSES = {"lr_too_high", "lr_too_low", "missing_warmup", "lr_schedule_bug", "gradient_explosion", "bad_init",
                   "fp16_precision", "bad_data_batch", "loss_nan_from_data", "nan_in_input", "label_misalignment",
                   "overfitting_small_data", "capacity_too_small", "over_regularization", "data_order",
                   "batchnorm_instability", "class_imbalance", "hardware_fault"}


def check() -> list[str]:
    """Problems of labels.json against the files: every log labelled, every label a file, fields in vocabulary."""
    import json

    from common import HERE, LABELS_PATH, RUNS

    labels = json.loads(LABELS_PATH.read_text())
    errors = []
    logs = {str(p.relative_to(HERE)) for p in RUNS.rglob("*")
            if p.is_file() and (p.name in LOG_NAMES or p.name.startswith("events.out.tfevents"))}
    errors += [f"unlabelled log {p}" for p in sorted(logs - set(labels))]
    errors += [f"label of a missing file {p}" for p in sorted(set(labels) - logs)]
    for k, e in labels.items():
        if e["cause"] != "healthy" and e["cause"] not in CONTRACT_CAUSES:
            errors.append(f"{k}: cause {e['cause']!r} not in the contract")
        if (e["cause"] == "healthy") != (e["verdict"] == "healthy") or e["cause"] not in e["accept"] + ["healthy"]:
            errors.append(f"{k}: verdict {e['verdict']}, cause {e['cause']}, accept {e['accept']} disagree")
        if e["config"] and not (HERE / e["config"]).exists():
            errors.append(f"{k}: config {e['config']} missing")
        if e["split"] not in ("tune", "holdout"):
            errors.append(f"{k}: split {e['split']!r}")
    return errors


def run_family(item: tuple[str, set[str] | None]) -> dict:
    import torch

    from common import Labels

    torch.set_num_threads(1)
    fam, only = item
    labels = Labels()
    mod = __import__(fam)
    unknown = sorted((only or set()) - set(mod.RUNS_SPEC))
    if unknown:
        raise SystemExit(f"no run {', '.join(unknown)} in family {fam}; runs: {', '.join(mod.RUNS_SPEC)}")
    mod.generate(labels, only)
    return labels.entries


def main(argv: list[str]) -> None:
    jobs = 1
    if argv and argv[0].startswith("--jobs="):
        jobs, argv = int(argv[0].split("=", 1)[1]), argv[1:]
    if argv == ["--check"]:
        errors = check()
        print("\n".join(errors) or "labels.json agrees with runs/")
        raise SystemExit(1 if errors else 0)
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from common import Labels

    wanted: dict[str, set[str] | None] = {}
    for a in argv or FAMILIES:
        fam, _, run = a.partition(":")
        if fam not in FAMILIES:
            raise SystemExit(f"unknown family {fam!r}; choose from {', '.join(FAMILIES)}")
        if run:
            wanted.setdefault(fam, set())
            if wanted[fam] is not None:
                wanted[fam].add(run)
        else:
            wanted[fam] = None
    labels = Labels()
    if jobs > 1 and len(wanted) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for entries in pool.map(run_family, list(wanted.items())):
                labels.entries.update(entries)
    else:
        for item in wanted.items():
            labels.entries.update(run_family(item))
    labels.save({fam for fam, only in wanted.items() if only is None})


if __name__ == "__main__":
    main(sys.argv[1:])
