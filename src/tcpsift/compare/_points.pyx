# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The connections of one capture point's TCP packets, in one pass (tcpsift.compare.points).

A connection is its two endpoints (address code and port, unordered), and a new one
starts at a pure SYN whose sequence number differs from the latest pure SYN of the same
endpoints (a reused port), as tcp.stream starts one. Connections are numbered in the
order their first packet comes. The NumPy version of this sorted a million rows by a
hash of their endpoints (three sorts and a dozen passes); here one hash table of the
endpoint pairs, in capture order, and a counting sort by connection.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc

import numpy as np

cdef enum:
    SYN = 0x02
    RST = 0x04
    ACK = 0x10


cdef struct Entry:
    uint64_t addresses     # low endpoint's address code << 32 | the high one's
    uint32_t ports         # low endpoint's port << 16 | the high one's
    uint32_t used
    int64_t stream         # the pair's current connection
    int64_t syn_seq        # the seq of its latest pure SYN (-1: none yet)


cdef inline uint64_t mixed(uint64_t x) noexcept nogil:
    # splitmix64's finaliser: every bit of the pair reaches the low bits the table uses
    x ^= x >> 30
    x *= <uint64_t>0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= <uint64_t>0x94D049BB133111EBULL
    x ^= x >> 31
    return x


cdef int grow(Entry** table, uint64_t* mask) noexcept nogil:
    """Double the table (rehashing every used entry); -1 when out of memory."""
    cdef uint64_t old_size = mask[0] + 1, size = old_size * 2, i, h
    cdef Entry* old = table[0]
    cdef Entry* new = <Entry*>calloc(size, sizeof(Entry))
    if new == NULL:
        return -1
    for i in range(old_size):
        if old[i].used:
            h = mixed(old[i].addresses ^ (<uint64_t>old[i].ports << 7)) & (size - 1)
            while new[h].used:
                h = (h + 1) & (size - 1)
            new[h] = old[i]
    free(old)
    table[0] = new
    mask[0] = size - 1
    return 0


