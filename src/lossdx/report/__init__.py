"""The report: one object per analysis, rendered as text, JSON (the public contract) or Markdown."""

from .model import SCHEMA_ID, Diagnosis, Report, load_schema
from .render import render, render_json, render_markdown, render_text

__all__ = ["SCHEMA_ID", "Diagnosis", "Report", "load_schema", "render", "render_json", "render_markdown",
           "render_text"]
