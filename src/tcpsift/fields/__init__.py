"""Wireshark field names computed from the packet table, printed like `tshark -T fields`.

Every field is declared once in `FIELDS`: how to get its typed value from the packet
table, how to get it from the layer table (for headers a frame carries more than once),
and how tshark 4.0 formats it. `write()` (and `render()`, to bytes) turns a Capture into
the exact bytes `tshark -r FILE -T fields -e F1 -e F2 ...` prints: one line per frame,
tab-separated, empty where absent, repeated occurrences comma-joined outermost first.

Everything is a Polars expression over whole columns; only the frames present in the layer
table take a second (still vectorised) pass that overwrites their cells.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from tcpsift.display_filter import FieldError
from tcpsift.schema import LAYER_KINDS

__all__ = ["FIELDS", "Field", "FieldError", "render", "write", "table", "resolve", "field_names"]


C = pl.col
V4 = C("ip_version") == 4
V6 = C("ip_version") == 6
IS_TCP = (C("ip_proto") == 6) & C("sport").is_not_null()
IS_UDP = (C("ip_proto") == 17) & C("sport").is_not_null()
# ICMP errors quote headers: those live in the layer table, the packet table keeps
# the ICMP header itself as the frame's transport.
IS_ICMP = (C("ip_proto") == 1) & C("icmp_type").is_not_null()
IS_ICMP6 = (C("ip_proto") == 58) & C("icmp_type").is_not_null()


def _when(cond: pl.Expr, value: pl.Expr) -> pl.Expr:
    return pl.when(cond).then(value)


# --- formats (typed expression -> String expression, null stays null) -------------

def fmt_dec(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.String)


def fmt_bool(e: pl.Expr) -> pl.Expr:
    # tshark 4.0 prints FT_BOOLEAN fields as 1 / 0
    return e.cast(pl.UInt8).cast(pl.String)


_TABLES: dict[str | Callable[[int], str], pl.Series] = {}


def _lookup(e: pl.Expr, fmt: str | Callable[[int], str]) -> pl.Expr:
    """Format a value of at most 16 bits (by a format string or a function) through a
    65536-entry table of strings: a gather is ~5x faster than Polars' integer-to-string
    cast, and Polars has no hex format."""
    if fmt not in _TABLES:
        text = fmt.format if isinstance(fmt, str) else fmt
        _TABLES[fmt] = pl.Series("text", [text(i) for i in range(65536)])
    return pl.lit(_TABLES[fmt]).gather(e.cast(pl.Int64))


def fmt_hex4(e: pl.Expr) -> pl.Expr:
    """0x%04x, as tshark prints 16-bit BASE_HEX fields (ip.id, tcp.flags)."""
    return _lookup(e, "0x{:04x}")


def tcp_flags_str(flags: int) -> str:
    """tcp.flags.str: bits 11 to 0 of the flags as R R R A C E U A P R S F (reserved, AE,
    CWR, ECE, URG, ACK, PSH, RST, SYN, FIN), a middle dot for each bit that is clear."""
    return "".join(ch if flags >> (11 - i) & 1 else "\u00b7"
                   for i, ch in enumerate("RRRACEUAPRSF"))


def fmt_flags_str(e: pl.Expr) -> pl.Expr:
    return _lookup(e, tcp_flags_str)


def fmt_u16(e: pl.Expr) -> pl.Expr:
    """Decimal, for columns of at most 16 bits (ports, TTL, lengths in 16-bit fields)."""
    return _lookup(e, "{}")


def fmt_epoch(e: pl.Expr) -> pl.Expr:
    """ns since the epoch -> seconds with always 9 fractional digits (1258133614.430569000).

    A Decimal with scale 9 prints exactly that, sign included (-1.500000000 like Wireshark's
    display_epoch_time()), and is 3-5x faster than assembling the digits with string ops.
    """
    return _epoch_decimal(e).cast(pl.String)


def _epoch_decimal(e: pl.Expr) -> pl.Expr:
    ns = pl.lit("0.000000001").cast(pl.Decimal(38, 9))
    return e.cast(pl.Decimal(38, 0)) * ns


def fmt_sack_perm(e: pl.Expr) -> pl.Expr:
    # tcp.options.sack_perm is the whole option (FT_BYTES?) in 4.0: kind 4, length 2
    return _when(e, pl.lit("0402"))


# --- the registry --------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    name: str
    vtype: str                                  # uint, bool, time, ipv4, ipv6, bytes
    fmt: Callable[[pl.Expr], pl.Expr]
    packet: tuple[pl.Expr, ...]                 # typed value(s) on the packet table
    layer_kinds: tuple[str, ...] = ()           # layer-table kinds carrying this field
    layer: tuple[pl.Expr, ...] = ()             # typed value(s) on those layer rows
    doc: str = ""
    needs_tcp: bool = False                     # reads the TCP analysis columns (T_*)
    needs_times: bool = False                   # reads the frame times (with_frame_times)

    def packet_text(self) -> pl.Expr:
        """String value on the packet table; two parts (tcp.port) are joined by ','."""
        parts = [self.fmt(e) for e in self.packet]
        return parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=",")

    def packet_number(self) -> pl.Expr | None:
        """The value as a number when tshark prints it in plain decimal: the CSV writer
        formats numbers itself, several times faster than a cast to text first."""
        if len(self.packet) != 1:
            return None
        e = self.packet[0]
        if self.fmt in (fmt_dec, fmt_u16):
            return e
        if self.fmt is fmt_bool:
            return e.cast(pl.UInt8)
        if self.fmt is fmt_epoch:
            return _epoch_decimal(e)
        return None

    def layer_text(self) -> pl.Expr:
        parts = [self.fmt(e) for e in self.layer]
        return parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=",")


def _f(name, vtype, fmt, packet, kinds=(), layer=(), doc=""):
    packet = packet if isinstance(packet, tuple) else (packet,)
    layer = layer if isinstance(layer, tuple) else (layer,)
    return Field(name, vtype, fmt, packet, tuple(kinds), layer if kinds else (), doc)


IP4, IP6, IPANY = ("ipv4",), ("ipv6",), ("ipv4", "ipv6")
C_KIND = pl.Enum(list(LAYER_KINDS))
S_TAG = C("tpid").fill_null(0x8100) == 0x88A8
NOT_REDIR = ~(C("quoted") & (C("_err") == "icmp5"))   # _err: see prepare_layers()
# A TCP data offset below 5: tshark stops at it, after the ports, sequence number and
# header length, so ack, flags and window are not shown (their values are still read:
# the TCP analysis uses them, as tshark's does)
HDR_OK = C("tcp_hdr_len") >= 20
_LAYER_VERSION = pl.when(C("kind") == "ipv4").then(pl.lit(4, pl.UInt8)).otherwise(
    pl.lit(6, pl.UInt8))
_TCP_FLAG_BITS = {"fin": 0, "syn": 1, "reset": 2, "push": 3, "ack": 4, "urg": 5,
                  "ece": 6, "cwr": 7, "ae": 8}

def _time_field(name: str, since: str) -> Field:
    """A frame time field: the time Wireshark gives the frame minus the time `since`
    (see with_frame_times), printed for frames with a timestamp."""
    return Field(name, "time", fmt_reltime, (_when(C("ts_ns").is_not_null(),
                                                    C("_wts") - C(since)),),
                 needs_times=True)


def fmt_reltime(e: pl.Expr) -> pl.Expr:
    """Relative time in ns -> seconds with 9 decimals, sign first (-0.000100000), as tshark
    prints FT_RELATIVE_TIME; the Decimal cast does it (see fmt_epoch)."""
    return fmt_epoch(e)


_FIELD_LIST = [
    _f("frame.number", "uint", fmt_dec, C("frame")),
    _f("frame.time_epoch", "time", fmt_epoch, C("ts_ns")),
    _time_field("frame.time_relative", "_first_wts"),
    _time_field("frame.time_delta", "_prev_wts"),
    _time_field("frame.time_delta_displayed", "_prev_shown_wts"),
    _f("frame.len", "uint", fmt_dec, C("len")),
    _f("frame.cap_len", "uint", fmt_dec, C("cap_len")),
    # pcap files have no interface ids: tshark prints nothing there (see render())
    _f("frame.interface_id", "uint", fmt_dec, C("iface")),
    # the innermost Ethernet header in the packet table; tunnels' in the layer table
    _f("eth.src", "ether", fmt_dec, C("eth_src"), ("eth",), C("eth_src")),
    _f("eth.dst", "ether", fmt_dec, C("eth_dst"), ("eth",), C("eth_dst")),
    _f("eth.type", "uint", fmt_hex4, C("eth_type"), ("eth",), C("eth_type")),
    # 802.1ad S-tags (TPID 0x88a8) are ieee8021ad.id in Wireshark, not vlan.id; frames with
    # such a tag always have layer rows, so the packet table's vlan_id is a plain 802.1Q tag
    _f("vlan.id", "uint", fmt_u16, C("vlan_id"), ("vlan",), _when(~S_TAG, C("vlan_id"))),
    # an S-tag directly followed by another is shown by tshark as one item of two ids
    # (ieee8021ad.svid, .cvid), not as ieee8021ad.id: in a run of S-tags, pairs (_s_pair,
    # see prepare_layers())
    _f("ieee8021ad.id", "uint", fmt_u16, _when(pl.lit(False), C("vlan_id")), ("vlan",),
       _when(S_TAG & ~C("_s_pair"), C("vlan_id"))),
    # the IPv6 dissector also sets ip.version, so it lists every IP header
    _f("ip.version", "uint", fmt_u16, C("ip_version"), IPANY, _LAYER_VERSION),
    _f("ip.src", "ipv4", fmt_dec, _when(V4, C("src")), IP4, C("src")),
    _f("ip.dst", "ipv4", fmt_dec, _when(V4, C("dst")), IP4, C("dst")),
    _f("ip.addr", "ipv4", fmt_dec, (_when(V4, C("src")), _when(V4, C("dst"))), IP4,
       (C("src"), C("dst"))),
    _f("ip.hdr_len", "uint", fmt_u16, _when(V4, C("ip_hdr_len")), IP4, C("ip_hdr_len")),
    _f("ip.len", "uint", fmt_dec, _when(V4, C("ip_len")), IP4, C("ip_len")),
    _f("ip.id", "uint", fmt_hex4, _when(V4, C("ip_id")), IP4, C("ip_id")),
    _f("ip.ttl", "uint", fmt_u16, _when(V4, C("ttl")), IP4, C("ttl")),
    _f("ip.proto", "uint", fmt_u16, _when(V4, C("ip_proto")), IP4, C("ip_proto")),
    _f("ip.flags.df", "bool", fmt_bool, _when(V4, C("dont_fragment")), IP4,
       C("dont_fragment")),
    _f("ip.flags.mf", "bool", fmt_bool, _when(V4, C("more_fragments")), IP4,
       C("more_fragments")),
    _f("ip.frag_offset", "uint", fmt_u16, _when(V4, C("frag_offset")), IP4,
       C("frag_offset")),
    _f("ipv6.src", "ipv6", fmt_dec, _when(V6, C("src")), IP6, C("src")),
    _f("ipv6.dst", "ipv6", fmt_dec, _when(V6, C("dst")), IP6, C("dst")),
    _f("ipv6.addr", "ipv6", fmt_dec, (_when(V6, C("src")), _when(V6, C("dst"))), IP6,
       (C("src"), C("dst"))),
    _f("ipv6.hlim", "uint", fmt_u16, _when(V6, C("ttl")), IP6, C("ttl")),
    _f("ipv6.plen", "uint", fmt_dec, _when(V6, C("ip_len") - 40), IP6, C("ip_len") - 40),
    _f("ipv6.nxt", "uint", fmt_u16, _when(V6, C("ipv6_nxt")), IP6, C("ipv6_nxt")),
    _f("tcp.srcport", "uint", fmt_u16, _when(IS_TCP, C("sport")), ("tcp",), C("sport")),
    _f("tcp.dstport", "uint", fmt_u16, _when(IS_TCP, C("dport")), ("tcp",), C("dport")),
    _f("tcp.port", "uint", fmt_u16, (_when(IS_TCP, C("sport")), _when(IS_TCP, C("dport"))),
       ("tcp",), (C("sport"), C("dport"))),
    # TCP headers quoted in ICMP errors, as tshark 4.0 shows them (checked on hand-made
    # captures): ack/flags/hdr_len/window need 16 quoted bytes (the decoder leaves them null
    # otherwise) and are never shown inside an ICMPv4 redirect; tcp.seq_raw is shown only
    # inside ICMPv6 errors (ICMPv4 ones give tcp.seq alone)
    # (the header an IPv4 header quotes shows tcp.seq alone, one in IPv6 tcp.seq_raw too;
    # _in6: the row follows an IPv6 header, see prepare_layers())
    _f("tcp.seq_raw", "uint", fmt_dec, _when(IS_TCP, C("seq")), ("tcp",),
       _when(~C("quoted") | (C("_in6") & C("tcp_hdr_len").is_not_null()), C("seq"))),
    _f("tcp.ack_raw", "uint", fmt_dec, _when(IS_TCP & HDR_OK, C("ack")), ("tcp",),
       _when(NOT_REDIR & HDR_OK, C("ack"))),
    _f("tcp.flags", "uint", fmt_hex4, _when(IS_TCP & HDR_OK, C("tcp_flags")), ("tcp",),
       _when(NOT_REDIR & HDR_OK, C("tcp_flags"))),
    _f("tcp.flags.str", "text", fmt_flags_str, _when(IS_TCP & HDR_OK, C("tcp_flags")),
       ("tcp",), _when(NOT_REDIR & HDR_OK, C("tcp_flags"))),
    *[_f(f"tcp.flags.{n}", "bool", fmt_bool,
         _when(IS_TCP & HDR_OK, (C("tcp_flags") // (1 << b)) % 2 == 1), ("tcp",),
         _when(NOT_REDIR & HDR_OK, (C("tcp_flags") // (1 << b)) % 2 == 1))
      for n, b in _TCP_FLAG_BITS.items()],
    _f("tcp.hdr_len", "uint", fmt_u16, _when(IS_TCP, C("tcp_hdr_len")), ("tcp",),
       _when(NOT_REDIR, C("tcp_hdr_len"))),
    _f("tcp.len", "uint", fmt_dec, _when(IS_TCP, C("tcp_len"))),
    _f("tcp.window_size_value", "uint", fmt_u16, _when(IS_TCP & HDR_OK, C("window")),
       ("tcp",), _when(NOT_REDIR & HDR_OK, C("window"))),
    _f("tcp.options.mss_val", "uint", fmt_u16, _when(IS_TCP, C("mss"))),
    _f("tcp.options.wscale.shift", "uint", fmt_u16, _when(IS_TCP, C("wscale"))),
    _f("tcp.options.sack_perm", "bytes", fmt_sack_perm,
       _when(IS_TCP & C("sack_perm"), C("sack_perm"))),
    _f("tcp.options.timestamp.tsval", "uint", fmt_dec, _when(IS_TCP, C("tsval"))),
    _f("tcp.options.timestamp.tsecr", "uint", fmt_dec, _when(IS_TCP, C("tsecr"))),
    _f("udp.srcport", "uint", fmt_u16, _when(IS_UDP, C("sport")), ("udp",), C("sport")),
    _f("udp.dstport", "uint", fmt_u16, _when(IS_UDP, C("dport")), ("udp",), C("dport")),
    _f("udp.port", "uint", fmt_u16, (_when(IS_UDP, C("sport")), _when(IS_UDP, C("dport"))),
       ("udp",), (C("sport"), C("dport"))),
    _f("udp.length", "uint", fmt_u16, _when(IS_UDP, C("udp_len")), ("udp",), C("udp_len")),
    _f("icmp.type", "uint", fmt_u16, _when(IS_ICMP, C("icmp_type")), ("icmp",),
       C("icmp_type")),
    _f("icmp.code", "uint", fmt_u16, _when(IS_ICMP, C("icmp_code")), ("icmp",),
       C("icmp_code")),
    _f("icmpv6.type", "uint", fmt_u16, _when(IS_ICMP6, C("icmp_type")), ("icmpv6",),
       C("icmp_type")),
    _f("icmpv6.code", "uint", fmt_u16, _when(IS_ICMP6, C("icmp_code")), ("icmpv6",),
       C("icmp_code")),
]
FIELDS: dict[str, Field] = {f.name: f for f in _FIELD_LIST}

# "ip" means an IPv4 header, not any IP header as ip.version would say
FIELDS["ip.version4"] = _f("ip.version4", "uint", fmt_dec, _when(V4, C("ip_version")),
                           IP4, _LAYER_VERSION)

# "ieee8021ad" means any S-tag, paired or not
FIELDS["ieee8021ad.tag"] = _f("ieee8021ad.tag", "uint", fmt_u16,
                              _when(pl.lit(False), C("vlan_id")), ("vlan",),
                              _when(S_TAG, C("vlan_id")))

# Fields not meant for -e (helpers for the filter).
_HIDDEN = {"ip.version4", "ieee8021ad.tag"}

# --- TCP analysis (tcp.stream, relative numbers, tcp.analysis.*) ---------------------------
#
# These read the TCP analysis (Capture.tcp, the Cython kernel of tcpsift.tcp), which is
# computed only when a requested field or the filter needs one of them: table() and the
# filter then add its columns to the packet table as `_t_<column>` (see with_tcp()).
# What tshark prints, and when, follows tests/support/tcp_reference.py's tshark_text().

def T(name: str) -> pl.Expr:
    """A TCP analysis column, as added by with_tcp()."""
    return C("_t_" + name)


_A = T("analysis")
_BOGUS = _A.is_null()                     # header length < 20: tshark stops early
_ANALYSED = T("stream").is_not_null()
# HAS_ANALYSIS, not NOT_SHOWN; nor a segment whose options tshark's loop threw in (a SACK
# option shorter than one block: the decoder calls the frame malformed, after the IP and
# TCP headers that give its segment length)
_SHOWN = (((_A & 0x10000) != 0) & ((_A & 0x20000) == 0)
          & ~((C("status") == "malformed") & C("tcp_len").is_not_null()).fill_null(False))
_RAW_SEQ = pl.coalesce(_when(IS_TCP, C("seq")), T("q_seq"))
_RAW_ACK = pl.coalesce(_when(IS_TCP, C("ack")), T("q_ack"))
# the other side's base sequence number (what relative ack and SACK edges subtract)
_ACK_BASE = (_RAW_ACK.cast(pl.Int64) - T("rel_ack").cast(pl.Int64))


def fmt_text(e: pl.Expr) -> pl.Expr:
    return e


def fmt_scalefactor(e: pl.Expr) -> pl.Expr:
    # -1 (unknown) and -2 (not used) as is, else 2^shift
    e = e.cast(pl.Int64)
    return pl.when(e < 0).then(e).otherwise(pl.lit(2, pl.Int64).pow(e.clip(0))).cast(pl.String)


def _sack_edges(first: int) -> pl.Expr:
    """SACK left (first=0) or right (first=1) edges, comma-joined; relative to the other
    side's base seq when the segment was analysed with an ACK (tshark subtracts it)."""
    edges = C("sack_blocks").list.gather_every(2, first).cast(pl.List(pl.Int64))
    rel = ((edges - _ACK_BASE) % (1 << 32)).cast(pl.List(pl.String)).list.join(",")
    raw = edges.cast(pl.List(pl.String)).list.join(",")
    return _when(IS_TCP & (C("sack_blocks").list.len() > 0),
                 pl.when(_ACK_BASE.is_not_null()).then(rel).otherwise(raw))


