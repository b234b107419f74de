"""Built packets where tcpsift was silently different from tshark 4.0 (issue 17): TCP
headers shorter than 20 bytes, ICMP errors quoting errors or IPv6, SACK options of odd
lengths, nested tunnels, MPLS label stacks, VLAN tags, PPPoE lengths, pcapng times past
2262 and -Y literals out of a field's range.

Each test writes its capture, runs tshark and `tcpsift fields` (the command: the
streamed writer, which sends such frames the table way) and `tcpsift.read()` with
`tcpsift.fields.render` (the table writer) over every supported field, and asserts that
they print the same, except the cells `docs/conformance.md` lists (given here as
`expected`: what tcpsift prints there and why), and a one-line warning where
`docs/limits.md` has a bound.
"""
from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support import capwriter as cw  # noqa: E402

import tcpsift  # noqa: E402
from tcpsift.fields import FieldError, field_names, render  # noqa: E402
from tcpsift.fields.filter import compile_filter  # noqa: E402
from tcpsift.textstream.fields import fast_path, stream_fields  # noqa: E402

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
ALL = field_names()
T0 = 1_700_000_000_000_000_000


def _e(fields):
    return [a for f in fields for a in ("-e", f)]


def _write(tmp_path: Path, name: str, frames=None, records=None, data=None) -> Path:
    if data is None:
        records = records or [cw.Record(T0 + i * 1000, f) for i, f in enumerate(frames)]
        data = cw.pcap_file(records)
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _tshark(path: Path, fields, flt: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([TSHARK, "-r", str(path), "-T", "fields", *_e(fields),
                           *(["-Y", flt] if flt else [])],
                          capture_output=True, text=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})


def _tcpsift(path: Path, fields, flt: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpsift", "fields", str(path), *_e(fields),
                           *(["-Y", flt] if flt else [])], capture_output=True, text=True)


def _command(path: Path, fields, flt: str = "") -> tuple[str, list[str]]:
    """What `tcpsift fields` prints and warns, in this process (its code: the fast path
    when the fields and filter allow, chunks with odd frames the table way)."""
    fast, select = fast_path(list(fields), flt or None)
    out = io.BytesIO()
    warnings, _ = stream_fields([str(path)], list(fields), out,
                                select if fast else (compile_filter(flt) if flt else None))
    return out.getvalue().decode(), warnings


def _cells(text: str, fields) -> dict:
    return {(i + 1, f): v for i, line in enumerate(text.splitlines())
            for f, v in zip(fields, line.split("\t"))}


def _differences(theirs: str, ours: str, fields) -> dict:
    """{(line, field): (tshark's, ours)} where the two outputs differ."""
    assert len(theirs.splitlines()) == len(ours.splitlines())
    t, o = _cells(theirs, fields), _cells(ours, fields)
    return {k: (t[k], o[k]) for k in t if t[k] != o[k]}


def compare(path: Path, expected: dict | None = None, fields=ALL, warning: str | None = None):
    """tshark, the command and read() + render print the same but the `expected` cells
    ({(frame, field): (tshark's, tcpsift's)}); the command warns `warning` (or nothing)."""
    theirs = _tshark(path, fields)
    assert theirs.returncode == 0, theirs.stderr
    printed, warnings = _command(path, fields)
    assert warnings == ([] if warning is None else [warning]) or (
        warning is not None and len(warnings) == 1 and warning in warnings[0]), warnings
    cap = tcpsift.read(str(path))
    table = render(cap, list(fields)).decode()
    assert table == printed
    assert _differences(theirs.stdout, printed, fields) == (expected or {})
    return cap


# ----------------------------------------------------------------------------- TCP

def _syn(**kw):
    return cw.eth_ipv4_tcp(tcp_flags=cw.TCP_SYN, tcp_seq=999, **kw)


