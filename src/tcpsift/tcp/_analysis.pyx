# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The TCP analysis kernel: Wireshark 4.0's tcp.stream and tcp.analysis.* in one pass.

This is the compiled twin of tests/support/tcp_reference.py (the slow, obvious model,
itself checked against tshark 4.0.17 on the corpus); tests/test_tcp_kernel.py holds the
two equal on every column of every row. The rules, their order and their quirks are the
reference's, which are those of epan/dissectors/packet-tcp.c: read the reference for the
why of each one; the comments here say why the C looks the way it does.

One pass over the rows in frame order. Wireshark's state is per conversation, but the
conversation a row belongs to depends on every earlier row (port reuse replaces the
conversation of an address/port pair), and ICMP-quoted headers can open conversations;
frame order is the only order that gives the same stream numbers, so the analysis runs
in it too (a conversation's state is an entry of a growing array: one pointer away).

Nothing per packet is a Python object; the loop runs without the GIL. State:
- a hash table (open addressing) from the unordered endpoint pair to the current
  conversation (the latest one for that pair, as Wireshark's conversation table finds);
- an array of conversations, index = tcp.stream, each with its two flows;
- a pool of unacknowledged segments, linked per flow, with a free list. Wireshark walks its list (newest first) entirely on every ACK and again for the
  bytes in flight: O(segments in flight) per packet, seconds on a bulk capture. Each
  segment's fate under an ACK depends only on that segment, and of several segments
  the ACK matches exactly the oldest one is reported (the last one Wireshark's walk
  visits, the lowest row), so the order of the list is free. It is kept in seq order
  (doubly linked; a retransmission is inserted where it belongs): every segment from the
  first one that starts at or after the ACK on is untouched, so the walk stops there,
  and the span of the list (bytes in flight) is its first seq to its highest end, kept
  up to date. Segments too far apart for wrap-aware comparisons to order them (2^29)
  end the ordered mode: full walks then run, as Wireshark's, and notice when the order
  is back.
"""
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdint cimport INT64_MIN
from libc.stdlib cimport free, malloc, realloc

import numpy as np
from libc.string cimport memcpy, memset

# TCP header flag bits
cdef enum:
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10

# Bits of the `analysis` column (Wireshark's TCP_A_* plus tcpsift's three markers)
cdef enum:
    RETRANSMISSION = 0x0001
    LOST_SEGMENT = 0x0002
    ACK_LOST_SEGMENT = 0x0004
    KEEP_ALIVE = 0x0008
    DUPLICATE_ACK = 0x0010
    ZERO_WINDOW = 0x0020
    ZERO_WINDOW_PROBE = 0x0040
    ZERO_WINDOW_PROBE_ACK = 0x0080
    KEEP_ALIVE_ACK = 0x0100
    OUT_OF_ORDER = 0x0200
    FAST_RETRANSMISSION = 0x0400
    WINDOW_UPDATE = 0x0800
    WINDOW_FULL = 0x1000
    REUSED_PORTS = 0x2000
    SPURIOUS_RETRANSMISSION = 0x4000
    HAS_ANALYSIS = 0x10000
    NOT_SHOWN = 0x20000
    QUOTED = 0x40000

# Input row bits: the kind of row (low 2 bits) and what is present
cdef enum:
    KIND_MASK = 3
    KIND_NONE = 0
    KIND_TCP = 1
    KIND_QUOTED = 2
    RF_HAS_SEGLEN = 4
    RF_HEADER_CUT = 8
    RF_HAS_HLEN = 16
    RF_HAS_WSCALE = 32

# Validity bits of the output rows (the Python side turns them into nulls)
cdef enum:
    V_ROW = 1
    V_SEQ = 2          # rel_seq, next_seq
    V_ACK = 4          # rel_ack
    V_WSCALE = 8       # win_scale
    V_ANALYSIS = 16    # analysis (null when the header length is bogus)

cdef enum:
    MAX_UNACKED = 10000          # TCP_MAX_UNACKED_SEGMENTS
    MAX_SACK_STORED = 3          # SACK blocks 1..3 of an option are remembered

# the analysis bits, for tcpsift.tcp to check its names against
ANALYSIS_BITS = {
    "retransmission": RETRANSMISSION, "lost_segment": LOST_SEGMENT,
    "ack_lost_segment": ACK_LOST_SEGMENT, "keep_alive": KEEP_ALIVE,
    "duplicate_ack": DUPLICATE_ACK, "zero_window": ZERO_WINDOW,
    "zero_window_probe": ZERO_WINDOW_PROBE, "zero_window_probe_ack": ZERO_WINDOW_PROBE_ACK,
    "keep_alive_ack": KEEP_ALIVE_ACK, "out_of_order": OUT_OF_ORDER,
    "fast_retransmission": FAST_RETRANSMISSION, "window_update": WINDOW_UPDATE,
    "window_full": WINDOW_FULL, "reused_ports": REUSED_PORTS,
    "spurious_retransmission": SPURIOUS_RETRANSMISSION, "HAS_ANALYSIS": HAS_ANALYSIS,
    "NOT_SHOWN": NOT_SHOWN, "QUOTED": QUOTED,
}
V_BITS = {"row": V_ROW, "seq": V_SEQ, "ack": V_ACK, "wscale": V_WSCALE,
          "analysis": V_ANALYSIS}
ROW_BITS = {"tcp": KIND_TCP, "quoted": KIND_QUOTED, "has_seglen": RF_HAS_SEGLEN,
            "header_cut": RF_HEADER_CUT, "has_hlen": RF_HAS_HLEN,
            "has_wscale": RF_HAS_WSCALE}


ctypedef struct Flow:            # tcp_flow_t + its tcp_analyze_seq_flow_info_t
    uint32_t base_seq
    uint8_t base_set
    uint8_t is_first_ack
    uint8_t valid_bif
    uint8_t push_set_last
    int32_t win_scale            # -1 unknown, -2 not used, else the shift
    uint32_t window              # raw window of the last segment (G_MAXUINT32 before any)
    uint32_t push_bytes_sent
    uint32_t lastsegmentflags
    uint32_t nextseq
    uint32_t nextseqframe
    int64_t nextseqtime
    uint32_t maxseqtobeacked
    uint32_t lastack
    int64_t lastacktime
    uint32_t lastnondupack
    uint32_t dupacknum           # unsigned like the C code: 0xFFFFFFFF is its -1 marker
    int32_t seg_head             # oldest unacked segment, -1: none
    int32_t seg_tail             # newest
    uint32_t seg_count
    uint8_t sorted               # segments in insertion order have non-decreasing seq,
                                 # all within 2^29 of the oldest (see the ACK walk)
    uint32_t max_end             # then: the highest nextseq among them
    int32_t finger               # the segment inserted last out of order (-1: none)
    int32_t sack_n
    uint32_t sack[6]             # (left, right) x 3 of the last SACK option
    uint32_t fin_end             # the seq just past this side's last FIN (eviction only)
    uint8_t fin_state            # FIN_*: whether that FIN was sent and acknowledged


ctypedef struct Conv:            # one tcp.stream (an entry of the conversation pool)
    int64_t ts_first
    int64_t ts_prev
    int64_t ts_mru_syn           # 0: none (the reference's sentinel, kept as is)
    int64_t ts_first_rtt         # 0: not known
    uint64_t client              # endpoint (rank << 16 | port) that opened the stream
    uint64_t key_lo              # its endpoint pair: the hash table's key
    uint64_t key_hi
    uint32_t stream
    uint8_t rst                  # an RST was seen (eviction only)
    uint8_t live                 # 0: on the free list
    int32_t next_free
    Flow flow1
    Flow flow2


ctypedef struct Tomb:            # an evicted conversation: what a late packet needs
    uint64_t key_lo
    uint64_t key_hi
    uint64_t client
    int64_t ts_first
    int64_t ts_last              # its last packet
    uint32_t stream
    uint32_t base_seq1           # flow1's and flow2's bases: a pure SYN with another seq
    uint32_t base_seq2           # starts a new stream (port reuse), any other packet
    uint8_t base_set1            # continues this one
    uint8_t base_set2
    int32_t next_free            # -2: in use


ctypedef struct Seg:             # tcp_unacked_t
    uint32_t frame
    uint32_t seq
    uint32_t nextseq
    int32_t next
    int32_t prev
    int64_t row                  # the row that sent it: "oldest" is the lowest row
    int64_t ts


ctypedef struct TA:              # tcp_acked, created on demand ("present")
    uint8_t present
    uint32_t flags
    uint32_t dupack_num
    uint32_t dupack_frame
    uint32_t frame_acked
    int64_t ack_rtt
    uint32_t bytes_in_flight
    uint32_t push_bytes_sent


ctypedef struct State:
    Conv* convs                  # the conversation pool (index != stream)
    int32_t nconv, conv_cap, free_conv, live_convs
    uint32_t next_stream
    Seg* segs
    int32_t nseg, seg_cap, free_seg, live_segs
    Tomb* tombs
    int32_t ntomb, tomb_cap, free_tomb, live_tombs
    uint64_t* key_lo
    uint64_t* key_hi
    int32_t* slot_conv           # EMPTY, a conversation (>= 0) or TOMB(t) (<= -2)
    Py_ssize_t slot_cap, slot_used
    int64_t row_base             # rows of the earlier chunks (a segment's row is global)
    # eviction (grace < 0: never, as Wireshark, which keeps every conversation)
    int64_t grace                # an ended conversation quiet this long is evicted
    int64_t remember             # a tombstone is forgotten this long after its last packet (< 0: never)
    int64_t idle                 # any conversation quiet this long is evicted (< 0: never)
    uint8_t reporting            # freed streams are noted (eviction on, or after finish())
    int64_t now                  # the greatest timestamp so far (capture time never goes back)
    int64_t next_sweep
    uint32_t* ended              # streams evicted since the caller last took them
    Py_ssize_t nended, ended_cap
    uint64_t late_packets        # packets that found only a tombstone


# --- sequence-number comparisons (wrap-aware, like GT_SEQ & co.) ---------------------------

cdef inline bint GT(uint32_t x, uint32_t y) noexcept nogil:
    return <int32_t>(y - x) < 0

cdef inline bint LT(uint32_t x, uint32_t y) noexcept nogil:
    return <int32_t>(x - y) < 0

cdef inline bint LE(uint32_t x, uint32_t y) noexcept nogil:
    return <int32_t>(x - y) <= 0

cdef inline bint GE(uint32_t x, uint32_t y) noexcept nogil:
    return <int32_t>(y - x) <= 0

# the span within which a flow's unacked segments count as ordered (see the ACK walk)
cdef uint32_t SPAN = 0x20000000U


cdef enum:
    EMPTY = -1                   # hash slot values; a tombstone t is stored as -2 - t
    FIN_SENT = 1
    FIN_ACKED = 2

cdef inline int32_t TOMB(int32_t t) noexcept nogil:
    return -2 - t


cdef inline void flow_init(Flow* f) noexcept nogil:
    memset(f, 0, sizeof(Flow))
    f.win_scale = -1
    f.window = 0xFFFFFFFFU
    f.valid_bif = 1
    f.seg_head = -1
    f.seg_tail = -1
    f.finger = -1
    f.sorted = 1


cdef inline TA* get_ta(TA* ta) noexcept nogil:
    ta.present = 1
    return ta


# --- storage -----------------------------------------------------------------------------

cdef int new_conv(State* st, int64_t ts, uint64_t client, uint64_t lo, uint64_t hi,
                  uint32_t stream) noexcept nogil:
    """A fresh conversation from the pool; returns its index, or -1 (no memory). The
    pool may move: pointers into it are stale afterwards."""
    cdef Conv* c
    cdef int32_t ci, cap
    if st.free_conv >= 0:
        ci = st.free_conv
        st.free_conv = st.convs[ci].next_free
    else:
        if st.nconv == st.conv_cap:
            cap = st.conv_cap * 2 if st.conv_cap else 1024
            c = <Conv*>realloc(st.convs, <size_t>cap * sizeof(Conv))
            if c == NULL:
                return -1
            st.convs = c
            st.conv_cap = cap
        ci = st.nconv
        st.nconv += 1
    c = &st.convs[ci]
    c.ts_first = ts
    c.ts_prev = ts
    c.ts_mru_syn = 0
    c.ts_first_rtt = 0
    c.client = client
    c.key_lo = lo
    c.key_hi = hi
    c.stream = stream
    c.rst = 0
    c.live = 1
    c.next_free = -1
    flow_init(&c.flow1)
    flow_init(&c.flow2)
    st.live_convs += 1
    return ci


cdef int note_ended(State* st, uint32_t stream) noexcept nogil:
    cdef uint32_t* e
    cdef Py_ssize_t cap
    if st.nended == st.ended_cap:
        cap = st.ended_cap * 2 if st.ended_cap else 256
        e = <uint32_t*>realloc(st.ended, cap * sizeof(uint32_t))
        if e == NULL:
            return -1
        st.ended = e
        st.ended_cap = cap
    st.ended[st.nended] = stream
    st.nended += 1
    return 0


cdef int release_conv(State* st, int32_t ci) noexcept nogil:
    """Free a conversation nothing refers to any more (its segments too); with eviction
    on, its stream is reported as ended."""
    cdef Conv* c = &st.convs[ci]
    cdef int32_t s, nxt
    cdef int side
    for side in range(2):
        s = c.flow1.seg_head if side == 0 else c.flow2.seg_head
        while s >= 0:
            nxt = st.segs[s].next
            seg_free(st, s)
            s = nxt
    c.live = 0
    c.next_free = st.free_conv
    st.free_conv = ci
    st.live_convs -= 1
    if st.reporting:
        return note_ended(st, c.stream)
    return 0


cdef inline uint64_t mix(uint64_t lo, uint64_t hi) noexcept nogil:
    cdef uint64_t h = lo * 0x9E3779B97F4A7C15ULL ^ (hi + 0x632BE59BD9B4E019ULL)
    h ^= h >> 29
    h *= 0xBF58476D1CE4E5B9ULL
    h ^= h >> 32
    return h


cdef int slot_grow(State* st) noexcept nogil:
    cdef Py_ssize_t cap = st.slot_cap * 2, i, j
    cdef uint64_t* lo = <uint64_t*>malloc(cap * sizeof(uint64_t))
    cdef uint64_t* hi = <uint64_t*>malloc(cap * sizeof(uint64_t))
    cdef int32_t* sc = <int32_t*>malloc(cap * sizeof(int32_t))
    if lo == NULL or hi == NULL or sc == NULL:
        free(lo)
        free(hi)
        free(sc)
        return -1
    for i in range(cap):
        sc[i] = EMPTY
    for i in range(st.slot_cap):
        if st.slot_conv[i] != EMPTY:
            j = <Py_ssize_t>(mix(st.key_lo[i], st.key_hi[i]) & <uint64_t>(cap - 1))
            while sc[j] != EMPTY:
                j = (j + 1) & (cap - 1)
            lo[j] = st.key_lo[i]
            hi[j] = st.key_hi[i]
            sc[j] = st.slot_conv[i]
    free(st.key_lo)
    free(st.key_hi)
    free(st.slot_conv)
    st.key_lo, st.key_hi, st.slot_conv, st.slot_cap = lo, hi, sc, cap
    return 0


cdef Py_ssize_t slot_find(State* st, uint64_t lo, uint64_t hi) noexcept nogil:
    """The slot of the key, or the empty slot where it would go."""
    cdef Py_ssize_t j = <Py_ssize_t>(mix(lo, hi) & <uint64_t>(st.slot_cap - 1))
    while st.slot_conv[j] != EMPTY:
        if st.key_lo[j] == lo and st.key_hi[j] == hi:
            return j
        j = (j + 1) & (st.slot_cap - 1)
    return j


cdef int slot_set(State* st, Py_ssize_t slot, uint64_t lo, uint64_t hi, int32_t value) noexcept nogil:
    """Fill the empty slot `slot_find` gave for the key."""
    st.key_lo[slot] = lo
    st.key_hi[slot] = hi
    st.slot_conv[slot] = value
    st.slot_used += 1
    if st.slot_used * 2 > st.slot_cap:
        return slot_grow(st)
    return 0


cdef void slot_delete(State* st, Py_ssize_t i) noexcept nogil:
    """Empty slot i, moving back the later keys of its probe run that would no longer
    be found (linear probing without deletion markers)."""
    cdef Py_ssize_t mask = st.slot_cap - 1, k = i, home
    st.slot_conv[i] = EMPTY
    st.slot_used -= 1
    while True:
        k = (k + 1) & mask
        if st.slot_conv[k] == EMPTY:
            return
        home = <Py_ssize_t>(mix(st.key_lo[k], st.key_hi[k]) & <uint64_t>mask)
        # the key at k stays unless the hole at i lies on its way from home to k
        if ((k - home) & mask) < ((k - i) & mask):
            continue
        st.key_lo[i] = st.key_lo[k]
        st.key_hi[i] = st.key_hi[k]
        st.slot_conv[i] = st.slot_conv[k]
        st.slot_conv[k] = EMPTY
        i = k


cdef int32_t tomb_alloc(State* st) noexcept nogil:
    cdef int32_t t, cap
    cdef Tomb* p
    if st.free_tomb >= 0:
        t = st.free_tomb
        st.free_tomb = st.tombs[t].next_free
    else:
        if st.ntomb == st.tomb_cap:
            cap = st.tomb_cap * 2 if st.tomb_cap else 1024
            p = <Tomb*>realloc(st.tombs, <size_t>cap * sizeof(Tomb))
            if p == NULL:
                return -1
            st.tombs = p
            st.tomb_cap = cap
        t = st.ntomb
        st.ntomb += 1
    st.tombs[t].next_free = -2
    st.live_tombs += 1
    return t


cdef inline void tomb_free(State* st, int32_t t) noexcept nogil:
    st.tombs[t].next_free = st.free_tomb
    st.free_tomb = t
    st.live_tombs -= 1


cdef inline bint conv_stale(State* st, Conv* c) noexcept nogil:
    """Ended (an RST, or both FINs acknowledged) and quiet for longer than the grace, or
    quiet for longer than `idle`."""
    cdef int64_t quiet = st.now - c.ts_prev
    return (((c.rst or (c.flow1.fin_state == FIN_ACKED and c.flow2.fin_state == FIN_ACKED))
             and quiet > st.grace) or 0 <= st.idle < quiet)


cdef inline bint tomb_stale(State* st, Tomb* t) noexcept nogil:
    return st.remember >= 0 and st.now - t.ts_last > st.remember


cdef int evict(State* st, int32_t ci, Py_ssize_t slot) noexcept nogil:
    """Replace conversation ci (in hash slot `slot`) by its tombstone."""
    cdef int32_t t = tomb_alloc(st)
    cdef Conv* c = &st.convs[ci]
    cdef Tomb* b
    if t < 0:
        return -1
    b = &st.tombs[t]
    b.key_lo, b.key_hi, b.client = c.key_lo, c.key_hi, c.client
    b.ts_first, b.ts_last, b.stream = c.ts_first, c.ts_prev, c.stream
    b.base_seq1, b.base_set1 = c.flow1.base_seq, c.flow1.base_set
    b.base_seq2, b.base_set2 = c.flow2.base_seq, c.flow2.base_set
    st.slot_conv[slot] = TOMB(t)
    return release_conv(st, ci)


cdef int sweep(State* st) noexcept nogil:
    """Evict the stale conversations and forget the stale tombstones: what a lookup
    would do to them (conv_stale, tomb_stale) done ahead, so that memory follows the
    conversations open at once."""
    cdef int32_t i
    cdef Py_ssize_t slot
    for i in range(st.nconv):
        if st.convs[i].live and conv_stale(st, &st.convs[i]):
            slot = slot_find(st, st.convs[i].key_lo, st.convs[i].key_hi)
            if evict(st, i, slot) < 0:
                return -1
    if st.remember >= 0:
        for i in range(st.ntomb):
            if st.tombs[i].next_free == -2 and tomb_stale(st, &st.tombs[i]):
                slot_delete(st, slot_find(st, st.tombs[i].key_lo, st.tombs[i].key_hi))
                tomb_free(st, i)
    return 0


cdef int32_t seg_alloc(State* st) noexcept nogil:
    cdef int32_t i
    cdef Seg* s
    cdef int32_t cap
    st.live_segs += 1
    if st.free_seg >= 0:
        i = st.free_seg
        st.free_seg = st.segs[i].next
        return i
    if st.nseg == st.seg_cap:
        cap = st.seg_cap * 2 if st.seg_cap else 4096
        s = <Seg*>realloc(st.segs, <size_t>cap * sizeof(Seg))
        if s == NULL:
            return -1
        st.segs = s
        st.seg_cap = cap
    st.nseg += 1
    return st.nseg - 1


cdef inline void seg_free(State* st, int32_t i) noexcept nogil:
    st.segs[i].next = st.free_seg
    st.free_seg = i
    st.live_segs -= 1


cdef inline void seg_link_after(State* st, Flow* f, int32_t i, int32_t after) noexcept nogil:
    """Link segment i after `after` (-1: at the head)."""
    cdef int32_t nxt = st.segs[after].next if after >= 0 else f.seg_head
    st.segs[i].prev = after
    st.segs[i].next = nxt
    if after >= 0:
        st.segs[after].next = i
    else:
        f.seg_head = i
    if nxt >= 0:
        st.segs[nxt].prev = i
    else:
        f.seg_tail = i


cdef inline void seg_unlink(State* st, Flow* f, int32_t i) noexcept nogil:
    cdef int32_t p = st.segs[i].prev, n = st.segs[i].next
    if f.finger == i:
        f.finger = -1
    if p >= 0:
        st.segs[p].next = n
    else:
        f.seg_head = n
    if n >= 0:
        st.segs[n].prev = p
    else:
        f.seg_tail = p


cdef int seg_insert(State* st, Flow* f, int32_t i) noexcept nogil:
    """Add segment i to the flow's list: in seq order while the list is ordered (equal
    seqs in insertion order: after the last one with a seq not above it); appended once
    it is not."""
    cdef Seg* u = &st.segs[i]
    cdef uint32_t lo, hi_end
    cdef int32_t a, b
    if f.seg_head < 0:
        seg_link_after(st, f, i, -1)
        f.sorted = 1
        f.max_end = u.nextseq
        return 0
    if f.sorted:
        lo = st.segs[f.seg_head].seq
        # the comparisons below are consistent within 2^30 of the oldest seq
        if <uint32_t>(u.seq - lo + 0x40000000U) < 0x80000000U:
            if LT(u.seq, lo):
                lo = u.seq
            hi_end = u.nextseq if GT(u.nextseq, f.max_end) else f.max_end
            if (<uint32_t>(hi_end - lo) < SPAN and <uint32_t>(u.nextseq - lo) < SPAN
                    and GT(u.nextseq, u.seq)):
                f.max_end = hi_end
                if GE(u.seq, st.segs[f.seg_tail].seq):
                    seg_link_after(st, f, i, f.seg_tail)
                    return 0
                # a retransmission of the oldest segments goes at the head
                a = f.seg_head
                if GT(st.segs[a].seq, u.seq):
                    seg_link_after(st, f, i, -1)
                    return 0
                b = st.segs[a].next
                if b < 0 or GT(st.segs[b].seq, u.seq):
                    seg_link_after(st, f, i, a)
                    return 0
                # else from the last out-of-order insertion: copies of segments seen
                # twice (two capture points) arrive in order, each just after the last
                a = f.finger if f.finger >= 0 else f.seg_tail
                if LE(st.segs[a].seq, u.seq):
                    b = st.segs[a].next
                    while b >= 0 and LE(st.segs[b].seq, u.seq):
                        a = b
                        b = st.segs[a].next
                else:
                    while a >= 0 and GT(st.segs[a].seq, u.seq):
                        a = st.segs[a].prev
                seg_link_after(st, f, i, a)
                f.finger = i
                return 0
        f.sorted = 0
    seg_link_after(st, f, i, f.seg_tail)
    return 0


# --- tcp_analyze_sequence_number() --------------------------------------------------------

cdef int analyze_sequence_number(State* st, TA* ta, Conv* conv, Flow* fwd, Flow* rev,
                                 int64_t row, uint32_t frame, int64_t ts, uint32_t seq, uint32_t ack,
                                 uint32_t seglen, uint32_t flags, uint32_t window) noexcept nogil:
    """The verdicts in Wireshark's order of tests (see the reference for each rule).
    Returns -1 when out of memory."""
    cdef bint zwp = False, done, seq_not_advanced, is_zwp, found, fast, kept, keep_ok
    cdef int32_t keep_first
    cdef uint32_t keep_end
    cdef int64_t oldest = 0
    cdef Seg* h
    cdef uint32_t shift, edge, end, nextseq, first, last, v, in_flight, delivered
    cdef uint64_t t, ooo_thres
    cdef int32_t cur, prev, nxt, i
    cdef Seg* u

    if flags & ACK:
        rev.valid_bif = 1

    if seglen == 1 and seq == fwd.nextseq and rev.window == 0:
        get_ta(ta).flags |= ZERO_WINDOW_PROBE
        zwp = True

    if not zwp:
        if window == 0 and not (flags & (RST | FIN | SYN)):
            get_ta(ta).flags |= ZERO_WINDOW

        if fwd.nextseq and GT(seq, fwd.nextseq) and not (flags & RST):
            get_ta(ta).flags |= LOST_SEGMENT
            fwd.valid_bif = 0

        if ((seglen == 0 or seglen == 1) and seq == <uint32_t>(fwd.nextseq - 1)
                and not (flags & (SYN | FIN | RST))):
            get_ta(ta).flags |= KEEP_ALIVE

        if (seglen == 0 and window and window != fwd.window and seq == fwd.nextseq
                and ack == fwd.lastack and not (flags & (SYN | FIN | RST))):
            get_ta(ta).flags |= WINDOW_UPDATE

        if seglen > 0 and rev.win_scale != -1 and not (flags & (SYN | FIN | RST)):
            shift = 0 if (rev.is_first_ack or rev.win_scale == -2) else <uint32_t>rev.win_scale
            # the window is a guint32 shifted in 32 bits: G_MAXUINT32 (no window yet)
            # shifted loses its high bits exactly as in C
            edge = rev.lastack + <uint32_t>((<uint64_t>rev.window) << shift)
            if <uint32_t>(seq + seglen) == edge:
                get_ta(ta).flags |= WINDOW_FULL

        done = False
        if (seglen == 0 and window and window == fwd.window and seq == fwd.nextseq
                and ack == fwd.lastack and (rev.lastsegmentflags & KEEP_ALIVE)
                and not (flags & (SYN | FIN | RST))):
            get_ta(ta).flags |= KEEP_ALIVE_ACK
            done = True

        if (not done and seglen == 0 and window == 0 and window == fwd.window
                and seq == fwd.nextseq and ack == fwd.lastack
                and (rev.lastsegmentflags & ZERO_WINDOW_PROBE)
                and not (flags & (SYN | FIN | RST))):
            get_ta(ta).flags |= ZERO_WINDOW_PROBE_ACK
            done = True

        if (not done and seglen == 0 and window and window == fwd.window
                and seq == fwd.nextseq and ack == fwd.lastack
                and not (flags & (SYN | FIN | RST))):
            if fwd.dupacknum == 0xFFFFFFFFU:
                fwd.dupacknum = 1
            else:
                fwd.dupacknum += 1
            get_ta(ta).flags |= DUPLICATE_ACK
            ta.dupack_num = fwd.dupacknum
            ta.dupack_frame = fwd.lastnondupack

    if ack != fwd.lastack:
        fwd.lastnondupack = frame
        fwd.dupacknum = 0

    if rev.maxseqtobeacked and GT(ack, rev.maxseqtobeacked) and (flags & ACK):
        get_ta(ta)
        if LT(rev.maxseqtobeacked, rev.nextseq):
            rev.maxseqtobeacked = rev.nextseq
            ta.flags |= ACK_LOST_SEGMENT
        else:
            if rev.dupacknum == 0:
                ta.flags |= ACK_LOST_SEGMENT
            rev.dupacknum = 0xFFFFFFFFU

    # a loop run once stands for the C code's goto out of the retransmission tests
    if seglen > 0 or (flags & (SYN | FIN)):
        seq_not_advanced = fwd.nextseq != 0 and LT(seq, fwd.nextseq)
        while True:
            if ta.present and (ta.flags & KEEP_ALIVE):
                break
            if seglen > 1 and <uint32_t>(fwd.nextseq - 1) == seq:
                seq_not_advanced = False
            if seglen > 0 and rev.lastack and LE(seq + seglen, rev.lastack):
                get_ta(ta).flags |= SPURIOUS_RETRANSMISSION
                break
            # times compared as unsigned 64-bit differences, like the C code's nstime math
            t = <uint64_t>ts - <uint64_t>rev.lastacktime
            if seq_not_advanced and rev.dupacknum >= 2 and rev.lastack == seq and t < 20000000:
                get_ta(ta).flags |= FAST_RETRANSMISSION
                break
            t = <uint64_t>ts - <uint64_t>fwd.nextseqtime
            ooo_thres = 3000000 if conv.ts_first_rtt == 0 else <uint64_t>conv.ts_first_rtt
            end = seq + seglen + (1 if (flags & (SYN | FIN)) else 0)
            if seq_not_advanced and t < ooo_thres and fwd.nextseq != end:
                get_ta(ta).flags |= OUT_OF_ORDER
                break
            if seq_not_advanced:
                get_ta(ta).flags |= RETRANSMISSION
            break

    nextseq = seq + seglen
    if (seglen or (flags & (SYN | FIN))) and fwd.seg_count < MAX_UNACKED:
        if flags & (SYN | FIN):
            nextseq += 1
        i = seg_alloc(st)
        if i < 0:
            return -1
        u = &st.segs[i]
        u.frame = frame
        u.row = row
        u.seq = seq
        u.nextseq = nextseq
        u.ts = ts
        if seg_insert(st, fwd, i) < 0:
            return -1
        fwd.seg_count += 1

    is_zwp = ta.present and (ta.flags & ZERO_WINDOW_PROBE)
    if GT(nextseq, fwd.nextseq) or not fwd.nextseq:
        if not is_zwp:
            fwd.nextseq = nextseq
            fwd.nextseqframe = frame
            fwd.nextseqtime = ts
    if seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked:
        if not is_zwp:
            fwd.maxseqtobeacked = fwd.nextseq

    fwd.window = window
    fwd.lastack = ack
    fwd.lastacktime = ts
    fwd.lastsegmentflags = ta.flags if ta.present else 0

    # the other side's segments this ack covers; of several exact matches the oldest (the
    # lowest row) is reported: the last one Wireshark's newest-first walk visits
    found = False
    prev = -1
    cur = rev.seg_head
    # the early stop needs the ack within 2^30 of the list (no wrap in the comparisons)
    fast = (rev.sorted and cur >= 0
            and <uint32_t>(ack - st.segs[cur].seq + 0x40000000U) < 0x80000000U)
    # a full walk also finds out whether the segments it keeps are in order again
    keep_ok = True
    keep_first = -1
    keep_end = 0
    while cur >= 0:
        u = &st.segs[cur]
        if fast and LE(ack, u.seq):
            break                # (and so are all the later ones: untouched)
        if ack == u.nextseq:
            if not found or u.row < oldest:
                found = True
                oldest = u.row
                get_ta(ta)
                ta.frame_acked = u.frame
                ta.ack_rtt = ts - u.ts
        elif GT(ack, u.seq) and LE(ack, u.nextseq):
            # partly acked: keep the rest (Wireshark looks at it again, which always
            # ends in "not acked yet")
            u.seq = ack
            kept = True
        elif GT(u.nextseq, ack):
            kept = True          # not acked yet
        else:
            kept = False
        if ack == u.nextseq or not kept:
            nxt = u.next
            seg_unlink(st, rev, cur)
            seg_free(st, cur)
            rev.seg_count -= 1
            cur = nxt
            continue
        if not fast:
            if keep_first < 0:
                keep_first = cur
                keep_end = u.nextseq
            else:
                h = &st.segs[keep_first]
                if (not GE(u.seq, st.segs[prev].seq) or <uint32_t>(u.seq - h.seq) >= SPAN
                        or <uint32_t>(u.nextseq - h.seq) >= SPAN):
                    keep_ok = False
                elif GT(u.nextseq, keep_end):
                    keep_end = u.nextseq
        prev = cur
        cur = u.next
    if rev.seg_head < 0:
        rev.seg_tail = -1
        rev.sorted = 1
    elif not fast and keep_ok:
        rev.sorted = 1
        rev.max_end = keep_end

    if seglen != 0 and fwd.seg_head >= 0 and fwd.valid_bif:
        u = &st.segs[fwd.seg_head]
        first = u.seq - fwd.base_seq
        last = fwd.max_end - fwd.base_seq
        # in order and not across the base seq: the oldest seq and the highest end are
        # the extremes of the relative numbers; else scan like Wireshark
        if not (fwd.sorted and first <= last):
            last = u.nextseq - fwd.base_seq
            cur = fwd.seg_head
            while cur >= 0:
                u = &st.segs[cur]
                v = u.nextseq - fwd.base_seq
                if v > last:
                    last = v
                v = u.seq - fwd.base_seq
                if v < first:
                    first = v
                cur = u.next
        in_flight = last - first
        delivered = 0
        for i in range(rev.sack_n):
            delivered += rev.sack[2 * i + 1] - rev.sack[2 * i]
        in_flight -= delivered
        if 0 < in_flight < 2000000000:
            get_ta(ta)
            ta.bytes_in_flight = in_flight
            if flags & (SYN | FIN):
                ta.bytes_in_flight -= 1
        if (flags & PSH) and not fwd.push_set_last:
            fwd.push_bytes_sent += seglen
            fwd.push_set_last = 1
        elif (flags & PSH) and fwd.push_set_last:
            fwd.push_bytes_sent = seglen
            fwd.push_set_last = 1
        elif fwd.push_set_last:
            fwd.push_bytes_sent = seglen
            fwd.push_set_last = 0
        else:
            fwd.push_bytes_sent += seglen
        get_ta(ta).push_bytes_sent = fwd.push_bytes_sent
    return 0


# --- the per-frame bookkeeping of dissect_tcp() -------------------------------------------

cdef inline int64_t sweep_interval(State* st) noexcept nogil:
    cdef int64_t every = st.grace
    if 0 <= st.remember < every:
        every = st.remember
    if 0 <= st.idle < every:
        every = st.idle
    # a sweep walks every conversation and tombstone: often enough that what waits for
    # it is an eighth of a window more
    every //= 8
    return every if every > 1000000 else 1000000


cdef int from_tomb(State* st, Py_ssize_t slot, int32_t t, bint direction_fwd, uint32_t fl,
                   uint32_t seq, bint* reused) noexcept nogil:
    """A packet found tombstone t in `slot`: the conversation it continues (revived with
    what the tombstone kept: a late packet), or EMPTY when it starts a new one (the
    tombstone forgotten: too old, or a pure SYN with another seq, Wireshark's port reuse,
    which sets *reused). -2: out of memory."""
    cdef Tomb* tb = &st.tombs[t]
    cdef Conv* c
    cdef int32_t ci
    cdef uint8_t base_set = tb.base_set1 if direction_fwd else tb.base_set2
    cdef uint32_t base = tb.base_seq1 if direction_fwd else tb.base_seq2
    if tomb_stale(st, tb) or ((fl & (SYN | ACK)) == SYN and base_set and seq != base):
        reused[0] = not tomb_stale(st, tb)
        slot_delete(st, slot)
        tomb_free(st, t)
        return EMPTY
    ci = new_conv(st, tb.ts_first, tb.client, tb.key_lo, tb.key_hi, tb.stream)
    if ci < 0:
        return -2
    c = &st.convs[ci]
    c.ts_prev = tb.ts_last
    c.flow1.base_seq, c.flow1.base_set = tb.base_seq1, tb.base_set1
    c.flow2.base_seq, c.flow2.base_set = tb.base_seq2, tb.base_set2
    st.slot_conv[slot] = ci
    tomb_free(st, t)
    st.late_packets += 1
    return ci


cdef int run(State* st, Py_ssize_t n,
             const uint8_t[::1] rowbits, const uint32_t[::1] frame,
             const int64_t[::1] ts_ns, const uint32_t[::1] src, const uint32_t[::1] dst,
             const uint32_t[::1] addr_rank,
             const uint16_t[::1] sport, const uint16_t[::1] dport, const uint16_t[::1] tflags,
             const uint32_t[::1] seqs, const uint32_t[::1] acks, const uint16_t[::1] windows,
             const uint8_t[::1] hlens, const uint32_t[::1] seglens, const uint8_t[::1] wscales,
             const uint8_t[::1] sack_n, const uint32_t[::1] sack_edges,
             uint32_t[::1] o_stream, uint8_t[::1] o_dir, int64_t[::1] o_trel,
             int64_t[::1] o_tdelta, uint32_t[::1] o_rseq, uint32_t[::1] o_rack,
             uint32_t[::1] o_nseq, int16_t[::1] o_wscale, uint32_t[::1] o_win,
             uint32_t[::1] o_analysis, uint32_t[::1] o_dupnum, uint32_t[::1] o_dupframe,
             uint32_t[::1] o_acks, int64_t[::1] o_rtt, int64_t[::1] o_irtt,
             uint32_t[::1] o_bif, uint32_t[::1] o_push, uint8_t[::1] o_valid) noexcept nogil:
    cdef Py_ssize_t i, slot
    cdef int ci, j, k, old
    cdef uint64_t a, b, lo, hi
    cdef uint32_t fl, seq, ack, rwin, seglen, window, ana
    cdef int64_t ts
    cdef bint quoted, have_seglen, bogus, header_cut, direction_fwd, reused
    cdef Conv* conv
    cdef Flow* fwd
    cdef Flow* rev
    cdef TA ta
    cdef int16_t win_scale_out = 0
    cdef uint8_t valid, sn, rb
    cdef uint32_t rsrc, rdst
    cdef Py_ssize_t sack_at = 0, sack_here

    for i in range(n):
        o_valid[i] = 0
        rb = rowbits[i]
        # this row's SACK edges: the next sack_n[i] of the concatenated edges
        sack_here = sack_at
        sack_at += sack_n[i]
        if (rb & KIND_MASK) == KIND_NONE:
            continue
        quoted = (rb & KIND_MASK) == KIND_QUOTED
        ts = ts_ns[i]
        fl = tflags[i]
        seq = seqs[i]
        ack = acks[i]
        rwin = windows[i]
        # an endpoint is (address rank << 16 | port): the ranks follow the order of
        # Wireshark's address comparison, so comparing endpoints compares (address, port)
        rsrc = addr_rank[src[i]]
        rdst = addr_rank[dst[i]]
        a = (<uint64_t>rsrc << 16) | sport[i]
        b = (<uint64_t>rdst << 16) | dport[i]
        if a <= b:
            lo, hi = a, b
        else:
            lo, hi = b, a
        # flow1 is the direction whose source address compares greater; equal addresses:
        # the greater source port; equal ports: flow2
        if rsrc != rdst:
            direction_fwd = rsrc > rdst
        else:
            direction_fwd = sport[i] > dport[i]

        reused = False
        if st.grace >= 0:
            # eviction decides by capture time only, never by where a chunk ends: a
            # lookup finds a conversation evicted exactly when the sweep would have
            # evicted it, so chunking changes nothing
            if ts > st.now:
                st.now = ts
            if st.now >= st.next_sweep:
                if sweep(st) < 0:
                    return -1
                st.next_sweep = st.now + sweep_interval(st)
        slot = slot_find(st, lo, hi)
        ci = st.slot_conv[slot]
        if ci >= 0 and st.grace >= 0 and conv_stale(st, &st.convs[ci]):
            if evict(st, ci, slot) < 0:
                return -1
            ci = st.slot_conv[slot]
        if ci < EMPTY:
            ci = from_tomb(st, slot, TOMB(ci), direction_fwd, fl, seq, &reused)
            if ci < EMPTY:
                return -1
            if ci == EMPTY:
                slot = slot_find(st, lo, hi)
        if ci == EMPTY:
            ci = new_conv(st, ts, a if (fl & (SYN | ACK)) != (SYN | ACK) else b, lo, hi,
                          st.next_stream)
            if ci < 0 or slot_set(st, slot, lo, hi, ci) < 0:
                return -1
            st.next_stream += 1
        conv = &st.convs[ci]
        if direction_fwd:
            fwd, rev = &conv.flow1, &conv.flow2
        else:
            fwd, rev = &conv.flow2, &conv.flow1
        memset(&ta, 0, sizeof(TA))
        if reused:
            get_ta(&ta).flags |= REUSED_PORTS

        # port reuse: a new SYN seq starts a new stream; the same seq is a retransmitted
        # SYN and restores nextseq
        if (fl & (SYN | ACK)) == SYN and fwd.base_set:
            if seq != fwd.base_seq:
                # the old conversation is unreachable from now on: freed
                old = ci
                ci = new_conv(st, ts, a, lo, hi, st.next_stream)
                if ci < 0:
                    return -1
                st.next_stream += 1
                st.slot_conv[slot_find(st, lo, hi)] = ci
                if release_conv(st, old) < 0:
                    return -1
                conv = &st.convs[ci]      # (new_conv may have moved the array)
                if direction_fwd:
                    fwd, rev = &conv.flow1, &conv.flow2
                else:
                    fwd, rev = &conv.flow2, &conv.flow1
                get_ta(&ta).flags |= REUSED_PORTS
            else:
                fwd.nextseq = fwd.maxseqtobeacked
                get_ta(&ta)
        if (fl & (SYN | ACK)) == (SYN | ACK) and fwd.base_set and seq != fwd.base_seq:
            fwd.base_seq = seq
            get_ta(&ta).flags |= REUSED_PORTS

        fwd.sack_n = 0

        o_tdelta[i] = ts - conv.ts_prev
        conv.ts_prev = ts
        o_trel[i] = ts - conv.ts_first

        have_seglen = (rb & RF_HAS_SEGLEN) != 0
        seglen = seglens[i]
        window = rwin
        valid = V_ROW
        if have_seglen:
            if not fwd.base_set:
                fwd.base_seq = seq if (fl & SYN) else seq - 1
                fwd.base_set = 1
            if not rev.base_set and (fl & ACK):
                rev.base_seq = ack - 1
                rev.base_set = 1
            if analyze_sequence_number(st, &ta, conv, fwd, rev, st.row_base + i, frame[i], ts, seq, ack,
                                       seglen, fl, rwin) < 0:
                return -1
            if st.grace >= 0:
                # how the connection ends, for eviction
                if fl & RST:
                    conv.rst = 1
                if fl & FIN:
                    fwd.fin_end = seq + seglen + 1
                    fwd.fin_state = FIN_SENT
                if (fl & ACK) and rev.fin_state == FIN_SENT and GE(ack, rev.fin_end):
                    rev.fin_state = FIN_ACKED
            o_rseq[i] = seq - fwd.base_seq
            valid |= V_SEQ
            if fl & ACK:
                o_rack[i] = ack - rev.base_seq
                valid |= V_ACK
            if not (fl & SYN) and fwd.win_scale >= 0:
                window = rwin << fwd.win_scale
            o_nseq[i] = seq - fwd.base_seq + seglen + (1 if (fl & (SYN | FIN)) else 0)

        bogus = (rb & RF_HAS_HLEN) != 0 and hlens[i] < 20
        header_cut = (rb & RF_HEADER_CUT) != 0
        if not (fl & SYN):
            win_scale_out = <int16_t>fwd.win_scale
            valid |= V_WSCALE

        if not bogus:
            if fl & SYN:
                fwd.is_first_ack = 1
                if not (fl & ACK):
                    conv.ts_mru_syn = ts
            if (fl & (SYN | ACK)) == ACK and conv.ts_mru_syn and not conv.ts_first_rtt:
                conv.ts_first_rtt = ts - conv.ts_mru_syn
            if (fl & (SYN | ACK)) == ACK:
                fwd.is_first_ack = 0
            # options are read after the analysis (quoted headers carry none here)
            if rb & RF_HAS_WSCALE:
                fwd.win_scale = wscales[i] if wscales[i] < 14 else 14
            if sack_n[i] > 0 and not quoted:
                sn = sack_n[i] // 2
                if sn > MAX_SACK_STORED:
                    sn = MAX_SACK_STORED
                fwd.sack_n = sn
                for k in range(2 * sn):
                    fwd.sack[k] = sack_edges[sack_here + k]
            # verify_tcp_window_scaling(), skipped when the capture ends in the options
            if (fl & SYN) and not header_cut:
                if fwd.win_scale == -1:
                    fwd.win_scale = -2
                    rev.win_scale = -2
                elif (fl & ACK) and rev.win_scale == -2:
                    fwd.win_scale = -2

        o_stream[i] = conv.stream
        o_dir[i] = 0 if a == conv.client else 1
        o_wscale[i] = win_scale_out if (valid & V_WSCALE) else 0
        o_win[i] = window
        o_irtt[i] = conv.ts_first_rtt
        if not ta.present:
            ana = 0
            o_dupnum[i] = 0
            o_dupframe[i] = 0
            o_acks[i] = 0
            o_rtt[i] = 0
            o_bif[i] = 0
            o_push[i] = 0
        else:
            ana = ta.flags | HAS_ANALYSIS | (NOT_SHOWN if header_cut else 0)
            o_dupnum[i] = ta.dupack_num
            o_dupframe[i] = ta.dupack_frame if ta.dupack_num else 0
            o_acks[i] = ta.frame_acked
            o_rtt[i] = ta.ack_rtt if ta.frame_acked else 0
            o_bif[i] = ta.bytes_in_flight
            o_push[i] = ta.push_bytes_sent if ta.bytes_in_flight else 0
        if quoted:
            ana |= QUOTED
        o_analysis[i] = ana
        if not bogus:
            valid |= V_ANALYSIS
        o_valid[i] = valid
    st.row_base += n
    return 0


cdef class Analyzer:
    """The analysis state of one capture, fed its rows chunk by chunk in frame order:
    the same results as one call over all rows (nothing refers back to earlier rows
    but through this state).

    `grace` >= 0 (ns) turns eviction on: a conversation that ended (an RST, or both
    FINs acknowledged) and then had no packet for longer than `grace` of capture time
    (or, `idle` >= 0, any conversation quiet for longer than `idle`) is freed, leaving
    a tombstone (its stream number, first time, client and bases); the tombstone is
    forgotten `remember` ns after the conversation's last packet (< 0: never). Evicted
    streams are reported by take_ended(). tcpsift.tcp.analyzer documents what this
    changes against Wireshark, which keeps every conversation."""
    cdef State st

    def __cinit__(self, int64_t grace=-1, int64_t remember=-1, int64_t idle=-1):
        memset(&self.st, 0, sizeof(State))
        self.st.free_seg = -1
        self.st.free_conv = -1
        self.st.free_tomb = -1
        self.st.grace = grace if grace >= 0 else -1
        self.st.remember = remember if (remember >= 0 and grace >= 0) else -1
        self.st.idle = idle if (idle >= 0 and grace >= 0) else -1
        self.st.reporting = grace >= 0
        self.st.now = INT64_MIN
        self.st.next_sweep = INT64_MIN
        self.st.slot_cap = 1024
        self.st.key_lo = <uint64_t*>malloc(self.st.slot_cap * sizeof(uint64_t))
        self.st.key_hi = <uint64_t*>malloc(self.st.slot_cap * sizeof(uint64_t))
        self.st.slot_conv = <int32_t*>malloc(self.st.slot_cap * sizeof(int32_t))
        if self.st.key_lo == NULL or self.st.key_hi == NULL or self.st.slot_conv == NULL:
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self.st.slot_cap):
            self.st.slot_conv[i] = -1

    def __dealloc__(self):
        free(self.st.convs)
        free(self.st.segs)
        free(self.st.tombs)
        free(self.st.ended)
        free(self.st.key_lo)
        free(self.st.key_hi)
        free(self.st.slot_conv)

    @property
    def streams(self):
        """The number of streams so far (the next one gets this number)."""
        return self.st.next_stream

    @property
    def late_packets(self):
        """Packets that found only the tombstone of their evicted conversation."""
        return self.st.late_packets

    def take_ended(self):
        """The streams evicted (or, port reuse, replaced) since the last call, in order."""
        cdef Py_ssize_t k
        out = np.empty(self.st.nended, np.uint32)
        cdef uint32_t[::1] o = out
        for k in range(self.st.nended):
            o[k] = self.st.ended[k]
        self.st.nended = 0
        return out

    def finish(self):
        """The capture ended: evict every conversation (each is reported as ended)."""
        cdef int32_t i
        self.st.reporting = 1
        for i in range(self.st.nconv):
            if self.st.convs[i].live:
                if evict(&self.st, i, slot_find(&self.st, self.st.convs[i].key_lo,
                                                self.st.convs[i].key_hi)) < 0:
                    raise MemoryError("TCP analysis: out of memory")

    def sizes(self):
        """What the state holds now, and the bytes it has allocated."""
        st = &self.st
        return {"conversations": st.live_convs, "segments": st.live_segs,
                "tombstones": st.live_tombs, "hash_slots": st.slot_cap,
                "bytes": (st.conv_cap * sizeof(Conv) + st.seg_cap * sizeof(Seg)
                          + st.tomb_cap * sizeof(Tomb) + st.ended_cap * sizeof(uint32_t)
                          + st.slot_cap * (2 * sizeof(uint64_t) + sizeof(int32_t)))}

    def address_ids(self):
        """The address ids (key >> 16) that conversations and tombstones refer to."""
        cdef int32_t i
        cdef Py_ssize_t k = 0
        ids = np.empty(2 * (self.st.live_convs + self.st.live_tombs), np.uint64)
        cdef uint64_t[::1] o = ids
        for i in range(self.st.nconv):
            if self.st.convs[i].live:
                o[k] = self.st.convs[i].key_lo >> 16
                o[k + 1] = self.st.convs[i].key_hi >> 16
                k += 2
        for i in range(self.st.ntomb):
            if self.st.tombs[i].next_free == -2:
                o[k] = self.st.tombs[i].key_lo >> 16
                o[k + 1] = self.st.tombs[i].key_hi >> 16
                k += 2
        return np.unique(ids[:k])

    def feed(self, Py_ssize_t n, dict a, dict out):
        """Analyse the next `n` rows: input arrays `a` (see tcpsift.tcp._inputs) into the
        output arrays `out` (tcpsift.tcp._empty_outputs), both of at least n rows."""
        cdef int rc
        cdef Py_ssize_t i
        cdef const uint8_t[::1] m_rowbits = a["rf"]
        cdef const uint32_t[::1] m_frame = a["frame"]
        cdef const int64_t[::1] m_ts = a["ts_ns"]
        cdef const uint32_t[::1] m_src = a["src"]
        cdef const uint32_t[::1] m_dst = a["dst"]
        cdef const uint32_t[::1] m_rank = a["addr_rank"]
        cdef const uint16_t[::1] m_sport = a["sport"]
        cdef const uint16_t[::1] m_dport = a["dport"]
        cdef const uint16_t[::1] m_tflags = a["tflags"]
        cdef const uint32_t[::1] m_seq = a["seq"]
        cdef const uint32_t[::1] m_ack = a["ack"]
        cdef const uint16_t[::1] m_win = a["window"]
        cdef const uint8_t[::1] m_hlen = a["hlen"]
        cdef const uint32_t[::1] m_seglen = a["seglen"]
        cdef const uint8_t[::1] m_ws = a["wscale"]
        cdef const uint8_t[::1] m_sack_n = a["sack_n"]
        cdef const uint32_t[::1] m_sack_edges = a["sack_edges"]
        cdef uint32_t[::1] o_stream = out["stream"]
        cdef uint8_t[::1] o_dir = out["direction"]
        cdef int64_t[::1] o_trel = out["time_relative_ns"]
        cdef int64_t[::1] o_tdelta = out["time_delta_ns"]
        cdef uint32_t[::1] o_rseq = out["rel_seq"]
        cdef uint32_t[::1] o_rack = out["rel_ack"]
        cdef uint32_t[::1] o_nseq = out["next_seq"]
        cdef int16_t[::1] o_wscale = out["win_scale"]
        cdef uint32_t[::1] o_win = out["window_scaled"]
        cdef uint32_t[::1] o_analysis = out["analysis"]
        cdef uint32_t[::1] o_dupnum = out["dup_ack_num"]
        cdef uint32_t[::1] o_dupframe = out["dup_ack_of_frame"]
        cdef uint32_t[::1] o_acks = out["acks_frame"]
        cdef int64_t[::1] o_rtt = out["ack_rtt_ns"]
        cdef int64_t[::1] o_irtt = out["initial_rtt_ns"]
        cdef uint32_t[::1] o_bif = out["bytes_in_flight"]
        cdef uint32_t[::1] o_push = out["push_bytes_sent"]
        cdef uint8_t[::1] o_valid = out["_valid"]
        cdef Py_ssize_t nedges = 0
        inputs = (m_rowbits.shape[0], m_frame.shape[0], m_ts.shape[0], m_src.shape[0],
                  m_dst.shape[0], m_sport.shape[0], m_dport.shape[0], m_tflags.shape[0],
                  m_seq.shape[0], m_ack.shape[0], m_win.shape[0], m_hlen.shape[0],
                  m_seglen.shape[0], m_ws.shape[0], m_sack_n.shape[0])
        outputs = (o_stream.shape[0], o_dir.shape[0], o_trel.shape[0], o_tdelta.shape[0],
                   o_rseq.shape[0], o_rack.shape[0], o_nseq.shape[0], o_wscale.shape[0],
                   o_win.shape[0], o_analysis.shape[0], o_dupnum.shape[0],
                   o_dupframe.shape[0], o_acks.shape[0], o_rtt.shape[0], o_irtt.shape[0],
                   o_bif.shape[0], o_push.shape[0], o_valid.shape[0])
        if min(inputs) < n or min(outputs) < n:
            raise ValueError("TCP analysis: arrays shorter than the rows")
        for i in range(n):
            nedges += m_sack_n[i]
        if nedges > m_sack_edges.shape[0]:
            raise ValueError("TCP analysis: fewer SACK edges than the rows announce")
        for i in range(n):
            if m_src[i] >= <uint32_t>m_rank.shape[0] or m_dst[i] >= <uint32_t>m_rank.shape[0]:
                raise ValueError("TCP analysis: address code outside the rank table")
        with nogil:
            rc = run(&self.st, n, m_rowbits, m_frame, m_ts, m_src, m_dst, m_rank, m_sport,
                     m_dport, m_tflags, m_seq, m_ack, m_win, m_hlen, m_seglen, m_ws, m_sack_n,
                     m_sack_edges, o_stream, o_dir, o_trel, o_tdelta, o_rseq,
                     o_rack, o_nseq, o_wscale, o_win, o_analysis, o_dupnum, o_dupframe,
                     o_acks, o_rtt, o_irtt, o_bif, o_push, o_valid)
        if rc < 0:
            raise MemoryError("TCP analysis: out of memory")


def analyze_arrays(Py_ssize_t n, dict a, dict out):
    """Run the analysis over the input arrays `a` (see tcpsift.tcp._inputs) into the
    preallocated output arrays `out` (tcpsift.tcp._empty_outputs). Returns the number of
    streams."""
    analyzer = Analyzer()
    analyzer.feed(n, a, out)
    return analyzer.streams


def fill_inputs(Py_ssize_t n, uint32_t first_frame, dict rec, dict pkt, dict a,
                tuple masks, uint8_t truncated):
    """The kernel's per-row inputs `a` (arrays of at least n rows) from one chunk of
    decoder output, in one pass, by the rules tcpsift.tcp._inputs applies to the packet
    table (a test holds the two equal on every capture of the corpus): a value the
    frame lacks is 0; the segment length is tcp.len, or else the IP payload less the
    TCP header when that header is shorter than 20 bytes and the IP length is known and
    not of a fragment. (tcpsift.tcp.chunks.chunk_inputs then fills the rows of headers
    quoted in ICMP errors.)
    `masks`: the decoder presence bits of (ip, ip or ip_hdr, ip_hdr, tcp_flags,
    no_ip_len, tcp_len, payload, wscale, tcp or udp, seq, ack); `truncated`: that
    decode status."""
    cdef uint32_t m_ip, m_ip_any, m_ip_hdr, m_flags, m_no_len, m_len, m_payload, m_ws
    cdef uint32_t m_ports, m_seq, m_ack
    m_ip, m_ip_any, m_ip_hdr, m_flags, m_no_len, m_len, m_payload, m_ws, m_ports, m_seq, \
        m_ack = masks
    cdef const uint8_t[::1] has_ts = rec["has_ts"].view("u1")
    cdef const int64_t[::1] ts = rec["ts_ns"]
    cdef const uint32_t[::1] present = pkt["present"]
    cdef const uint8_t[::1] status = pkt["status"]
    cdef const uint8_t[::1] more_fragments = pkt["more_fragments"]
    cdef const uint16_t[::1] frag_offset = pkt["frag_offset"]
    cdef const uint32_t[::1] ip_len = pkt["ip_len"]
    cdef const uint16_t[::1] ip_hdr_len = pkt["ip_hdr_len"]
    cdef const uint8_t[::1] ip_proto = pkt["ip_proto"]
    cdef const uint32_t[::1] src = pkt["src"]
    cdef const uint32_t[::1] dst = pkt["dst"]
    cdef const uint16_t[::1] sport = pkt["sport"]
    cdef const uint16_t[::1] dport = pkt["dport"]
    cdef const uint16_t[::1] tcp_flags = pkt["tcp_flags"]
    cdef const uint32_t[::1] seq = pkt["seq"]
    cdef const uint32_t[::1] ack = pkt["ack"]
    cdef const uint16_t[::1] window = pkt["window"]
    cdef const uint8_t[::1] tcp_hdr_len = pkt["tcp_hdr_len"]
    cdef const uint32_t[::1] tcp_len = pkt["tcp_len"]
    cdef const uint8_t[::1] wscale = pkt["wscale"]
    cdef uint8_t[::1] o_rf = a["rf"]
    cdef uint32_t[::1] o_frame = a["frame"]
    cdef int64_t[::1] o_ts = a["ts_ns"]
    cdef uint32_t[::1] o_src = a["src"]
    cdef uint32_t[::1] o_dst = a["dst"]
    cdef uint16_t[::1] o_sport = a["sport"]
    cdef uint16_t[::1] o_dport = a["dport"]
    cdef uint16_t[::1] o_tflags = a["tflags"]
    cdef uint32_t[::1] o_seq = a["seq"]
    cdef uint32_t[::1] o_ack = a["ack"]
    cdef uint16_t[::1] o_win = a["window"]
    cdef uint8_t[::1] o_hlen = a["hlen"]
    cdef uint32_t[::1] o_seglen = a["seglen"]
    cdef uint8_t[::1] o_ws = a["wscale"]
    cdef Py_ssize_t i
    cdef uint32_t bits, hlen
    cdef int64_t ip_payload
    cdef bint ip, hlen_ok, has_len, alt_ok, ports, fragmented, ip_len_ok, has_ws
    cdef uint8_t rf
    if min(has_ts.shape[0], ts.shape[0], present.shape[0], status.shape[0],
           more_fragments.shape[0], frag_offset.shape[0], ip_len.shape[0],
           ip_hdr_len.shape[0], ip_proto.shape[0], src.shape[0], dst.shape[0],
           sport.shape[0], dport.shape[0], tcp_flags.shape[0], seq.shape[0], ack.shape[0],
           window.shape[0], tcp_hdr_len.shape[0], tcp_len.shape[0], wscale.shape[0],
           o_rf.shape[0], o_frame.shape[0], o_ts.shape[0], o_src.shape[0], o_dst.shape[0],
           o_sport.shape[0], o_dport.shape[0], o_tflags.shape[0], o_seq.shape[0],
           o_ack.shape[0], o_win.shape[0], o_hlen.shape[0], o_seglen.shape[0],
           o_ws.shape[0]) < n:
        raise ValueError("TCP analysis inputs: arrays shorter than the rows")
    with nogil:
        for i in range(n):
            bits = present[i]
            ip = (bits & m_ip) != 0
            hlen_ok = (bits & m_flags) != 0
            has_len = (bits & m_len) != 0
            ports = (bits & m_ports) != 0
            has_ws = (bits & m_ws) != 0
            hlen = tcp_hdr_len[i]
            fragmented = ip and (more_fragments[i] != 0 or frag_offset[i] != 0)
            ip_len_ok = ip or ((bits & m_ip_hdr) != 0 and (bits & m_no_len) == 0)
            ip_payload = <int64_t>ip_len[i] - <int64_t>ip_hdr_len[i]
            alt_ok = hlen_ok and ip_len_ok and (bits & m_ip_any) != 0 and not fragmented \
                and hlen < 20 and ip_payload >= hlen
            rf = 0
            if ip and ip_proto[i] == 6 and ports and hlen_ok:
                rf |= KIND_TCP
            if has_len or alt_ok:
                rf |= RF_HAS_SEGLEN
            if status[i] == truncated and (bits & m_payload) == 0 and has_len:
                rf |= RF_HEADER_CUT
            if hlen_ok:
                rf |= RF_HAS_HLEN
            if has_ws:
                rf |= RF_HAS_WSCALE
            o_rf[i] = rf
            o_frame[i] = first_frame + <uint32_t>i
            o_ts[i] = ts[i] if has_ts[i] else 0
            o_src[i] = src[i] if ip else 0
            o_dst[i] = dst[i] if ip else 0
            o_sport[i] = sport[i] if ports else 0
            o_dport[i] = dport[i] if ports else 0
            o_tflags[i] = tcp_flags[i] if hlen_ok else 0
            o_seq[i] = seq[i] if (bits & m_seq) else 0
            o_ack[i] = ack[i] if (bits & m_ack) else 0
            o_win[i] = window[i] if hlen_ok else 0
            o_hlen[i] = <uint8_t>hlen if hlen_ok else 0
            o_seglen[i] = tcp_len[i] if has_len else (<uint32_t>(ip_payload - hlen)
                                                      if alt_ok else 0)
            o_ws[i] = wscale[i] if has_ws else 0


# --- saving and restoring the state -------------------------------------------------------
# tcpsift.tcp.analyzer packs these pieces into its documented, versioned layout. The
# structs are copied as they are in memory (native byte order, C padding); LAYOUT says
# where each field is, so that the packing converts them field by field. Pool links
# (segment lists, free lists, the hash table) are not saved but rebuilt on restore:
# segments are saved flow by flow in list order, the finger as a position.

cdef Flow _f
cdef Conv _c
cdef Tomb _t
cdef Seg _s

cdef Py_ssize_t _flow1 = <char*>&_c.flow1 - <char*>&_c
cdef Py_ssize_t _flow2 = <char*>&_c.flow2 - <char*>&_c

_FLOW = (
    ("base_seq", <char*>&_f.base_seq - <char*>&_f, sizeof(_f.base_seq), "u4"),
    ("base_set", <char*>&_f.base_set - <char*>&_f, sizeof(_f.base_set), "u1"),
    ("is_first_ack", <char*>&_f.is_first_ack - <char*>&_f, sizeof(_f.is_first_ack), "u1"),
    ("valid_bif", <char*>&_f.valid_bif - <char*>&_f, sizeof(_f.valid_bif), "u1"),
    ("push_set_last", <char*>&_f.push_set_last - <char*>&_f, sizeof(_f.push_set_last), "u1"),
    ("win_scale", <char*>&_f.win_scale - <char*>&_f, sizeof(_f.win_scale), "i4"),
    ("window", <char*>&_f.window - <char*>&_f, sizeof(_f.window), "u4"),
    ("push_bytes_sent", <char*>&_f.push_bytes_sent - <char*>&_f, sizeof(_f.push_bytes_sent), "u4"),
    ("lastsegmentflags", <char*>&_f.lastsegmentflags - <char*>&_f, sizeof(_f.lastsegmentflags), "u4"),
    ("nextseq", <char*>&_f.nextseq - <char*>&_f, sizeof(_f.nextseq), "u4"),
    ("nextseqframe", <char*>&_f.nextseqframe - <char*>&_f, sizeof(_f.nextseqframe), "u4"),
    ("nextseqtime", <char*>&_f.nextseqtime - <char*>&_f, sizeof(_f.nextseqtime), "i8"),
    ("maxseqtobeacked", <char*>&_f.maxseqtobeacked - <char*>&_f, sizeof(_f.maxseqtobeacked), "u4"),
    ("lastack", <char*>&_f.lastack - <char*>&_f, sizeof(_f.lastack), "u4"),
    ("lastacktime", <char*>&_f.lastacktime - <char*>&_f, sizeof(_f.lastacktime), "i8"),
    ("lastnondupack", <char*>&_f.lastnondupack - <char*>&_f, sizeof(_f.lastnondupack), "u4"),
    ("dupacknum", <char*>&_f.dupacknum - <char*>&_f, sizeof(_f.dupacknum), "u4"),
    ("sorted", <char*>&_f.sorted - <char*>&_f, sizeof(_f.sorted), "u1"),
    ("max_end", <char*>&_f.max_end - <char*>&_f, sizeof(_f.max_end), "u4"),
    ("sack_n", <char*>&_f.sack_n - <char*>&_f, sizeof(_f.sack_n), "i4"),
    ("sack", <char*>&_f.sack[0] - <char*>&_f, sizeof(_f.sack), "(6,)u4"),
    ("fin_end", <char*>&_f.fin_end - <char*>&_f, sizeof(_f.fin_end), "u4"),
    ("fin_state", <char*>&_f.fin_state - <char*>&_f, sizeof(_f.fin_state), "u1"),
)

# (struct size, ((field, offset, size, NumPy type), ...)) of what is saved of each struct
LAYOUT = {
    "conv": (sizeof(Conv), (
        ("ts_first", <char*>&_c.ts_first - <char*>&_c, sizeof(_c.ts_first), "i8"),
        ("ts_prev", <char*>&_c.ts_prev - <char*>&_c, sizeof(_c.ts_prev), "i8"),
        ("ts_mru_syn", <char*>&_c.ts_mru_syn - <char*>&_c, sizeof(_c.ts_mru_syn), "i8"),
        ("ts_first_rtt", <char*>&_c.ts_first_rtt - <char*>&_c, sizeof(_c.ts_first_rtt), "i8"),
        ("client", <char*>&_c.client - <char*>&_c, sizeof(_c.client), "u8"),
        ("key_lo", <char*>&_c.key_lo - <char*>&_c, sizeof(_c.key_lo), "u8"),
        ("key_hi", <char*>&_c.key_hi - <char*>&_c, sizeof(_c.key_hi), "u8"),
        ("stream", <char*>&_c.stream - <char*>&_c, sizeof(_c.stream), "u4"),
        ("rst", <char*>&_c.rst - <char*>&_c, sizeof(_c.rst), "u1"),
        *((f"flow{k}_{name}", base + off, size, kind)
          for k, base in ((1, _flow1), (2, _flow2)) for name, off, size, kind in _FLOW))),
    "seg": (sizeof(Seg), (
        ("frame", <char*>&_s.frame - <char*>&_s, sizeof(_s.frame), "u4"),
        ("seq", <char*>&_s.seq - <char*>&_s, sizeof(_s.seq), "u4"),
        ("nextseq", <char*>&_s.nextseq - <char*>&_s, sizeof(_s.nextseq), "u4"),
        ("row", <char*>&_s.row - <char*>&_s, sizeof(_s.row), "i8"),
        ("ts", <char*>&_s.ts - <char*>&_s, sizeof(_s.ts), "i8"))),
    "tomb": (sizeof(Tomb), (
        ("key_lo", <char*>&_t.key_lo - <char*>&_t, sizeof(_t.key_lo), "u8"),
        ("key_hi", <char*>&_t.key_hi - <char*>&_t, sizeof(_t.key_hi), "u8"),
        ("client", <char*>&_t.client - <char*>&_t, sizeof(_t.client), "u8"),
        ("ts_first", <char*>&_t.ts_first - <char*>&_t, sizeof(_t.ts_first), "i8"),
        ("ts_last", <char*>&_t.ts_last - <char*>&_t, sizeof(_t.ts_last), "i8"),
        ("stream", <char*>&_t.stream - <char*>&_t, sizeof(_t.stream), "u4"),
        ("base_seq1", <char*>&_t.base_seq1 - <char*>&_t, sizeof(_t.base_seq1), "u4"),
        ("base_seq2", <char*>&_t.base_seq2 - <char*>&_t, sizeof(_t.base_seq2), "u4"),
        ("base_set1", <char*>&_t.base_set1 - <char*>&_t, sizeof(_t.base_set1), "u1"),
        ("base_set2", <char*>&_t.base_set2 - <char*>&_t, sizeof(_t.base_set2), "u1"))),
}
SCALARS = ("next_stream", "row_base", "grace", "remember", "idle", "reporting", "now",
           "next_sweep", "late_packets")


cdef bytes _raw(void* p, Py_ssize_t size):
    return (<char*>p)[:size]


def export_state(Analyzer an):
    """The state as pieces: (scalars, conv structs, per conversation the segment counts
    and finger positions of its two flows (int32, n x 4), segment structs (each flow's
    list in order), tombstone structs, pending ended streams)."""
    cdef State* st = &an.st
    cdef int32_t i, s, k, pos
    cdef Flow* f
    convs, segs, tombs = bytearray(), bytearray(), bytearray()
    info = np.empty((st.live_convs, 4), np.int32)
    cdef int32_t[:, ::1] inf = info
    k = 0
    for i in range(st.nconv):
        if not st.convs[i].live:
            continue
        convs += _raw(&st.convs[i], sizeof(Conv))
        for side in range(2):
            f = &st.convs[i].flow1 if side == 0 else &st.convs[i].flow2
            inf[k, 2 + side] = -1
            s, pos = f.seg_head, 0
            while s >= 0:
                segs += _raw(&st.segs[s], sizeof(Seg))
                if s == f.finger:
                    inf[k, 2 + side] = pos
                s = st.segs[s].next
                pos += 1
            inf[k, side] = pos
        k += 1
    for i in range(st.ntomb):
        if st.tombs[i].next_free == -2:
            tombs += _raw(&st.tombs[i], sizeof(Tomb))
    ended = np.array([st.ended[i] for i in range(st.nended)], np.uint32)
    scalars = {"next_stream": st.next_stream, "row_base": st.row_base, "grace": st.grace,
               "remember": st.remember, "idle": st.idle, "reporting": st.reporting,
               "now": st.now, "next_sweep": st.next_sweep, "late_packets": st.late_packets}
    return scalars, bytes(convs), info, bytes(segs), bytes(tombs), ended


def import_state(dict scalars, const unsigned char[::1] convs, const int32_t[:, ::1] info,
                 const unsigned char[::1] segs, const unsigned char[::1] tombs,
                 const uint32_t[::1] ended):
    """An Analyzer from export_state()'s pieces, checked: whatever the bytes, the
    structures it builds are sound (links in range, every key once), or ValueError."""
    cdef Analyzer an = Analyzer(scalars["grace"], scalars["remember"], scalars["idle"])
    cdef State* st = &an.st
    cdef Py_ssize_t nconv = convs.shape[0] // sizeof(Conv)
    cdef Py_ssize_t ntomb = tombs.shape[0] // sizeof(Tomb)
    cdef Py_ssize_t nseg = segs.shape[0] // sizeof(Seg), used = 0, slot, k
    cdef int32_t ci, si, t, prev, count, finger
    cdef Conv* c
    cdef Flow* f
    if (convs.shape[0] % sizeof(Conv) or tombs.shape[0] % sizeof(Tomb)
            or segs.shape[0] % sizeof(Seg) or info.shape[0] != nconv or info.shape[1] != 4):
        raise ValueError("sizes of the parts disagree")
    st.next_stream = scalars["next_stream"]
    st.row_base = scalars["row_base"]
    st.now = scalars["now"]
    st.next_sweep = scalars["next_sweep"]
    st.late_packets = scalars["late_packets"]
    st.reporting = scalars["reporting"] != 0
    if st.row_base < 0:
        raise ValueError("negative row count")
    for k in range(nconv):
        ci = new_conv(st, 0, 0, 0, 0, 0)
        if ci < 0:
            raise MemoryError()
        c = &st.convs[ci]
        memcpy(c, &convs[k * sizeof(Conv)], sizeof(Conv))
        c.live, c.next_free = 1, -1
        if c.stream >= st.next_stream:
            raise ValueError(f"stream {c.stream} beyond the stream count")
        slot = slot_find(st, c.key_lo, c.key_hi)
        if st.slot_conv[slot] != EMPTY:
            raise ValueError("a conversation key appears twice")
        if slot_set(st, slot, c.key_lo, c.key_hi, ci) < 0:
            raise MemoryError()
        for side in range(2):
            f = &c.flow1 if side == 0 else &c.flow2
            count, finger = info[k, side], info[k, 2 + side]
            if (count < 0 or count > MAX_UNACKED or used + count > nseg
                    or not -1 <= finger < count or not 0 <= f.sack_n <= MAX_SACK_STORED
                    or not -2 <= f.win_scale <= 14 or f.fin_state > FIN_ACKED):
                raise ValueError("conversation fields out of range")
            f.seg_head = f.seg_tail = f.finger = -1
            f.seg_count = count
            for j in range(count):
                si = seg_alloc(st)
                if si < 0:
                    raise MemoryError()
                memcpy(&st.segs[si], &segs[used * sizeof(Seg)], sizeof(Seg))
                seg_link_after(st, f, si, f.seg_tail)
                if j == finger:
                    f.finger = si
                used += 1
    if used != nseg:
        raise ValueError("segments left over")
    for k in range(ntomb):
        t = tomb_alloc(st)
        if t < 0:
            raise MemoryError()
        memcpy(&st.tombs[t], &tombs[k * sizeof(Tomb)], sizeof(Tomb))
        st.tombs[t].next_free = -2
        if st.tombs[t].stream >= st.next_stream:
            raise ValueError(f"stream {st.tombs[t].stream} beyond the stream count")
        slot = slot_find(st, st.tombs[t].key_lo, st.tombs[t].key_hi)
        if st.slot_conv[slot] != EMPTY:
            raise ValueError("a conversation key appears twice")
        if slot_set(st, slot, st.tombs[t].key_lo, st.tombs[t].key_hi, TOMB(t)) < 0:
            raise MemoryError()
    for k in range(ended.shape[0]):
        if ended[k] >= st.next_stream or note_ended(st, ended[k]) < 0:
            raise ValueError("an ended stream beyond the stream count")
    return an


# --- the connection table's aggregates, connection by connection ---------------------------
# tcpsift.tcp.connections builds the connection table from these: one pass over the rows
# (packet values and this kernel's outputs) in frame order keeps, per stream and per
# direction, every count, extreme and "first such row" the table needs, so that neither
# the packet table nor the TCP table has to be held (or sorted, or grouped) to build it.
# The rules are those of the table's columns (docs/schema.md); which direction is the
# client's is known only at the end (the first SYN may come late), so everything is kept
# per direction and the roles are applied when the rows are taken.

from libc.stdlib cimport qsort

# presence bits of the per-row input `has` (fill_conn_rows / the table path)
cdef enum:
    H_TS = 1
    H_FLAGS = 2
    H_PORTS = 4
    H_IP = 8
    H_ETH = 16
    H_MSS = 32
    H_WS = 64
    H_TCP = 128          # sack_perm is known (a TCP header)
    H_SACKP = 256        # ... and set
    H_TSOPT = 512        # a timestamps option
    H_WINDOW = 1024      # the raw window is known

CONN_HAS = {"ts": H_TS, "flags": H_FLAGS, "ports": H_PORTS, "ip": H_IP, "eth": H_ETH,
            "mss": H_MSS, "wscale": H_WS, "tcp": H_TCP, "sack_perm": H_SACKP,
            "timestamps": H_TSOPT, "window": H_WINDOW}

# history letters: S H A D F R I Q, then T (retransmission) and W (zero window)
cdef enum:
    L_S = 0
    L_H = 1
    L_A = 2
    L_D = 3
    L_F = 4
    L_R = 5
    L_I = 6
    L_Q = 7
    L_T = 8
    L_W = 9
    MAX_HISTORY = 36     # 8 letters and 5 T and 5 W per direction

cdef int64_t C_NO_TIME = INT64_MIN
cdef int64_t C_NO_TIME_MAX = 0x7FFFFFFFFFFFFFFF
cdef uint32_t C_NO_WINDOW = 0xFFFFFFFFU
# the `analysis` bits whose tshark filters the counts follow (tcpsift.tcp.FILTER_BITS, in
# VERDICTS order: retransmission counts fast and spurious ones too)
cdef uint32_t VERDICT_BITS[15]
VERDICT_BITS[:] = [RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION,
                   LOST_SEGMENT, ACK_LOST_SEGMENT, KEEP_ALIVE, DUPLICATE_ACK, ZERO_WINDOW,
                   ZERO_WINDOW_PROBE, ZERO_WINDOW_PROBE_ACK, KEEP_ALIVE_ACK, OUT_OF_ORDER,
                   FAST_RETRANSMISSION, WINDOW_UPDATE, WINDOW_FULL, REUSED_PORTS,
                   SPURIOUS_RETRANSMISSION]


ctypedef struct Pending:         # a pure ACK waiting for the other side's first SYN-ACK
    int64_t ts
    uint32_t frame


ctypedef struct CSide:           # one direction of a connection
    uint8_t seen, has                # has: H_IP | H_PORTS | H_ETH of its first row
    uint32_t src, dst, eth_src, eth_dst
    uint16_t sport, dport
    uint32_t packets
    uint64_t bytes, payload
    uint32_t verdicts[15]
    uint8_t syn_seen                 # its first pure SYN: time and options
    int64_t syn_ts
    uint16_t syn_mss, syn_has
    uint8_t syn_ws
    uint8_t synack_seen              # its first SYN-ACK
    int64_t synack_ts
    uint16_t synack_mss, synack_has
    uint8_t synack_ws
    uint32_t min_window              # smallest scaled window, SYNs excluded
    int64_t ack_ts                   # first pure ACK at or after the other's SYN-ACK:
    int64_t ack_frame                # smallest time, smallest frame
    Pending* pending
    int32_t npending, pending_cap
    uint8_t fin, rst, plain, last_syn    # last_syn: 0 none, 1 SYN, 2 SYN-ACK
    uint32_t retrans, zero_windows


ctypedef struct CAgg:            # one connection (stream)
    uint8_t used
    int8_t syn_dir, synack_dir, rst_dir      # the direction of the first of each; -1
    uint32_t first_frame, last_frame
    uint8_t timed, closed
    int64_t first_ts, last_ts
    uint32_t close_frame
    uint8_t nhistory
    uint8_t history[MAX_HISTORY]             # 2 * letter + direction
    uint32_t letters                         # bit 2 * letter + direction: seen
    int64_t* rtt
    int32_t nrtt, rtt_cap
    int64_t rtt_min, rtt_median, rtt_max   # set by take()
    uint8_t client_dir                     # set by take(), which then swaps the sides
    int32_t next_free                      # the pool's free list
    CSide side[2]                          # (in take()'s records: client, server)


cdef inline bint nth_shown(uint32_t k) noexcept nogil:
    """T and W are shown at their 1st, 10th, 100th, 1000th and 10000th occurrence."""
    return k == 0 or k == 9 or k == 99 or k == 999 or k == 9999


cdef inline void add_event(CAgg* g, int letter, int d) noexcept nogil:
    if g.nhistory < MAX_HISTORY:
        g.history[g.nhistory] = <uint8_t>(2 * letter + d)
        g.nhistory += 1


cdef inline void ack_candidate(CSide* s, int64_t ts, uint32_t frame, int64_t t) noexcept nogil:
    if ts >= t:
        if ts < s.ack_ts:
            s.ack_ts = ts
        if frame < s.ack_frame:
            s.ack_frame = frame


cdef void settle_pending(CSide* s, int64_t t) noexcept nogil:
    """The pure ACKs that waited for the other side's SYN-ACK, its time now known."""
    cdef int32_t k
    for k in range(s.npending):
        ack_candidate(s, s.pending[k].ts, s.pending[k].frame, t)
    free(s.pending)
    s.pending = NULL
    s.npending = s.pending_cap = 0


cdef int conn_row(CAgg* g, uint32_t frame, int64_t ts, uint16_t has, uint32_t length,
                  uint16_t fl, uint32_t tcp_len, int32_t window, uint32_t src, uint32_t dst,
                  uint16_t sport, uint16_t dport, uint32_t eth_src, uint32_t eth_dst,
                  uint16_t mss, uint8_t ws, int d, uint32_t win_scaled, uint32_t shown,
                  bint has_rtt, int64_t rtt) noexcept nogil:
    """One row of the connection, sent in direction d. -1: out of memory."""
    cdef CSide* s = &g.side[d]
    cdef CSide* o = &g.side[1 - d]
    cdef bint timed = (has & H_TS) != 0
    cdef int64_t t = ts if timed else C_NO_TIME
    cdef int k, letter, several
    cdef Pending* p
    cdef int64_t* r
    if not (has & H_FLAGS):
        fl = 0
    if not g.used:
        g.used = 1
        g.first_frame = g.last_frame = frame
    if frame < g.first_frame:
        g.first_frame = frame
    if frame > g.last_frame:
        g.last_frame = frame
    if timed:
        if not g.timed:
            g.timed = 1
            g.first_ts = g.last_ts = ts
        elif ts < g.first_ts:
            g.first_ts = ts
        elif ts > g.last_ts:
            g.last_ts = ts
    if not s.seen:
        s.seen = 1
        s.has = has & (H_IP | H_PORTS | H_ETH)
        s.src, s.dst, s.eth_src, s.eth_dst = src, dst, eth_src, eth_dst
        s.sport, s.dport = sport, dport
    s.packets += 1
    s.bytes += length
    s.payload += tcp_len
    if shown:
        for k in range(15):
            if shown & VERDICT_BITS[k]:
                s.verdicts[k] += 1
    if (fl & (SYN | ACK)) == SYN:
        if g.syn_dir < 0:
            # the client is this side from now on, whatever comes: the other side's
            # pure ACKs never complete a handshake
            g.syn_dir = <int8_t>d
            free(o.pending)
            o.pending = NULL
            o.npending = o.pending_cap = 0
        if not s.syn_seen:
            s.syn_seen = 1
            s.syn_ts = t
            s.syn_mss, s.syn_ws, s.syn_has = mss, ws, has
    elif (fl & (SYN | ACK)) == (SYN | ACK):
        if g.synack_dir < 0:
            g.synack_dir = <int8_t>d
        if not s.synack_seen:
            s.synack_seen = 1
            s.synack_ts = t
            s.synack_mss, s.synack_ws, s.synack_has = mss, ws, has
            settle_pending(o, t)
    if (has & H_FLAGS) and not (fl & SYN) and win_scaled < s.min_window:
        s.min_window = win_scaled
    if ((fl & (SYN | FIN | RST | ACK)) == ACK and tcp_len == 0 and timed
            and (g.syn_dir < 0 or g.syn_dir == d)):
        if o.synack_seen:
            ack_candidate(s, ts, frame, o.synack_ts)
        else:
            if s.npending == s.pending_cap:
                k = s.pending_cap * 2 if s.pending_cap else 4
                p = <Pending*>realloc(s.pending, k * sizeof(Pending))
                if p == NULL:
                    return -1
                s.pending = p
                s.pending_cap = k
            s.pending[s.npending].ts = ts
            s.pending[s.npending].frame = frame
            s.npending += 1
    if (fl & (FIN | RST)) and not g.closed:
        g.closed = 1
        g.close_frame = frame
    if fl & RST:
        s.rst = 1
        if g.rst_dir < 0:
            g.rst_dir = <int8_t>d
    if fl & FIN:
        s.fin = 1
    if fl & SYN:
        s.last_syn = 2 if (fl & ACK) else 1
    if (has & H_FLAGS) and not (fl & (SYN | FIN | RST)):
        s.plain = 1
    if has_rtt:
        if g.nrtt == g.rtt_cap:
            k = g.rtt_cap * 2 if g.rtt_cap else 8
            r = <int64_t*>realloc(g.rtt, k * sizeof(int64_t))
            if r == NULL:
                return -1
            g.rtt = r
            g.rtt_cap = k
        g.rtt[g.nrtt] = rtt
        g.nrtt += 1
    # history: the row's letter at its first appearance, then T, then W
    several = ((fl & SYN) != 0) + ((fl & FIN) != 0) + ((fl & RST) != 0) > 1
    if several and (fl & FIN) and (fl & RST):
        letter = L_I
    elif several:
        letter = L_Q
    elif (fl & SYN) and (fl & ACK):
        letter = L_H
    elif fl & SYN:
        letter = L_S
    elif fl & FIN:
        letter = L_F
    elif fl & RST:
        letter = L_R
    elif tcp_len > 0:
        letter = L_D
    elif fl & ACK:
        letter = L_A
    else:
        letter = -1
    if letter >= 0 and not (g.letters >> (2 * letter + d)) & 1:
        g.letters |= 1U << (2 * letter + d)
        add_event(g, letter, d)
    if shown & VERDICT_BITS[0]:
        if nth_shown(s.retrans):
            add_event(g, L_T, d)
        s.retrans += 1
    if ((has & H_WINDOW) and window == 0 and not (fl & (RST | SYN)) and (has & H_FLAGS)):
        if nth_shown(s.zero_windows):
            add_event(g, L_W, d)
        s.zero_windows += 1
    return 0


cdef int cmp_i64(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<int64_t*>a)[0], y = (<int64_t*>b)[0]
    return (x > y) - (x < y)


cdef void side_init(CSide* s) noexcept nogil:
    memset(s, 0, sizeof(CSide))
    s.min_window = C_NO_WINDOW
    s.ack_ts = C_NO_TIME_MAX
    s.ack_frame = C_NO_TIME_MAX


cdef void agg_free(CAgg* g) noexcept nogil:
    free(g.rtt)
    free(g.side[0].pending)
    free(g.side[1].pending)
    g.rtt = NULL
    g.side[0].pending = g.side[1].pending = NULL


cdef void agg_init(CAgg* g) noexcept nogil:
    memset(g, 0, sizeof(CAgg))
    g.syn_dir = g.synack_dir = g.rst_dir = -1
    side_init(&g.side[0])
    side_init(&g.side[1])


cdef class ConnAggregates:
    """Per-connection aggregates of the connection table, fed rows in frame order
    (`feed`: the rows' values from fill_conn_rows or the tables, and the TCP kernel's
    outputs for them); `take(streams)` returns those connections' records and frees
    them (their last rows have been fed: a row of a stream taken starts a new record).
    Records live in a pool: memory follows the connections not taken yet (and 4 bytes
    per stream number for the map)."""
    cdef CAgg* pool
    cdef Py_ssize_t npool, pool_cap
    cdef int32_t free_head
    cdef int32_t* slot                 # stream -> pool index, -1: none
    cdef Py_ssize_t slot_cap
    cdef Py_ssize_t live

    def __cinit__(self):
        self.pool = NULL
        self.npool = self.pool_cap = 0
        self.free_head = -1
        self.slot = NULL
        self.slot_cap = 0
        self.live = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.npool):
            agg_free(&self.pool[i])
        free(self.pool)
        free(self.slot)

    cdef int32_t record(self, uint32_t stream) noexcept nogil:
        """The pool index of the stream's record, a new one if it has none; -1: no
        memory. (The pool may move: pointers into it are stale afterwards.)"""
        cdef Py_ssize_t cap, i
        cdef int32_t* sl
        cdef CAgg* p
        cdef int32_t k
        if stream >= self.slot_cap:
            cap = self.slot_cap * 2 if self.slot_cap else 4096
            while cap <= stream:
                cap *= 2
            sl = <int32_t*>realloc(self.slot, cap * sizeof(int32_t))
            if sl == NULL:
                return -1
            for i in range(self.slot_cap, cap):
                sl[i] = -1
            self.slot = sl
            self.slot_cap = cap
        k = self.slot[stream]
        if k >= 0:
            return k
        if self.free_head >= 0:
            k = self.free_head
            self.free_head = self.pool[k].next_free
        else:
            if self.npool == self.pool_cap:
                cap = self.pool_cap * 2 if self.pool_cap else 1024
                p = <CAgg*>realloc(self.pool, cap * sizeof(CAgg))
                if p == NULL:
                    return -1
                self.pool = p
                self.pool_cap = cap
            k = <int32_t>self.npool
            self.npool += 1
        agg_init(&self.pool[k])
        self.slot[stream] = k
        self.live += 1
        return k

    cdef void release(self, uint32_t stream) noexcept nogil:
        cdef int32_t k = self.slot[stream]
        agg_free(&self.pool[k])
        self.pool[k].used = 0
        self.pool[k].next_free = self.free_head
        self.free_head = k
        self.slot[stream] = -1
        self.live -= 1

    def feed(self, Py_ssize_t n, dict rows, dict out):
        """Rows `rows` (frame, ts_ns, has, len, tcp_flags, tcp_len, window, src, dst,
        sport, dport, eth_src, eth_dst, mss, wscale; `has`: CONN_HAS bits) and the
        kernel's outputs `out` for them (stream, direction, window_scaled, analysis,
        acks_frame, ack_rtt_ns, _valid)."""
        cdef const uint32_t[::1] frame = rows["frame"]
        cdef const int64_t[::1] ts = rows["ts_ns"]
        cdef const uint16_t[::1] has = rows["has"]
        cdef const uint32_t[::1] length = rows["len"]
        cdef const uint16_t[::1] flags = rows["tcp_flags"]
        cdef const uint32_t[::1] tcp_len = rows["tcp_len"]
        cdef const int32_t[::1] window = rows["window"]
        cdef const uint32_t[::1] src = rows["src"]
        cdef const uint32_t[::1] dst = rows["dst"]
        cdef const uint16_t[::1] sport = rows["sport"]
        cdef const uint16_t[::1] dport = rows["dport"]
        cdef const uint32_t[::1] eth_src = rows["eth_src"]
        cdef const uint32_t[::1] eth_dst = rows["eth_dst"]
        cdef const uint16_t[::1] mss = rows["mss"]
        cdef const uint8_t[::1] ws = rows["wscale"]
        cdef const uint32_t[::1] stream = out["stream"]
        cdef const uint8_t[::1] direction = out["direction"]
        cdef const uint32_t[::1] win = out["window_scaled"]
        cdef const uint32_t[::1] analysis = out["analysis"]
        cdef const uint32_t[::1] acks = out["acks_frame"]
        cdef const int64_t[::1] rtt = out["ack_rtt_ns"]
        cdef const uint8_t[::1] valid = out["_valid"]
        cdef Py_ssize_t i
        cdef uint32_t shown, a
        cdef int32_t k
        cdef int rc = 0
        if min(frame.shape[0], ts.shape[0], has.shape[0], length.shape[0], flags.shape[0],
               tcp_len.shape[0], window.shape[0], src.shape[0], dst.shape[0],
               sport.shape[0], dport.shape[0], eth_src.shape[0], eth_dst.shape[0],
               mss.shape[0], ws.shape[0], stream.shape[0], direction.shape[0],
               win.shape[0], analysis.shape[0], acks.shape[0], rtt.shape[0],
               valid.shape[0]) < n:
            raise ValueError("connection aggregates: arrays shorter than the rows")
        with nogil:
            for i in range(n):
                if not (valid[i] & V_ROW):
                    continue
                k = self.record(stream[i])
                if k < 0:
                    rc = -1
                    break
                # the verdicts tshark shows (none when the capture ends in the options)
                a = analysis[i]
                shown = a if ((valid[i] & V_ANALYSIS)
                              and (a & (HAS_ANALYSIS | NOT_SHOWN)) == HAS_ANALYSIS) else 0
                if conn_row(&self.pool[k], frame[i], ts[i], has[i], length[i],
                            flags[i], tcp_len[i], window[i], src[i], dst[i], sport[i],
                            dport[i], eth_src[i], eth_dst[i], mss[i], ws[i],
                            direction[i] & 1, win[i], shown, acks[i] != 0, rtt[i]) < 0:
                    rc = -1
                    break
        if rc < 0:
            raise MemoryError("connection aggregates: out of memory")

    @property
    def held(self):
        """Records held: the connections not taken yet."""
        return self.live

    def used(self):
        """The streams with rows not taken yet, in stream order."""
        cdef Py_ssize_t i
        cdef Py_ssize_t k = 0
        out = np.empty(self.slot_cap, np.uint32)
        cdef uint32_t[::1] o = out
        for i in range(self.slot_cap):
            if self.slot[i] >= 0:
                o[k] = <uint32_t>i
                k += 1
        return out[:k]

    def take(self, const uint32_t[::1] streams):
        """The records of these streams (each with rows not taken yet), one each
        (CONN_DTYPE: the connection's fields, then the client's c_* and the server's
        s_*), and their state freed. The roles are decided here: the client is
        the sender of the first SYN; without one, the receiver of the first SYN-ACK;
        without either, the side sending from the higher port (equal ports: direction
        0). `history` then holds the letters as text (the client's upper case),
        `nhistory` of them."""
        cdef Py_ssize_t m = streams.shape[0], i = 0
        cdef int32_t k = 0
        for i in range(m):
            if streams[i] >= self.slot_cap or self.slot[streams[i]] < 0:
                raise ValueError(f"connection aggregates: no stream {streams[i]} to take")
        buf = bytearray(m * sizeof(CAgg))
        cdef unsigned char[::1] b = buf
        with nogil:
            for i in range(m):
                k = self.slot[streams[i]]
                if k < 0:
                    break           # (listed twice)
                take_one(&self.pool[k], <CAgg*>&b[i * sizeof(CAgg)])
                self.release(streams[i])
        if i < m - 1 or (m and k < 0):
            raise ValueError(f"connection aggregates: stream {streams[i]} listed twice")
        return np.frombuffer(buf, CONN_DTYPE)


