"""The display-filter syntax of `-Y` (a subset of Wireshark's): text -> tree.

Polars-free, so that `tcpsift fields -Y tcp` can decide on the fast path before anything
heavy is imported. Two evaluators resolve the tree's field names: the table one
(tcpsift.fields.filter: Polars expressions over a chunk's tables, any field) and the array
one (tcpsift.textstream.select: NumPy over the decoder's arrays, the common fields). Each
passes `parse` its own `lookup` (name -> an object with `name` and `vtype`), which raises
FieldError for a name it does not know; `fold` walks the tree for both.

Tree: ("and", a, b, ...) ("or", a, b, ...) ("not", a) ("cmp", field, op, value), where `field` is
what `lookup` returned, `op` one of == != ~= < > <= >= present, and `value` the literal
as a Python value comparable with the field's typed values (None for present).
"""
from __future__ import annotations

import functools
import ipaddress
import operator
import re
from decimal import Decimal, InvalidOperation


class FieldError(ValueError):
    """An unknown field or an unsupported display filter (usage error, exit 2)."""


# Protocol names usable in -Y: present when this field is present (any occurrence).
# "ip" means an IPv4 header, not any IP header as ip.version would say (ip.version4 is a
# field for filters only).
PROTOCOLS = {"frame": "frame.number", "eth": "eth.src", "vlan": "vlan.id",
             "ieee8021ad": "ieee8021ad.tag", "ip": "ip.version4", "ipv6": "ipv6.src",
             "tcp": "tcp.srcport", "udp": "udp.srcport", "icmp": "icmp.type",
             "icmpv6": "icmpv6.type"}

_TOKEN = re.compile(r"\s*(?:(&&|\|\||==|!=|~=|<=|>=|<|>|!|\(|\))|([A-Za-z0-9_.:/\-]+)|(\S))")
_OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "~=": "~=", "any_ne": "~=",
        "<": "<", "lt": "<", ">": ">", "gt": ">", "<=": "<=", "le": "<=", ">=": ">=",
        "ge": ">="}
