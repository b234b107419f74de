"""`diagnose(capture)`: what limited each TCP connection, and for how long."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tcpsift.diagnose.exchanges import think_episodes
from tcpsift.diagnose.groups import following, run_ids, starts_of
from tcpsift.diagnose.loss import (
    TAIL_GAP_MOST,
    id_gap_rows,
    id_gaps,
    id_steps,
    loss_counts,
    recovery_episodes,
    segment_kinds,
    segment_sizes,
)
from tcpsift.diagnose.shares import CLASSES, classify, row_classes, state_times, time_shares
from tcpsift.diagnose.timeline import PACKET_COLUMNS as TIMELINE_COLUMNS
from tcpsift.diagnose.timeline import timeline
from tcpsift.diagnose.window import EPISODE_SCHEMA, full_expr, window_episodes

C = pl.col
EVIDENCE_FRAMES = 10   # first frames listed per connection
LIMIT_WORDS = {
    "handshake": "the handshake",
    "zero_window": "{side}'s receive window (zero window)",
    "window_full": "{side}'s receive window (full window)",
    "loss": "loss and recovery ({side}'s data)",
    "server_think": "the server's think time",
    "client_think": "the client's think time",
    "rtt": "the round-trip time (data in flight: congestion window or bandwidth)",
    "sender": "the sender (nothing outstanding while the window was open: application)",
    "none": "nothing (no time between packets)",
}


class DiagnoseError(ValueError):
    """Nothing to diagnose (no TCP connection, or none of the streams asked for)."""


@dataclass
class Diagnosis:
    """The result of `diagnose()`. Tables (Polars): `connections` (one row per TCP
    connection: time per class, shares, counts, the limit; columns in docs/schema.md),
    `episodes` (one row per episode: zero window, window dip, full window, loss recovery,
    server or client think time, with its first and last frame). `to_dict()` is the
    JSON of `tcpsift diagnose --format json`."""
    files: list
    connections: pl.DataFrame
    episodes: pl.DataFrame
    warnings: list = field(default_factory=list)
    complete: bool = True

    def evidence(self, stream: int) -> list[str]:
        """Sentences saying what limited connection `stream`, with the frames that show it."""
        row = self.connections.filter(C("stream") == stream).row(0, named=True)
        return evidence(row, self.episodes.filter(C("stream") == stream).to_dicts())

    def to_dict(self) -> dict:
        out = []
        by_stream: dict[int, list[dict]] = {}
        for e in self.episodes.to_dicts():
            by_stream.setdefault(e["stream"], []).append(e)
        for row in self.connections.iter_rows(named=True):
            eps = by_stream.get(row["stream"], [])
            out.append({
                **{k: row[k] for k in ("stream", "uid", "client", "client_port", "server",
                                       "server_port", "first_frame", "last_frame")},
                "duration_ms": row["duration_ns"] / 1e6, "limit": row["limit"],
                "limit_side": row["limit_side"],
                "time_ms": {c: row[f"{c}_ns"] / 1e6 for c in CLASSES},
                "shares": {c: row[f"{c}_share"] for c in CLASSES},
                "counts": {k: row[k] for k in COUNT_COLUMNS},
                "evidence": evidence(row, eps),
                "episodes": [_episode_dict(e) for e in eps]})
        return {"files": list(self.files), "connections": out, "warnings": list(self.warnings)}


COUNT_COLUMNS = ("zero_window_episodes", "zero_window_frames", "window_dips",
                 "window_full_episodes", "loss_episodes", "c2s_lost", "s2c_lost",
                 "c2s_retransmissions", "s2c_retransmissions", "spurious_retransmissions",
                 "timeouts",
                 "server_think_count", "server_think_median_ns", "server_think_max_ns",
                 "client_think_count")


def _episode_dict(e: dict) -> dict:
    return {"kind": e["kind"], "side": e["side"], "first_frame": e["first_frame"],
            "last_frame": e["last_frame"], "start_s": e["start_ns"] / 1e9,
            "duration_ms": e["duration_ns"] / 1e6, "frames": e["frames"],
            "min_window": e["min_window"], "min_window_frame": e["min_window_frame"]}


def _read(source, mode: str):
    import tcpsift
    from tcpsift.tcp import INPUT_COLUMNS
    from tcpsift.tcp.connections import PACKET_COLUMNS as CONN_COLUMNS

    if isinstance(source, tcpsift.Capture):
        return source, [str(f.get("path", "")) for f in source.info.files]
    paths = [source] if isinstance(source, (str, bytes, os.PathLike)) else list(source)
    cap = tcpsift.read(paths, mode=mode,
                       columns={*INPUT_COLUMNS, *CONN_COLUMNS, *TIMELINE_COLUMNS})
    return cap, [os.fsdecode(p) for p in paths]


def diagnose(source, streams=None, mode: str = "merge") -> Diagnosis:
    """What limited each TCP connection of `source` (a Capture from tcpsift.read, or
    the path(s) of capture files, read as one capture in `mode`), and for how long:
    time shares per class (tcpsift.diagnose.shares.CLASSES), counts, and the episodes
    with their frames. `streams`: only these tcp.stream numbers."""
    cap, files = _read(source, mode)
    from tcpsift.tcp import INPUT_COLUMNS
    from tcpsift.tcp.connections import PACKET_COLUMNS as CONN_COLUMNS

    absent = {*INPUT_COLUMNS, *CONN_COLUMNS, *TIMELINE_COLUMNS} - set(cap.packets.columns)
    if absent:
        raise DiagnoseError(f"the capture was read without the packet columns "
                            f"{', '.join(sorted(absent))}: read it with them (or all)")
    conns = cap.conns
    if len(conns) == 0:
        raise DiagnoseError("no TCP connection in the capture")
    if streams is not None:
        streams = sorted(set(int(s) for s in streams))
        missing = [s for s in streams if s >= len(conns) or s < 0]
        if missing:
            raise DiagnoseError(f"no TCP stream {', '.join(map(str, missing))} (the capture "
                                f"has {len(conns)}: 0 to {len(conns) - 1})")
    rows = timeline(cap, streams)
    if len(rows) == 0:
        raise DiagnoseError("no TCP packet to diagnose")
    wanted = conns if streams is None else conns.filter(C("stream").is_in(streams))
    rtt = wanted.select("stream", rtt_ns=pl.coalesce(
        C("syn_to_synack_ns") + C("synack_to_ack_ns"), C("ack_rtt_median_ns")))
    sizes = segment_sizes(rows)
    steps = id_steps(rows, sizes)
    gaps = id_gaps(steps)
    segs = segment_kinds(rows, rtt, id_gap_rows(steps, gaps),
                         gaps.filter(C("id_sequential")).select("stream", "from_client"), sizes,
                         id_gap_rows(steps, gaps, TAIL_GAP_MOST))
    counts = loss_counts(segs, gaps)
    think = think_episodes(segs, rows.select("stream", "server_rtt", "client_rtt").unique("stream"))
    episodes = pl.concat([window_episodes(rows), recovery_episodes(rows, segs).cast(EPISODE_SCHEMA),  # type: ignore[arg-type]
                          think.drop("think_ns").with_columns(
                              frames=pl.lit(2, pl.UInt32), min_window=pl.lit(None, pl.Int64),
                              min_window_frame=pl.lit(None, pl.UInt32)).select(*EPISODE_SCHEMA)
                          .cast(EPISODE_SCHEMA)])  # type: ignore[arg-type]
    classes = classify(rows, episodes, wanted)
    times = state_times(rows)
    episodes = pl.concat([episodes, _full_episodes(rows, row_classes(classes, times))])
    durations = episodes.join(think.select("stream", "start_idx", "kind", "think_ns"),
                              on=["stream", "start_idx", "kind"], how="left", maintain_order="left")
    episodes = (durations.with_columns(duration_ns=C("think_ns").fill_null(
        C("end_ns") - C("start_ns"))).drop("think_ns")
        .sort("stream", "start_ns", "kind"))
    shares = time_shares(rows, classes, times, think)
    table = _connections(wanted, shares, counts, episodes, think)
    return Diagnosis(files, table, episodes.drop("start_idx", "end_idx").select(
        "stream", "kind", "side", "first_frame", "last_frame", "start_ns", "duration_ns",
        "frames", "min_window", "min_window_frame"), list(cap.warnings), cap.complete)


def _full_episodes(rows: pl.DataFrame, classes: np.ndarray) -> pl.DataFrame:
    """Runs of rows whose time the full window holds, as episodes."""
    full = CLASSES.index("window_full")
    # _client: the client's data held back (the server's window is full)
    marked = rows.select("stream", "idx", "frame", "ts_ns",
                         _client=full_expr("c", True) | full_expr("c", False)) \
        .with_columns(_in=pl.Series(classes == full))
    starts = starts_of(rows["stream"].to_numpy())
    inside = classes == full

    def after(column: str) -> pl.Series:
        values, ok = following(rows[column].to_numpy(), starts)
        return pl.Series(values).set(pl.Series(~ok), None)

    marked = marked.with_columns(_run=pl.Series(run_ids(inside, starts)),
                                 _next_idx=after("idx"), _next_frame=after("frame"),
                                 _next_ts=after("ts_ns"))
    runs = marked.filter(C("_in")).group_by("stream", "_run", maintain_order=True).agg(
        first_frame=C("frame").first(), start_ns=C("ts_ns").first(),
        start_idx=C("idx").first(), frames=pl.len().cast(pl.UInt32),
        end_idx=C("_next_idx").last().fill_null(C("idx").last()),
        last_frame=C("_next_frame").last().fill_null(C("frame").last()),
        end_ns=C("_next_ts").last().fill_null(C("ts_ns").last()),
        client=C("_client").first().fill_null(False))
    return runs.select(
        "stream", kind=pl.lit("window_full"),
        side=pl.when(C("client")).then(pl.lit("server")).otherwise(pl.lit("client")),
        first_frame="first_frame", last_frame="last_frame", start_ns="start_ns",
        end_ns="end_ns", start_idx="start_idx", end_idx="end_idx", frames="frames",
        min_window=pl.lit(None, pl.Int64), min_window_frame=pl.lit(None, pl.UInt32),
    ).cast(EPISODE_SCHEMA)  # type: ignore[arg-type]


def _connections(conns: pl.DataFrame, shares: pl.DataFrame, counts: pl.DataFrame,
                 episodes: pl.DataFrame, think: pl.DataFrame) -> pl.DataFrame:
    """One row per connection: DIAGNOSE_COLUMNS (tcpsift.schema)."""
    from tcpsift.schema import DIAGNOSE_COLUMNS, polars_schema

    per_kind = episodes.group_by("stream").agg(
        zero_window_episodes=(C("kind") == "zero_window").sum(),
        zero_window_frames=C("frames").filter(C("kind") == "zero_window").sum(),
        window_dips=(C("kind") == "window_dip").sum(),
        window_full_episodes=(C("kind") == "window_full").sum(),
        loss_episodes=(C("kind") == "loss").sum())
    sides = counts.with_columns(d=pl.when(C("from_client")).then(pl.lit("c2s"))
                                .otherwise(pl.lit("s2c")))
    lost = sides.pivot(on="d", index="stream", values=["lost", "retransmissions"],
                       aggregate_function="sum") if len(sides) else None
    timeouts = counts.group_by("stream").agg(timeouts=C("timeouts").sum(),
                                             spurious_retransmissions=C("spurious").sum())
    thinking = think.group_by("stream").agg(
        server_think_count=(C("kind") == "server_think").sum(),
        server_think_median_ns=C("think_ns").filter(C("kind") == "server_think").median()
        .cast(pl.Int64),
        server_think_max_ns=C("think_ns").filter(C("kind") == "server_think").max(),
        client_think_count=(C("kind") == "client_think").sum())
    # whose window / whose data, for the classes that have a side: the side with most time
    side_of = (episodes.filter(C("kind").is_in(["zero_window", "window_full", "loss"]))
               .group_by("stream", "kind", "side").agg(C("duration_ns").sum())
               .sort("duration_ns", descending=True)
               .group_by("stream", "kind").agg(C("side").first()))
    table = (conns.select("stream", "uid", "client", "client_port", "server", "server_port",
                          "first_frame", "last_frame")
             .join(shares, on="stream", how="inner")
             .with_columns(duration_ns=pl.sum_horizontal(*(C(f"{c}_ns") for c in CLASSES))))
    table = table.with_columns(
        (C(f"{c}_ns") / C("duration_ns")).fill_nan(0.0).alias(f"{c}_share") for c in CLASSES)
    ns = np.column_stack([table[f"{c}_ns"].to_numpy() for c in CLASSES]) \
        if len(table) else np.zeros((0, len(CLASSES)))
    top = np.array([CLASSES[i] for i in np.argmax(ns, axis=1)], dtype=object) \
        if len(table) else np.array([], dtype=object)
    top = np.where(ns.max(axis=1) > 0, top, "none") if len(table) else top
    table = table.with_columns(limit=pl.Series(top.tolist(), dtype=pl.String))
    table = (table.join(side_of.rename({"kind": "limit", "side": "limit_side"}),
                        on=["stream", "limit"], how="left", maintain_order="left")
             .with_columns(limit_side=pl.when(C("limit") == "server_think").then(pl.lit("server"))
                           .when(C("limit") == "client_think").then(pl.lit("client"))
                           .otherwise(C("limit_side")).fill_null("")))
    table = table.join(per_kind, on="stream", how="left", maintain_order="left")
    if lost is not None:
        table = table.join(lost, on="stream", how="left", maintain_order="left")
    for d in ("c2s", "s2c"):
        for name in ("lost", "retransmissions"):
            if f"{name}_{d}" in table.columns:
                table = table.rename({f"{name}_{d}": f"{d}_{name}"})
            else:
                table = table.with_columns(pl.lit(0).alias(f"{d}_{name}"))
    table = table.join(timeouts, on="stream", how="left", maintain_order="left").join(thinking, on="stream", how="left")
    firsts = (episodes.join(table.select("stream", "limit"), on="stream")
              .filter(C("kind") == C("limit")).sort("start_ns")
              .group_by("stream").agg(evidence_frames=C("first_frame").head(EVIDENCE_FRAMES)))
    table = table.join(firsts, on="stream", how="left", maintain_order="left").with_columns(
        # the handshake's evidence is its first frame (the SYN)
        evidence_frames=pl.when(C("limit") == "handshake")
        .then(pl.concat_list(C("first_frame"))).otherwise(C("evidence_frames")))
    schema = polars_schema(DIAGNOSE_COLUMNS)
    counted = [c.name for c in DIAGNOSE_COLUMNS if c.dtype in ("UInt32", "Int64")
               and c.name not in ("server_think_median_ns", "server_think_max_ns")]
    table = table.with_columns(C(c).fill_null(0) for c in counted if c in table.columns)
    return table.select(C(name).cast(dtype) for name, dtype in schema.items()).sort("stream")


def _ms(ns) -> str:
    return f"{ns / 1e6:,.1f} ms" if ns < 10e9 else f"{ns / 1e9:,.2f} s"


def _frames(eps: list[dict]) -> str:
    frames = [e["first_frame"] for e in eps[:EVIDENCE_FRAMES]]
    more = len(eps) - len(frames)
    return ", ".join(map(str, frames)) + (f" and {more} more" if more > 0 else "")


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def evidence(row: dict, eps: list[dict]) -> list[str]:
    """Sentences: what limited the connection (`row`: its row of the connection table),
    then each thing that held it back, with its time share and the first frames of its
    episodes (`eps`: its rows of the episode table, in time order)."""
    def share(name):
        return f"{_ms(row[f'{name}_ns'])}, {100 * row[f'{name}_share']:.1f} %"

    def kind(k, who=None):
        return [e for e in eps if e["kind"] == k and who in (None, e["side"])]

    def total(episodes, column="duration_ns"):
        return sum(e[column] for e in episodes)

    side = row["limit_side"]
    out = [f"limited by {LIMIT_WORDS[row['limit']].format(side=side or '?')}"
           + (f": {100 * row[row['limit'] + '_share']:.1f} % of {_ms(row['duration_ns'])}"
              if row["limit"] != "none" else "")]
    if row["handshake_ns"] > 0:
        out.append(f"handshake: {share('handshake')} (from frame {row['first_frame']})")
    for who in ("client", "server"):
        z = kind("zero_window", who)
        if len(z):
            out.append(f"{who}'s receive window zero: {_n(len(z), 'episode')} "
                       f"({_n(total(z, 'frames'), 'frame')}), {_ms(total(z))}; "
                       f"first frames {_frames(z)}")
        f = kind("window_full", who)
        if len(f):
            out.append(f"{who}'s receive window full (bytes in flight reached it): "
                       f"{_n(len(f), 'episode')}, {_ms(total(f))}; first frames {_frames(f)}")
        for dip in kind("window_dip", who):
            out.append(f"{who}'s receive window dipped to {dip['min_window']:,} bytes at frame "
                       f"{dip['min_window_frame']} (frames {dip['first_frame']} to "
                       f"{dip['last_frame']}, {_ms(dip['duration_ns'])}) without reaching zero")
    if row["zero_window_ns"] > 0 or row["window_full_ns"] > 0:
        out.append(f"time held by the receive window: zero {share('zero_window')}; full "
                   f"{share('window_full')}")
    lost = kind("loss")
    if len(lost) or row["c2s_lost"] or row["s2c_lost"]:
        out.append(f"loss: {_n(row['c2s_lost'], 'packet')} lost client→server, {row['s2c_lost']} "
                   f"server→client; "
                   f"{_n(row['c2s_retransmissions'] + row['s2c_retransmissions'], 'retransmission')}, "
                   f"{_n(row['timeouts'], 'timeout')}; {_n(len(lost), 'recovery episode')}, "
                   f"{share('loss')}"
                   + (f"; first frames {_frames(lost)}" if len(lost) else ""))
    if row["spurious_retransmissions"]:
        out.append(f"{_n(row['spurious_retransmissions'], 'spurious retransmission')} (the receiver "
                   "had the data: tshark's verdict or its D-SACK), not counted as loss")
    for who, k in (("server", "server_think"), ("client", "client_think")):
        t = kind(k)
        if len(t):
            d = sorted(e["duration_ns"] for e in t)
            median = (d[(len(d) - 1) // 2] + d[len(d) // 2]) / 2
            out.append(f"{who}'s think time: {_n(len(t), 'time')}, median {_ms(median)}, "
                       f"max {_ms(d[-1])}, {share(k)}; first frames (the message "
                       f"answered) {_frames(t)}")
    if row["sender_share"] >= 0.05:
        out.append(f"nothing outstanding while the window was open (sender/application): "
                   f"{share('sender')}")
    if row["rtt_share"] >= 0.05:
        out.append(f"data in flight, waiting for acknowledgments (round trip, congestion "
                   f"window): {share('rtt')}")
    return out