def _tf(name, vtype, fmt, packet, kinds=(), layer=()):
    f = _f(name, vtype, fmt, packet, kinds, layer)
    return Field(f.name, f.vtype, f.fmt, f.packet, f.layer_kinds, f.layer, f.doc, True)


def _flag(bits: int) -> pl.Expr:
    return _when(_SHOWN & ((_A & bits) != 0), pl.lit("1"))


_TCP_FIELD_LIST = [
    _tf("tcp.stream", "uint", fmt_dec, T("stream")),
    # relative when there is a segment length; else the raw seq (IP fragments, headers
    # quoted in ICMP errors, headers cut before the window)
    _tf("tcp.seq", "uint", fmt_dec, pl.coalesce(T("rel_seq"), _RAW_SEQ), ("tcp",),
        pl.when(C("quoted")).then(_when(~C("_in6") | C("tcp_hdr_len").is_not_null(), C("seq")))
        .otherwise(pl.coalesce(T("rel_seq"), C("seq")))),
    _tf("tcp.ack", "uint", fmt_dec, _when(_ANALYSED & ~_BOGUS,
                                           pl.coalesce(T("rel_ack"), _RAW_ACK))),
    _tf("tcp.nxtseq", "uint", fmt_dec, _when(~_BOGUS, T("next_seq"))),
    _tf("tcp.window_size", "uint", fmt_dec, _when(_ANALYSED & ~_BOGUS, T("window_scaled"))),
    _tf("tcp.window_size_scalefactor", "int", fmt_scalefactor,
        _when(_ANALYSED & ~_BOGUS, T("win_scale"))),
    _tf("tcp.time_relative", "time", fmt_reltime,
        _when(_ANALYSED & ~_BOGUS, T("time_relative_ns"))),
    _tf("tcp.time_delta", "time", fmt_reltime, _when(_ANALYSED & ~_BOGUS, T("time_delta_ns"))),
    # the fast and spurious verdicts also carry the generic retransmission item
    _tf("tcp.analysis.retransmission", "none", fmt_text, _flag(0x0001 | 0x0400 | 0x4000)),
    *[_tf("tcp.analysis." + n, "none", fmt_text, _flag(b)) for n, b in (
        ("fast_retransmission", 0x0400), ("spurious_retransmission", 0x4000),
        ("out_of_order", 0x0200), ("lost_segment", 0x0002), ("ack_lost_segment", 0x0004),
        ("zero_window", 0x0020), ("zero_window_probe", 0x0040),
        ("zero_window_probe_ack", 0x0080), ("window_full", 0x1000),
        ("window_update", 0x0800), ("keep_alive", 0x0008), ("keep_alive_ack", 0x0100),
        ("reused_ports", 0x2000))],
    # the flag item and the expert item share the name: tshark prints "1,1"
    _tf("tcp.analysis.duplicate_ack", "none", fmt_text,
        _when(_SHOWN & T("dup_ack_num").is_not_null(),
              pl.when((_A & 0x0010) != 0).then(pl.lit("1,1")).otherwise(pl.lit("1")))),
    _tf("tcp.analysis.duplicate_ack_num", "uint", fmt_dec, _when(_SHOWN, T("dup_ack_num"))),
    _tf("tcp.analysis.duplicate_ack_frame", "uint", fmt_dec,
        _when(_SHOWN, T("dup_ack_of_frame"))),
    _tf("tcp.analysis.acks_frame", "uint", fmt_dec, _when(_SHOWN, T("acks_frame"))),
    # an RTT of exactly 0 is not printed
    _tf("tcp.analysis.ack_rtt", "time", fmt_reltime,
        _when(_SHOWN & (T("ack_rtt_ns") != 0), T("ack_rtt_ns"))),
    _tf("tcp.analysis.initial_rtt", "time", fmt_reltime,
        _when(_SHOWN, T("initial_rtt_ns"))),
    _tf("tcp.analysis.bytes_in_flight", "uint", fmt_dec, _when(_SHOWN, T("bytes_in_flight"))),
    _tf("tcp.analysis.push_bytes_sent", "uint", fmt_dec, _when(_SHOWN, T("push_bytes_sent"))),
    _tf("tcp.options.sack_le", "text", fmt_text, _sack_edges(0)),
    _tf("tcp.options.sack_re", "text", fmt_text, _sack_edges(1)),
]
FIELDS.update({f.name: f for f in _TCP_FIELD_LIST})
TCP_FIELDS = frozenset(f.name for f in _TCP_FIELD_LIST)


