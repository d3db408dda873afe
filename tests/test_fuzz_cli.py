"""Property-based fuzzing of the whole command line: every reader and every config reader.

Whatever bytes a log or a config holds, ``lossdx analyze`` ends with exit code 0, 1 or 2 (never 3,
"internal error", never a traceback), in bounded time; an exit 2 is one line on stderr; a JSON
report is valid against the shipped schema. Runs in-process through ``lossdx.cli.main``.

The budget is fixed and derandomized so CI is reproducible (1,500 inputs in all). For a long
local campaign, scale it: ``LOSSDX_FUZZ_SCALE=20 pytest tests/test_fuzz_cli.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossdx.cli import main
from lossdx.config.hparams import HPARAM_ALIASES
from lossdx.report import load_schema
from lossdx.testing.events import file_version_event, record, scalar_event

jsonschema = pytest.importorskip("jsonschema")

SCALE = float(os.environ.get("LOSSDX_FUZZ_SCALE", "1"))
#: a generous bound of CPU seconds per input (small inputs take ~0.01-0.1 s)
PER_INPUT_S = 10.0
VALIDATOR = jsonschema.Draft202012Validator(load_schema())


def fuzz_settings(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


#: numpy floating-point warnings seen (file:line -> message): printed to stderr by the real CLI, never a crash or
#: a wrong exit code; they are collected here (and listed by the long campaign) rather than failing the test, since
#: they come from the detectors' arithmetic on hostile values such as 1e308
NUMERIC_WARNINGS: dict[str, str] = {}


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code = main(args)
    for w in seen:
        text = str(w.message)
        if issubclass(w.category, RuntimeWarning):
            NUMERIC_WARNINGS.setdefault(f"{w.filename}:{w.lineno}", text)
        else:  # any other warning is a defect, as everywhere in this suite
            raise AssertionError(f"{w.category.__name__} at {w.filename}:{w.lineno}: {text}")
    return code, out.getvalue(), err.getvalue()


#: the long campaign (LOSSDX_FUZZ_RECORD=path) records every distinct failure and goes on, instead of stopping at
#: the first one; at the end it writes what it tried and found to that path as JSON
RECORD = os.environ.get("LOSSDX_FUZZ_RECORD")
CAMPAIGN: dict = {"inputs": 0, "exit_codes": {}, "failures": {}}


@pytest.fixture(autouse=True)
def _campaign_report():
    yield
    if RECORD:  # after every test, so a campaign cut short still leaves its findings
        CAMPAIGN["numeric_warnings"] = NUMERIC_WARNINGS
        with open(RECORD, "w") as fh:
            json.dump(CAMPAIGN, fh, indent=1, default=str)


def check(files: dict[str, bytes], log: str, fmt: str = "json", extra: tuple[str, ...] = ()) -> None:
    """Write ``files`` to a fresh folder and analyse ``log`` there; ``{d}`` in ``extra`` is that folder."""
    if not RECORD:
        return _check(files, log, fmt, extra)
    try:
        _check(files, log, fmt, extra)
    except AssertionError as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        CAMPAIGN["failures"].setdefault(first, {"count": 0, "log": log, "extra": extra,
                                                "files": {k: v[:3000] for k, v in files.items()}})
        CAMPAIGN["failures"][first]["count"] += 1


def _check(files: dict[str, bytes], log: str, fmt: str, extra: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as d:
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(data)
        extra = tuple(a.format(d=d) for a in extra)
        out_file = extra[extra.index("-o") + 1] if "-o" in extra else None
        start, start_cpu = time.monotonic(), time.process_time()
        code, out, err = run_cli(["analyze", os.path.join(d, log), "--format", fmt, *extra])
        elapsed, cpu = time.monotonic() - start, time.process_time() - start_cpu
        CAMPAIGN["inputs"] += 1
        CAMPAIGN["exit_codes"][code] = CAMPAIGN["exit_codes"].get(code, 0) + 1
        assert code in (0, 1, 2), (code, err)
        assert "Traceback" not in err and "internal error" not in err, err
        # CPU time is the bound (a shared machine may stall the process for seconds); wall time only catches hangs
        assert cpu < PER_INPUT_S, f"{cpu:.1f} s of CPU for one input"
        assert elapsed < 6 * PER_INPUT_S, f"{elapsed:.1f} s for one input"
        for name, data in files.items():  # nothing the user had is touched
            with open(os.path.join(d, name), "rb") as fh:
                assert fh.read() == data, name
        if code == 2:
            assert err.startswith("lossdx: ") and len(err.strip().splitlines()) == 1, err
            return
        text = out
        if out_file:
            assert out == ""
            with open(out_file, encoding="utf-8") as fh:
                text = fh.read()
        if fmt == "json":
            VALIDATOR.validate(json.loads(text))
        else:
            assert text.strip()


# --- values --------------------------------------------------------------------------------------

NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-20, max_value=20).map(lambda x: f"{x:.4f}"),
    st.integers(-(2 ** 70), 2 ** 70).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "1e308", "-0", "0", "1E+00",
                     "5e-324", "9" * 400, "1" + "0" * 5000, "", "-", "1.2.3", "0x1F", "1_000"]),
)
SMALL_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def numbers_curve(draw, template: str, n_max: int = 30) -> bytes:
    """Lines of one dialect, mostly sane numbers with hostile ones mixed in, steps possibly out of order."""
    n = draw(st.integers(1, n_max))
    lines = []
    step = draw(st.integers(-5, 10))
    for _ in range(n):
        step += draw(st.sampled_from([1, 1, 1, 10, 0, -3, 1000]))
        vals = draw(st.lists(st.one_of(st.floats(0.01, 12).map(lambda x: f"{x:.4f}"), NUMBER_TEXT), min_size=4,
                             max_size=4))
        lines.append(template.format(step=step, a=vals[0], b=vals[1], c=vals[2], d=vals[3]))
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(SMALL_TEXT))
    return ("\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))).encode("utf-8", "surrogatepass")


TEXT_TEMPLATES = {
    "nanogpt": "iter {step}: loss {a}, time {b}ms, mfu {c}%",
    "nanogpt_eval": "step {step}: train loss {a}, val loss {b}",
    "buildnanogpt_logtxt": "{step} train {a}",
    "modded_nanogpt": "step:{step}/5100 train_loss:{a} train_time:{b}ms step_avg:{c}ms",
    "llmc": "s:{step} trl:{a} lr:{b} norm:{c}",
    "buildnanogpt": "step {step:5d} | loss: {a} | lr {b} | norm: {c} | dt: {d}ms | tok/sec: 1000",
    "megatron": " iteration {step}/ 1000 | learning rate: {b} | lm loss: {a} | loss scale: {c} | grad norm: {d} |",
    "fairseq": "| epoch 001:    {step} / 1891 loss={a}, nll_loss={b}, ppl={c}, num_updates={step}, lr={d}",
    "hf_console": "{{'loss': {a}, 'grad_norm': {c}, 'learning_rate': {b}, 'epoch': {d}}}",
    "keras": "Epoch {step}/10\n10/10 [==============================] - 1s - loss: {a} - val_loss: {b}",
    "generic": "step={step} loss={a} val_loss={b} lr={c}",
    "megatron_nan": " iteration {step}/ 1000 | lm loss: {a} | loss scale: {c} |\n iteration {step}/ 1000 | loss scale: {c} "
                    "| grad norm: {d} | number of skipped iterations: 0 |",
    "char_rnn": "{step}/597 (epoch 0.2), train_loss = {a}, grad/param norm = {b}, time/batch = {c}s\n"
                "evaluating loss over split index 2\nsaving checkpoint to cv/lm_lstm_epoch0.25_{d}.t7",
    "md_logbook": "# Log ({step})\nTime: May, {step} 2022 16:00\n## Loss\n- Begin: {b}\n- End: {a}\n"
                  "## Average Grad Norm\n- {c}\n## Progress\n- {d}%",
}


@st.composite
def mutated(draw, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        if op == "flip":
            buf[i] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[i:i + draw(st.integers(1, 32))]
        elif op == "truncate":
            del buf[i:]
        else:
            buf[i:i] = draw(st.sampled_from([b"nan", b"-1e999", b"\n", b"|", b",", b":", b"{", b"\"", b"\x00",
                                             b"\xff\xfe", b"9" * 5000, b"\r", b"\t"]))
    return bytes(buf)


# --- the readers -----------------------------------------------------------------------------------

@fuzz_settings(300)
@given(st.sampled_from(sorted(TEXT_TEMPLATES)).flatmap(lambda k: numbers_curve(TEXT_TEMPLATES[k]).flatmap(mutated)),
       st.sampled_from(["json", "json", "text", "md"]))
def test_text_dialects(data, fmt):
    check({"train.log": data}, "train.log", fmt)


@fuzz_settings(100)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data):
    check({"train.log": data}, "train.log")


CSV_COLUMNS = ["step", "epoch", "train_loss", "loss", "val_loss", "lr", "learning_rate", "grad_norm", "train/loss",
               "trainer/global_step", "a - train/loss", "a - train/loss__MIN", "weird col", ""]


@st.composite
def csv_file(draw) -> bytes:
    cols = draw(st.lists(st.sampled_from(CSV_COLUMNS), min_size=1, max_size=6))
    sep = draw(st.sampled_from([",", ",", "\t", ";"]))
    rows = [sep.join(cols)]
    for _ in range(draw(st.integers(0, 25))):
        cells = [draw(st.one_of(NUMBER_TEXT, st.just(""), SMALL_TEXT)) for _ in cols]
        if draw(st.booleans()):
            cells = [f'"{c}"' for c in cells]
        rows.append(sep.join(cells))
    return "\n".join(rows).encode("utf-8", "surrogatepass") + b"\n"


@fuzz_settings(150)
@given(csv_file().flatmap(mutated), st.sampled_from(["metrics.csv", "export.csv"]))
def test_csv(data, name):
    check({name: data}, name)


JSON_KEYS = ["step", "loss", "val_loss", "eval_loss", "lr", "learning_rate", "grad_norm", "epoch", "train/loss",
             "_step", "global_step", "iter", "x"]
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                         st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 12), SMALL_TEXT)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                                st.dictionaries(st.sampled_from(JSON_KEYS), kids,
                                                                                max_size=4)), max_leaves=12)


def _dumps(x) -> str:
    return json.dumps(x, allow_nan=True)  # NaN/Infinity, as Python writers emit them


@st.composite
def jsonl_file(draw) -> bytes:
    lines = []
    step = draw(st.integers(-3, 5))
    for _ in range(draw(st.integers(1, 40))):
        step += draw(st.sampled_from([1, 1, 0, -2, 100]))
        rec = {"step": step, "loss": draw(st.one_of(st.floats(0.01, 12), JSON_SCALARS))}
        rec.update(draw(st.dictionaries(st.sampled_from(JSON_KEYS), JSON_VALUES, max_size=3)))
        lines.append(_dumps(rec))
    return ("\n".join(lines) + "\n").encode()


@fuzz_settings(200)
@given(jsonl_file().flatmap(mutated))
def test_jsonl(data):
    check({"metrics.jsonl": data}, "metrics.jsonl")


@st.composite
def hf_state(draw) -> bytes:
    history = []
    for i in range(draw(st.integers(0, 30))):
        rec = draw(st.dictionaries(st.sampled_from(["loss", "eval_loss", "learning_rate", "grad_norm", "epoch",
                                                    "train_runtime", "total_flos", "x"]), JSON_VALUES, max_size=4))
        rec.setdefault("step", draw(st.one_of(st.just(i * 10), JSON_SCALARS)))
        if draw(st.booleans()):
            rec["loss"] = draw(st.floats(0.01, 12))
        history.append(rec)
    doc = {"global_step": draw(JSON_SCALARS), "log_history": history}
    doc.update(draw(st.dictionaries(st.sampled_from(["logging_steps", "max_steps", "best_metric", "epoch"]),
                                    JSON_VALUES, max_size=3)))
    return _dumps(doc).encode()


@fuzz_settings(150)
@given(hf_state().flatmap(mutated))
def test_hf_trainer_state(data):
    check({"trainer_state.json": data}, "trainer_state.json")


@st.composite
def event_file(draw) -> bytes:
    out = [record(file_version_event())] if draw(st.booleans()) else []
    tags = st.sampled_from(["train/loss", "loss", "val/loss", "eval/loss", "lr", "grad_norm", "train/loss/x", ""])
    for i in range(draw(st.integers(0, 40))):
        out.append(record(scalar_event(draw(tags), draw(st.one_of(st.floats(0.01, 12), st.floats(width=32))),
                                       draw(st.one_of(st.just(i), st.integers(-(2 ** 63), 2 ** 63 - 1))),
                                       draw(st.floats(0, 2e9)), tensor=draw(st.booleans()))))
    return b"".join(out)


@fuzz_settings(200)
@given(event_file().flatmap(mutated), st.booleans())
def test_tensorboard(data, as_directory):
    name = "events.out.tfevents.1700000000.host"
    # the directory form (lossdx finds the event file itself) or the file itself
    check({name: data}, "." if as_directory else name)


# --- the config readers, beside a readable log ---------------------------------------------------

LOG = "".join(f"iter {i}: loss {3 * 0.98 ** i + 1:.4f}, time 10.00ms, mfu 1.00%\n" for i in range(80)).encode()
CONFIG_NAMES = sorted({n for names in HPARAM_ALIASES.values() for n in names if "." not in n}) + ["fp16", "bf16", "x"]

PY_ATOMS = st.one_of(NUMBER_TEXT.filter(lambda s: s not in ("", "-", "1.2.3", "0x1F") and not s.startswith("1_")),
                     st.sampled_from(["True", "False", "None", "'cosine'", "'bfloat16'", "[1, 2]", "(0.9, 0.95)",
                                      "{'a': 1}", "{1, 2}", "b'x'", "1+2j", "...", "max_iters", "undefined_name",
                                      "open('x')", "__import__('os')", "'x' * 3", "lambda: 0"]))


@st.composite
def py_config(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        name = draw(st.sampled_from(CONFIG_NAMES))
        expr = draw(PY_ATOMS)
        for _ in range(draw(st.integers(0, 3))):
            expr = f"{expr} {draw(st.sampled_from(['+', '-', '*', '/', '//', '%', '**']))} {draw(PY_ATOMS)}"
        lines.append(f"{name}{draw(st.sampled_from([' = ', ': int = ', ' += ']))}{expr}")
    return ("\n".join(lines) + "\n").encode()


@st.composite
def json_config(draw) -> bytes:
    doc = draw(st.dictionaries(st.sampled_from(CONFIG_NAMES), JSON_VALUES, max_size=10))
    return _dumps(doc).encode()


YAML_SCALARS = st.one_of(NUMBER_TEXT, st.sampled_from(
    ["2001-12-14", "2001-12-14t21:59:43.10-05:00", "!!binary aGVsbG8=", "!!set {a, b}", "!!python/name:os.system ''",
     "!!python/object/apply:os.system ['true']", "!custom x", "0x1F", "0o17", "1_000", "1:20:30", ".inf", "-.inf",
     ".nan", "~", "null", "yes", "no", "on", "'quoted'", "[1, 2]", "{a: 1}", "&anchor 5", "*anchor", "|\n  block",
     "!!float 1e999", "!!int 12", "!!str 3", "2001-02-30", "!!timestamp 2001-12-14"]))


@st.composite
def yaml_config(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        indent = "  " * draw(st.integers(0, 2)) if lines else ""
        lines.append(f"{indent}{draw(st.sampled_from(CONFIG_NAMES))}: {draw(YAML_SCALARS)}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


CONFIGS = {"config.py": py_config(), "config.json": json_config(), "hparams.yaml": yaml_config()}


@fuzz_settings(400)
@given(st.sampled_from(sorted(CONFIGS)).flatmap(lambda n: st.tuples(st.just(n), CONFIGS[n].flatmap(mutated))),
       st.booleans(), st.booleans())
def test_configs(named, explicit, to_file):
    """Found beside the log, or passed with --config (where an unreadable one is exit 2)."""
    name, data = named
    extra = (("--config", "{d}/" + name) if explicit else ()) + (("-o", "{d}/report.json") if to_file else ())
    check({"train.log": LOG, name: data}, "train.log", "json", extra)
