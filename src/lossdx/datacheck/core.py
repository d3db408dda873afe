"""``check_data``: stream a data file through the checks and report in the report contract."""

from __future__ import annotations

from typing import Any, Callable

from ..findings import Finding
from ..report import Report
from .checks import GPT2_EOT, IGNORE_INDEX, RowChecks, TokenStreamChecks, epochs_finding
from .sources import TokenFile, open_source

_RANK = {"info": 0, "warning": 1, "error": 2}


def check_data(path: str, vocab_size: int | None = None, block_size: int | None = None, config: str | None = None,
               dtype: str | None = None, eot_id: int | None = None, model_shifts_labels: bool = True,
               label_column: str | None = None, ignore_index: int = IGNORE_INDEX, dedupe: bool = True,
               progress: Callable[[int, int], None] | None = None) -> Report:
    """Stream ``path`` once and report what would hurt training on it.

    ``config`` is read the way ``lossdx analyze`` reads one (vocab_size, block_size, max_iters, batch size);
    explicit arguments win. ``model_shifts_labels``: the model shifts labels itself (HF causal LMs do), so
    labels should equal input_ids. ``progress(done_bytes, total_bytes)`` is called after each chunk.
    """
    cfg: dict[str, Any] = {}
    notes: list[str] = []
    if config:
        from ..config import read_config

        cfg, _raw, cfg_notes = read_config(config)
        notes += [f"config: {n}" for n in cfg_notes]
    vocab = vocab_size if vocab_size is not None else cfg.get("vocab_size")
    block = block_size if block_size is not None else cfg.get("seq_len")
    if block_size is not None:
        cfg["seq_len"] = block_size
    src = open_source(path, dtype=dtype or ("uint32" if vocab and vocab > 65536 else None))
    findings: list[Finding] = []
    facts: dict[str, Any] = {"bytes": src.total_bytes}
    if isinstance(src, TokenFile):
        eot = eot_id
        if eot is None and src.dtype.itemsize == 2 and vocab in (50257, 50304):
            eot = GPT2_EOT  # nanoGPT's GPT-2 tokenisation ends every document with <|endoftext|>
        checks = TokenStreamChecks(vocab, block, eot, src.dtype, dedupe=dedupe)
        for offset, chunk in src.chunks():
            checks.update(offset, chunk)
            if progress:
                progress((offset + chunk.size) * src.dtype.itemsize, src.total_bytes)
        checks.finish(findings, facts)
        if eot is None and dedupe:
            notes.append(f"no end-of-text id (--eot-id): duplicates were sought among aligned windows of "
                         f"{block or 1024} tokens, which finds copies only where they align")
        metrics = ["tokens"]
        n_tokens = checks.n
    else:
        rows = RowChecks(vocab, model_shifts_labels, label_column=label_column, ignore_index=ignore_index,
                         dedupe=dedupe, last_column_label=src.format == "csv")
        for done, batch in src.batches():
            rows.update(batch)
            if progress:
                progress(done, src.total_bytes)
        rows.finish(findings, facts)
        metrics = rows.columns
        n_tokens = rows.tokens
    if vocab is not None:
        facts["vocab_size"] = int(vocab)
    if cfg:
        epochs_finding(n_tokens, cfg, metrics[0] if metrics else "tokens", findings, facts)
    findings.sort(key=lambda f: (-_RANK[f.severity], f.start_step))
    worst = max((_RANK[f.severity] for f in findings), default=0)
    verdict = ("healthy", "warning", "problem")[worst]
    serious = [f for f in findings if f.severity != "info"]
    if serious:
        lead = serious[0].message
        more = f" ({len(serious)} finding{'s' if len(serious) > 1 else ''} in all)"
        summary = f"{lead[0].upper()}{lead[1:]}{more}."
    else:
        what = f"{facts['rows']:,} rows" if "rows" in facts else f"{facts.get('tokens', 0):,} tokens"
        summary = f"No problem found in {what}."
    source = {"path": path, "format": src.format}
    if config:
        source["config"] = config
    run = {"metrics": metrics, "facts": facts, "config": cfg, "notes": notes}
    return Report(source=source, verdict=verdict, summary=summary, run=run, findings=findings, diagnoses=[])