cdef const char* LETTERS = b"SHADFRIQTWshadfriqtw"


cdef void take_one(CAgg* g, CAgg* out) noexcept nogil:
    """g's record, roles applied, into `out` (g itself unchanged but for the order of
    its RTTs: it may go on)."""
    cdef Py_ssize_t lo, hi, j
    cdef int d, cd
    cdef CSide sides[2]
    cdef CSide* s
    memcpy(out, g, sizeof(CAgg))
    if g.nrtt:
        qsort(g.rtt, g.nrtt, sizeof(int64_t), cmp_i64)
        lo = (g.nrtt - 1) // 2
        hi = g.nrtt // 2
        out.rtt_min = g.rtt[0]
        out.rtt_max = g.rtt[g.nrtt - 1]
        # Polars' median: the mean of the two middle values (as doubles), truncated
        out.rtt_median = <int64_t>((<double>g.rtt[lo] + <double>g.rtt[hi]) / 2)
    for d in range(2):
        s = &sides[d]
        memcpy(s, &g.side[d], sizeof(CSide))
        # pure ACKs never answered by a SYN-ACK: only a time at the end of time passes
        for j in range(s.npending):
            ack_candidate(s, s.pending[j].ts, s.pending[j].frame, C_NO_TIME_MAX)
        s.pending = NULL
        s.npending = s.pending_cap = 0
    if g.syn_dir >= 0:
        cd = g.syn_dir
    elif g.synack_dir >= 0:
        cd = 1 - g.synack_dir
    else:
        cd = 1 if (sides[0].seen and (sides[0].has & H_PORTS)
                   and sides[0].sport < sides[0].dport) else 0
    out.client_dir = <uint8_t>cd
    for j in range(g.nhistory):
        # (letter, direction) -> the letter, upper case for the client's
        out.history[j] = LETTERS[(g.history[j] >> 1) + (0 if (g.history[j] & 1) == cd else 10)]
    memcpy(&out.side[0], &sides[cd], sizeof(CSide))
    memcpy(&out.side[1], &sides[1 - cd], sizeof(CSide))
    out.rtt = NULL


