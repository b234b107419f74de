"""Which frames of a chunk a `-Y` filter keeps, from the decoder's arrays (NumPy, no tables).

The common filters (protocols, addresses, ports, TCP flags, numeric header fields,
tcp.stream, the tcp.analysis.* verdicts, with and/or/not) are evaluated here on a chunk's
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

import numpy as np

from tcpsift.capture.presence import presence_bits
from tcpsift.display_filter import NEVER, PROTOCOLS, FieldError, fields_of, fold, parse
from tcpsift.tcp import HAS_ANALYSIS, NOT_SHOWN
from tcpsift.tcp import _analysis as K
from tcpsift.textstream.fields import (
    ALWAYS,
    EPOCH,
    FLAGS_STR,
    STREAMED,
    TCP,
    TCP_STREAMED,
    UDP,
    V4,
    V6,
)

ICMP, ICMP6 = "icmp", "icmpv6"
_IP_PROTO = {TCP: 6, UDP: 17, ICMP: 1, ICMP6: 58}
# what the condition's protocol test reads besides ip_proto (IS_TCP, IS_ICMP, ...)
_TRANSPORT = {TCP: "sport", UDP: "sport", ICMP: "icmp_type", ICMP6: "icmp_type"}


@dataclass(frozen=True)
class Term:
    """A field as the arrays give it: `parts` the columns holding its occurrence(s) (two
    for "either side": ip.addr, tcp.port), present when their presence bits are set and
    `cond` holds; `bit` for a TCP flag (a bool of tcp_flags); `analysis` for a TCP analysis
    field ("stream", or "verdict" with `verdict_bits`)."""
    name: str
    vtype: str
    parts: tuple[str, ...] = ()
    cond: str = ALWAYS
    bit: int | None = None
    analysis: str = ""
    verdict_bits: int = 0


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
             for name, (column, cond, fmt) in STREAMED.items()
             # the frame times depend on what was printed before: the table path's
             if not column.startswith("frame_time")}
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
    for name, (source, bits) in TCP_STREAMED.items():
        if source == "flag":
            terms[name] = Term(name, "none", analysis="verdict", verdict_bits=bits)
    terms["tcp.analysis.duplicate_ack"] = Term("tcp.analysis.duplicate_ack", "none",
                                               analysis="duplicate_ack")
    return terms


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
        self.needs_times = False
        self.addresses = frozenset(value for _, term, op, value in _comparisons(tree)
                                   if term.vtype in ("ipv4", "ipv6", "ether")
                                   and op != "present")

    def address_ids(self) -> AddressIds:
        """What the filter's address literals are in one run's address table."""
        return AddressIds(self.addresses)

    def mask(self, first_frame: int, rec: dict, pkt: dict, ids: AddressIds,
             tcp: dict | None = None) -> np.ndarray:
        """The rows of this chunk (frames first_frame, first_frame + 1, ...) the filter
        keeps, as a bool array; `ids`: the run's AddressIds, told of the chunk's
        addresses; `tcp`: the chunk's TCP analysis outputs (needs_tcp)."""
        n = len(rec["offset"])
        chunk = _Chunk(n, first_frame, rec, pkt, tcp, ids.ids)
        return np.ascontiguousarray(fold(self.tree, chunk.atom), bool)


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

    def __init__(self, n, first_frame, rec, pkt, tcp, ids):
        self.n, self.first_frame, self.rec, self.pkt, self.ids = n, first_frame, rec, pkt, ids
        self.tcp = {k: v[:n] for k, v in tcp.items()} if tcp is not None else None
        self.bits = pkt["present"]
        self._conds: dict[str, np.ndarray] = {}

    def has(self, column: str) -> np.ndarray | bool:
        """Whether each row has a value in the column (True: every row)."""
        if column == "ts_ns":
            return self.rec["has_ts"]
        need = presence_bits(column)
        return (self.bits & need) != 0 if need else True

    def column(self, column: str) -> np.ndarray:
        if column == "frame":
            return np.arange(self.first_frame, self.first_frame + self.n, dtype=np.int64)
        return self.rec[column] if column in self.rec else self.pkt[column]

    def cond(self, cond: str) -> np.ndarray | bool:
        """The condition of STREAMED (and the ICMP ones), as the formatter tests it."""
        if cond == ALWAYS:
            return True
        if cond not in self._conds:
            if cond in (V4, V6):
                ok = self.has("ip_version") & (self.pkt["ip_version"] == (4 if cond == V4 else 6))
            else:
                ok = (self.has("ip_proto") & self.has(_TRANSPORT[cond])
                      & (self.pkt["ip_proto"] == _IP_PROTO[cond]))
            self._conds[cond] = ok
        return self._conds[cond]

    def parts(self, term: Term):
        """(present, values) per occurrence."""
        if term.analysis == "stream":
            valid = self.tcp["_valid"]
            yield (valid & K.V_BITS["row"]) != 0, self.tcp["stream"]
            return
        for column in term.parts:
            present = self.has(column) & self.cond(term.cond)
            values = self.column(column)
            if term.bit is not None:
                values = (values >> term.bit) & 1 != 0
            yield present, values

    def verdict(self, term: Term) -> np.ndarray:
        """Presence of a tcp.analysis.* verdict: shown (analysed, HAS_ANALYSIS, not
        NOT_SHOWN) and its bits set (duplicate_ack: a duplicate ACK number)."""
        valid, bits = self.tcp["_valid"], self.tcp["analysis"]
        v = K.V_BITS
        shown = (((valid & v["row"]) != 0) & ((valid & v["analysis"]) != 0)
                 & ((bits & (HAS_ANALYSIS | NOT_SHOWN)) == HAS_ANALYSIS))
        if term.analysis == "duplicate_ack":
            return shown & (self.tcp["dup_ack_num"] != 0)
        return shown & ((bits & term.verdict_bits) != 0)

    def atom(self, term: Term, op: str, value) -> np.ndarray:
        """tcpsift.fields.filter's rule: == < ... ~= hold when an occurrence does, != when
        one is present and none is equal, present when one is; an absent one holds nothing."""
        if term.analysis in ("verdict", "duplicate_ack"):
            return self.verdict(term)
        present = np.zeros(self.n, bool)
        holds = np.zeros(self.n, bool)
        for has, values in self.parts(term):
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
