"""Per direction and per connection: what happened between the points.

For a direction whose packets pass the upstream point U before the downstream point D:

- matched: packets seen at U and at D;
- lost_between_points: seen at U, never at D (only packets that should have reached D
  while D was capturing: U's time plus the direction's median delay inside D's capture);
  loss_bursts: runs of consecutive lost packets of a connection and direction;
- duplicated_between_points: copies seen at D beyond the first of a packet seen at U;
- reordered_between_points: packets that reached D after a packet U saw later
  (overtaken), by capture order at each point;
- one-way delay: D's time of the first copy (on a's clock) minus U's time.
"""
from __future__ import annotations

from typing import cast

import numpy as np
import polars as pl

from tcpsift.compare import offload
from tcpsift.compare._points import flow_marks, group_counts, rank_order
from tcpsift.compare.matching import assign

C = pl.col
DIRECTIONS = ("c2s", "s2c")
DIRECTION = pl.Enum(DIRECTIONS)


def direction_of(s2c: np.ndarray) -> pl.Series:
    """The `direction` column (DIRECTION) of a boolean array that is True for s2c (through
    a condition: NumPy text arrays of a million rows are slow to make and convert)."""
    return pl.select(pl.when(pl.Series(s2c)).then(pl.lit("s2c", DIRECTION))
                     .otherwise(pl.lit("c2s", DIRECTION)).alias("direction")).to_series()


B_ROW = 1 << 32     # row ids: a's frame, or b's frame + B_ROW


def _by_frame(rows: pl.DataFrame, column: str, fill, dtype) -> np.ndarray:
    """`column` of `rows` in an array indexed by frame number (a dense index: the point's
    rows are gathered from it instead of joined)."""
    out = np.full((cast("int | None", rows["frame"].max()) or 0) + 1, fill, dtype)
    out[rows["frame"].to_numpy()] = rows[column].to_numpy()
    return out


