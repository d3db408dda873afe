"""Where a step is in a text log: the line numbers CI annotations point at (``--format github`` / ``sarif``)."""

from __future__ import annotations

import csv
import os
import re
from typing import Iterable

# a step number where logs put it (CSV: the column the header names step): after iter/iteration/step/global_step/s:
# (nanoGPT, build-nanogpt, Megatron, llm.c), or as a JSON "step" key (JSONL, trainer_state.json)
_STEP = re.compile(r"""(?:^\s*|(?:iter(?:ation)?|step|global_step|\bs)["']?\s*[:=]?\s*)(\d{1,12})(?![\d.])""",
                   re.IGNORECASE)
_STEP_COLUMNS = ("step", "_step", "global_step", "iteration", "iter", "trainer/global_step")
_NOT_TEXT = (".gz", ".bz2", ".xz", ".zst", ".zstd", ".bin", ".pb")
_MAX_LINES = 5_000_000
_MAX_LINE = 4096  # only the head of a very long line is searched: bounded work per line


def step_lines(path: str, steps: Iterable[int], delimited: bool = False) -> dict[int, int]:
    """The 1-based line of the first record of each of ``steps`` in the text file ``path`` (steps not found are
    left out; an unreadable, binary or compressed input gives an empty map). ``delimited``: the input was read
    as a CSV, whose header names the step column."""
    wanted = {int(s) for s in steps}
    if not wanted or not os.path.isfile(path) or path.lower().endswith(_NOT_TEXT) or "tfevents" in path:
        return {}
    found: dict[int, int] = {}
    column: int | None = None  # the step column of a CSV
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if lineno > _MAX_LINES:
                    break
                head = line[:_MAX_LINE]
                if "\0" in head:
                    return {}  # binary after all
                if lineno == 1 and delimited:
                    names = [c.strip().lower() for c in next(csv.reader([head]), [])]
                    column = next((i for i, c in enumerate(names) if c in _STEP_COLUMNS), -1)
                    continue
                if column is not None:
                    cells = next(csv.reader([head]), []) if '"' in head else head.split(",")
                    value = cells[column].strip() if 0 <= column < len(cells) else ""
                    if not value.isdigit():
                        continue
                    step = int(value)
                else:
                    m = _STEP.search(head)
                    if m is None:
                        continue
                    step = int(m.group(1))
                if step in wanted and step not in found:
                    found[step] = lineno
                    if len(found) == len(wanted):
                        break
    except OSError:
        return {}
    return found
