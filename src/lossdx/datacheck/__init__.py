"""Check training data before training: ``check_data(path)`` -> a :class:`~lossdx.report.Report`.

Token files (nanoGPT ``.bin``, ``.npy``), JSONL / Parquet / Arrow rows with ``input_ids``/``labels``/
``attention_mask`` (the HF datasets layout), and CSV features + label, all streamed.
"""

from __future__ import annotations

from .core import check_data

__all__ = ["check_data"]