def with_tcp(cap, packets: pl.DataFrame | None = None) -> pl.DataFrame:
    """The packet table plus the TCP analysis columns (`_t_<name>`) and, for TCP headers
    quoted in ICMP errors, their raw seq/ack (`_t_q_seq`, `_t_q_ack`)."""
    packets = cap.packets if packets is None else packets
    tcp = cap.tcp.rename(lambda c: "_t_" + c)
    out = pl.concat([packets, tcp], how="horizontal")
    layers = getattr(cap, "layers", None)
    q = None
    if layers is not None and layers.height:
        # (no layer rows, no quoted header: tcpsift.tcp.analysis, and NumPy, not imported)
        from tcpsift.tcp import _quoted_tcp

        q = _quoted_tcp(layers)
    if q is not None and q.height:
        q = q.select("frame", _t_q_seq=C("seq"), _t_q_ack=C("ack"))
        out = out.join(q, on="frame", how="left", maintain_order="left")
    else:
        out = out.with_columns(_t_q_seq=pl.lit(None, pl.UInt32), _t_q_ack=pl.lit(None, pl.UInt32))
    return out


def layers_with_tcp(cap, layers: pl.DataFrame) -> pl.DataFrame:
    """The layer table plus the TCP analysis columns of its frames' rows."""
    tcp = pl.concat([cap.packets.select("frame"), cap.tcp.select(_t_rel_seq="rel_seq")],
                    how="horizontal")
    return layers.join(tcp, on="frame", how="left", maintain_order="left")