def frame_index(rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(conn, s2c) of a point's rows (frame, conn, direction) by frame number: -1 and
    False for the frames not among them."""
    conn = _by_frame(rows, "conn", -1, np.int64)
    s2c = np.zeros(len(conn), bool)
    s2c[rows["frame"].to_numpy()] = rows["direction"].to_physical().to_numpy() == 1
    return conn, s2c


def fates(a_rows: pl.DataFrame, b_rows: pl.DataFrame, upstream: dict[str, str],
          down_span: dict[str, tuple[int, int]], pairs: pl.DataFrame,
          index: dict | None = None) -> pl.DataFrame:
    """One row per upstream packet (of connections seen at both points): conn, direction,
    frame_up, t_up, copies (seen at D), frame_down and t_down (its first copy), lost,
    duplicated, delay_ns, reordered. `a_rows`/`b_rows`: key, t (a's clock), frame, conn,
    direction. `down_span`: per direction, the downstream capture's first and last time on
    a's clock. `pairs` (frame_a, frame_b): packets whose key occurs once at each point,
    already paired; only the others go through `assign`. `index`: frame_index of each
    point's rows, when already made."""
    at = {"a": a_rows, "b": b_rows}
    a_up = {d: upstream[d] == "a" for d in DIRECTIONS}
    index = index or {"a": frame_index(a_rows), "b": frame_index(b_rows)}
    (conn_a, s2c_a), (conn_b, _) = index["a"], index["b"]
    fa, fb = pairs["frame_a"].to_numpy(), pairs["frame_b"].to_numpy()
    conn_of_fa = conn_a[fa]
    same = (conn_of_fa >= 0) & (conn_of_fa == conn_b[fb])
    fa, fb = fa[same], fb[same]
    pair_a_up = np.where(s2c_a[fa], a_up["s2c"], a_up["c2s"])
    # per upstream frame of each point: the frame downstream (0: none yet)
    down_of = {p: np.zeros(len(c), np.int64) for p, c in (("a", conn_a), ("b", conn_b))}
    down_of["a"][fa[pair_a_up]] = fb[pair_a_up]
    down_of["b"][fb[~pair_a_up]] = fa[~pair_a_up]
    paired = {"a": np.zeros(len(conn_a), bool), "b": np.zeros(len(conn_b), bool)}
    paired["a"][fa], paired["b"][fb] = True, True
    parts, ups, downs = [], [], []
    for p, other in (("a", "b"), ("b", "a")):
        # (NumPy masks, and the columns chosen before the rows: a filter copies every
        # column it is given)
        s2c = at[p]["direction"].to_physical().to_numpy() == 1
        up_mask = np.where(s2c, a_up["s2c"], a_up["c2s"]) == (p == "a")
        alone = ~paired[p][at[p]["frame"].to_numpy()]
        row = C("frame").cast(pl.Int64) + (p == "b") * B_ROW
        up = at[p].select("conn", "direction", "frame", "t").filter(pl.Series(up_mask))
        parts.append((p, other, up, down_of[p][up["frame"].to_numpy()]))
        # the rest: keys repeated at a point, or seen at one point only
        ups.append(at[p].select("key", "t", row=row).filter(pl.Series(up_mask & alone)))
        downs.append(at[p].select("key", "t", "frame", "conn", "direction", *SEGMENT, row=row)
                         .filter(pl.Series(~up_mask & alone)))
    rest_up, rest_down = pl.concat(ups), pl.concat(downs)
    assigned = assign(rest_up, rest_down.select("key", "t", "row"))
    copies = (assigned.filter(C("up_row").is_not_null())
              .join(rest_down.select("row", "frame"), on="row").sort("t").group_by("up_row")
              .agg(copies=pl.len(), t_down=C("t").first(), frame_down=C("frame").first()))
    t_of = {p: _by_frame(at[p], "t", 0, np.int64) for p in "ab"}
    tables = []
    for p, other, up, down_frame in parts:
        found = down_frame > 0
        tables.append(up.select("conn", "direction", frame_up="frame", t_up="t",
                                row=C("frame").cast(pl.Int64) + (p == "b") * B_ROW).with_columns(
            copies=pl.Series(found.astype(np.int64)),
            frame_down=pl.Series(np.where(found, down_frame, 0)).cast(pl.UInt32),
            t_down=pl.Series(np.where(found, t_of[other][down_frame], 0))))
    # (each point's upstream rows stay in its capture order: _with_flow_marks reads it)
    rows = pl.concat(tables).join(copies, left_on="row", right_on="up_row", how="left",
                                  suffix="_rest", maintain_order="left")
    rest = C("copies_rest").is_not_null()
    rows = rows.with_columns(
        copies=pl.when(rest).then(C("copies_rest").cast(pl.Int64)).otherwise("copies"),
        frame_down=pl.when(rest).then("frame_down_rest").when(C("copies") > 0)
        .then("frame_down"),
        t_down=pl.when(rest).then("t_down_rest").when(C("copies") > 0).then("t_down"),
    ).with_columns(delay_ns=C("t_down") - C("t_up"))
    rows = _by_byte_range(rows, at, rest_down, assigned)
    # (per direction, two values: conditions, not joins, over a million rows)
    medians = dict(rows.group_by("direction").agg(C("delay_ns").median()).iter_rows())

    def per_direction(values: dict) -> pl.Expr:
        return (pl.when(C("direction") == "c2s").then(pl.lit(values.get("c2s")))
                .otherwise(pl.lit(values.get("s2c"))))
    expected = C("t_up") + per_direction(medians).fill_null(0).cast(pl.Int64)
    in_span = ((expected >= per_direction({d: s for d, (s, _) in down_span.items()}))
               & (expected <= per_direction({d: e for d, (_, e) in down_span.items()})))
    rows = rows.with_columns(lost=(C("copies") == 0) & in_span,
                             duplicated=pl.max_horizontal(C("copies") - 1, pl.lit(0)))
    return _with_flow_marks(rows).select(
        "conn", "direction", "frame_up", "t_up", "copies", "frame_down", "t_down", "lost",
        "loss_burst", "duplicated", "delay_ns", "reordered", "approximate")


SEGMENT = ("seq", "tcp_len", "ack", "tsval")


def _by_byte_range(rows: pl.DataFrame, at: dict, rest_down: pl.DataFrame,
                   assigned: pl.DataFrame) -> pl.DataFrame:
    """`rows` (one per upstream packet) with the data segments that no packet downstream
    matched but whose bytes arrived (tcpsift.compare.offload), and `approximate`."""
    flow = C("conn").cast(pl.Int64) * 2 + (C("direction") == "s2c").cast(pl.Int64)
    lonely = rows.filter(C("copies") == 0).select("row", "conn", "direction", t="t_up")
    # (the few unmatched rows' segment fields, gathered by frame number: not a join, nor a
    # scan of each point; a row's frame at its point is an upstream packet there)
    wanted = lonely["row"].to_numpy()
    info = pl.concat([_rows_of_frames(at[p], wanted[(wanted >= B_ROW) == (p == "b")]
                                      - (p == "b") * B_ROW).select(
        *SEGMENT, row=C("frame").cast(pl.Int64) + (p == "b") * B_ROW) for p in "ab"])
    lonely_up = lonely.join(info, on="row").filter(C("tcp_len") > 0).with_columns(flow=flow)
    taken = assigned.filter(C("up_row").is_not_null()).select("row")
    lonely_down = (rest_down.join(taken, on="row", how="anti").filter(C("tcp_len") > 0)
                   .with_columns(flow=flow))
    if lonely_up.is_empty() or lonely_down.is_empty():
        return rows.with_columns(approximate=pl.lit(False))
    n = int(max(lonely_up["flow"].to_numpy().max(),
                lonely_down["flow"].to_numpy().max())) + 1
    arrived = C("copies") > 0
    exact = rows.filter(arrived & flow.is_in(lonely_up["flow"].unique().implode())) \
        .with_columns(flow=flow)
    wide = rows.select(**{f"{name}_{d}": agg(C("delay_ns").filter(arrived & (C("direction") == d)))
                          for name, agg in (("low", pl.Expr.min), ("high", pl.Expr.max))
                          for d in DIRECTIONS}).row(0, named=True)
    ranges = {}
    for name, agg in (("low", C("delay_ns").min()), ("high", C("delay_ns").max())):
        values = np.full(n, np.nan)
        for d in DIRECTIONS:    # flows without exact matches: their direction's
            if wide[f"{name}_{d}"] is not None:
                values[np.arange(n) % 2 == (d == "s2c")] = wide[f"{name}_{d}"]
        by_flow = exact.group_by("flow").agg(agg).filter(C("flow") < n)
        values[by_flow["flow"].to_numpy()] = by_flow["delay_ns"].to_numpy()
        ranges[name] = values
    found = offload.byte_range_matches(
        lonely_up.with_columns(C("tsval").fill_null(0), C("ack").fill_null(0)),
        lonely_down.with_columns(C("tsval").fill_null(0), C("ack").fill_null(0)), ranges)
    if found.is_empty():
        return rows.with_columns(approximate=pl.lit(False))
    rows = rows.join(found.rename({"frame_down": "frame_range", "t_down": "t_range"}),
                     on="row", how="left", maintain_order="left")
    approximate = C("t_range").is_not_null()
    return rows.with_columns(
        copies=pl.when(approximate).then(1).otherwise("copies"),
        frame_down=pl.when(approximate).then("frame_range").otherwise("frame_down"),
        t_down=pl.when(approximate).then("t_range").otherwise("t_down"),
        delay_ns=pl.when(approximate).then(C("t_range") - C("t_up")).otherwise("delay_ns"),
        approximate=approximate).drop("frame_range", "t_range")


def _rows_of_frames(rows: pl.DataFrame, frames: np.ndarray) -> pl.DataFrame:
    """The rows of `rows` (distinct frame numbers) with these frame numbers (those present)."""
    if not len(frames) or rows.is_empty():
        return rows.clear()
    index = _by_frame(rows.select("frame", row=pl.int_range(pl.len(), dtype=pl.Int64)),
                      "row", -1, np.int64)
    at = index[frames[frames < len(index)]]
    return rows[at[at >= 0]]


def by_rank(rank: np.ndarray, block: np.ndarray, blocks: int) -> np.ndarray:
    """The order of rows by `block` (0..blocks-1), then by `rank` (distinct within a
    block: a point's Point.rank): a radix sort of one key (tcpsift.compare._points.rank_order)."""
    return rank_order(np.ascontiguousarray(rank, dtype=np.int64),
                      np.ascontiguousarray(block, dtype=np.uint8), blocks)


def _with_flow_marks(rows: pl.DataFrame) -> pl.DataFrame:
    """`reordered`: a packet U saw later reached D first (capture order at each point);
    `loss_burst`: a lost packet whose predecessor in its flow (upstream order) was not
    lost: the first of a burst of losses. `rows`: a flow's rows in its upstream point's
    capture order (tcpsift.compare._points.flow_marks)."""
    s2c = (rows["direction"] == "s2c").to_numpy()
    flow = rows["conn"].to_numpy().astype(np.int64) * 2 + s2c
    reordered, burst = flow_marks(
        flow, rows["frame_down"].fill_null(0).cast(pl.Int64).to_numpy(),
        (rows["copies"].to_numpy() > 0).view(np.uint8),
        rows["lost"].to_numpy().view(np.uint8))
    return rows.with_columns(reordered=pl.Series(reordered), loss_burst=pl.Series(burst))


QUANTILES = {"min": 0.0, "median": 0.5, "p99": 0.99, "max": 1.0}
FEW_GROUPS = 8


def _quantiles(g: np.ndarray, delay: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per group 0..n-1 of `g`, the QUANTILES of `delay` (interpolated linearly; NaN for an
    empty group): for a few groups, NumPy's quantile of each (a partition, not a sort);
    else one sort by group and delay."""
    out = {name: np.full(n, np.nan) for name in QUANTILES}
    if not len(delay):
        return out
    if n <= FEW_GROUPS:
        for k in range(n):
            mine = delay[g == k]
            if len(mine):
                for name, value in zip(QUANTILES, np.quantile(mine, list(QUANTILES.values()))):
                    out[name][k] = value
        return out
    least = int(delay.min())
    spread = int(delay.max()) - least + 1
    whole = delay.astype(np.int64)
    if spread * n < 2**53 and np.array_equal(whole, delay):
        # one exact key, group then delay (nanoseconds), sorted itself: no argsort; each
        # group's start found by its first key, and only the delays picked are divided out
        key = np.sort(g.astype(np.int64) * spread + (whole - least))
        groups = np.arange(n, dtype=np.int64)
        start = np.searchsorted(key, groups * spread)
        size = np.diff(np.r_[start, len(key)])
        last = len(key) - 1

        def at(positions: np.ndarray) -> np.ndarray:
            return (key[np.minimum(positions, last)] - groups * spread + least).astype(
                delay.dtype)
        return _picked(size, start, at)
    if spread * n < 2**62:      # one key: group, then delay
        order = np.argsort(g * spread + (delay - least))
        g, delay = g[order], delay[order]
    else:
        order = np.lexsort((delay, g))
        g, delay = g[order], delay[order]
    size = np.bincount(g, minlength=n)
    start = np.searchsorted(g, np.arange(n))
    last = len(delay) - 1
    return _picked(size, start, lambda positions: delay[np.minimum(positions, last)])


def _picked(size: np.ndarray, start: np.ndarray, at) -> dict[str, np.ndarray]:
    """The QUANTILES per group of values sorted by group, then value: group k's are at
    start[k] .. start[k] + size[k] - 1; `at(positions)` gives the values there (one
    position per group)."""
    out = {}
    for name, q in QUANTILES.items():
        position = q * np.maximum(size - 1, 0)
        low, high = np.floor(position).astype(np.int64), np.ceil(position).astype(np.int64)
        at_low, at_high = at(start + low), at(start + high)
        out[name] = np.where(size > 0, at_low + (position - low) * (at_high - at_low), np.nan)
    return out



def summary(fate: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """matched, lost, duplicated, reordered, delay min/median/p99/max (ms, quantiles
    interpolated linearly, as Polars' "linear") per direction, or per connection and
    direction (`by`). NumPy over one sort: Polars' quantiles per group took a second for
    130k groups."""
    s2c = (fate["direction"] == "s2c").to_numpy().astype(np.int64)
    # group numbers are dense (connections are numbered from 0): no sort to find them
    inverse = s2c if by == ["direction"] else fate["conn"].to_numpy().astype(np.int64) * 2 + s2c
    n = int(inverse.max()) + 1 if len(inverse) else 0
    groups = np.arange(n)
    copies = fate["copies"].to_numpy()
    approximate = fate["approximate"].to_numpy()

    def flags(column: str) -> np.ndarray:
        return np.ascontiguousarray(fate[column].to_numpy(), dtype=np.bool_).view(np.uint8)
    found = group_counts(np.ascontiguousarray(inverse, dtype=np.int64), n,
                         np.ascontiguousarray(copies, dtype=np.int64), flags("lost"),
                         flags("loss_burst"),
                         np.ascontiguousarray(fate["duplicated"].to_numpy(), dtype=np.int64),
                         flags("reordered"), flags("approximate"))
    counts = {"sent": found["sent"], "matched": found["matched"],
              "lost_between_points": found["lost"], "loss_bursts": found["loss_bursts"],
              "duplicated_between_points": found["duplicated"],
              "reordered_between_points": found["reordered"],
              "matched_by_byte_range": found["byte_range"]}
    exact = found["exact"]
    # the delays of byte-range matches only where a group has no exact one
    arrived = (copies > 0) & (~approximate | (exact[inverse] == 0))
    g, delay = inverse[arrived], fate["delay_ns"].to_numpy()[arrived]
    # (text through a condition: a NumPy array of strings converts ten times slower)
    table: dict[str, np.ndarray | pl.Series] = {"direction": pl.select(
        pl.when(pl.Series(groups % 2 == 1)).then(pl.lit("s2c")).otherwise(pl.lit("c2s"))
    ).to_series()}
    if by != ["direction"]:
        table = {"conn": groups // 2, **table}
    table.update({name: values.astype(np.int64) for name, values in counts.items()})
    for name, values in _quantiles(g, delay, n).items():
        table[f"delay_{name}_ms"] = pl.Series(values / 1e6).fill_nan(None)
    table["delay_approximate"] = (exact == 0) & (counts["matched_by_byte_range"] > 0)
    out = pl.DataFrame(table).filter(C("sent") > 0)
    return out.with_columns(C("conn").cast(pl.UInt32)) if "conn" in table else out
