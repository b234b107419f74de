# cython: language_level=3
"""Record walkers: turn a pcap or pcapng byte buffer into arrays of records.

Each walker fills caller-provided arrays with up to `capacity` records and returns
where it stopped, so a caller can walk a large file chunk by chunk. Every length
read from the file is checked against the bytes that remain before it is used:
a bad length stops the walk with a message, it never drives an allocation.
"""
cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

import numpy as np

cdef extern from *:
    """
    /* A pcapng timestamp (`t` units per second, then `off` seconds added) in ns since the
       epoch, computed in 128 bits: 0 when the result does not fit the int64 nanoseconds
       tcpsift keeps (before 1677-09-21 or after 2262-04-11), else 1 with the time in
       *out. A count of 2^63 and more is read as a negative one (two's complement: a
       time before the epoch, as the writers of such files meant it; wiretap reads it
       unsigned); the others as wiretap reads them (whole seconds, then the remainder
       times 10^9 in unsigned 64 bits, wrapping, over the units). */
    static inline int tcpsift_pcapng_ns(uint64_t t, uint64_t units, int64_t off,
                                        int64_t *out) {
        __int128 ns, signed_t = (__int128)(int64_t)t, secs;
        if (units == 1000000)
            ns = signed_t * 1000;
        else if (units == 1000000000)
            ns = signed_t;
        else if (signed_t >= 0)
            ns = (__int128)(t / units) * 1000000000
                 + (__int128)(((t % units) * 1000000000ULL) / units);
        else {
            secs = signed_t / (__int128)units;      /* rounded towards zero: floor it */
            if (secs * (__int128)units > signed_t)
                secs -= 1;
            ns = secs * 1000000000
                 + ((signed_t - secs * (__int128)units) * 1000000000) / (__int128)units;
        }
        ns += (__int128)off * 1000000000;
        if (ns > (__int128)INT64_MAX || ns < (__int128)INT64_MIN)
            return 0;
        *out = (int64_t)ns;
        return 1;
    }
    """
    void prefetch "__builtin_prefetch"(const void* addr) noexcept nogil
    bint pcapng_ns "tcpsift_pcapng_ns"(uint64_t t, uint64_t units, int64_t off,
                                       int64_t* out) noexcept nogil

# Bytes ahead of the record being walked that are fetched into the cache: the block was
# just copied in, and each record's place depends on the one before (no other way for
# the CPU to know where the next headers are).
DEF PREFETCH_BYTES = 4096
DEF PREFETCH_RECORDS = 6

# Largest frame tshark 4.0 accepts; a larger record is a corrupt length field.
DEF MAX_FRAME_C = 262144
MAX_FRAME = MAX_FRAME_C
# Longest pcapng block tshark 4.0 reads ("pcapng: total block length N is too large
# (> 134348832)"); a longer one is a corrupt length, never waited for or buffered.
DEF MAX_BLOCK_C = 134348832
MAX_BLOCK = MAX_BLOCK_C
# Interfaces a pcapng section, and a file, may describe: each takes memory and a line of
# `info`, and 1,000,000 empty ones took 1.7 GB (tshark has no limit). Past either, the
# walk stops with a warning, keeping the packets before.
MAX_SECTION_INTERFACES = 4096
MAX_FILE_INTERFACES = 65536
# A Wireshark-style block that is not a packet but that tshark numbers as a frame.
NO_LINKTYPE = 0xFFFF


