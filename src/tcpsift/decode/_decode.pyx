# cython: language_level=3
"""The header decoder: one pass per frame, link layer to transport.

`decode_frames` walks each frame's captured bytes through the link layer, VLAN
tags, MPLS, tunnels (GRE, ERSPAN, VXLAN, Geneve, GTP-U, IP-in-IP), IPv4/IPv6 and
TCP/UDP/ICMP, and writes the packet columns into preallocated arrays. Nothing is
allocated per frame; every length read from a packet is checked against the
captured bytes before use. Headers a frame carries more than once are also
written to the layer buffer (see schema.LAYER_COLUMNS).
"""
cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memset, memcpy, memcmp
from libc.stdlib cimport malloc, realloc, free

cdef extern from *:
    """
    /* Zero n bytes (a multiple of 8, a constant) with word stores, which the compiler
       turns into vector stores: for a memset of the same constant size it emitted
       `rep stos`, whose start-up cost was a fifth of the per-frame loop. */
    static inline void tcpsift_zero_words(void *p, size_t n) {
        uint64_t *w = (uint64_t *)p;
        for (size_t i = 0; i < n / 8; i++) w[i] = 0;
    }
    """
    void prefetch "__builtin_prefetch"(const void* addr) noexcept nogil
    void zero_words "tcpsift_zero_words"(void* p, size_t n) noexcept nogil
    long expect "__builtin_expect"(long value, long expected) noexcept nogil

# Frames ahead whose headers are fetched into the cache while this one is decoded:
# a block was just copied in by the reading thread, so its lines are not in this
# core's cache yet.
DEF PREFETCH_AHEAD = 4
# Frames are decoded into a tile of TILE rows, which is then written out column by
# column: writing each frame's 38 columns in turn (38 interleaved store streams) took
# 60 % of the decode. Decoding a header-only capture's 5.5 M frames into arrays already
# mapped: 0.43 s row by row, 0.23 s through 8- or 16-row tiles, 0.29 s through 32.
DEF TILE = 16

import ipaddress
import numpy as np

from tcpsift.decode.columns import PACKET_ARRAYS

# Presence bits (P_*), status (ST_*), encapsulation (E_*) and layer kind (K_*) codes:
# generated from tcpsift.decode.columns (see there)
include "_constants.pxi"

# Bounds on what one frame may make the decoder walk (docs/limits.md): headers recorded in
# the layer table, and tunnels (IP-in-IP, GRE, VXLAN, Geneve, GTP-U, MPLS pseudowires) or
# ICMP errors quoting ICMP errors nested in one another. tshark 4.0 stops at 500 protocol
# layers; a frame past these bounds is decoded up to them and counted (decode_frames'
# result), and the reader says so in one warning per file.
DEF MAX_LAYERS = 64
DEF MAX_DEPTH = 16
# tshark 4.0 dissects at most 20 802.1Q tags (TPID 0x8100 or 0x9100) in a frame, tunnels
# included, and nothing after the 21st; 802.1ad S-tags are another protocol, not counted
DEF MAX_VLAN_TAGS = 20
DEF NO_ADDR = 0xFFFFFFFF
# The address table's "IP version" of an Ethernet MAC address: MACs share the table (and
# so the dictionary of the address columns) with IP addresses.
DEF V_MAC = 48
# Marks a used entry of the decoder's MAC pair cache (above the 32 bits it compares)
DEF PAIR_USED = 0x100000000

SUPPORTED_LINKTYPES = {
    0: "NULL", 1: "ETHERNET", 12: "RAW", 14: "RAW", 101: "RAW", 108: "LOOP",
    113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2",
    9: "PPP", 50: "PPP_HDLC", 104: "C_HDLC", 107: "FRELAY", 10: "FDDI", 129: "ARCNET_LINUX",
    239: "NFLOG", 242: "IPOIB", 258: "PKTAP",
}


cdef packed struct Layer:
    uint32_t row
    uint8_t index
    uint8_t kind
    uint8_t quoted
    uint8_t ttl
    uint16_t vlan_id
    uint16_t ip_hdr_len
    uint32_t src
    uint32_t dst
    uint32_t ip_len
    uint32_t ip_id
    uint8_t proto
    uint8_t df
    uint8_t mf
    uint8_t icmp_type
    uint16_t frag
    uint16_t sport
    uint16_t dport
    uint16_t udp_len
    uint32_t seq
    uint8_t icmp_code
    uint8_t has_ports
    uint8_t has_seq
    uint8_t has_icmp_code
    uint16_t tpid
    uint16_t tcp_flags
    uint32_t ack
    uint16_t window
    uint8_t tcp_hdr_len
    uint8_t has_tcp_hdr
    uint8_t ipv6_nxt
    uint16_t eth_type       # eth: type field, 0 for an 802.3 length (src/dst: the MACs' ids)


LAYER_DTYPE = np.dtype([
    ("row", "<u4"), ("index", "u1"), ("kind", "u1"), ("quoted", "u1"), ("ttl", "u1"),
    ("vlan_id", "<u2"), ("ip_hdr_len", "<u2"), ("src", "<u4"), ("dst", "<u4"),
    ("ip_len", "<u4"), ("ip_id", "<u4"), ("proto", "u1"), ("df", "u1"), ("mf", "u1"),
    ("icmp_type", "u1"), ("frag", "<u2"), ("sport", "<u2"), ("dport", "<u2"),
    ("udp_len", "<u2"), ("seq", "<u4"), ("icmp_code", "u1"), ("has_ports", "u1"),
    ("has_seq", "u1"), ("has_icmp_code", "u1"), ("tpid", "<u2"), ("tcp_flags", "<u2"),
    ("ack", "<u4"), ("window", "<u2"), ("tcp_hdr_len", "u1"), ("has_tcp_hdr", "u1"),
    ("ipv6_nxt", "u1"), ("eth_type", "<u2"),
])
assert LAYER_DTYPE.itemsize == sizeof(Layer)


# Pkt (one frame's row), Columns, write_rows, columns_of, COLUMN_DTYPES and PRESENCE:
# generated from tcpsift.decode.columns
include "_columns.pxi"


cdef struct FrameScratch:
    # A frame's SACK edges and layer rows: read only up to Pkt.sack_n and Pkt.nlayers,
    # so never zeroed.
    uint32_t sack[10]       # (a 40-byte option space holds 9 edges at most)
    Layer layers[MAX_LAYERS]


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void problem(Pkt* k, uint8_t st) noexcept nogil:
    if k.status == ST_OK:
        k.status = st


cdef inline Layer* new_layer(Pkt* k, FrameScratch* x, uint8_t kind, bint quoted,
                             bint repeated) noexcept nogil:
    """The layer row of a header of `kind` about to be written into the packet row, or
    NULL while the frame needs no layer rows.

    Every frame is decoded once. Until a frame shows that it needs layer rows (a header
    quoted in an ICMP error, or `repeated`: a header of a kind the frame already had, or
    an odd VLAN tag), a header only adds its kind to `k.trace` (4 bits each, kind + 1):
    the packet row still holds each of those headers' fields, since none was
    overwritten yet. The first header that needs layer rows turns recording on
    (record_traced: the traced headers' rows, from the packet row), so the common
    frame pays one shift a header, and the few that need rows are not decoded again.
    Call it before the header's fields overwrite an earlier header's in the packet row."""
    cdef Layer* L
    if quoted:
        k.any_quoted = 1
    if expect(k.nlayers == 0 and not (quoted or repeated), 1):
        k.trace = <uint16_t>((k.trace << 4) | (kind + 1))
        return NULL
    if k.nlayers == 0:
        record_traced(k, x)
    if k.nlayers >= MAX_LAYERS:
        k.bounded = 1
        return NULL
    L = blank_layer(x, k.nlayers, kind, quoted)
    k.nlayers += 1
    return L


cdef inline Layer* blank_layer(FrameScratch* x, int index, uint8_t kind, bint quoted) noexcept nogil:
    cdef Layer* L = &x.layers[index]
    memset(L, 0, sizeof(Layer))
    L.index = <uint8_t>index
    L.kind = kind
    L.quoted = quoted
    L.src = NO_ADDR
    L.dst = NO_ADDR
    return L