def test_tcp_data_offset_below_5(tmp_path):
    """tshark shows ports, seq, stream, header length and tcp.len (the segment less the
    bogus header), never ack, flags or window; the analysis goes on as for any segment."""
    frames = [_syn()] + [cw.eth_ipv4_tcp(b"hello", tcp_data_offset=d, tcp_seq=1000)
                         for d in range(5)]
    frames += [cw.eth_ipv4_tcp(b"next", tcp_seq=1005)]
    cap = compare(_write(tmp_path, "doff.pcap", frames))
    assert cap.packets["tcp_len"].to_list()[1:6] == [25, 21, 17, 13, 9]
    # (the packet table keeps what the header holds: the analysis reads it, as tshark's)
    assert cap.packets["tcp_flags"].to_list()[1] == cw.TCP_ACK


def _cut(full: bytes, tcp_bytes: int) -> cw.Record:
    return cw.Record(0, full[:14 + 20 + tcp_bytes], orig_len=len(full))


@pytest.mark.parametrize("options", [b"", cw.opt_mss(1460) + cw.opt_nop() * 4],
                         ids=["no-options", "options"])
def test_tcp_header_cut_by_the_snapshot_length(tmp_path, options):
    """Cut after 4-7 bytes: ports; 8-15: ports still (tshark reads up to the window before
    it shows any number); 16-19: the whole header but the options, tcp.len and the
    analysis from the IP length, no tcp.analysis items; 20 and more: options as far as
    captured. tcp.time_* of the 16-19 cuts are the one documented difference."""
    full = cw.eth_ipv4_tcp(b"hello world", tcp_seq=1000, tcp_options=options)
    records = [cw.Record(0, _syn())] + [_cut(full, n) for n in range(4, 22)]
    for i, r in enumerate(records):
        r.ts_ns = T0 + i * 1000
    path = _write(tmp_path, "snaplen.pcap", records=records)
    # frames 14-17 (16-19 bytes): tshark throws at the checksum, before tcp.time_*
    expected = {(k, f): ("", v) for k in range(14, 18) for f, v in (
        ("tcp.time_relative", f"0.0000{k - 1:02d}000"),
        ("tcp.time_delta", "0.000013000" if k == 14 else "0.000001000"))}
    cap = compare(path, expected)
    # 8-15 captured bytes: no number read; 16 and up: the segment length
    assert cap.packets["seq"].to_list()[5:13] == [None] * 8
    assert cap.packets["tcp_len"].to_list()[13:17] == [11] * 4


def _sack_option(olen: int, edges: int = 9) -> bytes:
    body = b"".join(struct.pack("!I", 1100 + 100 * i) for i in range(edges))
    return (bytes([5, olen]) + body)[:max(olen, 2)]


def test_sack_options_of_every_length(tmp_path):
    """Length 2-9 (less than a block): tshark shows the left edge when there is one, then
    throws: no later option, no tcp.analysis item. 38 and 40 hold 9 edges: all shown."""
    synack = cw.ether(cw.ipv4(cw.tcp(flags=cw.TCP_SYN | cw.TCP_ACK, seq=4999, ack=1000,
                                     sport=80, dport=40000), src="198.51.100.2",
                              dst="192.0.2.1"))
    frames = [_syn(), synack]
    for olen in range(0, 37):
        option = _sack_option(olen) if olen >= 2 else bytes([5, olen, 0, 0])
        frames.append(cw.ether(cw.ipv4(cw.tcp(seq=5000, ack=1000, sport=80, dport=40000,
                                              options=option + cw.opt_mss(1000)),
                                       src="198.51.100.2", dst="192.0.2.1")))
    for option in (_sack_option(38), _sack_option(38) + cw.opt_nop() * 2,
                   _sack_option(40, 10)[:40]):
        frames.append(cw.ether(cw.ipv4(cw.tcp(seq=5000, ack=1000, sport=80, dport=40000,
                                              options=option),
                                       src="198.51.100.2", dst="192.0.2.1")))
    cap = compare(_write(tmp_path, "sack.pcap", frames))
    edges = cap.packets["sack_blocks"].to_list()
    assert edges[2 + 6] == [1100] and edges[-1] == [1100 + 100 * i for i in range(9)]


# ----------------------------------------------------------------------------- ICMP

def _err4(typ, code, inner):
    return cw.ipv4(cw.icmp(typ, code, b"\0" * 4, inner), src="10.9.9.9", dst="10.0.0.1",
                   proto=cw.IPPROTO_ICMP)


