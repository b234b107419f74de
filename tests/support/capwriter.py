"""A small, obvious pure-Python writer of packet captures, for tests.

Containers
----------
- classic pcap: `pcap_file(records, linktype, endian="<", nsec=False, snaplen=262144)`;
  all four magics (usec/nsec x little/big endian), per-record caplen/origlen.
- pcapng: `PcapngWriter(endian)` with `.section()`, `.interface()` (link type, snaplen,
  if_tsresol as a power of 10 or of 2, if_tsoffset), `.epb()`, `.spb()`, `.pb()` (obsolete
  Packet Block), and blocks that readers skip: `.nrb()`, `.isb()`, `.dsb()`, `.custom()`.
  Several sections and either byte order (also mixed, one per section).
- `gzip_bytes(data)`.

Packets
-------
Tiny builders returning bytes: `ether`, `sll`, `sll2`, `null_hdr`, `loop_hdr`, `ipv4`, `ipv6`
(with `hbh`, `dstopts`, `routing`, `frag6` extension headers), `tcp` (with `opt_mss`,
`opt_ws`, `opt_sack_perm`, `opt_sack`, `opt_ts`, `opt_nop`, `opt_eol`), `udp`, `icmp`,
`icmpv6`, `gre`, `vxlan`, `mpls`. Lengths and checksums are computed unless given.

Timestamps are integers in nanoseconds since the Unix epoch throughout.
"""
from __future__ import annotations

import gzip
import ipaddress
import struct
from dataclasses import dataclass

# ----------------------------------------------------------------------------- records


@dataclass
class Record:
    ts_ns: int
    data: bytes
    orig_len: int | None = None   # default: len(data)
    iface: int = 0                # pcapng only
    cap_len: int | None = None    # pcap only: override the caplen field (data is written as is)

    @property
    def wire_len(self) -> int:
        return len(self.data) if self.orig_len is None else self.orig_len


LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

# ----------------------------------------------------------------------------- classic pcap

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D


def pcap_header(linktype: int = 1, endian: str = "<", nsec: bool = False,
                snaplen: int = 262144, version: tuple[int, int] = (2, 4)) -> bytes:
    magic = PCAP_MAGIC_NSEC if nsec else PCAP_MAGIC_USEC
    return struct.pack(endian + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)


def pcap_record(rec: Record, endian: str = "<", nsec: bool = False) -> bytes:
    sec, frac_ns = divmod(rec.ts_ns, 1_000_000_000)
    if nsec:
        frac = frac_ns
    else:
        if frac_ns % 1000:
            raise ValueError(f"timestamp {rec.ts_ns} is not a whole number of microseconds")
        frac = frac_ns // 1000
    caplen = len(rec.data) if rec.cap_len is None else rec.cap_len
    return struct.pack(endian + "IIII", sec, frac, caplen, rec.wire_len) + rec.data


def pcap_file(records, linktype: int = 1, endian: str = "<", nsec: bool = False,
              snaplen: int = 262144, version: tuple[int, int] = (2, 4)) -> bytes:
    out = [pcap_header(linktype, endian, nsec, snaplen, version)]
    out += [pcap_record(r, endian, nsec) for r in records]
    return b"".join(out)


# ----------------------------------------------------------------------------- pcapng

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_PB = 0x00000002
BT_SPB = 0x00000003
BT_NRB = 0x00000004
BT_ISB = 0x00000005
BT_EPB = 0x00000006
BT_DSB = 0x0000000A
BT_CB_COPY = 0x00000BAD
BT_CB_NOCOPY = 0x40000BAD

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_SNAPLEN_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14
# more option codes (pcapng spec), for blocks written with opts=[(code, value bytes)]
SHB_HARDWARE, SHB_OS, SHB_USERAPPL = 2, 3, 4
IF_NAME, IF_DESCRIPTION, IF_IPV4ADDR, IF_MACADDR, IF_SPEED = 2, 3, 4, 6, 8
IF_TZONE, IF_FILTER, IF_OS, IF_FCSLEN, IF_HARDWARE = 10, 11, 12, 13, 15
EPB_FLAGS, EPB_HASH, EPB_DROPCOUNT, EPB_PACKETID, EPB_QUEUE, EPB_VERDICT = 2, 3, 4, 5, 6, 7
OPT_CUSTOM_STR, OPT_CUSTOM_BIN, OPT_CUSTOM_STR_NOCOPY, OPT_CUSTOM_BIN_NOCOPY = 2988, 2989, 19372, 19373


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def tsresol_divisor(tsresol: int) -> int:
    """Units per second for an if_tsresol byte (bit 7 set: power of 2, else power of 10)."""
    return 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol


