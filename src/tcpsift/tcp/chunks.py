"""The analysis kernel's input arrays straight from the decoder's arrays, chunk by chunk.

`tcpsift.tcp._inputs` builds the inputs from the packet table (Polars); this builds the
same from one chunk of decoder output (K.fill_inputs, one compiled pass), so that a
capture can be analysed while it is decoded, without tables (`tcpsift fields` streams
this way). The rules are those of `_inputs`; a test holds the two paths' results equal
on every capture of the corpus.

Addresses enter the kernel as their address-table ids: the kernel compares endpoints
only for equality and to pick which of a conversation's two flows is "flow 1", and the
two flows are treated alike, so any one-to-one numbering gives the same results.
"""
from __future__ import annotations

import numpy as np

from tcpsift.capture.presence import bits_of
from tcpsift.schema import DECODE_STATUS, LAYER_KINDS, TCP_ANALYSIS_COLUMNS
from tcpsift.tcp import _analysis as K

_TRUNCATED = DECODE_STATUS.index("truncated")
_KIND = {name: i for i, name in enumerate(LAYER_KINDS)}
# the presence bits K.fill_inputs reads, in its order
_MASKS = tuple(bits_of(*names) for names in (
    ("ip",), ("ip", "ip_hdr"), ("ip_hdr",), ("tcp_flags",), ("no_ip_len",), ("tcp_len",),
    ("payload",), ("wscale",), ("tcp", "udp"), ("seq",), ("ack",)))
_INPUT_DTYPES = {"rf": np.uint8, "frame": np.uint32, "ts_ns": np.int64, "src": np.uint32,
                 "dst": np.uint32, "sport": np.uint16, "dport": np.uint16,
                 "tflags": np.uint16, "seq": np.uint32, "ack": np.uint32,
                 "window": np.uint16, "hlen": np.uint8, "seglen": np.uint32,
                 "wscale": np.uint8}


def _quoted(layer_rows: np.ndarray, first_row: int, n: int):
    """The first TCP header quoted (with at least 16 bytes) in each ICMP error of the
    chunk, with the quoted IP addresses before it; frames of ICMPv4 redirects excluded,
    as tcpsift.tcp._quoted_tcp says. {chunk row: layer row of the TCP header, src, dst}."""
    out: dict = {}
    if not len(layer_rows):
        return out
    ip: dict = {}
    redirected = set()
    for r in layer_rows[np.argsort(layer_rows["row"], kind="stable")]:
        row = int(r["row"]) - first_row
        if not 0 <= row < n:
            continue
        if not r["quoted"]:
            if r["kind"] == _KIND["icmp"] and r["icmp_type"] == 5:
                redirected.add(row)
            continue
        if row in redirected:
            continue
        if r["kind"] in (_KIND["ipv4"], _KIND["ipv6"]):
            ip[row] = (int(r["src"]), int(r["dst"]))
        elif r["kind"] == _KIND["tcp"] and row not in out and row in ip and r["has_tcp_hdr"]:
            out[row] = (r, *ip[row])
    return out


def chunk_inputs(rec: dict, pkt: dict, sack_edges: np.ndarray, layer_rows: np.ndarray,
                 first_row: int, addresses: int, buffers: dict | None = None) -> dict:
    """Kernel inputs for the frames of one chunk (rows first_row, first_row+1, ...);
    `layer_rows` are the chunk's layer rows (for headers quoted in ICMP errors),
    `addresses` the number of addresses the decoder has met so far. `buffers`: arrays
    of a previous call's result to fill again (a reader that analyses each chunk before
    the next saves the allocation, page faults and all, of fresh ones)."""
    n = len(rec["offset"])
    if buffers is not None and len(buffers["rf"]) >= n:
        a = {name: buffers[name][:n] for name in _INPUT_DTYPES}
    else:
        a = {name: np.empty(n, dtype) for name, dtype in _INPUT_DTYPES.items()}
    K.fill_inputs(n, first_row + 1, rec, pkt, a, _MASKS, _TRUNCATED)
    a["sack_n"] = np.ascontiguousarray(pkt["sack_count"], dtype=np.uint8)
    a["addr_rank"] = np.arange(max(addresses, 1), dtype=np.uint32)
    a["sack_edges"] = np.ascontiguousarray(sack_edges if len(sack_edges) else np.zeros(1),
                                           dtype=np.uint32)
    if not len(layer_rows):
        return a
    b = K.ROW_BITS
    present = pkt["present"]
    own_tcp = ((present & bits_of("ip")) != 0) & (pkt["ip_proto"] == 6) \
        & ((present & bits_of("tcp", "udp")) != 0)
    for row, (r, src, dst) in _quoted(layer_rows, first_row, n).items():
        if own_tcp[row]:
            continue    # a row with a TCP header of its own is never an ICMP error
        a["rf"][row] = b["quoted"] | b["has_hlen"]
        a["src"][row], a["dst"][row] = src, dst
        a["sport"][row] = r["sport"] if r["has_ports"] else 0
        a["dport"][row] = r["dport"] if r["has_ports"] else 0
        a["tflags"][row], a["ack"][row] = r["tcp_flags"], r["ack"]
        a["window"][row], a["hlen"][row] = r["window"], r["tcp_hdr_len"]
        a["seq"][row] = r["seq"] if r["has_seq"] else 0
        a["seglen"][row] = 0
    return a


def empty_outputs(n: int) -> dict:
    """The kernel's output arrays for n rows (zeroed: rows it skips read as absent)."""
    dt = {"UInt32": np.uint32, "UInt8": np.uint8, "Int64": np.int64, "Int16": np.int16}
    out = {c.name: np.zeros(n, dt[c.dtype]) for c in TCP_ANALYSIS_COLUMNS}
    out["_valid"] = np.zeros(n, np.uint8)
    return out