def _err6(typ, code, inner):
    return cw.ipv6(cw.icmpv6(typ, code, b"\0" * 4, inner), nh=cw.IPPROTO_ICMPV6,
                   src="2001:db8::9", dst="2001:db8::1")


def _ether(ip: bytes) -> bytes:
    return cw.ether(ip, ethertype=cw.ETH_IPV4 if ip[0] >> 4 == 4 else cw.ETH_IPV6)


def test_icmp_errors_quoting_errors_and_ipv6(tmp_path):
    """Errors quoting errors are dissected to the end (the quoted TCP header joins its
    stream); ICMPv4 quotes IPv6 by the version nibble, a redirect 8 bytes past the quoted
    header; a TCP header quoted in IPv6 shows tcp.seq_raw, in IPv4 tcp.seq alone."""
    tcp = cw.tcp(seq=5, ack=9)
    i4 = cw.ipv4(tcp, src="10.0.0.1", dst="10.0.0.2")
    i6 = cw.ipv6(tcp, src="2001:db8::1", dst="2001:db8::2")
    u4 = cw.ipv4(cw.udp(b"abc", sport=1111, dport=2222), src="10.0.0.1", dst="10.0.0.2",
                 proto=cw.IPPROTO_UDP)
    echo = cw.ipv4(cw.icmp(8, 0), src="10.0.0.2", dst="10.0.0.1", proto=cw.IPPROTO_ICMP)
    deep4, deep6 = i4, i6
    for _ in range(12):
        deep4, deep6 = _err4(3, 1, deep4), _err6(1, 4, deep6)
    frames = [_ether(f) for f in (
        _err4(3, 1, i4), _err4(3, 1, i6), _err6(1, 4, i6),
        _err4(3, 1, _err4(11, 0, i4)), _err4(3, 1, _err4(3, 1, i6)),
        _err4(3, 1, _err6(1, 4, i6)), _err6(1, 4, _err6(1, 4, i6)),
        _err4(3, 1, _err4(5, 1, i4)), _err4(5, 1, _err4(3, 1, i4)),
        _err4(3, 1, _err4(5, 1, i6)),
        _err4(5, 1, cw.ipv4(tcp, options=cw.ipv4_opt_rr(9))),
        _err4(3, 1, i4[:32]), _err4(3, 1, _err4(3, 1, i6[:52])), _err6(1, 4, i6[:48]),
        _err4(3, 1, echo), _err4(3, 3, _err4(3, 1, u4)), _err6(1, 4, i4),
        deep4, deep6,
        # documented: a redirect quoting IPv6 (8 bytes of it), other IP versions
        _err4(5, 1, i6), _err4(3, 1, b"\x50" + i4[1:]), _err4(3, 1, b"\x70" + i4[1:]))]
    # a redirect quotes 8 bytes of an IPv6 header (frames 10, 20): tshark shows the
    # fields in them (a partial header); versions 5 and 7: their version
    partial = {(frame, f): (v, "") for frame in (10, 20) for f, v in (
        ("ipv6.plen", "20"), ("ipv6.nxt", "6"), ("ipv6.hlim", "64"))}
    expected = {(10, "ip.version"): ("4,4,6", "4,4"), (20, "ip.version"): ("4,6", "4"),
                (21, "ip.version"): ("4,5", "4"), (22, "ip.version"): ("4,7", "4"), **partial}
    compare(_write(tmp_path, "icmp.pcap", frames), expected)


# ----------------------------------------------------------------------------- nesting

def _ipip(inner):
    return cw.ipv4(inner, proto=cw.IPPROTO_IPIP, src="10.1.1.1", dst="10.1.1.2")


def _gre(inner):
    return cw.ipv4(cw.gre(inner), proto=cw.IPPROTO_GRE, src="10.1.1.1", dst="10.1.1.2")


def _vxlan(inner):
    return cw.ipv4(cw.udp(cw.vxlan(cw.ether(inner)), dport=cw.VXLAN_PORT),
                   proto=cw.IPPROTO_UDP, src="10.1.1.1", dst="10.1.1.2")


