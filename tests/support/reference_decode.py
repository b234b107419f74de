"""A slow, obvious reference decoder for the frame-dependent packet-table columns.

`decode(frame, linktype, wire_len=None) -> dict` returns, for one frame, the values of the
columns of `tcpsift.schema.PACKET_COLUMNS` that depend on the frame's bytes (see
`COLUMNS`), None where the layer is absent. One `struct.unpack` per header, no cleverness;
it exists to be compared with the compiled kernel.

Semantics follow tshark 4.0 (default preferences):

- `tcp_len` is computed from the IP length (IPv4 total length, IPv6 40 + payload length or
  jumbo length), capped by the frame's reported (wire) length the way tshark caps a tvb:
  a frame cut by snaplen still gets the full TCP length. IPv4 total length 0 is "TSO":
  the IP length is then the frame's remaining reported length.
- IP fragments (IPv4 or IPv6, MF set or offset != 0) carry no transport header: only
  the IP columns are set. As tshark reassembles by default, `reassemble()` decodes the
  frame whose fragment completes a datagram through the reassembled payload.
- Ethertype 0x0800 always means IPv4 (a version field of 6 there is a malformed IPv4
  header, as in tshark); the raw-IP link types 101/12/14 and 228/229 dispatch on the version.
- Tunnels: the packet table keeps the innermost IP header and its transport header;
  `encap` is the outermost encapsulation that leads to it, `outer_src/outer_dst` the
  outermost IP header when there is more than one IP header.
- ICMP/ICMPv6 errors quote a packet; the quoted headers never enter the packet table.
- `status`: "truncated" when the captured bytes end inside a header we decode,
  "malformed" when a header field is impossible, "unsupported" for link types not decoded.
  Decoding stops there; the columns of the headers decoded so far keep their values.
"""
from __future__ import annotations

import struct

COLUMNS = (
    "status", "vlan_id", "vlan_depth", "encap", "outer_src", "outer_dst", "ip_version",
    "src", "dst", "ip_hdr_len", "ip_len", "ip_id", "ttl", "ip_proto", "dont_fragment",
    "more_fragments", "frag_offset", "sport", "dport", "tcp_flags", "seq", "ack",
    "tcp_hdr_len", "window", "tcp_len", "mss", "wscale", "sack_perm", "sack_blocks", "tsval",
    "tsecr", "udp_len", "icmp_type", "icmp_code", "payload_offset",
)

SUPPORTED_LINKTYPES = {0, 1, 12, 14, 101, 108, 113, 228, 229, 276,
                       9, 10, 50, 104, 107, 129, 239, 242, 258}

ETH_IPV4, ETH_IPV6, ETH_8021Q, ETH_8021AD, ETH_QINQ_OLD = 0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100
ETH_MPLS_UC, ETH_MPLS_MC, ETH_PPPOE_SESSION, ETH_TEB = 0x8847, 0x8848, 0x8864, 0x6558
VLAN_TPIDS = (ETH_8021Q, ETH_8021AD, ETH_QINQ_OLD)
ETH_CISCO_MD = 0x8909

IPV6_EXT = (0, 43, 44, 60, 51)      # hop-by-hop, routing, fragment, destination options, AH

UDP_VXLAN, UDP_GENEVE, UDP_GTPU, UDP_MPLS = 4789, 6081, 2152, 6635


class Stop(Exception):
    """Decoding ends here; status says why."""

    def __init__(self, status: str):
        self.status = status


def ipv4_text(b: bytes) -> str:
    return "%d.%d.%d.%d" % tuple(b)


def ipv6_text(b: bytes) -> str:
    """inet_ntop(AF_INET6) as glibc/BIND do it (what tshark prints): longest run of two
    or more zero words compressed (first one on ties), lower-case hex, and the last 32
    bits in dotted quad for ::a.b.c.d and ::ffff:a.b.c.d."""
    words = struct.unpack("!8H", b)
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    out = ""
    i = 0
    while i < 8:
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out += ":"
            i += 1
            continue
        if i:
            out += ":"
        if (i == 6 and best_base == 0
                and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF))):
            out += ipv4_text(b[12:16])
            break
        out += "%x" % words[i]
        i += 1
    if best_base != -1 and best_base + best_len == 8:
        out += ":"
    return out


