"""Each retransmission seen at the upstream point, and where its original went missing.

For a direction whose packets pass the upstream point U before the downstream point D,
the data segments at U are followed per connection in U's capture order, their sequence
numbers relative to the connection's first one at U. A data segment is a retransmission
when it starts below the highest byte the connection had sent before it at U, and

- its **original** is the first earlier segment at U that carries its first byte (the
  one that first went past that byte, else the first one that started at the same
  sequence number). Then:
  - `lost_between_points`: the original was seen at U and never at D;
  - `spurious`: the original reached D (nothing lost between the sender and D: a
    timeout or a fast retransmit that was not needed, or the loss was after D);
  - `unknown`: the original did not reach D but was sent when D was not capturing;
- no earlier segment at U carries its first byte: it fills a hole, and the bytes went
  missing **before** U (`lost_before_upstream`), unless it comes within
  OUT_OF_ORDER_NS of the segment that first went past it (then it was reordered before
  U, not retransmitted: Wireshark's out-of-order rule). A later retransmission of a
  hole's bytes counts as lost before U too (their first transmission never reached U).

Keep-alives (at most one byte, one below the highest byte sent) are not retransmissions.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.compare.stats import DIRECTION, by_rank

C = pl.col
OUT_OF_ORDER_NS = 3_000_000
CAUSES = ("lost_between_points", "lost_before_upstream", "spurious", "unknown")
CAUSE = pl.Enum(CAUSES)
LIFT = 1 << 34      # above any relative end of a segment (sequence space is 2^32)


def retransmissions(rows: dict[str, pl.DataFrame], upstream: dict[str, str],
                    fate: pl.DataFrame) -> pl.DataFrame:
    """One row per retransmission seen at a direction's upstream point: conn, direction,
    frame (at U), t (a's clock), seq, tcp_len, original_frame (at U; null when the bytes
    never reached U before), cause (CAUSES). `rows`: per point, its packets of the
    connections at both points (conn, direction, frame, t, seq, tcp_len, rank); `fate`: one row
    per upstream packet (direction, frame_up, copies, lost)."""
    parts = [_one_direction(rows[up].select("conn", "direction", "frame", "t", "seq", "tcp_len",
                                            "rank")
                            .filter((C("direction") == d) & (C("tcp_len") > 0)),
                            fate.filter(C("direction") == d), d)
             for d, up in sorted(upstream.items())]
    return pl.concat(parts)


def _empty(direction: str) -> pl.DataFrame:
    return pl.DataFrame(schema={"conn": pl.Int64, "direction": DIRECTION,
                                "frame": pl.UInt32, "t": pl.Int64, "seq": pl.Int64,
                                "tcp_len": pl.Int64, "original_frame": pl.UInt32,
                                "cause": CAUSE})


def _one_direction(data: pl.DataFrame, fate: pl.DataFrame, direction: str) -> pl.DataFrame:
    if data.is_empty():
        return _empty(direction)
    # each connection's segments together in capture order: the point's rank, no sort
    order = by_rank(data["rank"].to_numpy(), np.zeros(len(data), np.int64), 1)
    conn = data["conn"].to_numpy().astype(np.int64)[order]
    frame = data["frame"].to_numpy().astype(np.int64)[order]
    t = data["t"].to_numpy()[order]
    seq = data["seq"].to_numpy().astype(np.int64)[order]
    length = data["tcp_len"].to_numpy().astype(np.int64)[order]
    n = len(conn)
    index = np.arange(n)
    first = np.r_[True, conn[1:] != conn[:-1]]
    base = seq[np.maximum.accumulate(np.where(first, index, 0))]
    start = (seq - base) % (1 << 32)
    end = start + length
    # each connection lifted above the one before it in this order
    group = np.cumsum(first) - 1
    lift = group * LIFT
    lifted = lift + start
    # the highest end so far in the connection (inclusive), lifted per connection so that
    # one running maximum over every connection restarts at each
    reach = np.maximum.accumulate(lift + end)
    before = np.r_[-1, reach[:-1]] - lift           # < 0 for a connection's first segment
    behind = start < before
    keepalive = (length <= 1) & (start == before - 1)
    candidate = behind & ~keepalive
    # what follows only for the candidates (few): the first segment that went past this
    # one's first byte (it exists: before > start) ...
    cand = np.flatnonzero(candidate)
    passer = np.minimum(np.searchsorted(reach, lifted[cand], side="right"), n - 1)
    covers = start[passer] <= start[cand]
    # ... else the first segment that started at the same sequence number, when earlier
    # (by connection, start, then row: a stable sort of one key; a connection's segments
    # come nearly in start order, which the stable sort (timsort) takes in one run)
    by_start = np.argsort(lifted, kind="stable")
    at = np.searchsorted(lifted[by_start], lifted[cand], side="left")
    same_start = by_start[np.minimum(at, n - 1)]
    original = np.where(covers, passer, np.where(same_start < cand, same_start, -1))
    hole_retrans = np.zeros(n, bool)
    hole_retrans[cand] = (original < 0) & (t[cand] - t[passer] >= OUT_OF_ORDER_NS)
    keep = (original >= 0) | hole_retrans[cand]
    pick, original = cand[keep], original[keep]

    lost_of = np.zeros(int(frame.max()) + 1, bool)
    arrived_of = np.zeros(int(frame.max()) + 1, bool)
    fu = fate["frame_up"].to_numpy().astype(np.int64)
    inside = fu < len(lost_of)
    lost_of[fu[inside]] = fate["lost"].to_numpy()[inside]
    arrived_of[fu[inside]] = fate["copies"].to_numpy()[inside] > 0
    orig = np.maximum(original, 0)
    cause = np.where(
        hole_retrans[pick] | (original >= 0) & hole_retrans[orig], 1,
        np.where(lost_of[frame[orig]], 0, np.where(arrived_of[frame[orig]], 2, 3)))
    return pl.DataFrame({
        "conn": conn[pick], "direction": pl.Series([direction] * len(pick), dtype=DIRECTION),
        "frame": frame[pick].astype(np.uint32), "t": t[pick], "seq": seq[pick],
        "tcp_len": length[pick],
        "original_frame": pl.Series(np.where(original >= 0, frame[orig], 0).astype(np.uint32)),
        "cause": pl.Series(np.array(CAUSES)[cause], dtype=CAUSE),
    }).with_columns(original_frame=pl.when(C("cause") == "lost_before_upstream").then(None)
                    .otherwise(C("original_frame"))).sort("conn", "frame")


def counts(retrans: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Per `by` (direction, or conn and direction): `retransmissions` and one column
    `retrans_<cause>` per cause."""
    return retrans.group_by(by).agg(
        retransmissions=pl.len().cast(pl.Int64),
        **{f"retrans_{c}": (C("cause") == c).sum().cast(pl.Int64) for c in CAUSES})
