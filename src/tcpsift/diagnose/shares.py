"""Where each connection's time went (docs/diagnose.md, "Time shares").

Every stretch of time between two packets of a connection is given to one class: the
first of CLASSES that holds at its start. Episode classes hold from an episode's first
packet to its last (the handshake from the first SYN to the handshake's ACK); then the
full window, then data in flight (`rtt`: the sender waits for acknowledgments, paced by
the round trip and its congestion window), else `sender` (nothing outstanding while the
window is open: the application has nothing to send). The think classes hold from the
message answered to the answer; of that stretch, the part that is the round trip goes
to `rtt`.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.schema import DIAGNOSE_CLASSES

C = pl.col
# in priority order (tcpsift.schema declares them, with their meaning)
CLASSES = tuple(name for name, _ in DIAGNOSE_CLASSES)
EPISODE_CLASSES = ("zero_window", "loss", "server_think", "client_think")


def _covered(n: int, episodes: pl.DataFrame) -> np.ndarray:
    """Per timeline row: inside one of `episodes` ([start_idx, end_idx))."""
    marks = np.zeros(n + 1, np.int64)
    np.add.at(marks, episodes["start_idx"].to_numpy().astype(np.int64), 1)
    np.add.at(marks, episodes["end_idx"].to_numpy().astype(np.int64), -1)
    return np.cumsum(marks[:n]) > 0


# what each sender knows during a stretch: (client lagged, server lagged); see timeline
STATES = ((True, True), (False, True), (True, False), (False, False))


def state_times(rows: pl.DataFrame) -> np.ndarray:
    """Per STATES entry and row, how much of the row's gap is spent in it: while an
    acknowledgment seen at the point has not yet reached a sender (its round trip from
    the point), that sender's state is the lagged one."""
    gap = rows["gap_ns"].to_numpy().astype(np.int64)
    lc = np.minimum(rows["client_rtt"].to_numpy().astype(np.int64), gap)
    ls = np.minimum(rows["server_rtt"].to_numpy().astype(np.int64), gap)
    both = np.minimum(lc, ls)
    return np.vstack([both, np.clip(ls - lc, 0, None), np.clip(lc - ls, 0, None),
                      gap - np.maximum(lc, ls)])


def classify(rows: pl.DataFrame, episodes: pl.DataFrame, conns: pl.DataFrame) -> np.ndarray:
    """The class (index into CLASSES) of the time after each timeline row, per STATES
    entry (one row of the result per state)."""
    from tcpsift.diagnose.window import full_expr, outstanding

    n = len(rows)
    shake = (rows.select("stream", "ts_ns")
             .join(conns.select("stream", "syn_ts_ns", "ack_ts_ns"), on="stream", how="left", maintain_order="left")
             .select((C("ts_ns") >= C("syn_ts_ns"))
                     & (C("ts_ns") < C("ack_ts_ns").fill_null(np.iinfo(np.int64).max)))
             .to_series().fill_null(False).to_numpy())
    fixed = [shake] + [_covered(n, episodes.filter(C("kind") == kind))
                       for kind in EPISODE_CLASSES]
    out = []
    for lag_c, lag_s in STATES:
        held = rows.select(
            full=(full_expr("c", lag_c) | full_expr("s", lag_s)).fill_null(False),
            flight=(outstanding("c", lag_c) > 0) | (outstanding("s", lag_s) > 0))
        holds = [*fixed, held["full"].to_numpy(), held["flight"].to_numpy(), np.ones(n, bool)]
        out.append(np.argmax(np.vstack(holds), axis=0))
    return np.vstack(out)


def row_classes(classes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per row, the class of the state it spends the most time in."""
    return classes[np.argmax(times, axis=0), np.arange(classes.shape[1])]


def time_shares(rows: pl.DataFrame, classes: np.ndarray, times: np.ndarray,
                think: pl.DataFrame) -> pl.DataFrame:
    """Per stream: `{class}_ns` for every class (they add up to the time from the
    connection's first packet to its last). `classes` and `times`: per state and row."""
    stream = rows["stream"]
    per = (pl.concat([pl.DataFrame({"stream": stream, "cls": pl.Series(c, dtype=pl.UInt8),
                                    "gap_ns": pl.Series(t, dtype=pl.Int64)})
                      for c, t in zip(classes, times)])
           .group_by("stream", "cls").agg(C("gap_ns").sum()))
    wide = pl.DataFrame({"stream": rows["stream"].unique().sort()})
    for i, name in enumerate(CLASSES):
        wide = wide.join(per.filter(C("cls") == i).select("stream", C("gap_ns").alias(f"{name}_ns")),
                         on="stream", how="left", maintain_order="left")
    wide = wide.with_columns(C(f"{c}_ns").fill_null(0) for c in CLASSES)
    # a think stretch includes the round trip to the thinking side: that part is `rtt`
    thought = think.group_by("stream", "kind").agg(C("think_ns").sum())
    for kind in ("server_think", "client_think"):
        got = thought.filter(C("kind") == kind).select("stream", _t=C("think_ns"))
        wide = (wide.join(got, on="stream", how="left", maintain_order="left")
                .with_columns(_keep=pl.min_horizontal(C(f"{kind}_ns"), C("_t").fill_null(0)))
                .with_columns(rtt_ns=C("rtt_ns") + C(f"{kind}_ns") - C("_keep"))
                .with_columns(C("_keep").alias(f"{kind}_ns")).drop("_t", "_keep"))
    return wide
