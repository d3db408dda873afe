"""The version, from one place: pyproject.toml's ``version``, read back from the installed distribution's
metadata (or, in a source checkout run with ``PYTHONPATH=src``, from the pyproject.toml beside ``src``)."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("lossdx")
    except PackageNotFoundError:
        return _source_tree_version()


def _source_tree_version() -> str:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if sys.version_info < (3, 11):  # only a source checkout on 3.10 gets here: no TOML parser in the stdlib
        return "0+unknown"
    import tomllib

    try:
        meta = tomllib.loads(pyproject.read_text("utf-8")).get("project", {})
    except (OSError, ValueError):
        return "0+unknown"
    return str(meta.get("version", "0+unknown")) if meta.get("name") == "lossdx" else "0+unknown"