def with_frame_times(packets: pl.DataFrame, times=None) -> pl.DataFrame:
    """The packet table plus what the frame.time_* fields measure: `_wts`, the time
    Wireshark gives each frame (its timestamp; 0 for a packet without one, a pcapng Simple
    Packet Block; for a record that is no packet, a pcapng custom block, the previous
    frame's: wiretap leaves the previous record's time there), `_first_wts` the capture's
    first frame's and `_prev_wts` the previous frame's (frame 1: its own, a delta of 0).
    `times` (textstream.fields.FrameTimes): those of the frames before these rows, when
    they are a chunk of the capture."""
    first, prev = (times.first_ns, times.prev_ns) if times is not None else (None, None)
    wts = (pl.when(C("ts_ns").is_not_null()).then(C("ts_ns"))
           .when(C("linktype").is_not_null()).then(pl.lit(0, pl.Int64))
           .forward_fill().fill_null(0 if prev is None else prev))
    packets = packets.with_columns(_wts=wts)
    return packets.with_columns(
        _first_wts=C("_wts").first() if first is None else pl.lit(first, pl.Int64),
        _prev_wts=C("_wts").shift(1).fill_null(C("_wts") if prev is None else pl.lit(prev)))


def _with_shown_times(shown: pl.DataFrame, times=None) -> pl.DataFrame:
    """`shown` (rows of with_frame_times() that are printed) plus `_prev_shown_wts`, the
    time of the previous frame printed (for the first one: its own)."""
    prev = times.prev_shown_ns if times is not None else None
    return shown.with_columns(_prev_shown_wts=C("_wts").shift(1).fill_null(
        C("_wts") if prev is None else pl.lit(prev)))