def connections(const uint32_t[::1] src, const uint32_t[::1] dst, const uint16_t[::1] sport,
                const uint16_t[::1] dport, const uint16_t[::1] flags, const uint32_t[::1] seq,
                const int64_t[::1] ts):
    """Per row (capture order): `stream` (uint32), `direction` (uint8: 0 from the endpoint
    lower in address code, then port, order; 1 the other way), `rank` (int64: the row's
    place in the order by stream, then capture order). Per stream: `syn_row`,
    `synack_row` (its first pure SYN, SYN-ACK), `row0`, `row1` (its first row of each
    direction), each the number of rows when there is none; `first_ts` (the least ts),
    `packets`."""
    cdef Py_ssize_t n = src.shape[0], i
    if not (dst.shape[0] == sport.shape[0] == dport.shape[0] == flags.shape[0]
            == seq.shape[0] == ts.shape[0] == n):
        raise ValueError("the columns differ in length")
    stream_np = np.empty(n, np.uint32)
    direction_np = np.empty(n, np.uint8)
    rank_np = np.empty(n, np.int64)
    cdef uint32_t[::1] stream = stream_np
    cdef uint8_t[::1] direction = direction_np
    cdef int64_t[::1] rank = rank_np
    cdef uint64_t mask = 1023, h, used = 0
    cdef Entry* table = <Entry*>calloc(mask + 1, sizeof(Entry))
    # per stream, grown as streams come: first SYN, SYN-ACK, row of each direction, count
    cdef Py_ssize_t cap = 1024, streams = 0
    cdef int64_t* per = <int64_t*>malloc(cap * 6 * sizeof(int64_t))
    cdef int64_t* more
    cdef uint32_t a, b, pa, pb
    cdef uint64_t addresses
    cdef uint32_t ports
    cdef bint low, syn
    cdef int64_t s
    if table == NULL or per == NULL:
        free(table)
        free(per)
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                a, b, pa, pb = src[i], dst[i], sport[i], dport[i]
                low = a < b or (a == b and pa <= pb)
                direction[i] = 0 if low else 1
                if low:
                    addresses = (<uint64_t>a << 32) | b
                    ports = (pa << 16) | pb
                else:
                    addresses = (<uint64_t>b << 32) | a
                    ports = (pb << 16) | pa
                h = mixed(addresses ^ (<uint64_t>ports << 7)) & mask
                while table[h].used and (table[h].addresses != addresses
                                         or table[h].ports != ports):
                    h = (h + 1) & mask
                syn = (flags[i] & (SYN | ACK)) == SYN
                if not table[h].used or (syn and table[h].syn_seq >= 0
                                         and table[h].syn_seq != seq[i]):
                    if not table[h].used:
                        table[h].used = 1
                        table[h].addresses = addresses
                        table[h].ports = ports
                        table[h].syn_seq = -1
                        used += 1
                    if streams == cap:
                        more = <int64_t*>realloc(per, cap * 2 * 6 * sizeof(int64_t))
                        if more == NULL:
                            with gil:
                                raise MemoryError()
                        per = more
                        cap *= 2
                    s = streams
                    streams += 1
                    table[h].stream = s
                    per[s * 6 + 0] = n          # syn_row
                    per[s * 6 + 1] = n          # synack_row
                    per[s * 6 + 2] = n          # row0
                    per[s * 6 + 3] = n          # row1
                    per[s * 6 + 4] = ts[i]      # first_ts
                    per[s * 6 + 5] = 0          # packets
                s = table[h].stream
                if syn:
                    table[h].syn_seq = seq[i]
                stream[i] = <uint32_t>s
                if syn and per[s * 6 + 0] == n:
                    per[s * 6 + 0] = i
                if (flags[i] & (SYN | ACK)) == (SYN | ACK) and per[s * 6 + 1] == n:
                    per[s * 6 + 1] = i
                if per[s * 6 + 2 + direction[i]] == n:
                    per[s * 6 + 2 + direction[i]] = i
                if ts[i] < per[s * 6 + 4]:
                    per[s * 6 + 4] = ts[i]
                per[s * 6 + 5] += 1
                if used * 2 > mask:
                    if grow(&table, &mask) != 0:
                        with gil:
                            raise MemoryError()
            # the counting sort: each stream's first place, then its rows in capture order
            h = 0
            for s in range(streams):
                a = <uint32_t>per[s * 6 + 5]
                per[s * 6 + 5] = <int64_t>h
                h += a
            for i in range(n):
                s = stream[i]
                rank[i] = per[s * 6 + 5]
                per[s * 6 + 5] += 1
            # (back to the counts: each stream's end minus its rows' places)
            for s in range(streams - 1, 0, -1):
                per[s * 6 + 5] -= per[(s - 1) * 6 + 5]
        out = np.asarray(<int64_t[:streams * 6]>per).reshape(streams, 6).copy() \
            if streams else np.zeros((0, 6), np.int64)
    finally:
        free(table)
        free(per)
    return {"stream": stream_np, "direction": direction_np, "rank": rank_np,
            "syn_row": out[:, 0], "synack_row": out[:, 1], "row0": out[:, 2],
            "row1": out[:, 3], "first_ts": out[:, 4], "packets": out[:, 5]}


DEF MAX_KEY_COLUMNS = 32


