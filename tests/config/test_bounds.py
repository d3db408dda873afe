import datetime
import json
import math

import pytest

from lossdx.config import read_config
from lossdx.config._bounds import MAX_DEPTH, MAX_STRING, MAX_VALUES, bounded_plain
from lossdx.exceptions import ConfigError


def test_plain_json_values_pass_unchanged():
    raw = {"lr": 6e-4, "n": 12, "name": "gpt2", "on": True, "off": None, "betas": [0.9, 0.95], "opt": {"wd": 0.1}}
    assert bounded_plain(raw, "c.json") == (raw, [])


def test_dates_bytes_sets_complex_and_huge_ints_become_json():
    raw = {"d": datetime.date(2001, 12, 14), "t": datetime.datetime(2001, 12, 14, 1, 2, 3), "b": b"hello",
           "s": {"b", "a"}, "c": 1 + 2j, "big": 10 ** 30, "huge": -(10 ** 400), 7: "int key"}
    out, notes = bounded_plain(raw, "c.yaml")
    assert out == {"d": "2001-12-14", "t": "2001-12-14T01:02:03", "b": "<5 bytes>", "s": ["a", "b"], "c": "(1+2j)",
                   "big": 1e30, "huge": -math.inf, "7": "int key"}
    json.dumps(out)  # the point: every value serialises
    assert len(notes) == 1 and "d, t, b, s, c, big, huge" in notes[0]


def test_long_strings_are_cut_with_a_note():
    out, notes = bounded_plain({"scheduler": "c" * (MAX_STRING + 5)}, "c.json")
    assert len(out["scheduler"]) == MAX_STRING and "scheduler" in notes[0]


def test_depth_values_and_self_reference_are_refused():
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH + 1):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ConfigError, match="nested more than"):
        bounded_plain(deep, "c.json")
    with pytest.raises(ConfigError, match=f"more than {MAX_VALUES} values"):
        bounded_plain({"x": list(range(MAX_VALUES + 1))}, "c.json")
    loop: dict = {}
    loop["b"] = loop
    with pytest.raises(ConfigError, match="contains itself"):
        bounded_plain({"a": loop}, "c.yaml")


def test_shared_alias_is_fine_when_small(tmp_path):
    # an alias used twice is ordinary YAML (defaults merged into two sections), not a bomb
    cfg = tmp_path / "hparams.yaml"
    cfg.write_text("base: &b {lr: 0.001, wd: 0.1}\ntrain: *b\nfinetune: *b\n")
    h, raw, notes = read_config(str(cfg))
    assert raw["train"] == raw["finetune"] == {"lr": 0.001, "wd": 0.1} and h["lr"] == 0.001 and not notes


def test_yaml_billion_laughs_is_refused_quickly(tmp_path):
    cfg = tmp_path / "hparams.yaml"
    cfg.write_text("l0: &l0 {" + ", ".join(f"k{j}: lol" for j in range(10)) + "}\n" + "".join(
        f"l{i}: &l{i} {{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(10)) + "}\n" for i in range(1, 10)))
    with pytest.raises(ConfigError, match="aliases count"):
        read_config(str(cfg))


def test_python_config_arithmetic_is_bounded(tmp_path):
    cfg = tmp_path / "config.py"
    cfg.write_text('s0 = "xxxxxxxx"\n' + "".join(f"s{i} = s{i - 1} + s{i - 1}\n" for i in range(1, 41)) +
                   "a0 = 999999 ** 64\n" + "".join(f"a{i} = a{i - 1} * a{i - 1}\n" for i in range(1, 40)) +
                   "learning_rate = 3e-4\n")
    h, raw, notes = read_config(str(cfg))
    assert h["lr"] == 3e-4
    assert "s10" in raw and "s11" not in raw and "a1" in raw and "a2" not in raw  # stopped at 10^4 chars / 4096 bits
    assert any("s11" in n and "a2" in n for n in notes)


def test_config_file_size_is_bounded(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"learning_rate": 1e-3, "pad": "' + "x" * (9 << 20) + '"}')
    with pytest.raises(ConfigError, match="larger than 8 MB"):
        read_config(str(cfg))


@pytest.mark.parametrize("name,text,match", [
    ("config.json", '{"a":' * 100000 + "1" + "}" * 100000, "JSON nested too deeply"),
    ("config.py", "learning_rate = " + "1+" * 200000 + "1\n", "Python expressions nested too deeply"),
    ("hparams.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", "YAML nested too deeply"),
    ("hparams.yaml", "a: 2001-02-30\n", "invalid YAML value"),
])
def test_parsers_fail_with_one_clear_error(tmp_path, name, text, match):
    cfg = tmp_path / name
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_config(str(cfg))


@pytest.mark.parametrize("name,text", [("config.json", '{"vocab_size": ' + "9" * 5000 + "}"),
                                       ("hparams.yaml", "vocab_size: " + "9" * 5000 + "\n")])
def test_integers_beyond_the_int_string_limit_are_read_as_infinity_and_ignored(tmp_path, name, text):
    cfg = tmp_path / name
    cfg.write_text(text)
    h, raw, notes = read_config(str(cfg))
    assert raw["vocab_size"] == math.inf and "vocab_size" not in h
    assert any("vocab_size = inf ignored" in n for n in notes)
