"""tcpsift.outputs: a result replaces its target whole or not at all, with the mode a
plain open() gives, and the process's umask is never changed to find it."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from tcpsift.outputs import StagedFile, replaced


def test_a_complete_write_replaces_the_target_with_a_plain_files_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with replaced(str(target), binary=False) as fh:
        fh.write("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "plain.txt"]


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with replaced(str(target)) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_the_umask_is_never_touched(tmp_path, monkeypatch):
    """Another thread creating files meanwhile must not see a zero umask: os.umask is
    never called."""
    def refuse(*_):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", refuse)
    staged = [StagedFile(str(tmp_path / f"f{i}")) for i in range(3)]
    worker = threading.Thread(target=lambda: [s.commit() for s in staged])
    worker.start()
    worker.join()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0", "f1", "f2"]