def packet_keys(list columns, const uint64_t[::1] last):
    """The 64-bit key of each row: its `columns` (C-contiguous NumPy arrays of 1, 2 or
    4-byte unsigned integers or booleans, nulls as 0; each as its own dtype, so that no
    column is copied to widen it), then `last`, mixed in one after the other (xor,
    multiply by 2^64 / golden ratio, xor-shift: the same mix the NumPy version made
    column by column, in one pass)."""
    cdef Py_ssize_t n = last.shape[0], i, k, m = len(columns)
    if m > MAX_KEY_COLUMNS:
        raise ValueError("too many key columns")
    cdef const uint8_t* pointers[MAX_KEY_COLUMNS]
    cdef int widths[MAX_KEY_COLUMNS]
    cdef const uint8_t[::1] view
    for k in range(m):
        column = columns[k]
        if column.dtype.kind not in "ub" or column.dtype.itemsize not in (1, 2, 4):
            raise ValueError(f"key columns are unsigned integers of 1, 2 or 4 bytes, "
                             f"not {column.dtype}")
        if column.shape[0] != n:
            raise ValueError("the columns differ in length")
        view = column.view(np.uint8)        # (C-contiguous, or this raises)
        pointers[k] = &view[0] if n else NULL
        widths[k] = column.dtype.itemsize
    keys_np = np.empty(n, np.uint64)
    cdef uint64_t[::1] keys = keys_np
    cdef uint64_t key
    with nogil:
        for i in range(n):
            key = 0
            for k in range(m):
                if widths[k] == 4:
                    key ^= (<const uint32_t*>pointers[k])[i]
                elif widths[k] == 2:
                    key ^= (<const uint16_t*>pointers[k])[i]
                else:
                    key ^= pointers[k][i]
                key *= <uint64_t>0x9E3779B97F4A7C15ULL
                key ^= key >> 31
            key ^= last[i]
            key *= <uint64_t>0x9E3779B97F4A7C15ULL
            key ^= key >> 31
            keys[i] = key
    return keys_np


def rank_order(const int64_t[::1] rank, const uint8_t[::1] block, int blocks):
    """The order of rows by `block` (0..blocks-1), then by `rank` (distinct within a
    block, each >= 0: a point's Point.rank): a radix sort of block x ranks + rank in two
    passes of 16 bits (a table of every block and rank, swept, cost a page fault per 4 KiB
    of it and a sweep of millions of empty cells)."""
    cdef Py_ssize_t n = rank.shape[0], i
    cdef int64_t size = 0
    if block.shape[0] != n:
        raise ValueError("rank and block differ in length")
    for i in range(n):
        if rank[i] < 0 or block[i] >= blocks:
            raise ValueError("a rank below 0 or a block out of range")
        if rank[i] + 1 > size:
            size = rank[i] + 1
    if size * blocks > 0xFFFFFFFF:
        raise ValueError("too many rows to order")
    order_np = np.empty(n, np.int64)
    cdef int64_t[::1] order = order_np
    cdef uint32_t* keys = <uint32_t*>malloc(max(n, 1) * sizeof(uint32_t))
    cdef uint32_t* moved = <uint32_t*>malloc(max(n, 1) * sizeof(uint32_t))
    cdef uint32_t* rows = <uint32_t*>malloc(max(n, 1) * sizeof(uint32_t))
    cdef int64_t* low = <int64_t*>calloc(65536, sizeof(int64_t))
    cdef int64_t* high = <int64_t*>calloc(65536, sizeof(int64_t))
    cdef int64_t total, count
    cdef uint32_t key
    cdef int b
    try:
        if keys == NULL or moved == NULL or rows == NULL or low == NULL or high == NULL:
            raise MemoryError()
        with nogil:
            for i in range(n):
                key = <uint32_t>(block[i] * size + rank[i])
                keys[i] = key
                low[key & 0xFFFF] += 1
                high[key >> 16] += 1
            total = 0
            for b in range(65536):
                count = low[b]
                low[b] = total
                total += count
            total = 0
            for b in range(65536):
                count = high[b]
                high[b] = total
                total += count
            for i in range(n):
                key = keys[i]
                moved[low[key & 0xFFFF]] = key
                rows[low[key & 0xFFFF]] = <uint32_t>i
                low[key & 0xFFFF] += 1
            for i in range(n):
                key = moved[i]
                order[high[key >> 16]] = rows[i]
                high[key >> 16] += 1
    finally:
        free(keys)
        free(moved)
        free(rows)
        free(low)
        free(high)
    return order_np


