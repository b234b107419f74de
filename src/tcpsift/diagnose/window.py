"""The receiver's window: zero-window episodes, window dips, and the full window
(docs/diagnose.md, "Receiver window").

A zero-window episode is a maximal run of one side's packets (no SYN, FIN or RST) that
advertise a window of 0; it ends with that side's next packet advertising more (the
window update, `reopen_frame`), or with the connection. A dip is such a run of windows
below DIP_FRACTION of the largest window that side had advertised before, that never
reaches 0 (the receiving application reads slowly; the sender is not necessarily held
back). The window is full when the bytes in flight leave less than one segment of the
advertised window: the sender may not send (RFC 4898's "limited by the receive window").
"""
from __future__ import annotations

import polars as pl

C = pl.col
DIP_FRACTION = 0.5

EPISODE_SCHEMA = {"stream": pl.UInt32, "kind": pl.String, "side": pl.String,
                  "first_frame": pl.UInt32, "last_frame": pl.UInt32, "start_ns": pl.Int64,
                  "end_ns": pl.Int64, "start_idx": pl.UInt32, "end_idx": pl.UInt32,
                  "frames": pl.UInt32, "min_window": pl.Int64, "min_window_frame": pl.UInt32}


def _runs(adverts: pl.DataFrame, inside: pl.Expr, kind_of) -> pl.DataFrame:
    """Maximal runs of `adverts` rows (one side's window advertisements, in order) where
    `inside` holds; each ends at the side's next advertisement (or the connection's last
    row). `kind_of`: the kind of a run from its aggregated `reached_zero`."""
    keyed = adverts.with_columns(_in=inside).with_columns(
        _next_idx=C("idx").shift(-1).over("stream", "from_client"),
        _next_frame=C("frame").shift(-1).over("stream", "from_client"),
        _next_ts=C("ts_ns").shift(-1).over("stream", "from_client"),
        _run=(C("_in") != C("_in").shift(1).over("stream", "from_client").fill_null(False))
        .cum_sum().over("stream", "from_client"))
    runs = (keyed.filter(C("_in")).group_by("stream", "from_client", "_run", maintain_order=True)
            .agg(first_frame=C("frame").first(), start_ns=C("ts_ns").first(),
                 start_idx=C("idx").first(), frames=pl.len().cast(pl.UInt32),
                 reopen_idx=C("_next_idx").last(), reopen_frame=C("_next_frame").last(),
                 reopen_ns=C("_next_ts").last(), last_idx=C("last_idx").last(),
                 last_ts=C("last_ts").last(), last_row_frame=C("last_frame_of_stream").last(),
                 min_window=C("win").min(), min_window_frame=C("frame").sort_by("win").first(),
                 reached_zero=(C("win") == 0).any()))
    return runs.select(
        "stream", kind=kind_of(C("reached_zero")),
        side=pl.when(C("from_client")).then(pl.lit("client")).otherwise(pl.lit("server")),
        first_frame="first_frame",
        last_frame=C("reopen_frame").fill_null(C("last_row_frame")).cast(pl.UInt32),
        start_ns="start_ns", end_ns=C("reopen_ns").fill_null(C("last_ts")),
        start_idx="start_idx", end_idx=C("reopen_idx").fill_null(C("last_idx")),
        frames="frames", min_window="min_window",
        min_window_frame=C("min_window_frame").cast(pl.UInt32))


def window_episodes(rows: pl.DataFrame) -> pl.DataFrame:
    """Zero-window episodes (kind "zero_window") and dips ("window_dip"), one row each;
    `side` is the receiver whose window it is. `end_idx`/`last_frame`: the window update
    that ended it (or the connection's last packet)."""
    ends = rows.group_by("stream").agg(last_idx=C("idx").max(), last_ts=C("ts_ns").max(),
                                       last_frame_of_stream=C("frame").last())
    adverts = (rows.filter(~C("syn") & ~C("fin") & ~C("rst") & C("window_scaled").is_not_null())
               .select("stream", "from_client", "idx", "frame", "ts_ns",
                       win=C("window_scaled").cast(pl.Int64))
               .join(ends, on="stream", how="left"))
    zero = _runs(adverts, C("win") == 0, lambda _: pl.lit("zero_window"))
    before = C("win").cum_max().shift(1).over("stream", "from_client")
    dips = _runs(adverts, C("win") < DIP_FRACTION * before, lambda z: pl.lit("window_dip"))
    # a dip that went down to 0 is the zero-window episode's own start, not a dip
    dips = dips.filter(C("min_window") > 0)
    return pl.concat([zero, dips]).cast(EPISODE_SCHEMA).sort("stream", "start_idx")  # type: ignore[arg-type]


def window_full(rows: pl.DataFrame) -> pl.Series:
    """Per row: a sender with bytes in flight cannot send a full segment more (its
    receiver's window is open but used up)."""
    def full(side: str) -> pl.Expr:
        rwnd, out, mss = C(f"rwnd_{side}"), C(f"out_{side}"), C(f"mss_{side}").cast(pl.Int64)
        return (rwnd > 0) & (out > 0) & (mss > 0) & (out + mss > rwnd)
    return rows.select((full("c") | full("s")).fill_null(False).alias("window_full")).to_series()
