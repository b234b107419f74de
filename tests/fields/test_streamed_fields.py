"""The streamed `tcpsift fields` (header fields of one file, no filter) prints what the
table path prints, which the conformance suite holds equal to tshark; and directly what
tshark prints for the benchmarks' field set."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import tcpsift
from tcpsift.errors import CaptureError
from tcpsift.fields import render
from tcpsift.textstream import fields as streamed

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
FILES = sorted(p for d in ("captures/public", "captures/malformed", "lab")
               if (SHARED / d).exists() for p in (SHARED / d).rglob("*") if p.is_file()
               and p.suffix not in (".md", ".tsv", ".json", ".txt", ".py", ".sh"))
FILES = FILES or [ROOT / "samples" / "sample.pcap"]
NAMES = list(streamed.STREAMED)
TCP_NAMES = ["frame.number", *streamed.TCP_STREAMED, "ip.src", "tcp.len"]


def _both(path, names):
    try:
        cap = tcpsift.read(path)
    except CaptureError as e:
        with pytest.raises(CaptureError) as got:
            streamed.stream_fields(str(path), names, io.BytesIO())
        assert str(got.value) == str(e)
        return None
    out = io.BytesIO()
    warnings, complete = streamed.stream_fields(str(path), names, out)
    assert warnings == cap.warnings, path
    assert complete == cap.complete, path
    return out.getvalue(), render(cap, names)


@pytest.mark.parametrize("chunk", [streamed.CHUNK, 7])
def test_streamed_fields_equal_the_table_path_on_every_capture(monkeypatch, chunk):
    """Small chunks mix streamed chunks with chunks printed the table way."""
    monkeypatch.setattr(streamed, "CHUNK", chunk)
    for path in FILES:
        got = _both(path, NAMES)
        if got is not None:
            assert got[0] == got[1], path


@pytest.mark.parametrize("chunk", [streamed.CHUNK, 11])
def test_streamed_tcp_fields_equal_the_table_path_on_every_capture(monkeypatch, chunk):
    """The analysis runs chunk by chunk; chunks printed the table way take its output."""
    monkeypatch.setattr(streamed, "CHUNK", chunk)
    for path in FILES:
        got = _both(path, TCP_NAMES)
        if got is not None:
            assert got[0] == got[1], path


def test_streamed_fields_in_any_order_and_repeated():
    names = ["tcp.flags", "ip.src", "frame.time_epoch", "ip.src", "udp.length"]
    for path in FILES[:40]:
        got = _both(path, names)
        if got is not None:
            assert got[0] == got[1], path


def test_only_plain_fields_of_one_file_without_filter_are_streamed():
    assert streamed.can_stream(["ip.src", "tcp.len"], ["a.pcap"], False)
    assert not streamed.can_stream(["ip.src"], ["a.pcap"], True)
    assert not streamed.can_stream(["ip.src"], ["a.pcap", "b.pcap"], False)
    assert streamed.can_stream(["tcp.stream", "tcp.analysis.ack_rtt"], ["a.pcap"], False)
    assert not streamed.can_stream(["tcp.options.sack_le"], ["a.pcap"], False)
    assert not streamed.can_stream(["vlan.id"], ["a.pcap"], False)


@pytest.mark.skipif(subprocess.run(["which", "tshark"], capture_output=True).returncode,
                    reason="tshark not installed")
def test_streamed_cli_prints_what_tshark_prints():
    names = ["frame.number", "frame.time_epoch", "frame.len", "ip.src", "ip.dst",
             "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
             "tcp.len", "tcp.window_size_value", "ipv6.src", "udp.length", "tcp.stream",
             "tcp.seq", "tcp.ack", "tcp.nxtseq", "tcp.window_size", "tcp.time_relative",
             "tcp.analysis.retransmission", "tcp.analysis.duplicate_ack",
             "tcp.analysis.acks_frame", "tcp.analysis.ack_rtt", "tcp.analysis.initial_rtt",
             "tcp.analysis.bytes_in_flight"]
    ef = [a for n in names for a in ("-e", n)]
    path = ROOT / "samples" / "sample.pcap"
    ours = subprocess.run([sys.executable, "-m", "tcpsift", "fields", str(path), *ef],
                          capture_output=True, check=True).stdout
    theirs = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", *ef],
                            capture_output=True, check=True).stdout
    assert ours == theirs
