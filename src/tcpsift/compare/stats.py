"""Per direction and per connection: what happened between the points.

For a direction whose packets pass the upstream point U before the downstream point D:

- matched: packets seen at U and at D;
- lost_between_points: seen at U, never at D (only packets that should have reached D
  while D was capturing: U's time plus the direction's median delay inside D's capture);
- duplicated_between_points: copies seen at D beyond the first of a packet seen at U;
- reordered_between_points: packets that reached D after a packet U saw later
  (overtaken), by capture order at each point;
- one-way delay: D's time of the first copy (on a's clock) minus U's time.
"""
from __future__ import annotations

import polars as pl

C = pl.col
DIRECTIONS = ("c2s", "s2c")
B_ROW = 1 << 32     # row ids: a's frame, or b's frame + B_ROW


def fates(a_rows: pl.DataFrame, b_rows: pl.DataFrame, upstream: dict[str, str],
          down_span: dict[str, tuple[int, int]], assign) -> pl.DataFrame:
    """One row per upstream packet (of connections seen at both points): conn, direction,
    frame_up, t_up, copies (seen at D), frame_down and t_down (its first copy), lost,
    duplicated, delay_ns, reordered. `a_rows`/`b_rows`: key, t (a's clock), frame, conn,
    direction ("c2s"/"s2c"), row. `down_span`: per direction, the downstream capture's
    first and last time on a's clock."""
    up_parts, down_parts = [], []
    for direction in DIRECTIONS:
        at_a = a_rows.filter(C("direction") == direction)
        at_b = b_rows.filter(C("direction") == direction)
        up, down = (at_a, at_b) if upstream[direction] == "a" else (at_b, at_a)
        up_parts.append(up)
        down_parts.append(down)
    up = pl.concat(up_parts)
    down = assign(up.select("key", "t", "row"), pl.concat(down_parts).select("key", "t", "row"))
    down = down.join(pl.concat(down_parts).select("row", "frame"), on="row")
    arrivals = down.filter(C("up_row").is_not_null()).sort("t").group_by("up_row").agg(
        copies=pl.len(), t_down=C("t").first(), frame_down=C("frame").first())
    rows = up.join(arrivals, left_on="row", right_on="up_row", how="left").with_columns(
        copies=C("copies").fill_null(0).cast(pl.Int64), delay_ns=C("t_down") - C("t"))
    median = rows.group_by("direction").agg(C("delay_ns").median().alias("median_ns"))
    spans = pl.DataFrame({"direction": list(down_span),
                          "down_start": [s for s, _ in down_span.values()],
                          "down_end": [e for _, e in down_span.values()]})
    rows = rows.join(median, on="direction", how="left").join(spans, on="direction")
    expected = C("t") + C("median_ns").fill_null(0)
    in_span = (expected >= C("down_start")) & (expected <= C("down_end"))
    rows = rows.with_columns(lost=(C("copies") == 0) & in_span,
                             duplicated=pl.max_horizontal(C("copies") - 1, pl.lit(0)))
    # overtaken: a packet U saw later reached D first (capture order at each point)
    arrived = rows.filter(C("copies") > 0).sort("frame").with_columns(
        reordered=C("frame_down") > C("frame_down").reverse().cum_min().reverse().shift(-1)
        .over("conn", "direction"))
    rows = rows.join(arrived.select("row", "reordered"), on="row", how="left")
    return rows.select("conn", "direction", C("frame").alias("frame_up"), C("t").alias("t_up"),
                       "copies", "frame_down", "t_down", "lost", "duplicated", "delay_ns",
                       C("reordered").fill_null(False))


def summary(fate: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """matched, lost, duplicated, reordered, delay min/median/p99/max (ms) per group."""
    delay_ms = C("delay_ns").filter(C("copies") > 0) / 1e6
    return fate.group_by(by).agg(
        sent=pl.len(),
        matched=(C("copies") > 0).sum(),
        lost_between_points=C("lost").sum(),
        duplicated_between_points=C("duplicated").sum(),
        reordered_between_points=C("reordered").sum(),
        delay_min_ms=delay_ms.min(), delay_median_ms=delay_ms.median(),
        delay_p99_ms=delay_ms.quantile(0.99, "linear"), delay_max_ms=delay_ms.max(),
    ).sort(by)