def units_to_ns(units: int, tsresol: int = 6, tsoffset: int = 0) -> int:
    """The time a reader should report for a raw pcapng timestamp (integer arithmetic,
    fraction truncated towards zero as wiretap does)."""
    div = tsresol_divisor(tsresol)
    sec, frac = divmod(units, div)
    return (sec + tsoffset) * 1_000_000_000 + frac * 1_000_000_000 // div


def ns_to_units(ts_ns: int, tsresol: int = 6, tsoffset: int = 0) -> int:
    """Raw pcapng timestamp for a time; raises unless the time is exactly representable."""
    div = tsresol_divisor(tsresol)
    t = ts_ns - tsoffset * 1_000_000_000
    units, rem = divmod(t * div, 1_000_000_000)
    if rem:
        raise ValueError(f"{ts_ns} ns is not representable with if_tsresol {tsresol:#x}")
    if units < 0:
        raise ValueError("negative pcapng timestamp")
    return units


class PcapngWriter:
    """Build a pcapng file block by block. Each section may have its own byte order."""

    def __init__(self, endian: str = "<"):
        self.endian = endian
        self.parts: list[bytes] = []
        self.ifaces: list[dict] = []      # interfaces of the current section
        self.offsets: list[int] = []      # file offset of each block
        self._size = 0

    # -- low level
    def block(self, btype: int, body: bytes, endian: str | None = None) -> int:
        e = endian or self.endian
        body = _pad4(body)
        total = 12 + len(body)
        blk = struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total)
        self.offsets.append(self._size)
        self.parts.append(blk)
        self._size += len(blk)
        return len(self.offsets) - 1

    def options(self, opts, endian: str | None = None) -> bytes:
        """opts: list of (code, value-bytes). Adds opt_endofopt when not empty."""
        if not opts:
            return b""
        e = endian or self.endian
        out = b"".join(struct.pack(e + "HH", code, len(val)) + _pad4(val) for code, val in opts)
        return out + struct.pack(e + "HH", OPT_ENDOFOPT, 0)

    # -- blocks
    def section(self, endian: str | None = None, version=(1, 0), section_length: int = -1,
                opts=()) -> None:
        if endian:
            self.endian = endian
        e = self.endian
        body = struct.pack(e + "IHHq", 0x1A2B3C4D, version[0], version[1], section_length)
        self.block(BT_SHB, body + self.options(list(opts)))
        self.ifaces = []

    def interface(self, linktype: int = 1, snaplen: int = 0, tsresol: int | None = None,
                  tsoffset: int | None = None, name: str | None = None, opts=()) -> int:
        e = self.endian
        o = list(opts)
        if name is not None:
            o.append((IF_SNAPLEN_NAME, name.encode()))
        if tsresol is not None:
            o.append((IF_TSRESOL, bytes([tsresol])))
        if tsoffset is not None:
            o.append((IF_TSOFFSET, struct.pack(e + "q", tsoffset)))
        body = struct.pack(e + "HHI", linktype, 0, snaplen) + self.options(o)
        self.block(BT_IDB, body)
        self.ifaces.append({"linktype": linktype, "snaplen": snaplen,
                            "tsresol": 6 if tsresol is None else tsresol,
                            "tsoffset": tsoffset or 0})
        return len(self.ifaces) - 1

    def _units(self, iface: int, ts_ns: int | None, units: int | None) -> int:
        if units is not None:
            return units
        i = self.ifaces[iface] if iface < len(self.ifaces) else {"tsresol": 6, "tsoffset": 0}
        return ns_to_units(ts_ns, i["tsresol"], i["tsoffset"])

    def epb(self, iface: int, ts_ns: int | None, data: bytes, orig_len: int | None = None,
            units: int | None = None, opts=(), cap_len: int | None = None) -> int:
        e = self.endian
        u = self._units(iface, ts_ns, units)
        caplen = len(data) if cap_len is None else cap_len
        body = struct.pack(e + "IIIII", iface, u >> 32, u & 0xFFFFFFFF, caplen,
                           len(data) if orig_len is None else orig_len)
        return self.block(BT_EPB, body + _pad4(data) + self.options(list(opts)))

    def record(self, rec: Record) -> int:
        return self.epb(rec.iface, rec.ts_ns, rec.data, rec.orig_len)

    def spb(self, data: bytes, orig_len: int | None = None) -> int:
        """Simple Packet Block: interface 0, no timestamp. The reader takes
        min(orig_len, snaplen of interface 0) bytes as captured; write them all."""
        body = struct.pack(self.endian + "I", len(data) if orig_len is None else orig_len)
        return self.block(BT_SPB, body + data)

    def pb(self, iface: int, ts_ns: int | None, data: bytes, orig_len: int | None = None,
           drops: int = 0, units: int | None = None, opts=()) -> int:
        """Obsolete Packet Block (type 2); opts as for epb() (pack_flags 2, pack_hash 3)."""
        e = self.endian
        u = self._units(iface, ts_ns, units)
        body = struct.pack(e + "HHIIII", iface, drops, u >> 32, u & 0xFFFFFFFF, len(data),
                           len(data) if orig_len is None else orig_len)
        return self.block(BT_PB, body + _pad4(data) + self.options(list(opts)))

    def nrb(self, entries=(("10.0.0.1", "host.example"),)) -> int:
        e = self.endian
        body = b""
        for addr, name in entries:
            ip = ipaddress.ip_address(addr)
            rtype = 1 if ip.version == 4 else 2
            val = ip.packed + name.encode() + b"\0"
            body += struct.pack(e + "HH", rtype, len(val)) + _pad4(val)
        body += struct.pack(e + "HH", 0, 0)
        return self.block(BT_NRB, body)

    def isb(self, iface: int = 0, units: int = 0, recv: int | None = None) -> int:
        e = self.endian
        opts = [] if recv is None else [(4, struct.pack(e + "Q", recv))]
        body = struct.pack(e + "III", iface, units >> 32, units & 0xFFFFFFFF)
        return self.block(BT_ISB, body + self.options(opts))

    def dsb(self, secrets: bytes = b"CLIENT_RANDOM 00 00\n", stype: int = 0x544C534B) -> int:
        body = struct.pack(self.endian + "II", stype, len(secrets)) + _pad4(secrets)
        return self.block(BT_DSB, body)

    def custom(self, data: bytes = b"custom", pen: int = 32473, copy: bool = True) -> int:
        body = struct.pack(self.endian + "I", pen) + data
        return self.block(BT_CB_COPY if copy else BT_CB_NOCOPY, body)

    def unknown(self, btype: int = 0x0000ABCD, data: bytes = b"\x01\x02\x03\x04") -> int:
        return self.block(btype, data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def pcapng_file(records, linktype: int = 1, endian: str = "<", tsresol: int | None = None,
                tsoffset: int | None = None, snaplen: int = 0) -> bytes:
    """One section, one interface, one EPB per record."""
    w = PcapngWriter(endian)
    w.section()
    w.interface(linktype, snaplen=snaplen, tsresol=tsresol, tsoffset=tsoffset)
    for r in records:
        w.epb(0, r.ts_ns, r.data, r.orig_len)
    return w.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# ----------------------------------------------------------------------------- checksums


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _addr(a) -> bytes:
    if isinstance(a, bytes):
        return a
    return ipaddress.ip_address(a).packed


# ----------------------------------------------------------------------------- link layers

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_8021Q = 0x8100
ETH_8021AD = 0x88A8
ETH_IPV6 = 0x86DD
ETH_MPLS = 0x8847
ETH_PPPOE_SESSION = 0x8864
ETH_TEB = 0x6558


def mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def ether(payload: bytes, ethertype: int = ETH_IPV4, src: str = "02:00:00:00:00:01",
          dst: str = "02:00:00:00:00:02", vlans=()) -> bytes:
    """vlans: outermost first, each a VLAN id or (tpid, vid[, pcp[, dei]])."""
    tags = b""
    for v in vlans:
        if isinstance(v, int):
            v = (ETH_8021Q, v)
        tpid, vid, pcp, dei = (tuple(v) + (0, 0))[:4]
        tags += struct.pack("!HH", tpid, (pcp << 13) | (dei << 12) | vid)
    return mac(dst) + mac(src) + tags + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, protocol: int = ETH_IPV4, pkttype: int = 0, hatype: int = 1,
        addr: bytes = b"\x02\0\0\0\0\x01") -> bytes:
    """Linux cooked capture v1 (16 bytes)."""
    return struct.pack("!HHH8sH", pkttype, hatype, len(addr), addr.ljust(8, b"\0"),
                       protocol) + payload


