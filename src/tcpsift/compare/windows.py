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

from tcpsift.compare.stats import DIRECTION

C = pl.col
SYN, RST = 0x02, 0x04
WHERE = pl.Enum(("upstream", "downstream"))
SCHEMA = pl.Schema([("conn", pl.Int64()), ("direction", DIRECTION), ("seen_at", WHERE),
                    ("point", pl.String()), ("frame", pl.UInt32()), ("window", pl.Int64()),
                    ("previous_window", pl.Int64()), ("other_frame", pl.UInt32())])


def _shrinks(rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, windows, previous windows) of the packets of `rows` (one direction at one
    point, capture order) that shrink the window."""
    kept = rows.filter((C("tcp_flags") & (SYN | RST)) == 0)
    conn = kept["conn"].to_numpy().astype(np.int64)
    order = np.argsort(conn, kind="stable")
    conn = conn[order]
    window = kept["window"].to_numpy().astype(np.int64)[order]
    frame = kept["frame"].to_numpy().astype(np.int64)[order]
    same = np.r_[False, conn[1:] == conn[:-1]]
    previous = np.r_[-1, window[:-1]]
    shrink = same & (window < previous)
    return frame[shrink], window[shrink], previous[shrink]


def one_point_shrinks(rows: dict[str, pl.DataFrame], upstream: dict[str, str],
                      fate: pl.DataFrame) -> pl.DataFrame:
    """Every window shrink seen at one point and not the other (SCHEMA). `rows`: per point,
    the packets of the connections at both points (conn, direction, frame, window,
    tcp_flags, in capture order); `fate`: one row per upstream packet (direction,
    frame_up, copies, frame_down)."""
    parts = [pl.DataFrame(schema=SCHEMA)]
    for d, up in sorted(upstream.items()):
        down = "b" if up == "a" else "a"
        f = fate.filter((C("direction") == d) & (C("copies") > 0)
                        & C("frame_down").is_not_null())
        fu = f["frame_up"].to_numpy().astype(np.int64)
        fd = f["frame_down"].to_numpy().astype(np.int64)
        of = {}
        for side in (up, down):
            side_rows = rows[side].filter(C("direction") == d)
            frames, window, previous = _shrinks(side_rows)
            size = max(int(side_rows["frame"].to_numpy().max(initial=0)),
                       int(fu.max() if side == up and len(fu) else 0),
                       int(fd.max() if side == down and len(fd) else 0)) + 1
            flag = np.zeros(size, bool)
            flag[frames] = True
            of[side] = (frames, window, previous, flag)
        # the other point's frame of each packet (0: not seen there)
        down_of = np.zeros(len(of[up][3]), np.int64)
        down_of[fu] = fd
        up_of = np.zeros(len(of[down][3]), np.int64)
        up_of[fd] = fu
        for side, other, mapping, where in ((up, down, down_of, "upstream"),
                                            (down, up, up_of, "downstream")):
            frames, window, previous, _ = of[side]
            there = mapping[frames]
            seen_both = (there > 0) & of[other][3][there]
            alone = ~seen_both
            parts.append(pl.DataFrame({
                "conn": _conn_of(rows[side], frames[alone]), "direction": pl.Series(
                    [d] * int(alone.sum()), dtype=DIRECTION),
                "seen_at": pl.Series([where] * int(alone.sum()), dtype=WHERE),
                "point": [side] * int(alone.sum()), "frame": frames[alone].astype(np.uint32),
                "window": window[alone], "previous_window": previous[alone],
                "other_frame": pl.Series(there[alone].astype(np.uint32)),
            }, schema=SCHEMA).with_columns(
                other_frame=pl.when(C("other_frame") > 0).then("other_frame")))
    return pl.concat(parts).sort("conn", "direction", "seen_at", "frame")


def _conn_of(rows: pl.DataFrame, frames: np.ndarray) -> np.ndarray:
    table = np.full(int(rows["frame"].to_numpy().max(initial=0)) + 1, -1, np.int64)
    table[rows["frame"].to_numpy()] = rows["conn"].to_numpy()
    return table[frames]


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
