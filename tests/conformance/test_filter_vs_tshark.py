"""`tcpsift fields -Y FILTER` selects the frames `tshark -Y FILTER` selects.

Filters of the supported subset, each on a capture where it selects some frames but not
all, chosen for repeated headers (tunnels, ICMP-quoted headers, VLAN stacks) where tshark's
"any occurrence" semantics of ==, != and ~= matter. Each runs both ways: on the capture's
tables (tcpsift.fields.filter), and as the command runs it, chunk by chunk, on the
decoder's arrays when it can (tcpsift.textstream.select; chunks with repeated headers
then go the table way).
"""
from __future__ import annotations

import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import corpus, tcpsift_fields, tshark_fields, tshark_version

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.array_filters import CORE, literals  # noqa: E402
from support.corpus import capture_files  # noqa: E402

CASES = {
    "pcap/le-usec-ethernet-http-fin.pcap": [
        "tcp.flags == 0x0002", "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        "!(tcp.len > 0) && tcp", "frame.number <= 3 or frame.number > 12",
        "ip.ttl >= 64 and frame.len > 100", "tcp.options.sack_perm",
    ],
    "l3l4/icmp-traceroute.pcapng": [
        "icmp.type == 11", "ip.src == 192.168.100.138", "ip.src != 192.168.100.138",
        "ip.src ~= 192.168.100.138", "ip.dst == 4.2.2.1 and not icmp.type == 8", "ip.ttl < 10",
        "icmp.type == 0 or icmp.code == 0 and ip.ttl > 250",
    ],
    "encap/vxlan-http.pcap": [
        "tcp.port == 80 and ip.addr == 54.86.237.188", "ip.dst == 172.16.11.201",
        "tcp.srcport == 80", "udp.port != 4789", "tcp.len > 0",
        # two Ethernet headers a frame: any of them equal, none of them equal
        "eth.src == 48:f1:7f:a3:b6:ff", "eth.dst != 12:42:cd:c5:e8:22",
        "eth.type == 0x0800 and tcp.len > 0",
    ],
    "encap/6in4-tcp.pcap": [
        "ip and ipv6 and tcp.len > 0", "tcp && icmpv6", "icmp || icmpv6", "tcp.port != 443",
        "ipv6.addr == 2001:470:1f17:13f:3e97:eff:fe73:4dec", "ipv6.src == 2604:a880:1:20::224:b001",
        "ipv6.hlim > 60",
    ],
    "linktypes/ethernet-triple-vlan-http.pcap": [
        "vlan.id == 20", "vlan.id != 20", "vlan.id == 20 && tcp.dstport == 80", "vlan",
        "vlan.id == 30 and frame.len < 100", "eth.type == 0x8100 and eth.src == 00-10-db-88-d2-ef",
    ],
    # the TCP analysis fields (computed only when the filter names one)
    "tcp/ssh-dups-fast-retransmissions.pcap": [
        "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
        "tcp.analysis.duplicate_ack_num >= 2", "tcp.stream == 0 and tcp.seq > 1000",
        "tcp.analysis.bytes_in_flight > 1000", "tcp.analysis.ack_rtt > 0.01",
        "tcp.window_size_scalefactor == -1 or tcp.nxtseq < 100",
    ],
    "tcp/fast-retransmit-sack.pcap": ["tcp.options.sack_le", "tcp.analysis.duplicate_ack"],
    "tcp/keep-alive-one-stream.pcap": ["tcp.analysis.keep_alive || tcp.analysis.keep_alive_ack"],
    "tcp/mixed-126-streams.pcap": [
        "tcp.stream == 3", "tcp.stream > 100 and tcp.analysis.initial_rtt < 0.05",
        "tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment",
        "tcp.time_relative > 1", "not tcp.analysis.acks_frame and tcp",
        "frame.time_relative > 1 and frame.time_delta < 0.0001", "eth",
    ],
    "tcp/zero-window-recovery.pcapng": [
        "tcp.analysis.zero_window", "tcp.analysis.window_update", "tcp.ack == 1",
        "tcp.window_size > 60000",
    ],
    "l3l4/udp-dns.pcap": [
        "udp.port == 53", "ip.addr == 10.0.0.1 || ipv6", "udp.length < 100 and ip",
        "not udp.port == 5353",
    ],
}
FIELDS = ["frame.number"]

pytestmark = pytest.mark.skipif(tshark_version() is None, reason="tshark is not installed")

