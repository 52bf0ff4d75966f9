"""kiln.base.atomic.write_atomic: whole files only, with the mode an ordinary write would give."""

import os

import pytest

from kiln.base import atomic
from kiln.base.atomic import current_umask, write_atomic


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("proc", [True, False], ids=["proc", "set-and-restore"])
def test_new_files_follow_the_umask(tmp_path, umask, monkeypatch, proc):
    if not proc:
        monkeypatch.setattr(atomic, "_PROC_STATUS", str(tmp_path / "missing"))
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        umask(mask)
        assert current_umask() == mask
        path = tmp_path / f"f{mask:o}"
        write_atomic(path, b"x")
        assert path.stat().st_mode & 0o777 == mode
    assert current_umask() == 0o002  # reading it left it as it was


def test_a_replaced_file_keeps_its_mode_and_a_failed_write_keeps_the_file(tmp_path, umask):
    path = tmp_path / "f"
    write_atomic(path, b"old")
    path.chmod(0o640)
    write_atomic(path, iter([b"n", b"ew"]))
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o640

    def chunks():
        yield b"half"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, chunks(), durable=True)
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f"]  # no temporary file left behind