_AND, _OR, _NOT = {"and", "&&"}, {"or", "||"}, {"not", "!"}
# Parentheses nested deeper are refused (a FieldError, not a RecursionError).
MAX_DEPTH = 100


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        # text is right-stripped, so a non-space character follows and (\S) at least matches
        assert m is not None
        if m.group(3):
            raise FieldError(f"display filter: unexpected {m.group(3)!r} at {m.start(3) + 1}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, lookup):
        self.toks, self.i, self.lookup = _tokens(text), 0, lookup
        self.depth = 0

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

    # A chain of `or`s (`and`s) is one node of all its terms, and a run of `not`s one
    # `not` or none, so that a long filter is a shallow tree (tshark takes 500 `or`
    # terms); only parentheses nest, up to MAX_DEPTH.
    def or_(self):
        terms = [self.and_()]
        while self.peek() in _OR:
            self.take()
            terms.append(self.and_())
        return terms[0] if len(terms) == 1 else ("or", *terms)

    def and_(self):
        terms = [self.not_()]
        while self.peek() in _AND:
            self.take()
            terms.append(self.not_())
        return terms[0] if len(terms) == 1 else ("and", *terms)

    def not_(self):
        nots = 0
        while self.peek() in _NOT:
            self.take()
            nots += 1
        node = self.primary()
        return ("not", node) if nots % 2 else node

    def primary(self):
        tok = self.take()
        if tok == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FieldError(f"display filter: parentheses nested more than {MAX_DEPTH} deep")
            node = self.or_()
            if self.take() != ")":
                raise FieldError("display filter: missing )")
            self.depth -= 1
            return node
        field = self.lookup(tok)
        if self.peek() in _OPS:
            op = _OPS[self.take()]
            return ("cmp", field, op, value(field, op, self.take()))
        return ("cmp", field, "present", None)


def parse(text: str, lookup):
    """The tree of `text`, its field names resolved by `lookup`; FieldError if invalid."""
    return _Parser(text, lookup).parse()


def fold(node, atom):
    """Evaluate a tree: `atom(field, op, value)` for each comparison, combined with & | ~
    (Polars Series and NumPy boolean arrays alike)."""
    kind = node[0]
    if kind in ("and", "or"):
        combine = operator.and_ if kind == "and" else operator.or_
        return functools.reduce(combine, (fold(n, atom) for n in node[1:]))
    if kind == "not":
        return ~fold(node[1], atom)
    return atom(*node[1:])


def fields_of(node) -> list:
    """The fields a tree compares, in order."""
    if node[0] == "cmp":
        return [node[1]]
    return [f for n in node[1:] for f in fields_of(n)]


# The largest value of each unsigned field (its Wireshark type: FT_UINT8, 16 or 32); a
# literal above it is refused as tshark refuses it. Unlisted uint fields are 32-bit.
_U8 = ("ip.version", "ip.hdr_len", "ip.ttl", "ip.proto", "ipv6.hlim", "ipv6.nxt",
       "tcp.hdr_len", "tcp.options.wscale.shift", "icmp.type", "icmp.code", "icmpv6.type",
       "icmpv6.code")
_U16 = ("eth.type", "vlan.id", "ieee8021ad.id", "ip.len", "ip.id", "ip.frag_offset",
        "ipv6.plen", "tcp.srcport", "tcp.dstport", "tcp.port", "tcp.flags",
        "tcp.window_size_value", "tcp.options.mss_val", "udp.srcport", "udp.dstport",
        "udp.port", "udp.length")
UINT_MAX = {**{n: 0xFF for n in _U8}, **{n: 0xFFFF for n in _U16}}


class _Never:
    """The value of a negative literal for an unsigned field (tshark 4.0 takes `tcp.seq
    == -1`): no occurrence equals it, differs from it or is ordered with it, so == ~= <
    > <= >= never hold, and != (no occurrence equal) holds wherever the field is
    present."""

    def __repr__(self):
        return "NEVER"


NEVER = _Never()


_MAC = re.compile(r"[0-9a-f]{2}([:.\-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}")


def value(field, op: str, text: str):
    """The literal as a Python value comparable with the field's typed values: ints
    (times in ns), bools, addresses as tcpsift prints them."""
    vtype = field.vtype
    if vtype in ("none", "text"):
        raise FieldError(f"display filter: {field.name} can only be tested for presence")
    if vtype in ("ipv4", "ipv6", "ether", "bytes", "bool") and op not in ("==", "!=", "~="):
        raise FieldError(f"display filter: {field.name} cannot be compared with {op}")
    try:
        if vtype == "int" and text.startswith("-"):
            return _in_range(-int(text[1:], 10), text, field)
        if vtype == "uint":
            return _unsigned(text, field)
        if vtype == "int":
            if text.lower().startswith("0x"):
                return _in_range(int(text, 16), text, field)
            return _in_range(int(text, 8) if len(text) > 1 and text.startswith("0")
                             else int(text, 10), text, field)
        if vtype == "bool":
            return {"1": True, "0": False, "true": True, "false": False}[text.lower()]
        if vtype == "time":
            return _in_range(int(Decimal(text) * 1_000_000_000), text, field)
        if vtype == "ipv4":
            return str(ipaddress.IPv4Address(text))
        if vtype == "ipv6":
            return ipaddress.IPv6Address(text).compressed   # RFC 5952, as tcpsift prints
        if vtype == "ether" and _MAC.fullmatch(text.lower()):
            digits = re.sub(r"[:.\-]", "", text.lower())
            return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    except FieldError:
        raise
    except (ValueError, KeyError, InvalidOperation, OverflowError):   # (inf, nan)
        pass
    raise FieldError(f"display filter: {text!r} is not a valid value for {field.name}")


def _integer(text: str) -> int:
    """A literal integer as tshark reads one: 0x hex, leading 0 octal, else decimal."""
    if text.lower().startswith("0x"):
        return int(text, 16)
    return int(text, 8) if len(text) > 1 and text.startswith("0") else int(text, 10)


def _unsigned(text: str, field):
    """The value of a literal for an unsigned field, as tshark 4.0 reads it: above the
    field's maximum, refused; negative (the minus applies to what follows it, which must
    be in range too), NEVER, or 0 for -0."""
    digits = text[1:] if text.startswith("-") else text
    if digits.startswith(("-", "+")):
        raise ValueError(text)
    v = _integer(digits)
    limit = UINT_MAX.get(field.name, 0xFFFFFFFF)
    if v > limit:
        raise FieldError(f"display filter: \"{digits}\" too big for {field.name}, "
                         f"maximum {limit}")
    return NEVER if text.startswith("-") and v else v


def _in_range(v: int, text: str, field) -> int:
    """A number the evaluators can hold (int64: Polars literals, NumPy arrays); beyond it
    no field's value lies, and tshark too refuses a literal out of its field's range."""
    if not -(1 << 63) <= v < (1 << 63):
        raise FieldError(f"display filter: {text!r} is out of range for {field.name}")
    return v