def _advance(times, packets: pl.DataFrame, shown: pl.DataFrame) -> None:
    """FrameTimes past these rows (with_frame_times' columns), of which `shown` printed."""
    if packets.height:
        if times.first_ns is None:
            times.first_ns = packets["_first_wts"][0]
        times.prev_ns = packets["_wts"][-1]
    if shown.height:
        times.prev_shown_ns = shown["_wts"][-1]


# Fields tshark has that tcpsift knows it cannot compute yet: {name: why}.
NOT_YET: dict[str, str] = {}


def field_names() -> list[str]:
    return [n for n in FIELDS if n not in _HIDDEN]


def resolve(name: str) -> Field:
    f = FIELDS.get(name)
    if f is None or name in _HIDDEN:
        why = NOT_YET.get(name, "unknown field (tcpsift fields --list shows the supported ones)")
        raise FieldError(f"{name}: {why}")
    return f


# --- rendering ------------------------------------------------------------------------

def prepare_layers(layers: pl.DataFrame) -> pl.DataFrame:
    """The layer table in frame/header order, plus `_err`: for each row, the ICMP message
    it is quoted in ("icmp", "icmp5" for a redirect, "icmpv6"; "" outside an error), and
    `_in6`: the row follows an IPv6 header (a transport header inside IPv6), and
    `_s_pair`: an 802.1ad tag that tshark shows paired with the next or the previous one
    (runs of S-tags are read two at a time; an odd one out, the last, alone).

    Rows are sorted by frame, so a forward fill reset at every frame start replaces a
    window function over hundreds of thousands of small groups.
    """
    rows = layers.sort("frame", "index")
    if rows.height == 0:
        return rows.with_columns(_err=pl.lit("", pl.String), _in6=pl.lit(False),
                                 _s_pair=pl.lit(False))
    is_err = C("kind").is_in(pl.Series(["icmp", "icmpv6"], dtype=C_KIND).implode()) & ~C("quoted")
    label = pl.when(C("kind") == "icmp").then(
        pl.when(C("icmp_type") == 5).then(pl.lit("icmp5")).otherwise(pl.lit("icmp"))
    ).otherwise(pl.lit("icmpv6"))
    start = (C("frame") != C("frame").shift(1)).fill_null(True)
    in6 = (~start & (C("kind").shift(1) == "ipv6")).fill_null(False)
    rows = rows.with_columns(_err=pl.when(is_err).then(label)
                             .when(start).then(pl.lit("")).forward_fill(), _in6=in6)
    return rows.with_columns(_s_pair=_s_pairs(rows))


