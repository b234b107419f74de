"""Assemble decoded arrays into the Polars packet and layer tables.

The decoder's arrays enter Polars without a copy; one `select` then applies each
column's presence mask (null where the layer is absent), its dtype and, for the
dictionary-encoded columns, the dictionary. Polars evaluates the expressions in
parallel; nothing here runs per row in Python.
"""
from __future__ import annotations

import functools
from typing import cast

import numpy as np
import polars as pl

from tcpsift import schema
from tcpsift.capture._arrow import UInt32Lists
from tcpsift.capture._records import NO_LINKTYPE
from tcpsift.capture.presence import COLUMN_PRESENCE, bits_of
from tcpsift.decode._decode import PRESENCE

FLAG_LETTERS = "FSRPAUECN"
# tcp_flags value (9 bits) -> letters, e.g. 0x012 -> "SA"
FLAG_TEXT = ["".join(ch for bit, ch in enumerate(FLAG_LETTERS) if v >> bit & 1) for v in range(512)]

C = pl.col


def _has(*names: str) -> pl.Expr:
    return (C("present") & bits_of(*names)) != 0


def _lookup(words, dtype, codes: pl.Expr) -> pl.Expr:
    """Dictionary-encode: codes index into `words` (a Categorical or Enum dictionary:
    texts, or a Series of that dtype already)."""
    if not isinstance(words, pl.Series):
        words = pl.Series(list(words), dtype=dtype)
    return pl.lit(words).gather(codes)


@functools.cache
def _packet_types() -> dict:
    return schema.polars_schema()


@functools.cache
def _fixed_dictionaries() -> dict:
    """The dictionaries of the columns whose words never change, as Series of their
    column's dtype: built once, not for every chunk."""
    types = _packet_types()
    words = {"status": schema.DECODE_STATUS, "encap": schema.ENCAPSULATIONS,
             "flags": FLAG_TEXT}
    return {name: pl.Series(list(w), dtype=types[name]) for name, w in words.items()}


class AddressWords:
    """The address dictionary's texts as one Categorical Series, grown as the decoder
    meets new addresses: a chunk can be encoded as soon as it is decoded, since every
    address id in it is known by then."""

    def __init__(self):
        self.series = pl.Series("words", [], dtype=pl.Categorical)

    def add(self, texts: list[str]):
        if texts:
            new = pl.Series("words", texts, dtype=pl.Categorical)
            self.series = pl.concat([self.series, new], rechunk=True)


# Presence of each packet column: the presence bits of COLUMN_PRESENCE (present when
# any is set), or an expression. Columns not listed are always present.
PACKET_MASKS = {
    **COLUMN_PRESENCE,
    "ts_ns": C("has_ts"), "iface": C("linktype") != NO_LINKTYPE,
    "linktype": C("linktype") != NO_LINKTYPE,
    "ip_len": _has("ip") | (_has("ip_hdr") & ~_has("no_ip_len")),
    "ipv6_nxt": _has("ip") & (C("ip_version") == 6),
}


# A column null in every row of a chunk is this mask: the column is a constant then,
# which Polars keeps as one value until something needs the values (header-only
# captures have no VLAN, tunnel, MSS, UDP or ICMP fields at all).
NEVER = object()
# False: every column is an array of its own (for the test that holds both ways equal)
CONSTANT_COLUMNS = True


def _masks_for(present: np.ndarray, rec: dict, pkt: dict) -> dict:
    """PACKET_MASKS as expressions, without the ones that hold for every row (an
    unmasked column of the right dtype enters the table without a copy), and NEVER for
    the ones that hold for no row."""
    every = int(np.bitwise_and.reduce(present)) if len(present) else 0
    some = int(np.bitwise_or.reduce(present)) if len(present) else 0
    if not CONSTANT_COLUMNS:
        some = -1
    known: dict[str, object] = {"ts_ns": bool(rec["has_ts"].all()),
                                "iface": bool((rec["linktype"] != NO_LINKTYPE).all())}
    known["linktype"] = known["iface"]
    known["ip_len"] = bool(every & PRESENCE["ip"])
    if CONSTANT_COLUMNS and (not some & PRESENCE["ip"] or not (pkt["ip_version"] == 6).any()):
        known["ipv6_nxt"] = NEVER
    out = {}
    for name, mask in PACKET_MASKS.items():
        if isinstance(mask, tuple):
            if any(every & PRESENCE[bit] for bit in mask):
                continue
            out[name] = _has(*mask) if any(some & PRESENCE[bit] for bit in mask) else NEVER
        elif known.get(name) is NEVER:
            out[name] = NEVER
        elif not known.get(name, False):
            out[name] = mask
    return out


