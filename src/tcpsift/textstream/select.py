"""Which frames of a chunk a `-Y` filter keeps, from the decoder's arrays (NumPy, no tables).

The common filters (protocols, addresses, ports, TCP and IP flags, every header field,
tcp.stream, the TCP analysis numbers, the tcp.analysis.* verdicts, frame.time_relative
and frame.time_delta, with and/or/not; not tcp.window_size_scalefactor) are evaluated here
on a chunk's
record, packet and TCP analysis arrays: a boolean row mask that the fast formatter
(_lines.pyx) prints through. A filter naming any other field is not an ArrayFilter
(`array_filter` returns None) and takes the table path (tcpsift.fields.filter), whose
Polars expressions are the reference: a field's value and presence here follow the same
rules the formatter prints it with (STREAMED's column and condition, the presence bits of
tcpsift.capture.presence, the analysis bits of TCP_STREAMED), and tests hold both paths
equal on every capture of the corpus and equal to tshark.

Only chunks without layer rows are printed this way (frames with repeated headers go the
table way, filter included), so each field has at most its packet-row occurrence(s).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tcpsift.capture._records import NO_LINKTYPE
from tcpsift.capture.presence import bits_of, presence_bits
from tcpsift.display_filter import NEVER, PROTOCOLS, FieldError, fields_of, fold, parse
from tcpsift.tcp import HAS_ANALYSIS, NOT_SHOWN
from tcpsift.tcp import _analysis as K
from tcpsift.textstream.fields import (
    ADDR,
    ALWAYS,
    DEC,
    EPOCH,
    FLAGS_STR,
    HEX4,
    ICMP,
    ICMP6,
    NO_ROW,
    STREAMED,
    TCP,
    TCP_STREAMED,
    UDP,
    V4,
    V6,
)

# a condition: the frame's file has interface ids (frame.interface_id)
IFACE = "iface"
_IP_PROTO = {TCP: 6, UDP: 17, ICMP: 1, ICMP6: 58}
# what the condition's protocol test reads besides ip_proto (IS_TCP, IS_ICMP, ...)
_TRANSPORT = {TCP: "sport", UDP: "sport", ICMP: "icmp_type", ICMP6: "icmp_type"}


@dataclass(frozen=True)
class Term:
    """A field as the arrays give it: `parts` the columns holding its occurrence(s) (two
    for "either side": ip.addr, tcp.port), present when their presence bits are set and
    `cond` holds; `bit` for a TCP flag (a bool of tcp_flags); `analysis` for a TCP analysis
    field ("stream", "value", or "verdict" with `verdict_bits`); `need`/`veto`: presence
    bit names of which one must be set / none may be (instead of the column's rule);
    `offset` is added to the values (ipv6.plen); `sack`: present when the frame's own TCP
    header has SACK edges; `since`: a frame time, measured from the first frame
    ("first") or the previous one ("prev")."""
    name: str
    vtype: str
    parts: tuple[str, ...] = ()
    cond: str = ALWAYS
    bit: int | None = None
    analysis: str = ""
    verdict_bits: int = 0
    need: tuple[str, ...] | None = None
    veto: tuple[str, ...] = ()
    offset: int = 0
    sack: bool = False
    since: str = ""


def _vtype(name: str, fmt: str) -> str:
    if fmt == EPOCH:
        return "time"
    if fmt == FLAGS_STR:
        return "text"
    if name in ("eth.src", "eth.dst"):
        return "ether"
    if name.startswith(("ip.src", "ip.dst")):
        return "ipv4"
    if name.startswith(("ipv6.src", "ipv6.dst")):
        return "ipv6"
    return "uint"


def _terms() -> dict[str, Term]:
    terms = {name: Term(name, _vtype(name, fmt), (column,), cond)
             for name, (column, cond, fmt, *_) in STREAMED.items()
             # the frame times depend on what was printed before: the table path's
             if not column.startswith("frame_time") and fmt in (DEC, HEX4, ADDR, EPOCH,
                                                                FLAGS_STR)}
    ip_len: dict[str, Any] = {"need": ("ip", "ip_hdr"), "veto": ("no_ip_len",)}
    specs: list[tuple[str, str, tuple[str, ...], str, dict[str, Any]]] = [
            ("frame.interface_id", "uint", ("iface",), IFACE, {}),
            ("ip.len", "uint", ("ip_len",), V4, ip_len),
            ("ipv6.plen", "uint", ("ip_len",), V6, {**ip_len, "offset": -40}),
            ("ipv6.nxt", "uint", ("ipv6_nxt",), V6, {"need": ("ip",)}),
            ("ieee8021ad.id", "uint", ("vlan_id",), NO_ROW, {}),
            ("ieee8021ad.tag", "uint", ("vlan_id",), NO_ROW, {}),
            ("tcp.options.sack_perm", "bytes", ("sack_perm",), TCP, {"need": ("sack_perm",)}),
            ("tcp.options.sack_le", "text", (), TCP, {"sack": True}),
            ("tcp.options.sack_re", "text", (), TCP, {"sack": True})]
    for name, vtype, cols, cond, extra in specs:
        terms[name] = Term(name, vtype, cols, cond, **extra)
    terms["frame.time_relative"] = Term("frame.time_relative", "time", since="first")
    terms["frame.time_delta"] = Term("frame.time_delta", "time", since="prev")
    for name in ("ip.flags.df", "ip.flags.mf"):
        terms[name] = Term(name, "bool", (STREAMED[name][0],), V4)
    for name, vtype, cols, cond in [
            ("ip.addr", "ipv4", ("src", "dst"), V4), ("ipv6.addr", "ipv6", ("src", "dst"), V6),
            ("tcp.port", "uint", ("sport", "dport"), TCP),
            ("udp.port", "uint", ("sport", "dport"), UDP),
            ("ip.version4", "uint", ("ip_version",), V4), ("vlan.id", "uint", ("vlan_id",), ALWAYS),
            ("icmp.type", "uint", ("icmp_type",), ICMP), ("icmp.code", "uint", ("icmp_code",), ICMP),
            ("icmpv6.type", "uint", ("icmp_type",), ICMP6),
            ("icmpv6.code", "uint", ("icmp_code",), ICMP6)]:
        terms[name] = Term(name, vtype, cols, cond)
    for n, b in {"fin": 0, "syn": 1, "reset": 2, "push": 3, "ack": 4, "urg": 5, "ece": 6,
                 "cwr": 7, "ae": 8}.items():
        terms[f"tcp.flags.{n}"] = Term(f"tcp.flags.{n}", "bool", ("tcp_flags",), TCP, bit=b)
    terms["tcp.stream"] = Term("tcp.stream", "uint", analysis="stream")
    for name, vtype in _TCP_VALUES.items():
        terms[name] = Term(name, vtype, analysis="value")
    for name, (source, bits) in TCP_STREAMED.items():
        if source == "flag":
            terms[name] = Term(name, "none", analysis="verdict", verdict_bits=bits)
    terms["tcp.analysis.duplicate_ack"] = Term("tcp.analysis.duplicate_ack", "none",
                                               analysis="duplicate_ack")
    return terms


# the TCP analysis numbers (_Chunk.tcp_value); tcp.window_size_scalefactor is not here:
# the table path compares its shift, not the factor tshark compares
_TCP_VALUES = {
    "tcp.seq": "uint", "tcp.ack": "uint", "tcp.nxtseq": "uint", "tcp.window_size": "uint",
    "tcp.time_relative": "time", "tcp.time_delta": "time",
    "tcp.analysis.duplicate_ack_num": "uint", "tcp.analysis.duplicate_ack_frame": "uint",
    "tcp.analysis.acks_frame": "uint", "tcp.analysis.ack_rtt": "time",
    "tcp.analysis.initial_rtt": "time", "tcp.analysis.bytes_in_flight": "uint",
    "tcp.analysis.push_bytes_sent": "uint",
}

TERMS = _terms()


def _lookup(name: str) -> Term:
    term = TERMS.get(PROTOCOLS.get(name, name))
    if term is None:
        raise FieldError(f"{name}: not evaluated on arrays")
    return term


class ArrayFilter:
    """A -Y filter evaluated on a chunk's arrays. `text` is the filter; `needs_tcp` says
    whether the chunk's TCP analysis outputs must be given to `mask`."""

    def __init__(self, text: str, tree):
        self.text, self.tree = text, tree
        terms = fields_of(tree)
        self.needs_tcp = any(t.analysis for t in terms)
        # frame.time_relative, frame.time_delta: mask() needs the run's FrameTimes
        self.needs_times = any(t.since for t in terms)
        # (the frame times past the last chunk masked: its first frame's, its last
        # frame's, its last kept frame's or None)
        self.last_times: tuple[int, int, int | None] | None = None
        # frame.interface_id: mask() needs `iface_known`
        self.needs_iface = any(t.cond == IFACE for t in terms)
        self.addresses = frozenset(value for _, term, op, value in _comparisons(tree)
                                   if term.vtype in ("ipv4", "ipv6", "ether")
                                   and op != "present")

    def address_ids(self) -> AddressIds:
        """What the filter's address literals are in one run's address table."""
        return AddressIds(self.addresses)

    def mask(self, first_frame: int, rec: dict, pkt: dict, ids: AddressIds,
             tcp: dict | None = None, iface_known: np.ndarray | None = None,
             times=None) -> np.ndarray:
        """The rows of this chunk (frames first_frame, first_frame + 1, ...) the filter
        keeps, as a bool array; `ids`: the run's AddressIds, told of the chunk's
        addresses; `tcp`: the chunk's TCP analysis outputs (needs_tcp); `iface_known`:
        per row, whether its file has interface ids (needs_iface; None: none has);
        `times`: the run's FrameTimes before the chunk (needs_times; not advanced here:
        `last_times` says how far)."""
        n = len(rec["offset"])
        chunk = _Chunk(n, first_frame, rec, pkt, tcp, ids.ids, iface_known, times)
        keep = np.ascontiguousarray(fold(self.tree, chunk.atom), bool)
        if self.needs_times and n:
            wts = chunk.frame_times()[0]
            kept = np.flatnonzero(keep)
            self.last_times = (chunk.first_wts, int(wts[-1]),
                               int(wts[kept[-1]]) if len(kept) else None)
        return keep


class AddressIds:
    """Address literals -> the ids of the address table whose text they are (an address
    gets its id when the decoder first meets it, so `learn` is told of each new one)."""

    def __init__(self, texts):
        self.ids: dict[str, list[int]] = {t: [] for t in texts}

    def learn(self, first_id: int, texts: list[str]) -> None:
        """The address texts of ids first_id, first_id + 1, ... (new in this chunk)."""
        if not self.ids:
            return
        for i, text in enumerate(texts):
            ids = self.ids.get(text)
            if ids is not None:
                ids.append(first_id + i)


def _comparisons(node):
    if node[0] == "cmp":
        yield node
    else:
        for n in node[1:]:
            yield from _comparisons(n)


def array_filter(text: str) -> ArrayFilter | None:
    """The filter evaluated on arrays, or None when it names a field the arrays do not
    give (or is no valid filter: the table path then says why)."""
    try:
        return ArrayFilter(text, parse(text, _lookup))
    except FieldError:
        return None


class _Chunk:
    """One chunk's arrays, with what several terms share computed once."""

    def __init__(self, n, first_frame, rec, pkt, tcp, ids, iface_known=None, times=None):
        self.n, self.first_frame, self.rec, self.pkt, self.ids = n, first_frame, rec, pkt, ids
        # (no TCP analysis: no term reads it)
        self.tcp: dict = {k: v[:n] for k, v in tcp.items()} if tcp is not None else {}
        self.bits = pkt["present"]
        self.iface_known, self.times = iface_known, times
        self.first_wts = 0
        self._conds: dict[str, np.ndarray | bool] = {}
        self._shown: np.ndarray | None = None
        self._wts: tuple[np.ndarray, np.ndarray] | None = None

    def frame_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(the time Wireshark gives each frame, the previous frame's), as
        _lines.write_rows (and tcpsift.fields.with_frame_times) take them: the timestamp;
        0 for a packet without one; the previous frame's for a record that is no packet.
        Sets `first_wts`, the capture's first frame's."""
        if self._wts is None:
            started = self.times is not None and self.times.first_ns is not None
            before = self.times.prev_ns if started else None
            has_ts = self.rec["has_ts"][:self.n]
            wts = np.where(has_ts, self.rec["ts_ns"][:self.n], 0).astype(np.int64)
            carried = ~has_ts & (self.rec["linktype"][:self.n] == NO_LINKTYPE)
            if carried.any():
                idx = np.where(carried, -1, np.arange(self.n))
                idx = np.maximum.accumulate(idx)
                wts = np.where(idx >= 0, wts[np.maximum(idx, 0)], 0 if before is None else before)
            first = (self.times.first_ns if started else int(wts[0])) if self.n else 0
            prev = np.empty_like(wts)
            if self.n:
                prev[1:] = wts[:-1]
                prev[0] = before if before is not None else wts[0]
            self.first_wts = first
            self._wts = (wts, prev)
        return self._wts

    def has(self, column: str, term: Term | None = None) -> np.ndarray | bool:
        """Whether each row has a value in the column (True: every row), by the column's
        presence rule or the term's `need` and `veto`."""
        if column == "ts_ns":
            return self.rec["has_ts"]
        need = presence_bits(column) if term is None or term.need is None else \
            bits_of(*term.need)
        present = (self.bits & need) != 0 if need else True
        if term is not None and term.veto:
            present = present & ((self.bits & bits_of(*term.veto)) == 0)
        return present

    def column(self, column: str) -> np.ndarray:
        if column == "frame":
            return np.arange(self.first_frame, self.first_frame + self.n, dtype=np.int64)
        return self.rec[column] if column in self.rec else self.pkt[column]

    def cond(self, cond: str) -> np.ndarray | bool:
        """The condition of STREAMED (and the ICMP ones), as the formatter tests it."""
        if cond == ALWAYS:
            return True
        if cond not in self._conds:
            ok: np.ndarray | bool
            if cond in (V4, V6):
                ok = self.has("ip_version") & (self.pkt["ip_version"] == (4 if cond == V4 else 6))
            elif cond == NO_ROW:
                ok = False
            elif cond == IFACE:
                ok = (self.rec["linktype"] != NO_LINKTYPE) & (
                    self.iface_known[:self.n] if self.iface_known is not None else False)
            else:
                ok = (self.has("ip_proto") & self.has(_TRANSPORT[cond])
                      & (self.pkt["ip_proto"] == _IP_PROTO[cond]))
            self._conds[cond] = ok
        return self._conds[cond]

    def parts(self, term: Term, with_values: bool = True):
        """(present, values) per occurrence (values None unless `with_values`)."""
        if term.analysis == "stream":
            valid = self.tcp["_valid"]
            yield (valid & K.V_BITS["row"]) != 0, self.tcp["stream"]
            return
        if term.analysis == "value":
            yield self.tcp_value(term.name)
            return
        if term.sack:
            yield self.cond(TCP) & (self.pkt["sack_count"] != 0), None
            return
        if term.since:
            wts, prev = self.frame_times()
            yield self.rec["has_ts"][:self.n], wts - (self.first_wts if term.since == "first"
                                                      else prev)
            return
        for column in term.parts:
            present = self.has(column, term) & self.cond(term.cond)
            if not with_values:
                yield present, None
                continue
            values = self.column(column)
            if term.bit is not None:
                values = (values >> term.bit) & 1 != 0
            elif term.vtype == "bool":
                values = values != 0
            elif term.offset:
                values = values.astype(np.int64) + term.offset
            yield present, values

    def shown(self) -> np.ndarray:
        """Rows whose TCP analysis items tshark shows: analysed, HAS_ANALYSIS, not
        NOT_SHOWN."""
        if self._shown is None:
            valid, bits = self.tcp["_valid"], self.tcp["analysis"]
            v = K.V_BITS
            self._shown = (((valid & v["row"]) != 0) & ((valid & v["analysis"]) != 0)
                           & ((bits & (HAS_ANALYSIS | NOT_SHOWN)) == HAS_ANALYSIS))
        return self._shown

    def tcp_value(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(present, values) of a TCP analysis number, as _lines.pyx prints it (put_tcp)."""
        t, v = self.tcp, K.V_BITS
        valid = t["_valid"]
        row = (valid & v["row"]) != 0
        analysed = row & ((valid & v["analysis"]) != 0)
        if name == "tcp.seq":
            rel = row & ((valid & v["seq"]) != 0)
            raw = self.cond(TCP) & self.has("seq")
            return rel | raw, np.where(rel, t["rel_seq"], self.pkt["seq"])
        if name == "tcp.ack":
            rel = analysed & ((valid & v["ack"]) != 0)
            raw = analysed & self.cond(TCP) & self.has("ack")
            return rel | raw, np.where(rel, t["rel_ack"], self.pkt["ack"])
        if name == "tcp.nxtseq":
            return analysed & ((valid & v["seq"]) != 0), t["next_seq"]
        simple = {"tcp.window_size": "window_scaled", "tcp.time_relative": "time_relative_ns",
                  "tcp.time_delta": "time_delta_ns"}
        if name in simple:
            return analysed, t[simple[name]]
        # shown, and a value of 0 is none (`key`: the column whose 0 says so)
        column, key = {
            "tcp.analysis.duplicate_ack_num": ("dup_ack_num", "dup_ack_num"),
            "tcp.analysis.duplicate_ack_frame": ("dup_ack_of_frame", "dup_ack_num"),
            "tcp.analysis.acks_frame": ("acks_frame", "acks_frame"),
            "tcp.analysis.ack_rtt": ("ack_rtt_ns", "acks_frame"),
            "tcp.analysis.initial_rtt": ("initial_rtt_ns", "initial_rtt_ns"),
            "tcp.analysis.bytes_in_flight": ("bytes_in_flight", "bytes_in_flight"),
            "tcp.analysis.push_bytes_sent": ("push_bytes_sent", "bytes_in_flight"),
        }[name]
        present = self.shown() & (t[key] != 0)
        if column == "ack_rtt_ns":
            present &= t[column] != 0
        return present, t[column]

    def verdict(self, term: Term) -> np.ndarray:
        """Presence of a tcp.analysis.* verdict: shown (analysed, HAS_ANALYSIS, not
        NOT_SHOWN) and its bits set (duplicate_ack: a duplicate ACK number)."""
        if term.analysis == "duplicate_ack":
            return self.shown() & (self.tcp["dup_ack_num"] != 0)
        return self.shown() & ((self.tcp["analysis"] & term.verdict_bits) != 0)

    def atom(self, term: Term, op: str, value) -> np.ndarray:
        """tcpsift.fields.filter's rule: == < ... ~= hold when an occurrence does, != when
        one is present and none is equal, present when one is; an absent one holds nothing."""
        if term.analysis in ("verdict", "duplicate_ack"):
            return self.verdict(term)
        present = np.zeros(self.n, bool)
        holds = np.zeros(self.n, bool)
        for has, values in self.parts(term, op != "present"):
            present |= has
            if op != "present":
                holds |= has & self.compare(term, values, "==" if op == "!=" else op, value)
        if op == "present":
            return present
        return present & ~holds if op == "!=" else holds

    def compare(self, term: Term, values: np.ndarray, op: str, value) -> np.ndarray:
        if value is NEVER:      # a negative literal for an unsigned field
            return np.zeros(len(values), bool)
        if term.vtype in ("ipv4", "ipv6", "ether"):
            equal = np.isin(values, self.ids[value])
            return equal if op == "==" else ~equal
        if term.vtype != "bool":
            # every column fits int64; so does the literal, clipped beyond any value
            values = values.astype(np.int64, copy=False)
            value = min(max(value, -(1 << 62)), 1 << 62)
        return {"==": np.equal, "~=": np.not_equal, "<": np.less, ">": np.greater,
                "<=": np.less_equal, ">=": np.greater_equal}[op](values, value)