cdef int64_t _count(const int64_t[::1] numbers, str what) except -1:
    """How many numbers 0, 1, ... `numbers` may hold (its largest plus one); an error for
    one below 0 (the arrays indexed by them have that many entries)."""
    cdef Py_ssize_t i
    cdef int64_t count = 0
    for i in range(numbers.shape[0]):
        if numbers[i] < 0:
            raise ValueError(f"a {what} below 0")
        if numbers[i] + 1 > count:
            count = numbers[i] + 1
    return count


def flow_marks(const int64_t[::1] flow, const int64_t[::1] frame_down,
               const uint8_t[::1] arrived, const uint8_t[::1] lost):
    """(`reordered`, `loss_burst`) of each upstream packet, rows in upstream capture order
    within each flow (flow >= 0): reordered, an arrived packet whose downstream frame comes
    after that of a later arrived packet of its flow (it was overtaken); loss_burst, a
    lost packet whose predecessor in its flow was not lost (the first of a burst). One
    pass each way with each flow's state in an array, not a sort by flow."""
    cdef Py_ssize_t n = flow.shape[0], i
    if not (frame_down.shape[0] == arrived.shape[0] == lost.shape[0] == n):
        raise ValueError("the columns differ in length")
    cdef int64_t flows = _count(flow, "flow")
    reordered_np = np.zeros(n, np.bool_)
    burst_np = np.zeros(n, np.bool_)
    cdef uint8_t[::1] reordered = reordered_np.view(np.uint8)
    cdef uint8_t[::1] burst = burst_np.view(np.uint8)
    # per flow: whether its latest packet so far was lost; the earliest downstream frame
    # among its later arrived packets (-1: none yet)
    cdef uint8_t* previous_lost = <uint8_t*>calloc(max(flows, 1), sizeof(uint8_t))
    cdef int64_t* earliest = <int64_t*>malloc(max(flows, 1) * sizeof(int64_t))
    cdef int64_t f
    if previous_lost == NULL or earliest == NULL:
        free(previous_lost)
        free(earliest)
        raise MemoryError()
    with nogil:
        for i in range(n):
            f = flow[i]
            if lost[i] and not previous_lost[f]:
                burst[i] = 1
            previous_lost[f] = lost[i] != 0
        for i in range(flows):
            earliest[i] = -1
        for i in range(n - 1, -1, -1):
            if not arrived[i]:
                continue
            f = flow[i]
            if earliest[f] >= 0 and frame_down[i] > earliest[f]:
                reordered[i] = 1
            else:
                earliest[f] = frame_down[i]
    free(previous_lost)
    free(earliest)
    return reordered_np, burst_np


def group_counts(const int64_t[::1] group, Py_ssize_t groups, const int64_t[::1] copies,
                 const uint8_t[::1] lost, const uint8_t[::1] burst,
                 const int64_t[::1] duplicated, const uint8_t[::1] reordered,
                 const uint8_t[::1] approximate):
    """Per group 0..groups-1 of the upstream packets (tcpsift.compare.stats.summary), in
    one pass: sent, matched (copies > 0), lost, loss_bursts, duplicated (the sum),
    reordered, byte_range (matched by byte range), exact (matched, not by byte range)."""
    cdef Py_ssize_t n = group.shape[0], i
    if not (copies.shape[0] == lost.shape[0] == burst.shape[0] == duplicated.shape[0]
            == reordered.shape[0] == approximate.shape[0] == n):
        raise ValueError("the columns differ in length")
    for i in range(n):
        if group[i] < 0 or group[i] >= groups:
            raise ValueError("a group out of range")
    out_np = np.zeros((8, groups), np.int64)
    cdef int64_t[:, ::1] out = out_np
    cdef int64_t g
    with nogil:
        for i in range(n):
            g = group[i]
            out[0, g] += 1
            if copies[i] > 0:
                out[1, g] += 1
                if approximate[i]:
                    out[6, g] += 1
                else:
                    out[7, g] += 1
            out[2, g] += lost[i] != 0
            out[3, g] += burst[i] != 0
            out[4, g] += duplicated[i]
            out[5, g] += reordered[i] != 0
    return dict(zip(("sent", "matched", "lost", "loss_bursts", "duplicated", "reordered",
                     "byte_range", "exact"), out_np))


