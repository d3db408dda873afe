"""User settings: ``[tool.lossdx]`` in ``pyproject.toml`` (or a ``lossdx.toml``) and command-line overrides.

A settings file is looked for from the log's directory upwards, then from the working directory upwards; the
first ``lossdx.toml``, or ``pyproject.toml`` holding a ``[tool.lossdx]`` table, wins. Command-line flags override
the file. Example::

    [tool.lossdx]
    ignore = ["throughput", "log_limit"]   # finding kinds to drop (or: select = [...] to keep only those)
    spike_z = 10                           # a loss spike must exceed the local noise by this many sigmas
    grad_norm_ratio = 20                   # a gradient-norm explosion is this many times its level
    plateau_window = 0.25                  # share of the run over which "stopped improving" is judged
    plateau_min_improvement = 0.01         # relative improvement over that window below which it is a plateau
    typical_lr = 3e-4                      # the learning rate usual for this kind of run
    fail_on = "problem"                    # default of --fail-on

Thresholds are constructor parameters of the detectors (sklearn style): :meth:`Settings.detectors` builds the
detector list with them, and ``typical_lr`` becomes ``run.meta["norms"]["typical_lr"]``, read by the run context.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

from .exceptions import ConfigError
from .findings import KINDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: settings that are thresholds: name -> (detector class name, constructor keyword, lower bound, upper bound)
THRESHOLDS: dict[str, tuple[str, str, float, float]] = {
    "spike_z": ("SpikeDetector", "z", 0.0, math.inf),
    "grad_norm_ratio": ("GradNormDetector", "ratio", 1.0, math.inf),
    "plateau_window": ("PlateauDetector", "tail", 0.0, 1.0),
    "plateau_min_improvement": ("PlateauDetector", "min_improvement", 0.0, 1.0),
}
FAIL_ON = ("warning", "problem", "never")
_MAX_SETTINGS_BYTES = 1 << 20  # a pyproject.toml is a few KB; never parse a huge file met on the way up


@dataclass
class Settings:
    """What an analysis was told besides the input: kinds kept or dropped, thresholds, norms."""

    select: tuple[str, ...] = ()  # keep only these finding kinds (empty: all)
    ignore: tuple[str, ...] = ()  # drop these finding kinds
    spike_z: float | None = None
    grad_norm_ratio: float | None = None
    plateau_window: float | None = None
    plateau_min_improvement: float | None = None
    typical_lr: float | None = None
    fail_on: str | None = None
    #: where the settings came from: the settings file's path and/or "command line"
    sources: list[str] = field(default_factory=list)

    def merged(self, **overrides: Any) -> "Settings":
        """These settings with the non-empty ``overrides`` (command-line values) on top, validated."""
        given = {k: v for k, v in overrides.items() if v is not None and v != ()}
        if not given:
            return self
        values = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name != "sources" and getattr(self, f.name) not in (None, ())}
        values.update(given)
        out = from_mapping(values, origin="the command line")
        out.sources = self.sources + ["command line"]
        return out

    def keeps(self, kind: str) -> bool:
        """Whether a finding of ``kind`` stays in the report (phases always do: they feed the phase list)."""
        if kind == "phase":
            return True
        if self.select and kind not in self.select:
            return False
        return kind not in self.ignore

    def detectors(self) -> list[Any]:
        """The default detectors, built with the threshold overrides as constructor keywords."""
        from .detectors import default_detectors

        per_class: dict[str, dict[str, float]] = {}
        for name, (cls_name, kw, _lo, _hi) in THRESHOLDS.items():
            if getattr(self, name) is not None:
                per_class.setdefault(cls_name, {})[kw] = getattr(self, name)
        dets = default_detectors()
        for i, det in enumerate(dets):
            kws = per_class.get(type(det).__name__)
            if kws:
                # sklearn convention: every constructor keyword is stored under its own name
                params = {p: getattr(det, p) for p in inspect.signature(type(det)).parameters if hasattr(det, p)}
                dets[i] = type(det)(**{**params, **kws})
        return dets

    def norms(self) -> dict[str, Any]:
        """Overrides of the run context's norms (``run.meta["norms"]``)."""
        return {"typical_lr": self.typical_lr} if self.typical_lr is not None else {}

    def to_dict(self) -> dict[str, Any]:
        """The settings in force, for the report: only what differs from the defaults, and where it came from."""
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "sources" or v is None or v == ():
                continue
            d[f.name] = list(v) if isinstance(v, tuple) else v
        d["sources"] = list(self.sources)
        return d


