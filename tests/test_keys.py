import pytest

from lossdx.keys import canonical, is_loss_key, pick_step_name


@pytest.mark.parametrize("raw,expected", [
    ("loss", "train/loss"), ("train_loss", "train/loss"), ("lm loss", "train/loss"), ("trl", "train/loss"),
    ("Loss/train", "train/loss"), ("train_loss_step", "train/loss"), ("Train loss", "train/loss"),
    ("eval_loss", "val/loss"), ("val_loss", "val/loss"), ("tel", "val/loss"), ("valid_loss", "val/loss"),
    ("grad_norm", "train/grad_norm"), ("gnorm", "train/grad_norm"), ("grad norm", "train/grad_norm"),
    ("lr-AdamW", "train/lr"), ("learning_rate", "train/lr"), ("learning rate", "train/lr"),
    ("loss scale", "train/loss_scale"), ("tok/sec", "perf/tokens_per_sec"), ("dt", "perf/step_time"),
    ("eval_g0_loss", "val/g0_loss"), ("eval_rouge1", "val/rouge1"), ("train_loss_epoch", "train/loss_epoch"),
])
def test_aliases(raw, expected):
    assert canonical(raw) == expected


def test_unknown_names_are_kept_normalised():
    assert canonical("My Metric") == "my_metric"


def test_step_column_priority():
    assert pick_step_name(["_step", "step", "loss"]) == "step"
    assert pick_step_name(["Step", "a - loss"]) == "Step"
    assert pick_step_name(["loss"]) is None


def test_loss_keys():
    assert is_loss_key("val/g0_loss") and is_loss_key("train/loss") and not is_loss_key("train/lr")
