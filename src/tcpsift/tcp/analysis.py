"""Wireshark-exact TCP analysis over the packet table (tcp.stream, tcp.analysis.*).

    tcpsift.tcp.analyze(capture) -> polars.DataFrame   # also: capture.tcp (cached)

(tcpsift.tcp loads this module on first use of analyze(): see its __init__.)

One row per packet-table row, in the same order, keyed by its `frame` (and `file_id`);
the analysis columns of rows without a TCP header are null. The columns are
`tcpsift.schema.TCP_COLUMNS` (docs/schema.md): stream numbers, relative
sequence/ack numbers, scaled windows, the verdicts (`analysis` bitmask, bits below), RTTs
and bytes in flight, as tshark 4.0 computes them in its single pass with default
preferences. The work is done by the Cython kernel `_analysis` in one pass in frame
order; this module only prepares its input arrays (with Polars, vectorised) and wraps
its output arrays into a DataFrame. tests/test_tcp_kernel.py holds it equal to the
pure-Python reference tests/support/tcp_reference.py.
"""
from __future__ import annotations

import socket

import numpy as np
import polars as pl

from tcpsift.schema import TCP_ANALYSIS_COLUMNS, TCP_COLUMNS, TCP_KEY_COLUMNS, polars_schema
from tcpsift.tcp.chunks import empty_outputs as _empty_outputs

__all__ = ["analyze", "analyze_tables", "output_table"]

from tcpsift.tcp import FLAG_BITS, HAS_ANALYSIS, INPUT_COLUMNS, NOT_SHOWN, QUOTED  # noqa: F401

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
C = pl.col


def _addr_key(text: str) -> bytes:
    """An address as Wireshark's cmp_address() orders it: type first, then the bytes."""
    if ":" in text:
        return b"\x06" + socket.inet_pton(socket.AF_INET6, text)
    return b"\x04" + socket.inet_pton(socket.AF_INET, text)


def _ranks(texts) -> dict:
    """{address text: rank}, ranks dense and in cmp_address() order."""
    keys = sorted({t for t in texts if t is not None}, key=_addr_key)
    return {t: r for r, t in enumerate(keys)}


def _quoted_tcp(layers: pl.DataFrame | None) -> pl.DataFrame:
    """Per frame, the first TCP header quoted in an ICMP/ICMPv6 error with at least 16
    bytes (tshark reads the window before it looks the conversation up; shorter quotes
    throw earlier), with the addresses of the quoted IP header just before it. ICMPv4
    redirects are left out: tshark dissects only 8 bytes of the datagram they quote.

    Columns: frame, src, dst (String), sport, dport, tcp_flags, seq, ack, window, tcp_hdr_len.
    """
    empty = pl.DataFrame(schema={"frame": pl.UInt32, "src": pl.String, "dst": pl.String,
                                 "sport": pl.UInt16, "dport": pl.UInt16,
                                 "tcp_flags": pl.UInt16, "seq": pl.UInt32, "ack": pl.UInt32,
                                 "window": pl.UInt16, "tcp_hdr_len": pl.UInt8})
    if layers is None or layers.height == 0:
        return empty
    # quoted rows are those of ICMP errors only: few, so the rest is plain Python
    redirect = C("kind").cast(pl.String).eq("icmp") & ~C("quoted") & C("icmp_type").eq(5)
    rows = (layers.filter(C("quoted") | redirect)
            .sort("frame", "index")
            .select("frame", C("kind").cast(pl.String), "quoted", "icmp_type",
                    C("src").cast(pl.String), C("dst").cast(pl.String), "sport", "dport",
                    "tcp_flags", "seq", "ack", "window", "tcp_hdr_len"))
    out, ip, redirected = {}, {}, set()
    for r in rows.iter_rows(named=True):
        f = r["frame"]
        if not r["quoted"]:
            redirected.add(f)
            continue
        if f in redirected:
            continue
        if r["kind"] in ("ipv4", "ipv6"):
            ip[f] = (r["src"], r["dst"])
        elif r["kind"] == "tcp" and f not in out and f in ip and r["tcp_flags"] is not None:
            out[f] = (f, *ip[f], r["sport"], r["dport"], r["tcp_flags"], r["seq"], r["ack"],
                      r["window"], r["tcp_hdr_len"])
    if not out:
        return empty
    return pl.DataFrame(list(out.values()), schema=empty.schema, orient="row")


