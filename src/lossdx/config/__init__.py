"""Read training configs safely and map them onto canonical hyperparameters.

Nothing here executes the config: Python files are parsed with :mod:`ast` and only literal
assignments (plus arithmetic on earlier literals, e.g. ``lr_decay_iters = max_iters``) are kept;
YAML goes through a safe loader that turns ``!!python/...`` tags into plain data and says so;
pickles (``training_args.bin``) are refused.
"""

from __future__ import annotations

from .readers import find_config_near, read_config
from .hparams import HPARAM_ALIASES, canonical_hparams

__all__ = ["HPARAM_ALIASES", "canonical_hparams", "find_config_near", "read_config"]