def sll2(payload: bytes, protocol: int = ETH_IPV4, ifindex: int = 2, hatype: int = 1,
         pkttype: int = 0, addr: bytes = b"\x02\0\0\0\0\x01") -> bytes:
    """Linux cooked capture v2 (20 bytes)."""
    return struct.pack("!HHIHBB8s", protocol, 0, ifindex, hatype, pkttype, len(addr),
                       addr.ljust(8, b"\0")) + payload


AF_INET = 2
AF_INET6_BSD = 24    # NetBSD/OpenBSD
AF_INET6_FREEBSD = 28
AF_INET6_DARWIN = 30


def null_hdr(payload: bytes, af: int = AF_INET, endian: str = "<") -> bytes:
    """BSD loopback (link type 0): AF in the capturing host's byte order."""
    return struct.pack(endian + "I", af) + payload


def loop_hdr(payload: bytes, af: int = AF_INET) -> bytes:
    """OpenBSD loopback (link type 108): AF in network byte order."""
    return struct.pack("!I", af) + payload


def mpls(payload: bytes, labels=((100, 0, 64),)) -> bytes:
    """labels: outermost first, each (label, tc, ttl) or a label. S bit set on the last."""
    out = b""
    for i, lab in enumerate(labels):
        if isinstance(lab, int):
            lab = (lab, 0, 64)
        label, tc, ttl = lab
        s = 1 if i == len(labels) - 1 else 0
        out += struct.pack("!I", (label << 12) | (tc << 9) | (s << 8) | ttl)
    return out + payload


