"""Window shrinkage seen at one point and not the other.

At each point, a packet **shrinks the window** when it advertises a smaller receive
window (the TCP header's window field, scaled alike at both points) than the packet
before it of its connection and direction at that point; packets with SYN (whose window
is not scaled) or RST are left out. A matched packet carries the same window at both
points (the window is part of its key), so a shrink is seen at one point only when the
packets around it differ between the points:

- the shrinking packet was lost between the points (seen upstream only), or is a copy
  the network made (seen downstream only);
- a packet before it was lost, duplicated or reordered, so that the other point saw it
  follow a different window (it shrinks there from another value, or does not shrink).

Each such shrink is one row of `window_shrinks`: where it was seen (the direction's
upstream or downstream point), its frame there, its window and the one before it, and its
frame at the other point (null: not seen there).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.compare._points import window_shrinks
from tcpsift.compare.stats import DIRECTION

C = pl.col
SYN, RST = 0x02, 0x04
WHERE = pl.Enum(("upstream", "downstream"))
SCHEMA = pl.Schema([("conn", pl.Int64()), ("direction", DIRECTION), ("seen_at", WHERE),
                    ("point", pl.String()), ("frame", pl.UInt32()), ("window", pl.Int64()),
                    ("previous_window", pl.Int64()), ("other_frame", pl.UInt32())])


def _shrinks(rows: pl.DataFrame) -> dict:
    """The packets of `rows` (one point's, in capture order) that shrink the window:
    frames, windows, previous windows, conn and s2c (arrays, in capture order), and `flag`
    (by frame number)."""
    s2c = rows["direction"].to_physical().to_numpy()
    conn = np.ascontiguousarray(rows["conn"].to_numpy(), dtype=np.int64)
    frames = rows["frame"].to_numpy()
    at, previous = window_shrinks(
        conn, np.ascontiguousarray(s2c, dtype=np.uint8),
        np.ascontiguousarray(rows["tcp_flags"].to_numpy(), dtype=np.uint16),
        np.ascontiguousarray(rows["window"].to_numpy(), dtype=np.uint16))
    frame = frames[at].astype(np.int64)
    flag = np.zeros(int(frames.max(initial=0)) + 1, bool)
    flag[frame] = True
    return {"frame": frame, "window": rows["window"].to_numpy()[at].astype(np.int64),
            "previous": previous, "conn": conn[at], "s2c": s2c[at] == 1, "flag": flag}


def one_point_shrinks(rows: dict[str, pl.DataFrame], upstream: dict[str, str],
                      fate: pl.DataFrame) -> pl.DataFrame:
    """Every window shrink seen at one point and not the other (SCHEMA). `rows`: per point,
    the packets of the connections at both points (conn, direction, frame, window,
    tcp_flags, in capture order); `fate`: one row per upstream packet (direction,
    frame_up, copies, frame_down)."""
    parts = [pl.DataFrame(schema=SCHEMA)]
    at = {side: _shrinks(r) for side, r in rows.items()}
    fate_s2c = fate["direction"].to_physical().to_numpy() == 1
    fate_down = fate["frame_down"].fill_null(0).to_numpy().astype(np.int64)
    fate_up = fate["frame_up"].to_numpy().astype(np.int64)
    arrived = (fate["copies"].to_numpy() > 0) & (fate_down > 0)
    for d, up in sorted(upstream.items()):
        down = "b" if up == "a" else "a"
        mine = arrived & (fate_s2c == (d == "s2c"))
        fu, fd = fate_up[mine], fate_down[mine]
        # the other point's frame of each packet (0: not seen there)
        down_of = np.zeros(max(len(at[up]["flag"]), int(fu.max(initial=0)) + 1), np.int64)
        down_of[fu] = fd
        up_of = np.zeros(max(len(at[down]["flag"]), int(fd.max(initial=0)) + 1), np.int64)
        up_of[fd] = fu
        for side, other, mapping, where in ((up, down, down_of, "upstream"),
                                            (down, up, up_of, "downstream")):
            seen = at[side]
            this = seen["s2c"] == (d == "s2c")
            frames = seen["frame"][this]
            there = mapping[frames]
            flag = at[other]["flag"]
            seen_both = (there > 0) & (there < len(flag)) & flag[np.minimum(there, len(flag) - 1)]
            alone = ~seen_both
            count = int(alone.sum())
            parts.append(pl.DataFrame({
                "conn": seen["conn"][this][alone],
                "direction": pl.Series([d] * count, dtype=DIRECTION),
                "seen_at": pl.Series([where] * count, dtype=WHERE),
                "point": [side] * count, "frame": frames[alone].astype(np.uint32),
                "window": seen["window"][this][alone],
                "previous_window": seen["previous"][this][alone],
                "other_frame": pl.Series(there[alone].astype(np.uint32)),
            }, schema=SCHEMA).with_columns(
                other_frame=pl.when(C("other_frame") > 0).then("other_frame")))
    return pl.concat(parts).sort("conn", "direction", "seen_at", "frame")


def counts(shrinks: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Per `by`: window_shrinks_only_upstream, window_shrinks_only_downstream."""
    return shrinks.group_by(by).agg(
        window_shrinks_only_upstream=(C("seen_at") == "upstream").sum().cast(pl.Int64),
        window_shrinks_only_downstream=(C("seen_at") == "downstream").sum().cast(pl.Int64))


def frames(shrinks: pl.DataFrame) -> pl.DataFrame:
    """Per connection and direction: the frames (at the point that saw them) of the shrinks
    seen only upstream and only downstream (window_shrink_frames_upstream, _downstream)."""
    return shrinks.group_by("conn", "direction").agg(
        window_shrink_frames_upstream=C("frame").filter(C("seen_at") == "upstream"),
        window_shrink_frames_downstream=C("frame").filter(C("seen_at") == "downstream"))
