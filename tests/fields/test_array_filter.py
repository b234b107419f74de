"""`-Y` filters evaluated on the decoder's arrays (textstream/select.py) select the frames
the table path selects (tcpsift.fields.filter, which the conformance suite holds equal to
tshark: tests/conformance/test_filter_vs_tshark.py runs these filters through the array
path against tshark too); the array path is taken for them, and the other filters still
take the table path."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

import tcpsift
from tcpsift.errors import CaptureError
from tcpsift.fields import FIELDS, render
from tcpsift.fields.filter import compile_filter
from tcpsift.textstream import fields as streamed
from tcpsift.textstream.select import TERMS, ArrayFilter, array_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.array_filters import CORE, FILTERS, literals  # noqa: E402
from support.corpus import SAMPLE, capture_files  # noqa: E402

FILES = capture_files("captures/public", "lab")
# frame.time_delta_displayed measures from the previous frame printed: chunk to chunk too
NAMES = ["frame.number", "frame.time_delta_displayed", "ip.src", "ipv6.dst", "tcp.srcport",
         "tcp.stream", "tcp.analysis.ack_rtt", "udp.length"]
def test_every_filter_here_is_evaluated_on_arrays():
    for text in FILTERS:
        assert array_filter(text.format(v4="10.0.0.1", v6="::1", mac="00:00:5e:00:53:01",
                                        port=80)) is not None, text


def test_an_array_term_has_the_value_type_of_its_field():
    """The two registries agree on what a literal is (both parse with display_filter)."""
    wrong = {n: (t.vtype, FIELDS[n].vtype) for n, t in TERMS.items()
             if t.vtype != FIELDS[n].vtype}
    assert not wrong


@pytest.mark.parametrize("text", ["tcp.window_size_scalefactor == 128",
                                  "tcp and tcp.window_size_scalefactor == -1"])
def test_other_filters_take_the_table_path(text):
    assert array_filter(text) is None
    assert streamed.fast_path(["frame.number", "ip.src"], text) == (False, None)
    out = io.BytesIO()
    streamed.stream_fields([str(SAMPLE)], ["frame.number", "ip.src"], out, compile_filter(text))
    cap = tcpsift.read(SAMPLE)
    assert out.getvalue() == render(cap, ["frame.number", "ip.src"], compile_filter(text)(cap))


def test_fields_the_formatter_does_not_print_take_the_table_path():
    # (it prints every listed field, up to its program's size)
    assert streamed.fast_path(["frame.number"] * 513, "tcp") == (False, None)
    fast, select = streamed.fast_path(["frame.number"], "tcp")
    assert fast and isinstance(select, ArrayFilter)


def test_array_filters_build_no_table(monkeypatch):
    """The sample has no repeated headers: with an array filter, no chunk goes the table
    way (its builder is not called), and the text is the table path's."""
    def no_tables(*args, **kwargs):
        raise AssertionError("a chunk went the table way")

    cap = tcpsift.read(SAMPLE)
    lit = literals(cap)
    monkeypatch.setattr(streamed, "_write_through_table", no_tables)
    monkeypatch.setattr(streamed, "CHUNK", 50)
    for text in FILTERS:
        text = text.format(**lit)
        out = io.BytesIO()
        streamed.stream_fields([str(SAMPLE)], NAMES, out, array_filter(text))
        assert out.getvalue() == render(cap, NAMES, compile_filter(text)(cap)), text


def _compare(path, filters):
    try:
        cap = tcpsift.read(path)
    except CaptureError:
        return
    lit = literals(cap)
    wrong = []
    for text in filters:
        text = text.format(**lit)
        out = io.BytesIO()
        streamed.stream_fields([str(path)], NAMES, out, array_filter(text))
        if out.getvalue() != render(cap, NAMES, compile_filter(text)(cap)):
            wrong.append(text)
    assert not wrong, f"{path}: {wrong}"


# captures with many kinds of traffic: tunnels, VLAN stacks, ICMP errors, IPv6, DNS,
# TCP verdicts of every kind, pcapng
VARIED = [*capture_files("lab/captures"), *(p for p in FILES if p.name in (
    "le-usec-ethernet-http-fin.pcap", "icmp-traceroute.pcapng", "vxlan-http.pcap",
    "6in4-tcp.pcap", "ethernet-triple-vlan-http.pcap", "ssh-dups-fast-retransmissions.pcap",
    "mixed-126-streams.pcap", "zero-window-recovery.pcapng", "udp-dns.pcap",
    "fast-retransmit-sack.pcap", "keep-alive-one-stream.pcap"))]


@pytest.mark.slow
def test_array_filters_select_what_the_table_path_selects(monkeypatch):
    """Every kind of term on the captures with the most kinds of traffic, in chunks of
    97 frames: chunks printed the fast way mix with chunks that have repeated headers,
    printed (and filtered) the table way."""
    monkeypatch.setattr(streamed, "CHUNK", 97)
    for path in VARIED:
        _compare(path, FILTERS)


@pytest.mark.slow
def test_array_filters_of_each_kind_select_what_the_table_path_selects_everywhere(
        monkeypatch):
    """One filter of each kind on every public and lab capture."""
    monkeypatch.setattr(streamed, "CHUNK", 97)
    for path in FILES:
        _compare(path, CORE)


LAB = capture_files("lab/captures")


def test_each_file_of_a_separate_run_resolves_addresses_in_its_own_table():
    """--mode separate prints each file as a capture of its own, with its own address
    ids: an address literal must be found again in each."""
    from click.testing import CliRunner

    from tcpsift.cli.main import cli

    # the second file's address has another id in the first, which is another
    # address's id in the second
    files = [p for name in ("slow-synack.pcap", "seed-like.pcap") for p in LAB
             if p.name == name]
    if len(files) < 2:
        pytest.skip("the lab captures are not there")
    caps = [tcpsift.read(p) for p in files]
    text = "ip.src == {v4} or eth.dst == {mac}".format(**literals(caps[-1]))
    expected = b"".join(render(cap, NAMES, compile_filter(text)(cap)) for cap in caps)
    res = CliRunner().invoke(cli, ["fields", *map(str, files), "--mode", "separate", "-Y", text,
                                   *[a for n in NAMES for a in ("-e", n)]])
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes == expected


def test_the_command_with_an_array_filter_imports_no_polars():
    """Polars' import alone costs what the fast path saves (0.1-0.2 s, 25 MB)."""
    import subprocess

    code = ("import sys\n"
            "from tcpsift.cli.main import run\n"
            "code = run(['fields', sys.argv[1], '-e', 'ip.src', '-Y', 'tcp.port == 80 or udp'])\n"
            "assert code == 0, code\n"
            "print('polars' in sys.modules, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code, str(SAMPLE)], capture_output=True,
                         check=True)
    assert res.stdout and res.stderr.split() == [b"False"]