# ----------------------------------------------------------------------------- IP

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60


def ipv4(payload: bytes, src="192.0.2.1", dst="198.51.100.2", proto: int = IPPROTO_TCP,
         ttl: int = 64, ident: int = 0, df: bool = False, mf: bool = False,
         frag_offset: int = 0, options: bytes = b"", tos: int = 0,
         total_length: int | None = None, ihl: int | None = None, version: int = 4,
         evil: bool = False) -> bytes:
    """IPv4 header + payload. frag_offset in 8-byte units. options padded to 4 bytes."""
    options = _pad4(options)
    hl = 5 + len(options) // 4 if ihl is None else ihl
    tl = 20 + len(options) + len(payload) if total_length is None else total_length
    flags = (0x8000 if evil else 0) | (0x4000 if df else 0) | (0x2000 if mf else 0)
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | hl, tos, tl, ident,
                      flags | frag_offset, ttl, proto, 0, _addr(src), _addr(dst)) + options
    csum = inet_checksum(hdr)
    hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
    return hdr + payload


def ipv4_opt_rr(n: int = 2) -> bytes:
    """Record route option with room for n addresses (pointer 4)."""
    return bytes([7, 3 + 4 * n, 4]) + b"\0" * (4 * n)


def ipv4_opt_router_alert() -> bytes:
    return bytes([148, 4, 0, 0])


def ipv6_ext(kind: int, body: bytes = b"") -> tuple[int, bytes]:
    """An extension header (next-header code, bytes after the first two) for ipv6(ext=...).
    Hop-by-hop, destination options and routing bodies are padded (PadN) to 8n+6 bytes."""
    return (kind, body)


def hbh(options: bytes = b"") -> tuple[int, bytes]:
    return (IPPROTO_HOPOPTS, _padn(options))


def dstopts(options: bytes = b"") -> tuple[int, bytes]:
    return (IPPROTO_DSTOPTS, _padn(options))


def routing(rtype: int = 0, segments_left: int = 0, addresses=()) -> tuple[int, bytes]:
    body = bytes([rtype, segments_left]) + b"\0" * 4 + b"".join(_addr(a) for a in addresses)
    return (IPPROTO_ROUTING, body)


def frag6(offset: int = 0, m: bool = False, ident: int = 0) -> tuple[int, bytes]:
    """Fragment header; offset in 8-byte units."""
    return (IPPROTO_FRAGMENT, struct.pack("!BHI", 0, (offset << 3) | int(m), ident))


def jumbo_option(length: int) -> bytes:
    return struct.pack("!BBI", 0xC2, 4, length)


def _padn(options: bytes) -> bytes:
    n = -(len(options) + 2) % 8
    if n == 0:
        return options
    if n == 1:
        return options + b"\0"                      # Pad1
    return options + bytes([1, n - 2]) + b"\0" * (n - 2)   # PadN


