"""A small subset of Wireshark display filters (-Y), evaluated on the packet table.

Supported: protocol names (frame eth vlan ip ipv6 tcp udp icmp icmpv6), any field of
`tcpsift.fields.FIELDS` alone (present) or compared with == != ~= < > <= >= (also
eq ne lt gt le ge), and / &&, or / ||, not / !, parentheses. The TCP analysis fields
(tcp.stream, tcp.analysis.*, ...) are computed only when the filter names one; the
tcp.analysis.* flags can only be tested for presence, as in Wireshark.

Semantics follow tshark 4.0 for fields that occur several times in a frame (tunnels,
ICMP-quoted headers): `==`, `<`, ... and `~=` hold when ANY occurrence matches; `!=` holds
when the field is present and ALL occurrences differ. A comparison on an absent field is
false. `tcp.port`, `udp.port`, `ip.addr`, `ipv6.addr` have two occurrences per header
(source and destination), which gives "either side".
"""
from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation

import polars as pl

from . import (
    _HIDDEN,
    FIELDS,
    PROTOCOLS,
    Field,
    FieldError,
    in_kinds,
    layers_with_tcp,
    prepare_layers,
    rows_of,
    with_frame_times,
    with_tcp,
)

_TOKEN = re.compile(r"\s*(?:(&&|\|\||==|!=|~=|<=|>=|<|>|!|\(|\))|([A-Za-z0-9_.:/\-]+)|(\S))")
_OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "~=": "~=", "any_ne": "~=",
        "<": "<", "lt": "<", ">": ">", "gt": ">", "<=": "<=", "le": "<=", ">=": ">=",
        "ge": ">="}
_AND, _OR, _NOT = {"and", "&&"}, {"or", "||"}, {"not", "!"}


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m.group(3):
            raise FieldError(f"display filter: unexpected {m.group(3)!r} at {m.start(3) + 1}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


# --- parsing: AST of tuples ("and", a, b) ("or", a, b) ("not", a) ("cmp", field, op, value)

class _Parser:
    def __init__(self, text: str):
        self.toks, self.i = _tokens(text), 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self):
        tok = self.peek()
        if tok is None:
            raise FieldError("display filter: unexpected end")
        self.i += 1
        return tok

    def parse(self):
        if not self.toks:
            raise FieldError("display filter: empty")
        node = self.or_()
        if self.peek() is not None:
            raise FieldError(f"display filter: unexpected {self.peek()!r}")
        return node

    def or_(self):
        node = self.and_()
        while self.peek() in _OR:
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self):
        node = self.not_()
        while self.peek() in _AND:
            self.take()
            node = ("and", node, self.not_())
        return node

    def not_(self):
        if self.peek() in _NOT:
            self.take()
            return ("not", self.not_())
        return self.primary()

    def primary(self):
        tok = self.take()
        if tok == "(":
            node = self.or_()
            if self.take() != ")":
                raise FieldError("display filter: missing )")
            return node
        field = _field(tok)
        if self.peek() in _OPS:
            op = _OPS[self.take()]
            return ("cmp", field, op, _value(field, op, self.take()))
        return ("cmp", field, "present", None)


# Which frames are displayed is what the filter decides.
_NOT_IN_FILTERS = {"frame.time_delta_displayed"}
_MAC = re.compile(r"[0-9a-f]{2}([:.\-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}")


def _field(name: str) -> Field:
    if name in PROTOCOLS:
        return FIELDS[PROTOCOLS[name]]
    if name in _NOT_IN_FILTERS:
        raise FieldError(f"display filter: {name} cannot be used in a filter")
    if name in FIELDS and name not in _HIDDEN:
        return FIELDS[name]
    raise FieldError(f"display filter: unsupported field or protocol {name!r}")


