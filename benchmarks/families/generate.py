"""Generate the model-family generalisation benchmark: real small models trained on the CPU, faults injected.

    $ pip install torch==2.13.0 transformers lightning scikit-learn
    $ nice python benchmarks/families/generate.py                 # every family (~15 min on 2 busy cores)
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

FAMILIES = ("gpt", "rnn", "classifier", "finetune", "mlm")


def main(argv: list[str]) -> None:
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
    for fam, only in wanted.items():
        mod = __import__(fam)
        mod.generate(labels, only)
    labels.save()


if __name__ == "__main__":
    main(sys.argv[1:])