cdef CAgg _g

cdef Py_ssize_t _at(void* p):
    return <char*>p - <char*>&_g

_CONN_FIELDS = [
    ("used", _at(&_g.used), "u1"), ("syn_dir", _at(&_g.syn_dir), "i1"),
    ("synack_dir", _at(&_g.synack_dir), "i1"), ("rst_dir", _at(&_g.rst_dir), "i1"),
    ("first_frame", _at(&_g.first_frame), "u4"), ("last_frame", _at(&_g.last_frame), "u4"),
    ("timed", _at(&_g.timed), "u1"), ("closed", _at(&_g.closed), "u1"),
    ("first_ts", _at(&_g.first_ts), "i8"), ("last_ts", _at(&_g.last_ts), "i8"),
    ("close_frame", _at(&_g.close_frame), "u4"), ("nhistory", _at(&_g.nhistory), "u1"),
    ("history", _at(&_g.history[0]), f"({MAX_HISTORY},)u1"),
    ("nrtt", _at(&_g.nrtt), "i4"), ("rtt_min", _at(&_g.rtt_min), "i8"),
    ("rtt_median", _at(&_g.rtt_median), "i8"), ("rtt_max", _at(&_g.rtt_max), "i8"),
    ("client_dir", _at(&_g.client_dir), "u1"),
]
cdef CSide _cs