class _Decoder:
    def __init__(self, frame: bytes, linktype: int, wire_len: int | None, reasm=None):
        self.b = frame
        self.cap = len(frame)
        self.wire = max(self.cap, wire_len if wire_len is not None else self.cap)
        self.linktype = linktype
        self.r = dict.fromkeys(COLUMNS)
        self.r["status"] = "ok"
        self.ips: list[tuple[int, bytes, bytes]] = []   # (version, src, dst) outermost first
        self.encap = None
        # reassembly: (offset of the IP header that completed a datagram, length of the
        # reassembled payload that follows its header in this synthetic frame)
        self.reasm_off, self.reasm_len = reasm if reasm else (-1, 0)
        self.frag = None                # (ip offset, fragment data offset) of a fragment
        self.rend = self.wire           # reported end of the innermost IP packet

    # -- helpers
    def need(self, off: int, n: int) -> None:
        """Bytes [off, off+n) must be captured. Past the reported end of the current
        packet it is malformed (tshark: ReportedBoundsError), else truncated (snaplen)."""
        if off + n > self.cap:
            raise Stop("malformed" if off + n > self.rend else "truncated")

    def u8(self, off):
        self.need(off, 1)
        return self.b[off]

    def u16(self, off):
        self.need(off, 2)
        return struct.unpack_from("!H", self.b, off)[0]

    def u32(self, off):
        self.need(off, 4)
        return struct.unpack_from("!I", self.b, off)[0]

    def set_encap(self, name: str) -> None:
        if self.encap is None:
            self.encap = name
            self.encap_depth = len(self.ips)

    def refine_encap(self, name: str) -> None:
        """GRE turns out to carry ERSPAN: say so if GRE was the outermost encapsulation."""
        if self.encap == "gre" and self.encap_depth == len(self.ips):
            self.encap = name

    # -- driver
    def run(self) -> dict:
        r = self.r
        r["vlan_depth"] = 0
        r["encap"] = ""
        if self.linktype not in SUPPORTED_LINKTYPES:
            r["status"] = "unsupported"     # frame columns only (and vlan_depth 0, encap "")
            return r
        try:
            self.link(self.linktype, 0, self.wire)
        except Stop as e:
            r["status"] = e.status
        # encap: set as soon as a tunnel header is recognised (even if nothing decodable
        # follows); outer_src/outer_dst only when there are two IP headers or more.
        r["encap"] = self.encap or ""
        if len(self.ips) > 1:
            v, s, d = self.ips[0]
            fmt = ipv4_text if v == 4 else ipv6_text
            r["outer_src"], r["outer_dst"] = fmt(s), fmt(d)
        return r

    # -- link layers; `end` is the reported end of the current packet (tvb reported length)
    def link(self, lt: int, off: int, end: int) -> None:
        if lt == 1:
            self.ethernet(off, end)
        elif lt == 113:     # Linux SLL: protocol at 14
            proto = self.u16(off + 14)
            hatype = self.u16(off + 2)
            self.sll_payload(hatype, proto, off + 16, end)
        elif lt == 276:     # Linux SLL2: protocol at 0, header 20 bytes
            proto = self.u16(off)
            hatype = self.u16(off + 8)
            self.need(off, 20)
            self.sll_payload(hatype, proto, off + 20, end)
        elif lt == 0:       # BSD NULL: AF in the capturing host's byte order
            self.need(off, 4)
            self.null(struct.unpack_from("<I", self.b, off)[0], off + 4, end)
        elif lt == 108:     # OpenBSD LOOP: AF in network byte order
            self.af(self.u32(off), off + 4, end)
        elif lt in (12, 14, 101):
            self.ip_any(off, end)
        elif lt == 228:
            self.ip_any(off, end)
        elif lt == 229:
            self.ip_any(off, end)
        elif lt in (9, 50):     # PPP, PPP in HDLC framing (address/control optional)
            self.ppp(off, end)
        elif lt == 104:         # Cisco HDLC: address, control, Ethertype
            self.ethertype(self.u16(off + 2), off + 4, end)
        elif lt == 107:         # Frame Relay: Q.922 address, then NLPID or Cisco Ethertype
            self.need(off, 4)
            if self.b[off + 2] != 0x03:
                self.ethertype(self.u16(off + 2), off + 4, end)
                return
            pos = off + 4 if self.b[off + 3] == 0 else off + 3
            nlpid = self.u8(pos)
            if nlpid == 0xCC:
                self.ipv4(pos + 1, end)
            elif nlpid == 0x8E:
                self.ipv6(pos + 1, end)
            elif nlpid == 0x80:
                self.ethertype(self.u16(pos + 4), pos + 6, end)
        elif lt == 10:          # FDDI: FC, DA, SA, LLC/SNAP
            self.need(off, 21)
            if self.b[off + 13:off + 16] == b"\xaa\xaa\x03":
                self.ethertype(self.u16(off + 19), off + 21, end)
        elif lt == 129:         # ARCNET (Linux): src, dst, offset, protocol id
            proto = self.u8(off + 4)
            if proto == 0xD4:   # RFC 1201: split flag and sequence before IP
                self.need(off, 8)
                self.ipv4(off + 8, end)
            elif proto == 0xF0:
                self.ipv4(off + 5, end)
        elif lt == 239:         # NFLOG: little-endian TLVs, type 9 carries the packet
            pos = off + 4
            while self.cap - pos >= 4:
                tlen, ttype = struct.unpack_from("<HH", self.b, pos)
                if tlen < 4 or tlen > self.cap - pos:
                    raise Stop("malformed")
                if ttype & 0x7FFF == 9:
                    self.ip_any(pos + 4, min(end, pos + tlen))
                    return
                pos += (tlen + 3) & ~3
        elif lt == 242:         # IPoIB: type + reserved, or 40 address bytes before them
            if self.cap - off >= 4 and self.u16(off) in (ETH_IPV4, ETH_IPV6):
                self.ethertype(self.u16(off), off + 4, end)
            else:
                self.ethertype(self.u16(off + 40), off + 44, end)
        elif lt == 258:         # PKTAP: header length, then the inner link type
            self.need(off, 8)
            hlen, inner = struct.unpack_from("<II", self.b, off)
            if hlen < 8 or hlen > self.cap - off:
                raise Stop("malformed")
            if inner == 1:
                self.ethernet(off + hlen, end)

    def null(self, h: int, off: int, end: int) -> None:
        """tshark's guess (packet-null.c, on a little-endian host): the 4 bytes are an AF
        value in either byte order, or an Ethertype in either half."""
        if h & 0xFFFF0000:
            if not h & 0xFF000000 and (h & 0x00FF0000) < 0x00060000:
                h >>= 16
            else:
                h = struct.unpack("<I", struct.pack(">I", h))[0]
        elif not h & 0xFF and (h & 0xFF00) < 0x0600:
            h = ((h & 0xFF) << 8) | ((h >> 8) & 0xFF)
        if h > 1500:
            self.ethertype(h & 0xFFFF, off, end)
        else:
            self.af(h, off, end)

    def af(self, af: int, off: int, end: int) -> None:
        if af == 2:
            self.ipv4(off, end)
        elif af in (24, 28, 30):
            self.ipv6(off, end)

    def sll_payload(self, hatype: int, proto: int, off: int, end: int) -> None:
        if hatype in (824, 0x0338):     # netlink: not IP
            return
        self.ethertype(proto, off, end)

    def ethernet(self, off: int, end: int) -> None:
        self.need(off, 14)
        et = self.u16(off + 12)
        off += 14
        if et <= 1500:                 # 802.3 length: LLC, maybe SNAP
            if self.cap >= off + 8 and self.b[off:off + 6] == b"\xaa\xaa\x03\x00\x00\x00":
                self.ethertype(self.u16(off + 6), off + 8, end)
            return
        self.ethertype(et, off, end)

    def ethertype(self, et: int, off: int, end: int) -> None:
        r = self.r
        while et in VLAN_TPIDS or et == ETH_CISCO_MD:
            if et == ETH_CISCO_MD:     # Cisco MetaData: next Ethertype first, 8 bytes
                et = self.u16(off)
                self.need(off, 8)
                off += 8
                continue
            tci = self.u16(off)
            inner = self.u16(off + 2)
            if r["vlan_depth"] == 0 and r["vlan_id"] is None:
                r["vlan_id"] = tci & 0x0FFF
            r["vlan_depth"] += 1
            et, off = inner, off + 4
            if et <= 1500:
                return
        if et == ETH_IPV4:
            self.ipv4(off, end)
        elif et == ETH_IPV6:
            self.ipv6(off, end)
        elif et in (ETH_MPLS_UC, ETH_MPLS_MC):
            self.set_encap("mpls")
            self.mpls(off, end)
        elif et == ETH_PPPOE_SESSION:
            self.set_encap("pppoe")
            plen = self.u16(off + 4)
            self.need(off, 6)
            self.ppp(off + 6, min(end, off + 6 + plen))   # PPPoE length bounds the packet

    def ppp(self, off: int, end: int) -> None:
        if self.u8(off) == 0xFF:       # address/control present
            off += 2
        if self.u8(off) & 1:           # compressed (1-byte) protocol field
            proto, off = self.b[off], off - 1
        else:
            proto = self.u16(off)
        if proto == 0x0021:
            self.ipv4(off + 2, end)
        elif proto == 0x0057:
            self.ipv6(off + 2, end)
        elif proto in (0x0281, 0x0283):     # MPLS unicast, multicast
            self.set_encap("mpls")
            self.mpls(off + 2, end)

    def mpls(self, off: int, end: int) -> None:
        while True:
            entry = self.u32(off)
            off += 4
            if entry & 0x100:
                break
        nib = self.u8(off) >> 4
        if nib == 4:
            self.ipv4(off, end)
        elif nib == 6:
            self.ipv6(off, end)
        elif nib == 0:                 # pseudowire control word, then Ethernet
            self.need(off, 4)
            self.ethernet(off + 4, end)

    # -- IP
    def ip_any(self, off: int, end: int) -> None:
        v = self.u8(off) >> 4
        if v == 6:
            self.ipv6(off, end)
        elif v == 4:
            self.ipv4(off, end)

    def ip_common(self, version, src, dst):
        r = self.r
        self.ips.append((version, src, dst))
        for k in ("ip_version", "src", "dst", "ip_hdr_len", "ip_len", "ip_id", "ttl", "ip_proto",
                  "dont_fragment", "more_fragments", "frag_offset", "sport", "dport",
                  "tcp_flags", "seq", "ack", "tcp_hdr_len", "window", "tcp_len", "mss",
                  "wscale", "sack_perm", "sack_blocks", "tsval", "tsecr", "udp_len",
                  "icmp_type", "icmp_code", "payload_offset"):
            r[k] = None
        r["ip_version"] = version
        fmt = ipv4_text if version == 4 else ipv6_text
        r["src"], r["dst"] = fmt(src), fmt(dst)

    def ipv4(self, off: int, end: int) -> None:
        r = self.r
        self.need(off, 20)
        vhl, _tos, tlen, ident, fl, ttl, proto, _ck, src, dst = struct.unpack_from(
            "!BBHHHBBH4s4s", self.b, off)
        if vhl >> 4 != 4:
            raise Stop("malformed")
        hlen = (vhl & 0x0F) * 4
        # tshark's order: a bogus header length or total length stops the IP dissector
        # before the addresses are shown.
        self.ip_common(4, src, dst)
        r["src"] = r["dst"] = None
        r["ip_hdr_len"] = hlen
        if hlen < 20:
            raise Stop("malformed")
        avail = end - off
        r["ip_len"] = tlen
        if tlen == 0:                  # TSO / BIG TCP: length from the frame
            tlen = r["ip_len"] = avail
        elif tlen < hlen:
            raise Stop("malformed")
        r["src"], r["dst"] = ipv4_text(src), ipv4_text(dst)
        r["ip_id"] = ident
        r["ttl"] = ttl
        r["ip_proto"] = proto
        r["dont_fragment"] = bool(fl & 0x4000)
        r["more_fragments"] = bool(fl & 0x2000)
        r["frag_offset"] = fl & 0x1FFF
        reassembled = off == self.reasm_off
        if reassembled:
            tlen = hlen + self.reasm_len
        pend = off + min(tlen, avail)
        self.rend = pend
        if off + hlen > pend:          # options run past the packet (tshark: exception)
            raise Stop("malformed")
        self.need(off, hlen)
        self.ipv4_options(off + 20, off + hlen)
        if (r["frag_offset"] or r["more_fragments"]) and not reassembled:
            # a fragment: no transport header here; the frame completing the datagram is
            # decoded through the reassembled payload (see reassemble() below). tshark
            # reassembles only fragments captured whole: a first fragment cut by the
            # snapshot length is dissected as it stands.
            if r["frag_offset"] or off + tlen <= self.cap:
                self.frag = (off, off + hlen)
                return
        self.transport(4, proto, off + hlen, pend)

    def ipv4_options(self, off: int, end: int) -> None:
        """Only loose/strict source route matter: tshark shows the option's last address
        (the final destination) as ip.dst."""
        while off < end:
            kind = self.b[off]
            if kind == 0:
                return
            if kind == 1:
                off += 1
                continue
            if off + 1 >= end:
                return
            ln = self.b[off + 1]
            if ln < 2 or off + ln > end:
                return
            if kind in (131, 137) and ln >= 7:
                last = off + 3 + 4 * ((ln - 3) // 4 - 1)
                self.r["dst"] = ipv4_text(self.b[last:last + 4])
            off += ln

    def ipv6(self, off: int, end: int) -> None:
        r = self.r
        self.need(off, 40)
        vtf, plen, nh, hlim, src, dst = struct.unpack_from("!IHBB16s16s", self.b, off)
        if vtf >> 28 != 6:
            raise Stop("malformed")
        self.ip_common(6, src, dst)
        r["ttl"] = hlim
        r["dont_fragment"], r["more_fragments"], r["frag_offset"] = False, False, 0
        r["ip_len"] = 40 + plen
        r["ip_proto"] = nh
        hoff = off + 40
        r["ip_hdr_len"] = 40
        jumbo = None
        try:
            while nh in IPV6_EXT:
                if nh == 44:
                    self.need(hoff, 8)
                    nxt, _res, fo, ident = struct.unpack_from("!BBHI", self.b, hoff)
                    r["ip_id"] = ident
                    r["more_fragments"] = bool(fo & 1)
                    r["frag_offset"] = fo >> 3
                    hoff += 8
                    nh = nxt
                    r["ip_hdr_len"] = hoff - off
                    r["ip_proto"] = nh
                    if off == self.reasm_off:
                        r["ip_len"] = (hoff - off) + self.reasm_len
                        continue
                    if fo >> 3 or fo & 1:       # a fragment (not an atomic one)
                        if fo >> 3 or off + 40 + plen <= self.cap:
                            self.frag = (off, hoff)
                            return
                    continue
                nxt = self.u8(hoff)
                if nh == 51:                # AH: length in 4-byte units, minus 2
                    hl = (self.u8(hoff + 1) + 2) * 4
                else:
                    hl = (self.u8(hoff + 1) + 1) * 8
                self.need(hoff, hl)
                if nh == 0:
                    jumbo = self.jumbo(hoff + 2, hoff + hl)
                    if plen == 0 and jumbo is not None:
                        r["ip_len"] = 40 + jumbo
                hoff += hl
                nh = nxt
                r["ip_hdr_len"] = hoff - off
                r["ip_proto"] = nh
        finally:
            pass
        iplen = r["ip_len"]
        if off == self.reasm_off:           # the column keeps the header's value
            r["ip_len"] = 40 + plen
        pend = off + min(iplen, end - off)
        self.rend = pend
        self.transport(6, nh, hoff, pend)

    def jumbo(self, off: int, end: int):
        while off < end:
            t = self.b[off]
            if t == 0:
                off += 1
                continue
            ln = self.u8(off + 1)
            if t == 0xC2 and ln == 4:
                return self.u32(off + 2)
            off += 2 + ln
        return None

    # -- transport; `end` is where the IP payload ends (reported)
    def transport(self, ipv: int, proto: int, off: int, end: int) -> None:
        if proto == 6:
            self.tcp(off, end)
        elif proto == 17:
            self.udp(off, end)
        elif proto in (1, 58):
            self.icmp(proto == 58, off, end)
        elif proto == 4:
            self.set_encap("ipip" if ipv == 4 else "4in6")
            self.ipv4(off, end)
        elif proto == 41:
            self.set_encap("6in4" if ipv == 4 else "6in6")
            self.ipv6(off, end)
        elif proto == 47:
            self.gre(off, end)

    def icmp(self, v6: bool, off: int, end: int) -> None:
        r = self.r
        self.need(off, 4)      # tshark shows neither type nor code from a cut header
        r["icmp_type"] = t = self.b[off]
        r["icmp_code"] = self.b[off + 1]
        error = t in (1, 2, 3, 4) if v6 else t in (3, 4, 5, 11, 12)
        q = off + 8
        if not error or self.cap <= q:
            return
        # The quoted packet never enters the packet table, but a quoted IP header whose
        # fixed part is cut, or whose version is wrong, sets the status.
        self.need(q, 40 if v6 else 20)
        if self.b[q] >> 4 != (6 if v6 else 4):
            raise Stop("malformed")

    def tcp(self, off: int, end: int) -> None:
        """Fields as far as captured, as tshark adds them: the ports (4 bytes); then, only
        once the header is captured up to the window (16), seq, ack, data offset, flags,
        window and the segment length from the IP length; the 20-byte fixed header; a
        data offset below 5 is malformed (the segment length less the bogus header
        kept); then the options."""
        r = self.r
        r["sport"] = self.u16(off)
        r["dport"] = self.u16(off + 2)
        r["sack_perm"] = False
        self.need(off, 16)
        r["seq"] = self.u32(off + 4)
        r["ack"] = self.u32(off + 8)
        doff, flags, window = struct.unpack_from("!BBH", self.b, off + 12)
        hl = (doff >> 4) * 4
        r["tcp_hdr_len"] = hl
        r["tcp_flags"] = ((doff & 0x0F) << 8) | flags    # tshark: 12 bits incl. reserved
        r["window"] = window
        seglen = end - off - hl
        if seglen < 0:
            raise Stop("malformed")
        r["tcp_len"] = seglen
        if hl < 20:
            raise Stop("malformed")
        self.need(off, 20)
        self.tcp_options(off + 20, off + hl)
        self.need(off, hl)              # options cut by the snapshot length
        r["payload_offset"] = off + hl

    def tcp_options(self, off: int, end: int) -> None:
        """As tshark: a bad option length ends the option list quietly (an expert note,
        not an exception). Lengths are checked against the header, values against the
        captured bytes: a snaplen can cut an option, and what was captured of it counts
        (TSval without TSecr, the complete SACK blocks)."""
        r = self.r
        cend = min(end, self.cap)
        while off < cend:
            kind = self.b[off]
            if kind == 0:
                return
            if kind == 1:
                off += 1
                continue
            if cend - off < 2:
                return
            ln = self.b[off + 1]
            if ln < 2 or off + ln > end:
                return
            have = cend - off
            if kind == 2 and ln == 4 and have >= 4:
                r["mss"] = struct.unpack_from("!H", self.b, off + 2)[0]
            elif kind == 3 and ln == 3 and have >= 3:
                r["wscale"] = self.b[off + 2]
            elif kind == 4 and ln == 2:
                r["sack_perm"] = True
            elif kind == 5 and ln >= 10:
                # edges as far as captured: tshark shows the left edge of a block the
                # snapshot length cuts in half
                n = min((ln - 2) // 4, (have - 2) // 4)
                if n:
                    blocks = list(struct.unpack_from("!%dI" % n, self.b, off + 2))
                    r["sack_blocks"] = (r["sack_blocks"] or []) + blocks
            elif kind == 8 and ln == 10:
                if have >= 6:
                    r["tsval"] = struct.unpack_from("!I", self.b, off + 2)[0]
                if have >= 10:
                    r["tsecr"] = struct.unpack_from("!I", self.b, off + 6)[0]
            off += ln

    def udp(self, off: int, end: int) -> None:
        r = self.r
        self.need(off, 4)              # tshark reads both ports before showing either
        sport, dport = struct.unpack_from("!HH", self.b, off)
        r["sport"], r["dport"] = sport, dport
        r["udp_len"] = ulen = self.u16(off + 4)
        self.need(off, 8)
        if ulen < 8:
            raise Stop("malformed")
        r["payload_offset"] = off + 8
        pend = min(end, off + ulen)
        for port in sorted((sport, dport)):
            if port in (UDP_VXLAN, UDP_GENEVE, UDP_GTPU, UDP_MPLS):
                self.udp_tunnel(port, off + 8, pend)
                return

    def udp_tunnel(self, port: int, off: int, end: int) -> None:
        if port == UDP_VXLAN:
            self.need(off, 8)
            self.set_encap("vxlan")
            self.ethernet(off + 8, end)
        elif port == UDP_GENEVE:
            vo = self.u8(off)
            ptype = self.u16(off + 2)
            hl = 8 + (vo & 0x3F) * 4
            self.need(off, hl)
            self.set_encap("geneve")
            if ptype == ETH_TEB:
                self.ethernet(off + hl, end)
            else:
                self.ethertype(ptype, off + hl, end)
        elif port == UDP_GTPU:
            fl = self.u8(off)
            mtype = self.u8(off + 1)
            if fl >> 5 != 1 or not fl & 0x10:
                return
            hl = 8
            if fl & 0x07:
                self.need(off, 12)
                hl = 12
                if fl & 0x04:
                    nxt = self.b[off + 11]
                    while nxt:
                        n = self.u8(off + hl) * 4
                        if n == 0:
                            raise Stop("malformed")
                        self.need(off + hl, n)
                        nxt = self.b[off + hl + n - 1]
                        hl += n
            if mtype != 0xFF:
                return
            self.need(off, hl)
            v = self.u8(off + hl) >> 4
            if v in (4, 6):
                self.set_encap("gtpu")
                self.ip_any(off + hl, end)
        elif port == UDP_MPLS:
            self.set_encap("mpls")
            self.mpls(off, end)

    def gre(self, off: int, end: int) -> None:
        fl = self.u16(off)
        proto = self.u16(off + 2)
        ver = fl & 7
        hl = 4
        if ver == 1:
            hl += 4                     # key (payload length + call id)
            if fl & 0x1000:
                hl += 4
            if fl & 0x0080:
                hl += 4
        else:
            if fl & 0xC000:
                hl += 4
            if fl & 0x2000:
                hl += 4
            if fl & 0x1000:
                hl += 4
        if ver > 1:
            return
        self.need(off, hl)
        p = off + hl
        self.set_encap("gre")
        if p >= end:                    # no payload (PPTP acknowledgment only)
            return
        if proto == ETH_IPV4:
            self.ipv4(p, end)
        elif proto == ETH_IPV6:
            self.ipv6(p, end)
        elif proto == ETH_TEB:
            self.ethernet(p, end)
        elif proto in (ETH_MPLS_UC, ETH_MPLS_MC, ETH_CISCO_MD):
            self.ethertype(proto, p, end)
        elif proto == 0x880B:           # PPP (PPTP)
            self.ppp(p, end)
        elif proto == 0x88BE:           # ERSPAN I (no sequence number) or II
            if fl & 0x1000:
                self.refine_encap("erspan2")
                self.need(p, 8)
                self.ethernet(p + 8, end)
            else:
                self.refine_encap("erspan1")
                self.ethernet(p, end)
        elif proto == 0x22EB:           # ERSPAN III, optional platform sub-header
            self.refine_encap("erspan3")
            w = self.u32(p + 8)
            ehl = 12 + (8 if w & 1 else 0)
            self.need(p, ehl)
            self.ethernet(p + ehl, end)


def decode(frame: bytes, linktype: int, wire_len: int | None = None, reasm=None) -> dict:
    """Packet-table values of one frame. `wire_len` is the original length (frame.len).
    The key "_frag" is (IP header offset, fragment data offset) when the innermost IP
    packet is a fragment, else None. `reasm` is for reassemble()."""
    d = _Decoder(bytes(frame), linktype, wire_len, reasm)
    r = d.run()
    r["_frag"] = d.frag if r["status"] == "ok" else None
    return r


MAX_DATAGRAM = 65535 + 8


class _Datagram:
    def __init__(self):
        self.data = bytearray()
        self.covered = []
        self.total = -1

    def add(self, offset: int, chunk: bytes, last: bool) -> bool:
        end = offset + len(chunk)
        if end > MAX_DATAGRAM:
            return False
        if len(self.data) < end:
            self.data.extend(b"\0" * (end - len(self.data)))
        self.data[offset:end] = chunk
        self.covered.append((offset, end))
        if last:
            self.total = end
        if self.total < 0:
            return False
        reach = 0
        for lo, hi in sorted(self.covered):
            if lo > reach:
                return False
            reach = max(reach, hi)
        return reach >= self.total


def reassemble(frames):
    """tshark's IP defragmentation over the frames of one file, in order.

    frames: list of (frame bytes, linktype, wire_len). Returns the reference rows; the
    row of a frame whose fragment completes a datagram is decoded through the
    reassembled payload (its own bytes up to the fragment data, then the datagram), with
    no payload_offset and no SACK edges (the payload is in no captured frame). Fragments
    cut by the snapshot length are not used."""
    rows = []
    pending: dict[tuple, _Datagram] = {}
    for data, lt, wire in frames:
        r = decode(data, lt, wire)
        rows.append(r)
        if r["_frag"] is None:
            continue
        ip_off, data_off = r["_frag"]
        length = r["ip_len"] - (data_off - ip_off)
        if length < 0 or len(data) - data_off < length:
            continue
        key = (r["ip_version"], r["src"], r["dst"], r["ip_id"],
               r["ip_proto"] if r["ip_version"] == 4 else 0)
        dg = pending.setdefault(key, _Datagram())
        if not dg.add(r["frag_offset"] * 8, data[data_off:data_off + length],
                      not r["more_fragments"]):
            continue
        del pending[key]
        payload = bytes(dg.data[:dg.total])
        synth = bytes(data[:data_off]) + payload
        n = decode(synth, lt, len(synth), reasm=(ip_off, len(payload)))
        n["payload_offset"] = None
        n["sack_blocks"] = None
        rows[-1] = n
    return rows
