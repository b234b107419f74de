"""One row per TCP packet of the connections diagnosed, in connection order, with the state
both senders are in after it (docs/diagnose.md, "The timeline").

Every other module of the diagnosis reads this table. Its rows are sorted by stream, then
capture order; `idx` is the row's position. Per row: the packet's own fields (side,
flags, payload length, sequence and acknowledgment numbers unwrapped to 64 bits), and
for each side (c = the client's data, s = the server's): the highest sequence number sent
so far (`hi_c`, `hi_s`), the highest acknowledged (`una_c`, `una_s`), the last window the
receiver advertised (`rwnd_c`: the server's window, which limits the client's sending)
and the bytes outstanding (`out_c = hi_c - una_c`). `gap_ns` is the time to the
connection's next packet (0 on its last): the time this state lasted.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.tcp import QUOTED

C = pl.col
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
WRAP = 1 << 32

# the packet-table columns the diagnosis reads besides the TCP analysis' own inputs
PACKET_COLUMNS = ("frame", "ts_ns", "tcp_flags", "tcp_len", "ip_id", "ip_version", "src",
                  "sport", "window")


def unwrap32(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """32-bit sequence numbers as int64 that keep growing past 2^32: each step is taken as
    the shortest way round the circle. `starts` marks the first row of each run (a
    connection's side), where the count starts again from the row's own value."""
    v = values.astype(np.int64)
    if len(v) == 0:
        return v
    step = np.diff(v, prepend=v[:1])
    step = (step + (1 << 31)) % WRAP - (1 << 31)
    step[starts] = 0
    total = np.cumsum(step)
    first = np.flatnonzero(starts)
    run = np.cumsum(starts) - 1
    return total - total[first][run] + v[first][run]


def _unwrapped(rows: pl.DataFrame, column: str) -> pl.Series:
    """`column` unwrapped per connection side, null where it is null."""
    present = rows.select(C("idx"), C("stream"), C("from_client"), C(column)) \
        .filter(C(column).is_not_null()).sort("stream", "from_client", "idx")
    if len(present) == 0:
        return pl.Series(column, [None] * len(rows), pl.Int64)
    stream = present["stream"].to_numpy()
    side = present["from_client"].to_numpy()
    starts = np.ones(len(present), bool)
    starts[1:] = (stream[1:] != stream[:-1]) | (side[1:] != side[:-1])
    values = unwrap32(present[column].to_numpy(), starts)
    out = np.zeros(len(rows), np.int64)
    mask = np.zeros(len(rows), bool)
    idx = present["idx"].to_numpy()
    out[idx] = values
    mask[idx] = True
    return pl.Series(column, out).set(pl.Series(~mask), None)   # type: ignore[arg-type]


def client_sides(tcp_rows: pl.DataFrame, conns: pl.DataFrame) -> pl.DataFrame:
    """Per stream, whether `direction` 0 is the client's (the connection table decides
    who the client is; the analysis' direction 0 is whoever sent first)."""
    first = (tcp_rows.filter(C("direction") == 0).group_by("stream").agg(
        C("src").first().cast(pl.String), C("sport").first()))
    return (first.join(conns.select("stream", "client", "client_port"), on="stream", how="left")
            .select("stream", dir0_client=(C("src") == C("client"))
                    & (C("sport") == C("client_port"))))


def timeline(cap, streams=None) -> pl.DataFrame:
    """The timeline of the TCP connections of `cap` (only `streams` when given)."""
    tcp = cap.tcp
    pk = cap.packets
    rows = pl.concat([tcp.select("stream", "direction", "rel_seq", "next_seq", "rel_ack",
                                 "window_scaled", "win_scale", "analysis", "ack_rtt_ns",
                                 "dup_ack_num"),
                      pk.select(*PACKET_COLUMNS)], how="horizontal")
    rows = rows.filter(C("stream").is_not_null() & ((C("analysis") & QUOTED) == 0))
    if streams is not None:
        rows = rows.filter(C("stream").is_in(list(streams)))
    sides = client_sides(rows, cap.conns)
    rows = (rows.with_row_index("order")
            .join(sides, on="stream", how="left")
            .sort("stream", "order")
            .with_row_index("idx")
            .with_columns(
                from_client=(C("direction") == 0) == C("dir0_client").fill_null(True),
                syn=(C("tcp_flags") & SYN) != 0, fin=(C("tcp_flags") & FIN) != 0,
                rst=(C("tcp_flags") & RST) != 0,
                ack_u=pl.when((C("tcp_flags") & ACK) != 0).then(C("rel_ack")))
            .drop("order", "dir0_client", "direction"))
    rows = rows.with_columns(_unwrapped(rows, "rel_seq").alias("seq_u"),
                             _unwrapped(rows, "ack_u").alias("ack_u"))
    rows = rows.with_columns(nxt_u=C("seq_u") + (C("next_seq").cast(pl.Int64)
                                                 - C("rel_seq").cast(pl.Int64)))
    c, s = C("from_client"), ~C("from_client")

    def running(side, value):
        return (pl.when(side).then(value).cum_max().over("stream").forward_fill()
                .over("stream"))

    def last(side, value):
        return pl.when(side).then(value).forward_fill().over("stream")

    # the window a SYN carries is never scaled: not the window the transfer sees
    window = pl.when(~C("syn")).then(C("window_scaled").cast(pl.Int64))
    rows = rows.with_columns(
        hi_c=running(c, C("nxt_u")).fill_null(0), hi_s=running(s, C("nxt_u")).fill_null(0),
        una_c=running(s, C("ack_u")).fill_null(0), una_s=running(c, C("ack_u")).fill_null(0),
        rwnd_c=last(s, window), rwnd_s=last(c, window),
        gap_ns=(C("ts_ns").shift(-1).over("stream") - C("ts_ns")).fill_null(0).clip(0),
        mss_c=pl.when(c).then(C("tcp_len")).max().over("stream"),
        mss_s=pl.when(s).then(C("tcp_len")).max().over("stream"),
    )
    return rows.with_columns(out_c=(C("hi_c") - C("una_c")).clip(0),
                             out_s=(C("hi_s") - C("una_s")).clip(0))