def _value(field: Field, op: str, text: str):
    """The literal as a Python value comparable with the field's typed column."""
    vtype = field.vtype
    if vtype in ("none", "text"):
        raise FieldError(f"display filter: {field.name} can only be tested for presence")
    if vtype in ("ipv4", "ipv6", "ether", "bytes", "bool") and op not in ("==", "!=", "~="):
        raise FieldError(f"display filter: {field.name} cannot be compared with {op}")
    try:
        if vtype == "int" and text.startswith("-"):
            return -int(text[1:], 10)
        if vtype in ("uint", "int"):
            if text.lower().startswith("0x"):
                return int(text, 16)
            return int(text, 8) if len(text) > 1 and text.startswith("0") else int(text, 10)
        if vtype == "bool":
            return {"1": True, "0": False, "true": True, "false": False}[text.lower()]
        if vtype == "time":
            return int(Decimal(text) * 1_000_000_000)
        if vtype == "ipv4":
            return str(ipaddress.IPv4Address(text))
        if vtype == "ipv6":
            return ipaddress.IPv6Address(text).compressed   # RFC 5952, as tcpsift prints
        if vtype == "ether" and _MAC.fullmatch(text.lower()):
            digits = re.sub(r"[:.\-]", "", text.lower())
            return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    except (ValueError, KeyError, InvalidOperation):
        pass
    raise FieldError(f"display filter: {text!r} is not a valid value for {field.name}")


def _test(parts: tuple[pl.Expr, ...], op: str, value) -> tuple[pl.Expr, pl.Expr]:
    """(present, holds) for one header: any part non-null / the comparison per op."""
    present = pl.any_horizontal([p.is_not_null() for p in parts])
    if op == "present":
        return present, present
    lit = pl.lit(value)
    cmp = {"==": lambda p: p == lit, "!=": lambda p: p == lit, "~=": lambda p: p != lit,
           "<": lambda p: p < lit, ">": lambda p: p > lit, "<=": lambda p: p <= lit,
           ">=": lambda p: p >= lit}[op]
    holds = pl.any_horizontal([cmp(p).fill_null(False) for p in parts])
    return present, holds


def _atom(packets, layers, field: Field, op: str, value) -> pl.Series:
    present, holds = _test(field.packet, op, value)
    # "frame" makes literal-only expressions broadcast to the table's height
    res = packets.select("frame", p=present.fill_null(False), h=holds.fill_null(False))
    if field.layer_kinds and layers is not None and layers.height:
        lp, lh = _test(field.layer, op, value)
        per_frame = (layers.filter(in_kinds(field.layer_kinds))
                     .group_by("frame").agg(p=lp.any(), h=(lh & lp).any())
                     .filter(pl.col("p")).sort("frame"))
        row, found = rows_of(packets, per_frame["frame"])
        per_frame, row = per_frame.filter(found), row.filter(found)
        if row.len():
            res = res.with_columns(p=res["p"].scatter(row, per_frame["p"]),
                                   h=res["h"].scatter(row, per_frame["h"]))
    if op == "!=":   # present and no occurrence equal
        return res["p"] & ~res["h"]
    return res["h"]


def _uses(node, need: str) -> bool:
    """Whether a field of the tree has the Field flag `need` (needs_tcp, needs_times)."""
    if node[0] == "cmp":
        return getattr(node[1], need)
    return any(_uses(n, need) for n in node[1:])


def compile_filter(text: str):
    """Parse now (errors early, before any file is read); evaluate later on a Capture."""
    tree = _Parser(text).parse()

    def evaluate(packets, layers, node) -> pl.Series:
        kind = node[0]
        if kind == "and":
            return evaluate(packets, layers, node[1]) & evaluate(packets, layers, node[2])
        if kind == "or":
            return evaluate(packets, layers, node[1]) | evaluate(packets, layers, node[2])
        if kind == "not":
            return ~evaluate(packets, layers, node[1])
        return _atom(packets, layers, *node[1:])

    needs_tcp = _uses(tree, "needs_tcp")
    needs_times = _uses(tree, "needs_times")

    def mask(cap) -> pl.Series:
        layers = getattr(cap, "layers", None)
        if layers is not None:
            layers = prepare_layers(layers)
            if needs_tcp:
                layers = layers_with_tcp(cap, layers)
        # the TCP analysis runs only when the filter names one of its fields
        packets = with_tcp(cap) if needs_tcp else cap.packets
        if needs_times:
            packets = with_frame_times(packets, getattr(cap, "frame_times", None))
        return evaluate(packets, layers, tree)

    mask.needs_tcp = needs_tcp
    mask.needs_times = needs_times
    return mask