WRAPS = {"icmp": lambda x: _err4(3, 1, x), "ipip": _ipip, "gre": _gre, "vxlan": _vxlan}
NEST_FIELDS = ["frame.number", "eth.src", "ip.version", "ip.src", "ip.proto", "udp.srcport",
               "icmp.type", "tcp.srcport", "tcp.seq", "tcp.stream", "tcp.len"]


def _nested(wrap, levels):
    out = []
    for n in levels:
        x = cw.ipv4(cw.tcp(seq=5, ack=9), src="10.0.0.1", dst="10.0.0.2")
        for _ in range(n):
            x = wrap(x)
        out.append(cw.ether(x))
    return out


@pytest.mark.parametrize("kind", sorted(WRAPS))
def test_nesting_up_to_the_bound_is_decoded_like_tshark(tmp_path, kind):
    path = _write(tmp_path, f"{kind}.pcap", _nested(WRAPS[kind], range(1, 17)))
    compare(path, fields=NEST_FIELDS)


PAST_BOUND = "2 frames nest headers past tcpsift's bounds"


@pytest.mark.parametrize("kind", sorted(WRAPS))
def test_nesting_past_the_bound_warns_once(tmp_path, kind):
    """17 levels and more: decoded to the 16th (tshark goes on to 500 protocol layers),
    one warning for the file."""
    path = _write(tmp_path, f"{kind}.pcap", _nested(WRAPS[kind], [16, 17, 30]))
    printed, warnings = _command(path, NEST_FIELDS)
    assert len(warnings) == 1 and PAST_BOUND in warnings[0], warnings
    assert "docs/limits.md" in warnings[0]
    theirs = _tshark(path, NEST_FIELDS).stdout.splitlines()
    assert printed.splitlines()[0] == theirs[0]
    assert [w for w in tcpsift.read(str(path)).warnings if PAST_BOUND in w]


@pytest.mark.slow
def test_the_command_says_it_in_one_line_and_exits_0(tmp_path):
    path = _write(tmp_path, "gre.pcap", _nested(_gre, [16, 17, 30]))
    command = _tcpsift(path, NEST_FIELDS)
    lines = command.stderr.strip().splitlines()
    assert command.returncode == 0 and len(lines) == 1, command.stderr
    assert lines[0].startswith("tcpsift: warning: ") and PAST_BOUND in lines[0]


def test_mpls_label_stacks_of_any_depth(tmp_path):
    ip = cw.ipv4(cw.tcp(seq=5), src="10.0.0.1", dst="10.0.0.2")
    frames = [cw.ether(cw.mpls(ip, labels=[100 + i for i in range(n)]), ethertype=cw.ETH_MPLS)
              for n in (1, 2, 31, 32, 33, 34, 64, 100, 300)]
    compare(_write(tmp_path, "mpls.pcap", frames))


def _vlan_capture(tmp_path: Path) -> Path:
    """tshark dissects 20 802.1Q tags (0x8100, 0x9100) in a frame, tunnels included,
    and nothing after; 802.1ad S-tags are not counted, and a run of them is shown two
    at a time as one item (no ieee8021ad.id), the odd one out alone."""
    ip = cw.ipv4(cw.tcp(seq=5), src="10.0.0.1", dst="10.0.0.2")
    q = [(cw.ETH_8021Q, i + 1) for i in range(30)]
    s = [(cw.ETH_8021AD, i + 1) for i in range(30)]
    tag_lists = [q[:n] for n in (1, 19, 20, 21, 22, 30)] + [s[:n] for n in range(1, 8)]
    tag_lists += [s[:21], s[:30], s[:1] + q[1:21], s[:5] + q[5:23],
                  [(0x9100, i + 1) for i in range(25)],
                  [s[0], s[1], q[2]], [s[0], q[1], s[2]], [q[0], s[1]], [q[0], s[1], s[2]]]
    frames = [cw.ether(ip, vlans=tags) for tags in tag_lists]
    inner = cw.ether(ip, vlans=q[:15])
    frames.append(cw.ether(cw.ipv4(cw.udp(cw.vxlan(inner), dport=cw.VXLAN_PORT),
                                   proto=cw.IPPROTO_UDP), vlans=[(cw.ETH_8021Q, 100 + i)
                                                                 for i in range(10)]))
    return _write(tmp_path, "vlan.pcap", frames)


