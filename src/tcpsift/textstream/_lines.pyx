# cython: language_level=3
"""Text lines of `tshark -T fields` straight from the decoder's arrays.

A field is a small program (see tcpsift.textstream.fields): which column it reads
(SOURCES), the presence bits that column needs, the condition the frame must meet
(CONDITIONS: IPv4, IPv6, TCP, UDP) and how the value is printed (FORMATS). Lines go into
a C buffer that is handed to a Python writer when it fills; nothing is allocated per
frame.
"""
from libc.stdint cimport uint8_t, int16_t, uint16_t, int32_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

import numpy as np

# sources (by name in SOURCES and TCP_SOURCES)
DEF S_FRAME = 0
DEF S_TS = 1
DEF S_LEN = 2
DEF S_CAPLEN = 3
DEF S_SRC = 4
DEF S_DST = 5
DEF S_IPID = 6
DEF S_TTL = 7
DEF S_PROTO = 8
DEF S_SPORT = 9
DEF S_DPORT = 10
DEF S_SEQ = 11
DEF S_ACK = 12
DEF S_FLAGS = 13
DEF S_TCPLEN = 14
DEF S_HDRLEN = 15
DEF S_WINDOW = 16
DEF S_UDPLEN = 17
DEF S_ETH_SRC = 18
DEF S_ETH_DST = 19
DEF S_ETH_TYPE = 20
# the frame's time against the first frame, the previous one, the previous one printed
# (textstream.fields.FrameTimes)
DEF S_FRAME_REL = 21
DEF S_FRAME_DELTA = 22
DEF S_FRAME_DELTA_SHOWN = 23
DEF S_IPVERSION = 24
DEF S_IPHDRLEN = 25
DEF S_MSS = 26
DEF S_WSCALE = 27
DEF S_TSVAL = 28
DEF S_TSECR = 29
DEF S_IFACE = 30
DEF S_VLAN = 31
DEF S_IPLEN = 32
DEF S_IPV6_PLEN = 33
DEF S_DF = 34
DEF S_MF = 35
DEF S_FRAGOFF = 36
DEF S_IPV6_NXT = 37
DEF S_ICMP_TYPE = 38
DEF S_ICMP_CODE = 39
DEF S_SACK_PERM = 40
# TCP analysis (the kernel's output arrays); tshark's rules are in tcpsift.fields
DEF S_STREAM = 64
DEF S_TSEQ = 65
DEF S_TACK = 66
DEF S_NXTSEQ = 67
DEF S_WINSIZE = 68
DEF S_SCALE = 69
DEF S_TREL = 70
DEF S_TDELTA = 71
DEF S_FLAG = 72
DEF S_DUP = 73
DEF S_DUPNUM = 74
DEF S_DUPFRAME = 75
DEF S_ACKS = 76
DEF S_RTT = 77
DEF S_IRTT = 78
DEF S_BIF = 79
DEF S_PUSH = 80
# the SACK edges (left, right) of the frame's own TCP header, relative to the other
# side's base sequence number when the analysis knows it
DEF S_SACK_LE = 81
DEF S_SACK_RE = 82
# entries of the `consts` argument
DEF K_V_ROW = 0
DEF K_V_SEQ = 1
DEF K_V_ACK = 2
DEF K_V_WSCALE = 3
DEF K_V_ANALYSIS = 4
DEF K_HAS_ANALYSIS = 5
DEF K_NOT_SHOWN = 6
DEF K_DUPLICATE_ACK = 7
DEF N_CONSTS = 8
# the decoder's presence bits (P_IP, P_TCP, ...: the `present` column), declared in
# tcpsift.decode.columns
include "../decode/_constants.pxi"
# conditions
DEF C_ALWAYS = 0
DEF C_V4 = 1
DEF C_V6 = 2
DEF C_TCP = 3
DEF C_UDP = 4
DEF C_ICMP = 5
DEF C_ICMP6 = 6
DEF C_NEVER = 7
# formats
DEF F_DEC = 0
DEF F_HEX4 = 1
DEF F_ADDR = 2
DEF F_EPOCH = 3
DEF F_FLAGS_STR = 4
# "1" when the value has a bit of the program row's `arg` set, else "0"
DEF F_BOOL = 5
# two addresses (source, destination), two numbers (ports): comma-joined
DEF F_ADDR_PAIR = 6
DEF F_PAIR = 7
# tcp.options.sack_perm: the option's bytes
DEF F_SACK_PERM = 8
# entries of a program row
DEF P_SOURCE = 0
DEF P_NEED = 1
DEF P_COND = 2
DEF P_FORMAT = 3
DEF P_NEED1 = 4
DEF P_NEED2 = 5
DEF P_ARG = 6
DEF P_VETO = 7
DEF P_ENTRIES = 8

# A record without a link type (a pcapng custom block): tcpsift.capture._records
DEF NO_LINKTYPE = 0xFFFF