cdef Py_ssize_t _sat(void* p):
    return <char*>p - <char*>&_cs

_SIDE_FIELDS = (
    ("seen", _sat(&_cs.seen), "u1"), ("has", _sat(&_cs.has), "u1"),
    ("src", _sat(&_cs.src), "u4"), ("dst", _sat(&_cs.dst), "u4"),
    ("eth_src", _sat(&_cs.eth_src), "u4"), ("eth_dst", _sat(&_cs.eth_dst), "u4"),
    ("sport", _sat(&_cs.sport), "u2"), ("dport", _sat(&_cs.dport), "u2"),
    ("packets", _sat(&_cs.packets), "u4"), ("bytes", _sat(&_cs.bytes), "u8"),
    ("payload", _sat(&_cs.payload), "u8"), ("verdicts", _sat(&_cs.verdicts[0]), "(15,)u4"),
    ("syn_seen", _sat(&_cs.syn_seen), "u1"), ("syn_ts", _sat(&_cs.syn_ts), "i8"),
    ("syn_mss", _sat(&_cs.syn_mss), "u2"), ("syn_has", _sat(&_cs.syn_has), "u2"),
    ("syn_ws", _sat(&_cs.syn_ws), "u1"), ("synack_seen", _sat(&_cs.synack_seen), "u1"),
    ("synack_ts", _sat(&_cs.synack_ts), "i8"), ("synack_mss", _sat(&_cs.synack_mss), "u2"),
    ("synack_has", _sat(&_cs.synack_has), "u2"), ("synack_ws", _sat(&_cs.synack_ws), "u1"),
    ("min_window", _sat(&_cs.min_window), "u4"), ("ack_ts", _sat(&_cs.ack_ts), "i8"),
    ("ack_frame", _sat(&_cs.ack_frame), "i8"), ("fin", _sat(&_cs.fin), "u1"),
    ("rst", _sat(&_cs.rst), "u1"), ("plain", _sat(&_cs.plain), "u1"),
    ("last_syn", _sat(&_cs.last_syn), "u1"))
