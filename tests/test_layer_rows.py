"""Layer rows of frames decoded once (issue 15).

A frame writes layer rows only once it shows that it needs them (a second header of a
group, a quoted header, an odd VLAN tag, a TCP header tshark shows in part): the rows of
the headers before that point are taken from the packet row (_decode.record_traced).
Each case here starts recording at another point; every row must hold its own header.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support import capwriter as cw  # noqa: E402

import tcpsift  # noqa: E402

MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
MAC3, MAC4 = "02:00:00:00:00:03", "02:00:00:00:00:04"


def _tcp(**kw) -> bytes:
    return cw.tcp(b"data", sport=1234, dport=80, seq=77, ack=88, window=999, **kw)


def _ip(payload: bytes, proto: int = cw.IPPROTO_TCP, src="10.0.0.1", dst="10.0.0.2",
        ttl: int = 61, ident: int = 4321) -> bytes:
    return cw.ipv4(payload, src=src, dst=dst, proto=proto, ttl=ttl, ident=ident, df=True)


ETH = {"kind": "eth", "eth_src": MAC1, "eth_dst": MAC2, "eth_type": 0x0800}
IP = {"kind": "ipv4", "src": "10.0.0.1", "dst": "10.0.0.2", "ttl": 61, "ip_id": 4321,
      "dont_fragment": True, "ip_hdr_len": 20}
TCP = {"kind": "tcp", "sport": 1234, "dport": 80, "seq": 77, "ack": 88, "window": 999}

# (name, frame, expected layer rows: each a dict of the columns checked)
CASES = [
    ("plain: no layer rows", cw.ether(_ip(_tcp())), []),
    ("second 802.1Q tag", cw.ether(_ip(_tcp()), vlans=(5, 7)),
     [{**ETH, "eth_type": 0x8100}, {"kind": "vlan", "vlan_id": 5, "tpid": 0x8100},
      {"kind": "vlan", "vlan_id": 7, "tpid": 0x8100}, IP, TCP]),
    ("802.1ad tag", cw.ether(_ip(_tcp()), vlans=((0x88A8, 3),)),
     [{**ETH, "eth_type": 0x88A8}, {"kind": "vlan", "vlan_id": 3, "tpid": 0x88A8}, IP, TCP]),
    ("802.1Q then 802.1ad", cw.ether(_ip(_tcp()), vlans=(9, (0x88A8, 3))),
     [{**ETH, "eth_type": 0x8100}, {"kind": "vlan", "vlan_id": 9, "tpid": 0x8100},
      {"kind": "vlan", "vlan_id": 3, "tpid": 0x88A8}, IP, TCP]),
    ("IP in GRE", cw.ether(_ip(cw.gre(_ip(_tcp(), src="10.9.0.1", ttl=5)), proto=cw.IPPROTO_GRE,
                              ttl=62, ident=1)),
     [ETH, {**IP, "ttl": 62, "ip_id": 1, "ip_proto": cw.IPPROTO_GRE},
      {**IP, "src": "10.9.0.1", "ttl": 5, "ip_proto": 6}, TCP]),
    ("VXLAN", cw.ether(_ip(cw.udp(cw.vxlan(cw.ether(_ip(_tcp(), src="10.9.0.1"), src=MAC3,
                                                    dst=MAC4)), sport=555, dport=4789),
                           proto=cw.IPPROTO_UDP)),
     [ETH, {**IP, "ip_proto": 17},
      {"kind": "udp", "sport": 555, "dport": 4789, "udp_len": 8 + 8 + 14 + 20 + 24},
      {**ETH, "eth_src": MAC3, "eth_dst": MAC4}, {**IP, "src": "10.9.0.1"}, TCP]),
    ("ICMP error quoting UDP",
     cw.ether(_ip(cw.icmp(3, 1, rest=b"\0" * 4, payload=_ip(cw.udp(b"q", sport=53, dport=9),
                                                            proto=cw.IPPROTO_UDP, src="10.0.0.2",
                                                            dst="10.0.0.3")),
                  proto=cw.IPPROTO_ICMP)),
     [ETH, {**IP, "ip_proto": 1},
      {"kind": "icmp", "icmp_type": 3, "icmp_code": 1, "quoted": False},
      {"kind": "ipv4", "quoted": True, "src": "10.0.0.2", "dst": "10.0.0.3"},
      {"kind": "udp", "quoted": True, "sport": 53, "dport": 9}]),
    ("TCP data offset below 5", cw.ether(_ip(_tcp(data_offset=4))),
     [ETH, IP, {**TCP, "tcp_hdr_len": 16}]),
    ("SACK option shorter than a block", cw.ether(_ip(_tcp(options=bytes([5, 6, 0, 0, 0, 1])))),
     [ETH, IP, {**TCP, "tcp_hdr_len": 28}]),
]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "layers.pcap"
    path.write_bytes(cw.pcap_file([cw.Record(i * 1000, f) for i, (_, f, _) in enumerate(CASES)]))
    return tcpsift.read(str(path))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_layer_rows_hold_their_own_headers(capture, i):
    _, _, expected = CASES[i]
    rows = capture.layers.filter(frame=i + 1).sort("index").to_dicts()
    assert [r["kind"] for r in rows] == [e["kind"] for e in expected]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    for row, want in zip(rows, expected):
        assert {k: row[k] for k in want} == want, row


def test_ethernet_after_ip_raw_link(tmp_path):
    """Raw IP carrying GRE-bridged Ethernet: the Ethernet header comes after the IP one,
    and the second IP header starts the layer rows."""
    inner = cw.ether(_ip(_tcp(), src="10.9.0.1"), src=MAC3, dst=MAC4)
    frame = _ip(cw.gre(inner, proto=0x6558), proto=cw.IPPROTO_GRE)
    path = tmp_path / "raw.pcap"
    path.write_bytes(cw.pcap_file([cw.Record(0, frame)], linktype=cw.LINKTYPE_RAW))
    rows = tcpsift.read(str(path)).layers.sort("index").to_dicts()
    assert [r["kind"] for r in rows] == ["ipv4", "eth", "ipv4", "tcp"]
    assert rows[0]["ip_proto"] == cw.IPPROTO_GRE and rows[0]["src"] == "10.0.0.1"
    assert (rows[1]["eth_src"], rows[1]["eth_dst"]) == (MAC3, MAC4)
    assert rows[2]["src"] == "10.9.0.1"