# header sources: packet columns by name, and the frame times
SOURCES = {
    "frame": S_FRAME, "ts_ns": S_TS, "len": S_LEN, "cap_len": S_CAPLEN, "src": S_SRC,
    "dst": S_DST, "ip_id": S_IPID, "ttl": S_TTL, "ip_proto": S_PROTO, "sport": S_SPORT,
    "dport": S_DPORT, "seq": S_SEQ, "ack": S_ACK, "tcp_flags": S_FLAGS, "tcp_len": S_TCPLEN,
    "tcp_hdr_len": S_HDRLEN, "window": S_WINDOW, "udp_len": S_UDPLEN, "eth_src": S_ETH_SRC,
    "eth_dst": S_ETH_DST, "eth_type": S_ETH_TYPE, "frame_time_relative": S_FRAME_REL,
    "frame_time_delta": S_FRAME_DELTA, "frame_time_delta_displayed": S_FRAME_DELTA_SHOWN,
    "ip_version": S_IPVERSION, "ip_hdr_len": S_IPHDRLEN, "mss": S_MSS, "wscale": S_WSCALE,
    "tsval": S_TSVAL, "tsecr": S_TSECR, "iface": S_IFACE, "vlan_id": S_VLAN,
    "ip_len": S_IPLEN, "ipv6_plen": S_IPV6_PLEN, "dont_fragment": S_DF,
    "more_fragments": S_MF, "frag_offset": S_FRAGOFF, "ipv6_nxt": S_IPV6_NXT,
    "icmp_type": S_ICMP_TYPE, "icmp_code": S_ICMP_CODE, "sack_perm": S_SACK_PERM,
}
# TCP analysis sources
TCP_SOURCES = {
    "stream": S_STREAM, "seq": S_TSEQ, "ack": S_TACK, "nxtseq": S_NXTSEQ,
    "window_size": S_WINSIZE, "scalefactor": S_SCALE, "time_relative": S_TREL,
    "time_delta": S_TDELTA, "flag": S_FLAG, "duplicate_ack": S_DUP,
    "duplicate_ack_num": S_DUPNUM, "duplicate_ack_frame": S_DUPFRAME, "acks_frame": S_ACKS,
    "ack_rtt": S_RTT, "initial_rtt": S_IRTT, "bytes_in_flight": S_BIF,
    "push_bytes_sent": S_PUSH, "sack_le": S_SACK_LE, "sack_re": S_SACK_RE,
}
CONDITIONS = {"always": C_ALWAYS, "ipv4": C_V4, "ipv6": C_V6, "tcp": C_TCP, "udp": C_UDP,
              "icmp": C_ICMP, "icmpv6": C_ICMP6, "never": C_NEVER}
# hex4: 0x%04x; epoch: seconds with 9 decimals, sign first (also relative times);
# flags_str: tcp.flags.str, a letter per set bit of 12, a middle dot per clear one
FORMATS = {"dec": F_DEC, "hex4": F_HEX4, "addr": F_ADDR, "epoch": F_EPOCH,
           "flags_str": F_FLAGS_STR, "bool": F_BOOL, "addr_pair": F_ADDR_PAIR,
           "pair": F_PAIR, "sack_perm": F_SACK_PERM}
# the entries of a program row (LineWriter.write_rows), by name
PROGRAM = {"source": P_SOURCE, "need": P_NEED, "cond": P_COND, "format": P_FORMAT,
           "need1": P_NEED1, "need2": P_NEED2, "arg": P_ARG, "veto": P_VETO}
PROGRAM_ENTRIES = P_ENTRIES

# (more fields than this take the table path: textstream.fields.can_format)
DEF MAX_FIELDS = 512
FIELDS_AT_MOST = MAX_FIELDS
# room one field can take: 20 digits, a sign and 9 decimals; addresses are checked
DEF FIELD_ROOM = 40
# a SACK edge list: up to 5 edges of 10 digits, commas between
DEF SACK_ROOM = 60


# "00" "01" ... "99": two digits per division
cdef const char* PAIRS = (b"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                          b"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                          b"8081828384858687888990919293949596979899")


cdef inline int digits32(uint32_t v) noexcept nogil:
    if v < 10: return 1
    if v < 100: return 2
    if v < 1000: return 3
    if v < 10000: return 4
    if v < 100000: return 5
    if v < 1000000: return 6
    if v < 10000000: return 7
    if v < 100000000: return 8
    if v < 1000000000: return 9
    return 10


cdef inline Py_ssize_t put_dec32(char* p, uint32_t v) noexcept nogil:
    cdef int n = digits32(v)
    cdef char* q = p + n
    cdef uint32_t r
    while v >= 100:
        r = v % 100
        v //= 100
        q -= 2
        q[0] = PAIRS[2 * r]
        q[1] = PAIRS[2 * r + 1]
    if v >= 10:
        p[0] = PAIRS[2 * v]
        p[1] = PAIRS[2 * v + 1]
    else:
        p[0] = <char>(48 + v)
    return n