for _who, _base in (("c", _at(&_g.side[0])), ("s", _at(&_g.side[1]))):
    _CONN_FIELDS += [(f"{_who}_{name}", _base + off, kind) for name, off, kind in _SIDE_FIELDS]
# one ConnAggregates.take() record (native byte order: the struct as it lies in memory)
CONN_DTYPE = np.dtype({"names": [f[0] for f in _CONN_FIELDS],
                       "formats": [f[2] for f in _CONN_FIELDS],
                       "offsets": [f[1] for f in _CONN_FIELDS], "itemsize": sizeof(CAgg)})


def fill_conn_rows(Py_ssize_t n, uint32_t first_frame, dict rec, dict pkt, dict rows,
                   tuple masks):
    """ConnAggregates.feed's `rows` (arrays of at least n rows) from one chunk of decoder
    output, by the rules of the packet table's columns: `masks` are the decoder
    presence bits of (ip, tcp or udp, tcp_flags, tcp_len, mss, wscale, tcp, sack_perm,
    ts, eth)."""
    cdef uint32_t m_ip, m_ports, m_flags, m_len, m_mss, m_ws, m_tcp, m_sackp, m_ts, m_eth
    m_ip, m_ports, m_flags, m_len, m_mss, m_ws, m_tcp, m_sackp, m_ts, m_eth = masks
    cdef const uint8_t[::1] has_ts = rec["has_ts"].view("u1")
    cdef const int64_t[::1] ts = rec["ts_ns"]
    cdef const uint32_t[::1] length = rec["len"]
    cdef const uint32_t[::1] present = pkt["present"]
    cdef const uint32_t[::1] tcp_len = pkt["tcp_len"]
    cdef const uint16_t[::1] window = pkt["window"]
    cdef uint32_t[::1] o_frame = rows["frame"]
    cdef uint16_t[::1] o_has = rows["has"]
    cdef uint32_t[::1] o_len = rows["tcp_len"]
    cdef int32_t[::1] o_win = rows["window"]
    cdef Py_ssize_t i
    cdef uint32_t bits
    cdef uint16_t h
    if min(has_ts.shape[0], ts.shape[0], length.shape[0], present.shape[0],
           tcp_len.shape[0], window.shape[0], o_frame.shape[0], o_has.shape[0],
           o_len.shape[0], o_win.shape[0]) < n:
        raise ValueError("connection rows: arrays shorter than the rows")
    with nogil:
        for i in range(n):
            bits = present[i]
            h = 0
            if has_ts[i]:
                h |= H_TS
            if bits & m_flags:
                h |= H_FLAGS | H_WINDOW
            if bits & m_ports:
                h |= H_PORTS
            if bits & m_ip:
                h |= H_IP
            if bits & m_eth:
                h |= H_ETH
            if bits & m_mss:
                h |= H_MSS
            if bits & m_ws:
                h |= H_WS
            if bits & m_tcp:
                h |= H_TCP
                if bits & m_sackp:
                    h |= H_SACKP
            if bits & m_ts:
                h |= H_TSOPT
            o_has[i] = h
            o_frame[i] = first_frame + <uint32_t>i
            o_len[i] = tcp_len[i] if (bits & m_len) else 0
            o_win[i] = window[i] if (bits & m_flags) else -1