cdef void record_traced(Pkt* k, FrameScratch* x) noexcept nogil:
    """The layer rows of the headers in `k.trace` (in order), taken from the packet row.

    Before the first header that needs layer rows (new_layer), a frame has at most one
    header of each kind group (Ethernet, VLAN tag, IP, transport; none quoted), so at
    most 4 in the trace, and the packet row holds each one's fields as its layer row
    would: the VLAN tag is the first (an 802.1Q one: an odd tag starts recording), and
    a TCP header followed by anything that needs rows was read to its window at least
    (tcp_short, sack_short), an ICMP header to its code (its quote is more than 8 bytes
    long)."""
    cdef int n = 0, i
    cdef uint16_t t = k.trace
    cdef uint8_t kind
    cdef Layer* L
    while t >> (4 * n):
        n += 1
    for i in range(n):
        kind = ((t >> (4 * (n - 1 - i))) & 0x0F) - 1
        L = blank_layer(x, i, kind, 0)
        if kind == K_ETH:
            L.src = k.eth_src
            L.dst = k.eth_dst
            L.eth_type = k.eth_type
        elif kind == K_VLAN:
            L.vlan_id = k.vlan_id
            L.tpid = 0x8100
        elif kind == K_IPV4 or kind == K_IPV6:
            L.src = k.src
            L.dst = k.dst
            L.ip_hdr_len = k.ip_hdr_len
            L.ip_len = k.ip_len
            L.ip_id = k.ip_id
            L.ttl = k.ttl
            L.proto = k.ip_proto
            L.mf = k.mf
            L.frag = k.frag
            if kind == K_IPV4:
                L.df = k.df
            else:
                L.ipv6_nxt = k.ipv6_nxt
        elif kind == K_TCP:
            L.sport = k.sport
            L.dport = k.dport
            L.has_ports = 1
            if k.present & P_SEQ:
                L.seq = k.seq
                L.has_seq = 1
            if k.present & P_FLAGS:
                L.ack = k.ack
                L.tcp_hdr_len = k.tcp_hdr_len
                L.tcp_flags = k.tcp_flags
                L.window = k.window
                L.has_tcp_hdr = 1
        elif kind == K_UDP:
            L.sport = k.sport
            L.dport = k.dport
            L.udp_len = k.udp_len
            L.has_ports = 1
        else:       # K_ICMP, K_ICMPV6
            L.icmp_type = k.icmp_type
            L.icmp_code = k.icmp_code
            L.has_icmp_code = 1
    k.nlayers = <uint8_t>n


cdef inline void enter_ip(Pkt* k) noexcept nogil:
    """A new (non-quoted) IP header becomes the frame's: the first one seen is kept as
    the outer header, and transport facts of an outer packet are forgotten."""
    if k.ip_count > 0 and not (k.present & P_OUTER):
        k.outer_src = k.src
        k.outer_dst = k.dst
        k.present |= P_OUTER
    k.ip_count += 1
    k.present |= P_IP
    k.present &= ~(P_TCP | P_UDP | P_ICMP | P_MSS | P_WS | P_SACKP | P_TS | P_PAYLOAD
                   | P_TCPLEN | P_SACK | P_FLAGS | P_SEQ | P_ACK | P_TSECR)


# ---------------------------------------------------------------- addresses

cdef class AddressTable:
    """Distinct IPv4/IPv6 and Ethernet MAC addresses, each given a dense id (open
    addressing).

    A key is the 16-byte address (IPv4 as ::ffff:a.b.c.d, a MAC as its 48-bit value) and
    its IP version (V_MAC for a MAC), kept as two 64-bit words so that hashing and
    comparing cost a few instructions.
    """
    cdef uint64_t* hi
    cdef uint64_t* lo
    cdef uint8_t* ver
    cdef uint32_t* slots     # id + 1, 0 = empty
    cdef Py_ssize_t count, key_cap, slot_cap
    # two-entry cache: a flow's packets repeat its two addresses, in either order
    cdef uint64_t last_hi[2]
    cdef uint64_t last_lo[2]
    cdef uint8_t last_ver[2]
    cdef uint32_t last_id[2]
    cdef int last_slot

    def __cinit__(self):
        self.key_cap = 1024
        self.slot_cap = 4096
        self.count = 0
        self.hi = <uint64_t*>malloc(self.key_cap * sizeof(uint64_t))
        self.lo = <uint64_t*>malloc(self.key_cap * sizeof(uint64_t))
        self.ver = <uint8_t*>malloc(self.key_cap)
        self.slots = <uint32_t*>malloc(self.slot_cap * sizeof(uint32_t))
        if self.hi == NULL or self.lo == NULL or self.ver == NULL or self.slots == NULL:
            raise MemoryError()
        memset(self.slots, 0, self.slot_cap * sizeof(uint32_t))
        self.last_ver[0] = 0
        self.last_ver[1] = 0
        self.last_slot = 0

    def __dealloc__(self):
        free(self.hi)
        free(self.lo)
        free(self.ver)
        free(self.slots)

    def __len__(self):
        return self.count

    @staticmethod
    cdef inline uint64_t hash_key(uint64_t hi, uint64_t lo, uint8_t v) noexcept nogil:
        cdef uint64_t h = (hi * <uint64_t>0x9E3779B97F4A7C15ULL) ^ (lo * <uint64_t>0xC2B2AE3D27D4EB4FULL) ^ v
        return h ^ (h >> 29)

    cdef int grow(self) noexcept nogil:
        cdef Py_ssize_t new_cap = self.slot_cap * 2
        cdef uint32_t* ns = <uint32_t*>malloc(new_cap * sizeof(uint32_t))
        cdef Py_ssize_t i, j
        if ns == NULL:
            return -1
        memset(ns, 0, new_cap * sizeof(uint32_t))
        for i in range(self.count):
            j = AddressTable.hash_key(self.hi[i], self.lo[i], self.ver[i]) & (new_cap - 1)
            while ns[j] != 0:
                j = (j + 1) & (new_cap - 1)
            ns[j] = <uint32_t>(i + 1)
        free(self.slots)
        self.slots = ns
        self.slot_cap = new_cap
        return 0

    cdef uint32_t lookup(self, uint64_t hi, uint64_t lo, uint8_t version) noexcept nogil:
        cdef Py_ssize_t j
        cdef uint32_t s
        if (self.count + 1) * 2 > self.slot_cap:
            if self.grow() != 0:
                return NO_ADDR
        j = AddressTable.hash_key(hi, lo, version) & (self.slot_cap - 1)
        while True:
            s = self.slots[j]
            if s == 0:
                break
            if self.hi[s - 1] == hi and self.lo[s - 1] == lo and self.ver[s - 1] == version:
                return s - 1
            j = (j + 1) & (self.slot_cap - 1)
        if self.count == self.key_cap:
            if self.grow_keys() != 0:
                return NO_ADDR
        self.hi[self.count] = hi
        self.lo[self.count] = lo
        self.ver[self.count] = version
        self.slots[j] = <uint32_t>(self.count + 1)
        self.count += 1
        return <uint32_t>(self.count - 1)

    cdef uint32_t intern(self, uint8_t version, const uint8_t* addr) noexcept nogil:
        cdef uint64_t hi, lo
        cdef uint32_t s
        if version == 4:
            hi = 0
            lo = (<uint64_t>0xFFFF << 32) | be32(addr)
        else:
            hi = (<uint64_t>be32(addr) << 32) | be32(addr + 4)
            lo = (<uint64_t>be32(addr + 8) << 32) | be32(addr + 12)
        if lo == self.last_lo[0] and hi == self.last_hi[0] and version == self.last_ver[0]:
            return self.last_id[0]
        if lo == self.last_lo[1] and hi == self.last_hi[1] and version == self.last_ver[1]:
            return self.last_id[1]
        s = self.lookup(hi, lo, version)
        if s != <uint32_t>NO_ADDR:
            self.last_slot ^= 1
            self.last_hi[self.last_slot] = hi
            self.last_lo[self.last_slot] = lo
            self.last_ver[self.last_slot] = version
            self.last_id[self.last_slot] = s
        return s

    cdef uint32_t intern_mac(self, const uint8_t* mac) noexcept nogil:
        # (no cache here: the decoder keeps the last MAC pairs, see _Decoder.ethernet)
        return self.lookup(0, (<uint64_t>be16(mac) << 32) | be32(mac + 2), V_MAC)

    cdef int grow_keys(self) noexcept nogil:
        cdef uint64_t* nh = <uint64_t*>realloc(self.hi, self.key_cap * 2 * sizeof(uint64_t))
        if nh == NULL:
            return -1
        self.hi = nh
        cdef uint64_t* nl = <uint64_t*>realloc(self.lo, self.key_cap * 2 * sizeof(uint64_t))
        if nl == NULL:
            return -1
        self.lo = nl
        cdef uint8_t* nv = <uint8_t*>realloc(self.ver, self.key_cap * 2)
        if nv == NULL:
            return -1
        self.ver = nv
        self.key_cap *= 2
        return 0

    def absorb(self, AddressTable other, Py_ssize_t start):
        """Intern `other`'s addresses from its id `start` on, in id order (so that ids
        are given as if this table had met them itself); their ids in this table."""
        cdef Py_ssize_t i, n = max(other.count - start, 0)
        out = np.empty(n, np.uint32)
        cdef uint32_t[::1] ids = out
        for i in range(n):
            ids[i] = self.lookup(other.hi[start + i], other.lo[start + i], other.ver[start + i])
            if ids[i] == <uint32_t>NO_ADDR:
                raise MemoryError()
        return out

    def texts(self, Py_ssize_t start=0):
        """Text of every address from id `start` on, by id (IPv4 dotted quad, IPv6
        RFC 5952, MAC aa:bb:cc:dd:ee:ff as tshark prints eth.src)."""
        out = []
        cdef Py_ssize_t i
        for i in range(max(start, 0), self.count):
            if self.ver[i] == V_MAC:
                out.append(":".join(f"{b:02x}" for b in (<object>self.lo[i]).to_bytes(6, "big")))
            elif self.ver[i] == 4:
                out.append(str(ipaddress.IPv4Address(<uint32_t>(self.lo[i] & 0xFFFFFFFF))))
            else:
                out.append(str(ipaddress.IPv6Address((<object>self.hi[i] << 64) | <object>self.lo[i])))
        return out


