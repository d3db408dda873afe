import pytest

from lossdx.config import canonical_hparams


@pytest.mark.parametrize("raw,key", [
    ({"vocab_size": -1}, "vocab_size"), ({"vocab_size": 0}, "vocab_size"), ({"n_layer": 1e300}, "n_layer"),
    ({"batch_size": 2 ** 60}, "batch_size"), ({"learning_rate": -1e-3}, "lr"), ({"beta2": 1.5}, "beta2"),
    ({"dropout": -0.1}, "dropout"), ({"warmup_iters": -5}, "warmup_steps"),
])
def test_out_of_range_numbers_are_ignored_with_a_note(raw, key):
    notes: list[str] = []
    assert key not in canonical_hparams(raw, notes)
    assert len(notes) == 1 and "ignored" in notes[0] and key in notes[0]


def test_non_finite_and_huge_numbers_are_ignored_with_a_note():
    notes: list[str] = []
    h = canonical_hparams({"learning_rate": float("nan"), "vocab_size": 10 ** 5000, "batch_size": float("inf")}, notes)
    assert h == {} and len(notes) == 3 and all("must be a finite number" in n for n in notes)
    assert any("vocab_size = <integer of 16610 bits>" in n for n in notes)


def test_valid_edges_are_kept_and_hf_minus_one_stays_silent():
    notes: list[str] = []
    h = canonical_hparams({"warmup_steps": 0, "beta2": 1.0, "weight_decay": 0.0, "max_steps": -1, "num_train_epochs": 3,
                           "vocab_size": 2 ** 53}, notes)
    assert h == {"warmup_steps": 0, "beta2": 1.0, "weight_decay": 0.0, "num_epochs": 3, "vocab_size": 2 ** 53}
    assert notes == []


def test_an_invalid_alias_falls_through_to_the_next_name():
    assert canonical_hparams({"vocab_size": -1, "padded_vocab_size": 50304})["vocab_size"] == 50304


def test_pytorch_word_language_model_args_are_understood():
    """examples/word_language_model's argparse names: the model kind, depth, width and BPTT length."""
    h = canonical_hparams({"model": "LSTM", "emsize": 32, "nhid": 128, "nlayers": 2, "bptt": 35, "lr": 20.0,
                           "optimizer": "sgd"})
    assert h["model_type"] == "LSTM" and h["n_layer"] == 2 and h["n_embd"] == 128 and h["seq_len"] == 35
    assert canonical_hparams({"model": {"n_layer": 2}}) == {"n_layer": 2}  # a nested model section is no model type
