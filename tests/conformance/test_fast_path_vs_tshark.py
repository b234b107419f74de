"""The fields and -Y terms that the fast path (the compiled formatter, the filter on
arrays) took over from the table path print and select what tshark prints and selects:
through the command, on the lab's captures and on public captures with IPv4 options and
fragments, IPv6, ICMP, VLAN tags, SACK blocks, pcapng interfaces."""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import (
    compare,
    corpus,
    fail_on_undocumented,
    known_differences,
    tshark_fields,
    tshark_version,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.corpus import capture_files  # noqa: E402

# the fields the formatter did not print before, and a few it did, for context
FIELDS = ["frame.number", "frame.interface_id", "vlan.id", "ieee8021ad.id", "ip.addr",
          "ip.len", "ip.flags.df", "ip.flags.mf", "ip.frag_offset", "ipv6.addr",
          "ipv6.plen", "ipv6.nxt", "tcp.port", "tcp.flags.fin", "tcp.flags.syn",
          "tcp.flags.reset", "tcp.flags.push", "tcp.flags.ack", "tcp.flags.urg",
          "tcp.flags.ece", "tcp.flags.cwr", "tcp.flags.ae", "tcp.options.sack_perm",
          "udp.port", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
          "tcp.options.sack_le", "tcp.options.sack_re", "tcp.seq", "tcp.ack"]
PUBLIC = ["l3l4/ipv4-fragments.pcap", "l3l4/ipv4-options-assorted.pcap",
          "l3l4/ipv6-fragments.pcap", "l3l4/icmp-assorted.pcapng", "l3l4/icmpv6-echo.pcap",
          "l3l4/tcp-options-sack-blocks.pcap", "l3l4/udp-dns.pcap",
          "linktypes/ethernet-8021q-icmp-arp.pcap", "linktypes/ethernet-vlan-pcp-dei.pcapng",
          "linktypes/ethernet-8021ad-88a8.pcapng", "linktypes/raw-101-ipv6-http.pcap",
          "pcapng/le-two-interfaces-tsresol-ns-and-us.pcapng",
          "pcapng/le-eleven-interfaces-macos.pcapng", "tcp/fast-retransmit-sack.pcap",
          "tcp/dup-ack-fast-retransmit.pcapng", "tcp/mixed-126-streams.pcap",
          "encap/6in4-tcp.pcap", "pcap/le-usec-ethernet-http-fin.pcap"]
LAB = capture_files("lab/captures")
KNOWN = known_differences()

pytestmark = pytest.mark.skipif(tshark_version() is None, reason="tshark is not installed")


def _command(path: Path, fields, display_filter: str | None = None) -> bytes:
    """What `tcpsift fields path [-Y filter] -e ...` prints; the fast path must take it."""
    from click.testing import CliRunner

    from tcpsift.cli.main import cli
    from tcpsift.textstream.fields import fast_path

    assert fast_path(list(fields), display_filter)[0], display_filter
    args = ["fields", str(path), *[a for f in fields for a in ("-e", f)]]
    if display_filter:
        args += ["-Y", display_filter]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code in (0, 1), res.output
    return res.stdout_bytes


@pytest.mark.parametrize("path", [*LAB, *(corpus() / c for c in PUBLIC)],
                         ids=lambda p: p.name)
def test_fast_fields_print_like_tshark(path):
    if not path.exists():
        pytest.skip(f"{path} not found")
    theirs = tshark_fields(path, FIELDS)[1]
    ours = _command(path, FIELDS)
    if path.is_relative_to(corpus()):
        capture = str(path.relative_to(corpus()))
        _, diffs = compare(capture, theirs, ours, FIELDS)
        fail_on_undocumented(capture, diffs, KNOWN)
    else:
        assert ours == theirs


FILTERS = [
    "ip.len > 500", "ip.flags.df == 1", "ip.flags.df == 0 and ip", "ip.flags.mf == 1",
    "ip.frag_offset > 0", "ipv6.plen < 100 and ipv6.nxt == 6", "ipv6.nxt == 58",
    "frame.interface_id == 1", "tcp.options.sack_perm",
    "tcp.options.sack_le", "tcp.seq > 1000", "tcp.ack == 1", "tcp.nxtseq < 100",
    "tcp.window_size > 60000", "tcp.time_relative > 1", "tcp.time_delta < 0.0001",
    "tcp.analysis.ack_rtt > 0.01", "tcp.analysis.initial_rtt < 0.05",
    "tcp.analysis.bytes_in_flight > 1000", "tcp.analysis.push_bytes_sent >= 100",
    "tcp.analysis.duplicate_ack_num >= 2", "tcp.analysis.acks_frame > 3 and tcp.ack != 1",
    "icmp.type == 8 or icmpv6.type == 128", "tcp.flags.syn == 1 and tcp.flags.ack == 1",
    "frame.time_relative > 1", "frame.time_delta < 0.0001 and frame.time_relative < 5",
]
FILTER_CAPTURES = [*LAB, *(corpus() / c for c in (
    "tcp/fast-retransmit-sack.pcap", "tcp/dup-ack-fast-retransmit.pcapng",
    "tcp/mixed-126-streams.pcap", "l3l4/ipv4-fragments.pcap", "l3l4/ipv6-fragments.pcap",
    "l3l4/icmpv6-echo.pcap", "pcapng/le-two-interfaces-tsresol-ns-and-us.pcapng",
    "pcapng/le-eleven-interfaces-macos.pcapng"))]
FILTER_FIELDS = ["frame.number", "tcp.stream", "tcp.options.sack_le", "ip.len"]


# pcap files have no interface ids: there the table path (a chunk with repeated headers)
# still takes `frame.interface_id == 0` to hold (tcpsift.fields.filter reads the column
# without the file's format), tshark and the arrays not
PCAPNG_FILTERS = ["frame.interface_id == 0", "frame.interface_id == 0 and tcp.len > 0"]


@pytest.mark.parametrize("path", FILTER_CAPTURES, ids=lambda p: p.name)
def test_fast_filters_select_like_tshark(path):
    if not path.exists():
        pytest.skip(f"{path} not found")
    filters = FILTERS + (PCAPNG_FILTERS if path.suffix == ".pcapng" else [])
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        expected = list(pool.map(lambda f: tshark_fields(path, FILTER_FIELDS, f)[1], filters))
    wrong = [flt for flt, theirs in zip(filters, expected)
             if _command(path, FILTER_FIELDS, flt) != theirs]
    assert not wrong, wrong