# Columns that often hold one value in every row of a chunk (one interface and link
# type, no tunnel or VLAN, one IP version, no fragments): such a column is a constant
# too, so its array is freed instead of being kept or copied.
CONSTANT_CANDIDATES = ("iface", "linktype", "status", "encap", "vlan_depth", "ip_version",
                       "ip_hdr_len", "frag_offset", "eth_type")


def _constants(raw: dict, masks: dict) -> dict:
    """CONSTANT_CANDIDATES present in every row with one value -> that value."""
    out = {}
    for name in CONSTANT_CANDIDATES if CONSTANT_COLUMNS else ():
        values = raw[name]
        if name not in masks and len(values) and values.min() == values.max():
            out[name] = int(values[0])
    return out


def _column_expr(c: schema.Column, masks: dict, dictionaries: dict, polars_types: dict,
                 constants: dict = {}) -> pl.Expr:   # noqa: B006 (read only)
    if masks.get(c.name, True) is NEVER:
        return pl.lit(None, dtype=polars_types[c.name]).alias(c.name)
    if c.name in constants:
        value = constants[c.name]
        if c.name in dictionaries:
            value = dictionaries[c.name][0][value]
        return pl.lit(value, dtype=polars_types[c.name]).alias(c.name)
    base = C(c.name)
    if c.name in dictionaries:
        words, codes = dictionaries[c.name]
        if c.name in masks:
            codes = pl.when(masks[c.name]).then(codes)
        return _lookup(words, polars_types[c.name], codes).alias(c.name)
    if c.name in masks:
        base = pl.when(masks[c.name]).then(base)
    return base.cast(polars_types[c.name]).alias(c.name)


def _sack_lists(sack_count: np.ndarray, edges: np.ndarray) -> pl.Series:
    """SACK edges as a List column: null where the frame has none. The offsets and the
    validity are built in one pass and handed over through the Arrow C data interface
    (see _arrow.pyx): ~10x faster than building the lists with Polars expressions."""
    lists = UInt32Lists(np.ascontiguousarray(sack_count, dtype=np.uint8),
                        np.ascontiguousarray(edges, dtype=np.uint32))
    return pl.Series(lists).alias("sack_blocks")


# The decoder's address ids, IP and MAC alike, are the codes of one dictionary.
ADDRESS_COLUMNS = ("src", "dst", "outer_src", "outer_dst", "eth_src", "eth_dst")
# The columns packet_table takes from the record arrays and the frame numbering alone:
# a table of these needs no decoding.
RECORD_COLUMNS = frozenset({"frame", "file_id", "file_frame", "file_offset", "ts_ns", "time",
                            "cap_len", "len", "iface", "linktype"})


def packet_table(rec: dict, pkt: dict, sack_edges: np.ndarray, frame: np.ndarray,
                 file_id: int | np.ndarray, file_frame: np.ndarray | None,
                 address_texts: pl.Series,
                 columns=None) -> pl.DataFrame:
    """The packet table from record and decoder arrays (all of equal length), with the
    address columns encoded by `address_texts` (AddressWords.series: every address id
    of the chunk is known when it is built). All the rows are of file `file_id` (or,
    an array, each row of its own); `file_frame` None means the frame numbers in the
    file are `frame` (the first file).

    `columns` limits the table to those columns (in schema order): a consumer that
    needs a few columns of a large capture does not pay for the others."""
    raw = {k: v for k, v in pkt.items() if k not in ("sack_count",)}
    raw.update({
        "frame": frame, "file_frame": frame if file_frame is None else file_frame,
        "file_offset": rec["offset"].view(np.uint64), "ts_ns": rec["ts_ns"],
        "has_ts": rec["has_ts"], "cap_len": rec["cap_len"], "len": rec["len"],
        "iface": rec["iface"], "linktype": rec["linktype"],
    })
    per_row_files = isinstance(file_id, np.ndarray)
    if per_row_files or not CONSTANT_COLUMNS:
        raw["file_id"] = file_id.astype(np.uint16) if isinstance(file_id, np.ndarray) else \
            np.full(len(frame), file_id, np.uint16)
    df = pl.DataFrame(raw)
    fixed = _fixed_dictionaries()
    dictionaries = {
        "status": (fixed["status"], C("status")),
        "encap": (fixed["encap"], C("encap")),
        "flags": (fixed["flags"], C("tcp_flags") & 0x1FF),
    }
    for name in ADDRESS_COLUMNS:
        dictionaries[name] = (address_texts, C(name))
    polars_types = _packet_types()
    masks = _masks_for(pkt["present"], rec, pkt)
    constants = _constants(raw, masks)
    exprs = []
    wanted = schema.PACKET_COLUMNS if columns is None else [
        c for c in schema.PACKET_COLUMNS if c.name in set(columns)]
    for c in wanted:
        if c.name == "sack_perm" and masks.get(c.name, True) is not NEVER:
            value = _has("sack_perm")
            exprs.append((pl.when(masks["sack_perm"]).then(value) if "sack_perm" in masks
                          else value).alias(c.name))
        elif c.name == "file_id" and CONSTANT_COLUMNS and not per_row_files:
            exprs.append(pl.lit(file_id, dtype=polars_types[c.name]).alias(c.name))
        elif c.name == "time":      # a view of ts_ns: a cast that shares its buffer
            ts = _column_expr(schema.PACKET_COLUMN["ts_ns"], masks, dictionaries, polars_types)
            exprs.append(ts.cast(polars_types[c.name]).alias(c.name))
        elif c.name == "sack_blocks":
            exprs.append(pl.lit(None, dtype=polars_types[c.name]).alias(c.name)
                         if not len(sack_edges) and CONSTANT_COLUMNS else
                         pl.lit(_sack_lists(pkt["sack_count"], sack_edges)).alias(c.name))
        else:
            exprs.append(_column_expr(c, masks, dictionaries, polars_types, constants))
    return df.select(exprs)


