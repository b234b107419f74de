"""TCP headers quoted in ICMP/ICMPv6 errors print like tshark (hand-made captures).

tshark 4.0 shows a quoted TCP header differently by ICMP version, message type and how
much was quoted; the corpus has only five such frames, so this builds every combination.
"""
from __future__ import annotations

import struct

import pytest
from harness import tcpsift_fields, tshark_fields, tshark_version

FIELDS = ["frame.number", "icmp.type", "icmpv6.type", "tcp.port", "tcp.seq_raw", "tcp.ack_raw",
          "tcp.hdr_len", "tcp.flags", "tcp.window_size_value", "tcp.len"]

pytestmark = pytest.mark.skipif(tshark_version() is None, reason="tshark is not installed")


def _csum(b: bytes) -> int:
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def _ip4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                    bytes(src), bytes(dst))
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + payload


def _ip6(src, dst, nh, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, src, dst) + payload


def _pcap(frames) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", i, 0, len(f), len(f)) + f)
    return b"".join(out)


def _frames():
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1000, 2000, 5 << 4, 0x18, 512, 0, 0)
    eth4, eth6 = b"\0" * 6 + b"\1" * 6 + b"\x08\x00", b"\0" * 6 + b"\1" * 6 + b"\x86\xdd"
    inner4 = _ip4([10, 0, 0, 1], [10, 0, 0, 9], 6, tcp)
    a, b = bytes(15) + b"\1", bytes(15) + b"\2"
    inner6 = _ip6(a, bytes(15) + b"\x09", 6, tcp)
    for typ, code in [(3, 1), (4, 0), (5, 1), (11, 0), (12, 0)]:
        for quoted in (inner4, inner4[:28], inner4[:36], inner4[:31]):
            icmp = struct.pack("!BBHI", typ, code, 0, 0) + quoted
            icmp = icmp[:2] + struct.pack("!H", _csum(icmp)) + icmp[4:]
            yield eth4 + _ip4([10, 0, 0, 254], [10, 0, 0, 1], 1, icmp)
    for typ in (1, 2, 3, 4):
        for quoted in (inner6, inner6[:48], inner6[:56], inner6[:51]):
            icmp = struct.pack("!BBHI", typ, 0, 0, 1280 if typ == 2 else 0) + quoted
            yield eth6 + _ip6(b, a, 58, icmp)


def test_quoted_tcp_like_tshark(tmp_path):
    path = tmp_path / "quoted-tcp.pcap"
    path.write_bytes(_pcap(list(_frames())))
    _, theirs = tshark_fields(path, FIELDS)
    ours = tcpsift_fields(path, FIELDS)
    assert ours.decode().splitlines() == theirs.decode().splitlines()
