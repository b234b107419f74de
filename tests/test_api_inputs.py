"""What tcpsift.read and tcpsift.scan take as paths and columns (issue 17): str, bytes
and os.PathLike paths alike; a file object or a bare string for `columns` is a TypeError
that says what to pass, never a silent misreading (lines taken as paths, 'src' taken as
the columns s, r, c)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import tcpsift

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.pcap"


class _PathLike:
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path


@pytest.fixture(scope="module")
def expected():
    return tcpsift.read(str(SAMPLE), columns=["frame", "src"]).packets.select("frame", "src")


@pytest.mark.parametrize("path", [
    os.fsencode(SAMPLE), SAMPLE, _PathLike(str(SAMPLE)), _PathLike(os.fsencode(SAMPLE)),
    [os.fsencode(SAMPLE)], (SAMPLE,),
], ids=["bytes", "Path", "PathLike-str", "PathLike-bytes", "list-of-bytes", "tuple-of-Path"])
def test_paths_of_every_kind_read_alike(path, expected):
    cap = tcpsift.read(path, columns=["frame", "src"])
    assert cap.packets.select("frame", "src").equals(expected)
    assert cap.info.files[0]["path"] == str(SAMPLE)


def test_scan_takes_bytes_paths(expected):
    got = tcpsift.scan(os.fsencode(SAMPLE)).select("frame", "src").collect()
    assert got.equals(expected)


def test_a_file_object_is_refused_with_its_name():
    with open(SAMPLE, "rb") as f:
        with pytest.raises(TypeError, match=r"not from a file object: pass its path .*sample\.pcap"):
            tcpsift.read(f)
        with pytest.raises(TypeError, match="not from a file object"):
            tcpsift.read([f])
        with pytest.raises(TypeError, match="not from a file object"):
            tcpsift.scan(f)


@pytest.mark.parametrize("bad, what", [(3, "int"), ([SAMPLE, 3.5], "float"), (None, "NoneType")])
def test_other_objects_are_refused(bad, what):
    with pytest.raises(TypeError, match=f"a path .str, bytes or os.PathLike. .*not {what}"):
        tcpsift.read(bad)


def test_no_path_is_a_value_error():
    with pytest.raises(ValueError, match="no capture file given"):
        tcpsift.read([])


@pytest.mark.parametrize("columns", ["src", b"src"])
def test_columns_as_a_bare_string_is_refused(columns):
    with pytest.raises(TypeError, match=r"list of column names, not a string: columns=\["):
        tcpsift.read(SAMPLE, columns=columns)


def test_columns_as_a_list_or_set(expected):
    assert tcpsift.read(SAMPLE, columns={"src"}).packets.select("frame", "src").equals(expected)
    with pytest.raises(ValueError, match="no such packet columns: nope"):
        tcpsift.read(SAMPLE, columns=["nope"])
