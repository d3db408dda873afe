"""The rule book: every rule, grouped by the seeds' families. Add a rule by adding it to a tuple."""

from __future__ import annotations

from ..engine import Rule
from . import data, generalization, normalization, optimization

DEFAULT_RULES: tuple[Rule, ...] = optimization.RULES + data.RULES + generalization.RULES + normalization.RULES

__all__ = ["DEFAULT_RULES"]
