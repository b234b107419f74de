"""Assemble decoded arrays into the Polars packet and layer tables (zero-copy where possible)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from tcpsift import schema
from tcpsift.capture._records import NO_LINKTYPE
from tcpsift.decode._decode import PRESENCE

FLAG_LETTERS = "FSRPAUECN"
# tcp_flags value (9 bits) -> letters, e.g. 0x012 -> "SA"
FLAG_TEXT = ["".join(ch for bit, ch in enumerate(FLAG_LETTERS) if v >> bit & 1) for v in range(512)]


def _validity(mask: np.ndarray | None):
    if mask is None:
        return None
    return pa.py_buffer(np.packbits(mask, bitorder="little"))


def _arrow(values: np.ndarray, mask: np.ndarray | None, dtype: str) -> pa.Array:
    n = len(values)
    if dtype == "Boolean":
        data = pa.py_buffer(np.packbits(values.astype(bool), bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), n, [_validity(mask), data])
    arrow_type = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(arrow_type, n, [_validity(mask), pa.py_buffer(values)])


def _dictionary(codes: np.ndarray, mask: np.ndarray | None, words) -> pa.Array:
    if mask is not None:
        codes = np.where(mask, codes, 0).astype(np.uint32)   # keep absent slots in range
    idx = pa.Array.from_buffers(pa.uint32(), len(codes), [_validity(mask), pa.py_buffer(codes)])
    return pa.DictionaryArray.from_arrays(idx, pa.array(words, pa.large_string()))


def _series(name: str, arr: pa.Array, dtype) -> pl.Series:
    s = pl.from_arrow(arr, rechunk=False)
    s = s.alias(name)
    if s.dtype != dtype:
        s = s.cast(dtype)
    return s


def packet_table(rec: dict, pkt: dict, sack_edges: np.ndarray, frame: np.ndarray,
                 file_id: np.ndarray, file_frame: np.ndarray, address_texts: list[str]) -> pl.DataFrame:
    """The packet table from merged record and decoder arrays (all of equal length)."""
    present = pkt["present"]

    def has(*bits):
        m = 0
        for b in bits:
            m |= PRESENCE[b]
        return (present & m) != 0

    ip = has("ip")
    ip_hdr = has("ip_hdr")
    tcp = has("tcp")
    tcp_hdr = has("tcp_flags")
    transport = has("tcp", "udp")
    icmp = has("icmp")
    masks = {
        "ts_ns": rec["has_ts"], "iface": rec["linktype"] != NO_LINKTYPE,
        "linktype": rec["linktype"] != NO_LINKTYPE,
        "vlan_id": has("vlan"), "outer_src": has("outer"), "outer_dst": has("outer"),
        "ip_version": ip | ip_hdr, "src": ip, "dst": ip, "ip_hdr_len": ip | ip_hdr,
        "ip_len": ip | (ip_hdr & ~has("no_ip_len")),
        "ip_id": has("ip_id"), "ttl": ip, "ip_proto": ip,
        "ipv6_nxt": ip & (pkt["ip_version"] == 6), "dont_fragment": ip,
        "more_fragments": ip, "frag_offset": ip, "sport": transport, "dport": transport,
        "tcp_flags": tcp_hdr, "flags": tcp_hdr, "seq": has("seq"), "ack": has("ack"),
        "tcp_hdr_len": tcp_hdr, "window": tcp_hdr, "tcp_len": has("tcp_len"),
        "mss": has("mss"), "wscale": has("wscale"), "sack_perm": tcp,
        "sack_blocks": has("sack"), "tsval": has("ts"), "tsecr": has("tsecr"),
        "udp_len": has("udp"), "icmp_type": icmp, "icmp_code": icmp,
        "payload_offset": has("payload"),
    }
    values = {
        "frame": frame, "file_id": file_id, "file_frame": file_frame,
        "file_offset": rec["offset"].view(np.uint64), "ts_ns": rec["ts_ns"],
        "cap_len": rec["cap_len"], "len": rec["len"], "iface": rec["iface"],
        "linktype": rec["linktype"], "sack_perm": (present & PRESENCE["sack_perm"]) != 0,
    }
    polars_types = schema.polars_schema()
    cols = []
    for c in schema.PACKET_COLUMNS:
        name = c.name
        mask = masks.get(name)
        if name == "status":
            arr = _dictionary(pkt["status"].astype(np.uint32), None, schema.DECODE_STATUS)
        elif name == "encap":
            arr = _dictionary(pkt["encap"].astype(np.uint32), None, schema.ENCAPSULATIONS)
        elif name in ("src", "dst", "outer_src", "outer_dst"):
            arr = _dictionary(pkt[name], mask, address_texts)
        elif name == "flags":
            arr = _dictionary((pkt["tcp_flags"] & 0x1FF).astype(np.uint32), mask, FLAG_TEXT)
        elif name == "sack_blocks":
            offsets = np.zeros(len(present) + 1, np.int32)
            np.cumsum(pkt["sack_count"], out=offsets[1:])
            arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(sack_edges, pa.uint32()),
                                           mask=pa.array(~mask))
        else:
            v = values[name] if name in values else pkt[name]
            arr = _arrow(np.ascontiguousarray(v), mask, c.dtype)
        cols.append(_series(name, arr, polars_types[name]))
    return pl.DataFrame(cols)


def layer_table(layers: np.ndarray, frame: np.ndarray, address_texts: list[str]) -> pl.DataFrame:
    """The layer table from the decoder's layer rows (row = index into the merged arrays)."""
    kind = layers["kind"]
    is_ip = (kind == 1) | (kind == 2)
    is_l4 = (kind == 3) | (kind == 4)
    is_icmp = (kind == 5) | (kind == 6)
    masks = {
        "vlan_id": kind == 0, "src": is_ip, "dst": is_ip, "ip_hdr_len": is_ip, "ip_len": is_ip,
        "ip_id": kind == 1, "ttl": is_ip, "ip_proto": is_ip, "ipv6_nxt": kind == 2, "dont_fragment": kind == 1,
        "more_fragments": kind == 1, "frag_offset": kind == 1,
        "sport": is_l4 & (layers["has_ports"] == 1), "dport": is_l4 & (layers["has_ports"] == 1),
        "udp_len": kind == 4, "seq": (kind == 3) & (layers["has_seq"] == 1),
        "tpid": kind == 0, "ack": (kind == 3) & (layers["has_tcp_hdr"] == 1),
        "tcp_flags": (kind == 3) & (layers["has_tcp_hdr"] == 1),
        "tcp_hdr_len": (kind == 3) & (layers["has_tcp_hdr"] == 1),
        "window": (kind == 3) & (layers["has_tcp_hdr"] == 1),
        "icmp_type": is_icmp, "icmp_code": is_icmp & (layers["has_icmp_code"] == 1),
    }
    source = {"frame": frame[layers["row"]] if len(layers) else np.empty(0, np.uint32),
              "ip_proto": layers["proto"], "dont_fragment": layers["df"],
              "more_fragments": layers["mf"], "frag_offset": layers["frag"]}
    polars_types = schema.polars_schema(schema.LAYER_COLUMNS)
    cols = []
    for c in schema.LAYER_COLUMNS:
        name = c.name
        mask = masks.get(name)
        if name == "kind":
            arr = _dictionary(kind.astype(np.uint32), None, schema.LAYER_KINDS)
        elif name in ("src", "dst"):
            arr = _dictionary(np.ascontiguousarray(layers[name]), mask, address_texts)
        else:
            v = source[name] if name in source else layers[name]
            arr = _arrow(np.ascontiguousarray(v), mask, c.dtype)
        cols.append(_series(name, arr, polars_types[name]))
    return pl.DataFrame(cols)