# frame.time_delta_displayed measures from the previous frame printed: under a filter, the
# previous one the filter kept (also from the chunk before, in `tcpsift fields`)
TIMES = ["frame.number", "frame.time_relative", "frame.time_delta", "frame.time_delta_displayed",
         "tcp.flags.str"]
# (capture, filter, frames a chunk in the command: several chunks a capture)
TIMES_CASES = [("tcp/mixed-126-streams.pcap", "tcp.stream == 3 or tcp.stream == 90", 701),
               ("pcapng/generator/be-102-all-block-types.pcapng", "frame.number > 3", 3),
               ("l3l4/icmp-traceroute.pcapng", "icmp.type == 11", 7)]


@pytest.mark.parametrize("capture", sorted(CASES))
def test_filters_select_like_tshark(capture):
    path = corpus() / capture
    if not path.exists():
        pytest.skip(f"{path} not found")
    filters = CASES[capture]
    # one tshark per filter: run them on all cores (cached after the first run)
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        expected = list(pool.map(lambda f: tshark_fields(path, FIELDS, f)[1], filters))
    wrong = []
    for flt, theirs in zip(filters, expected):
        for way, ours in (("table", tcpsift_fields(path, FIELDS, flt)),
                          ("command", command_fields(path, FIELDS, flt))):
            if theirs != ours:
                wrong.append(f"{flt!r} ({way}): {_diff(theirs, ours)}")
    assert not wrong, "\n".join(wrong)


def _diff(theirs: bytes, ours: bytes) -> str:
    a, b = set(theirs.split()), set(ours.split())
    return f"only tshark {sorted(a - b)[:8]}, only tcpsift {sorted(b - a)[:8]}"


def command_fields(path: Path, fields, display_filter: str, on_arrays: bool | None = None):
    """What `tcpsift fields path -Y filter -e ...` prints (in-process), the filter on
    arrays when the command would do so (`on_arrays`: which way it must be)."""
    from tcpsift.fields.filter import compile_filter
    from tcpsift.textstream.fields import fast_path, stream_fields

    fast, select = fast_path(list(fields), display_filter)
    if on_arrays is not None:
        assert fast == on_arrays, display_filter
    out = io.BytesIO()
    stream_fields([str(path)], list(fields), out, select if fast else
                  compile_filter(display_filter))
    return out.getvalue()


# the lab's captures (a browser's and a server's traffic, losses, resets, zero windows),
# and a public capture of many TCP streams
LAB = [*capture_files("lab/captures"), corpus() / "tcp/mixed-126-streams.pcap"]
ARRAY_FIELDS = ["frame.number", "frame.time_delta_displayed", "ip.src", "tcp.stream",
                "tcp.seq", "tcp.analysis.ack_rtt"]


@pytest.mark.parametrize("path", LAB, ids=lambda p: p.name)
def test_filters_on_arrays_select_like_tshark(path):
    """Each kind of term the arrays evaluate (protocol, address, port, stream, flags,
    comparisons, TCP verdicts), through the array path, against tshark."""
    import tcpsift

    if not path.exists():
        pytest.skip(f"{path} not found")
    lit = literals(tcpsift.read(path))
    filters = [f.format(**lit) for f in CORE]
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        expected = list(pool.map(lambda f: tshark_fields(path, ARRAY_FIELDS, f)[1], filters))
    wrong = [f"{flt!r}: {_diff(theirs, ours)}" for flt, theirs in zip(filters, expected)
             if theirs != (ours := command_fields(path, ARRAY_FIELDS, flt, on_arrays=True))]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("capture,display_filter,chunk", TIMES_CASES)
def test_frame_times_under_a_filter_print_like_tshark(monkeypatch, capture, display_filter,
                                                      chunk):
    """The whole capture's table, and the command printing it chunk by chunk."""
    from click.testing import CliRunner

    from tcpsift.cli.main import cli
    from tcpsift.textstream import fields as streamed

    path = corpus() / capture
    if not path.exists():
        pytest.skip(f"{path} not found")
    theirs = tshark_fields(path, TIMES, display_filter)[1]
    assert theirs, "the filter keeps some frames"
    assert tcpsift_fields(path, TIMES, display_filter) == theirs
    monkeypatch.setattr(streamed, "CHUNK", chunk)
    res = CliRunner().invoke(cli, ["fields", str(path), "-Y", display_filter,
                                   *[a for f in TIMES for a in ("-e", f)]])
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes == theirs
