"""Report dataclasses and their JSON form (``docs/report-contract.md``, schema ``lossdx.report/1``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._version import version
from ..findings import Finding, _jsonable

SCHEMA_ID = "lossdx.report/1"
VERDICTS = ("healthy", "warning", "problem")


@dataclass
class Diagnosis:
    cause: str
    confidence: float
    evidence: list[str]
    fixes: list[str]
    rule: str = ""
    config_patch: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # what to log or check next where the log cannot decide

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cause": self.cause, "confidence": round(float(self.confidence), 3),
                             "evidence": list(self.evidence), "fixes": list(self.fixes)}
        if self.rule:
            d["rule"] = self.rule
        if self.config_patch:
            d["config_patch"] = _jsonable(self.config_patch)
        if self.checks:
            d["checks"] = list(self.checks)
        return d


@dataclass
class Report:
    source: dict[str, Any]
    verdict: str
    summary: str
    run: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    #: the settings in force (``lossdx.settings.Settings.to_dict``): kinds selected or ignored, thresholds
    settings: dict[str, Any] = field(default_factory=dict)
    #: when the analysis ran, UTC, ISO 8601
    analyzed_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "source": _jsonable(self.source),
            "verdict": self.verdict,
            "summary": self.summary,
            "run": _jsonable(self.run),
            "findings": [f.to_dict() for f in self.findings],
            "diagnoses": [d.to_dict() for d in self.diagnoses],
            "lossdx_version": version(),
            "analyzed_at": self.analyzed_at,
            "settings": _jsonable(self.settings),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report, shipped inside the package."""
    from importlib import resources  # ~15 ms of import (pathlib): only the schema check needs it

    schema: dict[str, Any] = json.loads(resources.files("lossdx.report").joinpath("schema.json").read_text("utf-8"))
    return schema
