"""Limits on what a config may hold, and the pass that turns a parsed config into bounded, JSON-safe data.

A config is read only for a few dozen hyperparameters, yet its raw values travel into the report
(``diagnoses[].config_patch``) and into every later step. A hostile or broken file must therefore
cost little to read and yield only plain JSON values: YAML aliases are cheap to parse but expand
when walked (a 1 KB "billion laughs" is 10^9 keys), a YAML alias can refer to itself, JSON and YAML
integers may have more digits than Python converts to text, and YAML gives dates, bytes and sets.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from ..exceptions import ConfigError

#: A config file larger than this is not a config (real ones are kilobytes; HF's largest are ~100 KB).
MAX_CONFIG_BYTES = 8 << 20
#: Nesting deeper than this is refused (Hydra/Lightning/DeepSpeed configs nest 4-6 levels).
MAX_DEPTH = 32
#: Values in one config, counting every element of every container and every alias expansion.
MAX_VALUES = 100_000
#: Longer string values (and keys) are cut to this many characters.
MAX_STRING = 10_000
#: Integers of more bits than this become floats (or infinities): they cannot be hyperparameters, and
#: beyond ~14,000 bits Python refuses to turn them into text at all.
MAX_INT_BITS = 64


def _short(s: str) -> str:
    return s if len(s) <= 40 else s[:37] + "..."


class _Walk:
    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.cut: list[str] = []
        self.converted: list[str] = []
        self.on_path: set[int] = set()

    def key(self, k: Any, where: str) -> str:
        if isinstance(k, str):
            s = k
        elif isinstance(k, bool) or k is None:
            s = str(k).lower() if k is not None else "null"
        else:
            s = self.value(k, where)
            s = s if isinstance(s, str) else str(s)
        if len(s) > MAX_STRING:
            self.cut.append(_short(where or s))
            s = s[:MAX_STRING]
        return s

    def value(self, v: Any, where: str, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise ConfigError(f"{self.path}: more than {MAX_VALUES} values (YAML aliases count each time they are "
                              "used): not a training config")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{self.path}: nested more than {MAX_DEPTH} levels deep: not a training config")
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int):
            if v.bit_length() <= MAX_INT_BITS:
                return v
            self.converted.append(where)
            return float(v) if v.bit_length() <= 1023 else (math.inf if v > 0 else -math.inf)
        if isinstance(v, float):
            return v
        if isinstance(v, str):
            if len(v) > MAX_STRING:
                self.cut.append(where)
                return v[:MAX_STRING]
            return v
        if isinstance(v, (dict, list, tuple, set, frozenset)):
            if id(v) in self.on_path:
                raise ConfigError(f"{self.path}: {where or 'the config'} contains itself (a YAML alias to an "
                                  "enclosing node)")
            self.on_path.add(id(v))
            try:
                if isinstance(v, dict):
                    out = {}
                    for k, x in v.items():
                        name = self.key(k, where)
                        out[name] = self.value(x, f"{where}.{name}" if where else name, depth + 1)
                    return out
                items = [self.value(x, where, depth + 1) for x in v]
            finally:
                self.on_path.discard(id(v))
            if isinstance(v, (set, frozenset)):
                self.converted.append(where)
                items.sort(key=repr)  # a YAML !!set has no order: sort so reports are reproducible
            return items
        # YAML timestamps, !!binary bytes, Python complex/bytes/Ellipsis literals: plain text
        self.converted.append(where)
        if isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
            return v.isoformat()
        if isinstance(v, (bytes, bytearray)):
            return f"<{len(v)} bytes>"
        return _short(repr(v))


def bounded_plain(raw: dict[str, Any], path: str) -> tuple[dict[str, Any], list[str]]:
    """``raw`` as plain JSON data (str keys; dict, list, str, int, float, bool, None), within the limits above.

    Raises ConfigError for a config too large, too deep or self-referencing; returns notes for what was
    converted (dates, bytes, sets, huge integers) or cut (very long strings).

    Example:
        >>> raw, notes = bounded_plain({"lr": 10 ** 400, "tags": {"b", "a"}}, "c.yaml")
        >>> raw
        {'lr': inf, 'tags': ['a', 'b']}
        >>> notes
        ['values converted to plain JSON (dates, bytes, sets, huge integers): lr, tags']
    """
    walk = _Walk(path)
    out = walk.value(raw, "")
    notes = []
    if walk.converted:
        names = ", ".join(dict.fromkeys(_short(w) for w in walk.converted if w)) or "(top level)"
        notes.append(f"values converted to plain JSON (dates, bytes, sets, huge integers): {names}")
    if walk.cut:
        names = ", ".join(dict.fromkeys(_short(w) for w in walk.cut if w)) or "(keys)"
        notes.append(f"strings longer than {MAX_STRING} characters cut: {names}")
    return out, notes
