"""Diagnosis: ranked root causes with evidence and fixes, from findings + co-signals + config."""

from .engine import CAUSES, Evidence, Hit, Rule, diagnose
from .rules import DEFAULT_RULES

__all__ = ["CAUSES", "DEFAULT_RULES", "Evidence", "Hit", "Rule", "diagnose"]
