"""How every command ends on an output problem, run as a user runs it (a subprocess): a
reader that went away ends it quietly (exit 0 or 141, as cat and tshark end); a write that
fails is one line on stderr and exit 2 with nothing half-written left; -o never writes
over an input file."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "sample.pcap"
TCPSIFT = [sys.executable, "-m", "tcpsift"]
COMMANDS = {
    "conns": ["conns", str(SAMPLE), "--format", "csv"],
    "conns-text": ["conns", str(SAMPLE)],
    "info": ["info", str(SAMPLE)],
    "fields": ["fields", str(SAMPLE), "-e", "frame.number", "-e", "ip.src"],
    "fields-filtered": ["fields", str(SAMPLE), "-e", "frame.number", "-Y", "tcp"],
}


def run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(TCPSIFT + [str(a) for a in args], capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.mark.parametrize("command", [c if c in ("conns", "fields") else
                                     pytest.param(c, marks=pytest.mark.slow) for c in COMMANDS])
def test_closed_pipe_ends_quietly(command):
    # the reader is gone before the command writes a byte: its first write meets EPIPE
    proc = subprocess.Popen(TCPSIFT + COMMANDS[command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 141), err.decode()
    assert err == b""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["conns", *(pytest.param(c, marks=pytest.mark.slow) for c in
                                                ("conns-text", "info", "fields", "fields-filtered"))])
def test_full_standard_output_is_one_line(command):
    with open("/dev/full", "w") as full:
        proc = subprocess.run(TCPSIFT + COMMANDS[command], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("tcpsift: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "No space left on device" in proc.stderr


def _closed(fds):
    """A preexec_fn: the child starts without these descriptors, as after `>&-`."""
    def close():
        for fd in fds:
            os.close(fd)
    return close


@pytest.mark.parametrize("command", ["conns", *(pytest.param(c, marks=pytest.mark.slow) for c in
                                                ("conns-text", "info", "fields", "fields-filtered"))])
def test_closed_standard_output_is_one_line(command):
    proc = subprocess.run(TCPSIFT + COMMANDS[command], stderr=subprocess.PIPE, text=True,
                          timeout=120, preexec_fn=_closed([1]))
    assert proc.returncode == 2
    # (Polars, which writes the CSV, adds "(os error 9)")
    assert proc.stderr.startswith("tcpsift: standard output: Bad file descriptor")
    assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.slow
def test_without_standard_streams_output_goes_only_to_its_file(tmp_path):
    """Started with 0, 1 and 2 closed, `-o FILE` is written whole and no file the command
    opens takes the place of standard output (the capture must stay as it was)."""
    capture = tmp_path / "sample.pcap"
    shutil.copy(SAMPLE, capture)
    before = capture.read_bytes()
    out = tmp_path / "conns.csv"
    proc = subprocess.run(TCPSIFT + ["conns", str(capture), "--format", "csv", "-o", str(out)],
                          timeout=120, preexec_fn=_closed([0, 1, 2]))
    assert proc.returncode == 0
    assert capture.read_bytes() == before
    expected = run(["conns", capture, "--format", "csv"])
    assert out.read_text() == expected.stdout


def test_output_into_a_missing_directory(tmp_path):
    proc = run(["conns", SAMPLE, "-o", tmp_path / "missing" / "x.csv", "--format", "csv"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"tcpsift: {tmp_path / 'missing' / 'x.csv'}: ")
    assert not (tmp_path / "missing").exists()


def test_output_where_nothing_can_be_created():
    # /proc takes no new files, even from root (which any permission bit lets through)
    proc = run(["conns", SAMPLE, "-o", "/proc/tcpsift-test.csv", "--format", "csv"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("tcpsift: /proc/tcpsift-test.csv: cannot write")


def _file_size_limit(limit: int):
    def apply():
        # past the limit a write fails with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("fmt", ["csv", *(pytest.param(f, marks=pytest.mark.slow)
                                         for f in ("json", "parquet", "text"))])
def test_failed_write_leaves_nothing_half_written(tmp_path, fmt):
    target = tmp_path / f"conns.{fmt}"
    proc = subprocess.run(TCPSIFT + ["conns", str(SAMPLE), "--format", fmt, "-o", str(target)],
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=_file_size_limit(1000))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"tcpsift: {target}: cannot write") and proc.stderr.count("\n") == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "conns.csv"
    target.write_text("previous\n")
    proc = subprocess.run(TCPSIFT + ["conns", str(SAMPLE), "--format", "csv", "-o", str(target)],
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=_file_size_limit(1000))
    assert proc.returncode == 2
    assert target.read_text() == "previous\n" and os.listdir(tmp_path) == ["conns.csv"]


def test_output_is_never_an_input_file(tmp_path):
    capture = tmp_path / "trace.pcap"
    shutil.copy(SAMPLE, capture)
    link = tmp_path / "link.pcap"
    link.symlink_to(capture)
    for target in (capture, link):
        proc = run(["conns", capture, "-o", target, "--format", "csv"])
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1
        assert "is the input file" in proc.stderr
    assert capture.read_bytes() == SAMPLE.read_bytes()
    # the other way round: the input named through the link
    proc = run(["conns", link, "-o", capture, "--format", "csv"])
    assert proc.returncode == 2 and capture.read_bytes() == SAMPLE.read_bytes()


@pytest.mark.slow
def test_written_file_has_the_usual_permissions(tmp_path):
    target = tmp_path / "conns.csv"
    proc = run(["conns", SAMPLE, "--format", "csv", "-o", target])
    assert proc.returncode == 0, proc.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert target.read_text().startswith("stream,uid,client,")
