"""Segmentation offload: matching by byte range what was not matched packet by packet.

A capture taken on a host shows the TCP segments as its stack handled them, not as they
crossed the wire: the super-segments it sent (TSO/GSO: the NIC cuts them into MSS-sized
segments) and the segments it received merged into one (GRO/LRO). Such a segment has no
copy at the other point with the same key; its bytes do. After packet-by-packet matching,
the data segments left unmatched at each point are matched by their byte range in the
connection's sequence space:

- an upstream segment lying inside a longer downstream one (GRO at the downstream host)
  arrived with it;
- an upstream segment that holds longer than each of the downstream segments inside it,
  and whose bytes they cover, arrived as them (TSO at the upstream host);

in both cases only between segments with the same ack and TCP timestamps (TSO copies them
into every piece; GRO merges only segments that share them) and whose times fit the
direction's delays (between the exact matches' least delay less WINDOW_NS and their
greatest plus WINDOW_NS). Such a match is **approximate**: the time of a merged segment
is its first piece's, so the delay of each piece is not measured; the delay statistics
leave them out when the direction (or connection) has exact matches.
"""
from __future__ import annotations

import numpy as np
import polars as pl

C = pl.col
WINDOW_NS = 100_000_000
LIFT = 1 << 34


def _relative(flow: np.ndarray, seq: np.ndarray, base: np.ndarray) -> np.ndarray:
    return (seq - base[flow]) % (1 << 32)


def byte_range_matches(up: pl.DataFrame, down: pl.DataFrame, delay_range: dict) -> pl.DataFrame:
    """`up`, `down`: the unmatched data segments of each side (flow, seq, tcp_len, ack,
    tsval, t, and `row` upstream / `frame` downstream), `flow` a dense number per connection
    and direction; `delay_range`: per flow, (least, greatest) delay of the exact matches
    (arrays indexed by flow; NaN where none). Returns row (upstream), frame_down, t_down of
    the upstream segments that arrived by byte range."""
    empty = pl.DataFrame(schema={"row": pl.Int64, "frame_down": pl.UInt32, "t_down": pl.Int64})
    if up.is_empty() or down.is_empty():
        return empty
    n_flows = int(max(up["flow"].to_numpy().max(), down["flow"].to_numpy().max())) + 1
    u = {c: up[c].to_numpy().astype(np.int64) for c in ("flow", "seq", "tcp_len", "ack", "tsval",
                                                        "t", "row")}
    d = {c: down[c].to_numpy().astype(np.int64) for c in ("flow", "seq", "tcp_len", "ack",
                                                          "tsval", "t", "frame")}
    # a common origin per flow: the least upstream seq (wrap-around aside)
    base = np.zeros(n_flows, np.int64)
    order = np.argsort(u["flow"], kind="stable")
    firsts = order[np.r_[True, u["flow"][order][1:] != u["flow"][order][:-1]]]
    base[u["flow"][firsts]] = u["seq"][firsts]
    us, ds = _relative(u["flow"], u["seq"], base), _relative(d["flow"], d["seq"], base)
    ue, de = us + u["tcp_len"], ds + d["tcp_len"]
    low, high = delay_range["low"], delay_range["high"]

    # segments that may be pieces of one another: the same flow, ack and TCP timestamps
    # (one dense group number for both sides)
    group = _groups([u["flow"], d["flow"]], [u["ack"], d["ack"]], [u["tsval"], d["tsval"]])
    gu, gd = group[:len(us)], group[len(us):]

    def containing(g_outer, s_outer, e_outer, len_outer, t_outer, g_inner, s_inner, e_inner,
                   len_inner, t_inner, inner_is_up):
        """For each inner segment, an outer one of its group that holds its bytes and is
        longer, with a time that fits (of the two latest starting at or before it); -1."""
        order = np.lexsort((t_outer, s_outer, g_outer))
        key = g_outer[order] * LIFT + s_outer[order]
        at = np.searchsorted(key, g_inner * LIFT + s_inner, side="right") - 1
        chosen = np.full(len(s_inner), -1)
        for back in (0, 1):
            k = at - back
            j = order[np.maximum(k, 0)]
            t_up, t_down = (t_inner, t_outer[j]) if inner_is_up else (t_outer[j], t_inner)
            flow = u["flow"][j] if not inner_is_up else u["flow"]
            ok = ((chosen < 0) & (k >= 0) & (g_outer[j] == g_inner) & (e_outer[j] >= e_inner)
                  & (len_outer[j] > len_inner) & fits(flow, t_up, t_down))
            chosen = np.where(ok, j, chosen)
        return chosen

    def fits(flow, t_up, t_down) -> np.ndarray:
        delay = (t_down - t_up).astype(np.float64)
        lo, hi = low[flow], high[flow]
        return np.where(np.isnan(lo), True, (delay >= lo - WINDOW_NS) & (delay <= hi + WINDOW_NS))

    # GRO downstream: each upstream segment inside a longer downstream one
    j = containing(gd, ds, de, d["tcp_len"], d["t"], gu, us, ue, u["tcp_len"], u["t"], True)
    inside = j >= 0
    gro = pl.DataFrame({"row": u["row"][inside], "frame_down": d["frame"][j[inside]],
                        "t_down": d["t"][j[inside]]})
    # TSO upstream: the downstream pieces inside a longer upstream segment, covering it
    i = containing(gu, us, ue, u["tcp_len"], u["t"], gd, ds, de, d["tcp_len"], d["t"], False)
    piece = i >= 0
    pieces = pl.DataFrame({"row": u["row"][i[piece]], "frame_down": d["frame"][piece],
                           "t_down": d["t"][piece], "bytes": d["tcp_len"][piece],
                           "size": u["tcp_len"][i[piece]]})
    tso = (pieces.sort("t_down").group_by("row")
           .agg(C("frame_down").first(), C("t_down").first(), C("bytes").sum(), C("size").first())
           .filter(C("bytes") >= C("size")).select("row", "frame_down", "t_down"))
    found = pl.concat([gro, tso]).unique("row", keep="first")
    return found.with_columns(C("frame_down").cast(pl.UInt32), C("t_down").cast(pl.Int64),
                              C("row").cast(pl.Int64))


def _groups(*columns: list[np.ndarray]) -> np.ndarray:
    """A dense number per distinct combination of the columns (each given as parts to
    concatenate)."""
    values = [np.concatenate(parts) for parts in columns]
    order = np.lexsort(values[::-1])
    change = np.zeros(len(order), bool)
    for v in values:
        sorted_v = v[order]
        change[1:] |= sorted_v[1:] != sorted_v[:-1]
    out = np.empty(len(order), np.int64)
    out[order] = np.cumsum(change)
    return out
