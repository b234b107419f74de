"""Which packet at one point is which packet at the other, without using time first.

1. `unique_pairs`: the packets whose key occurs exactly once at each point pair up by
   their key alone; they tie each connection at a to its connection at b
   (`connection_pairs`) and give the clock its samples.
2. `assign`: once the clock is known, every copy seen downstream is given the upstream
   copy it is: among the upstream copies of its key sent before it arrived (one
   millisecond of slack for the clock's error), the latest one that keeps identical
   copies in their order. Copies the network lost are then the earliest ones (a lost
   original, then its identical retransmission), an upstream copy that two downstream
   copies point to was duplicated between the points, and an upstream copy nobody points
   to was lost between them.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.compare._points import unique_pairs as merged_unique_pairs
from tcpsift.compare.points import Point

C = pl.col
SLACK_NS = 1_000_000


def unique_pairs(a: Point, b: Point) -> pl.DataFrame:
    """frame_a, ts_a, stream_a, frame_b, ts_b, stream_b of the packets whose key occurs once
    at each point: one merge of the points' sorted keys (tcpsift.compare._points)."""
    ra, rb = merged_unique_pairs(a.sorted_keys, np.ascontiguousarray(a.key_order, np.int64),
                                 b.sorted_keys, np.ascontiguousarray(b.key_order, np.int64))

    def take(p: Point, rows: np.ndarray, side: str) -> dict:
        return {f"{name}_{side}": p.packets[column].to_numpy()[rows]
                for name, column in (("frame", "frame"), ("ts", "ts_ns"), ("stream", "stream"))}
    return pl.DataFrame({**take(a, ra, "a"), **take(b, rb, "b")})


def connection_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """stream_a, stream_b, conn (0, 1, ...): each connection at a with the connection at b
    with which it shares the most packets, when that one shares the most with it too (a
    port reused for a new connection is a new stream at both points)."""
    both = (pairs["stream_a"].to_numpy().astype(np.uint64) << np.uint64(32)) \
        | pairs["stream_b"].to_numpy().astype(np.uint64)
    combined, shared = np.unique(both, return_counts=True)
    counts = pl.DataFrame({"stream_a": (combined >> np.uint64(32)).astype(np.uint32),
                           "stream_b": (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                           "shared": shared})
    best_b = counts.sort("shared", "stream_b", descending=[True, False]).unique(
        "stream_a", keep="first")
    best_a = counts.sort("shared", "stream_a", descending=[True, False]).unique(
        "stream_b", keep="first")
    return (best_b.join(best_a.select("stream_a", "stream_b"), on=["stream_a", "stream_b"])
            .sort("stream_a").with_row_index("conn").select("stream_a", "stream_b", "conn"))


def runs(key: str = "key") -> tuple[pl.Expr, pl.Expr]:
    """(the run number of each row's `key`, its rank in the run from 0) in a frame sorted
    by `key`: group numbers without a window function (a million one-row groups make
    Polars' `over` slow)."""
    new = (C(key) != C(key).shift(1)).fill_null(True)
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    run_start = pl.when(new).then(index).otherwise(None).forward_fill()
    return new.cast(pl.Int64).cum_sum() - 1, index - run_start


def reverse_cum_min_by_run(value: pl.Expr, run: pl.Expr, span: int) -> pl.Expr:
    """Per run (rows sorted by run), the minimum of `value` over this row and the later rows
    of its run, for |value| < span / 2: lifting each run by span above the previous makes
    one pass over the whole column restart at every run."""
    lifted = value + run * span
    return lifted.reverse().cum_min().reverse() - run * span


def assign(upstream: pl.DataFrame, downstream: pl.DataFrame) -> pl.DataFrame:
    """`upstream` and `downstream`: key, t (ns on one clock), row (a row id); the downstream
    rows with `up_row`, the upstream row each one is a copy of (null: none was sent before
    it arrived)."""
    run, rank = runs()
    # (the row id breaks ties of time: identical copies captured in the same microsecond
    # keep one order through every sort, or two of them would take the same rank)
    up = upstream.sort("key", "t", "row").with_columns(rank=rank)
    down = downstream.sort("key", "t", "row").with_columns(run=run, rank=rank,
                                                          probe=C("t") + SLACK_NS)
    latest = down.sort("probe").join_asof(
        up.select("key", "t", latest_rank="rank").sort("t"), left_on="probe", right_on="t",
        by="key", strategy="backward", check_sortedness=False).sort("key", "t", "row")
    # the latest order-keeping choice: rank_i = min over later copies k of (latest_k - k) + i;
    # a copy that finds no rank left (more copies downstream than upstream) takes the latest
    # one it may be: a duplicate
    gap = C("latest_rank").fill_null(-1) - C("rank")
    chosen = reverse_cum_min_by_run(gap, C("run"), 1 << 34) + C("rank")
    latest = latest.with_columns(
        up_rank=pl.when(C("latest_rank").is_null()).then(None)
        .otherwise(pl.max_horizontal(chosen, pl.lit(0))))
    return latest.join(up.select("key", up_rank="rank", up_row="row"), on=["key", "up_rank"],
                       how="left").select(downstream.columns + ["up_row"])