# --- the connection keys' hashes, row by row (tcpsift.tcp.keys) ----------------------------
# SHA-1 (FIPS 180-4) and BLAKE2b (RFC 7693) of short messages (one block each), written
# from the specifications: a call per connection into hashlib costs more than the hash.

cdef inline uint32_t rol32(uint32_t x, int n) noexcept nogil:
    return (x << n) | (x >> (32 - n))


cdef void sha1_one(const uint8_t* msg, Py_ssize_t length, uint8_t* out) noexcept nogil:
    """SHA-1 of a message of at most 55 bytes (one padded block)."""
    cdef uint8_t block[64]
    cdef uint32_t w[80]
    cdef uint32_t a, b, c, d, e, f, k, temp
    cdef uint32_t h[5]
    cdef uint64_t bits = <uint64_t>length * 8
    cdef int i
    memset(block, 0, 64)
    memcpy(block, msg, length)
    block[length] = 0x80
    for i in range(8):
        block[63 - i] = <uint8_t>(bits >> (8 * i))
    for i in range(16):
        w[i] = ((<uint32_t>block[4 * i] << 24) | (<uint32_t>block[4 * i + 1] << 16)
                | (<uint32_t>block[4 * i + 2] << 8) | block[4 * i + 3])
    for i in range(16, 80):
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1)
    h[0], h[1], h[2], h[3], h[4] = 0x67452301U, 0xEFCDAB89U, 0x98BADCFEU, 0x10325476U, 0xC3D2E1F0U
    a, b, c, d, e = h[0], h[1], h[2], h[3], h[4]
    for i in range(80):
        if i < 20:
            f = (b & c) | ((~b) & d)
            k = 0x5A827999U
        elif i < 40:
            f = b ^ c ^ d
            k = 0x6ED9EBA1U
        elif i < 60:
            f = (b & c) | (b & d) | (c & d)
            k = 0x8F1BBCDCU
        else:
            f = b ^ c ^ d
            k = 0xCA62C1D6U
        temp = rol32(a, 5) + f + e + k + w[i]
        e = d
        d = c
        c = rol32(b, 30)
        b = a
        a = temp
    h[0] += a
    h[1] += b
    h[2] += c
    h[3] += d
    h[4] += e
    for i in range(5):
        out[4 * i] = <uint8_t>(h[i] >> 24)
        out[4 * i + 1] = <uint8_t>(h[i] >> 16)
        out[4 * i + 2] = <uint8_t>(h[i] >> 8)
        out[4 * i + 3] = <uint8_t>h[i]


