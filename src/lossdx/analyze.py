"""The one pipeline: Run -> detectors -> findings -> diagnosis rules -> Report."""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np

from .config import find_config_near, read_config
from .config.hparams import canonical_hparams
from .config.readers import config_files
from .detectors import Context, Detector, default_detectors, detect_all
from .exceptions import ConfigError
from .facts import compute_facts
from .findings import Finding
from .model import Run, Series
from .readers import read
from .report import Report
from .settings import Settings

_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def attach_config(run: Run, config_path: str | None, auto: bool = True) -> str | None:
    """Merge the hyperparameters of ``config_path`` (or a config found beside the log) into the run."""
    path = config_path or (find_config_near(run.source.get("path", "")) if auto else None)
    if not path:
        return None
    run.meta.setdefault("files_read", []).extend(config_files(path))  # never to be overwritten by the report
    try:
        hparams, raw, notes = read_config(path)
    except ConfigError as err:
        if config_path:
            raise  # the user asked for this config: not reading it is an error
        # a config merely found beside the log must not make a readable log unreadable
        run.meta.setdefault("notes", []).append(f"config found beside the log was not used: {err}")
        return None
    sibling = _hf_sibling_config(path)
    if sibling:
        try:
            _h, sib_raw, sib_notes = read_config(sibling)
        except ConfigError as err:
            run.meta.setdefault("notes", []).append(f"config beside it was not used: {err}")
        else:
            run.meta["files_read"].append(sibling)
            raw = {**sib_raw, **raw}  # the config named first wins where both say something
            notes = notes + sib_notes
            hparams = canonical_hparams(raw)
    merged = dict(hparams)
    merged.update(run.config)  # what the log itself says wins only where the config is silent
    merged.update(hparams)
    run.config = merged
    run.meta.setdefault("config_raw", raw)
    run.meta.setdefault("notes", []).extend(f"config: {n}" for n in notes)
    _steps_from_logging_interval(run, raw)
    return path


_HF_PAIR = ("training_args.json", "config.json")


def _hf_sibling_config(path: str) -> str | None:
    """An HF output directory splits one run's config in two: the Trainer's arguments (LR, warmup,
    logging_steps) and the model's config.json (vocabulary, widths, init range); either one names the other."""
    if os.path.isdir(path) or os.path.basename(path) not in _HF_PAIR:
        return None
    other = _HF_PAIR[1 - _HF_PAIR.index(os.path.basename(path))]
    candidate = os.path.join(os.path.dirname(path), other)
    return candidate if os.path.isfile(candidate) else None


def _steps_from_logging_interval(run: Run, raw: dict) -> None:
    """A log without step numbers (HF console dicts) was numbered record by record; with the config's
    ``logging_steps`` its records get their real steps: record k was logged after (k + 1) x logging_steps steps,
    and each point is the mean of that many steps' losses."""
    every = raw.get("logging_steps")
    if run.meta.get("step_unit") != "record" or isinstance(every, bool) or not isinstance(every, (int, float)) \
            or not (1 <= every <= 1e9) or int(every) != every:
        return
    every = int(every)
    for name, s in list(run.series.items()):
        run.series[name] = type(s)(name, (s.steps + 1) * every, s.values, s.wall_times)
    run.meta["step_unit"] = "step"
    if every > 1:
        run.meta["log_window"] = every
    notes = run.meta.setdefault("notes", [])
    notes[:] = [n for n in notes if not n.startswith("the log prints no step numbers")]
    notes.append(f"the log prints no step numbers: record k is step (k + 1) x {every} (logging_steps of the config)")


def verdict_of(findings: Sequence[Finding]) -> str:
    worst = max((_SEVERITY_RANK[f.severity] for f in findings), default=0)
    return {0: "healthy", 1: "warning", 2: "problem"}[worst]


