import pickle

import pytest

from lossdx.config import canonical_hparams, read_config
from lossdx.exceptions import ConfigError


def test_python_config_is_parsed_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "config.py"
    cfg.write_text(f"""import os
max_iters = 5000
lr_decay_iters = max_iters
gradient_accumulation_steps = 5 * 8
learning_rate = 6e-4
block_size = 1024
batch_size = 12
x = open({str(marker)!r}, "w").write("x")
y = __import__("os").system("touch {marker}")
dtype = 'bfloat16' if True else 'float16'
""")
    h, raw, notes = read_config(str(cfg))
    assert not marker.exists()
    assert h["max_steps"] == 5000 and h["decay_steps"] == 5000 and h["grad_accum"] == 40
    assert h["lr"] == 6e-4 and h["seq_len"] == 1024 and h["batch_size"] == 12
    assert "x" not in raw and "y" not in raw
    assert any("skipped" in n for n in notes)


def test_huge_power_is_refused_not_computed(tmp_path):
    cfg = tmp_path / "config.py"
    cfg.write_text("n = 10 ** 10 ** 10\nlearning_rate = 1e-3\n")
    h, raw, _ = read_config(str(cfg))
    assert h["lr"] == 1e-3 and "n" not in raw


def test_yaml_with_python_tags_reads_the_safe_part(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "hparams.yaml"
    cfg.write_text(f"""lr: 0.001
batch_size: 32
optimizer: !!python/name:torch.optim.AdamW ''
args: !!python/object/apply:os.system ["touch {marker}"]
ns: !!python/object:argparse.Namespace
  weight_decay: 0.1
""")
    h, raw, notes = read_config(str(cfg))
    assert not marker.exists()
    assert h["lr"] == 0.001 and h["batch_size"] == 32 and h["weight_decay"] == 0.1
    assert any("python" in n for n in notes)


def test_pickle_is_refused(tmp_path):
    f = tmp_path / "training_args.bin"
    f.write_bytes(pickle.dumps({"learning_rate": 1e-3}))
    with pytest.raises(ConfigError, match="never unpickles"):
        read_config(str(f))


def test_hf_training_args_and_model_config_dir(tmp_path):
    (tmp_path / "training_args.json").write_text(
        '{"learning_rate": 5e-05, "warmup_ratio": 0.03, "lr_scheduler_type": "cosine", "max_steps": -1, '
        '"num_train_epochs": 3, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4, '
        '"weight_decay": 0.0, "adam_beta2": 0.999, "max_grad_norm": 1.0, "fp16": true, "bf16": false}')
    (tmp_path / "config.json").write_text(
        '{"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024}')
    h, _raw, _ = read_config(str(tmp_path))
    assert h["lr"] == 5e-05 and h["warmup_ratio"] == 0.03 and "max_steps" not in h
    assert h["dtype"] == "float16" and h["grad_clip"] == 1.0 and h["num_epochs"] == 3
    assert h["vocab_size"] == 50257 and h["n_layer"] == 12 and h["seq_len"] == 1024


def test_canonical_hparams_nested():
    h = canonical_hparams({"optimizer": {"lr": 3e-4, "weight_decay": 0.1}, "trainer": {"max_steps": 100},
                           "precision": "bf16-mixed"})
    assert h["lr"] == 3e-4 and h["weight_decay"] == 0.1 and h["max_steps"] == 100 and h["dtype"] == "bfloat16"


@pytest.mark.parametrize("content,match", [
    (b"", "empty"), (b"\x00\x01\x02binary", "binary"), (b"lr: [1, 2\n", "invalid YAML"),
    (b'{"lr": 1e-3', "invalid JSON"), (b"\xff\xfe bad", "not UTF-8"), (b"def f(:\n", "not valid Python"),
])
def test_bad_configs(tmp_path, content, match):
    name = "c.yaml" if b"lr:" in content else "c.py"
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        read_config(str(f))


def test_python_config_with_an_odd_literal_warns_nothing(tmp_path):
    # "1e999inal" makes the compiler warn (invalid decimal literal): a warning about the user's file is not ours
    import warnings

    cfg = tmp_path / "config.py"
    cfg.write_text("learning_rate = 6e-4\nx = 1e999inal_lr\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ConfigError, match="not valid Python"):
            read_config(str(cfg))
    assert not seen