cdef inline uint16_t rd16(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return (<uint16_t>p[0] << 8) | p[1]
    return (<uint16_t>p[1] << 8) | p[0]


cdef inline uint32_t rd32(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline uint64_t rd64(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return (<uint64_t>rd32(p, big) << 32) | rd32(p + 4, big)
    return (<uint64_t>rd32(p + 4, big) << 32) | rd32(p, big)


def new_record_arrays(Py_ssize_t capacity):
    """Arrays one walker call fills (see RECORD_FIELDS)."""
    return {
        "offset": np.empty(capacity, np.int64),
        "cap_len": np.empty(capacity, np.uint32),
        "len": np.empty(capacity, np.uint32),
        "ts_ns": np.empty(capacity, np.int64),
        "has_ts": np.empty(capacity, np.bool_),
        "iface": np.empty(capacity, np.uint32),
        "linktype": np.empty(capacity, np.uint16),
    }


def walk_pcap(const uint8_t[:] buf, Py_ssize_t pos, bint big, bint nsec, uint16_t linktype,
              dict out, Py_ssize_t capacity, int swap_lens=0, Py_ssize_t at=0,
              int64_t base=0, bint final=True):
    """Walk classic pcap records from `pos`, writing them at index `at` of `out`.

    `swap_lens`: pcap versions before 2.3 wrote the original length before the
    captured length; 1 swaps them always (2.0-2.2), 2 when captured > original (2.3),
    as wiretap does.

    `buf` is the part of the file that starts at file offset `base`; record offsets
    are file offsets. When `final` is false more of the file follows `buf`, and a
    record cut by the end of `buf` is not an error: the walk stops before it.

    Returns (count, next_pos, error, need): error is None, or a message for a record
    that could not be read (the walk stops before it; next_pos is its offset); need is
    how many bytes from next_pos the next record takes when `buf` ended inside it
    (0 otherwise).
    """
    cdef Py_ssize_t end = buf.shape[0]
    cdef Py_ssize_t n = at
    _check_room(out, at, capacity)
    capacity += at
    cdef const uint8_t* p
    cdef uint32_t caplen, origlen, sec, frac
    cdef int64_t[:] offset = out["offset"]
    cdef uint32_t[:] cap_len = out["cap_len"]
    cdef uint32_t[:] wire_len = out["len"]
    cdef int64_t[:] ts = out["ts_ns"]
    cdef uint8_t[:] has_ts = out["has_ts"].view(np.uint8)
    cdef uint32_t[:] iface = out["iface"]
    cdef uint16_t[:] lt = out["linktype"]
    cdef int64_t mult = 1 if nsec else 1000
    error = None
    with nogil:
        while n < capacity and pos < end:
            if end - pos < 16:
                break
            p = &buf[pos]
            if end - pos > PREFETCH_BYTES:
                prefetch(p + PREFETCH_BYTES)
            sec = rd32(p, big)
            frac = rd32(p + 4, big)
            caplen = rd32(p + 8, big)
            origlen = rd32(p + 12, big)
            if swap_lens == 1 or (swap_lens == 2 and caplen > origlen):
                caplen, origlen = origlen, caplen
            if caplen > MAX_FRAME_C or caplen > end - pos - 16:
                break
            # where the record PREFETCH_RECORDS ahead starts if they are all this size
            # (bulk transfers: full-size frames); the fixed distance above serves small
            # records, whose headers share lines
            if end - pos > PREFETCH_RECORDS * (16 + caplen):
                prefetch(p + PREFETCH_RECORDS * (16 + caplen))
            offset[n] = base + pos + 16
            cap_len[n] = caplen
            wire_len[n] = origlen
            ts[n] = <int64_t>sec * 1000000000 + <int64_t>frac * mult
            has_ts[n] = 1
            iface[n] = 0
            lt[n] = linktype
            n += 1
            pos += 16 + caplen
    need = 0
    if n < capacity and pos < end:
        remaining = end - pos
        if remaining < 16:
            if final:
                error = f"cut short in a record header at offset {base + pos}"
            else:
                need = 16
        else:
            caplen = rd32(&buf[pos + 8], big)
            origlen = rd32(&buf[pos + 12], big)
            if swap_lens == 1 or (swap_lens == 2 and caplen > origlen):
                caplen = origlen
            if caplen > MAX_FRAME:
                error = (f"corrupt record at offset {base + pos}: captured length {caplen} "
                         f"exceeds the {MAX_FRAME}-byte maximum")
            elif final:
                error = (f"cut short in the middle of a packet at offset {base + pos} "
                         f"({caplen} bytes announced, {remaining - 16} present)")
            else:
                need = 16 + caplen
    return n - at, pos, error, need


def _check_room(dict out, Py_ssize_t at, Py_ssize_t capacity):
    if at < 0 or capacity < 0 or at + capacity > out["offset"].shape[0]:
        raise ValueError(f"no room for {capacity} records at index {at}")


cdef class PcapngState:
    """What a pcapng walk carries from block to block and from chunk to chunk."""
    cdef public bint big
    cdef public bint in_section
    cdef public list interfaces          # global list of dicts, all sections
    cdef public list ts_units            # per interface: its timestamps' units per second
    cdef public Py_ssize_t section_first  # index in `interfaces` of this section's first IDB
    cdef public list warnings
    cdef public int sections
    # packets whose time is past what int64 nanoseconds hold (kept without a time)
    cdef public Py_ssize_t out_of_range

    def __init__(self):
        self.big = False
        self.in_section = False
        self.interfaces = []
        self.ts_units = []
        self.section_first = 0
        self.warnings = []
        self.sections = 0
        self.out_of_range = 0


# The units per second of an if_tsresol whose power does not fit in 64 bits (10^20 and
# up, 2^64 and up): wiretap's stand-in, so that such timestamps read as tshark shows them.
DEF UNITS_OUT_OF_RANGE = 0xFFFFFFFFFFFFFFFF


def ts_units(int tsresol):
    """Units per second of an if_tsresol byte, as wiretap computes them."""
    cdef int exponent = tsresol & 0x7F
    if tsresol & 0x80:
        return 2 ** exponent if exponent < 64 else UNITS_OUT_OF_RANGE
    return 10 ** exponent if exponent < 20 else UNITS_OUT_OF_RANGE


def _parse_options(const uint8_t[:] buf, Py_ssize_t pos, Py_ssize_t end, bint big,
                   tuple wanted=()):
    """The options of a block whose code is in `wanted`: {code: (value offset, length)},
    the first of each code (as wiretap takes if_tsresol), all checked to lie within
    the block. Only those are kept: a block of 128 MiB holds 32 million empty options
    (as a list of every option, 8 million took 900 MB). Raises ValueError."""
    found = {}
    cdef uint16_t code, length
    while end - pos >= 4:
        code = rd16(&buf[pos], big)
        length = rd16(&buf[pos + 2], big)
        if code == 0:
            break
        if length > end - pos - 4:
            raise ValueError(f"option {code} of length {length} runs past the end of its block")
        if code in wanted and code not in found:
            found[code] = (pos + 4, length)
        pos += 4 + ((length + 3) & ~3)
    return found


cdef object _shb(const uint8_t[:] buf, Py_ssize_t pos, Py_ssize_t blen, PcapngState st):
    """Read a Section Header Block at pos; returns an error message or None."""
    cdef uint32_t magic = rd32(&buf[pos + 8], False)
    cdef bint big
    if blen < 28:
        return f"section header block of {blen} bytes is too short"
    if magic == 0x1A2B3C4D:
        big = False
    elif magic == 0x4D3C2B1A:
        big = True
    else:
        return "bad pcapng byte-order magic"
    major = rd16(&buf[pos + 12], big)
    minor = rd16(&buf[pos + 14], big)
    # 1.2: written by some old tools, read by wiretap as 1.0
    if major != 1 or (minor != 0 and minor != 2):
        return f"unsupported pcapng version {major}.{minor}"
    try:
        _parse_options(buf, pos + 24, pos + blen - 4, big)
    except ValueError as e:
        return f"section header block: {e}"
    st.big = big
    st.in_section = True
    st.section_first = len(st.interfaces)
    st.sections += 1
    return None


# The interface description options read (the first of each, as wiretap takes them).
IF_NAME, IF_TSRESOL, IF_TSOFFSET = 2, 9, 14
IDB_OPTIONS = (IF_NAME, IF_TSRESOL, IF_TSOFFSET)


cdef object _idb(const uint8_t[:] buf, Py_ssize_t pos, Py_ssize_t blen, PcapngState st):
    cdef bint big = st.big
    if blen < 20:
        return f"interface description block of {blen} bytes is too short"
    if len(st.interfaces) - st.section_first >= MAX_SECTION_INTERFACES:
        return (f"interface description past the bound of {MAX_SECTION_INTERFACES} in a "
                f"section (docs/limits.md)")
    if len(st.interfaces) >= MAX_FILE_INTERFACES:
        return (f"interface description past the bound of {MAX_FILE_INTERFACES} in a "
                f"file (docs/limits.md)")
    iface = {
        "linktype": rd16(&buf[pos + 8], big),
        "snaplen": rd32(&buf[pos + 12], big),
        "tsresol": 6, "tsresol_pow2": False, "tsoffset": 0, "name": None,
        "section": st.sections - 1,
    }
    try:
        opts = _parse_options(buf, pos + 16, pos + blen - 4, big, IDB_OPTIONS)
    except ValueError as e:
        return f"interface description block: {e}"
    tsresol = None
    vpos, vlen = opts.get(IF_TSRESOL, (0, 0))
    if vlen >= 1:
        tsresol = buf[vpos]
        iface["tsresol"] = tsresol & 0x7F
        iface["tsresol_pow2"] = bool(tsresol & 0x80)
    vpos, vlen = opts.get(IF_TSOFFSET, (0, 0))
    if vlen >= 8:
        v = rd64(&buf[vpos], big)
        iface["tsoffset"] = v - (1 << 64) if v >= (1 << 63) else v
    vpos, vlen = opts.get(IF_NAME, (0, 0))
    if vlen > 0:
        iface["name"] = bytes(buf[vpos:vpos + vlen]).decode("utf-8", "replace").rstrip("\0")
    st.interfaces.append(iface)
    st.ts_units.append(ts_units(6 if tsresol is None else tsresol))
    return None


def walk_pcapng(const uint8_t[:] buf, Py_ssize_t pos, PcapngState st, dict out,
                Py_ssize_t capacity, Py_ssize_t at=0, int64_t base=0, bint final=True):
    """Walk pcapng blocks from `pos` (at a block boundary).

    `at`, `base` and `final`, and the returned (count, next_pos, error, need), are as
    for walk_pcap. Section headers and interface descriptions update `st`; blocks
    that are neither packets nor frames are skipped.
    """
    cdef Py_ssize_t end = buf.shape[0]
    cdef Py_ssize_t n = at
    cdef Py_ssize_t need = 0
    _check_room(out, at, capacity)
    capacity += at
    cdef const uint8_t* p
    cdef uint32_t btype, blen, blen2, caplen, origlen, iid, snap
    cdef uint64_t t
    cdef int64_t[:] offset = out["offset"]
    cdef uint32_t[:] cap_len = out["cap_len"]
    cdef uint32_t[:] wire_len = out["len"]
    cdef int64_t[:] ts = out["ts_ns"]
    cdef uint8_t[:] has_ts = out["has_ts"].view(np.uint8)
    cdef uint32_t[:] iface = out["iface"]
    cdef uint16_t[:] lt = out["linktype"]
    cdef bint big
    cdef Py_ssize_t nif, gidx
    # per-interface facts of the current section, as C arrays (refreshed on IDB/SHB)
    cdef list ifs
    error = None
    while n < capacity and pos < end:
        if end - pos < 12:
            if final:
                error = f"cut short in a block header at offset {base + pos}"
            else:
                need = 12
            break
        p = &buf[pos]
        btype = rd32(p, False)
        if btype == 0x0A0D0D0A:
            if end - pos < 28:
                if final:
                    error = f"cut short in a section header block at offset {base + pos}"
                else:
                    need = 28
                break
            magic = rd32(p + 8, False)
            big = magic == 0x4D3C2B1A
            blen = rd32(p + 4, big)
        else:
            if not st.in_section:
                return n - at, pos, "not a pcapng file", 0
            big = st.big
            btype = rd32(p, big)
            blen = rd32(p + 4, big)
        if blen < 12 or blen % 4 != 0:
            error = f"corrupt block at offset {base + pos}: total length {blen}"
            break
        if blen > MAX_BLOCK_C:
            error = (f"corrupt block at offset {base + pos}: total length {blen} exceeds "
                     f"the {MAX_BLOCK}-byte maximum")
            break
        if blen > end - pos:
            if final:
                error = (f"cut short in the middle of a block at offset {base + pos} "
                         f"({blen} bytes announced, {end - pos} present)")
            else:
                need = blen
            break
        blen2 = rd32(p + blen - 4, big)
        if blen2 != blen:
            error = f"corrupt block at offset {base + pos}: total lengths {blen} and {blen2} differ"
            break
        if btype == 0x0A0D0D0A:
            msg = _shb(buf, pos, blen, st)
            if msg is not None:
                error = f"{msg} at offset {base + pos}"
                break
        elif btype == 1:
            msg = _idb(buf, pos, blen, st)
            if msg is not None:
                error = f"{msg} at offset {base + pos}"
                break
        elif btype == 6 or btype == 2:
            if blen < 32:
                error = f"corrupt packet block at offset {base + pos}: total length {blen} is below the minimum 32"
                break
            if btype == 6:
                iid = rd32(p + 8, big)
            else:
                iid = rd16(p + 8, big)
            t = (<uint64_t>rd32(p + 12, big) << 32) | rd32(p + 16, big)
            caplen = rd32(p + 20, big)
            origlen = rd32(p + 24, big)
            nif = len(st.interfaces) - st.section_first
            if iid >= nif:
                error = (f"corrupt packet block at offset {base + pos}: interface {iid} is not defined "
                         f"({nif} interfaces in this section)")
                break
            if caplen > blen - 32:
                error = (f"corrupt packet block at offset {base + pos}: captured length {caplen} does not "
                         f"fit in a block of {blen} bytes")
                break
            if caplen > MAX_FRAME:
                error = f"corrupt packet block at offset {base + pos}: captured length {caplen} exceeds {MAX_FRAME}"
                break
            gidx = st.section_first + iid
            info = st.interfaces[gidx]
            offset[n] = base + pos + 28
            cap_len[n] = caplen
            wire_len[n] = origlen
            if pcapng_ns(t, st.ts_units[gidx], info["tsoffset"], &ts[n]):
                has_ts[n] = 1
            else:
                ts[n] = 0
                has_ts[n] = 0
                st.out_of_range += 1
            iface[n] = iid
            lt[n] = info["linktype"]
            n += 1
        elif btype == 3:
            if blen < 16:
                error = f"corrupt simple packet block at offset {base + pos}: total length {blen}"
                break
            nif = len(st.interfaces) - st.section_first
            if nif < 1:
                error = f"simple packet block at offset {base + pos} before any interface description"
                break
            info = st.interfaces[st.section_first]
            origlen = rd32(p + 8, big)
            caplen = origlen
            snap = info["snaplen"]
            if snap != 0 and caplen > snap:
                caplen = snap
            if caplen > blen - 16:
                caplen = blen - 16
            offset[n] = base + pos + 12
            cap_len[n] = caplen
            wire_len[n] = origlen
            ts[n] = 0
            has_ts[n] = 0
            iface[n] = 0
            lt[n] = info["linktype"]
            n += 1
        elif btype == 0x00000BAD or btype == 0x40000BAD:
            # tshark 4.0 shows a custom block as a frame of the bytes after its PEN
            if blen < 16:
                error = f"corrupt custom block at offset {base + pos}: total length {blen}"
                break
            offset[n] = base + pos + 12
            cap_len[n] = blen - 16
            wire_len[n] = blen - 16
            ts[n] = 0
            has_ts[n] = 0
            iface[n] = 0xFFFFFFFF
            lt[n] = NO_LINKTYPE
            n += 1
        pos += blen
    return n - at, pos, error, need
