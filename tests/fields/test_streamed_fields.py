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
from tcpsift.fields.filter import compile_filter
from tcpsift.textstream import fields as streamed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.corpus import SAMPLE, capture_files  # noqa: E402

FILES = capture_files("captures/public", "captures/malformed", "lab")
NAMES = list(streamed.STREAMED)
TCP_NAMES = ["frame.number", *streamed.TCP_STREAMED, "ip.src", "tcp.len"]


def _both(path, names, display_filter=None):
    flt = compile_filter(display_filter) if display_filter else None
    try:
        cap = tcpsift.read(path)
    except CaptureError as e:
        with pytest.raises(CaptureError) as got:
            streamed.stream_fields([str(path)], names, io.BytesIO(), flt)
        assert str(got.value) == str(e)
        return None
    out = io.BytesIO()
    warnings, complete = streamed.stream_fields([str(path)], names, out, flt)
    assert warnings == cap.warnings, path
    assert complete == cap.complete, path
    return out.getvalue(), render(cap, names, flt(cap) if flt else None)


@pytest.mark.slow
@pytest.mark.parametrize("names,chunk", [(NAMES, streamed.CHUNK), (NAMES, 7),
                                         (TCP_NAMES, streamed.CHUNK), (TCP_NAMES, 11)],
                         ids=["header", "header-tiny-chunks", "tcp", "tcp-tiny-chunks"])
def test_streamed_fields_equal_the_table_path_on_every_capture(monkeypatch, names, chunk):
    """Small chunks mix streamed chunks with chunks printed the table way; with TCP
    fields, the analysis runs chunk by chunk and those chunks take its output."""
    monkeypatch.setattr(streamed, "CHUNK", chunk)
    for path in FILES:
        got = _both(path, names)
        if got is not None:
            assert got[0] == got[1], path


# fields that the Cython formatter prints since it prints every field (layer-aware, SACK
# lists, the interface); here taken through the tables of every chunk, the way a field
# or filter the formatter does not know goes
TABLE_NAMES = ["frame.number", "frame.interface_id", "vlan.id", "ip.src", "ip.proto",
               "tcp.options.sack_le", "tcp.options.sack_re", "icmp.type", "udp.srcport",
               "tcp.seq", "tcp.analysis.retransmission", "tcp.analysis.ack_rtt"]


@pytest.mark.slow
@pytest.mark.parametrize("names,display_filter,chunk", [
    (NAMES, "tcp", streamed.CHUNK),
    (TABLE_NAMES, None, 211),
    (TCP_NAMES, "tcp.analysis.retransmission or tcp.analysis.duplicate_ack", 307),
    (TABLE_NAMES, "not tcp.len == 0 and ip", streamed.CHUNK),
    (NAMES, "udp or icmp or vlan", 97),
], ids=["filter-tcp", "table-fields", "filter-tcp-analysis", "table-filter", "filter-udp"])
def test_chunked_fields_with_any_field_or_filter_equal_the_whole_table(
        monkeypatch, names, display_filter, chunk):
    """A filter or a field the formatter does not print takes every chunk through its
    tables (with its slice of the streamed TCP analysis): the same text as the whole
    capture's table."""
    monkeypatch.setattr(streamed, "CHUNK", chunk)
    if names is TABLE_NAMES:
        monkeypatch.setattr(streamed, "fast_path", lambda names, flt=None: (False, None))
    for path in FILES:
        got = _both(path, names, display_filter)
        if got is not None:
            assert got[0] == got[1], path


def test_streamed_fields_in_any_order_and_repeated():
    names = ["tcp.flags", "ip.src", "frame.time_epoch", "ip.src", "udp.length"]
    for path in FILES[:40]:
        got = _both(path, names)
        if got is not None:
            assert got[0] == got[1], path


def test_the_formatter_prints_every_listed_field():
    from tcpsift.fields import field_names

    assert streamed.can_format(field_names())
    assert streamed.can_format(["tcp.stream", "tcp.analysis.ack_rtt"])
    assert not streamed.can_format(["ip.src", "no.such.field"])
    # more fields than the formatter's program holds: the table path
    assert not streamed.can_format(["ip.src"] * 513)


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
    path = SAMPLE
    ours = subprocess.run([sys.executable, "-m", "tcpsift", "fields", str(path), *ef],
                          capture_output=True, check=True).stdout
    theirs = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", *ef],
                            capture_output=True, check=True).stdout
    assert ours == theirs
