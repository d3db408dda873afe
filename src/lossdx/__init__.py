"""lossdx: tells people who train neural networks what is wrong with their run, why, and what to change.

Example:
    >>> import lossdx
    >>> report = lossdx.analyze_path("runs/exp3/train.log")   # doctest: +SKIP
    >>> report.verdict, [d.cause for d in report.diagnoses]   # doctest: +SKIP
"""

from __future__ import annotations

from .analyze import analyze, analyze_path
from .analyze import read_run as read  # reads the log and the config beside it (or config=...)
from .datacheck import check_data
from .exceptions import ConfigError, CorruptLog, InputError, LossdxError, NoLossMetric, UnsupportedFormat
from .findings import Finding
from .model import Run, Series
from .probes import lr_find, overfit_one_batch  # torch is imported only when a probe runs
from .readers import read_runs
from .report import Diagnosis, Report
from ._version import version as _version


def __getattr__(name: str) -> str:
    """``lossdx.__version__``, looked up on first use (importlib.metadata costs ~10 ms at import)."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'lossdx' has no attribute {name!r}")


__all__ = [
    "ConfigError", "CorruptLog", "Diagnosis", "Finding", "InputError", "LossdxError", "NoLossMetric", "Report",
    "Run", "Series", "UnsupportedFormat", "__version__", "analyze", "analyze_path", "read", "read_runs",
]
__all__ = sorted(__all__ + ["check_data", "lr_find", "overfit_one_batch"])
