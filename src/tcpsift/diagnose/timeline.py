"""One row per TCP packet of the connections diagnosed, in connection order, with the state
both senders are in after it (docs/diagnose.md, "The timeline").

Every other module of the diagnosis reads this table. Its rows are sorted by stream, then
capture order; `idx` is the row's position. Per row: the packet's own fields (side,
flags, payload length, sequence and acknowledgment numbers unwrapped to 64 bits), and
for each side (c = the client's data, s = the server's): the highest sequence number sent
so far (`hi_c`, `hi_s`), the highest acknowledged (`una_c`, `una_s`), the last window the
receiver advertised (`rwnd_c`: the server's window, which limits the client's sending)
`gap_ns` is the time to the connection's next packet (0 on its last): the time
this state lasted; `since_side_ns` the time since the same side's previous packet
(`side_prev_idx`, -1 for none);
`prev_hi` the row's side's highest sequence number before it.

What a sender knows lags behind the capture point: an acknowledgment seen at the point
reaches the server `server_rtt` later than the server's data sent at that moment reaches
the point (`server_rtt`: the round trip from the point to the server and back; about 0
when the capture is taken at the server, the whole round trip at the client). So for the
first `server_rtt` after a row, the server's outstanding bytes are its highest sequence
number seen so far less the acknowledgments seen `server_rtt` earlier (`una_s_lag`), and
the window it obeys is the one advertised then (`rwnd_s_lag`); after that, those seen up
to the row (`una_s`, `rwnd_s`). The same for the client with `client_rtt`. Captured at
the sender this is what the point sees; at the receiver it is what the sender saw.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.diagnose.groups import first_rows, following, last_valid, previous, running_max, starts_of
from tcpsift.tcp import QUOTED

C = pl.col
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
WRAP = 1 << 32

# the packet-table columns the diagnosis reads besides the TCP analysis' own inputs
PACKET_COLUMNS = ("frame", "ts_ns", "tcp_flags", "tcp_len", "ip_id", "ip_version", "src",
                  "sport", "window", "mss", "tsval", "seq", "ack", "sack_blocks")


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
    return pl.Series(column, out).set(pl.Series(~mask), None)


def client_sides(tcp_rows: pl.DataFrame, conns: pl.DataFrame) -> pl.DataFrame:
    """Per stream, whether `direction` 0 is the client's (the connection table decides
    who the client is; the analysis' direction 0 is whoever sent first)."""
    first = (tcp_rows.filter(C("direction") == 0).group_by("stream").agg(
        C("src").first().cast(pl.String), C("sport").first()))
    return (first.join(conns.select("stream", "client", "client_port"), on="stream", how="left", maintain_order="left")
            .select("stream", dir0_client=(C("src") == C("client"))
                    & (C("sport") == C("client_port"))))


def side_rtts(rows: pl.DataFrame, conns: pl.DataFrame) -> pl.DataFrame:
    """Per stream, the round trip from the capture point to the server and back
    (`server_rtt`: the shortest of SYN to SYN-ACK and of the server's ACK round-trip
    times, as its kernel answers at once) and to the client (`client_rtt`)."""
    acks = rows.filter(C("ack_rtt_ns") > 0).group_by("stream").agg(
        _s=C("ack_rtt_ns").filter(~C("from_client")).min(),
        _c=C("ack_rtt_ns").filter(C("from_client")).min())
    return (conns.select("stream", "syn_to_synack_ns", "synack_to_ack_ns")
            .join(acks, on="stream", how="left", maintain_order="left")
            .select("stream",
                    server_rtt=pl.min_horizontal("syn_to_synack_ns", "_s").fill_null(0),
                    client_rtt=pl.min_horizontal("synack_to_ack_ns", "_c").fill_null(0)))


