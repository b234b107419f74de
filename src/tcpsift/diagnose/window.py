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

import numpy as np
import polars as pl

from tcpsift.diagnose.groups import following, previous, run_ids, running_max, starts_of

C = pl.col
DIP_FRACTION = 0.5

EPISODE_SCHEMA = {"stream": pl.UInt32, "kind": pl.String, "side": pl.String,
                  "first_frame": pl.UInt32, "last_frame": pl.UInt32, "start_ns": pl.Int64,
                  "end_ns": pl.Int64, "start_idx": pl.UInt32, "end_idx": pl.UInt32,
                  "frames": pl.UInt32, "min_window": pl.Int64, "min_window_frame": pl.UInt32}


def _runs(adverts: pl.DataFrame, inside: np.ndarray, starts: np.ndarray,
          kind: str) -> pl.DataFrame:
    """Maximal runs of `adverts` rows (one side's window advertisements, sorted by
    stream, side and time; `starts` marks each side's first) where `inside` holds; each
    ends at the side's next advertisement (or the connection's last row)."""
    nxt = {c: following(adverts[c].to_numpy(), starts) for c in ("idx", "frame", "ts_ns")}
    keyed = adverts.with_columns(
        _run=pl.Series(run_ids(inside, starts)),
        _next_idx=pl.Series(nxt["idx"][0]).set(pl.Series(~nxt["idx"][1]), None),
        _next_frame=pl.Series(nxt["frame"][0]).set(pl.Series(~nxt["frame"][1]), None),
        _next_ts=pl.Series(nxt["ts_ns"][0]).set(pl.Series(~nxt["ts_ns"][1]), None))
    runs = (keyed.filter(pl.Series(inside)).group_by("_run", maintain_order=True)
            .agg(C("stream").first(), C("from_client").first(),
                 first_frame=C("frame").first(), start_ns=C("ts_ns").first(),
                 start_idx=C("idx").first(), frames=pl.len().cast(pl.UInt32),
                 reopen_idx=C("_next_idx").last(), reopen_frame=C("_next_frame").last(),
                 reopen_ns=C("_next_ts").last(), last_idx=C("last_idx").last(),
                 last_ts=C("last_ts").last(), last_row_frame=C("last_frame_of_stream").last(),
                 min_window=C("win").min(), min_window_frame=C("frame").sort_by("win").first()))
    return runs.select(
        "stream", kind=pl.lit(kind),
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
               .sort("stream", "from_client", "idx")
               .join(ends, on="stream", how="left", maintain_order="left"))
    starts = starts_of(adverts["stream"].to_numpy(), adverts["from_client"].to_numpy())
    win = adverts["win"].to_numpy()
    zero = _runs(adverts, win == 0, starts, "zero_window")
    top, _ = running_max(win, np.ones(len(win), bool), starts)
    before, ok = previous(top, starts)
    dips = _runs(adverts, ok & (win < DIP_FRACTION * before), starts, "window_dip")
    # a dip that went down to 0 is the zero-window episode's own start, not a dip
    dips = dips.filter(C("min_window") > 0)
    return pl.concat([zero, dips]).cast(EPISODE_SCHEMA).sort("stream", "start_idx")  # type: ignore[arg-type]


def window_full(rows: pl.DataFrame, lagged_c: bool, lagged_s: bool) -> pl.Series:
    """Per row: a sender with bytes in flight cannot send a full segment more (its
    receiver's window is open but used up). `lagged_c`/`lagged_s`: with what that
    sender knew just after the row (timeline's *_lag columns), or a round trip later."""
    return rows.select((full_expr("c", lagged_c) | full_expr("s", lagged_s))
                       .fill_null(False).alias("window_full")).to_series()


def outstanding(side: str, lagged: bool) -> pl.Expr:
    """Bytes `side` ("c" or "s") has in flight, as that sender knows it."""
    una = C(f"una_{side}_lag") if lagged else C(f"una_{side}")
    return (C(f"hi_{side}") - una).clip(0)


def full_expr(side: str, lagged: bool) -> pl.Expr:
    rwnd = C(f"rwnd_{side}_lag") if lagged else C(f"rwnd_{side}")
    out, mss = outstanding(side, lagged), C(f"mss_{side}").cast(pl.Int64)
    return (rwnd > 0) & (out > 0) & (mss > 0) & (out + mss > rwnd)