def summarize(verdict: str, findings: Sequence[Finding], diagnoses: Sequence) -> str:
    """One plain sentence: the most likely cause and its strongest evidence, or the worst finding."""
    serious = sorted((f for f in findings if f.severity != "info"), key=lambda f: -_SEVERITY_RANK[f.severity])
    if not serious:
        return "No anomaly found: the loss curves look like a healthy run."
    n = len(serious)
    more = f" ({n} finding{'s' if n > 1 else ''} in all)"
    if diagnoses:
        top = diagnoses[0]
        lead = top.evidence[0] if top.evidence else serious[0].message
        return (f"Most likely cause: {top.cause.replace('_', ' ')} (confidence {top.confidence:.2f}): "
                f"{lead}{more}.")
    lead = serious[0]
    return f"{lead.message[0].upper()}{lead.message[1:]}{more}."


def _undecided_note(findings: Sequence[Finding], diagnoses: Sequence, run: Run | None = None) -> str | None:
    """Where the log cannot decide, say so and what would decide it (never asking for what the log holds)."""
    serious = [f for f in findings if f.severity != "info"]
    if not serious or (diagnoses and diagnoses[0].confidence >= 0.5):
        return None
    missing = [f.message.split(":", 1)[0] for f in findings if f.kind == "log_limit"]
    logged = set(run.series) if run is not None else set()
    unlogged = [what for key, what in (("train/grad_norm", "the gradient norm (before clipping)"),
                                       ("train/lr", "the learning rate")) if key not in logged]
    ask = [f"log {' and '.join(unlogged)} every step"] if unlogged else []
    if "val/loss" not in logged:
        ask.append("log a validation loss every few hundred steps")
    if run is None or not run.config:
        ask.append("pass the training config (--config)")
    lead = ("no cause is certain from this log" if diagnoses else "the log shows a problem but not its cause")
    gaps = f" ({'; '.join(missing)})" if missing else ""
    if not ask:
        return f"{lead}{gaps}: each cause's checks say what would decide it"
    return f"{lead}{gaps}: to decide, {', '.join(ask)}"


def _drop_unmeasured(run: Run) -> None:
    """Megatron prints ``grad norm: 0.000`` when it does not compute the norm; a co-signal that is exactly
    zero at every step was never measured and must not pass for a calm gradient."""
    for name in ("train/grad_norm",):
        s = run.series.get(name)
        if s is not None and len(s) and bool((s.values == 0).all()):
            del run.series[name]
            run.meta.setdefault("notes", []).append(f"{name} is 0 at every logged step: not measured, ignored")
    # a held-out loss logged only as "test" (test/loss, test/loss_(avg_on_test)) is the validation curve
    if "val/loss" not in run.series:
        held = sorted(k for k in run.series if k.startswith("test/") and k.split("/", 1)[1].startswith("loss"))
        if held:
            s = run.series[held[0]]
            run.series["val/loss"] = Series("val/loss", s.steps, s.values)
            run.meta.setdefault("notes", []).append(f"{held[0]} is read as the validation loss (no val/loss logged)")


def analyze(run: Run, detectors: Sequence[Detector] | None = None, rules: Sequence | None = None,
            settings: Settings | None = None) -> Report:
    """Analyse a run: findings from the detectors, causes from the rules, facts from the config.

    ``settings`` (:class:`lossdx.settings.Settings`) selects or ignores finding kinds, overrides thresholds
    (when ``detectors`` is not given) and norms, and is recorded in the report."""
    # values near the float limits (a log of 1e308s) overflow in differences and ratios: the detectors treat the
    # resulting inf/nan as such, and numpy's warnings must not reach the user's terminal as noise
    return analyze_quietly(run, detectors, rules, settings)