def ipv6(payload: bytes, src="2001:db8::1", dst="2001:db8::2", nh: int = IPPROTO_TCP,
         hlim: int = 64, ext=(), tclass: int = 0, flow: int = 0,
         payload_length: int | None = None, version: int = 6) -> bytes:
    """IPv6 header, extension headers (list of (code, body) outermost first), payload.
    nh is the protocol of `payload` (after the extension headers)."""
    ext = list(ext)
    chain = b""
    for i, (code, body) in enumerate(ext):
        nxt = ext[i + 1][0] if i + 1 < len(ext) else nh
        if code == IPPROTO_FRAGMENT:
            chain += bytes([nxt]) + body
        else:
            raw = bytes([nxt, 0]) + body
            raw = raw + b"\0" * (-len(raw) % 8)
            chain += bytes([nxt, len(raw) // 8 - 1]) + raw[2:]
    first = ext[0][0] if ext else nh
    plen = len(chain) + len(payload) if payload_length is None else payload_length
    hdr = struct.pack("!IHBB16s16s", (version << 28) | (tclass << 20) | flow, plen, first,
                      hlim, _addr(src), _addr(dst))
    return hdr + chain + payload


# ----------------------------------------------------------------------------- transport

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR, TCP_AE = (
    1, 2, 4, 8, 16, 32, 64, 128, 256)


def opt_eol() -> bytes:
    return b"\0"


def opt_nop() -> bytes:
    return b"\x01"


def opt_mss(v: int) -> bytes:
    return struct.pack("!BBH", 2, 4, v)


def opt_ws(shift: int) -> bytes:
    return struct.pack("!BBB", 3, 3, shift)


def opt_sack_perm() -> bytes:
    return b"\x04\x02"


def opt_sack(blocks) -> bytes:
    """blocks: list of (left, right) raw sequence numbers."""
    return struct.pack("!BB", 5, 2 + 8 * len(blocks)) + b"".join(
        struct.pack("!II", left, right) for left, right in blocks)


def opt_ts(tsval: int, tsecr: int) -> bytes:
    return struct.pack("!BBII", 8, 10, tsval, tsecr)


def tcp(payload: bytes = b"", sport: int = 40000, dport: int = 80, seq: int = 1000,
        ack: int = 0, flags: int = TCP_ACK, window: int = 65535, options: bytes = b"",
        urg: int = 0, data_offset: int | None = None, checksum: int = 0) -> bytes:
    """TCP header + payload. options are padded with EOL to 4 bytes. flags may include
    AE (0x100), which goes in the reserved nibble."""
    options = options + b"\0" * (-len(options) % 4)
    doff = 5 + len(options) // 4 if data_offset is None else data_offset
    off_flags = (doff << 12) | (flags & 0xFFF)
    return struct.pack("!HHIIHHHH", sport, dport, seq, ack, off_flags, window, checksum,
                       urg) + options + payload


def udp(payload: bytes = b"", sport: int = 40000, dport: int = 53,
        length: int | None = None, checksum: int = 0) -> bytes:
    ln = 8 + len(payload) if length is None else length
    return struct.pack("!HHHH", sport, dport, ln, checksum) + payload


def icmp(icmp_type: int = 8, code: int = 0, rest: bytes = b"\0\x01\0\x01",
         payload: bytes = b"") -> bytes:
    body = struct.pack("!BBH", icmp_type, code, 0) + rest + payload
    return body[:2] + struct.pack("!H", inet_checksum(body)) + body[4:]


def icmpv6(icmp_type: int = 128, code: int = 0, rest: bytes = b"\0\x01\0\x01",
           payload: bytes = b"") -> bytes:
    """ICMPv6 with checksum 0 (tshark does not validate checksums by default)."""
    return struct.pack("!BBH", icmp_type, code, 0) + rest + payload


GRE_PROTO_IPV4 = 0x0800
GRE_PROTO_IPV6 = 0x86DD


def gre(payload: bytes, proto: int = GRE_PROTO_IPV4, key: int | None = None,
        seq: int | None = None, checksum: bool = False) -> bytes:
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0) | (
        0x1000 if seq is not None else 0)
    out = struct.pack("!HH", flags, proto)
    if checksum:
        out += b"\0\0\0\0"
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out + payload


VXLAN_PORT = 4789


def vxlan(inner_frame: bytes, vni: int = 42) -> bytes:
    """VXLAN header + inner Ethernet frame (the UDP payload; use dport 4789)."""
    return struct.pack("!II", 0x08000000, vni << 8) + inner_frame


# ----------------------------------------------------------------------------- convenience


def eth_ipv4_tcp(payload: bytes = b"", **kw) -> bytes:
    """Ethernet / IPv4 / TCP with keyword arguments routed by prefix: ip_*, tcp_*."""
    ip_kw = {k[3:]: v for k, v in kw.items() if k.startswith("ip_")}
    tcp_kw = {k[4:]: v for k, v in kw.items() if k.startswith("tcp_")}
    return ether(ipv4(tcp(payload, **tcp_kw), proto=IPPROTO_TCP, **ip_kw))
