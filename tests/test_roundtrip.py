"""Write known packets in every container variant, read them back with tcpsift.read.

- The same packets in classic pcap (usec/nsec magic x little/big endian), pcapng (either
  byte order, if_tsresol 10^-6 / 10^-9 / 2^-9, if_tsoffset, EPB or obsolete PB, skipped
  blocks in between) and gzip give identical packet tables, apart from the
  container-specific column file_offset, which is checked on its own.
- The decoded values are the ones written: timestamps exact to the nanosecond, lengths,
  addresses as text, ports, flags, options, VLAN ids, tunnels...
- Several files given together are merged in timestamp order, keeping file_id/file_frame.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support import capwriter as cw  # noqa: E402

tcpsift = pytest.importorskip("tcpsift")

CONTAINER_COLUMNS = {"file_offset"}
T0 = 1_700_000_000 * 10**9
STEP = 15_625_000          # 1/64 s: exact in usec, nsec, 10^-6, 10^-9 and 2^-9 resolution


def ts(i: int) -> int:
    return T0 + i * STEP


# ----------------------------------------------------------------------------- packets
# Each entry: (frame bytes, original length or None, expected column values).

SYN_OPTS = (cw.opt_mss(1460) + cw.opt_sack_perm() + cw.opt_ts(123456789, 0) + cw.opt_nop()
            + cw.opt_ws(7))
SACK_OPTS = cw.opt_nop() + cw.opt_nop() + cw.opt_sack([(5000, 6000), (7000, 8000)])


def packets():
    p = []
    # 1. Ethernet / IPv4 / TCP SYN with MSS, SACK_PERM, TS, WS
    p.append((cw.ether(cw.ipv4(cw.tcp(b"", sport=40000, dport=80, seq=1_000_000, ack=0,
                                      flags=cw.TCP_SYN, window=64240, options=SYN_OPTS),
                               src="192.0.2.1", dst="198.51.100.2", ttl=64, ident=0x1234,
                               df=True)),
              None,
              dict(status="ok", ip_version=4, src="192.0.2.1", dst="198.51.100.2",
                   ip_hdr_len=20, ip_len=60, ip_id=0x1234, ttl=64, ip_proto=6,
                   dont_fragment=True, more_fragments=False, frag_offset=0, sport=40000,
                   dport=80, tcp_flags=2, flags="S", seq=1_000_000, ack=0, tcp_hdr_len=40,
                   window=64240, tcp_len=0, mss=1460, wscale=7, sack_perm=True,
                   tsval=123456789, tsecr=0, vlan_id=None, vlan_depth=0, encap="",
                   payload_offset=74, cap_len=74, len=74, linktype=1)))
    # 2. 802.1Q / IPv6 / TCP PSH+ACK with payload and SACK blocks
    payload = b"hello, world\n"
    p.append((cw.ether(cw.ipv6(cw.tcp(payload, sport=443, dport=51000, seq=4_000_000_000,
                                      ack=12345, flags=cw.TCP_PSH | cw.TCP_ACK, window=501,
                                      options=SACK_OPTS),
                               src="2001:db8::10", dst="2001:db8:0:1::20", hlim=57),
                       cw.ETH_IPV6, vlans=[100]),
              None,
              dict(status="ok", vlan_id=100, vlan_depth=1, ip_version=6, src="2001:db8::10",
                   dst="2001:db8:0:1::20", ip_hdr_len=40, ip_len=40 + 40 + len(payload),
                   ttl=57, ip_proto=6, sport=443, dport=51000, tcp_flags=24, flags="PA",
                   seq=4_000_000_000, ack=12345, tcp_hdr_len=40, window=501,
                   tcp_len=len(payload), sack_blocks=[5000, 6000, 7000, 8000],
                   sack_perm=False, mss=None, payload_offset=14 + 4 + 40 + 40)))
    # 3. QinQ (802.1ad + 802.1Q) / IPv4 / UDP
    p.append((cw.ether(cw.ipv4(cw.udp(b"x" * 20, sport=5353, dport=53), proto=17,
                               src="10.1.2.3", dst="10.3.2.1"),
                       vlans=[(cw.ETH_8021AD, 20), 30]),
              None,
              dict(status="ok", vlan_id=20, vlan_depth=2, src="10.1.2.3", dst="10.3.2.1",
                   ip_proto=17, sport=5353, dport=53, udp_len=28, tcp_len=None,
                   payload_offset=14 + 8 + 20 + 8)))
    # 4. ICMP echo request, IPv4 with a record-route option
    p.append((cw.ether(cw.ipv4(cw.icmp(8, 0, payload=b"ping"), proto=1,
                               options=cw.ipv4_opt_rr(2))),
              None,
              dict(status="ok", ip_hdr_len=32, ip_proto=1, icmp_type=8, icmp_code=0,
                   sport=None, payload_offset=None)))
    # 5. IPv4 non-first fragment: no transport header
    p.append((cw.ether(cw.ipv4(b"\0" * 64, proto=17, ident=77, mf=True, frag_offset=185)),
              None,
              dict(status="ok", ip_id=77, more_fragments=True, frag_offset=185, ip_proto=17,
                   sport=None, udp_len=None)))
    # 6. Cut by snaplen: 96 of 1514 bytes captured; tcp_len from the IP length
    full = cw.ether(cw.ipv4(cw.tcp(b"D" * 1460, flags=cw.TCP_ACK, seq=1, ack=2)))
    p.append((full[:96], len(full),
              dict(status="ok", cap_len=96, len=1514, ip_len=1500, tcp_len=1460,
                   tcp_hdr_len=20, flags="A")))
    # 7. IPv6 with hop-by-hop + destination options, UDP
    p.append((cw.ether(cw.ipv6(cw.udp(b"abc", sport=1, dport=2), nh=17,
                               ext=[cw.hbh(), cw.dstopts()]), cw.ETH_IPV6),
              None,
              dict(status="ok", ip_version=6, ip_hdr_len=56, ip_proto=17, sport=1, dport=2,
                   udp_len=11)))
    # 8. GRE with key carrying IPv4/TCP: tunnel columns
    inner = cw.ipv4(cw.tcp(b"", sport=22, dport=50000, flags=cw.TCP_SYN | cw.TCP_ACK),
                    src="172.16.0.1", dst="172.16.0.2")
    p.append((cw.ether(cw.ipv4(cw.gre(inner, key=7), proto=cw.IPPROTO_GRE,
                               src="203.0.113.1", dst="203.0.113.2")),
              None,
              dict(status="ok", encap="gre", outer_src="203.0.113.1", outer_dst="203.0.113.2",
                   src="172.16.0.1", dst="172.16.0.2", sport=22, dport=50000, flags="SA")))
    # 9. VXLAN
    inner = cw.ether(cw.ipv4(cw.udp(b"q", sport=1000, dport=2000), proto=17,
                             src="192.168.0.1", dst="192.168.0.2"))
    p.append((cw.ether(cw.ipv4(cw.udp(cw.vxlan(inner, 5000), sport=49152, dport=4789),
                               proto=17, src="198.18.0.1", dst="198.18.0.2")),
              None,
              dict(status="ok", encap="vxlan", outer_src="198.18.0.1", outer_dst="198.18.0.2",
                   src="192.168.0.1", dst="192.168.0.2", sport=1000, dport=2000)))
    # 10. MPLS label stack over Ethernet
    p.append((cw.ether(cw.mpls(cw.ipv4(cw.tcp(b"z", flags=cw.TCP_FIN | cw.TCP_ACK)),
                               [100, 200]), cw.ETH_MPLS),
              None,
              dict(status="ok", encap="mpls", outer_src=None, flags="FA", tcp_len=1)))
    # 11. ARP: no IP
    p.append((cw.ether(b"\0\x01\x08\0\x06\x04\0\x01" + b"\0" * 20, cw.ETH_ARP),
              None,
              dict(status="ok", ip_version=None, src=None, sport=None)))
    # 12. Ethernet header cut
    p.append((cw.ether(cw.ipv4(cw.tcp(b"")))[:10], 54,
              dict(status="truncated", ip_version=None, cap_len=10, len=54)))
    return p


PACKETS = packets()


def records(pkts=PACKETS, start=0):
    return [cw.Record(ts(start + i), data, orig) for i, (data, orig, _) in enumerate(pkts)]


def write(tmp_path: Path, name: str, blob: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(blob)
    return str(p)


# ----------------------------------------------------------------------------- variants

def _pcapng(endian, tsresol=None, tsoffset=None, block="epb", extras=False, recs=None):
    recs = records() if recs is None else recs
    w = cw.PcapngWriter(endian)
    w.section()
    if extras:
        w.nrb([("192.0.2.1", "client.example"), ("2001:db8::10", "server.example")])
        w.dsb()
    w.interface(cw.LINKTYPE_ETHERNET, snaplen=0, tsresol=tsresol, tsoffset=tsoffset,
                name="eth0")
    offsets = []
    for i, r in enumerate(recs):
        if extras and i == 3:
            w.isb(0, cw.ns_to_units(r.ts_ns, 6 if tsresol is None else tsresol,
                                    tsoffset or 0), recv=3)
            w.unknown()
        if block == "epb":
            idx = w.epb(0, r.ts_ns, r.data, r.orig_len, opts=[(cw.OPT_COMMENT, b"hi")])
        else:
            idx = w.pb(0, r.ts_ns, r.data, r.orig_len)
        offsets.append(w.offsets[idx] + 28)
    if extras:
        w.isb(0, 0, recv=len(recs))
    return w.getvalue(), offsets


def _pcap(endian, nsec):
    blob = cw.pcap_file(records(), linktype=cw.LINKTYPE_ETHERNET, endian=endian, nsec=nsec)
    offsets, off = [], 24
    for data, _, _ in PACKETS:
        offsets.append(off + 16)
        off += 16 + len(data)
    return blob, offsets


VARIANTS = {
    "pcap-le-usec": lambda: _pcap("<", False),
    "pcap-be-usec": lambda: _pcap(">", False),
    "pcap-le-nsec": lambda: _pcap("<", True),
    "pcap-be-nsec": lambda: _pcap(">", True),
    "pcapng-le": lambda: _pcapng("<"),
    "pcapng-be": lambda: _pcapng(">"),
    "pcapng-le-ns": lambda: _pcapng("<", tsresol=9),
    "pcapng-be-ns": lambda: _pcapng(">", tsresol=9),
    "pcapng-le-pow2": lambda: _pcapng("<", tsresol=0x89),
    "pcapng-be-pow2": lambda: _pcapng(">", tsresol=0x89),
    "pcapng-le-tsoffset": lambda: _pcapng("<", tsresol=9, tsoffset=1_600_000_000),
    "pcapng-be-tsoffset-us": lambda: _pcapng(">", tsoffset=-86400),
    "pcapng-le-pb": lambda: _pcapng("<", block="pb"),
    "pcapng-be-pb": lambda: _pcapng(">", block="pb"),
    "pcapng-le-skipped-blocks": lambda: _pcapng("<", extras=True),
    "pcapng-be-skipped-blocks": lambda: _pcapng(">", tsresol=9, extras=True),
}


@pytest.fixture(scope="module")
def reference_table(tmp_path_factory):
    blob, _ = _pcap("<", False)
    path = write(tmp_path_factory.mktemp("ref"), "ref.pcap", blob)
    return tcpsift.read(path).packets


def _comparable(df):
    return df.drop([c for c in CONTAINER_COLUMNS if c in df.columns])


def assert_same_table(a, b):
    a, b = _comparable(a), _comparable(b)
    assert a.columns == b.columns
    assert a.schema == b.schema
    for col in a.columns:
        x, y = a[col].to_list(), b[col].to_list()
        assert x == y, f"column {col}: {x} != {y}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_same_table_in_every_container(variant, tmp_path, reference_table):
    blob, offsets = VARIANTS[variant]()
    path = write(tmp_path, "cap", blob)
    cap = tcpsift.read(path)
    assert cap.complete and not cap.warnings
    assert_same_table(cap.packets, reference_table)
    assert cap.packets["file_offset"].to_list() == offsets
    # gzip: same table, same offsets (offsets are in the decompressed stream)
    gz = tcpsift.read(write(tmp_path, "cap.gz", cw.gzip_bytes(blob)))
    assert_same_table(gz.packets, reference_table)
    assert gz.packets["file_offset"].to_list() == offsets
    for i, (data, _, _) in enumerate(PACKETS):
        assert cap.frame_bytes(i + 1) == data


@pytest.mark.parametrize("i", range(len(PACKETS)))
def test_values_are_what_was_written(reference_table, i):
    rows = reference_table.to_dicts()
    assert len(rows) == len(PACKETS)
    row, (data, orig, expected) = rows[i], PACKETS[i]
    assert row["frame"] == i + 1
    assert row["file_id"] == 0
    assert row["file_frame"] == i + 1
    assert row["ts_ns"] == ts(i)
    assert row["cap_len"] == len(data)
    assert row["len"] == (len(data) if orig is None else orig)
    assert row["iface"] == 0
    assert row["linktype"] == 1
    bad = {k: (row[k], v) for k, v in expected.items() if row[k] != v}
    assert not bad, f"packet {i + 1}: (got, written) {bad}"


def test_payload(tmp_path):
    blob, _ = _pcap("<", True)
    cap = tcpsift.read(write(tmp_path, "p.pcap", blob))
    assert cap.payload(2) == b"hello, world\n"
    assert cap.payload(1) == b""
    assert cap.payload(3) == b"x" * 20
    assert cap.payload(6) == PACKETS[5][0][54:96]     # only the captured part


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_pcap_timestamps_exact(tmp_path, endian, nsec):
    stamps = [0, 1000, 999_999_000, 10**9, 2**31 * 10**9 + 999_999_000, 4_102_444_800 * 10**9]
    if nsec:
        stamps += [123_456_789, 1_700_000_000_999_999_999]
    recs = [cw.Record(t, PACKETS[0][0]) for t in stamps]
    cap = tcpsift.read(write(tmp_path, "t.pcap", cw.pcap_file(recs, endian=endian, nsec=nsec)))
    assert cap.packets["ts_ns"].to_list() == stamps


@pytest.mark.parametrize("tsresol", [0, 3, 6, 9, 0x80, 0x88, 0x89, 0x94])
@pytest.mark.parametrize("tsoffset", [None, 3600, -86400])
def test_pcapng_tsresol_and_tsoffset(tmp_path, tsresol, tsoffset):
    """Raw units of any resolution: the reader must report units_to_ns (integer
    arithmetic, fraction truncated) plus if_tsoffset seconds."""
    units = [0, 1, 255, 256, 1000, 10**6 + 7, 2**40 + 12345, 2**52 + 3]
    # keep what fits the Int64 nanosecond column
    units = [u for u in units if 0 <= cw.units_to_ns(u, tsresol, tsoffset or 0) < 2**63]
    w = cw.PcapngWriter("<")
    w.section()
    w.interface(1, tsresol=tsresol, tsoffset=tsoffset)
    for u in units:
        w.epb(0, None, PACKETS[0][0], units=u)
    cap = tcpsift.read(write(tmp_path, "r.pcapng", w.getvalue()))
    expect = [cw.units_to_ns(u, tsresol, tsoffset or 0) for u in units]
    assert cap.packets["ts_ns"].to_list() == expect


def test_pcap_other_linktypes(tmp_path):
    """SLL, SLL2, NULL (either byte order), LOOP, raw IP (101, 228, 229)."""
    v4 = cw.ipv4(cw.tcp(b"abc", sport=1, dport=2), src="10.0.0.1", dst="10.0.0.2")
    v6 = cw.ipv6(cw.udp(b"abc", sport=3, dport=4), nh=17)
    cases = [
        (cw.LINKTYPE_LINUX_SLL, cw.sll(v4), 16, 4),
        (cw.LINKTYPE_LINUX_SLL, cw.sll(v6, cw.ETH_IPV6), 16, 6),
        (cw.LINKTYPE_LINUX_SLL2, cw.sll2(v4), 20, 4),
        (cw.LINKTYPE_NULL, cw.null_hdr(v4, cw.AF_INET, "<"), 4, 4),
        (cw.LINKTYPE_NULL, cw.null_hdr(v6, cw.AF_INET6_DARWIN, "<"), 4, 6),
        (cw.LINKTYPE_NULL, cw.null_hdr(v6, cw.AF_INET6_FREEBSD, ">"), 4, 6),
        (cw.LINKTYPE_LOOP, cw.loop_hdr(v4, cw.AF_INET), 4, 4),
        (cw.LINKTYPE_RAW, v4, 0, 4),
        (cw.LINKTYPE_RAW, v6, 0, 6),
        (cw.LINKTYPE_IPV4, v4, 0, 4),
        (cw.LINKTYPE_IPV6, v6, 0, 6),
    ]
    for i, (lt, data, hdr, ver) in enumerate(cases):
        for endian in "<>":
            cap = tcpsift.read(write(tmp_path, f"l{i}{endian == '<'}.pcap",
                                     cw.pcap_file([cw.Record(ts(0), data)], linktype=lt,
                                                  endian=endian)))
            row = cap.packets.row(0, named=True)
            assert row["linktype"] == lt
            assert row["status"] == "ok", (lt, row["status"])
            assert row["ip_version"] == ver, (lt, endian)
            assert row["payload_offset"] == hdr + (20 if ver == 4 else 40) + (20 if ver == 4
                                                                               else 8)
            assert cap.payload(1) == b"abc"


def test_unsupported_linktype_keeps_frame_columns(tmp_path):
    recs = [cw.Record(ts(0), b"\x01\x02\x03\x04" * 10, 50)]
    cap = tcpsift.read(write(tmp_path, "u.pcap", cw.pcap_file(recs, linktype=105)))
    row = cap.packets.row(0, named=True)
    assert (row["status"], row["cap_len"], row["len"], row["linktype"], row["ts_ns"]) == (
        "unsupported", 40, 50, 105, ts(0))
    assert row["ip_version"] is None and row["src"] is None


def test_pcapng_sections_interfaces_spb_and_custom_blocks(tmp_path):
    """Three sections of alternating byte order; several interfaces of different link
    types and resolutions; SPB (no timestamp, interface 0, length min(orig, snaplen));
    custom blocks count as frames the way tshark counts them (no timestamp, no
    interface); NRB/ISB/DSB and unknown blocks are not frames."""
    eth = PACKETS[0][0]
    ip_only = eth[14:]
    w = cw.PcapngWriter("<")
    w.section()
    w.interface(cw.LINKTYPE_ETHERNET, tsresol=6)
    w.interface(cw.LINKTYPE_RAW, tsresol=9)
    w.epb(1, ts(1), ip_only)
    w.epb(0, ts(2), eth)
    w.nrb()
    w.section(endian=">")
    w.interface(cw.LINKTYPE_ETHERNET, snaplen=60)
    w.spb(eth[:60], orig_len=len(eth))
    w.isb(0, 0)
    w.custom(b"vendor data", copy=True)
    w.section(endian="<")
    w.interface(cw.LINKTYPE_NULL, tsresol=0x89)
    w.interface(cw.LINKTYPE_ETHERNET)
    w.dsb()
    w.epb(1, ts(3), eth)
    w.epb(0, ts(4), cw.null_hdr(ip_only))
    cap = tcpsift.read(write(tmp_path, "s.pcapng", w.getvalue()))
    pk = cap.packets
    assert pk["frame"].to_list() == [1, 2, 3, 4, 5, 6]
    assert pk["ts_ns"].to_list() == [ts(1), ts(2), None, None, ts(3), ts(4)]
    assert pk["iface"].to_list()[:3] == [1, 0, 0]
    assert pk["iface"].to_list()[4:] == [1, 0]
    assert pk["linktype"].to_list()[:3] == [101, 1, 1]
    assert pk["linktype"].to_list()[4:] == [1, 0]
    assert pk["cap_len"].to_list()[2] == 60 and pk["len"].to_list()[2] == len(eth)
    for f in (1, 2, 5, 6):
        row = pk.row(f - 1, named=True)
        assert (row["status"], row["src"], row["sport"], row["mss"]) == (
            "ok", "192.0.2.1", 40000, 1460), f
    assert pk.row(2, named=True)["src"] == "192.0.2.1"       # SPB, cut at 60: IP complete
    assert pk.row(3, named=True)["src"] is None               # custom block
    assert cap.frame_bytes(3) == eth[:60]


def test_spb_length_is_min_of_original_and_snaplen(tmp_path):
    eth = PACKETS[1][0]
    w = cw.PcapngWriter(">")
    w.section()
    w.interface(cw.LINKTYPE_ETHERNET, snaplen=64)
    w.spb(eth[:64], orig_len=len(eth))
    w.spb(eth[:50], orig_len=50)
    cap = tcpsift.read(write(tmp_path, "spb.pcapng", w.getvalue()))
    assert cap.packets["cap_len"].to_list() == [64, 50]
    assert cap.packets["len"].to_list() == [len(eth), 50]


# ----------------------------------------------------------------------------- merging

def test_several_files_merged_in_timestamp_order(tmp_path):
    """Interleaved timestamps across a pcap and a pcapng: rows come out in timestamp
    order; file_id is the position in the list, file_frame the frame inside its file.
    On equal timestamps the later file's frame comes first (mergecap's rule; the
    mergecap test in tests/fields/test_ring_buffer_fields.py checks it with tshark)."""
    a_pk, b_pk = PACKETS[:4], PACKETS[4:8]
    a_ts = [ts(0), ts(2), ts(4), ts(6)]
    b_ts = [ts(1), ts(2), ts(5), ts(9)]
    a = cw.pcap_file([cw.Record(t, d, o) for t, (d, o, _) in zip(a_ts, a_pk)], nsec=True)
    b, _ = _pcapng(">", tsresol=9,
                   recs=[cw.Record(t, d, o) for t, (d, o, _) in zip(b_ts, b_pk)])
    pa, pb = write(tmp_path, "a.pcap", a), write(tmp_path, "b.pcapng", b)
    cap = tcpsift.read([pa, pb])
    pk = cap.packets
    assert pk["frame"].to_list() == list(range(1, 9))
    assert pk["ts_ns"].to_list() == sorted(a_ts + b_ts)
    assert list(zip(pk["file_id"].to_list(), pk["file_frame"].to_list())) == [
        (0, 1), (1, 1), (1, 2), (0, 2), (0, 3), (1, 3), (0, 4), (1, 4)]
    # each row decodes the packet of its own file
    single_a = tcpsift.read(pa).packets
    single_b = tcpsift.read(pb).packets
    cols = [c for c in pk.columns if c not in ("frame", "file_id", "file_frame", "file_offset")]
    for row in pk.iter_rows(named=True):
        src = single_a if row["file_id"] == 0 else single_b
        own = src.row(row["file_frame"] - 1, named=True)
        assert {c: row[c] for c in cols} == {c: own[c] for c in cols}
        assert cap.frame_bytes(row["frame"]) == (a_pk if row["file_id"] == 0 else b_pk)[
            row["file_frame"] - 1][0]
    # the order of the files given decides file_id
    rev = tcpsift.read([pb, pa]).packets
    assert rev["ts_ns"].to_list() == sorted(a_ts + b_ts)
    assert rev.filter(rev["file_id"] == 0)["file_frame"].to_list() == [1, 2, 3, 4]
    assert rev.row(2, named=True)["file_id"] == 1   # tie at ts(2): the later file first


def test_single_path_and_list_of_one_agree(tmp_path):
    blob, _ = _pcap("<", False)
    p = write(tmp_path, "one.pcap", blob)
    assert_same_table(tcpsift.read(p).packets, tcpsift.read([p]).packets)