cdef inline Py_ssize_t put_dec(char* p, uint64_t v) noexcept nogil:
    cdef char tmp[24]
    cdef int n = 0
    cdef int i
    if v <= 0xFFFFFFFFU:
        return put_dec32(p, <uint32_t>v)
    while True:
        tmp[n] = <char>(48 + v % 10)
        n += 1
        v //= 10
        if v == 0:
            break
    for i in range(n):
        p[i] = tmp[n - 1 - i]
    return n


cdef inline Py_ssize_t put_hex4(char* p, uint64_t v) noexcept nogil:
    """0x%04x."""
    cdef const char* digits = b"0123456789abcdef"
    if v <= 0xFFFF:         # (every 16-bit field: four digits, no loop)
        p[0] = 48
        p[1] = 120
        p[2] = digits[(v >> 12) & 15]
        p[3] = digits[(v >> 8) & 15]
        p[4] = digits[(v >> 4) & 15]
        p[5] = digits[v & 15]
        return 6
    return put_hex_long(p, v)


cdef Py_ssize_t put_hex_long(char* p, uint64_t v) noexcept nogil:
    cdef const char* digits = b"0123456789abcdef"
    cdef char tmp[20]
    cdef int n = 0
    cdef int i
    while True:
        tmp[n] = digits[v & 15]
        n += 1
        v >>= 4
        if v == 0:
            break
    while n < 4:
        tmp[n] = 48
        n += 1
    p[0] = 48
    p[1] = 120
    for i in range(n):
        p[2 + i] = tmp[n - 1 - i]
    return n + 2


cdef inline Py_ssize_t put_flags_str(char* p, uint64_t flags) noexcept nogil:
    """tcp.flags.str: bits 11 to 0 as R R R A C E U A P R S F, U+00B7 (UTF-8) when clear."""
    cdef const char* letters = b"RRRACEUAPRSF"
    cdef Py_ssize_t k = 0
    cdef int b
    for b in range(12):
        if flags & (<uint64_t>0x800 >> b):
            p[k] = letters[b]
            k += 1
        else:
            p[k] = <char>0xC2
            p[k + 1] = <char>0xB7
            k += 2
    return k


