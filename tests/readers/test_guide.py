"""The format guide (``lossdx formats``) against the parsers: every format has an entry and every example reads."""

import pytest

from lossdx.readers import FORMAT_NAMES, read
from lossdx.readers.guide import GUIDE, guide_lines

_BY_NAME = {g.name: g for g in GUIDE}


def test_every_reader_and_dialect_has_an_entry():
    missing = set(FORMAT_NAMES) - set(_BY_NAME) - {"text"}  # "text" is the family of the dialects below
    assert not missing


@pytest.mark.parametrize("entry", [g for g in GUIDE if g.name not in ("tensorboard", "md_logbook")], ids=lambda g: g.name)
def test_the_example_is_read_as_its_format(tmp_path, entry):
    f = tmp_path / ("log.json" if entry.name == "hf_trainer_state" else "log.txt")
    f.write_text(entry.example + "\n")
    run = read(str(f))
    assert run.source["format"] == entry.name
    assert any("loss" in k for k in run.series)


def test_lines_fit_the_width():
    for width in (60, 80, 120):
        assert all(len(line) <= width for line in guide_lines(width))
