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

import polars as pl

from tcpsift.display_filter import NEVER, PROTOCOLS, fold, parse

from . import (
    _HIDDEN,
    FIELDS,
    Field,
    FieldError,
    in_kinds,
    layers_with_tcp,
    prepare_layers,
    rows_of,
    with_frame_times,
    with_tcp,
)

# Which frames are displayed is what the filter decides.
_NOT_IN_FILTERS = {"frame.time_delta_displayed"}


def _field(name: str) -> Field:
    if name in PROTOCOLS:
        return FIELDS[PROTOCOLS[name]]
    if name in _NOT_IN_FILTERS:
        raise FieldError(f"display filter: {name} cannot be used in a filter")
    if name in FIELDS and name not in _HIDDEN:
        return FIELDS[name]
    raise FieldError(f"display filter: unsupported field or protocol {name!r}")


def _test(parts: tuple[pl.Expr, ...], op: str, value) -> tuple[pl.Expr, pl.Expr]:
    """(present, holds) for one header: any part non-null / the comparison per op."""
    present = pl.any_horizontal([p.is_not_null() for p in parts])
    if op == "present":
        return present, present
    if value is NEVER:      # a negative literal for an unsigned field
        return present, pl.lit(False)
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
        # a frame with headers of the field's kinds: they decide, as in fields.table()
        per_frame = (layers.filter(in_kinds(field.layer_kinds))
                     .group_by("frame").agg(p=lp.any(), h=(lh & lp).any())
                     .sort("frame"))
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


class CompiledFilter:
    """A filter parsed for tables: called on a Capture (or what has its tables), the row
    mask; `text` the filter's text, `needs_tcp` / `needs_times` whether it reads the TCP
    analysis / the frame times."""

    def __init__(self, text: str):
        self.text = text
        self.tree = parse(text, _field)
        self.needs_tcp: bool = _uses(self.tree, "needs_tcp")
        self.needs_times: bool = _uses(self.tree, "needs_times")

    def __call__(self, cap) -> pl.Series:
        layers = getattr(cap, "layers", None)
        if layers is not None:
            layers = prepare_layers(layers)
            if self.needs_tcp:
                layers = layers_with_tcp(cap, layers)
        # the TCP analysis runs only when the filter names one of its fields
        packets = with_tcp(cap) if self.needs_tcp else cap.packets
        if self.needs_times:
            packets = with_frame_times(packets, getattr(cap, "frame_times", None))
        return fold(self.tree, lambda *term: _atom(packets, layers, *term))


def compile_filter(text: str) -> CompiledFilter:
    """Parse now (errors early, before any file is read); evaluate later on a Capture."""
    return CompiledFilter(text)