cdef inline Py_ssize_t put_epoch(char* p, int64_t ns) noexcept nogil:
    """Seconds with 9 decimals, as a Decimal(38, 9) prints (sign only when negative)."""
    cdef Py_ssize_t k = 0
    cdef uint64_t u
    cdef uint64_t frac
    cdef int i
    if ns < 0:
        p[0] = 45
        k = 1
        u = <uint64_t>(-(ns + 1)) + 1
    else:
        u = <uint64_t>ns
    k += put_dec(p + k, u // 1000000000)
    return k + put_fraction(p + k, u % 1000000000)


cdef inline Py_ssize_t put_fraction(char* p, uint64_t frac) noexcept nogil:
    """A point and the 9 decimals of `frac` (below 10^9)."""
    cdef int i
    p[0] = 46
    p[9] = <char>(48 + frac % 10)
    frac //= 10
    for i in range(7, 0, -2):
        p[i] = PAIRS[2 * (frac % 100)]
        p[i + 1] = PAIRS[2 * (frac % 100) + 1]
        frac //= 100
    return 10


ctypedef struct TcpCols:         # the analysis kernel's output columns, as raw pointers
    const uint32_t* stream
    const uint32_t* rel_seq
    const uint32_t* rel_ack
    const uint32_t* next_seq
    const uint32_t* window
    const int16_t* scale
    const int64_t* trel
    const int64_t* tdelta
    const uint32_t* dupnum
    const uint32_t* dupframe
    const uint32_t* acks
    const int64_t* rtt
    const int64_t* irtt
    const uint32_t* bif
    const uint32_t* push
    int64_t k[N_CONSTS]


cdef class LineWriter:
    """Formats rows into a C buffer; `sink(bytes-like)` receives it when full."""
    cdef char* buf
    cdef Py_ssize_t cap, used
    cdef object sink

    def __cinit__(self, sink, Py_ssize_t capacity=1 << 20):
        self.cap = max(capacity, 1 << 16)
        self.buf = <char*>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.used = 0
        self.sink = sink

    def __dealloc__(self):
        free(self.buf)

    def flush(self):
        if self.used:
            self.sink(memoryview(<char[:self.used]>self.buf))
            self.used = 0

    def write_rows(self, const int32_t[:, ::1] program, uint64_t first_frame, dict rec,
                   dict pkt, const char* texts, const int64_t[::1] text_ends,
                   Py_ssize_t longest,
                   dict tcp=None, const int64_t[::1] consts=None, times=None,
                   keep=None, sack_edges=None, iface_known=None):
        """Write one line per row of `rec`/`pkt` (frames first_frame, first_frame+1, ...).

        `tcp`: the TCP analysis kernel's output arrays for these rows, and `consts` the
        bits that read them (see tcpsift.textstream.fields), when a field needs them.
        `times`: the frame times before these rows (textstream.fields.FrameTimes), when a
        frame.time_* field is asked for; advanced past them.
        `keep`: a bool per row (a -Y filter's selection): only those rows are printed
        (frame numbers and frame times still count every row; frame.time_delta_displayed
        measures from the previous row printed).
        `sack_edges`: the chunk's SACK edges (uint32, pkt["sack_count"] of them per row,
        in row order), when tcp.options.sack_le/sack_re is asked for.
        `iface_known`: a bool per row, whether its file has interface ids (pcapng), when
        frame.interface_id is asked for (None: no row has one).
        program rows (PROGRAM names the entries): source, presence bits the column needs
        (any of them; 0: none), condition, format, two sets of presence bits the
        condition needs (each: any of them; 0: none), an argument (F_BOOL: the bits that
        make "1"), presence bits that make the column absent (any of them; 0: none).
        A TCP field's program row holds its analysis bits in entry P_NEED1.
        texts/text_ends: address texts concatenated, text i ends at text_ends[i];
        `longest`: the length of the longest of them (it sizes a line's room).
        """
        cdef Py_ssize_t nf = program.shape[0]
        cdef Py_ssize_t n = rec["offset"].shape[0]
        cdef Py_ssize_t i, f, k, room
        cdef const int64_t[::1] ts = rec["ts_ns"]
        cdef const uint8_t[::1] has_ts = rec["has_ts"].view(np.uint8)
        cdef const uint32_t[::1] wire_len = rec["len"]
        cdef const uint32_t[::1] cap_len = rec["cap_len"]
        cdef const uint32_t[::1] iface = rec["iface"]
        cdef const uint32_t[::1] present = pkt["present"]
        cdef const uint8_t[::1] ip_version = pkt["ip_version"]
        cdef const uint32_t[::1] src = pkt["src"]
        cdef const uint32_t[::1] dst = pkt["dst"]
        cdef const uint32_t[::1] ip_id = pkt["ip_id"]
        cdef const uint8_t[::1] ttl = pkt["ttl"]
        cdef const uint8_t[::1] ip_proto = pkt["ip_proto"]
        cdef const uint16_t[::1] sport = pkt["sport"]
        cdef const uint16_t[::1] dport = pkt["dport"]
        cdef const uint32_t[::1] seq = pkt["seq"]
        cdef const uint32_t[::1] ack = pkt["ack"]
        cdef const uint16_t[::1] tcp_flags = pkt["tcp_flags"]
        cdef const uint32_t[::1] tcp_len = pkt["tcp_len"]
        cdef const uint8_t[::1] tcp_hdr_len = pkt["tcp_hdr_len"]
        cdef const uint16_t[::1] window = pkt["window"]
        cdef const uint16_t[::1] udp_len = pkt["udp_len"]
        cdef const uint32_t[::1] eth_src = pkt["eth_src"]
        cdef const uint32_t[::1] eth_dst = pkt["eth_dst"]
        cdef const uint16_t[::1] eth_type = pkt["eth_type"]
        cdef const uint16_t[::1] linktype = rec["linktype"]
        cdef const uint16_t[::1] ip_hdr_len = pkt["ip_hdr_len"]
        cdef const uint16_t[::1] mss = pkt["mss"]
        cdef const uint8_t[::1] wscale = pkt["wscale"]
        cdef const uint32_t[::1] tsval = pkt["tsval"]
        cdef const uint32_t[::1] tsecr = pkt["tsecr"]
        cdef const uint16_t[::1] vlan_id = pkt["vlan_id"]
        cdef const uint32_t[::1] ip_len = pkt["ip_len"]
        cdef const uint8_t[::1] dont_fragment = pkt["dont_fragment"]
        cdef const uint8_t[::1] more_fragments = pkt["more_fragments"]
        cdef const uint16_t[::1] frag_offset = pkt["frag_offset"]
        cdef const uint8_t[::1] ipv6_nxt = pkt["ipv6_nxt"]
        cdef const uint8_t[::1] icmp_type = pkt["icmp_type"]
        cdef const uint8_t[::1] icmp_code = pkt["icmp_code"]
        cdef const uint8_t[::1] sack_count = pkt["sack_count"]
        cdef int src_, cond, fmt
        cdef uint32_t need, bits, code
        cdef uint64_t v
        cdef int64_t sv
        cdef Py_ssize_t w
        cdef bint ok
        cdef char* p
        cdef const uint8_t[::1] kept
        cdef bint selected = keep is not None
        if selected:
            kept = keep.view(np.uint8)
            if kept.shape[0] < n:
                raise ValueError("fewer selection entries than rows")
        if nf > MAX_FIELDS:
            raise ValueError("too many fields")
        if program.shape[1] != P_ENTRIES:
            raise ValueError(f"a program row has {P_ENTRIES} entries")
        cdef const uint32_t[::1] t_ana
        cdef const uint8_t[::1] t_valid
        cdef TcpCols tc
        # the program in C arrays: read for every field of every row
        cdef int f_src[MAX_FIELDS]
        cdef int f_cond[MAX_FIELDS]
        cdef int f_fmt[MAX_FIELDS]
        cdef uint32_t f_need[MAX_FIELDS]
        cdef uint32_t f_need1[MAX_FIELDS]
        cdef uint32_t f_need2[MAX_FIELDS]
        cdef uint32_t f_arg[MAX_FIELDS]
        cdef uint32_t f_veto[MAX_FIELDS]
        room = 1
        for f in range(nf):
            f_src[f], f_need[f], f_cond[f] = program[f, P_SOURCE], program[f, P_NEED], \
                program[f, P_COND]
            f_fmt[f], f_need1[f], f_need2[f] = program[f, P_FORMAT], program[f, P_NEED1], \
                program[f, P_NEED2]
            f_arg[f], f_veto[f] = program[f, P_ARG], program[f, P_VETO]
            if f_src[f] >= S_SACK_LE:
                room += SACK_ROOM + 1
            elif f_src[f] < S_STREAM and f_fmt[f] == F_ADDR_PAIR:
                room += FIELD_ROOM + 2 * longest + 2
            else:
                room += FIELD_ROOM + longest + 1
        if room > self.cap:
            raise ValueError("line too long")
        cdef bint with_tcp = False, with_sack = False, with_iface = False
        cdef uint32_t tv = 0, ta = 0
        cdef bint t_row = False, t_ok = False, shown = False
        # the frame's SACK edges: sack_edges[sack_at:sack_at + sack_count[i]]
        cdef const uint32_t[::1] edges
        cdef Py_ssize_t sack_at = 0, sack_next = 0
        cdef const uint8_t[::1] iface_ok
        cdef Py_ssize_t n_texts = text_ends.shape[0]
        cdef const int64_t* ends_p = &text_ends[0] if n_texts else NULL
        # the frame times (tcpsift.fields.with_frame_times): the time Wireshark gives the
        # frame (`wts`), the first frame's, the previous frame's, the previous printed one's
        cdef bint with_times = False, started = False, any_shown = False
        cdef int64_t wts = 0, first_ts = 0, prev_ts = 0, prev_shown_ts = 0
        # frame.time_epoch: the text of the last whole second printed (frames of a
        # second in a row print it again: copied, not formatted); 16 bytes are copied
        # at once, as the room of a field allows
        cdef char sec_text[24]
        cdef Py_ssize_t sec_len = 0
        cdef uint64_t last_sec = 0xFFFFFFFFFFFFFFFFULL
        for f in range(nf):
            if f_src[f] >= S_STREAM:
                with_tcp = True
            if f_src[f] >= S_SACK_LE:
                with_sack = True
            if f_src[f] == S_IFACE:
                with_iface = True
            if S_FRAME_REL <= f_src[f] <= S_FRAME_DELTA_SHOWN:
                with_times = True
        if with_times:
            if times is None:
                raise ValueError("frame.time_* fields need the frame times")
            started = times.first_ns is not None
            if started:
                first_ts, prev_ts = times.first_ns, times.prev_ns
            any_shown = times.prev_shown_ns is not None
            if any_shown:
                prev_shown_ts = times.prev_shown_ns
        if with_sack:
            if sack_edges is None:
                raise ValueError("SACK fields need the chunk's SACK edges")
            edges = sack_edges
            if int(np.asarray(sack_count[:n]).sum(dtype=np.int64)) > edges.shape[0]:
                raise ValueError("fewer SACK edges than the rows count")
        if with_iface:
            if iface_known is None:
                iface_known = np.zeros(n, np.uint8)
            iface_ok = iface_known.view(np.uint8)
            if iface_ok.shape[0] < n:
                raise ValueError("fewer interface entries than rows")
        if with_tcp:
            if tcp is None or consts is None or consts.shape[0] != N_CONSTS:
                raise ValueError("TCP fields need the analysis arrays and their bits")
            t_ana, t_valid = tcp["analysis"], tcp["_valid"]
            for f in range(N_CONSTS):
                tc.k[f] = consts[f]
            tc.stream = <const uint32_t*>_column(tcp, "stream", n, np.uint32)
            tc.rel_seq = <const uint32_t*>_column(tcp, "rel_seq", n, np.uint32)
            tc.rel_ack = <const uint32_t*>_column(tcp, "rel_ack", n, np.uint32)
            tc.next_seq = <const uint32_t*>_column(tcp, "next_seq", n, np.uint32)
            tc.window = <const uint32_t*>_column(tcp, "window_scaled", n, np.uint32)
            tc.dupnum = <const uint32_t*>_column(tcp, "dup_ack_num", n, np.uint32)
            tc.dupframe = <const uint32_t*>_column(tcp, "dup_ack_of_frame", n, np.uint32)
            tc.acks = <const uint32_t*>_column(tcp, "acks_frame", n, np.uint32)
            tc.bif = <const uint32_t*>_column(tcp, "bytes_in_flight", n, np.uint32)
            tc.push = <const uint32_t*>_column(tcp, "push_bytes_sent", n, np.uint32)
            tc.trel = <const int64_t*>_column(tcp, "time_relative_ns", n, np.int64)
            tc.tdelta = <const int64_t*>_column(tcp, "time_delta_ns", n, np.int64)
            tc.rtt = <const int64_t*>_column(tcp, "ack_rtt_ns", n, np.int64)
            tc.irtt = <const int64_t*>_column(tcp, "initial_rtt_ns", n, np.int64)
            tc.scale = <const int16_t*>_column(tcp, "win_scale", n, np.int16)
            if t_valid.shape[0] < n or t_ana.shape[0] < n:
                raise ValueError("fewer TCP analysis rows than frames")
        with nogil:
            for i in range(n):
                if self.cap - self.used < room:
                    with gil:
                        self.flush()
                p = self.buf + self.used
                k = 0
                bits = present[i]
                if with_sack:
                    sack_at = sack_next
                    sack_next += sack_count[i]
                if with_times:
                    if has_ts[i]:
                        wts = ts[i]
                    elif linktype[i] != NO_LINKTYPE:
                        wts = 0
                    else:
                        wts = prev_ts if started else 0
                    if not started:
                        first_ts = wts
                        prev_ts = wts
                        started = True
                if selected and not kept[i]:
                    if with_times:
                        prev_ts = wts
                    continue
                if with_times:
                    if not any_shown:
                        prev_shown_ts = wts
                        any_shown = True
                if with_tcp:
                    tv = t_valid[i]
                    ta = t_ana[i]
                    t_row = (tv & tc.k[K_V_ROW]) != 0
                    t_ok = t_row and (tv & tc.k[K_V_ANALYSIS]) != 0
                    shown = t_ok and (ta & tc.k[K_HAS_ANALYSIS]) != 0 \
                        and (ta & tc.k[K_NOT_SHOWN]) == 0
                for f in range(nf):
                    if f:
                        p[k] = 9
                        k += 1
                    src_ = f_src[f]
                    if src_ >= S_STREAM:
                        if src_ >= S_SACK_LE:
                            if sack_count[i] and _own_tcp(bits, ip_proto[i]):
                                k += put_sack(p + k, &edges[sack_at], sack_count[i],
                                              src_ - S_SACK_LE, &tc, i, bits, tv, t_row,
                                              ack[i])
                            continue
                        k += put_tcp(p + k, &tc, src_, f_need1[f], i, bits, tv,
                                     ta, t_row, t_ok, shown, ip_proto[i], seq[i], ack[i])
                        continue
                    need = f_need[f]
                    cond = f_cond[f]
                    fmt = f_fmt[f]
                    if need and not (bits & need):
                        continue
                    if bits & f_veto[f]:
                        continue
                    if cond != C_ALWAYS:
                        need = f_need1[f]
                        if need and not (bits & need):
                            continue
                        need = f_need2[f]
                        if need and not (bits & need):
                            continue
                        if cond == C_V4:
                            ok = ip_version[i] == 4
                        elif cond == C_V6:
                            ok = ip_version[i] == 6
                        elif cond == C_TCP:
                            ok = ip_proto[i] == 6
                        elif cond == C_UDP:
                            ok = ip_proto[i] == 17
                        elif cond == C_ICMP:
                            ok = ip_proto[i] == 1
                        elif cond == C_ICMP6:
                            ok = ip_proto[i] == 58
                        else:
                            ok = False
                        if not ok:
                            continue
                    if src_ == S_TS:
                        if not has_ts[i]:
                            continue
                        if ts[i] < 0:
                            k += put_epoch(p + k, ts[i])
                            continue
                        v = <uint64_t>ts[i] // 1000000000
                        if v != last_sec:
                            last_sec = v
                            sec_len = put_dec(sec_text, v)
                        memcpy(p + k, sec_text, 16)
                        k += sec_len
                        k += put_fraction(p + k, <uint64_t>ts[i] % 1000000000)
                        continue
                    if S_FRAME_REL <= src_ <= S_FRAME_DELTA_SHOWN:
                        if not has_ts[i]:
                            continue
                        k += put_epoch(p + k, wts - (first_ts if src_ == S_FRAME_REL else
                                                     prev_ts if src_ == S_FRAME_DELTA else
                                                     prev_shown_ts))
                        continue
                    if fmt == F_ADDR:
                        if src_ == S_SRC:
                            code = src[i]
                        elif src_ == S_DST:
                            code = dst[i]
                        elif src_ == S_ETH_SRC:
                            code = eth_src[i]
                        else:
                            code = eth_dst[i]
                        k += put_text(p + k, texts, ends_p, n_texts, code)
                        continue
                    if fmt == F_ADDR_PAIR:
                        if src[i] >= <uint32_t>n_texts or dst[i] >= <uint32_t>n_texts:
                            continue
                        k += put_text(p + k, texts, ends_p, n_texts, src[i])
                        p[k] = 44
                        k += 1
                        k += put_text(p + k, texts, ends_p, n_texts, dst[i])
                        continue
                    if fmt == F_PAIR:
                        k += put_dec32(p + k, sport[i])
                        p[k] = 44
                        k += 1
                        k += put_dec32(p + k, dport[i])
                        continue
                    if fmt == F_SACK_PERM:
                        memcpy(p + k, b"0402", 4)
                        k += 4
                        continue
                    if src_ == S_IPV6_PLEN:
                        sv = <int64_t>ip_len[i] - 40
                        if sv < 0:
                            p[k] = 45
                            k += 1
                            sv = -sv
                        k += put_dec(p + k, <uint64_t>sv)
                        continue
                    if src_ == S_FRAME:
                        v = first_frame + i
                    elif src_ == S_LEN:
                        v = wire_len[i]
                    elif src_ == S_CAPLEN:
                        v = cap_len[i]
                    elif src_ == S_IPID:
                        v = ip_id[i]
                    elif src_ == S_TTL:
                        v = ttl[i]
                    elif src_ == S_PROTO:
                        v = ip_proto[i]
                    elif src_ == S_SPORT:
                        v = sport[i]
                    elif src_ == S_DPORT:
                        v = dport[i]
                    elif src_ == S_SEQ:
                        v = seq[i]
                    elif src_ == S_ACK:
                        v = ack[i]
                    elif src_ == S_FLAGS:
                        v = tcp_flags[i]
                    elif src_ == S_TCPLEN:
                        v = tcp_len[i]
                    elif src_ == S_HDRLEN:
                        v = tcp_hdr_len[i]
                    elif src_ == S_WINDOW:
                        v = window[i]
                    elif src_ == S_ETH_TYPE:
                        v = eth_type[i]
                    elif src_ == S_IPVERSION:
                        v = ip_version[i]
                    elif src_ == S_IPHDRLEN:
                        v = ip_hdr_len[i]
                    elif src_ == S_MSS:
                        v = mss[i]
                    elif src_ == S_WSCALE:
                        v = wscale[i]
                    elif src_ == S_TSVAL:
                        v = tsval[i]
                    elif src_ == S_TSECR:
                        v = tsecr[i]
                    elif src_ == S_IFACE:
                        if linktype[i] == NO_LINKTYPE or not iface_ok[i]:
                            continue
                        v = iface[i]
                    elif src_ == S_VLAN:
                        v = vlan_id[i]
                    elif src_ == S_IPLEN:
                        v = ip_len[i]
                    elif src_ == S_DF:
                        v = dont_fragment[i]
                    elif src_ == S_MF:
                        v = more_fragments[i]
                    elif src_ == S_FRAGOFF:
                        v = frag_offset[i]
                    elif src_ == S_IPV6_NXT:
                        v = ipv6_nxt[i]
                    elif src_ == S_ICMP_TYPE:
                        v = icmp_type[i]
                    elif src_ == S_ICMP_CODE:
                        v = icmp_code[i]
                    else:
                        v = udp_len[i]
                    if fmt == F_HEX4:
                        k += put_hex4(p + k, v)
                    elif fmt == F_FLAGS_STR:
                        k += put_flags_str(p + k, v)
                    elif fmt == F_BOOL:
                        p[k] = 49 if v & f_arg[f] else 48
                        k += 1
                    elif v <= 0xFFFFFFFFU:
                        k += put_dec32(p + k, <uint32_t>v)
                    else:
                        k += put_dec(p + k, v)
                p[k] = 10
                self.used += k + 1
                if with_times:
                    prev_ts = wts
                    prev_shown_ts = wts
        if with_times and started:
            times.first_ns, times.prev_ns = first_ts, prev_ts
            if any_shown:
                times.prev_shown_ns = prev_shown_ts


cdef inline Py_ssize_t put_text(char* p, const char* texts, const int64_t* ends,
                                Py_ssize_t count, uint32_t code) noexcept nogil:
    """Address text `code` (nothing for an id beyond the texts known)."""
    cdef int64_t start
    if code >= <uint32_t>count:
        return 0
    start = ends[code - 1] if code else 0
    memcpy(p, texts + start, ends[code] - start)
    return ends[code] - start


cdef inline Py_ssize_t put_sack(char* p, const uint32_t* edges, uint8_t count, int right,
                                const TcpCols* c, Py_ssize_t i, uint32_t bits, uint32_t tv,
                                bint t_row, uint32_t raw_ack) noexcept nogil:
    """tcp.options.sack_le (right 0) or sack_re (1) of a frame's own TCP header with
    `count` edges: every other edge from the first (the second), comma-joined; relative
    to the other side's base sequence number (the raw ack minus the relative one) when
    the segment was analysed with an ACK (tcpsift.fields: _sack_edges)."""
    cdef Py_ssize_t k = 0
    cdef int e
    cdef uint32_t base = 0
    cdef bint rel = (bits & P_ACK) != 0 and t_row and (tv & c.k[K_V_ACK]) != 0
    if rel:
        base = raw_ack - c.rel_ack[i]
    e = right
    while e < count:
        if e > 1:
            p[k] = 44
            k += 1
        k += put_dec32(p + k, edges[e] - base if rel else edges[e])
        e += 2
    return k


cdef inline Py_ssize_t put_tcp(char* p, const TcpCols* c, int src_, uint32_t flag_bits,
                               Py_ssize_t i, uint32_t bits, uint32_t tv, uint32_t ta,
                               bint t_row, bint t_ok, bint shown, uint8_t proto,
                               uint32_t raw_seq, uint32_t raw_ack) noexcept nogil:
    """One TCP analysis field of row i, as tcpsift.fields prints it (its _TCP_FIELD_LIST)."""
    # one if/elif chain on src_ (Cython makes it a C switch); the frame's own TCP
    # header is read for tcp.seq/tcp.ack only (no quoted headers here: such chunks
    # print the table way)
    cdef int16_t sc
    if src_ == S_STREAM:
        return put_dec(p, c.stream[i]) if t_row else 0
    elif src_ == S_TSEQ:
        if t_row and (tv & c.k[K_V_SEQ]):
            return put_dec(p, c.rel_seq[i])
        if _own_tcp(bits, proto) and (bits & P_SEQ):
            return put_dec(p, raw_seq)
        return 0
    elif src_ == S_TACK:
        if not t_ok:
            return 0
        if tv & c.k[K_V_ACK]:
            return put_dec(p, c.rel_ack[i])
        if _own_tcp(bits, proto) and (bits & P_ACK):
            return put_dec(p, raw_ack)
        return 0
    elif src_ == S_NXTSEQ:
        return put_dec(p, c.next_seq[i]) if t_ok and (tv & c.k[K_V_SEQ]) else 0
    elif src_ == S_WINSIZE:
        return put_dec(p, c.window[i]) if t_ok else 0
    elif src_ == S_SCALE:
        if not (t_ok and (tv & c.k[K_V_WSCALE])):
            return 0
        sc = c.scale[i]
        if sc < 0:
            p[0] = 45
            return 1 + put_dec(p + 1, <uint64_t>(-sc))
        return put_dec(p, (<uint64_t>1) << sc)
    elif src_ == S_TREL:
        return put_epoch(p, c.trel[i]) if t_ok else 0
    elif src_ == S_TDELTA:
        return put_epoch(p, c.tdelta[i]) if t_ok else 0
    if not shown:
        return 0
    if src_ == S_FLAG:
        if ta & flag_bits:
            p[0] = 49
            return 1
        return 0
    elif src_ == S_DUP:
        if c.dupnum[i] == 0:
            return 0
        p[0] = 49
        if ta & c.k[K_DUPLICATE_ACK]:
            p[1] = 44
            p[2] = 49
            return 3
        return 1
    elif src_ == S_DUPNUM:
        return put_dec(p, c.dupnum[i]) if c.dupnum[i] else 0
    elif src_ == S_DUPFRAME:
        return put_dec(p, c.dupframe[i]) if c.dupnum[i] else 0
    elif src_ == S_ACKS:
        return put_dec(p, c.acks[i]) if c.acks[i] else 0
    elif src_ == S_RTT:
        return put_epoch(p, c.rtt[i]) if c.acks[i] and c.rtt[i] != 0 else 0
    elif src_ == S_IRTT:
        return put_epoch(p, c.irtt[i]) if c.irtt[i] != 0 else 0
    elif src_ == S_BIF:
        return put_dec(p, c.bif[i]) if c.bif[i] else 0
    elif src_ == S_PUSH:
        return put_dec(p, c.push[i]) if c.bif[i] else 0
    return 0


cdef inline bint _own_tcp(uint32_t bits, uint8_t proto) noexcept nogil:
    """Whether the frame has a TCP header of its own (IP, protocol 6, ports)."""
    return (bits & P_IP) != 0 and proto == 6 and (bits & (P_TCP | P_UDP)) != 0


cdef const void* _column(dict cols, str name, Py_ssize_t n, object dtype) except? NULL:
    """The data of column `name` (NumPy, of `dtype`, at least n rows) as a raw pointer;
    NULL for n == 0 (nothing is read then)."""
    arr = cols[name]
    if arr.dtype != dtype or arr.shape[0] < n:
        raise ValueError(f"TCP column {name} is not {n} values of {dtype}")
    if n == 0:
        return NULL
    cdef const uint8_t[::1] raw = arr.view(np.uint8)
    return &raw[0]