cdef uint64_t B2_IV[8]
B2_IV[:] = [0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
            0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
            0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL]
cdef uint8_t B2_SIGMA[10][16]
B2_SIGMA[:] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0]]


cdef inline uint64_t ror64(uint64_t x, int n) noexcept nogil:
    return (x >> n) | (x << (64 - n))


cdef inline void b2_g(uint64_t* v, int a, int b, int c, int d, uint64_t x,
                      uint64_t y) noexcept nogil:
    v[a] = v[a] + v[b] + x
    v[d] = ror64(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = ror64(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = ror64(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = ror64(v[b] ^ v[c], 63)


cdef void blake2b_one(const uint8_t* msg, Py_ssize_t length, int outlen,
                      uint8_t* out) noexcept nogil:
    """Unkeyed BLAKE2b with an `outlen`-byte digest of a message of 1 to 128 bytes (one
    block)."""
    cdef uint8_t block[128]
    cdef uint64_t m[16]
    cdef uint64_t v[16]
    cdef uint64_t h[8]
    cdef const uint8_t* s
    cdef int i, j
    memset(block, 0, 128)
    memcpy(block, msg, length)
    for i in range(16):
        m[i] = 0
        for j in range(8):
            m[i] |= <uint64_t>block[8 * i + j] << (8 * j)
    for i in range(8):
        h[i] = B2_IV[i]
    h[0] ^= 0x01010000ULL ^ <uint64_t>outlen
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = B2_IV[i]
    v[12] ^= <uint64_t>length
    v[14] = ~v[14]           # the last block
    for i in range(12):
        s = B2_SIGMA[i % 10]
        b2_g(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        b2_g(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        b2_g(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        b2_g(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        b2_g(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        b2_g(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        b2_g(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        b2_g(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]
    for i in range(outlen):
        out[i] = <uint8_t>(h[i // 8] >> (8 * (i % 8)))


def sha1_rows(const uint8_t[:, ::1] long_rows, const uint8_t[:, ::1] short_rows,
              const uint8_t[::1] is_long):
    """SHA-1 of each row: of `long_rows`' row where is_long, else of `short_rows`' (rows
    of at most 55 bytes), as an n x 20 array."""
    cdef Py_ssize_t n = is_long.shape[0], i
    cdef Py_ssize_t wl = long_rows.shape[1], ws = short_rows.shape[1]
    if long_rows.shape[0] < n or short_rows.shape[0] < n or wl > 55 or ws > 55:
        raise ValueError("sha1_rows: rows missing or longer than 55 bytes")
    out = np.empty((n, 20), np.uint8)
    cdef uint8_t[:, ::1] o = out
    with nogil:
        for i in range(n):
            if is_long[i]:
                sha1_one(&long_rows[i, 0], wl, &o[i, 0])
            else:
                sha1_one(&short_rows[i, 0], ws, &o[i, 0])
    return out


def blake2b_rows(const uint8_t[:, ::1] rows, int digest_size):
    """Unkeyed BLAKE2b (`digest_size` bytes, 1 to 64) of each row (1 to 128 bytes), as
    an n x digest_size array."""
    cdef Py_ssize_t n = rows.shape[0], w = rows.shape[1], i
    if not 1 <= w <= 128 or not 1 <= digest_size <= 64:
        raise ValueError("blake2b_rows: rows of 1 to 128 bytes, digests of 1 to 64")
    out = np.empty((n, digest_size), np.uint8)
    cdef uint8_t[:, ::1] o = out
    with nogil:
        for i in range(n):
            blake2b_one(&rows[i, 0], w, digest_size, &o[i, 0])
    return out


cdef const char* B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
cdef const char* B62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def community_id_rows(const uint8_t[:, ::1] a, const uint8_t[:, ::1] b,
                      const uint16_t[::1] pa, const uint16_t[::1] pb,
                      const uint8_t[::1] is6, uint8_t proto, uint16_t seed):
    """Community ID v1 texts ("1:" + base64 of the SHA-1, 30 bytes) of flows between
    addresses a and b (16 bytes each, IPv4 as ::ffff:a.b.c.d; `is6`: IPv6 flows) and
    ports pa and pb: the lower endpoint (address bytes, then port) first."""
    cdef Py_ssize_t n = is6.shape[0], i, j, k, alen, at
    cdef uint8_t msg[40]
    cdef uint8_t digest[21]
    cdef const uint8_t* lo
    cdef const uint8_t* hi
    cdef uint16_t plo, phi
    cdef int order
    cdef uint32_t word
    if (a.shape[0] < n or b.shape[0] < n or pa.shape[0] < n or pb.shape[0] < n
            or a.shape[1] != 16 or b.shape[1] != 16):
        raise ValueError("community_id_rows: n x 16 addresses and n ports")
    out = np.empty((n, 30), np.uint8)
    cdef uint8_t[:, ::1] o = out
    with nogil:
        for i in range(n):
            order = 0
            for j in range(16):
                if a[i, j] != b[i, j]:
                    order = -1 if a[i, j] < b[i, j] else 1
                    break
            if order > 0 or (order == 0 and pb[i] < pa[i]):
                lo, hi, plo, phi = &b[i, 0], &a[i, 0], pb[i], pa[i]
            else:
                lo, hi, plo, phi = &a[i, 0], &b[i, 0], pa[i], pb[i]
            alen = 16 if is6[i] else 4
            msg[0] = <uint8_t>(seed >> 8)
            msg[1] = <uint8_t>seed
            memcpy(&msg[2], lo + 16 - alen, alen)
            memcpy(&msg[2 + alen], hi + 16 - alen, alen)
            at = 2 + 2 * alen
            msg[at] = proto
            msg[at + 1] = 0
            msg[at + 2] = <uint8_t>(plo >> 8)
            msg[at + 3] = <uint8_t>plo
            msg[at + 4] = <uint8_t>(phi >> 8)
            msg[at + 5] = <uint8_t>phi
            sha1_one(msg, at + 6, digest)
            digest[20] = 0
            o[i, 0] = 49       # "1:"
            o[i, 1] = 58
            for k in range(7):
                word = ((<uint32_t>digest[3 * k] << 16) | (<uint32_t>digest[3 * k + 1] << 8)
                        | digest[3 * k + 2])
                o[i, 2 + 4 * k] = B64[(word >> 18) & 63]
                o[i, 3 + 4 * k] = B64[(word >> 12) & 63]
                o[i, 4 + 4 * k] = B64[(word >> 6) & 63]
                o[i, 5 + 4 * k] = B64[word & 63]
            o[i, 29] = 61      # "=": 20 bytes are padded by one
    return out


def uid_rows(const uint8_t[:, ::1] rows, int digits):
    """"C" + `digits` base-62 digits (most significant first) of the 8-byte BLAKE2b of
    each row, read as a big-endian integer."""
    cdef Py_ssize_t n = rows.shape[0], w = rows.shape[1], i, k
    cdef uint8_t digest[8]
    cdef uint64_t value
    if not 1 <= w <= 128 or not 1 <= digits <= 20:
        raise ValueError("uid_rows: rows of 1 to 128 bytes")
    out = np.empty((n, digits + 1), np.uint8)
    cdef uint8_t[:, ::1] o = out
    with nogil:
        for i in range(n):
            blake2b_one(&rows[i, 0], w, 8, digest)
            value = 0
            for k in range(8):
                value = (value << 8) | digest[k]
            o[i, 0] = 67       # "C"
            for k in range(digits, 0, -1):
                o[i, k] = B62[value % 62]
                value //= 62
    return out