def _s_pairs(rows: pl.DataFrame) -> pl.Series:
    """Rows of `prepare_layers` that are 802.1ad tags in a pair (see there)."""
    s_tag = ((C("kind") == "vlan") & (C("tpid") == 0x88A8)).fill_null(False)
    if not rows.select(s_tag.any()).item():
        return pl.repeat(False, rows.height, eager=True)
    first = (C("frame") != C("frame").shift(1)).fill_null(True)
    run_start = s_tag & (first | ~s_tag.shift(1).fill_null(False))
    run = pl.when(s_tag).then(run_start.cum_sum())
    pos = pl.int_range(pl.len()).over(run)
    size = pl.len().over(run)
    pair = s_tag & ((size % 2 == 0) | (pos < size - 1))
    return rows.select(pair.alias("_s_pair")).to_series()


def in_kinds(kinds: tuple[str, ...]) -> pl.Expr:
    """Layer rows of these kinds (compared as the Enum, no cast to String)."""
    return C("kind").is_in(pl.Series(list(kinds), dtype=C_KIND).implode())


def rows_of(packets: pl.DataFrame, frames: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(row numbers in packets, mask of frames found) for sorted frame numbers.

    The packet table is in frame order (also after a filter), so a binary search replaces a
    join over the whole table.
    """
    pf = packets["frame"]
    row = pf.search_sorted(frames, side="left").cast(pl.Int64)
    found = pf.gather(row.clip(0, max(pf.len() - 1, 0))) == frames
    found = found & (row < pf.len())
    return row, found


def _join_occurrences(frames: pl.Series, frame: pl.Series, value: pl.Series) -> pl.Series:
    """For each of the sorted unique `frames`, its values comma-joined in row order.

    group_by + str.join is slow with hundreds of thousands of small groups; instead number
    each value within its frame (rows are sorted by frame), spread occurrence j into column j
    aligned on `frames`, and concatenate the few columns horizontally.
    """
    n = frame.len()
    idx = pl.int_range(n, eager=True)
    first = (frame != frame.shift(1)).fill_null(True)
    occ = idx - pl.select(pl.when(first).then(idx).forward_fill()).to_series()
    pos = frames.search_sorted(frame)
    parts = []
    for j in range(int(occ.max()) + 1 if n else 0):
        sel = occ == j
        empty = pl.repeat(None, frames.len(), dtype=pl.String, eager=True)
        parts.append(empty.scatter(pos.filter(sel), value.filter(sel)))
    if not parts:
        return pl.repeat(None, frames.len(), dtype=pl.String, eager=True)
    joined = pl.select(pl.concat_str(parts, separator=",", ignore_nulls=True)).to_series()
    return pl.select(pl.when(parts[0].is_not_null()).then(joined)).to_series()


def _layer_table(layers: pl.DataFrame, fields: dict[str, Field]) -> pl.DataFrame:
    """frame -> per field k: k = comma-joined value of every occurrence, outermost first
    (null if none has a value), and k_has = the frame has layer rows of the field's kinds
    (then the layer table decides, even when it says "absent")."""
    rows = prepare_layers(layers)
    frames = rows["frame"].unique(maintain_order=True)
    out = {}
    for k, f in fields.items():
        # format only the rows of the field's kinds
        t = rows.filter(in_kinds(f.layer_kinds)).select("frame", v=f.layer_text())
        out[k + "_has"] = frames.is_in(t["frame"].unique().implode())
        t = t.drop_nulls("v")
        out[k] = _join_occurrences(frames, t["frame"], t["v"])
    return pl.DataFrame({"frame": frames, **out})


def _interface_id_known(cap) -> pl.Expr:
    """frame.interface_id exists only for pcapng files (per file: several files merge)."""
    files = getattr(getattr(cap, "info", None), "files", None) or []
    fmt = [fi.get("format") if isinstance(fi, dict) else getattr(fi, "format", None)
           for fi in files]
    ng = [i for i, f in enumerate(fmt) if "pcapng" in str(f).lower()]
    return C("file_id").is_in(ng)


def packet_columns(names: list[str]) -> set[str]:
    """The packet-table columns the requested fields read (for tcpsift.read(columns=...)):
    a big capture then builds only those."""
    from tcpsift.schema import PACKET_COLUMN_NAMES

    known = set(PACKET_COLUMN_NAMES)
    cols = {"frame", "file_id"}
    for f in (resolve(n) for n in names):
        for e in f.packet:
            cols |= set(e.meta.root_names()) & known
        if f.needs_tcp:
            from tcpsift.tcp import INPUT_COLUMNS
            cols |= set(INPUT_COLUMNS)
        if f.needs_times:
            cols |= {"ts_ns", "linktype"}
    return cols


def table(cap, names: list[str], mask: pl.Expr | pl.Series | None = None) -> pl.DataFrame:
    """The String table tshark would print: one column per requested field (nulls = empty).

    `cap.frame_times` (optional; textstream.fields.FrameTimes): the cap is a chunk of a
    capture, and those are the frame times before it; they are advanced past it."""
    fields = [resolve(n) for n in names]
    needs_tcp = any(f.needs_tcp for f in fields)
    # the TCP analysis runs only when a field needs it (plain fields stay fast)
    packets = with_tcp(cap) if needs_tcp else cap.packets
    times = getattr(cap, "frame_times", None)
    with_times = times is not None or any(f.needs_times for f in fields)
    if with_times:
        packets = with_frame_times(packets, times)
    every = packets
    if mask is not None:
        packets = packets.filter(mask)
    if with_times:
        packets = _with_shown_times(packets, times)
        if times is not None:
            _advance(times, every, packets)
    layers = getattr(cap, "layers", None)
    has_layers = layers is not None and layers.height > 0
    exprs = []
    for i, f in enumerate(fields):
        number = None if (f.layer_kinds and has_layers) else f.packet_number()
        e = number if number is not None else f.packet_text()
        if f.name == "frame.interface_id":
            e = _when(_interface_id_known(cap), e)
        exprs.append(e.alias(f"f{i}"))
    # the frame column makes Polars broadcast fields that are a bare literal (ieee8021ad.id)
    out = packets.select(C("frame").alias("__frame"), *exprs).drop("__frame")

    layered = [i for i, f in enumerate(fields) if f.layer_kinds]
    if layers is None or layers.height == 0 or not layered or packets.height == 0:
        return out
    # Frames in the layer table: replace the cells of layer-aware fields. The layer value
    # wins when the frame has occurrences of the field's kinds, else the packet value stays.
    if any(fields[i].needs_tcp for i in layered):
        layers = layers_with_tcp(cap, layers)
    lt = _layer_table(layers, {f"f{i}": fields[i] for i in layered})
    row, found = rows_of(packets, lt["frame"])
    lt, row = lt.filter(found), row.filter(found)
    if row.len() == 0:
        return out
    cols = {}
    for i in layered:
        old = out[f"f{i}"]
        new = lt.select(pl.when(C(f"f{i}_has")).then(C(f"f{i}"))
                        .otherwise(old.gather(row))).to_series()
        cols[f"f{i}"] = old.scatter(row, new)
    return out.with_columns(**cols)


_CSV: dict[str, Any] = dict(separator="\t", include_header=False, quote_style="never",
                            null_value="", line_terminator="\n")


def write(cap, names: list[str], fh, mask=None) -> None:
    """Write the output of `tshark -T fields -e ...` for cap to the binary file fh.

    Polars' CSV writer with tab separator, no quoting and empty nulls prints exactly
    tshark's format, and writes in large blocks straight to fh.
    """
    table(cap, names, mask).write_csv(fh, **_CSV)


def render(cap, names: list[str], mask=None) -> bytes:
    """The output of `tshark -T fields -e ...` for cap, as bytes (tests, small captures)."""
    buf = io.BytesIO()
    write(cap, names, buf, mask)
    return buf.getvalue()