def test_vlan_tags(tmp_path):
    compare(_vlan_capture(tmp_path))


@pytest.mark.slow
def test_vlan_tags_in_filters(tmp_path):
    path = _vlan_capture(tmp_path)
    for flt in ("vlan", "ieee8021ad", "ieee8021ad.id", "ieee8021ad.id == 1", "vlan.id == 3",
                "tcp", "ip.version == 4"):
        ours = _command(path, ["frame.number"], flt)[0]
        assert ours == _tshark(path, ["frame.number"], flt).stdout, flt


def test_pppoe_payload_lengths(tmp_path):
    """The PPPoE length bounds what the layers after it read, as tshark's subset of that
    length does: 0 and 1 leave no PPP protocol. Documented: an IPv4 header cut to 8 bytes
    (tshark shows its first fields) and tcp.time_* of a TCP header cut to 19 bytes."""
    ip = cw.ipv4(cw.tcp(b"hello", seq=5), src="10.0.0.1", dst="10.0.0.2")

    def pppoe(length, payload=ip, proto=0x0021):
        body = struct.pack("!H", proto) + payload
        return cw.ether(struct.pack("!BBHH", 0x11, 0, 0x1234,
                                    len(body) if length is None else length) + body,
                        ethertype=cw.ETH_PPPOE_SESSION)

    frames = [pppoe(n) for n in (None, 0, 1, 2, 10, 22, 41, 100)]
    frames.append(pppoe(0, cw.ipv6(cw.tcp(b"hi")), 0x0057))
    expected = {(5, f): (v, "") for f, v in (
        ("ip.version", "4"), ("ip.hdr_len", "20"), ("ip.len", "45"), ("ip.id", "0x0000"),
        ("ip.flags.df", "0"), ("ip.flags.mf", "0"), ("ip.frag_offset", "0"))}
    expected.update({(7, "tcp.time_relative"): ("", "0.000006000"),
                     (7, "tcp.time_delta"): ("", "0.000006000")})
    compare(_write(tmp_path, "pppoe.pcap", frames), expected)


# ----------------------------------------------------------------------------- pcapng

TIME_FIELDS = ["frame.number", "frame.interface_id", "frame.time_epoch", "frame.time_relative",
               "frame.time_delta", "ip.src"]


def test_pcapng_if_tsresol_given_twice_takes_the_first(tmp_path):
    w = cw.PcapngWriter()
    w.section()
    frame = cw.eth_ipv4_tcp()
    for first, second in ((9, 3), (3, 9), (0x86, 6)):
        # (the writer puts `opts` before its own if_tsresol)
        w.interface(cw.LINKTYPE_ETHERNET, tsresol=second,
                    opts=[(cw.IF_TSRESOL, bytes([first]))])
    for i, units in enumerate((1_700_000_000_123_456_789, 1_700_000_000_123,
                               1_700_000_000 * 64 + 5)):
        w.epb(i, None, frame, units=units)
    compare(_write(tmp_path, "tsresol.pcapng", data=w.getvalue()), fields=TIME_FIELDS)


