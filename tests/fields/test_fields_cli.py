"""`tcpsift fields` command: output, filter, errors and exit codes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpsift.cli.main import cli

CORPUS = Path(os.environ.get("TCPSIFT_CORPUS")
              or Path(__file__).resolve().parents[2].parent / "shared/captures/public")
HTTP = CORPUS / "pcap/le-usec-ethernet-http-fin.pcap"
needs_corpus = pytest.mark.skipif(not HTTP.exists(), reason=f"corpus not found at {CORPUS}")


def run(*args):
    return CliRunner().invoke(cli, ["fields", *map(str, args)])


@needs_corpus
def test_first_lines_like_tshark():
    r = run(HTTP, "-e", "frame.number", "-e", "frame.time_epoch", "-e", "ip.id", "-e",
            "tcp.flags", "-e", "tcp.options.sack_perm", "-Y", "frame.number <= 2")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "1\t1258133614.430569000\t0x5485\t0x0002\t0402"
    assert len(r.output.splitlines()) == 2


@needs_corpus
def test_filter_no_match_prints_nothing():
    r = run(HTTP, "-e", "frame.number", "-Y", "udp")
    assert (r.exit_code, r.output) == (0, "")


def test_list():
    r = run("--list")
    assert r.exit_code == 0 and "tcp.seq_raw" in r.output.split()
    assert {"eth.src", "eth.dst", "eth.type", "frame.time_relative", "frame.time_delta",
            "frame.time_delta_displayed", "tcp.flags.str"} <= set(r.output.split())


@pytest.mark.parametrize("args,msg", [
    (["-e", "frame.number"], "no capture file"),
    (["x.pcap"], "no field"),
    (["x.pcap", "-e", "no.such"], "no.such: unknown field"),
    (["x.pcap", "-e", "ip.src", "-Y", "tcp.analysis.retransmission == 1"],
     "can only be tested for presence"),
    (["x.pcap", "-e", "ip.src", "-Y", "ip.src >"], "display filter"),
    (["x.pcap", "-e", "ip.src", "-Y", "http"], "unsupported field or protocol"),
])
def test_usage_errors_exit_2(args, msg):
    r = run(*args)
    assert r.exit_code == 2
    assert r.output.startswith("tcpsift: ") and msg in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_not_a_capture_exit_2(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture file at all")
    r = run(bad, "-e", "frame.number")
    assert r.exit_code == 2
    assert r.output.strip().startswith(f"tcpsift: {bad}")


@needs_corpus
def test_truncated_file_prints_what_it_read_and_exits_1(tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(HTTP.read_bytes()[:-30])     # the last record loses its end
    r = CliRunner().invoke(cli, ["fields", str(cut), "-e", "frame.number"])
    assert r.exit_code == 1
    assert r.stdout.splitlines()[:2] == ["1", "2"]
    # the other commands' prefix for a file read only up to a fault
    assert r.stderr.startswith(f"tcpsift: warning: {cut}: "), r.stderr
    assert len(r.stderr.splitlines()) == 1
