"""Config file readers: nanoGPT-style Python, JSON, YAML, HF training_args.json + model config.json."""

from __future__ import annotations

import ast
import functools
import json
import math
import operator
import os
import warnings
from typing import Any

from ..exceptions import ConfigError
from ._bounds import MAX_CONFIG_BYTES, MAX_STRING, bounded_plain
from .hparams import canonical_hparams

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
#: arithmetic in a config.py stops at integers of this many bits (squaring a big int 40 times takes hours)
_MAX_ARITH_BITS = 4096
_CONFIG_NAMES = ("config.py", "config.json", "training_args.json", "hparams.yaml", "config.yaml", "args.json",
                 "train_config.json", "hparams.json")


class _Unsafe(Exception):
    pass


def _safe_value(node: ast.AST, env: dict[str, Any]) -> Any:
    """Value of a literal, a name bound earlier to a literal, or arithmetic on those. No calls."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        return ast.literal_eval(node)
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise _Unsafe(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _safe_value(node.operand, env)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _safe_value(node.left, env), _safe_value(node.right, env)
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (left, right)):
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
                raise _Unsafe("power too large")
            if isinstance(node.op, ast.Mult) and all(isinstance(x, int) for x in (left, right)) and \
                    left.bit_length() + right.bit_length() > _MAX_ARITH_BITS:
                raise _Unsafe("product too large")
            try:
                return _BINOPS[type(node.op)](left, right)
            except (ZeroDivisionError, OverflowError):
                raise _Unsafe("arithmetic") from None
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            if len(left) + len(right) > MAX_STRING:
                raise _Unsafe("string too long")  # doubling a string 40 times would need 4 GB
            return left + right
    raise _Unsafe(type(node).__name__)


def read_python_config(text: str, path: str) -> tuple[dict[str, Any], list[str]]:
    try:
        # the compiler warns on odd literals ("1e999inal" -> invalid decimal literal): about the user's file, not
        # lossdx; the file is only read, and what cannot be read is reported in the notes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text, filename=path)
    except SyntaxError as err:
        raise ConfigError(f"{path}: not valid Python (line {err.lineno}: {err.msg})") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: Python expressions nested too deeply to read") from None
    env: dict[str, Any] = {}
    skipped: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            try:
                env[name] = _safe_value(stmt.value, env)
            except (_Unsafe, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                skipped.append(name)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            try:
                env[stmt.target.id] = _safe_value(stmt.value, env)
            except (_Unsafe, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                skipped.append(stmt.target.id)
    notes = [f"not literal, skipped: {', '.join(skipped)}"] if skipped else []
    return env, notes


@functools.lru_cache(maxsize=1)
def _tolerant_loader() -> Any:
    """SafeLoader that reads ``!!python/...`` and unknown tags as plain data instead of failing. Built on first
    use: yaml costs ~15-30 ms of import, and most logs come with no YAML config."""
    import yaml

    class _SafeTolerantLoader(yaml.SafeLoader):
        skipped_tags: list[str]

    def _plain(loader: _SafeTolerantLoader, tag_suffix: str, node: yaml.Node) -> Any:
        loader.skipped_tags.append(node.tag)
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    def _yaml_int(loader: _SafeTolerantLoader, node: yaml.Node) -> Any:
        try:
            return yaml.SafeLoader.construct_yaml_int(loader, node)
        except ValueError:  # more digits than Python turns into an int (4300): a float, or an infinity
            return _big_int(str(node.value))

    _SafeTolerantLoader.add_multi_constructor("tag:yaml.org,2002:python/", _plain)
    _SafeTolerantLoader.add_multi_constructor("!", _plain)
    _SafeTolerantLoader.add_constructor("tag:yaml.org,2002:int", _yaml_int)
    return _SafeTolerantLoader


def _big_int(digits: str) -> float:
    """An integer literal too long for int(): its float value (an infinity when it does not fit)."""
    try:
        return float(digits.replace("_", ""))
    except ValueError:
        return math.nan


def read_yaml_config(text: str, path: str) -> tuple[dict[str, Any], list[str]]:
    import yaml

    try:
        loader = _tolerant_loader()(text)  # its reader already refuses control characters
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    loader.skipped_tags = []
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    except (ValueError, OverflowError, TypeError) as err:  # e.g. a timestamp 2001-02-30
        raise ConfigError(f"{path}: invalid YAML value ({str(err).splitlines()[0][:120]})") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: YAML nested too deeply to read") from None
    finally:
        loader.dispose()
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: YAML config must be a mapping, got {type(doc).__name__}")
    notes = []
    if loader.skipped_tags:
        notes.append(f"python/unknown YAML tags read as plain data, not constructed: {sorted(set(loader.skipped_tags))}")
    return doc, notes


def _json_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= 4000 else _big_int(digits)


def _is_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] in range(2, 6) or head[:2] == b"PK"


def config_files(path: str) -> list[str]:
    """The files :func:`read_config` reads for ``path`` (a file, or the config files in a directory)."""
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in _CONFIG_NAMES if os.path.isfile(os.path.join(path, n))]
    return [path]


def read_config(path: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(canonical hparams, raw config, notes) of a config file or a directory of them."""
    if os.path.isdir(path):
        found = config_files(path)
        if not found:
            raise ConfigError(f"{path}: no config file found (looked for {', '.join(_CONFIG_NAMES)})")
        raw: dict[str, Any] = {}
        notes: list[str] = []
        for f in found:
            _h, r, n = read_config(f)
            for k, v in r.items():
                raw.setdefault(k, v)
            notes += n
        return canonical_hparams(raw), raw, notes
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MB: not a training config")
    if _is_pickle(data[:4]):
        raise ConfigError(f"{path} is a pickle (like HF's training_args.bin); lossdx never unpickles: "
                          "pass training_args.json or the config as JSON/YAML instead")
    if b"\x00" in data[:8192]:
        raise ConfigError(f"{path} is a binary file, not a config")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (invalid byte at offset {err.start})") from None
    stripped = text.lstrip()
    if not stripped:
        raise ConfigError(f"{path} is empty")
    if stripped.startswith("{"):
        try:
            raw = json.loads(text, parse_int=_json_int)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: invalid JSON at line {err.lineno} column {err.colno} ({err.msg})") from None
        except (RecursionError, MemoryError):
            raise ConfigError(f"{path}: JSON nested too deeply to read") from None
        notes = []
    elif path.endswith((".yaml", ".yml")) or (not path.endswith(".py") and ":" in stripped.split("\n", 1)[0]
                                              and "=" not in stripped.split("\n", 1)[0]):
        raw, notes = read_yaml_config(text, path)
    else:
        raw, notes = read_python_config(text, path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: config must be a mapping of names to values")
    raw = {k: v for k, v in raw.items() if isinstance(k, str)}
    raw, more = bounded_plain(raw, path)
    notes += more
    return canonical_hparams(raw, notes), raw, notes


#: folder -> the config files it holds, in _CONFIG_NAMES order; None outside a directory scan (see cached_search)
_FOLDER_CONFIGS: dict[str, list[str]] | None = None


def cached_search(enabled: bool = True) -> None:
    """Remember which config files each folder holds, for the rest of this process (``enabled=False`` forgets).
    A directory scan turns it on in its workers: 20,000 logs of one folder would otherwise each stat the same
    22 names; the scan reads the directory as it is when it starts, so a config added meanwhile may be missed."""
    global _FOLDER_CONFIGS
    _FOLDER_CONFIGS = {} if enabled else None


def _configs_in(folder: str) -> list[str]:
    cache = _FOLDER_CONFIGS
    found = cache.get(folder) if cache is not None else None
    if found is None:
        found = [p for p in (os.path.join(folder, name) for name in _CONFIG_NAMES) if os.path.isfile(p)]
        if cache is not None:
            cache[folder] = found
    return found


def find_config_near(log_path: str) -> str | None:
    """A config file beside the log (or in the run directory), if there is one."""
    base = os.path.abspath(log_path) if os.path.isdir(log_path) else os.path.dirname(os.path.abspath(log_path))
    # beside the log, then the run directory above it (runs/exp3/tb/ -> runs/exp3/config.py)
    for folder in (base, os.path.dirname(base)):
        for p in _configs_in(folder):
            if not _same_file(p, log_path):
                return p
    return None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