def lagged_rows(ts: np.ndarray, first: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """Per row i: the last row j of its connection (rows first[i]..i, times `ts`
    non-decreasing there) with ts[j] <= ts[i] - lag[i]; -1 where there is none. A
    binary search of all rows at once."""
    n = len(ts)
    target = ts - lag
    lo = first.astype(np.int64)
    hi = np.arange(1, n + 1, dtype=np.int64)
    active = lo < hi
    while active.any():
        mid = (lo + hi) // 2
        right = ts[np.minimum(mid, n - 1)] <= target
        lo = np.where(active & right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
        active = lo < hi
    found = lo - 1
    return np.where(found >= first, found, -1)


def _lag(rows: pl.DataFrame, columns: list[str], lag: str) -> list[pl.Series]:
    """`columns` as they were `lag` nanoseconds before each row (null before the
    connection's first row)."""
    ts = rows["_ts_mono"].to_numpy()
    first = rows["_first_idx"].to_numpy()
    j = lagged_rows(ts, first, rows[lag].to_numpy().astype(np.int64))
    at = np.maximum(j, 0)
    missing = pl.Series(j < 0)
    return [rows[c].gather(at).set(missing, None).alias(c) for c in columns]


def timeline(cap, streams=None) -> pl.DataFrame:
    """The timeline of the TCP connections of `cap` (only `streams` when given)."""
    tcp = cap.tcp
    pk = cap.packets
    rows = pl.concat([tcp.select("stream", "direction", "rel_seq", "next_seq", "rel_ack",
                                 "window_scaled", "win_scale", "analysis", "ack_rtt_ns",
                                 "dup_ack_num"),
                      pk.select(*PACKET_COLUMNS[:-3], raw_seq="seq", raw_ack="ack",
                                sack_left=C("sack_blocks").list.get(0, null_on_oob=True),
                                sack_right=C("sack_blocks").list.get(1, null_on_oob=True))],
                     how="horizontal")
    rows = rows.filter(C("stream").is_not_null() & ((C("analysis") & QUOTED) == 0))
    if streams is not None:
        rows = rows.filter(C("stream").is_in(list(streams)))
    sides = client_sides(rows, cap.conns)
    rows = (rows.with_row_index("order")
            .join(sides, on="stream", how="left", maintain_order="left")
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
    stream = rows["stream"].to_numpy()
    starts = starts_of(stream)
    client = rows["from_client"].to_numpy()
    syn = rows["syn"].to_numpy()

    def running(side: np.ndarray, column: str) -> pl.Series:
        values = rows[column]
        valid = side & values.is_not_null().to_numpy()
        top, defined = running_max(values.fill_null(0).to_numpy(), valid, starts)
        return pl.Series(column, np.where(defined, top, 0))

    def last(side: np.ndarray) -> pl.Series:
        # the window a SYN carries is never scaled: not the window the transfer sees
        window = rows["window_scaled"]
        at = last_valid(side & ~syn & window.is_not_null().to_numpy(), starts)
        return window.cast(pl.Int64).gather(np.maximum(at, 0)).set(pl.Series(at < 0), None)

    ts = rows["ts_ns"].to_numpy()
    after, has_next = following(ts, starts)
    length = rows["tcp_len"].fill_null(0).to_numpy()
    group = np.cumsum(starts) - 1
    mss_c = np.zeros(int(group[-1]) + 1 if len(group) else 0, np.int64)
    mss_s = mss_c.copy()
    np.maximum.at(mss_c, group[client], length[client])
    np.maximum.at(mss_s, group[~client], length[~client])
    mono, _ = running_max(ts, np.ones(len(ts), bool), starts)
    # per row: the same side's previous packet (its time), and that side's highest
    # sequence number before the row
    order = np.lexsort((rows["idx"].to_numpy(), client, stream))
    side_starts = starts_of(stream[order], client[order])
    before, ok = previous(ts[order], side_starts)
    since = np.full(len(ts), -1, np.int64)
    since[order] = np.where(ok, ts[order] - before, -1)
    before_idx, _ = previous(order, side_starts)
    side_prev = np.full(len(ts), -1, np.int64)
    side_prev[order] = np.where(ok, before_idx, -1)
    rows = rows.with_columns(
        running(client, "nxt_u").alias("hi_c"), running(~client, "nxt_u").alias("hi_s"),
        running(~client, "ack_u").alias("una_c"), running(client, "ack_u").alias("una_s"),
        last(~client).alias("rwnd_c"), last(client).alias("rwnd_s"),
        gap_ns=pl.Series(np.where(has_next, np.clip(after - ts, 0, None), 0)),
        mss_c=pl.Series(mss_c[group]), mss_s=pl.Series(mss_s[group]),
        since_side_ns=pl.Series(since).set(pl.Series(since < 0), None),
        side_prev_idx=pl.Series(side_prev),
        _ts_mono=pl.Series(mono), _first_idx=pl.Series(first_rows(starts)))
    hi_c, hi_s = (previous(rows[c].to_numpy(), starts)[0] for c in ("hi_c", "hi_s"))
    rows = rows.with_columns(prev_hi=pl.Series(
        np.where(starts, 0, np.where(client, hi_c, hi_s)), dtype=pl.Int64))
    rows = rows.join(side_rtts(rows, cap.conns), on="stream", how="left",
                     maintain_order="left").with_columns(C("server_rtt").fill_null(0),
                                                         C("client_rtt").fill_null(0))
    lagged_c = _lag(rows, ["una_c", "rwnd_c"], "client_rtt")
    lagged_s = _lag(rows, ["una_s", "rwnd_s"], "server_rtt")
    rows = rows.with_columns(
        lagged_c[0].fill_null(0).alias("una_c_lag"), lagged_c[1].alias("rwnd_c_lag"),
        lagged_s[0].fill_null(0).alias("una_s_lag"), lagged_s[1].alias("rwnd_s_lag"))
    return rows.drop("_ts_mono", "_first_idx")