def _closest(word: str, choices: Sequence[str]) -> str:
    near = difflib.get_close_matches(word.lower(), list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def _kinds(value: Any, key: str, origin: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{origin}: {key} must be a list of finding kinds")
    reportable = [k for k in KINDS if k != "phase"]
    for v in value:
        if v not in reportable:
            raise ConfigError(f"{origin}: unknown finding kind {v!r} in {key}{_closest(v, reportable)}")
    return tuple(dict.fromkeys(value))


def _number(value: Any, key: str, origin: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{origin}: {key} must be a number, not {type(value).__name__}")
    x = float(value)
    if not (math.isfinite(x) and lo < x <= hi):
        bound = f"above {lo:g}" + ("" if math.isinf(hi) else f" and at most {hi:g}")
        raise ConfigError(f"{origin}: {key} = {value!r} is out of range (it must be {bound})")
    return x


def from_mapping(table: dict[str, Any], origin: str) -> Settings:
    """Validate a ``[tool.lossdx]`` table (keys with ``-`` or ``_``); every problem is a :class:`ConfigError`."""
    known = [f.name for f in fields(Settings) if f.name != "sources"]
    out = Settings()
    for raw_key, value in table.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            raise ConfigError(f"{origin}: unknown setting {raw_key!r}{_closest(key, known)}")
        if key in ("select", "ignore"):
            setattr(out, key, _kinds(value, key, origin))
        elif key in THRESHOLDS:
            _c, _k, lo, hi = THRESHOLDS[key]
            setattr(out, key, _number(value, key, origin, lo, hi))
        elif key == "typical_lr":
            out.typical_lr = _number(value, key, origin, 0.0, 10.0)
        elif key == "fail_on":
            if value not in FAIL_ON:
                raise ConfigError(f"{origin}: fail_on must be one of {', '.join(FAIL_ON)}, not {value!r}")
            out.fail_on = value
    if out.select and out.ignore and set(out.select) & set(out.ignore):
        both = sorted(set(out.select) & set(out.ignore))
        raise ConfigError(f"{origin}: {', '.join(both)} both selected and ignored")
    return out


def _table_of(path: str) -> dict[str, Any] | None:
    """The lossdx table of a settings file; None for a pyproject.toml without one."""
    try:
        if os.path.getsize(path) > _MAX_SETTINGS_BYTES:
            raise ConfigError(f"{path}: settings file larger than 1 MB")
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: cannot be read ({type(e).__name__})") from None
    if os.path.basename(path) == "lossdx.toml":
        table = doc.get("tool", {}).get("lossdx", doc) if isinstance(doc.get("tool"), dict) else doc
    else:
        tool = doc.get("tool")
        table = tool.get("lossdx") if isinstance(tool, dict) else None
        if table is None:
            return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.lossdx] must be a table")
    return table


def find_settings_file(start: str) -> str | None:
    """The nearest ``lossdx.toml`` or ``pyproject.toml`` with ``[tool.lossdx]``, from ``start`` upwards."""
    here = os.path.abspath(start)
    if not os.path.isdir(here):
        here = os.path.dirname(here)
    while True:
        for name in ("lossdx.toml", "pyproject.toml"):
            cand = os.path.join(here, name)
            if os.path.isfile(cand) and _table_of(cand) is not None:
                return cand
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def load_settings(input_path: str | None = None, settings_file: str | None = None) -> Settings:
    """Settings from ``settings_file``, else the nearest settings file above the input, else above the cwd."""
    path = settings_file
    if path is None:
        starts = ([input_path] if input_path and input_path != "-" else []) + [os.getcwd()]
        for start in starts:
            path = find_settings_file(start)
            if path:
                break
    elif not os.path.isfile(path):
        raise ConfigError(f"settings file {path} does not exist")
    if not path:
        return Settings()
    table = _table_of(path)
    if table is None:
        raise ConfigError(f"{path}: no [tool.lossdx] table")
    out = from_mapping(table, origin=path)
    out.sources = [path]
    return out


__all__ = ["Settings", "THRESHOLDS", "find_settings_file", "from_mapping", "load_settings"]