def window_shrinks(const int64_t[::1] conn, const uint8_t[::1] s2c, const uint16_t[::1] flags,
                   const uint16_t[::1] window):
    """(rows, previous windows) of the packets (rows in capture order, conn >= 0) that
    advertise a smaller window than the packet before them of their connection and
    direction; packets with SYN or RST are left out (tcpsift.compare.windows). One pass
    with the last window of each flow in an array, not a sort by flow."""
    cdef Py_ssize_t n = conn.shape[0], i, found = 0
    if not (s2c.shape[0] == flags.shape[0] == window.shape[0] == n):
        raise ValueError("the columns differ in length")
    cdef int64_t flows = 2 * _count(conn, "connection")
    cdef int32_t* last = <int32_t*>malloc(max(flows, 1) * sizeof(int32_t))
    rows_np = np.empty(n, np.int64)
    previous_np = np.empty(n, np.int64)
    cdef int64_t[::1] rows = rows_np
    cdef int64_t[::1] previous = previous_np
    cdef int64_t f
    if last == NULL:
        raise MemoryError()
    with nogil:
        for i in range(flows):
            last[i] = -1
        for i in range(n):
            if flags[i] & (SYN | RST):
                continue
            f = conn[i] * 2 + (s2c[i] != 0)
            if last[f] >= 0 and window[i] < last[f]:
                rows[found] = i
                previous[found] = last[f]
                found += 1
            last[f] = window[i]
    free(last)
    return rows_np[:found].copy(), previous_np[:found].copy()


def unique_pairs(const uint64_t[::1] keys_a, const int64_t[::1] rows_a,
                 const uint64_t[::1] keys_b, const int64_t[::1] rows_b):
    """(rows at a, rows at b) of the keys that occur exactly once at each point, by row at
    a: one merge of the two points' keys in sorted order (`keys_x` sorted, `rows_x` the
    row of each, rows_a within 0..len - 1), then each pair put at its row of a (what
    reads the pairs then reads a's rows in order)."""
    cdef Py_ssize_t na = keys_a.shape[0], nb = keys_b.shape[0], i = 0, j = 0, found = 0
    if rows_a.shape[0] != na or rows_b.shape[0] != nb:
        raise ValueError("keys and rows differ in length")
    for i in range(na):
        if rows_a[i] < 0 or rows_a[i] >= na:
            raise ValueError("a row of a out of range")
    i = 0
    partner_np = np.full(na, -1, np.int64)
    cdef int64_t[::1] partner = partner_np
    cdef uint64_t k
    cdef bint once_a, once_b
    with nogil:
        while i < na and j < nb:
            if keys_a[i] < keys_b[j]:
                i += 1
            elif keys_b[j] < keys_a[i]:
                j += 1
            else:
                k = keys_a[i]
                once_a = (i + 1 == na or keys_a[i + 1] != k) and (i == 0 or keys_a[i - 1] != k)
                once_b = (j + 1 == nb or keys_b[j + 1] != k) and (j == 0 or keys_b[j - 1] != k)
                if once_a and once_b:
                    partner[rows_a[i]] = rows_b[j]
                    found += 1
                while i < na and keys_a[i] == k:
                    i += 1
                while j < nb and keys_b[j] == k:
                    j += 1
    out_a_np = np.empty(found, np.int64)
    out_b_np = np.empty(found, np.int64)
    cdef int64_t[::1] out_a = out_a_np
    cdef int64_t[::1] out_b = out_b_np
    found = 0
    with nogil:
        for i in range(na):
            if partner[i] >= 0:
                out_a[found] = i
                out_b[found] = partner[i]
                found += 1
    return out_a_np, out_b_np
