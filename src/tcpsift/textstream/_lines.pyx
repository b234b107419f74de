# cython: language_level=3
"""Text lines of `tshark -T fields` straight from the decoder's arrays.

A field is a small program (see tcpsift.fields.stream): which column it reads, the
presence bits that column needs, the condition the frame must meet (IPv4, IPv6, TCP,
UDP) and how the value is printed. Lines go into a C buffer that is handed to a
Python writer when it fills; nothing is allocated per frame.
"""
from libc.stdint cimport uint8_t, uint16_t, int32_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

import numpy as np

# sources (must match stream.SOURCES)
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
# conditions
DEF C_ALWAYS = 0
DEF C_V4 = 1
DEF C_V6 = 2
DEF C_TCP = 3
DEF C_UDP = 4
# formats
DEF F_DEC = 0
DEF F_HEX4 = 1
DEF F_ADDR = 2
DEF F_EPOCH = 3

DEF MAX_FIELDS = 64
# room one field can take: 20 digits, a sign and 9 decimals; addresses are checked
DEF FIELD_ROOM = 40


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
        q[-2] = PAIRS[2 * v]
        q[-1] = PAIRS[2 * v + 1]
    else:
        q[-1] = <char>(48 + v)
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
    p[k] = 46
    k += 1
    frac = u % 1000000000
    p[k + 8] = <char>(48 + frac % 10)
    frac //= 10
    for i in range(6, -1, -2):
        p[k + i] = PAIRS[2 * (frac % 100)]
        p[k + i + 1] = PAIRS[2 * (frac % 100) + 1]
        frac //= 100
    return k + 9


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
                   dict pkt, const char* texts, const int64_t[::1] text_ends):
        """Write one line per row of `rec`/`pkt` (frames first_frame, first_frame+1, ...).

        program rows: (source, presence bits the column needs (any of them; 0: none),
        condition, format, two sets of presence bits the condition needs (each: any of
        them; 0: none)).
        texts/text_ends: address texts concatenated, text i ends at text_ends[i].
        """
        cdef Py_ssize_t nf = program.shape[0]
        cdef Py_ssize_t n = rec["offset"].shape[0]
        cdef Py_ssize_t i, f, k, room, longest = 0
        cdef const int64_t[::1] ts = rec["ts_ns"]
        cdef const uint8_t[::1] has_ts = rec["has_ts"].view(np.uint8)
        cdef const uint32_t[::1] wire_len = rec["len"]
        cdef const uint32_t[::1] cap_len = rec["cap_len"]
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
        cdef int src_, cond, fmt
        cdef uint32_t need, bits, code
        cdef uint64_t v
        cdef int64_t start
        cdef bint ok
        cdef char* p
        if nf > MAX_FIELDS:
            raise ValueError("too many fields")
        for i in range(text_ends.shape[0]):
            start = text_ends[i - 1] if i else 0
            if text_ends[i] - start > longest:
                longest = text_ends[i] - start
        room = nf * (FIELD_ROOM + longest) + 1
        if room > self.cap:
            raise ValueError("line too long")
        if program.shape[1] != 6:
            raise ValueError("a program row has 6 entries")
        with nogil:
            for i in range(n):
                if self.cap - self.used < room:
                    with gil:
                        self.flush()
                p = self.buf + self.used
                k = 0
                bits = present[i]
                for f in range(nf):
                    if f:
                        p[k] = 9
                        k += 1
                    src_ = program[f, 0]
                    need = <uint32_t>program[f, 1]
                    cond = program[f, 2]
                    fmt = program[f, 3]
                    if need and not (bits & need):
                        continue
                    if cond != C_ALWAYS:
                        need = <uint32_t>program[f, 4]
                        if need and not (bits & need):
                            continue
                        need = <uint32_t>program[f, 5]
                        if need and not (bits & need):
                            continue
                        if cond == C_V4:
                            ok = ip_version[i] == 4
                        elif cond == C_V6:
                            ok = ip_version[i] == 6
                        elif cond == C_TCP:
                            ok = ip_proto[i] == 6
                        else:
                            ok = ip_proto[i] == 17
                        if not ok:
                            continue
                    if src_ == S_TS:
                        if not has_ts[i]:
                            continue
                        k += put_epoch(p + k, ts[i])
                        continue
                    if src_ == S_SRC or src_ == S_DST:
                        code = src[i] if src_ == S_SRC else dst[i]
                        if code >= <uint32_t>text_ends.shape[0]:
                            continue
                        start = text_ends[code - 1] if code else 0
                        memcpy(p + k, texts + start, text_ends[code] - start)
                        k += text_ends[code] - start
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
                    else:
                        v = udp_len[i]
                    if fmt == F_HEX4:
                        k += put_hex4(p + k, v)
                    else:
                        k += put_dec(p + k, v)
                p[k] = 10
                self.used += k + 1