def _inputs(packets: pl.DataFrame, layers: pl.DataFrame | None, number=_ranks,
            quoted: pl.DataFrame | None = None) -> dict:
    """The kernel's input arrays, one entry per packet-table row (one Polars select, then
    zero-copy views), plus the address rank table and the SACK edges. `number` gives the
    addresses (texts) their numbers: ranks in Wireshark's order (_ranks), or any
    one-to-one numbering that holds across the rows fed to one kernel state (the kernel
    only compares them; see tcpsift.tcp.chunks). `quoted`: `_quoted_tcp(layers)` when
    the caller has it already."""
    from tcpsift.tcp import _analysis as K

    fragmented = C("more_fragments").fill_null(False) | (C("frag_offset").fill_null(0) != 0)
    hlen = C("tcp_hdr_len")
    # the segment length: tcp_len; in its absence (a header length below 20, which tshark
    # still uses when the IP payload holds it) the IP payload minus the header length; never
    # in IP fragments (the decoder analyses a reassembled datagram in its last frame)
    ip_payload = C("ip_len").cast(pl.Int64) - C("ip_hdr_len").cast(pl.Int64)
    alt = pl.when(~fragmented & (hlen < 20) & (ip_payload >= hlen.cast(pl.Int64))).then(
        ip_payload - hlen.cast(pl.Int64))
    seglen = pl.when(C("tcp_len").is_not_null()).then(C("tcp_len")).otherwise(
        alt.cast(pl.UInt32))
    # a TCP header whose window and flags were read (tshark looks the conversation up
    # after reading them: a header cut before throws first, no tcp.stream)
    is_tcp = ((C("ip_proto") == 6) & C("sport").is_not_null() & C("window").is_not_null()
              & C("tcp_flags").is_not_null()).fill_null(False)
    header_cut = ((C("status") == "truncated") & C("payload_offset").is_null()
                  & C("tcp_len").is_not_null()).fill_null(False)
    b = K.ROW_BITS
    rf = (pl.when(is_tcp).then(b["tcp"]).otherwise(0)
          | pl.when(seglen.is_not_null()).then(b["has_seglen"]).otherwise(0)
          | pl.when(header_cut).then(b["header_cut"]).otherwise(0)
          | pl.when(hlen.is_not_null()).then(b["has_hlen"]).otherwise(0)
          | pl.when(C("wscale").is_not_null()).then(b["has_wscale"]).otherwise(0))
    t = packets.select(
        rf=rf.cast(pl.UInt8), frame=C("frame"), ts_ns=C("ts_ns").fill_null(0),
        src=C("src").to_physical().fill_null(0), dst=C("dst").to_physical().fill_null(0),
        sport=C("sport").fill_null(0), dport=C("dport").fill_null(0),
        tflags=C("tcp_flags").fill_null(0), seq=C("seq").fill_null(0),
        ack=C("ack").fill_null(0), window=C("window").fill_null(0), hlen=hlen.fill_null(0),
        seglen=seglen.fill_null(0), wscale=C("wscale").fill_null(0),
        sack_n=C("sack_blocks").list.len().fill_null(0).cast(pl.UInt8),
    )
    arrays = {name: t[name].to_numpy() for name in t.columns}

    # addresses: the kernel maps each row's dictionary code to the address's rank in
    # Wireshark's order; only the distinct addresses are looked at as text
    uniq = pl.concat([packets["src"], packets["dst"]]).drop_nulls().unique()
    ucodes = uniq.to_physical().to_numpy()
    utext = uniq.cast(pl.String).to_list()
    q = _quoted_tcp(layers) if quoted is None else quoted
    ranks = number([*utext, *q["src"].to_list(), *q["dst"].to_list()])
    top = int(ucodes.max()) + 1 if len(ucodes) else 1
    lut = np.zeros(top, np.uint32)
    lut[ucodes] = [ranks[x] for x in utext]

    if q.height:
        # quoted headers: the frame's own row is ICMP; the quoted header takes its place
        # (no segment length: no sequence analysis; no options). Their addresses get codes
        # past the table's.
        arrays = {k: v.copy() for k, v in arrays.items()}
        n = packets.height
        qframes = q["frame"].to_numpy()
        rows = np.searchsorted(arrays["frame"], qframes)
        keep = rows < n
        keep[keep] &= arrays["frame"][rows[keep]] == qframes[keep]
        # (a row with a TCP header of its own is never an ICMP error)
        own = packets.select(((C("ip_proto") == 6) & C("sport").is_not_null())
                             .fill_null(False)).to_series().to_numpy()
        keep[keep] &= ~own[rows[keep]]
        q, rows = q.filter(pl.Series(keep)), rows[keep]
        qtext = sorted(set(q["src"].to_list()) | set(q["dst"].to_list()))
        qcode = {x: top + j for j, x in enumerate(qtext)}
        lut = np.concatenate([lut, np.array([ranks[x] for x in qtext], np.uint32)])
        arrays["rf"][rows] = b["quoted"] | np.where(q["tcp_hdr_len"].is_not_null().to_numpy(),
                                                    b["has_hlen"], 0).astype(np.uint8)
        arrays["src"][rows] = [qcode[x] for x in q["src"].to_list()]
        arrays["dst"][rows] = [qcode[x] for x in q["dst"].to_list()]
        for name, col in (("sport", "sport"), ("dport", "dport"), ("tflags", "tcp_flags"),
                          ("seq", "seq"), ("ack", "ack"), ("window", "window"),
                          ("hlen", "tcp_hdr_len")):
            arrays[name][rows] = q[col].fill_null(0).to_numpy()
        arrays["seglen"][rows] = 0
    arrays["addr_rank"] = lut

    # SACK edges of every row, concatenated in row order (the kernel keeps a cursor)
    if int(arrays["sack_n"].max(initial=0)):
        edges = packets["sack_blocks"].list.explode().drop_nulls().to_numpy()
    else:
        edges = np.zeros(1, np.uint32)
    arrays["sack_edges"] = np.ascontiguousarray(edges, dtype=np.uint32)
    return arrays


