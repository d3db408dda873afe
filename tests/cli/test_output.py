import errno
import os
import stat
import tempfile

import pytest

from lossdx.cli._output import write_report
from lossdx.exceptions import OutputError


def test_stdout_when_no_file_is_given(capsys):
    write_report("report\n", None)
    write_report("again\n", "-")
    assert capsys.readouterr().out == "report\nagain\n"


def test_new_file_gets_the_umask_mode_and_an_existing_one_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        write_report("one", str(tmp_path / "new.txt"))
    finally:
        os.umask(old)
    assert (tmp_path / "new.txt").read_text() == "one"
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o640
    (tmp_path / "kept.txt").write_text("old")
    os.chmod(tmp_path / "kept.txt", 0o604)
    write_report("two", str(tmp_path / "kept.txt"))
    assert (tmp_path / "kept.txt").read_text() == "two"
    assert stat.S_IMODE(os.stat(tmp_path / "kept.txt").st_mode) == 0o604


def test_a_symlinked_target_keeps_its_link_and_its_file_gets_the_report(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "latest.json").write_text("old")
    (tmp_path / "latest.json").symlink_to(tmp_path / "reports" / "latest.json")
    write_report("new", str(tmp_path / "latest.json"))
    assert os.path.islink(tmp_path / "latest.json") and (tmp_path / "reports" / "latest.json").read_text() == "new"


def test_inputs_are_compared_by_identity(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("log")
    os.link(log, tmp_path / "same.log")
    for target in (str(log), str(tmp_path / "same.log"), str(tmp_path / "." / "train.log")):
        with pytest.raises(OutputError, match="refusing to write the report over the input"):
            write_report("x", target, inputs=[str(log)])
    assert log.read_text() == "log"
    write_report("x", str(tmp_path / "other.log"), inputs=[str(log), "", str(tmp_path / "missing")])


def test_a_directory_target_is_a_clear_error(tmp_path):
    with pytest.raises(OutputError, match="it is a directory"):
        write_report("x", str(tmp_path))


def test_permission_denied_while_creating_the_temp_file(tmp_path, monkeypatch):
    def denied(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputError, match=r"cannot write the report to .*r\.json: permission denied$"):
        write_report("x", str(tmp_path / "r.json"))
    assert not os.listdir(tmp_path)



def test_a_nul_in_the_name_is_a_clear_error():
    with pytest.raises(OutputError, match="NUL"):
        write_report("x", "report\0.json")