def analyze_quietly(run: Run, detectors: Sequence[Detector] | None = None, rules: Sequence | None = None,
                    settings: Settings | None = None, forecast: bool = True) -> Report:
    """:func:`analyze`; ``forecast=False`` leaves the loss forecast out of the report (a directory scan's text and
    Markdown tables never show it, and on a short log it is most of the analysis' time)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="numpy")
        warnings.filterwarnings("ignore", message="(All-NaN|Mean of empty|Degrees of freedom)")
        return _analyze(run, detectors, rules, settings, forecast)


def _analyze(run: Run, detectors: Sequence[Detector] | None, rules: Sequence | None,
             settings: Settings | None, with_forecast: bool = True) -> Report:
    if settings is not None and settings.norms():
        run.meta.setdefault("norms", {}).update(settings.norms())
    if detectors is None and settings is not None:
        detectors = settings.detectors()
    dets = list(default_detectors() if detectors is None else detectors)
    _drop_unmeasured(run)
    ctx = Context.from_run(run)
    findings = detect_all(run, dets, ctx)
    if settings is not None:
        findings = [f for f in findings if settings.keeps(f.kind)]
    facts = compute_facts(run)
    diagnoses: list = []
    try:
        from .diagnosis import diagnose
    except ImportError:  # diagnosis engine not installed in this build
        diagnose = None
    if diagnose is not None:
        diagnoses = diagnose(run, findings, facts, rules=rules, profile=ctx.profile)
    findings.sort(key=lambda f: (-_SEVERITY_RANK[f.severity], f.start_step))
    verdict = verdict_of(findings)
    rng = run.step_range()
    phases = [f.evidence.get("phase") for f in findings if f.kind == "phase" and f.evidence.get("phase")]
    run_info = {
        "steps": list(rng) if rng else [0, 0],
        "metrics": run.metrics,
        "phases": phases,
        "facts": facts,
        "context": ctx.profile.to_dict(),
        "config": dict(run.config),
        "notes": list(dict.fromkeys(run.meta.get("notes", []))),
    }
    from .forecast import forecast_for_report  # the loss forecast, only where the power-law fit is good

    forecast = forecast_for_report(run) if with_forecast else None
    if forecast:
        run_info["forecast"] = forecast
    undecided = _undecided_note(findings, diagnoses, run)
    if undecided:
        run_info["notes"].append(undecided)
    if run.meta.get("other_runs"):
        why = ", the one with the most loss points" if run.meta.get("run_chosen") == "longest" else ""
        if run.meta.get("run_title"):
            why = f" ({run.meta['run_title']!r}){why}"
        run_info["notes"].append(f"the input holds {len(run.meta['other_runs']) + 1} runs; this report is about "
                                 f"{run.meta.get('run_name')!r}{why} (pick another with --run)")
    source = {"path": run.source.get("path", ""), "format": run.source.get("format", "")}
    if run.meta.get("config_path"):
        source["config"] = run.meta["config_path"]
    if run.meta.get("run_name"):
        source["run_name"] = str(run.meta["run_name"])
    return Report(source=source, verdict=verdict, summary=summarize(verdict, findings, diagnoses), run=run_info,
                  findings=findings, diagnoses=diagnoses, settings=settings.to_dict() if settings else {})


def read_run(path: str, config: str | None = None, input_format: str | None = None, run_name: str | None = None,
             auto_config: bool = True) -> Run:
    """The run in ``path`` with its config merged in (``config``, or one found beside the log): what
    ``lossdx.read`` returns, so ``lossdx.analyze(lossdx.read(path))`` judges exactly what ``lossdx analyze``
    does; ``run.meta["files_read"]`` lists the files it was read from (logs and configs)."""
    run = read(path, format=input_format, run=run_name)
    used = attach_config(run, config, auto=auto_config)
    if used:
        run.meta["config_path"] = os.path.relpath(used) if not os.path.isabs(path) else used
    return run


def analyze_path(path: str, config: str | None = None, input_format: str | None = None,
                 run_name: str | None = None, auto_config: bool = True, settings: Settings | None = None,
                 files_read: list[str] | None = None) -> Report:
    """Read ``path`` (and its config) and analyse it: what ``lossdx analyze`` does.

    ``files_read``, when given, receives every file that was read (the log files and the configs).
    """
    run = read_run(path, config=config, input_format=input_format, run_name=run_name, auto_config=auto_config)
    if files_read is not None:
        files_read.extend(run.meta.get("files_read", []))
    return analyze(run, settings=settings)


__all__ = ["analyze", "analyze_path", "attach_config", "read_run"]