# ---------------------------------------------------------------- the decoder

@cython.final
cdef class _Decoder:
    cdef AddressTable addrs
    cdef const uint8_t* pkt
    # Where the packet ends on the wire, in captured-byte coordinates: frame length,
    # narrowed by length fields of outer layers (PPPoE, IP). tshark computes payload
    # lengths against it, not against the captured bytes.
    cdef Py_ssize_t rep_end
    # Reassembly: the IP header at byte `reasm_off` is the fragment that completed a
    # datagram whose reassembled payload (`reasm_len` bytes) follows its header (IPv4)
    # or its fragment header (IPv6) in a synthetic frame; decode through it.
    cdef Py_ssize_t reasm_off
    cdef Py_ssize_t reasm_len
    cdef FrameScratch x
    # the MAC address pairs (destination and source: 8 + 4 bytes, PAIR_USED marking an
    # entry in use) of the last two Ethernet headers, and their ids: a flow's frames
    # repeat them, in either direction (2.5 ns a frame less than a cache per address)
    cdef uint64_t pair_head[2]
    cdef uint64_t pair_tail[2]
    cdef uint32_t pair_dst[2]
    cdef uint32_t pair_src[2]
    cdef int pair_slot

    cdef void ethertype(self, Pkt* k, uint16_t etype, Py_ssize_t off, Py_ssize_t end, int depth) noexcept nogil:
        cdef Layer* L
        cdef uint16_t ppp
        while etype == 0x8100 or etype == 0x88A8 or etype == 0x9100 or etype == 0x8909:
            if etype == 0x8909:
                # Cisco MetaData (SGT): next ethertype, then version, length, option, SGT
                if end - off < 8:
                    problem(k, ST_TRUNC)
                    return
                etype = be16(self.pkt + off)
                off += 8
                continue
            if end - off < 4:
                problem(k, ST_TRUNC)
                return
            if etype != 0x88A8:
                if k.q_tags >= MAX_VLAN_TAGS:
                    problem(k, ST_MALFORMED)    # tshark: too many nested VLAN tags
                    return
                k.q_tags += 1
            if k.vlan_depth == 0:
                k.vlan_id = be16(self.pkt + off) & 0x0FFF
                k.present |= P_VLAN
            if k.vlan_depth < 255:
                k.vlan_depth += 1
            if etype != 0x8100:
                k.any_odd_tag = 1
            L = new_layer(k, &self.x, K_VLAN, 0, k.vlan_depth > 1 or etype != 0x8100)
            if L != NULL:
                L.vlan_id = be16(self.pkt + off) & 0x0FFF
                L.tpid = etype
            etype = be16(self.pkt + off + 2)
            off += 4
        if etype == 0x0800:
            self.ipv4(k, off, end, depth, 0)
        elif etype == 0x86DD:
            self.ipv6(k, off, end, depth, 0)
        elif etype == 0x8847 or etype == 0x8848:
            self.mpls(k, off, end, depth)
        elif etype == 0x8864:
            if end - off < 8:
                problem(k, ST_TRUNC)
                return
            if k.encap == E_NONE:
                k.encap = E_PPPOE
            # the payload length bounds what the PPP layer may read, as tshark's subset
            # of that length does (0 or 1: not even the PPP protocol field)
            if off + 6 + be16(self.pkt + off + 4) < self.rep_end:
                self.rep_end = off + 6 + be16(self.pkt + off + 4)
            if off + 6 + be16(self.pkt + off + 4) < end:
                end = off + 6 + be16(self.pkt + off + 4)
                if end - off < 8:
                    problem(k, ST_MALFORMED)
                    return
            ppp = be16(self.pkt + off + 6)
            self.ppp(k, ppp, off + 8, end, depth)

    cdef void ppp(self, Pkt* k, uint16_t proto, Py_ssize_t off, Py_ssize_t end, int depth) noexcept nogil:
        if proto == 0x0021:
            self.ipv4(k, off, end, depth, 0)
        elif proto == 0x0057:
            self.ipv6(k, off, end, depth, 0)
        elif proto == 0x0281 or proto == 0x0283:
            self.mpls(k, off, end, depth)

    cdef void ethernet(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth) noexcept nogil:
        cdef uint16_t etype
        cdef uint64_t head, tail
        cdef uint32_t tail32
        cdef Layer* L
        if end - off < 14:
            problem(k, ST_TRUNC)
            return
        etype = be16(self.pkt + off + 12)
        # the packet row keeps the innermost Ethernet header, like the innermost IP one
        k.eth_count += 1
        L = new_layer(k, &self.x, K_ETH, 0, k.eth_count > 1)
        memcpy(&head, self.pkt + off, 8)
        memcpy(&tail32, self.pkt + off + 8, 4)
        tail = tail32 | <uint64_t>PAIR_USED
        if head == self.pair_head[0] and tail == self.pair_tail[0]:
            k.eth_dst = self.pair_dst[0]
            k.eth_src = self.pair_src[0]
        elif head == self.pair_head[1] and tail == self.pair_tail[1]:
            k.eth_dst = self.pair_dst[1]
            k.eth_src = self.pair_src[1]
        else:
            k.eth_dst = self.addrs.intern_mac(self.pkt + off)
            k.eth_src = self.addrs.intern_mac(self.pkt + off + 6)
            if k.eth_dst != <uint32_t>NO_ADDR and k.eth_src != <uint32_t>NO_ADDR:
                self.pair_slot ^= 1
                self.pair_head[self.pair_slot] = head
                self.pair_tail[self.pair_slot] = tail
                self.pair_dst[self.pair_slot] = k.eth_dst
                self.pair_src[self.pair_slot] = k.eth_src
        k.present |= P_ETH
        if etype >= 0x0600:
            k.eth_type = etype
            k.present |= P_ETHTYPE
        else:
            # an 802.3 length (tshark shows eth.len), or 1501-1535: tshark shows neither
            k.eth_type = 0
            k.present &= ~P_ETHTYPE
        if L != NULL:
            L.src = k.eth_src
            L.dst = k.eth_dst
            L.eth_type = k.eth_type
        if etype <= 1500:
            # an 802.3 length: LLC, with SNAP (OUI 0) carrying an Ethertype
            if (end - off >= 22 and self.pkt[off + 14] == 0xAA and self.pkt[off + 15] == 0xAA
                    and self.pkt[off + 16] == 0x03 and self.pkt[off + 17] == 0
                    and self.pkt[off + 18] == 0 and self.pkt[off + 19] == 0):
                self.ethertype(k, be16(self.pkt + off + 20), off + 22, end, depth)
            return
        self.ethertype(k, etype, off + 14, end, depth)

    cdef void ip_any(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth, bint strict) noexcept nogil:
        cdef uint8_t v
        if end - off < 1:
            problem(k, ST_TRUNC)
            return
        v = self.pkt[off] >> 4
        if v == 4:
            self.ipv4(k, off, end, depth, 0)
        elif v == 6:
            self.ipv6(k, off, end, depth, 0)
        elif strict:
            problem(k, ST_MALFORMED)

    cdef void mpls(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth) noexcept nogil:
        cdef int labels = 0
        cdef uint8_t nib
        if depth > MAX_DEPTH:
            k.bounded = 1       # (pseudowires: Ethernet in MPLS in Ethernet ...)
            return
        if k.encap == E_NONE:
            k.encap = E_MPLS
        while True:
            if end - off < 4:
                problem(k, ST_TRUNC)
                return
            labels += 1
            if self.pkt[off + 2] & 0x01:
                off += 4
                break
            off += 4
            # (no bound on the labels, as in tshark: each takes 4 captured bytes)
        if end - off < 1:
            if off < self.rep_end:
                problem(k, ST_TRUNC)    # a payload was on the wire, the capture cut it
            return
        nib = self.pkt[off] >> 4
        if nib == 4 or nib == 6:
            self.ip_any(k, off, end, depth, 0)
        elif nib == 0:
            # pseudowire control word, then an Ethernet frame
            if end - off < 4:
                problem(k, ST_TRUNC)
                return
            self.ethernet(k, off + 4, end, depth + 1)

    cdef void ipv4(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth, bint quoted) noexcept nogil:
        cdef const uint8_t* h = self.pkt + off
        cdef Py_ssize_t avail = end - off
        cdef uint32_t ihl, total, src, dst
        cdef uint16_t fl
        cdef bint tso
        cdef Layer* L
        cdef Py_ssize_t ip_end
        cdef int64_t payload_len
        if depth > MAX_DEPTH:
            k.bounded = 1
            return
        if avail < 20:
            problem(k, ST_TRUNC)
            return
        if (h[0] >> 4) != 4:
            problem(k, ST_MALFORMED)
            return
        ihl = (h[0] & 0x0F) * 4
        total = be16(h + 2)
        tso = total == 0 and not quoted
        if tso:
            total = <uint32_t>avail      # TSO / BIG TCP: length 0, the frame is the packet
        if ihl < 20 or (total < 20 and not tso):
            # Wireshark stops at a bogus header length after showing it, at a bogus total
            # length after showing that too, before any address
            if not quoted:
                problem(k, ST_MALFORMED)
                k.present |= P_IPHDR
                k.ip_version = 4
                k.ip_hdr_len = ihl
                k.ip_len = be16(h + 2)
                if ihl < 20:
                    k.present |= P_NOIPLEN
            return
        src = self.addrs.intern(4, h + 12)
        dst = self.addrs.intern(4, h + 16)
        if ihl > 20 and avail >= ihl:
            dst = self.source_route_destination(h, ihl, dst)
        fl = be16(h + 6)
        L = new_layer(k, &self.x, K_IPV4, quoted, k.ip_count > 0)
        if L != NULL:
            L.src = src
            L.dst = dst
            L.ip_hdr_len = ihl
            L.ip_len = total
            L.ip_id = be16(h + 4)
            L.ttl = h[8]
            L.proto = h[9]
            L.df = (fl >> 14) & 1
            L.mf = (fl >> 13) & 1
            L.frag = fl & 0x1FFF
        if not quoted:
            enter_ip(k)
            k.present |= P_IPID
            k.ip_version = 4
            k.src = src
            k.dst = dst
            k.ip_hdr_len = ihl
            k.ip_len = total
            k.ip_id = be16(h + 4)
            k.ttl = h[8]
            k.ip_proto = h[9]
            k.df = (fl >> 14) & 1
            k.mf = (fl >> 13) & 1
            k.frag = fl & 0x1FFF
        if total < ihl:
            if not quoted:
                problem(k, ST_MALFORMED)     # "bogus IP length": fields shown, no payload
            return
        if avail < ihl:
            if not quoted:
                problem(k, ST_TRUNC)
            return
        if not quoted:
            k.ip_off = <uint32_t>off
        if off == self.reasm_off and not quoted:
            total = <uint32_t>(ihl + self.reasm_len)
            self.rep_end = off + total
        elif (fl & 0x1FFF) != 0 or ((fl & 0x2000) and off + total <= end):
            # A fragment: decoded when reassembly completes (see reassembly.py). A first
            # fragment whose bytes were not all captured cannot be reassembled; like
            # tshark, its transport header is decoded as it stands.
            if not quoted:
                k.frag_data_off = <uint32_t>(off + ihl)
            return
        ip_end = off + total if off + total < end else end
        if quoted:
            payload_len = <int64_t>total - ihl
        else:
            if off + total < self.rep_end:
                self.rep_end = off + total
            payload_len = <int64_t>(self.rep_end - off) - ihl
        self.transport(k, h[9], off + ihl, ip_end, payload_len, depth, quoted, 4)

    cdef uint32_t source_route_destination(self, const uint8_t* h, uint32_t ihl, uint32_t dst) noexcept nogil:
        """With a loose or strict source route option, Wireshark's ip.dst is the route's
        final destination (the header's address is the current hop)."""
        cdef uint32_t o = 20
        cdef uint8_t t, olen
        while o < ihl:
            t = h[o]
            if t == 0:
                break
            if t == 1:
                o += 1
                continue
            if o + 1 >= ihl:
                break
            olen = h[o + 1]
            if olen < 2 or o + olen > ihl:
                break
            if (t == 131 or t == 137) and olen >= 7 and (olen - 3) % 4 == 0:
                return self.addrs.intern(4, h + o + olen - 4)
            o += olen
        return dst

    cdef void ipv6(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth, bint quoted) noexcept nogil:
        cdef const uint8_t* h = self.pkt + off
        cdef Py_ssize_t avail = end - off
        cdef uint32_t plen, src, dst, jumbo = 0
        cdef uint8_t nxt
        cdef Py_ssize_t pos, elen, ip_end, opos, oend
        cdef Layer* L
        cdef int hops = 0
        cdef bint frag = 0
        cdef uint16_t fo = 0
        cdef uint8_t fm = 0
        cdef uint32_t fid = 0
        cdef int64_t payload_len
        cdef Py_ssize_t frag_data = -1
        cdef bint reassembled = off == self.reasm_off and not quoted
        if depth > MAX_DEPTH:
            k.bounded = 1
            return
        if avail < 40:
            problem(k, ST_TRUNC)
            return
        if (h[0] >> 4) != 6:
            problem(k, ST_MALFORMED)
            return
        plen = be16(h + 4)
        nxt = h[6]
        src = self.addrs.intern(6, h + 8)
        dst = self.addrs.intern(6, h + 24)
        pos = off + 40
        # walk extension headers up to the transport header
        while hops < 4096:     # each header takes 8 bytes or more: bounded by the frame
            if nxt == 0 or nxt == 43 or nxt == 60 or nxt == 135 or nxt == 139 or nxt == 140:
                if end - pos < 8:
                    problem(k, ST_TRUNC)
                    break
                elen = (self.pkt[pos + 1] + 1) * 8
                if elen > end - pos:
                    problem(k, ST_TRUNC)
                    nxt = self.pkt[pos]
                    break
                if nxt == 0 and plen == 0:
                    # hop-by-hop options: look for a jumbo payload option
                    opos = pos + 2
                    oend = pos + elen
                    while oend - opos >= 1:
                        if self.pkt[opos] == 0:
                            opos += 1
                            continue
                        if oend - opos < 2 or self.pkt[opos + 1] > oend - opos - 2:
                            break
                        if self.pkt[opos] == 0xC2 and self.pkt[opos + 1] == 4:
                            jumbo = be32(self.pkt + opos + 2)
                        opos += 2 + self.pkt[opos + 1]
                nxt = self.pkt[pos]
                pos += elen
            elif nxt == 44:
                if end - pos < 8:
                    problem(k, ST_TRUNC)
                    break
                fo = be16(self.pkt + pos + 2) >> 3
                fm = self.pkt[pos + 3] & 1
                fid = be32(self.pkt + pos + 4)
                frag = 1
                nxt = self.pkt[pos]
                pos += 8
                frag_data = pos
                if (fo != 0 or (fm and off + 40 + plen <= end)) and not reassembled:
                    break       # as for IPv4: an uncaptured first fragment is decoded as is
            elif nxt == 51:
                if end - pos < 8:
                    problem(k, ST_TRUNC)
                    break
                elen = (self.pkt[pos + 1] + 2) * 4
                if elen > end - pos:
                    problem(k, ST_TRUNC)
                    break
                nxt = self.pkt[pos]
                pos += elen
            else:
                break
            hops += 1
        if plen == 0 and jumbo != 0:
            plen = jumbo
        if pos - off > 40 + <Py_ssize_t>plen and not quoted and not reassembled:
            # extension headers past the payload length (0 without a jumbo option, or
            # too small): tshark's "Malformed Packet", nothing decoded past them
            problem(k, ST_MALFORMED)
        L = new_layer(k, &self.x, K_IPV6, quoted, k.ip_count > 0)
        if L != NULL:
            L.src = src
            L.dst = dst
            L.ip_hdr_len = <uint16_t>(pos - off)
            L.ip_len = 40 + plen
            L.ttl = h[7]
            L.proto = nxt
            L.ipv6_nxt = h[6]
            L.ip_id = fid
            L.mf = fm
            L.frag = fo
        if not quoted:
            enter_ip(k)
            k.present &= ~P_IPID
            k.ip_version = 6
            k.src = src
            k.dst = dst
            k.ip_hdr_len = <uint16_t>(pos - off)
            k.ip_len = 40 + plen
            k.ttl = h[7]
            k.ip_proto = nxt
            k.ipv6_nxt = h[6]
            k.df = 0
            k.mf = fm
            k.frag = fo
            k.ip_id = fid
            if frag:
                k.present |= P_IPID
        if not quoted:
            k.ip_off = <uint32_t>off
        if reassembled and frag_data >= 0:
            plen = <uint32_t>(frag_data - off - 40 + self.reasm_len)
            self.rep_end = off + 40 + plen
        elif k.status != ST_OK or fo != 0 or (fm and off + 40 + plen <= end):
            if not quoted and frag_data >= 0:
                k.frag_data_off = <uint32_t>frag_data
            return
        ip_end = off + 40 + plen if off + 40 + plen < end else end
        if quoted:
            payload_len = <int64_t>plen - (pos - off - 40)
        else:
            if off + 40 + plen < self.rep_end:
                self.rep_end = off + 40 + plen
            payload_len = <int64_t>(self.rep_end - pos)
        self.transport(k, nxt, pos, ip_end, payload_len, depth, quoted, 6)

    cdef void transport(self, Pkt* k, uint8_t proto, Py_ssize_t off, Py_ssize_t end,
                        int64_t payload_len, int depth, bint quoted, int ipver) noexcept nogil:
        if proto == 6:
            self.tcp(k, off, end, payload_len, quoted)
        elif proto == 17:
            self.udp(k, off, end, depth, quoted)
        elif proto == 1 or proto == 58:
            self.icmp(k, off, end, depth, quoted, proto == 58)
        elif quoted:
            return
        elif proto == 4:
            if k.encap == E_NONE:
                k.encap = E_IPIP if ipver == 4 else E_4IN6
            self.ipv4(k, off, end, depth + 1, 0)
        elif proto == 41:
            if k.encap == E_NONE:
                k.encap = E_6IN4 if ipver == 4 else E_6IN6
            self.ipv6(k, off, end, depth + 1, 0)
        elif proto == 47:
            self.gre(k, off, end, depth + 1)

    cdef void tcp(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int64_t payload_len, bint quoted) noexcept nogil:
        cdef const uint8_t* h = self.pkt + off
        cdef Py_ssize_t avail = end - off
        cdef uint32_t hl
        cdef Py_ssize_t o, oend, cend
        cdef uint8_t kind, olen
        cdef int i, nedges
        cdef Layer* L
        if avail < 4:
            if not quoted:
                problem(k, ST_TRUNC)
            return
        L = new_layer(k, &self.x, K_TCP, quoted, k.l4_count > 0)
        if L != NULL:
            L.sport = be16(h)
            L.dport = be16(h + 2)
            L.has_ports = 1
            if avail >= 8:
                L.seq = be32(h + 4)
                L.has_seq = 1
            if avail >= 16:
                L.ack = be32(h + 8)
                L.tcp_hdr_len = (h[12] >> 4) * 4
                L.tcp_flags = ((h[12] & 0x0F) << 8) | h[13]
                L.window = be16(h + 14)
                L.has_tcp_hdr = 1
        if quoted:
            return
        k.l4_count += 1
        k.present |= P_TCP
        k.sport = be16(h)
        k.dport = be16(h + 2)
        if avail < 16:
            # tshark reads seq, ack, offset, flags and window together before it shows
            # any: a header cut before the window shows its ports alone
            problem(k, ST_TRUNC)
            return
        k.seq = be32(h + 4)
        k.ack = be32(h + 8)
        k.present |= P_SEQ | P_ACK
        hl = (h[12] >> 4) * 4
        k.tcp_hdr_len = hl
        k.tcp_flags = ((h[12] & 0x0F) << 8) | h[13]
        k.window = be16(h + 14)
        k.present |= P_FLAGS
        if avail < 20 or hl < 20:
            self.tcp_short(k, hl, avail, payload_len)
            return
        if payload_len < hl:
            problem(k, ST_MALFORMED)
            return
        k.tcp_len = <uint32_t>(payload_len - hl)
        k.present |= P_TCPLEN
        if hl <= avail:
            k.payload_off = <uint32_t>(off + hl)
            k.present |= P_PAYLOAD
        else:
            problem(k, ST_TRUNC)
        # options: lengths are checked against the header, values against the captured
        # bytes (a snaplen can cut an option in half: tshark shows what is there)
        o = off + 20
        oend = off + hl
        cend = oend if oend < end else end
        while o < cend:
            kind = self.pkt[o]
            if kind == 0:
                break
            if kind == 1:
                o += 1
                continue
            if cend - o < 2:
                break
            olen = self.pkt[o + 1]
            if olen < 2 or olen > oend - o:
                break
            if kind == 2 and olen == 4 and cend - o >= 4:
                k.mss = be16(self.pkt + o + 2)
                k.present |= P_MSS
            elif kind == 3 and olen == 3 and cend - o >= 3:
                k.wscale = self.pkt[o + 2]
                k.present |= P_WS
            elif kind == 4 and olen == 2:
                k.present |= P_SACKP
            elif kind == 5:
                if olen < 10:
                    # shorter than one block: tshark shows the left edge if the option
                    # holds one, then its option loop throws (a malformed frame, no
                    # later option, no tcp.analysis items)
                    self.sack_short(k, o, olen, cend)
                    break
                # edges as far as captured: a block the snapshot length cuts in half
                # keeps its left edge, as tshark shows it
                nedges = (olen - 2) // 4
                if nedges > 10:
                    nedges = 10
                if nedges > (cend - o - 2) // 4:
                    nedges = <int>((cend - o - 2) // 4)
                for i in range(nedges):
                    self.x.sack[i] = be32(self.pkt + o + 2 + 4 * i)
                k.sack_n = <uint8_t>nedges
                if nedges:
                    k.present |= P_SACK
            elif kind == 8 and olen == 10:
                if cend - o >= 6:
                    k.tsval = be32(self.pkt + o + 2)
                    k.present |= P_TS
                if cend - o >= 10:
                    k.tsecr = be32(self.pkt + o + 6)
                    k.present |= P_TSECR
            o += olen

    cdef void tcp_short(self, Pkt* k, uint32_t hl, Py_ssize_t avail, int64_t payload_len) noexcept nogil:
        """A TCP header whose ports, numbers, offset, flags and window were read but that
        is shorter than 20 bytes: captured (the snapshot length cut it) or by its data
        offset (below 5). tshark gives either its segment length (tcp.len, and the TCP
        analysis), then throws: at the checksum (cut) or at the bogus offset, which also
        hides ack, flags and window. Rare: the frame takes the table path, which prints
        these rules (tcpsift.fields)."""
        k.any_odd_tag = 1
        if hl < 20:
            problem(k, ST_MALFORMED)
        else:
            problem(k, ST_TRUNC)
        if payload_len >= hl:
            k.tcp_len = <uint32_t>(payload_len - hl)
            k.present |= P_TCPLEN

    cdef void sack_short(self, Pkt* k, Py_ssize_t o, uint8_t olen, Py_ssize_t cend) noexcept nogil:
        """A SACK option of length 2 to 9 (see tcp())."""
        k.any_odd_tag = 1
        problem(k, ST_MALFORMED)
        if olen >= 6 and cend - o >= 6:
            self.x.sack[0] = be32(self.pkt + o + 2)
            k.sack_n = 1
            k.present |= P_SACK

    cdef void udp(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth, bint quoted) noexcept nogil:
        cdef const uint8_t* h = self.pkt + off
        cdef Py_ssize_t avail = end - off
        cdef uint16_t sp, dp
        cdef Layer* L
        if avail < 8:
            if not quoted:
                problem(k, ST_TRUNC)
            if avail >= 4 and quoted:
                L = new_layer(k, &self.x, K_UDP, 1, 1)
                if L != NULL:
                    L.sport = be16(h)
                    L.dport = be16(h + 2)
                    L.has_ports = 1
            return
        sp = be16(h)
        dp = be16(h + 2)
        L = new_layer(k, &self.x, K_UDP, quoted, k.l4_count > 0)
        if L != NULL:
            L.sport = sp
            L.dport = dp
            L.udp_len = be16(h + 4)
            L.has_ports = 1
        if quoted:
            return
        k.l4_count += 1
        k.present |= P_UDP | P_PAYLOAD
        k.sport = sp
        k.dport = dp
        k.udp_len = be16(h + 4)
        k.payload_off = <uint32_t>(off + 8)
        if k.udp_len < 8 and k.udp_len != 0:
            problem(k, ST_MALFORMED)
            return
        if dp == 4789 or sp == 4789:
            if end - off < 16:
                problem(k, ST_TRUNC)
                return
            if k.encap == E_NONE:
                k.encap = E_VXLAN
            self.ethernet(k, off + 16, end, depth + 1)
        elif dp == 6081 or sp == 6081:
            self.geneve(k, off + 8, end, depth + 1)
        elif dp == 2152 or sp == 2152:
            self.gtpu(k, off + 8, end, depth + 1)
        elif dp == 6635 or sp == 6635:
            self.mpls(k, off + 8, end, depth + 1)

    cdef void geneve(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth) noexcept nogil:
        cdef Py_ssize_t hl
        cdef uint16_t proto
        if end - off < 8:
            problem(k, ST_TRUNC)
            return
        hl = 8 + (self.pkt[off] & 0x3F) * 4
        if end - off < hl:
            problem(k, ST_TRUNC)
            return
        if k.encap == E_NONE:
            k.encap = E_GENEVE
        proto = be16(self.pkt + off + 2)
        if proto == 0x6558:
            self.ethernet(k, off + hl, end, depth)
        else:
            self.ethertype(k, proto, off + hl, end, depth)

    cdef void gtpu(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth) noexcept nogil:
        cdef uint8_t flags
        cdef Py_ssize_t pos, elen
        cdef uint8_t next_ext
        cdef int guard = 0
        if end - off < 8:
            problem(k, ST_TRUNC)
            return
        flags = self.pkt[off]
        if (flags >> 5) != 1 or not (flags & 0x10) or self.pkt[off + 1] != 0xFF:
            return      # not a GTPv1-U T-PDU
        pos = off + 8
        if flags & 0x07:
            if end - pos < 4:
                problem(k, ST_TRUNC)
                return
            next_ext = self.pkt[pos + 3]
            pos += 4
            while (flags & 0x04) and next_ext != 0 and guard < 16:
                if end - pos < 1:
                    problem(k, ST_TRUNC)
                    return
                elen = self.pkt[pos] * 4
                if elen == 0 or elen > end - pos:
                    problem(k, ST_MALFORMED)
                    return
                next_ext = self.pkt[pos + elen - 1]
                pos += elen
                guard += 1
        if k.encap == E_NONE:
            k.encap = E_GTPU
        self.ip_any(k, pos, end, depth, 0)

    cdef void gre(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth) noexcept nogil:
        cdef uint16_t fl, proto
        cdef Py_ssize_t pos = off + 4
        cdef uint8_t ver
        cdef bint has_seq
        if depth > MAX_DEPTH:
            k.bounded = 1
            return
        if end - off < 4:
            problem(k, ST_TRUNC)
            return
        fl = be16(self.pkt + off)
        proto = be16(self.pkt + off + 2)
        ver = fl & 0x7
        has_seq = (fl & 0x1000) != 0
        if ver == 0:
            if fl & 0x8000 or fl & 0x4000:
                pos += 4        # checksum + offset
            if fl & 0x2000:
                pos += 4        # key
            if has_seq:
                pos += 4
        elif ver == 1:
            pos += 4            # key: payload length + call id
            if has_seq:
                pos += 4
            if fl & 0x0080:
                pos += 4        # acknowledgment
        else:
            return
        if pos > end:
            problem(k, ST_TRUNC)
            return
        if k.encap == E_NONE:
            k.encap = E_GRE
        if pos == end:
            if pos < self.rep_end:
                problem(k, ST_TRUNC)    # the payload was there, the capture cut it
            return      # else no payload (a PPTP acknowledgment, a keepalive)
        if proto == 0x0800:
            self.ipv4(k, pos, end, depth, 0)
        elif proto == 0x86DD:
            self.ipv6(k, pos, end, depth, 0)
        elif proto == 0x6558:
            self.ethernet(k, pos, end, depth)
        elif proto == 0x8847 or proto == 0x8848 or proto == 0x8909:
            self.ethertype(k, proto, pos, end, depth)
        elif proto == 0x88BE:
            if has_seq:
                if k.encap == E_GRE:
                    k.encap = E_ERSPAN2
                if end - pos < 8:
                    problem(k, ST_TRUNC)
                    return
                self.ethernet(k, pos + 8, end, depth)
            else:
                if k.encap == E_GRE:
                    k.encap = E_ERSPAN1
                self.ethernet(k, pos, end, depth)
        elif proto == 0x22EB:
            if k.encap == E_GRE:
                k.encap = E_ERSPAN3
            if end - pos < 12:
                problem(k, ST_TRUNC)
                return
            if self.pkt[pos + 11] & 0x01:
                pos += 8        # optional platform-specific subheader
            pos += 12
            if end - pos < 0:
                problem(k, ST_TRUNC)
                return
            self.ethernet(k, pos, end, depth)
        elif proto == 0x880B:
            if end - pos < 2:
                problem(k, ST_TRUNC)
                return
            if self.pkt[pos] == 0xFF and end - pos >= 4:
                pos += 2        # PPP address and control
            if end - pos < 2:
                problem(k, ST_TRUNC)
                return
            if self.pkt[pos] & 0x01:
                self.ppp(k, self.pkt[pos], pos + 1, end, depth)   # compressed protocol field
            else:
                self.ppp(k, be16(self.pkt + pos), pos + 2, end, depth)

    cdef void icmp(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth, bint quoted, bint v6) noexcept nogil:
        cdef Py_ssize_t avail = end - off
        cdef uint8_t t, c
        cdef Layer* L
        cdef bint error_msg
        if avail < 1:
            if not quoted:
                problem(k, ST_TRUNC)
            return
        t = self.pkt[off]
        L = new_layer(k, &self.x, K_ICMPV6 if v6 else K_ICMP, quoted, k.l4_count > 0)
        if L != NULL:
            L.icmp_type = t
            if avail >= 2:
                L.icmp_code = self.pkt[off + 1]
                L.has_icmp_code = 1
        if quoted:
            # an error quoting an error: tshark dissects the inner one's datagram too
            if avail > 8 and (t >= 1 and t <= 4 if v6 else
                              t == 3 or t == 4 or t == 5 or t == 11 or t == 12):
                self.icmp_quote(k, off, end, depth, v6, t)
            return
        k.l4_count += 1
        k.present |= P_ICMP
        k.icmp_type = t
        if avail < 4:
            problem(k, ST_TRUNC)
            if avail >= 2:
                k.icmp_code = self.pkt[off + 1]
            return
        k.icmp_code = self.pkt[off + 1]
        if v6:
            error_msg = t >= 1 and t <= 4
        else:
            error_msg = t == 3 or t == 4 or t == 5 or t == 11 or t == 12
        if error_msg and avail > 8:
            self.icmp_quote(k, off, end, depth, v6, t)

    cdef void icmp_quote(self, Pkt* k, Py_ssize_t off, Py_ssize_t end, int depth, bint v6,
                         uint8_t t) noexcept nogil:
        """The datagram quoted by the ICMP error at `off` (more than 8 bytes), as tshark
        dissects it: ICMPv6 as IPv6; ICMPv4 by the version nibble (IPv4 or IPv6), a
        redirect only up to 8 bytes past the header length the first byte gives."""
        cdef uint8_t b
        if v6:
            self.ipv6(k, off + 8, end, depth + 1, 1)
            return
        b = self.pkt[off + 8]
        if t == 5 and off + 8 + (b & 0x0F) * 4 + 8 < end:
            end = off + 8 + (b & 0x0F) * 4 + 8
        if (b >> 4) == 4:
            self.ipv4(k, off + 8, end, depth + 1, 1)
        elif (b >> 4) == 6:
            self.ipv6(k, off + 8, end, depth + 1, 1)

    cdef void frame(self, Pkt* k, uint16_t linktype, Py_ssize_t end) noexcept nogil:
        cdef uint32_t af
        if linktype == 1:
            self.ethernet(k, 0, end, 0)
        elif linktype == 113:
            if end < 16:
                problem(k, ST_TRUNC)
                return
            self.ethertype(k, be16(self.pkt + 14), 16, end, 0)
        elif linktype == 276:
            if end < 20:
                problem(k, ST_TRUNC)
                return
            self.ethertype(k, be16(self.pkt), 20, end, 0)
        elif linktype == 101 or linktype == 12 or linktype == 14:
            self.ip_any(k, 0, end, 0, 1)
        elif linktype == 228 or linktype == 229:
            self.ip_any(k, 0, end, 0, 1)     # Wireshark goes by the version nibble here too
        elif linktype == 0 or linktype == 108:
            if end < 4:
                problem(k, ST_TRUNC)
                return
            if linktype == 0 and self.pkt[0] == 0xFF and self.pkt[1] == 0x03:
                self.ppp(k, be16(self.pkt + 2), 4, end, 0)    # PPP in HDLC framing
                return
            if linktype == 108:
                af = be32(self.pkt)
            else:
                # the capturing host's byte order, guessed the way Wireshark does
                af = (<uint32_t>self.pkt[3] << 24) | (<uint32_t>self.pkt[2] << 16) | (<uint32_t>self.pkt[1] << 8) | self.pkt[0]
                if af & <uint32_t>0xFFFF0000U:
                    if (af & <uint32_t>0xFF000000U) == 0 and (af & 0x00FF0000) < 0x00060000:
                        af >>= 16
                    else:
                        af = be32(self.pkt)
                elif (af & 0xFF) == 0 and (af & 0xFF00) < 0x0600:
                    af = ((af & 0xFF00) >> 8) | ((af & 0xFF) << 8)
            if linktype == 0 and af > 1500:
                self.ethertype(k, <uint16_t>af, 4, end, 0)   # an Ethernet type, as Wireshark reads it
            elif af == 2:
                self.ipv4(k, 4, end, 0, 0)
            elif af == 24 or af == 28 or af == 30:
                self.ipv6(k, 4, end, 0, 0)
        else:
            self.other_link(k, linktype, end)

    cdef void other_link(self, Pkt* k, uint16_t linktype, Py_ssize_t end) noexcept nogil:
        """Link types met less often in troubleshooting, decoded as far as IP."""
        cdef Py_ssize_t pos
        cdef uint16_t tlen, ttype
        if linktype == 9 or linktype == 50:          # PPP, PPP in HDLC framing
            pos = 2 if end >= 2 and self.pkt[0] == 0xFF and self.pkt[1] == 0x03 else 0
            if end - pos < 2:
                problem(k, ST_TRUNC)
            elif self.pkt[pos] & 0x01:
                self.ppp(k, self.pkt[pos], pos + 1, end, 0)          # compressed protocol field
            else:
                self.ppp(k, be16(self.pkt + pos), pos + 2, end, 0)
        elif linktype == 104:                         # Cisco HDLC: address, control, ethertype
            if end < 4:
                problem(k, ST_TRUNC)
            else:
                self.ethertype(k, be16(self.pkt + 2), 4, end, 0)
        elif linktype == 107:                         # Frame Relay
            if end < 4:
                problem(k, ST_TRUNC)
            elif self.pkt[2] != 0x03:
                self.ethertype(k, be16(self.pkt + 2), 4, end, 0)     # Cisco encapsulation
            else:
                pos = 3
                if self.pkt[pos] == 0x00 and end > 4:
                    pos += 1                                          # padding before NLPID
                if self.pkt[pos] == 0xCC:
                    self.ipv4(k, pos + 1, end, 0, 0)
                elif self.pkt[pos] == 0x8E:
                    self.ipv6(k, pos + 1, end, 0, 0)
                elif self.pkt[pos] == 0x80 and end - pos >= 6:
                    self.ethertype(k, be16(self.pkt + pos + 4), pos + 6, end, 0)   # SNAP
        elif linktype == 10:                          # FDDI: FC, DA, SA, then LLC/SNAP
            if end < 21:
                problem(k, ST_TRUNC)
            elif self.pkt[13] == 0xAA and self.pkt[14] == 0xAA and self.pkt[15] == 0x03:
                self.ethertype(k, be16(self.pkt + 19), 21, end, 0)
        elif linktype == 129:                         # ARCNET (Linux): 4-byte header, protocol id
            if end < 5:
                problem(k, ST_TRUNC)
            elif self.pkt[4] == 0xD4 and end >= 8:    # RFC 1201 IP: split flag, sequence
                self.ipv4(k, 8, end, 0, 0)
            elif self.pkt[4] == 0xF0:                 # RFC 1051 IP
                self.ipv4(k, 5, end, 0, 0)
        elif linktype == 239:                         # NFLOG: TLVs in host byte order
            pos = 4
            while end - pos >= 4:
                tlen = self.pkt[pos] | (<uint16_t>self.pkt[pos + 1] << 8)
                ttype = (self.pkt[pos + 2] | (<uint16_t>self.pkt[pos + 3] << 8)) & 0x7FFF
                if tlen < 4 or tlen > end - pos:
                    problem(k, ST_MALFORMED)
                    return
                if ttype == 9:                        # NFULA_PAYLOAD: the packet
                    self.ip_any(k, pos + 4, pos + tlen, 0, 1)
                    return
                pos += (tlen + 3) & ~3
        elif linktype == 242:                         # IP over InfiniBand
            # the 4-byte header (type, reserved), or with the 40-byte source and
            # destination addresses in front, as Linux captures it
            if end >= 4 and (be16(self.pkt) == 0x0800 or be16(self.pkt) == 0x86DD):
                self.ethertype(k, be16(self.pkt), 4, end, 0)
            elif end >= 44:
                self.ethertype(k, be16(self.pkt + 40), 44, end, 0)
            else:
                problem(k, ST_TRUNC)
        elif linktype == 258:                         # PKTAP: header, then its own link type
            if end < 8:
                problem(k, ST_TRUNC)
                return
            pos = self.pkt[0] | (<uint32_t>self.pkt[1] << 8) | (<uint32_t>self.pkt[2] << 16) | (<uint32_t>self.pkt[3] << 24)
            if pos < 8 or pos > end:
                problem(k, ST_MALFORMED)
            elif self.pkt[4] == 1 and self.pkt[5] == 0 and self.pkt[6] == 0 and self.pkt[7] == 0:
                self.ethernet(k, pos, end, 0)
        else:
            k.status = ST_UNSUPPORTED


cdef inline bint is_supported(uint16_t lt) noexcept nogil:
    return (lt == 0 or lt == 1 or lt == 12 or lt == 14 or lt == 101 or lt == 108 or lt == 113
            or lt == 228 or lt == 229 or lt == 276 or lt == 9 or lt == 50 or lt == 104
            or lt == 107 or lt == 10 or lt == 129 or lt == 239 or lt == 242 or lt == 258)


cdef class GrowBuffer:
    """A growable array of fixed-size items, appended to without the GIL."""
    cdef char* data
    cdef Py_ssize_t count, cap, itemsize
    cdef object dtype

    def __cinit__(self, *args):
        self.count = 0
        self.cap = 0
        self.data = NULL

    def __dealloc__(self):
        free(self.data)

    cdef int setup(self, object dtype, Py_ssize_t cap) except -1:
        self.dtype = np.dtype(dtype)
        self.itemsize = self.dtype.itemsize
        self.cap = cap
        self.data = <char*>malloc(cap * self.itemsize)
        if self.data == NULL:
            raise MemoryError()
        return 0

    cdef char* reserve(self, Py_ssize_t n) noexcept nogil:
        """Room for n more items (counted as used), or NULL when memory runs out."""
        cdef char* nd
        cdef Py_ssize_t cap = self.cap
        while self.count + n > cap:
            cap *= 2
        if cap != self.cap:
            nd = <char*>realloc(self.data, cap * self.itemsize)
            if nd == NULL:
                return NULL
            self.data = nd
            self.cap = cap
        nd = self.data + self.count * self.itemsize
        self.count += n
        return nd

    def clear(self):
        self.count = 0

    def __len__(self):
        return self.count

    def take_from(self, GrowBuffer other):
        """Append `other`'s items (of the same dtype) and empty it."""
        if other.itemsize != self.itemsize:
            raise TypeError("buffers of different item types")
        cdef char* dst = self.reserve(other.count)
        if dst == NULL:
            raise MemoryError()
        if other.count:
            memcpy(dst, other.data, other.count * self.itemsize)
        other.count = 0

    def to_numpy(self):
        out = np.empty(self.count, self.dtype)
        cdef uint8_t[:] view = out.view(np.uint8)
        if self.count:
            memcpy(&view[0], self.data, self.count * self.itemsize)
        return out


cdef class LayerBuffer(GrowBuffer):
    """Layer rows of the frames with repeated headers (LAYER_DTYPE)."""

    def __init__(self):
        self.setup(LAYER_DTYPE, 256)

    cdef int add(self, Layer* src, int n, uint32_t row) noexcept nogil:
        cdef Layer* dst = <Layer*>self.reserve(n)
        cdef int i
        if dst == NULL:
            return -1
        for i in range(n):
            dst[i] = src[i]
            dst[i].row = row
        return 0

    def remap_addresses(self, Py_ssize_t start, const uint32_t[::1] ids):
        """Rows from `start` on: address ids translated through `ids`."""
        cdef Layer* rows = <Layer*>self.data
        cdef Py_ssize_t i
        for i in range(start, self.count):
            rows[i].src = remapped(rows[i].src, ids)
            rows[i].dst = remapped(rows[i].dst, ids)


def remap_addresses(dict out, Py_ssize_t start, Py_ssize_t stop, const uint32_t[::1] ids):
    """Address columns of rows [start, stop) of decode_frames' arrays: ids translated
    through `ids` (frames decoded with another AddressTable, see AddressTable.absorb).
    Only addresses the frame has are touched (the others hold no id)."""
    cdef const uint32_t[::1] present = out["present"]
    cdef uint32_t[::1] src = out["src"]
    cdef uint32_t[::1] dst = out["dst"]
    cdef uint32_t[::1] outer_src = out["outer_src"]
    cdef uint32_t[::1] outer_dst = out["outer_dst"]
    cdef uint32_t[::1] eth_src = out["eth_src"]
    cdef uint32_t[::1] eth_dst = out["eth_dst"]
    cdef Py_ssize_t i
    with nogil:
        for i in range(start, stop):
            if present[i] & P_IP:
                src[i] = remapped(src[i], ids)
                dst[i] = remapped(dst[i], ids)
            if present[i] & P_OUTER:
                outer_src[i] = remapped(outer_src[i], ids)
                outer_dst[i] = remapped(outer_dst[i], ids)
            if present[i] & P_ETH:
                eth_src[i] = remapped(eth_src[i], ids)
                eth_dst[i] = remapped(eth_dst[i], ids)


cdef inline uint32_t remapped(uint32_t id, const uint32_t[::1] ids) noexcept nogil:
    """`id` through `ids`; NO_ADDR (an address that could not be interned) stays."""
    return ids[id] if id < ids.shape[0] else id


cdef class U32Buffer(GrowBuffer):
    """uint32 values (SACK edges)."""

    def __init__(self):
        self.setup(np.uint32, 1024)

    cdef int extend(self, const uint32_t* src, Py_ssize_t n) noexcept nogil:
        cdef char* dst = self.reserve(n)
        if dst == NULL:
            return -1
        memcpy(dst, src, n * sizeof(uint32_t))
        return 0


# the arrays decode_frames fills (columns.PACKET_ARRAYS), checked against this build's
_ARRAYS = tuple((f.array, np.dtype(f.dtype)) for f in PACKET_ARRAYS)
if tuple((name, dtype.name) for name, dtype in _ARRAYS) != COLUMN_DTYPES:
    raise ImportError("tcpsift.decode._decode was built from another tcpsift.decode.columns: "
                      "rebuild it (python setup.py build_ext --inplace)")


def new_packet_arrays(Py_ssize_t n):
    """The arrays decode_frames fills, one element per frame (columns.PACKET_ARRAYS)."""
    return {name: np.empty(n, dtype) for name, dtype in _ARRAYS}


def decode_frames(const uint8_t[::1] buf, const int64_t[::1] offsets, const uint32_t[::1] cap_lens,
                  const uint32_t[::1] wire_lens, const uint16_t[::1] linktypes, AddressTable addrs, dict out, LayerBuffer layers,
                  uint32_t first_row, U32Buffer sack_edges, Py_ssize_t reasm_off=-1,
                  Py_ssize_t reasm_len=0, int64_t base=0, Py_ssize_t at=0):
    """Decode frames [0, len(offsets)) of `buf` into the arrays of `out` from index `at`.

    `buf` holds the file's bytes from file offset `base` (offsets are file offsets).
    `first_row` (the row of the first frame) is added to layer rows so that chunks
    share one layer buffer.
    `reasm_off`/`reasm_len` describe a synthetic reassembled frame (see _Decoder).
    SACK edges are appended to `sack_edges` in frame order; `out["sack_count"]`
    says how many each frame has.
    Returns how many frames were decoded only up to a bound (MAX_DEPTH, MAX_LAYERS).
    """
    cdef Py_ssize_t n = offsets.shape[0]
    cdef Py_ssize_t i, t = 0
    cdef Py_ssize_t bounded = 0
    cdef int failed = 0
    cdef Pkt rows[TILE]
    cdef Pkt* k
    cdef Columns c
    cdef _Decoder d = _Decoder()
    d.addrs = addrs
    d.reasm_off = reasm_off
    d.reasm_len = reasm_len
    if n == 0:
        return 0
    c = columns_of(out, at, n)
    for i in range(n):
        if cap_lens[i] == 0:
            continue
        if offsets[i] >= base and offsets[i] - base < buf.shape[0]:
            d.pkt = &buf[offsets[i] - base]
        break
    with nogil:
      for i in range(n):
        if i + PREFETCH_AHEAD < n and offsets[i + PREFETCH_AHEAD] >= base \
                and offsets[i + PREFETCH_AHEAD] - base + 128 <= buf.shape[0]:
            prefetch(&buf[offsets[i + PREFETCH_AHEAD] - base])
            prefetch(&buf[offsets[i + PREFETCH_AHEAD] - base + 64])
        k = &rows[t]
        zero_words(k, sizeof(Pkt))
        if cap_lens[i] > 0:
            if offsets[i] < base or offsets[i] - base + cap_lens[i] > buf.shape[0]:
                failed = 2
                break
            d.pkt = &buf[offsets[i] - base]
            d.rep_end = wire_lens[i] if wire_lens[i] > cap_lens[i] else cap_lens[i]
            d.frame(k, linktypes[i], cap_lens[i])
            if (k.any_quoted or k.any_odd_tag or k.ip_count > 1 or k.l4_count > 1
                    or k.vlan_depth > 1 or k.eth_count > 1):
                if k.nlayers == 0:
                    record_traced(k, &d.x)     # (a TCP header tshark shows in part)
                if layers.add(d.x.layers, k.nlayers, first_row + <uint32_t>i) != 0:
                    failed = 1
                    break
                # (a frame nested deep enough to reach a bound has repeated headers)
                if k.bounded:
                    bounded += 1
        elif is_supported(linktypes[i]):
            k.status = ST_TRUNC
        else:
            k.status = ST_UNSUPPORTED
        if k.sack_n:
            if sack_edges.extend(d.x.sack, k.sack_n) != 0:
                failed = 1
                break
        t += 1
        if t == TILE:
            write_rows(&c, rows, TILE, at + i + 1 - TILE)
            t = 0
      if not failed and t:
        write_rows(&c, rows, t, at + n - t)
    if failed == 2:
        raise ValueError(f"frame at offset {offsets[i]} is not in the buffer")
    if failed:
        raise MemoryError()
    return bounded
