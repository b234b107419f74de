"""Every field of `tcpsift fields --list` is printed by the compiled formatter, and the
common -Y comparisons on them are evaluated on the decoder's arrays: no chunk needs the
tables (nor Polars) unless its frames repeat a header. What they print is held equal to
the table path here and to tshark in tests/conformance/test_fast_path_vs_tshark.py."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import tcpsift
from tcpsift.fields import field_names, render
from tcpsift.fields.filter import compile_filter
from tcpsift.textstream import fields as streamed
from tcpsift.textstream.select import ArrayFilter, array_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.corpus import SAMPLE, capture_files  # noqa: E402

# the filter terms the arrays evaluate since every field is printed by the formatter
NEW_FILTERS = [
    "ip.len > 100", "ip.flags.df == 1", "ip.flags.mf == 1 or ip.frag_offset > 0",
    "ipv6.plen > 0 and ipv6.nxt == 6", "tcp.options.sack_perm", "tcp.options.sack_le",
    "ieee8021ad", "ieee8021ad.id == 5", "frame.interface_id == 0",
    "tcp.seq > 1000", "tcp.ack == 1", "tcp.nxtseq < 100", "tcp.window_size > 60000",
    "tcp.time_relative > 1", "tcp.time_delta < 0.0001", "tcp.analysis.ack_rtt > 0.01",
    "tcp.analysis.initial_rtt < 0.05", "tcp.analysis.bytes_in_flight > 1000",
    "tcp.analysis.push_bytes_sent >= 100", "tcp.analysis.duplicate_ack_num >= 2",
    "tcp.analysis.duplicate_ack_frame", "tcp.analysis.acks_frame > 3 and tcp.ack != 1",
    "frame.time_relative > 0.5", "frame.time_delta < 0.0001 or frame.number < 3",
]
LAB = capture_files("lab/captures")


def test_every_listed_field_and_the_common_filters_take_the_fast_path():
    names = field_names()
    assert streamed.fast_path(names) == (True, None)
    for text in NEW_FILTERS:
        fast, select = streamed.fast_path(names, text)
        assert fast and isinstance(select, ArrayFilter), text


def test_every_listed_field_prints_without_polars():
    """The command with every field and a filter of TCP analysis and IP flag terms."""
    code = ("import sys\n"
            "from tcpsift.cli.main import run\n"
            "names = [a for n in sys.argv[2:] for a in ('-e', n)]\n"
            "code = run(['fields', sys.argv[1], *names,\n"
            "            '-Y', 'tcp.analysis.ack_rtt > 0.001 or ip.flags.df == 1'])\n"
            "assert code == 0, code\n"
            "print('polars' in sys.modules, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code, str(SAMPLE), *field_names()],
                         capture_output=True, check=True)
    assert res.stdout and res.stderr.split()[-1:] == [b"False"], res.stderr[-2000:]


def test_the_fast_path_prints_every_field_as_the_table_path(monkeypatch):
    """On the sample (no repeated headers) in chunks of 50: no chunk goes the table way."""
    def no_tables(*args, **kwargs):
        raise AssertionError("a chunk went the table way")

    names = field_names()
    cap = tcpsift.read(SAMPLE)
    monkeypatch.setattr(streamed, "_write_through_table", no_tables)
    monkeypatch.setattr(streamed, "CHUNK", 50)
    for text in [None, "tcp", *NEW_FILTERS]:
        if text == "frame.interface_id == 0":
            continue        # (the table path's filter differs from tshark's on pcap files)
        out = io.BytesIO()
        streamed.stream_fields([str(SAMPLE)], names, out, array_filter(text) if text else None)
        mask = compile_filter(text)(cap) if text else None
        assert out.getvalue() == render(cap, names, mask), text


@pytest.mark.slow
def test_the_fast_path_prints_every_field_as_the_table_path_on_the_lab_captures(monkeypatch):
    """The lab's captures have no repeated headers: every chunk is printed the fast way."""
    def no_tables(*args, **kwargs):
        raise AssertionError("a chunk went the table way")

    names = field_names()
    monkeypatch.setattr(streamed, "_write_through_table", no_tables)
    monkeypatch.setattr(streamed, "CHUNK", 997)
    for path in LAB:
        cap = tcpsift.read(path)
        out = io.BytesIO()
        streamed.stream_fields([str(path)], names, out)
        assert out.getvalue() == render(cap, names), path


def test_more_fields_than_the_program_holds_take_the_table_path():
    names = ["frame.number", "ip.src"] * 300
    assert streamed.fast_path(names) == (False, None)
    out = io.BytesIO()
    streamed.stream_fields([str(SAMPLE)], names, out)
    assert out.getvalue() == render(tcpsift.read(SAMPLE), names)
