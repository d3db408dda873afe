"""Errors lossdx raises on purpose.

Our exception hierarchy::

    LossdxError                 base of everything below; the CLI turns it into one line on stderr
    ├── InputError              the input could not be read (exit code 2)
    │   ├── UnsupportedFormat   no reader recognises the content
    │   ├── CorruptLog          a reader recognised the format but the content is broken
    │   └── NoLossMetric        readable, but nothing in it looks like a loss
    ├── ConfigError             a config file could not be read safely
    └── OutputError             the report could not be written where asked (exit code 2)
"""

from __future__ import annotations


class LossdxError(Exception):
    """Base class; ``str(err)`` is a complete one-line message for the user."""


class InputError(LossdxError):
    """The input could not be read."""


class UnsupportedFormat(InputError):
    """No reader recognises the content."""


class CorruptLog(InputError):
    """The format was recognised but the content is broken beyond what can be salvaged."""


class NoLossMetric(InputError):
    """The input was read but holds no loss-like metric."""


class OutputError(LossdxError):
    """The report could not be written where the user asked (or would have replaced an input)."""


class ConfigError(InputError):
    """A config file could not be read (or would need code execution to be read)."""