def test_pcapng_times_past_int64_nanoseconds(tmp_path):
    """if_tsoffset 1e10, 10^12 s: a time tcpsift's int64 ns cannot hold is none (empty
    fields, one warning) instead of a wrapped one (-6846744073.7); the times that fit are
    tshark's, but for counts of 2^63 and more, read as negative (documented: the corpus'
    two-linktypes capture writes times before the epoch so)."""
    w = cw.PcapngWriter()
    w.section()
    frame = cw.eth_ipv4_tcp()
    w.interface(cw.LINKTYPE_ETHERNET)
    w.epb(0, None, frame, units=1_700_000_000_123_456)
    w.interface(cw.LINKTYPE_ETHERNET, tsoffset=10 ** 10)
    w.epb(1, None, frame, units=1_700_000_000_123_456)
    w.interface(cw.LINKTYPE_ETHERNET, tsresol=9)
    w.epb(2, None, frame, units=(1 << 63) + 5)
    w.epb(2, None, frame, units=(1 << 64) - 5)
    w.epb(2, None, frame, units=(1 << 63) - 1)
    w.interface(cw.LINKTYPE_ETHERNET, tsresol=0)
    w.epb(3, None, frame, units=10 ** 12)
    w.epb(0, None, frame, units=1_700_000_000_223_456)
    path = _write(tmp_path, "late.pcapng", data=w.getvalue())
    out_of_range = {2, 6}
    negative = {3: "-9223372036.854775803", 4: "-0.000000005"}
    theirs = _cells(_tshark(path, TIME_FIELDS).stdout, TIME_FIELDS)
    command = _tcpsift(path, TIME_FIELDS)
    assert command.returncode == 0
    lines = command.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 packets have a time before 1677-09-21 or after " \
        "2262-04-11" in lines[0] and "docs/limits.md" in lines[0], command.stderr
    ours = _cells(command.stdout, TIME_FIELDS)
    for frame in range(1, 8):
        if frame in out_of_range:
            assert ours[(frame, "frame.time_epoch")] == ""
        elif frame in negative:
            assert ours[(frame, "frame.time_epoch")] == negative[frame]
        else:
            assert ours[(frame, "frame.time_epoch")] == theirs[(frame, "frame.time_epoch")]
    assert ours[(5, "frame.time_epoch")] == "9223372036.854775807"
    cap = tcpsift.read(str(path))
    assert cap.packets["ts_ns"].to_list()[1] is None and len(cap.warnings) == 1


# ----------------------------------------------------------------------------- -Y

NEGATIVE = ("tcp.seq == -1", "tcp.seq_raw != -1")
TOO_BIG = (("tcp.srcport == 65536", 65535), ("ip.ttl == 256", 255))


@pytest.mark.parametrize("negative,too_big", [
    (NEGATIVE, TOO_BIG),
    pytest.param(NEGATIVE + (
        "tcp.seq_raw > -5", "tcp.port ~= -1", "tcp.seq_raw == -1", "tcp.seq_raw < -1",
        "tcp.seq_raw >= -2", "tcp.seq_raw ~= -1",
        "tcp.srcport == -1", "tcp.port != -1", "ip.ttl <= -1", "tcp.seq_raw == -0",
        "tcp.srcport == -0x1", "frame.number > -1", "tcp.stream == -1",
        "not tcp.srcport == -5"), TOO_BIG + (
        ("tcp.seq_raw == -4294967296", 4294967295), ("ip.id == 0x10000", 65535),
        ("tcp.stream == 4294967296", 4294967295), ("udp.length > 70000", 65535)),
        marks=pytest.mark.slow)], ids=["some", "all"])
def test_filter_literals_out_of_a_fields_range(tmp_path, negative, too_big):
    """tshark 4.0 refuses a literal above the field's largest value, and takes a
    negative one (the minus before a number in range) as a value no occurrence equals,
    differs from or is ordered with: only != holds."""
    frames = [cw.eth_ipv4_tcp(tcp_seq=seq, tcp_sport=port, ip_ttl=255)
              for seq, port in ((0xFFFFFFFF, 65535), (0, 0), (5, 5), (0xFFFFFFFE, 65534))]
    path = _write(tmp_path, "numbers.pcap", frames)
    cap = tcpsift.read(str(path))
    fields = ["frame.number"]
    for flt in negative:
        theirs = _tshark(path, fields, flt)
        assert theirs.returncode == 0, flt
        assert _command(path, fields, flt)[0] == theirs.stdout, flt
        assert render(cap, fields, compile_filter(flt)(cap)).decode() == theirs.stdout, flt
    for flt, limit in too_big:
        assert _tshark(path, fields, flt).returncode != 0
        with pytest.raises(FieldError, match=f"too big for {flt.split()[0]}, maximum {limit}"):
            compile_filter(flt)


@pytest.mark.slow
def test_a_literal_too_big_is_a_usage_error(tmp_path):
    path = _write(tmp_path, "one.pcap", [cw.eth_ipv4_tcp()])
    ours = _tcpsift(path, ["frame.number"], "tcp.srcport == 65536")
    lines = ours.stderr.strip().splitlines()
    assert ours.returncode == 2 and len(lines) == 1, ours.stderr
    assert "too big for tcp.srcport, maximum 65535" in lines[0]
