"""Directory scans: a directory of many runs is analysed run by run, in parallel, and none is dropped.

A directory is *one run* when its log files are the same run written in several formats (``train.log``,
``metrics.csv``, ``tb/``: one file per format), and *many runs* when two of its logs share a format or it
holds only sub-directories. Deciding this sniffs files only until two share a format, so a directory of
20,000 logs starts at once (R19: sniffing them all first took ~20 s before anything happened); each
worker then sniffs, reads and analyses its own files.

Example:
    >>> from lossdx.scan import run_inputs, scan
    >>> items = run_inputs("runs/")                       # doctest: +SKIP
    >>> for result in scan(items, jobs=2): print(result.line())   # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .exceptions import InputError


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0, 32), 127] if c not in (9,)}


def clean(s: str) -> str:
    """A string from the input made safe for a terminal line: control characters (ESC, OSC, CR, LF) escaped."""
    return str(s).translate(_CONTROL)


def _entries(directory: str) -> tuple[list[str], list[str]]:
    """Regular files and sub-directories (hidden names skipped), sorted by name."""
    files, dirs = [], []
    try:
        with os.scandir(directory) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                try:
                    if e.is_file():
                        files.append(e.path)
                    elif e.is_dir():
                        dirs.append(e.path)
                except OSError:
                    continue
    except OSError as err:
        raise InputError(f"cannot list {directory}: {err.strerror or err}") from None
    return sorted(files), sorted(dirs)


def _log_format(path: str) -> str | None:
    from .readers import sniff

    try:
        name, score = sniff(path)
    except (InputError, OSError):
        return None
    if name == "text" and score < 0.3:
        return None
    return name


def run_inputs(directory: str) -> list[str] | None:
    """The inputs of a directory holding several runs (files and run directories), or None when it is one run."""
    files, dirs = _entries(directory)
    if any("tfevents" in os.path.basename(p) for p in files):
        return None  # a TensorBoard run directory
    logs: list[str] = []
    seen: set[str] = set()
    for p in files:
        fmt = _log_format(p)
        if fmt is None:
            continue
        if fmt in seen:
            return files  # two logs of one format: separate runs (workers report what is not a log)
        seen.add(fmt)
        logs.append(p)
    runs = [d for d in dirs if _holds_files(d)]
    if len(runs) < 2:
        return None  # one log per format (the same run written several ways), perhaps with a tb/ beside
    # run directories (a sweep, a TensorBoard log root with version_0/, version_1/ ...), and any log beside them
    return logs + runs


def _holds_files(directory: str) -> bool:
    try:
        with os.scandir(directory) as it:
            return any(not e.name.startswith(".") for e in it)
    except OSError:
        return False


@dataclass
class ReportDigest:
    """What the text and Markdown outputs of a scan show of one report (its source, verdict, summary and top
    diagnosis, under the Report's own attribute names): the workers send this back instead of the whole report
    when nothing else is shown, so 20,000 small logs do not pickle, unpickle and keep 20,000 reports (R19)."""

    source: dict[str, Any]
    verdict: str
    summary: str
    diagnoses: list[Any]  # the top lossdx.report.Diagnosis only (none for a healthy run without one)

    @classmethod
    def of(cls, report: Any) -> "ReportDigest":
        return cls(report.source, report.verdict, report.summary, report.diagnoses[:1])


@dataclass
class ScanResult:
    """What became of one input of a scan: its reports, or why it has none."""

    path: str
    #: one per run in the input: lossdx.report.Report, or its ReportDigest when the scan was not ``full``
    reports: list[Any] = field(default_factory=list)
    error: str | None = None  # unreadable input (the one-line reason)
    skipped: bool = False  # not a training log at all (a config, a checkpoint, notes)

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"skipped  {clean(self.path)}: {clean(self.error or 'not a training log')}"]
        if self.error:
            return [f"ERROR    {clean(self.path)}: {clean(self.error)}"]
        out = []
        for r in self.reports:
            mark = {"healthy": "OK", "warning": "WARNING", "problem": "PROBLEM"}[r.verdict]
            name = clean(r.source.get("path", self.path))
            if r.source.get("run_name"):
                name += f" [{clean(str(r.source['run_name']))}]"
            cause = f"  ({r.diagnoses[0].cause} {r.diagnoses[0].confidence:.2f})" if r.diagnoses else ""
            out.append(f"{mark:<8} {name}: {clean(r.summary)}{cause}")
        return out


def analyze_input(path: str, auto_config: bool = True, full: bool = True, settings: Any = None) -> ScanResult:
    """Read and analyse every run of one input; never raises on a bad input. ``full=False`` gives each run's
    :class:`ReportDigest` and leaves out its loss forecast (the text and Markdown outputs show neither);
    ``settings`` (:class:`lossdx.settings.Settings`) apply to every run as to a single log."""
    from .analyze import analyze_quietly, attach_config
    from .exceptions import LossdxError, UnsupportedFormat
    from .readers import read_runs

    from .config.readers import _CONFIG_NAMES

    if os.path.isfile(path) and os.path.basename(path) in _CONFIG_NAMES:
        return ScanResult(path, error="a training config (read for the logs beside it), not a log", skipped=True)
    try:
        runs = read_runs(path)
        reports = []
        for run in runs:
            used = attach_config(run, None, auto=auto_config)
            if used:
                run.meta["config_path"] = used
            report = analyze_quietly(run, settings=settings, forecast=full)
            reports.append(report if full else ReportDigest.of(report))
        return ScanResult(path, reports)
    except UnsupportedFormat as err:
        return ScanResult(path, error=str(err), skipped=True)
    except LossdxError as err:
        return ScanResult(path, error=str(err))
    except Exception as err:  # a bug of ours on one input must not end the scan of the others: it is reported
        msg = str(err).splitlines()[0] if str(err) else ""
        return ScanResult(path, error=f"internal error: {type(err).__name__}: {msg} (please report it)")


def _work(args: tuple[str, bool, bool, Any]) -> ScanResult:
    return analyze_input(*args)


def _start_worker() -> None:
    from .config.readers import cached_search

    cached_search()  # the logs of one folder share its config search (R19: 20,000 logs in one folder)


def scan(inputs: Iterable[str], jobs: int | None = None, auto_config: bool = True,
         full: bool = True, settings: Any = None) -> Iterator[ScanResult]:
    """Analyse each input (in input order) with ``jobs`` worker processes; results stream as they finish.
    ``full=False`` gives :class:`ReportDigest` s without loss forecasts (what the text and Markdown outputs show)."""
    items = [(p, auto_config, full, settings) for p in inputs]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(items) or 1))
    if jobs == 1:
        from .config.readers import cached_search

        cached_search()
        try:
            for it in items:
                yield _work(it)
        finally:
            cached_search(False)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    # chunks keep the pickling overhead of thousands of small logs low, yet small enough to show progress
    chunk = max(1, min(32, len(items) // (jobs * 8)))
    with multiprocessing.get_context(method).Pool(jobs, initializer=_start_worker) as pool:
        yield from pool.imap(_work, items, chunksize=chunk)


def summary_lines(results: list[ScanResult]) -> list[str]:
    """The closing table of a scan: verdicts, most frequent causes, and what was not analysed."""
    reports = [r for res in results for r in res.reports]
    verdicts = Counter(r.verdict for r in reports)
    causes = Counter(r.diagnoses[0].cause for r in reports if r.diagnoses and r.verdict != "healthy")
    skipped = [res for res in results if res.skipped]
    errors = [res for res in results if res.error and not res.skipped]
    out = ["", f"{len(reports)} runs analysed from {len(results)} inputs",
           f"  {'healthy':<10} {verdicts.get('healthy', 0):>6}",
           f"  {'warning':<10} {verdicts.get('warning', 0):>6}",
           f"  {'problem':<10} {verdicts.get('problem', 0):>6}"]
    if errors:
        out.append(f"  {'unreadable':<10} {len(errors):>6}")
    if skipped:
        names = ", ".join(clean(os.path.basename(s.path)) for s in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        out.append(f"  {'not logs':<10} {len(skipped):>6}  ({names}{more})")
    if causes:
        out.append("most frequent causes: " + ", ".join(f"{c} x{n}" for c, n in causes.most_common(5)))
    return out


__all__ = ["ReportDigest", "ScanResult", "analyze_input", "run_inputs", "scan", "summary_lines"]