def analyze_tables(packets: pl.DataFrame, layers: pl.DataFrame | None = None) -> pl.DataFrame:
    """`analyze()` on a packet table (and, for ICMP-quoted TCP headers, its layer table)."""
    from tcpsift.tcp import _analysis as K

    n = packets.height
    check_columns(packets)
    a = _inputs(packets, layers)
    out = _empty_outputs(n)
    K.analyze_arrays(n, a, out)
    return output_table(out, packets)


def check_columns(packets: pl.DataFrame) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in packets.columns]
    if missing:
        raise ValueError("TCP analysis needs the packet columns " + ", ".join(missing)
                         + " (tcpsift.read(columns=...) left them out)")


def output_table(out: dict, packets: pl.DataFrame) -> pl.DataFrame:
    """The kernel's output arrays (of equal length) as the TCP table, nulls applied, keyed
    by the packet-table rows they were computed from (`packets`: their key columns, the
    same Series, not copies)."""
    from tcpsift.tcp import _analysis as K

    # nulls: the kernel's values are used in place (a masked array gives Polars the
    # values without a copy and only a validity bitmap to build)
    out = dict(out)
    v = K.V_BITS
    valid = out.pop("_valid")
    row = (valid & v["row"]) != 0
    has = {"seq": row & ((valid & v["seq"]) != 0), "ack": row & ((valid & v["ack"]) != 0),
           "wscale": row & ((valid & v["wscale"]) != 0),
           "analysis": row & ((valid & v["analysis"]) != 0)}
    keep = {"rel_seq": has["seq"], "next_seq": has["seq"], "rel_ack": has["ack"],
            "win_scale": has["wscale"], "analysis": has["analysis"]}
    # columns whose 0 means "none" (the kernel writes 0 on non-TCP rows too)
    for name, key in (("dup_ack_num", "dup_ack_num"), ("dup_ack_of_frame", "dup_ack_num"),
                      ("acks_frame", "acks_frame"), ("ack_rtt_ns", "acks_frame"),
                      ("initial_rtt_ns", "initial_rtt_ns"),
                      ("bytes_in_flight", "bytes_in_flight"),
                      ("push_bytes_sent", "bytes_in_flight")):
        keep[name] = row & (out[key] != 0)
    cols = [_key(packets, c.name) for c in TCP_KEY_COLUMNS]
    for c in TCP_ANALYSIS_COLUMNS:
        k = keep.get(c.name, row)
        cols.append(pl.Series(c.name, np.ma.masked_array(out[c.name], mask=~k)))
    return pl.DataFrame(cols)


def _key(packets: pl.DataFrame, name: str) -> pl.Series:
    """A key column of the packet table; file_id 0 for a table made without it (one file)."""
    if name in packets.columns:
        return packets[name]
    return pl.repeat(0, packets.height, dtype=pl.UInt16, eager=True).alias(name)


def analyze(capture) -> pl.DataFrame:
    """The TCP analysis of a Capture (`tcpsift.read(...)`): one row per packet-table row,
    in frame order, columns `tcpsift.schema.TCP_COLUMNS`. `capture.tcp` caches it."""
    return analyze_tables(capture.packets, getattr(capture, "layers", None))


def schema() -> dict:
    return polars_schema(TCP_COLUMNS)
