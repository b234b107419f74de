"""Pure-Python reference of Wireshark 4.0's TCP sequence analysis (tcp.analysis.*).

This is the slow, obvious model the compiled kernel is written and tested against. It
walks the packet table row by row, in frame order, keeping the same state Wireshark's
TCP dissector keeps on its first (and, for tshark without -2, only) pass, and applies
the same rules in the same order: the order decides which verdict a segment gets.

    analyze(packets) -> DataFrame, one row per input row (null on non-TCP rows)
    tshark_text(packets, result, fields) -> {frame: [text of each field]}

The rules were read from epan/dissectors/packet-tcp.c of Wireshark 4.0.17 (the function
names are cited so that the two can be compared) and checked against tshark's output on
the capture corpus (tests/support/tcp_conformance.py). Preferences are tshark 4.0's
defaults: analyze_sequence_numbers, relative_sequence_numbers, calculate_timestamps and
track_bytes_in_flight on; bif_seq_based off; fastrt_supersedes_ooo on;
default_window_scaling "not known" (-1).

All sequence arithmetic is modulo 2**32 like the C code's guint32; the comparisons
GT/LT/GE/LE are the wrap-aware ones (signed 32-bit difference).

The column list is documented in notes/tcp-columns.md.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import polars as pl

# TCP header flag bits (tcp_flags column, 12 bits)
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Bits of the `analysis` column. The low 16 are Wireshark's TCP_A_* values.
RETRANSMISSION = 0x0001
LOST_SEGMENT = 0x0002            # "previous segment not captured"
ACK_LOST_SEGMENT = 0x0004        # "ACKed unseen segment"
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
# Not a verdict: Wireshark holds per-frame analysis data for this frame (its "SEQ/ACK
# analysis" tree is shown), which decides whether tcp.analysis.initial_rtt is printed.
HAS_ANALYSIS = 0x10000
# Not a verdict: tshark computed the analysis but does not show it, because the capture
# ends inside the TCP options (its option loop throws before the analysis is printed).
NOT_SHOWN = 0x20000
# Not a verdict: the row's TCP header is one quoted inside an ICMP/ICMPv6 error (the
# row's own transport is ICMP); stream and time columns refer to the quoted segment.
QUOTED = 0x40000

FLAG_BITS = {
    "retransmission": RETRANSMISSION, "fast_retransmission": FAST_RETRANSMISSION,
    "spurious_retransmission": SPURIOUS_RETRANSMISSION, "out_of_order": OUT_OF_ORDER,
    "lost_segment": LOST_SEGMENT, "ack_lost_segment": ACK_LOST_SEGMENT,
    "duplicate_ack": DUPLICATE_ACK, "zero_window": ZERO_WINDOW,
    "zero_window_probe": ZERO_WINDOW_PROBE, "zero_window_probe_ack": ZERO_WINDOW_PROBE_ACK,
    "window_full": WINDOW_FULL, "window_update": WINDOW_UPDATE, "keep_alive": KEEP_ALIVE,
    "keep_alive_ack": KEEP_ALIVE_ACK, "reused_ports": REUSED_PORTS,
}

MAX_UNACKED = 10000          # TCP_MAX_UNACKED_SEGMENTS
MAX_SACK_STORED = 3          # blocks 1..3 of an option are remembered (MAX_TCP_SACK_RANGES - 1)
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

COLUMNS = {
    "stream": pl.UInt32, "direction": pl.UInt8, "time_relative_ns": pl.Int64,
    "time_delta_ns": pl.Int64, "rel_seq": pl.UInt32, "rel_ack": pl.UInt32,
    "next_seq": pl.UInt32, "win_scale": pl.Int16, "window_scaled": pl.UInt32,
    "analysis": pl.UInt32, "dup_ack_num": pl.UInt32, "dup_ack_of_frame": pl.UInt32,
    "acks_frame": pl.UInt32, "ack_rtt_ns": pl.Int64, "initial_rtt_ns": pl.Int64,
    "bytes_in_flight": pl.UInt32, "push_bytes_sent": pl.UInt32,
}


def s32(v: int) -> int:
    """The signed 32-bit value of v mod 2**32 (the (gint32) cast)."""
    v &= M32
    return v - (1 << 32) if v & 0x80000000 else v


def GT(x, y):  # GT_SEQ
    return s32(y - x) < 0


def LT(x, y):  # LT_SEQ
    return s32(x - y) < 0


def GE(x, y):  # GE_SEQ
    return s32(y - x) <= 0


def LE(x, y):  # LE_SEQ
    return s32(x - y) <= 0


@dataclass
class Unacked:
    """One sent segment not yet acknowledged (tcp_unacked_t)."""
    frame: int
    seq: int
    nextseq: int
    ts: int


@dataclass
class Flow:
    """One direction of a connection (tcp_flow_t + tcp_analyze_seq_flow_info_t)."""
    base_seq: int = 0
    base_set: bool = False
    win_scale: int = -1          # -1 unknown, -2 not used, else the shift
    window: int = M32            # raw window of the last segment (G_MAXUINT32 before any)
    is_first_ack: bool = False
    valid_bif: bool = True
    push_bytes_sent: int = 0
    push_set_last: bool = False
    lastsegmentflags: int = 0
    nextseq: int = 0             # highest seq + len seen (0: none yet)
    nextseqframe: int = 0
    nextseqtime: int = 0
    maxseqtobeacked: int = 0
    lastack: int = 0
    lastacktime: int = 0
    lastnondupack: int = 0
    dupacknum: int = 0           # guint32: M32 is the C code's -1 marker
    segments: list = field(default_factory=list)   # newest first
    sack: list = field(default_factory=list)       # (left, right) of the last SACK option


@dataclass
class Conv:
    """One TCP conversation (tcp_analysis): a tcp.stream."""
    stream: int
    ts_first: int
    ts_prev: int
    flow1: Flow = field(default_factory=Flow)
    flow2: Flow = field(default_factory=Flow)
    ts_mru_syn: int = 0          # time of the most recent pure SYN (0: none)
    ts_first_rtt: int = 0        # iRTT (0: not known)
    client: tuple = ()           # our `direction`: the endpoint that opened the stream


@dataclass
class TA:
    """Per-frame analysis result (tcp_acked)."""
    flags: int = 0
    dupack_num: int = 0
    dupack_frame: int = 0
    frame_acked: int = 0
    ack_rtt: int = 0
    bytes_in_flight: int = 0
    push_bytes_sent: int = 0


class Frame:
    """What one frame's dissection produces; `ta` is created on demand like
    tcp_analyze_get_acked_struct(..., createflag=TRUE)."""

    def __init__(self):
        self.ta = None

    def get_ta(self) -> TA:
        if self.ta is None:
            self.ta = TA()
        return self.ta


def _addr_key(text: str) -> bytes:
    """The address as cmp_address() compares it: type (length), then bytes."""
    a = ipaddress.ip_address(text)
    return bytes([a.version]) + a.packed


# --- the sequence analysis ---------------------------------------------------------------

def analyze_sequence_number(fr: Frame, conv: Conv, fwd: Flow, rev: Flow, frame: int, ts: int,
                            seq: int, ack: int, seglen: int, flags: int, window: int) -> None:
    """tcp_analyze_sequence_number(): the verdicts, in Wireshark's order of tests.
    `seq`/`ack` are raw, `window` the raw (unscaled) window field."""

    if flags & ACK:
        # an ACK from this side lets the other side's bytes-in-flight be trusted again
        rev.valid_bif = True

    # ZERO WINDOW PROBE: 1 byte exactly at the next expected seq while the other side
    # advertises a zero window. Nothing else is tested for a probe.
    zwp = False
    if seglen == 1 and seq == fwd.nextseq and rev.window == 0:
        fr.get_ta().flags |= ZERO_WINDOW_PROBE
        zwp = True

    if not zwp:
        # ZERO WINDOW: window 0 on a segment without SYN/FIN/RST
        if window == 0 and not flags & (RST | FIN | SYN):
            fr.get_ta().flags |= ZERO_WINDOW

        # LOST SEGMENT: seq beyond the highest nextseq seen (only once something was seen;
        # never on RST). Bytes in flight are unreliable until the other side ACKs.
        if fwd.nextseq and GT(seq, fwd.nextseq) and not flags & RST:
            fr.get_ta().flags |= LOST_SEGMENT
            fwd.valid_bif = False

        # KEEP-ALIVE: 0 or 1 byte starting one byte before the next expected seq
        if seglen in (0, 1) and seq == (fwd.nextseq - 1) & M32 and not flags & (SYN | FIN | RST):
            fr.get_ta().flags |= KEEP_ALIVE

        # WINDOW UPDATE: empty segment, same seq/ack as before, a new non-zero window
        if (seglen == 0 and window and window != fwd.window and seq == fwd.nextseq
                and ack == fwd.lastack and not flags & (SYN | FIN | RST)):
            fr.get_ta().flags |= WINDOW_UPDATE

        # WINDOW FULL: data reaching exactly the right edge of the other side's window.
        # Only when that side's scaling is known (or known unused); the window of a
        # side that has not sent its first pure ACK since its SYN is taken unscaled.
        if seglen > 0 and rev.win_scale != -1 and not flags & (SYN | FIN | RST):
            shift = 0 if rev.is_first_ack or rev.win_scale == -2 else rev.win_scale
            edge = (rev.lastack + ((rev.window << shift) & M32)) & M32
            if (seq + seglen) & M32 == edge:
                fr.get_ta().flags |= WINDOW_FULL

        done = False
        # KEEP-ALIVE ACK: repeats the previous ACK/window right after a keep-alive the
        # other way
        if (seglen == 0 and window and window == fwd.window and seq == fwd.nextseq
                and ack == fwd.lastack and rev.lastsegmentflags & KEEP_ALIVE
                and not flags & (SYN | FIN | RST)):
            fr.get_ta().flags |= KEEP_ALIVE_ACK
            done = True

        # ZERO WINDOW PROBE ACK: repeats the previous ACK and zero window right after a
        # zero window probe the other way
        if (not done and seglen == 0 and window == 0 and window == fwd.window
                and seq == fwd.nextseq and ack == fwd.lastack
                and rev.lastsegmentflags & ZERO_WINDOW_PROBE and not flags & (SYN | FIN | RST)):
            fr.get_ta().flags |= ZERO_WINDOW_PROBE_ACK
            done = True

        # DUPLICATE ACK: empty, same window/seq/ack as the previous segment this way.
        # (MPTCP's exemption when mp_operations changed is not modelled.)
        if (not done and seglen == 0 and window and window == fwd.window
                and seq == fwd.nextseq and ack == fwd.lastack
                and not flags & (SYN | FIN | RST)):
            if fwd.dupacknum == M32:     # an "ACKed unseen segment" marker is neutralised
                fwd.dupacknum = 1
            else:
                fwd.dupacknum = (fwd.dupacknum + 1) & M32
            ta = fr.get_ta()
            ta.flags |= DUPLICATE_ACK
            ta.dupack_num = fwd.dupacknum
            ta.dupack_frame = fwd.lastnondupack

    # finished_fwd: a new ack number restarts the duplicate-ack count
    if ack != fwd.lastack:
        fwd.lastnondupack = frame
        fwd.dupacknum = 0

    # ACKED LOST SEGMENT: acks beyond what the other side was seen to send (only with
    # the ACK flag and once the other side sent something). The boundary then jumps to
    # the other side's nextseq so that one gap is reported once.
    if rev.maxseqtobeacked and GT(ack, rev.maxseqtobeacked) and flags & ACK:
        ta = fr.get_ta()
        if LT(rev.maxseqtobeacked, rev.nextseq):
            rev.maxseqtobeacked = rev.nextseq
            ta.flags |= ACK_LOST_SEGMENT
        else:
            if rev.dupacknum == 0:
                ta.flags |= ACK_LOST_SEGMENT
            rev.dupacknum = M32          # (guint32)-1: also counts as ">= 2 dup acks" below

    # RETRANSMISSION / FAST RETRANSMISSION / OUT-OF-ORDER / SPURIOUS: a segment carrying
    # data (or SYN/FIN) that does not advance the sequence number.
    if seglen > 0 or flags & (SYN | FIN):
        seq_not_advanced = bool(fwd.nextseq) and LT(seq, fwd.nextseq)
        while True:   # a block to leave early (the C code's goto)
            if fr.ta is not None and fr.ta.flags & KEEP_ALIVE:
                break
            # more than one byte one below nextseq follows a possible zero window probe:
            # it brings new data, so it is not a retransmission
            if seglen > 1 and (fwd.nextseq - 1) & M32 == seq:
                seq_not_advanced = False
            # SPURIOUS: all of its data was already acked by the other side (tested even
            # when the seq advanced)
            if seglen > 0 and rev.lastack and LE((seq + seglen) & M32, rev.lastack):
                fr.get_ta().flags |= SPURIOUS_RETRANSMISSION
                break
            # FAST RETRANSMISSION (tested first: fastrt_supersedes_ooo): >= 2 dup acks
            # the other way for exactly this seq, the last one less than 20 ms ago (the
            # counter is unsigned: the -1 left by an "ACKed unseen segment" passes too)
            t = (ts - rev.lastacktime) & M64
            if seq_not_advanced and rev.dupacknum >= 2 and rev.lastack == seq and t < 20_000_000:
                fr.get_ta().flags |= FAST_RETRANSMISSION
                break
            # OUT-OF-ORDER: less than one iRTT (3 ms while unknown) after the segment that
            # set the highest nextseq, and not ending exactly at nextseq
            t = (ts - fwd.nextseqtime) & M64
            ooo_thres = 3_000_000 if conv.ts_first_rtt == 0 else conv.ts_first_rtt & M64
            end = (seq + seglen + (1 if flags & (SYN | FIN) else 0)) & M32
            if seq_not_advanced and t < ooo_thres and fwd.nextseq != end:
                fr.get_ta().flags |= OUT_OF_ORDER
                break
            # RETRANSMISSION: anything else that did not advance
            if seq_not_advanced:
                fr.get_ta().flags |= RETRANSMISSION
            break

    # remember the segment (data, SYN or FIN) as unacked, at most MAX_UNACKED of them
    nextseq = (seq + seglen) & M32
    if (seglen or flags & (SYN | FIN)) and len(fwd.segments) < MAX_UNACKED:
        if flags & (SYN | FIN):
            nextseq = (nextseq + 1) & M32
        fwd.segments.insert(0, Unacked(frame, seq, nextseq, ts))

    is_zwp = fr.ta is not None and fr.ta.flags & ZERO_WINDOW_PROBE
    # highest nextseq seen (a zero window probe does not advance it); note the "+1" of
    # SYN/FIN counts only when the segment was stored above
    if GT(nextseq, fwd.nextseq) or not fwd.nextseq:
        if not is_zwp:
            fwd.nextseq = nextseq
            fwd.nextseqframe = frame
            fwd.nextseqtime = ts
    # highest contiguous seq ('max seq to be acked')
    if seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked:
        if not is_zwp:
            fwd.maxseqtobeacked = fwd.nextseq

    fwd.window = window
    fwd.lastack = ack
    fwd.lastacktime = ts
    fwd.lastsegmentflags = fr.ta.flags if fr.ta is not None else 0

    # drop the other side's segments this ack covers; an exact match gives the RTT
    i = 0
    segs = rev.segments
    while i < len(segs):
        u = segs[i]
        if ack == u.nextseq:
            ta = fr.get_ta()
            ta.frame_acked = u.frame
            ta.ack_rtt = ts - u.ts
        elif GT(ack, u.seq) and LE(ack, u.nextseq):
            u.seq = ack          # partly acked: keep the rest (then looked at again)
            continue
        elif GT(u.nextseq, ack):
            i += 1               # not acked yet
            continue
        del segs[i]              # acked (exactly or older)

    # BYTES IN FLIGHT (payload based): span of this side's unacked segments, minus the
    # SACKed bytes the other side reported last, for segments with data
    if seglen != 0 and fwd.segments and fwd.valid_bif:
        first = (fwd.segments[0].seq - fwd.base_seq) & M32
        last = (fwd.segments[0].nextseq - fwd.base_seq) & M32
        for u in fwd.segments:
            if (u.nextseq - fwd.base_seq) & M32 > last:
                last = (u.nextseq - fwd.base_seq) & M32
            if (u.seq - fwd.base_seq) & M32 < first:
                first = (u.seq - fwd.base_seq) & M32
        in_flight = (last - first) & M32
        delivered = 0
        for left, right in rev.sack:
            delivered = (delivered + right - left) & M32
        in_flight = (in_flight - delivered) & M32
        if 0 < in_flight < 2_000_000_000:
            ta = fr.get_ta()
            ta.bytes_in_flight = in_flight
            if flags & (SYN | FIN):      # the SYN/FIN "byte" is virtual
                ta.bytes_in_flight -= 1
        # bytes sent since the last PSH
        if flags & PSH and not fwd.push_set_last:
            fwd.push_bytes_sent += seglen
            fwd.push_set_last = True
        elif flags & PSH and fwd.push_set_last:
            fwd.push_bytes_sent = seglen
            fwd.push_set_last = True
        elif fwd.push_set_last:
            fwd.push_bytes_sent = seglen
            fwd.push_set_last = False
        else:
            fwd.push_bytes_sent += seglen
        fwd.push_bytes_sent &= M32
        fr.get_ta().push_bytes_sent = fwd.push_bytes_sent


# --- the dissector's per-frame bookkeeping ------------------------------------------------

def _col(packets: pl.DataFrame, name: str):
    return packets.get_column(name).to_list() if name in packets.columns else [None] * len(packets)


def _quoted_tcp(layers: pl.DataFrame | None) -> dict:
    """{frame: (src, dst, sport, dport, flags, seq, ack, window, hdr_len)} of the first TCP
    header quoted inside an ICMP/ICMPv6 error with at least 16 bytes (tshark reads the
    window before it looks the conversation up; shorter quotes throw earlier). The
    addresses are those of the quoted IP header just before it."""
    if layers is None or len(layers) == 0:
        return {}
    out = {}
    ip = {}
    redirect = set()
    for r in layers.sort("frame", "index").iter_rows(named=True):
        f = r["frame"]
        if r["kind"] == "icmp" and not r["quoted"] and r["icmp_type"] == 5:
            # tshark dissects only 8 bytes of the datagram quoted in an ICMPv4 redirect
            redirect.add(f)
        if not r["quoted"] or f in redirect:
            continue
        if r["kind"] in ("ipv4", "ipv6"):
            ip[f] = (r["src"], r["dst"])
        elif r["kind"] == "tcp" and f not in out and f in ip and r["tcp_flags"] is not None:
            out[f] = (*ip[f], r["sport"], r["dport"], r["tcp_flags"], r["seq"], r["ack"],
                      r["window"], r["tcp_hdr_len"])
    return out


def analyze(packets: pl.DataFrame, layers: pl.DataFrame | None = None) -> pl.DataFrame:
    """One output row per packet-table row (same order); TCP rows filled, others null.

    `layers` (Capture.layers) is optional: with it, TCP headers quoted inside ICMP errors
    are looked up like tshark does (they can open a tcp.stream, which shifts the numbers
    of later streams); their rows get the QUOTED bit and no sequence analysis."""
    n = len(packets)
    out = {name: [None] * n for name in COLUMNS}
    cols = {c: _col(packets, c) for c in (
        "frame", "ts_ns", "src", "dst", "sport", "dport", "ip_proto", "tcp_flags", "seq", "ack",
        "window", "tcp_len", "tcp_hdr_len", "wscale", "sack_blocks", "ip_len", "ip_hdr_len",
        "more_fragments", "frag_offset", "payload_offset", "status")}
    quoted_tcp = _quoted_tcp(layers)

    convs: dict = {}          # unordered endpoint pair -> current Conv (the latest one)
    stream_count = 0
    addr_cache: dict = {}

    def akey(a):
        k = addr_cache.get(a)
        if k is None:
            k = addr_cache[a] = _addr_key(a)
        return k

    for i in range(n):
        frame, ts = cols["frame"][i], cols["ts_ns"][i]
        quoted = False
        if cols["ip_proto"][i] == 6 and cols["sport"][i] is not None:
            # tshark reads seq, ack, flags and window before it looks the conversation
            # up: a header cut before the window throws first (no tcp.stream at all)
            if cols["window"][i] is None or cols["tcp_flags"][i] is None:
                continue
            src, dst = akey(cols["src"][i]), akey(cols["dst"][i])
            sport, dport = cols["sport"][i], cols["dport"][i]
            flags, seq, ack = cols["tcp_flags"][i], cols["seq"][i], cols["ack"][i]
            raw_window = cols["window"][i]
            hlen = cols["tcp_hdr_len"][i]
        elif frame in quoted_tcp:
            # a TCP header inside an ICMP error: no segment length (no sequence analysis,
            # raw seq/ack, unscaled window), but conversation lookup, timestamps and the
            # SYN/ACK bookkeeping run as for any segment
            quoted = True
            qs, qd, sport, dport, flags, seq, ack, raw_window, hlen = quoted_tcp[frame]
            src, dst = akey(qs), akey(qd)
        else:
            continue
        a, b = (src, sport), (dst, dport)
        key = (a, b) if a <= b else (b, a)
        # get_tcp_conversation_data(): flow1 is the direction whose source address
        # compares greater (ports decide between equal addresses; equal ports: flow2)
        if src != dst:
            direction = 1 if src > dst else -1
        else:
            direction = 1 if sport > dport else -1

        def flows(c, direction=direction):
            return (c.flow1, c.flow2) if direction >= 0 else (c.flow2, c.flow1)

        conv = convs.get(key)
        if conv is None:
            conv = Conv(stream_count, ts, ts, client=a if flags & (SYN | ACK) != (SYN | ACK) else b)
            stream_count += 1
            convs[key] = conv
        fwd, rev = flows(conv)
        fr = Frame()

        # Port reuse (dissect_tcp): a pure SYN whose seq differs from this side's base
        # seq starts a new conversation (a new tcp.stream); the same seq is a retransmitted
        # SYN and restores nextseq (a RST may have moved it).
        if flags & (SYN | ACK) == SYN and fwd.base_set:
            if seq != fwd.base_seq:
                conv = Conv(stream_count, ts, ts, client=a)
                stream_count += 1
                convs[key] = conv
                fwd, rev = flows(conv)
                fr.get_ta().flags |= REUSED_PORTS
            else:
                fwd.nextseq = fwd.maxseqtobeacked
                fr.get_ta()
        # a SYN-ACK with another seq than this side's base seq: same stream, new base
        if flags & (SYN | ACK) == (SYN | ACK) and fwd.base_set and seq != fwd.base_seq:
            fwd.base_seq = seq
            fr.get_ta().flags |= REUSED_PORTS

        # this side's SACK blocks are forgotten until its options are read (below)
        fwd.sack = []

        # tcp_calculate_timestamps()
        time_delta = ts - conv.ts_prev
        conv.ts_prev = ts
        time_relative = ts - conv.ts_first

        # seglen: IP payload length minus the header length. The decoder leaves tcp_len
        # null in IP fragments (and puts a reassembled datagram's TCP header in the frame
        # that completes it, as tshark does); a header length below 20 is still used by
        # tshark when the payload is at least that long.
        fragmented = bool(cols["more_fragments"][i]) or bool(cols["frag_offset"][i])
        seglen = None if quoted else cols["tcp_len"][i]
        if seglen is None and not fragmented and not quoted and hlen is not None and hlen < 20:
            ip_len, ip_hl = cols["ip_len"][i], cols["ip_hdr_len"][i]
            if ip_len is not None and ip_hl is not None and ip_len - ip_hl >= hlen:
                seglen = ip_len - ip_hl - hlen
        have_seglen = seglen is not None

        rel_seq = rel_ack = next_seq = None
        window = raw_window
        if have_seglen:
            # base seq: the SYN's seq, else seq - 1 (so that the first byte seen is 1);
            # the other side's base from the first ACK this way, as ack - 1
            if not fwd.base_set:
                fwd.base_seq = seq if flags & SYN else (seq - 1) & M32
                fwd.base_set = True
            if not rev.base_set and flags & ACK:
                rev.base_seq = (ack - 1) & M32
                rev.base_set = True
            analyze_sequence_number(fr, conv, fwd, rev, frame, ts, seq, ack, seglen, flags,
                                    raw_window)
            rel_seq = (seq - fwd.base_seq) & M32
            if flags & ACK:
                rel_ack = (ack - rev.base_seq) & M32
            # the scaled window: never on SYNs; -1 (unknown) and -2 (unused) leave it
            if not flags & SYN and fwd.win_scale >= 0:
                window = raw_window << fwd.win_scale
            next_seq = (rel_seq + seglen + (1 if flags & (SYN | FIN) else 0)) & M32

        bogus = hlen is not None and hlen < 20
        header_cut = (not quoted and cols["status"][i] == "truncated"
                      and cols["payload_offset"][i] is None
                      and cols["tcp_len"][i] is not None)
        win_scale = None if flags & SYN else fwd.win_scale

        if not bogus:
            if flags & SYN:
                fwd.is_first_ack = True
                if not flags & ACK:
                    conv.ts_mru_syn = ts
            # iRTT: the first pure ACK after a SYN, measured from the latest SYN
            if flags & (SYN | ACK) == ACK and conv.ts_mru_syn and not conv.ts_first_rtt:
                conv.ts_first_rtt = ts - conv.ts_mru_syn
            if flags & (SYN | ACK) == ACK:
                fwd.is_first_ack = False
            # options (read after the analysis): window scale and SACK blocks. When the
            # capture ends inside the options (snaplen), tshark's option loop throws: the
            # options before the cut still count, but everything after them in
            # dissect_tcp() is skipped (the analysis tree, the window scaling verdict)
            ws = None if quoted else cols["wscale"][i]
            if ws is not None:
                fwd.win_scale = min(ws, 14)
            sb = None if quoted else cols["sack_blocks"][i]
            if sb:
                fwd.sack = [(sb[2 * j], sb[2 * j + 1]) for j in range(min(len(sb) // 2,
                                                                           MAX_SACK_STORED))]
            # verify_tcp_window_scaling(): decided on SYN / SYN-ACK
            if flags & SYN and not header_cut:
                if fwd.win_scale == -1:
                    fwd.win_scale = rev.win_scale = -2
                elif flags & ACK and rev.win_scale == -2:
                    fwd.win_scale = -2

        out["stream"][i] = conv.stream
        out["direction"][i] = 0 if a == conv.client else 1
        out["time_relative_ns"][i] = time_relative
        out["time_delta_ns"][i] = time_delta
        out["rel_seq"][i] = rel_seq
        out["rel_ack"][i] = rel_ack
        out["next_seq"][i] = next_seq
        out["win_scale"][i] = win_scale
        out["window_scaled"][i] = window
        out["initial_rtt_ns"][i] = conv.ts_first_rtt or None
        ta = fr.ta
        if ta is None:
            out["analysis"][i] = 0
        else:
            out["analysis"][i] = ta.flags | HAS_ANALYSIS | (NOT_SHOWN if header_cut else 0)
            if ta.dupack_num:
                out["dup_ack_num"][i] = ta.dupack_num
                out["dup_ack_of_frame"][i] = ta.dupack_frame
            if ta.frame_acked:
                out["acks_frame"][i] = ta.frame_acked
                out["ack_rtt_ns"][i] = ta.ack_rtt
            if ta.bytes_in_flight:
                out["bytes_in_flight"][i] = ta.bytes_in_flight
                out["push_bytes_sent"][i] = ta.push_bytes_sent
        if quoted:
            out["analysis"][i] |= QUOTED
        if bogus:
            out["analysis"][i] = None   # tshark stops before the header's later fields
    return pl.DataFrame(out, schema=COLUMNS)


# --- tshark's text -------------------------------------------------------------------------

def fmt_reltime(ns: int) -> str:
    """FT_RELATIVE_TIME as tshark -T fields prints it: seconds, 9 decimals, sign first."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def tshark_text(packets: pl.DataFrame, result: pl.DataFrame, fields: list[str],
                layers: pl.DataFrame | None = None) -> dict:
    """{frame: [text]} for the TCP rows, one string per field as `tshark -T fields` prints
    it (empty when absent). `layers` gives the raw seq/ack of quoted TCP headers."""
    p = {c: _col(packets, c) for c in ("frame", "seq", "ack", "tcp_len")}
    quoted_tcp = _quoted_tcp(layers)
    r = {c: result.get_column(c).to_list() for c in result.columns}
    out = {}
    for i in range(len(packets)):
        stream = r["stream"][i]
        if stream is None:
            continue
        if (r["analysis"][i] or 0) & QUOTED:
            q = quoted_tcp[p["frame"][i]]
            p["seq"][i], p["ack"][i] = q[5], q[6]
        analysis = r["analysis"][i]
        bogus = analysis is None
        analysis = analysis or 0
        has_seglen = r["next_seq"][i] is not None
        v = {}
        v["tcp.stream"] = str(stream)
        v["tcp.seq"] = str(r["rel_seq"][i] if r["rel_seq"][i] is not None else p["seq"][i])
        if has_seglen:
            v["tcp.len"] = str(p["tcp_len"][i]) if p["tcp_len"][i] is not None else ""
        if not bogus:
            if has_seglen:
                v["tcp.nxtseq"] = str(r["next_seq"][i])
            ra = r["rel_ack"][i]
            v["tcp.ack"] = str(ra if ra is not None else p["ack"][i])
            v["tcp.window_size"] = str(r["window_scaled"][i])
            ws = r["win_scale"][i]
            if ws is not None:
                v["tcp.window_size_scalefactor"] = str(ws if ws < 0 else 1 << ws)
            v["tcp.time_relative"] = fmt_reltime(r["time_relative_ns"][i])
            v["tcp.time_delta"] = fmt_reltime(r["time_delta_ns"][i])
            if analysis & HAS_ANALYSIS and not analysis & NOT_SHOWN:
                if r["acks_frame"][i] is not None:
                    v["tcp.analysis.acks_frame"] = str(r["acks_frame"][i])
                    if r["ack_rtt_ns"][i]:
                        v["tcp.analysis.ack_rtt"] = fmt_reltime(r["ack_rtt_ns"][i])
                if r["initial_rtt_ns"][i]:
                    v["tcp.analysis.initial_rtt"] = fmt_reltime(r["initial_rtt_ns"][i])
                if r["bytes_in_flight"][i] is not None:
                    v["tcp.analysis.bytes_in_flight"] = str(r["bytes_in_flight"][i])
                    v["tcp.analysis.push_bytes_sent"] = str(r["push_bytes_sent"][i])
                for name, bit in FLAG_BITS.items():
                    if analysis & bit:
                        v["tcp.analysis." + name] = "1"
                # the fast and spurious verdicts also carry the generic retransmission one
                if analysis & (FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION):
                    v["tcp.analysis.retransmission"] = "1"
                if r["dup_ack_num"][i] is not None:
                    # the flag item and the expert item share the field name
                    if analysis & DUPLICATE_ACK:
                        v["tcp.analysis.duplicate_ack"] = "1,1"
                    else:
                        v["tcp.analysis.duplicate_ack"] = "1"
                    v["tcp.analysis.duplicate_ack_num"] = str(r["dup_ack_num"][i])
                    v["tcp.analysis.duplicate_ack_frame"] = str(r["dup_ack_of_frame"][i])
        out[p["frame"][i]] = [v.get(f, "") for f in fields]
    return out