def layer_table(layers: np.ndarray, frame: np.ndarray, address_texts: pl.Series,
                file_id: int | np.ndarray = 0) -> pl.DataFrame:
    """The layer table from the decoder's layer rows (row = index into the merged arrays);
    `frame` and `file_id` (an array, or one file for all) are per packet-table row."""
    names = cast("tuple[str, ...]", layers.dtype.names)     # a structured array: never None
    raw = {name: np.ascontiguousarray(layers[name]) for name in names}
    raw["frame"] = frame[layers["row"]] if len(layers) else np.empty(0, np.uint32)
    raw["file_id"] = (file_id[layers["row"]] if isinstance(file_id, np.ndarray)
                      else np.full(len(layers), file_id)).astype(np.uint16)
    df = pl.DataFrame(raw)
    kind = C("kind")
    is_ip = (kind == 1) | (kind == 2)
    is_l4 = (kind == 3) | (kind == 4)
    is_icmp = (kind == 5) | (kind == 6)
    is_eth = kind == schema.LAYER_KINDS.index("eth")
    tcp_hdr = (kind == 3) & (C("has_tcp_hdr") == 1)
    masks = {
        "vlan_id": kind == 0, "tpid": kind == 0, "src": is_ip, "dst": is_ip,
        "ip_hdr_len": is_ip, "ip_len": is_ip, "ip_id": kind == 1, "ttl": is_ip,
        "ip_proto": is_ip, "ipv6_nxt": kind == 2, "dont_fragment": kind == 1,
        "more_fragments": kind == 1, "frag_offset": kind == 1,
        "sport": is_l4 & (C("has_ports") == 1), "dport": is_l4 & (C("has_ports") == 1),
        "udp_len": kind == 4, "seq": (kind == 3) & (C("has_seq") == 1),
        "ack": tcp_hdr, "tcp_flags": tcp_hdr, "tcp_hdr_len": tcp_hdr, "window": tcp_hdr,
        "icmp_type": is_icmp, "icmp_code": is_icmp & (C("has_icmp_code") == 1),
        "eth_src": is_eth, "eth_dst": is_eth, "eth_type": is_eth & (C("eth_type") != 0),
    }
    # (an eth row's MAC ids are in the src/dst fields of the decoder's rows)
    renamed = {"ip_proto": "proto", "dont_fragment": "df", "more_fragments": "mf",
               "frag_offset": "frag", "eth_src": "src", "eth_dst": "dst"}
    df = df.with_columns([C(src).alias(dst) for dst, src in renamed.items()])
    dictionaries = {"kind": (schema.LAYER_KINDS, C("kind")),
                    "src": (address_texts, C("src")), "dst": (address_texts, C("dst")),
                    "eth_src": (address_texts, C("eth_src")),
                    "eth_dst": (address_texts, C("eth_dst"))}
    polars_types = schema.polars_schema(schema.LAYER_COLUMNS)
    return df.select([_column_expr(c, masks, dictionaries, polars_types) for c in schema.LAYER_COLUMNS])
