"""Think times: the requests and responses of a connection (docs/diagnose.md, "Think
time").

The new data of a connection (segments that advance their side's sequence number, in
order) alternates between the sides: a client message, the server's answer, and so on.
Where the server's data follows the client's, the server's think time is the time from
the client's last new segment to the server's first, less the server side's round trip
seen from the capture point (the shortest of SYN to SYN-ACK and of the server's ACK
round-trip times: its kernel answers at once), so that it is about the same wherever the
capture was taken. The client's think time is the same the other way. Gaps below THINK_MIN_NS are not think time.
"""
from __future__ import annotations

import polars as pl

from tcpsift.diagnose.groups import previous, starts_of

C = pl.col
THINK_MIN_NS = 10_000_000


def think_episodes(segs: pl.DataFrame, rtt: pl.DataFrame) -> pl.DataFrame:
    """One row per think time of at least THINK_MIN_NS: kind "server_think" or
    "client_think", side (whose think time), first_frame (the last segment of the
    message answered), last_frame (the first of the answer), `think_ns`. `rtt`: per
    stream `server_rtt` and `client_rtt` (timeline.side_rtts)."""
    data = (segs.filter((C("tcp_len") > 0) & ~C("repeat") & ~C("fill"))
            .select("stream", "idx", "frame", "ts_ns", "from_client").sort("idx"))
    starts = starts_of(data["stream"].to_numpy())

    def before(column: str) -> pl.Series:
        values, ok = previous(data[column].to_numpy(), starts)
        return pl.Series(values).set(pl.Series(~ok), None)

    data = data.with_columns(prev_client=before("from_client"), prev_idx=before("idx"),
                             prev_frame=before("frame"), prev_ts=before("ts_ns"))
    turns = data.filter(C("prev_client").is_not_null() & (C("prev_client") != C("from_client")))
    server = ~C("from_client")
    think = (C("ts_ns") - C("prev_ts")
             - pl.when(server).then(C("server_rtt")).otherwise(C("client_rtt"))).clip(0)
    return (turns.join(rtt, on="stream", how="left", maintain_order="left")
            .select(C("stream").cast(pl.UInt32),
                    kind=pl.when(server).then(pl.lit("server_think"))
                    .otherwise(pl.lit("client_think")),
                    side=pl.when(server).then(pl.lit("server")).otherwise(pl.lit("client")),
                    first_frame=C("prev_frame").cast(pl.UInt32),
                    last_frame=C("frame").cast(pl.UInt32), start_ns=C("prev_ts"),
                    end_ns=C("ts_ns"), start_idx=C("prev_idx").cast(pl.UInt32),
                    end_idx=C("idx").cast(pl.UInt32), think_ns=think)
            .filter(C("think_ns") >= THINK_MIN_NS))
