"""Files merged by time are all open at once: past the open-file limit (`ulimit -n`) the
merge is refused in one line before any file is opened (issue 17: 1,000 files with 256
open files allowed ended in a Rust panic in `conns`, and `fields` merged 251 of them
and exited 1; mergecap refuses). Files read one after the other are not limited.
Each command runs in a subprocess under RLIMIT_NOFILE (tests/support/bounded.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support import capwriter as cw
from support.bounded import run_bounded, tcpsift_args

T0 = 1_700_000_000_000_000_000
LIMIT = 128


def _interleaved(tmp_path: Path, n: int) -> list[str]:
    """`n` files of two frames each, every file's second frame after every file's first:
    no order of the files streams them, they must be merged."""
    paths = []
    for i in range(n):
        records = [cw.Record(T0 + (i + j * n) * 1000, cw.ether(cw.ipv4(cw.tcp(b"x", sport=1000 + i))))
                   for j in range(2)]
        path = tmp_path / f"f{i:04d}.pcap"
        path.write_bytes(cw.pcap_file(records))
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return _interleaved(tmp_path_factory.mktemp("many"), 2 * LIMIT)


def _one_line_refusal(got, n):
    lines = [ln for ln in got.err.splitlines() if "read as one capture" not in ln]
    assert got.code == 2, got.describe()
    assert len(lines) == 1, got.describe()
    assert lines[0].startswith(f"tcpsift: {n:,} files: merged by time they are all open at once, "
                               f"and {LIMIT} open files are allowed (ulimit -n)"), lines
    assert "Traceback" not in got.err and "panic" not in got.err


@pytest.mark.parametrize("command", [["conns"], ["fields", "-e", "frame.number"]])
def test_merging_more_files_than_may_be_open_is_one_line(many, command):
    got = run_bounded(tcpsift_args(*command, *many), seconds=60, memory_mb=1500,
                      open_files=LIMIT)
    _one_line_refusal(got, len(many))
    assert got.out == ""


@pytest.mark.slow
def test_read_refuses_with_a_capture_error(many, tmp_path):
    script = tmp_path / "read.py"
    script.write_text(
        "import sys, tcpsift\n"
        "try:\n"
        "    tcpsift.read(sys.argv[1:])\n"
        "except tcpsift.CaptureError as e:\n"
        "    print(e)\n")
    got = run_bounded([sys.executable, str(script), *many], seconds=60, memory_mb=1500,
                      open_files=LIMIT)
    assert got.code == 0 and got.err == "", got.describe()
    assert got.out.startswith(f"{len(many):,} files: merged by time"), got.out


@pytest.mark.slow
def test_one_after_the_other_and_within_the_limit_are_read(many):
    got = run_bounded(tcpsift_args("fields", "--mode", "concat", "-e", "frame.number", *many),
                      seconds=60, memory_mb=1500, open_files=LIMIT)
    assert got.code == 0, got.describe()
    assert got.out.split() == [str(i) for i in range(1, 2 * len(many) + 1)]
    fits = many[:LIMIT // 2]
    got = run_bounded(tcpsift_args("fields", "-e", "tcp.srcport", *fits), seconds=60,
                      memory_mb=1500, open_files=LIMIT)
    assert got.code == 0, got.describe()
    assert got.out.split() == [str(1000 + i) for i in range(len(fits))] * 2
