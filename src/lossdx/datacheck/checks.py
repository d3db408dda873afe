"""The checks, each fed one chunk or batch at a time and asked for its findings at the end."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..findings import Finding
from .repeats import MAX_PERIOD, MIN_REPEATS, repeat_runs
from .sources import LABEL_COLUMNS, Batch, ListColumn

IGNORE_INDEX = -100
MAX_LOCATIONS = 20  # locations listed per finding; the counts cover all
GPT2_EOT = 50256
#: epochs over the data beyond which repetition costs quality (Muennighoff et al. 2023: ~4 epochs are almost as
#: good as fresh data, returns vanish by ~16)
EPOCHS_WARN = 4.0
ID_COLUMNS = ("id", "idx", "index", "row_id", "uid", "unnamed: 0", "")  # row keys: not features, not content
MIN_DUP_TOKENS = 8  # shorter documents (empty lines, headers) repeat legitimately


def _digest(a: np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(a.tobytes(), digest_size=8).digest(), "little", signed=True)


def _first(locs: list[int], new: np.ndarray) -> None:
    if len(locs) < MAX_LOCATIONS and new.size:
        locs.extend(int(x) for x in new[: MAX_LOCATIONS - len(locs)])


class Duplicates:
    """Exact duplicate sequences: an 8-byte hash per sequence, grouped once at the end (16 bytes per sequence)."""

    def __init__(self) -> None:
        self.hashes: list[np.ndarray] = []
        self.where: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self._h: list[int] = []
        self._w: list[int] = []
        self._n: list[int] = []

    def add(self, seq: np.ndarray, where: int) -> None:
        self._h.append(_digest(seq))
        self._w.append(where)
        self._n.append(int(seq.size))
        if len(self._h) >= 65536:
            self._flush()

    def add_many(self, hashes: np.ndarray, where: np.ndarray, lengths: np.ndarray) -> None:
        self._flush()
        if hashes.size:
            self.hashes.append(hashes.view(np.int64).copy())
            self.where.append(np.asarray(where, np.int64).copy())
            self.lengths.append(np.asarray(lengths, np.int64).copy())

    def _flush(self) -> None:
        if self._h:
            self.hashes.append(np.asarray(self._h, dtype=np.int64))
            self.where.append(np.asarray(self._w, dtype=np.int64))
            self.lengths.append(np.asarray(self._n, dtype=np.int64))
            self._h, self._w, self._n = [], [], []

    def finding(self, metric: str, unit: str, total_seqs: int, total_tokens: int) -> Finding | None:
        self._flush()
        if not self.hashes:
            return None
        h = np.concatenate(self.hashes)
        where = np.concatenate(self.where)
        lengths = np.concatenate(self.lengths)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        dup = np.zeros(h.size, dtype=bool)
        dup[order[1:][hs[1:] == hs[:-1]]] = True  # every copy after the first of its group
        n_dup = int(dup.sum())
        if not n_dup:
            return None
        dup_tokens = int(lengths[dup].sum())
        share = dup_tokens / max(1, total_tokens)
        locs = where[dup][:MAX_LOCATIONS]
        listed = h[dup][:MAX_LOCATIONS]
        first = where[order[np.searchsorted(hs, listed)]]  # the stable sort puts each content's first copy first
        pairs = [[int(w), int(f)] for w, f in zip(locs, first)]
        groups = int(np.unique(h[dup]).size)
        sev = "warning" if share >= 0.001 or n_dup >= 10 else "info"
        seq_word = "sequences" if unit == "row" else "documents"
        return Finding(
            "duplicates", metric, int(locs[0]), int(locs[-1]), sev,
            f"{n_dup:,} exact duplicate {seq_word} ({groups:,} distinct contents repeated) take {share:.2%} of the "
            f"tokens: first copy at {unit} {int(locs[0]):,} repeats {unit} {pairs[0][1]:,}; deduplicate before "
            f"training (repeated data is memorised and inflates the validation score when it leaks into it)",
            {"unit": unit, "duplicates": n_dup, "distinct_repeated": groups, "token_share": share,
             "sequences": total_seqs, "locations": [int(x) for x in locs], "copy_of": pairs})


class Repeats:
    """Stretches of >= 32 repeats of a 1-13 token unit (OLMo's filter), located by token offset or row."""

    def __init__(self) -> None:
        self.count = 0
        self.tokens = 0
        self.locs: list[dict[str, int]] = []

    def add(self, start: int, span: int, period: int, row: int | None = None) -> None:
        self.count += 1
        self.tokens += span
        if len(self.locs) < MAX_LOCATIONS:
            loc = {"offset": start, "length": span, "period": period}
            if row is not None:
                loc["row"] = row
            self.locs.append(loc)

    def finding(self, metric: str, unit: str, total_tokens: int) -> Finding | None:
        if not self.count:
            return None
        first = self.locs[0]
        at = f"row {first['row']:,} (token {first['offset']:,} of the row)" if unit == "row" else \
            f"token offset {first['offset']:,}"
        key = "row" if unit == "row" else "offset"
        return Finding(
            "repeated_ngram", metric, self.locs[0][key], self.locs[-1][key], "warning",
            f"{self.count:,} stretches repeat a 1-{MAX_PERIOD}-token unit >= {MIN_REPEATS} times "
            f"({self.tokens / max(1, total_tokens):.2%} of the tokens); the first at {at}, a "
            f"{first['period']}-token unit over {first['length']:,} tokens: drop them (OLMo's filter) or they cause "
            f"loss spikes and degenerate repetition",
            {"unit": unit, "stretches": self.count, "tokens": self.tokens, "locations": self.locs,
             "min_repeats": MIN_REPEATS, "max_period": MAX_PERIOD})


class TokenStreamChecks:
    """A flat token stream (nanoGPT ``.bin``): id range, repeats, duplicate documents, block size."""

    OVERLAP = MAX_PERIOD * MIN_REPEATS + MAX_PERIOD

    def __init__(self, vocab_size: int | None, block_size: int | None, eot_id: int | None, dtype: np.dtype,
                 dedupe: bool = True) -> None:
        self.vocab, self.block, self.eot = vocab_size, block_size, eot_id
        self.dtype = np.dtype(dtype)
        self.n = 0
        self.min_id: int | None = None
        self.max_id: int | None = None
        self.bad = 0
        self.bad_locs: list[int] = []
        self.repeats = Repeats()
        self._tail = np.empty(0, dtype=self.dtype)
        self._reported_until = -1
        self._open: tuple[int, int, int] | None = None
        self.dups = Duplicates() if dedupe else None
        self._doc_hasher = hashlib.blake2b(digest_size=8)  # the document still open at the end of a chunk
        self._doc_len = 0
        self._doc_start = 0
        self.n_docs = 0

    def update(self, offset: int, chunk: np.ndarray) -> None:
        self.n += chunk.size
        lo, hi = int(chunk.min()), int(chunk.max())
        self.min_id = lo if self.min_id is None else min(self.min_id, lo)
        self.max_id = hi if self.max_id is None else max(self.max_id, hi)
        if self.vocab is not None and (hi >= self.vocab or lo < 0):
            bad = np.flatnonzero((chunk >= self.vocab) | (chunk < 0)) if lo < 0 else np.flatnonzero(chunk >= self.vocab)
            self.bad += int(bad.size)
            _first(self.bad_locs, bad + offset)
        self._repeats(offset, chunk)
        if self.dups is not None:
            self._documents(offset, chunk)

    def _repeats(self, offset: int, chunk: np.ndarray) -> None:
        """Chunks overlap by ``OVERLAP`` tokens; a stretch reaching the end of a chunk stays open until it ends."""
        base = offset - self._tail.size
        window = np.concatenate((self._tail, chunk)) if self._tail.size else chunk
        end = base + window.size
        for start, span, period in repeat_runs(window):
            g = base + start
            if self._open is not None:
                o_start, o_span, o_period = self._open
                if period == o_period and g <= o_start + o_span:  # the open stretch goes on
                    self._open = (o_start, max(o_start + o_span, g + span) - o_start, period)
                    continue
                if g < o_start + o_span:
                    continue
                self._commit()
            elif g < self._reported_until:
                continue  # seen already through the overlap
            self._open = (g, span, period)
        if self._open is not None and self._open[0] + self._open[1] < end:
            self._commit()
        self._tail = window[-self.OVERLAP:].copy()

    def _commit(self) -> None:
        if self._open is not None:
            g, span, period = self._open
            self.repeats.add(g, span, period)
            self._reported_until = g + span
            self._open = None

    def _documents(self, offset: int, chunk: np.ndarray) -> None:
        """Documents end at the end-of-text token; without one, fixed windows of the block size stand in.

        Each document is hashed (8-byte BLAKE2b) straight from the chunk's buffer; the one still open at the end
        of a chunk keeps a running hasher, so no document is ever copied or held whole.
        """
        if self.eot is not None:
            cuts = np.flatnonzero(chunk == self.eot) + 1
        else:
            w = self.block or 1024
            cuts = np.arange((-offset) % w or w, chunk.size + 1, w)
        mv = np.ascontiguousarray(chunk).data.cast("B")
        size = chunk.dtype.itemsize
        hashes, where, lengths = [], [], []
        s = 0
        for e in cuts.tolist():
            seg = mv[s * size:e * size]
            if self._doc_len:  # the document open since the previous chunk ends here
                self._doc_hasher.update(seg)
                digest, n, start = self._doc_hasher.digest(), self._doc_len + e - s, self._doc_start
                self._doc_len = 0
            else:
                digest, n, start = hashlib.blake2b(seg, digest_size=8).digest(), e - s, offset + s
            self.n_docs += 1
            if n >= MIN_DUP_TOKENS:
                hashes.append(digest)
                where.append(start)
                lengths.append(n)
            s = e
        if s < chunk.size:  # the rest stays open
            if self._doc_len:
                self._doc_hasher.update(mv[s * size:])
            else:
                self._doc_hasher = hashlib.blake2b(mv[s * size:], digest_size=8)
                self._doc_start = offset + s
            self._doc_len += chunk.size - s
        if hashes and self.dups is not None:
            self.dups.add_many(np.frombuffer(b"".join(hashes), dtype=np.int64), np.asarray(where, np.int64),
                               np.asarray(lengths, np.int64))

    def finish(self, findings: list[Finding], facts: dict[str, Any], metric: str = "tokens") -> None:
        self._commit()
        if self._doc_len and self.dups is not None:
            self.n_docs += 1
            if self._doc_len >= MIN_DUP_TOKENS:
                self.dups.add_many(np.frombuffer(self._doc_hasher.digest(), np.int64), np.array([self._doc_start]),
                                   np.array([self._doc_len]))
        facts["tokens"] = self.n
        if self.min_id is not None:
            facts["min_token_id"], facts["max_token_id"] = self.min_id, self.max_id
        if self.dups is not None:
            facts["documents" if self.eot is not None else "windows"] = self.n_docs
        if self.vocab is None:
            findings.append(Finding(
                "token_range", metric, 0, max(0, self.n - 1), "info",
                f"ids span {self.min_id}..{self.max_id}; pass --vocab-size (or a --config with vocab_size) to "
                f"check that every id is below the vocabulary size", {"unit": "token", "max_id": self.max_id}))
        elif self.bad:
            findings.append(Finding(
                "token_range", metric, self.bad_locs[0], self.bad_locs[-1], "error",
                f"{self.bad:,} token ids outside [0, {self.vocab:,}) (max {self.max_id:,}), the first at token "
                f"offset {self.bad_locs[0]:,}: the embedding lookup will fail (or read garbage rows); re-tokenise "
                f"or raise vocab_size to {(self.max_id or 0) + 1:,}",
                {"unit": "token", "count": self.bad, "locations": self.bad_locs, "vocab_size": self.vocab,
                 "max_id": self.max_id}))
        f = self.repeats.finding(metric, "token", self.n)
        if f:
            findings.append(f)
        if self.dups is not None:
            f = self.dups.finding(metric, "token", self.n_docs, self.n)
            if f:
                findings.append(f)
        if self.block is not None and self.n <= self.block:
            findings.append(Finding(
                "data_epochs", metric, 0, self.n, "error",
                f"only {self.n:,} tokens for a block size of {self.block:,}: nanoGPT's get_batch needs more than "
                f"block_size + 1 tokens", {"unit": "token", "tokens": self.n, "block_size": self.block}))


def epochs_finding(n_tokens: int, cfg: dict[str, Any], metric: str, findings: list[Finding],
                   facts: dict[str, Any]) -> None:
    """Token count -> how many epochs the config's run makes over this data (the nanoGPT repetition risk)."""
    from ..facts import tokens_per_step

    tps = tokens_per_step(cfg)
    steps = cfg.get("max_steps")
    if not tps or not steps or not n_tokens:
        return
    need = int(tps) * int(steps)
    epochs = need / n_tokens
    facts["tokens_per_step"] = int(tps)
    facts["tokens_to_train"] = need
    facts["epochs"] = round(epochs, 4)
    sev = "warning" if epochs > EPOCHS_WARN else "info"
    tail = (f": beyond ~{EPOCHS_WARN:g} epochs repeated tokens are worth less and less (Muennighoff et al. 2023) "
            f"and the model starts to memorise; get more data, or shrink max_iters to "
            f"{int(EPOCHS_WARN * n_tokens / tps):,}") if sev == "warning" else ""
    findings.append(Finding(
        "data_epochs", metric, 0, max(0, n_tokens - 1), sev,
        f"{int(steps):,} steps x {int(tps):,} tokens/step = {need:,} tokens = {epochs:.2f} epochs over these "
        f"{n_tokens:,} tokens{tail}",
        {"unit": "token", "epochs": epochs, "tokens": n_tokens, "tokens_to_train": need, "max_steps": int(steps),
         "tokens_per_step": int(tps)}))


class RowChecks:
    """Rows of token lists (``input_ids``/``labels``/``attention_mask``), numeric features and a class label."""

    def __init__(self, vocab_size: int | None, model_shifts: bool, label_column: str | None = None,
                 ignore_index: int = IGNORE_INDEX, dedupe: bool = True, last_column_label: bool = False) -> None:
        self.vocab, self.model_shifts, self.ignore = vocab_size, model_shifts, ignore_index
        self.label_column = label_column
        self.last_column_label = last_column_label  # tables: an unnamed label is the last column
        self._fallback: str | None = None
        self.rows = 0
        self.tokens = 0
        self.columns: list[str] = []
        self.out_of_range: dict[str, list[Any]] = {}  # column -> [count, rows, max]
        self.len_mismatch: list[int] = []
        self.n_len_mismatch = 0
        self.all_ignored: list[int] = []
        self.n_all_ignored = 0
        self.shift_rows = {s: 0 for s in (-1, 0, 1, 2)}
        self.shift_first: dict[int, list[int]] = {s: [] for s in (-1, 0, 1, 2)}
        self.misaligned: list[int] = []
        self.n_misaligned = 0
        self.neighbour: list[list[int]] = []  # [row, neighbour row whose input_ids its labels follow]
        self.n_neighbour = 0
        self.pad_trained: list[int] = []
        self.n_pad_trained = 0
        self.nonfinite: dict[str, list[Any]] = {}  # column -> [count, rows]
        self.stats: dict[str, np.ndarray] = {}  # column -> [n, sum, sumsq, min, max, n_within_10]
        self.far: dict[str, list[Any]] = {}  # column -> [count, rows, values]
        self.classes: dict[str, dict[Any, int]] = {}
        self.repeats = Repeats()
        self.dups = Duplicates() if dedupe else None
        self._prev: tuple[np.ndarray, int] | None = None  # last row's input_ids, for rows shifted across batches

    # ----------------------------------------------------------------- per batch
    def update(self, b: Batch) -> None:
        for name in list(b.lists) + list(b.scalars):
            if name not in self.columns:
                self.columns.append(name)
        self.rows += b.n_rows
        ids = b.lists.get("input_ids")
        if ids is not None:
            self.tokens += int(ids.values.size)
            self._ranges(b, "input_ids", ids)
            self._repeat_rows(b, ids)
            if self.dups is not None:
                for r in range(b.n_rows):
                    seq = ids.values[ids.offsets[r]:ids.offsets[r + 1]]
                    if seq.size:
                        self.dups.add(seq, b.row0 + r)
        labels = b.lists.get("labels")
        if labels is not None:
            self._ranges(b, "labels", labels, skip_ignore=True)
            if ids is not None:
                self._alignment(b, ids, labels, b.lists.get("attention_mask"))
        for name, col in b.lists.items():
            if col.values.dtype.kind == "f":
                self._nonfinite_list(b, name, col)
        label_col = self._label_column(b)
        for name, arr in b.scalars.items():
            if name == label_col:
                self._count_classes(name, arr)
            elif arr.dtype.kind == "f" and name.lower() not in ID_COLUMNS:
                self._features(b, name, arr)
        if self.dups is not None and ids is None and b.scalars:
            names = sorted(n for n in b.scalars if n.lower() not in ID_COLUMNS)
            table = [b.scalars[n] for n in names]
            for r in range(b.n_rows):
                row = np.asarray([str(c[r]) for c in table], dtype=object)
                self.dups.add(np.frombuffer("\x1f".join(row).encode(), dtype=np.uint8), b.row0 + r)

    def _label_column(self, b: Batch) -> str | None:
        if self.label_column:
            return self.label_column if self.label_column in b.scalars else None
        for name in b.scalars:
            if name.lower() in LABEL_COLUMNS:
                return name
        if self.last_column_label and b.scalars:
            if self._fallback is None:  # decided once, on the first batch: the last column, if it looks categorical
                name = list(b.scalars)[-1]
                v = b.scalars[name]
                fin = v[np.isfinite(v)] if v.dtype.kind == "f" else v
                categorical = v.dtype.kind == "O" or (fin.size > 0 and bool(np.all(fin == np.round(fin)))
                                                      and np.unique(fin).size <= 100)
                self._fallback = name if categorical else ""
            return self._fallback or None
        return None

    def _row_index(self, col: ListColumn) -> np.ndarray:
        return np.repeat(np.arange(col.offsets.size - 1), np.diff(col.offsets))

    def _ranges(self, b: Batch, name: str, col: ListColumn, skip_ignore: bool = False) -> None:
        v = col.values
        if not v.size or self.vocab is None:
            return
        bad = (v >= self.vocab) | (v < 0)
        if skip_ignore:
            bad &= v != self.ignore
        if not bad.any():
            return
        rows = np.unique(self._row_index(col)[bad]) + b.row0
        entry = self.out_of_range.setdefault(name, [0, [], None])
        entry[0] += int(rows.size)
        _first(entry[1], rows)
        mx = int(v[bad].max())
        entry[2] = mx if entry[2] is None else max(entry[2], mx)

    def _repeat_rows(self, b: Batch, ids: ListColumn) -> None:
        """One pass over the batch: rows joined by a sentinel that no token equals, so no stretch spans two rows."""
        lens = np.diff(ids.offsets)
        if not lens.size or lens.max() < MIN_REPEATS:
            return
        joined = np.full(ids.values.size + lens.size, -1, dtype=np.int64)
        pos = ids.offsets[:-1] + np.arange(lens.size)
        joined_idx = np.repeat(pos, lens) + (np.arange(ids.values.size) - np.repeat(ids.offsets[:-1], lens))
        joined[joined_idx] = ids.values
        for start, span, period in repeat_runs(joined):
            r = int(np.searchsorted(pos, start, side="right") - 1)
            self.repeats.add(int(start - pos[r]), span, period, row=b.row0 + r)

    def _alignment(self, b: Batch, ids: ListColumn, labels: ListColumn, mask: ListColumn | None) -> None:
        li, ll = np.diff(ids.offsets), np.diff(labels.offsets)
        mism = np.flatnonzero(li != ll)
        if mism.size:
            self.n_len_mismatch += int(mism.size)
            _first(self.len_mismatch, mism + b.row0)
        ok = li == ll
        x, y = ids.values, labels.values
        if not ok.all():  # compare only rows of equal length: rebuild the flat arrays without the others
            keep = np.repeat(ok, li)
            x = x[keep]
            y = y[np.repeat(ok, ll)]
        rows_ok = np.flatnonzero(ok)
        lens = li[ok]
        offs = np.concatenate(([0], np.cumsum(lens)))
        row_of = np.repeat(np.arange(lens.size), lens)
        pos_in = np.arange(x.size) - np.repeat(offs[:-1], lens)
        valid = y != self.ignore
        n_valid = np.bincount(row_of, weights=valid, minlength=lens.size)
        empty = np.flatnonzero(n_valid == 0)
        if empty.size:
            self.n_all_ignored += int(empty.size)
            _first(self.all_ignored, rows_ok[empty] + b.row0)
        if mask is not None:
            if np.array_equal(mask.offsets, labels.offsets):
                m = mask.values if ok.all() else mask.values[np.repeat(ok, ll)]
            else:  # some masks have another length: use the rows where it matches, count the others as unmasked
                m = np.ones(x.size, dtype=np.int64)
                for k, r in enumerate(rows_ok):
                    seg = mask.values[mask.offsets[r]:mask.offsets[r + 1]]
                    if seg.size == lens[k]:
                        m[offs[k]:offs[k + 1]] = seg
            pad = np.bincount(row_of, weights=valid & (m == 0), minlength=lens.size)
            hit = np.flatnonzero(pad > 0)
            if hit.size:
                self.n_pad_trained += int(hit.size)
                _first(self.pad_trained, rows_ok[hit] + b.row0)
        frac = {}
        for s in (-1, 0, 1, 2):
            inside = (pos_in + s >= 0) & (pos_in + s < np.repeat(lens, lens)) & valid
            j = np.clip(np.arange(x.size) + s, 0, max(0, x.size - 1))
            match = inside & (y == x[j])
            n_in = np.bincount(row_of, weights=inside, minlength=lens.size)
            frac[s] = np.where(n_in >= 4, np.bincount(row_of, weights=match, minlength=lens.size)
                               / np.maximum(n_in, 1), np.nan)
        stacked = np.vstack([frac[s] for s in (-1, 0, 1, 2)])
        decided = np.isfinite(stacked).any(axis=0)
        best = np.nanargmax(np.where(np.isfinite(stacked), stacked, -1.0), axis=0)
        best_frac = stacked[best, np.arange(lens.size)]
        aligned = decided & (best_frac >= 0.9)
        for k, s in enumerate((-1, 0, 1, 2)):
            rows_s = np.flatnonzero(aligned & (best == k))
            self.shift_rows[s] += int(rows_s.size)
            _first(self.shift_first[s], rows_ok[rows_s] + b.row0)
        bad = np.flatnonzero(decided & ~aligned)
        for r in bad:
            g = int(rows_ok[r]) + b.row0
            self.n_misaligned += 1
            if len(self.misaligned) < MAX_LOCATIONS:
                self.misaligned.append(g)
            lab = y[offs[r]:offs[r + 1]]
            for nb in (int(rows_ok[r]) - 1, int(rows_ok[r]) + 1):
                other = None
                if 0 <= nb < b.n_rows:
                    other = ids.values[ids.offsets[nb]:ids.offsets[nb + 1]]
                elif nb == -1 and self._prev is not None:
                    other = self._prev[0]
                if other is not None and self._follows(lab, other):
                    self.n_neighbour += 1
                    if len(self.neighbour) < MAX_LOCATIONS:
                        self.neighbour.append([g, b.row0 + nb])
                    break
        if b.n_rows:
            self._prev = (ids.values[ids.offsets[-2]:ids.offsets[-1]].copy(), b.row0 + b.n_rows - 1)

    def _follows(self, lab: np.ndarray, other: np.ndarray) -> bool:
        if lab.size != other.size:
            return False
        valid = lab != self.ignore
        for s in (0, 1):
            a, o, v = lab[: lab.size - s], other[s:], valid[: lab.size - s]
            if v.sum() >= 4 and (a[v] == o[v]).mean() >= 0.9:
                return True
        return False

    def _nonfinite_list(self, b: Batch, name: str, col: ListColumn) -> None:
        bad = ~np.isfinite(col.values)
        if bad.any():
            rows = np.unique(self._row_index(col)[bad]) + b.row0
            e = self.nonfinite.setdefault(name, [0, []])
            e[0] += int(rows.size)
            _first(e[1], rows)

    def _features(self, b: Batch, name: str, arr: np.ndarray) -> None:
        fin = np.isfinite(arr)
        if not fin.all():
            e = self.nonfinite.setdefault(name, [0, []])
            rows = np.flatnonzero(~fin)
            e[0] += int(rows.size)
            _first(e[1], rows + b.row0)
        v = arr[fin]
        if not v.size:
            return
        st = self.stats.get(name)
        new = np.array([v.size, v.sum(), (v * v).sum(), v.min(), v.max(), np.count_nonzero(np.abs(v) <= 10)])
        if st is None:
            self.stats[name] = new
        else:
            st[[0, 1, 2, 5]] += new[[0, 1, 2, 5]]  # count, sum, sum of squares, values within +-10
            st[3], st[4] = min(st[3], new[3]), max(st[4], new[4])
        far = np.flatnonzero(fin & (np.abs(np.where(fin, arr, 0)) > 50))
        if far.size:
            e = self.far.setdefault(name, [0, [], []])
            e[0] += int(far.size)
            if len(e[1]) < MAX_LOCATIONS:
                take = far[: MAX_LOCATIONS - len(e[1])]
                e[1].extend(int(r) + b.row0 for r in take)
                e[2].extend(float(arr[r]) for r in take)

    def _count_classes(self, name: str, arr: np.ndarray) -> None:
        counts = self.classes.setdefault(name, {})
        if arr.dtype.kind == "f":
            arr = arr[np.isfinite(arr)]
        vals, n = np.unique(arr, return_counts=True)
        for v, c in zip(vals.tolist(), n.tolist()):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            counts[v] = counts.get(v, 0) + c

    # ----------------------------------------------------------------- at the end
    def finish(self, findings: list[Finding], facts: dict[str, Any]) -> None:
        facts["rows"] = self.rows
        if self.tokens:
            facts["tokens"] = self.tokens
        for name, (n, rows, mx) in self.out_of_range.items():
            findings.append(Finding(
                "token_range", name, rows[0], rows[-1], "error",
                f"{n:,} rows hold {name} outside [0, {self.vocab:,}) (max {mx:,}), the first is row {rows[0]:,}: "
                f"the embedding lookup or the loss will fail; re-tokenise with the model's tokenizer or fix "
                f"vocab_size", {"unit": "row", "rows_affected": n, "locations": rows, "max_id": mx,
                                "vocab_size": self.vocab}))
        if self.vocab is None and "input_ids" in self.columns:
            findings.append(Finding("token_range", "input_ids", 0, max(0, self.rows - 1), "info",
                                    "pass --vocab-size (or a --config with vocab_size) to check the id range",
                                    {"unit": "row"}))
        if self.n_len_mismatch:
            r = self.len_mismatch
            findings.append(Finding(
                "label_alignment", "labels", r[0], r[-1], "error",
                f"{self.n_len_mismatch:,} rows have labels of another length than input_ids, the first row "
                f"{r[0]:,}: labels must pair position by position with the inputs",
                {"unit": "row", "rows_affected": self.n_len_mismatch, "locations": r}))
        if self.n_all_ignored:
            r = self.all_ignored
            findings.append(Finding(
                "ignored_labels", "labels", r[0], r[-1], "error",
                f"{self.n_all_ignored:,} rows have every label = {self.ignore} (ignored), the first row {r[0]:,}: "
                f"a batch made of such rows has a 0/0 mean loss = NaN; drop them (e.g. prompts truncated before "
                f"the response)", {"unit": "row", "rows_affected": self.n_all_ignored, "locations": r,
                                   "ignore_index": self.ignore}))
        if self.n_pad_trained:
            r = self.pad_trained
            findings.append(Finding(
                "label_alignment", "attention_mask", r[0], r[-1], "warning",
                f"{self.n_pad_trained:,} rows train on padding (labels set where attention_mask = 0), the first row "
                f"{r[0]:,}: set those labels to {self.ignore}",
                {"unit": "row", "rows_affected": self.n_pad_trained, "locations": r}))
        self._alignment_findings(findings, facts)
        for name, (n, rows) in self.nonfinite.items():
            findings.append(Finding(
                "nonfinite_data", name, rows[0], rows[-1], "error",
                f"{n:,} rows hold NaN/Inf in {name}, the first row {rows[0]:,}: one such value makes the loss NaN; "
                f"drop or impute them", {"unit": "row", "rows_affected": n, "locations": rows}))
        self._feature_findings(findings, facts)
        self._class_findings(findings, facts)
        f = self.repeats.finding("input_ids", "row", self.tokens)
        if f:
            findings.append(f)
        if self.dups is not None:
            f = self.dups.finding("input_ids" if self.tokens else "row", "row", self.rows,
                                  self.tokens or self.rows)
            if f:
                if not self.tokens:
                    f.message = f.message.replace("of the tokens", "of the rows")
                findings.append(f)

    def _alignment_findings(self, findings: list[Finding], facts: dict[str, Any]) -> None:
        decided = sum(self.shift_rows.values())
        if not decided and not self.n_misaligned:
            return
        dominant = max(self.shift_rows, key=lambda s: self.shift_rows[s])
        facts["label_shift"] = dominant
        expected = 0 if self.model_shifts else 1
        rows = self.shift_first[dominant]
        who = "the model shifts them (HF causal LM)" if self.model_shifts else "the model does not shift them"
        if decided and dominant != expected:
            what = {(True, 1): "labels are already shifted by one and the model shifts them again: shifted twice, "
                               "so every position learns the token two ahead",
                    (False, 0): "labels equal input_ids but the model does not shift them: it learns to copy its "
                                "input (loss near 0, nothing learnt)",
                    (False, 2): "labels are shifted by two: shifted twice, every position learns the token two ahead",
                    (True, 2): "labels are shifted by two and the model shifts them again",
                    }.get((self.model_shifts, dominant), f"labels are shifted by {dominant} against input_ids")
            fix = ("pass labels = input_ids and let the model shift" if self.model_shifts
                   else "set labels[i] = input_ids[i + 1] (shift once)")
            findings.append(Finding(
                "label_alignment", "labels", rows[0] if rows else 0, rows[-1] if rows else 0, "error",
                f"{self.shift_rows[dominant]:,} of {decided:,} rows: {what}; {who}; {fix}",
                {"unit": "row", "shift": dominant, "expected_shift": expected, "rows_affected":
                 self.shift_rows[dominant], "locations": rows, "model_shifts": self.model_shifts}))
        if self.n_misaligned:
            r = self.misaligned
            nb = ""
            if self.n_neighbour:
                a, o = self.neighbour[0]
                nb = (f"; {self.n_neighbour:,} of them carry the labels of a neighbouring row (row {a:,} has row "
                      f"{o:,}'s), so rows are shifted against each other")
            findings.append(Finding(
                "label_alignment", "labels", r[0], r[-1], "error",
                f"{self.n_misaligned:,} rows have labels that match their input_ids at no shift (first row "
                f"{r[0]:,}){nb}: inputs and labels were paired wrongly",
                {"unit": "row", "rows_affected": self.n_misaligned, "locations": r,
                 "neighbour_rows": self.neighbour, "neighbour_count": self.n_neighbour}))

    def _feature_findings(self, findings: list[Finding], facts: dict[str, Any]) -> None:
        if not self.stats:
            return
        unnormalised = []
        for name, st in self.stats.items():
            n, s, ss, lo, hi, within = st
            mean = s / n
            std = float(np.sqrt(max(0.0, ss / n - mean * mean)))
            if within / n >= 0.99 and name in self.far:
                cnt, rows, vals = self.far[name]
                findings.append(Finding(
                    "feature_range", name, rows[0], rows[-1], "warning",
                    f"{cnt:,} values of {name} lie beyond +-50 while 99% of it is within +-10 (normalised), the "
                    f"first row {rows[0]:,} = {vals[0]:.4g}: outliers or unscaled rows; clip or fix them",
                    {"unit": "row", "count": cnt, "locations": rows, "values": vals, "mean": mean, "std": std}))
            elif abs(mean) > 10 or std > 10:
                unnormalised.append((name, float(lo), float(hi), float(mean), std))
        if unnormalised:
            names = ", ".join(f"{n} ({lo:.4g}..{hi:.4g}, mean {m:.3g}, std {s:.3g})"
                              for n, lo, hi, m, s in unnormalised[:5])
            findings.append(Finding(
                "feature_range", unnormalised[0][0], 0, max(0, self.rows - 1), "warning",
                f"{len(unnormalised)} feature columns are far outside the normalised range: {names}; standardise "
                f"them (mean 0, std 1 from the training split) or the first layer saturates and the LR is wrong "
                f"for them", {"unit": "row", "columns": [
                    {"name": n, "min": lo, "max": hi, "mean": m, "std": s} for n, lo, hi, m, s in unnormalised]}))

    def _class_findings(self, findings: list[Finding], facts: dict[str, Any]) -> None:
        for name, counts in self.classes.items():
            k = len(counts)
            if k < 2 or k > 1000:
                continue
            total = sum(counts.values())
            minority = min(counts, key=lambda c: counts[c])
            majority = max(counts, key=lambda c: counts[c])
            ratio = counts[majority] / counts[minority]
            weights = {str(c): round(total / (k * n), 4) for c, n in sorted(counts.items(), key=lambda kv: str(kv[0]))}
            facts["classes"] = k
            share = counts[minority] / total
            sev = "warning" if ratio >= 10 else "info"
            findings.append(Finding(
                "class_imbalance", name, 0, max(0, self.rows - 1), sev,
                f"{k} classes; the minority class {minority!r} has {counts[minority]:,} rows ({share:.2%}), the "
                f"majority {majority!r} {counts[majority]:,} ({ratio:.1f}x)"
                + (f": a model that always answers {majority!r} scores {counts[majority] / total:.1%} accuracy; "
                   f"weight the loss by n/(k*n_c) (minority weight {weights[str(minority)]:g}) or resample, and "
                   f"report per-class recall" if sev == "warning" else ""),
                {"unit": "row", "counts": {str(c): n for c, n in counts.items()}, "minority": str(minority),
                 "minority_share": share, "imbalance_ratio": ratio, "balancing_weights": weights}))
