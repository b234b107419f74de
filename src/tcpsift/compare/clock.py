"""The offset between the two capture clocks (b minus a) and its drift.

For a packet seen at both points, delta = t_b - t_a is the clock offset plus the one-way
delay when a is upstream (the packet went a -> b), and the offset minus it when b is.
Delays are never negative, so every a -> b delta bounds the offset from above and every
b -> a delta from below. The bounds over time are lines: the lower hull of the a -> b
deltas and the upper hull of the b -> a deltas, each fitted as Moon, Skelly and Towsley
(1999) fit a skew: the line under all points that is closest to them in sum, which is the
hull edge over the points' mean time. The offset between the two lines is unknowable
from timings alone (a slower path one way looks like an offset); so:

- when the clocks as captured already put every packet after its sending (both bounds
  admit zero offset and zero drift), they are taken as they are: hosts synchronised by
  NTP or PTP, or one host capturing at two points;
- otherwise the offset is the middle line between the bounds (the minimum delays are
  assumed equal both ways) and the drift its slope.

The uncertainty is how far the offset could lie from the estimate inside the bounds, at
the worse end of the capture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

HULL_BINS = 1024


@dataclass(frozen=True)
class Line:
    """value(t) = at_ref + slope * (t - ref), in nanoseconds."""
    at_ref: float
    slope: float

    def __call__(self, t):
        return self.at_ref + self.slope * t


@dataclass(frozen=True)
class Clock:
    """b's clock minus a's: `offset_ns` at `ref_ns` (a's clock), changing by `drift` (ns per
    ns) along a's time; `uncertainty_ns` (None when only one direction was matched);
    `method`: "as captured", "symmetric minimum delay", "one direction only" or "none"."""
    offset_ns: float
    drift: float
    uncertainty_ns: float | None
    ref_ns: int
    method: str

    def a_time(self, b_ts: pl.Expr) -> pl.Expr:
        """A time of b's clock as a's clock tells it (integer ns)."""
        # b's lead at that moment, in floating point only as a difference (epoch
        # nanoseconds as a double would lose 256 ns)
        since_ref = (b_ts - self.ref_ns).cast(pl.Float64)
        lead = (since_ref * self.drift + self.offset_ns) / (1 + self.drift)
        return b_ts - lead.round().cast(pl.Int64)

    def to_dict(self) -> dict:
        return {"clock_offset_s": self.offset_ns / 1e9,
                "clock_offset_uncertainty_s": None if self.uncertainty_ns is None
                else self.uncertainty_ns / 1e9,
                "drift_ppm": self.drift * 1e6, "clock_method": self.method,
                "clock_reference_time_s": self.ref_ns / 1e9}


def lower_line(t: np.ndarray, d: np.ndarray) -> Line:
    """The line under every (t, d) closest to them in sum (t relative to the reference)."""
    if len(t) == 1:
        return Line(float(d[0]), 0.0)
    first = _hull_line(t, d, t.mean())
    # again on what is left of d under that line: the time bins then cost no precision
    second = _hull_line(t, d - first(t), t.mean())
    return Line(first.at_ref + second.at_ref, first.slope + second.slope)


def _hull_line(t: np.ndarray, d: np.ndarray, t_mean: float) -> Line:
    # the lowest point of each time bin holds the lower hull (to within the bin's width
    # times the slope left, which the second pass makes small)
    low, width = t.min(), (t.max() - t.min()) / HULL_BINS or 1.0
    bins = np.minimum(((t - low) / width).astype(np.int64), HULL_BINS - 1)
    lowest = np.full(HULL_BINS, np.inf)
    np.minimum.at(lowest, bins, d)
    at_lowest = np.flatnonzero(d == lowest[bins])
    # one point per bin (bins follow time, so these are in time order)
    first = np.full(HULL_BINS, len(t))
    np.minimum.at(first, bins[at_lowest], at_lowest)
    keep = first[first < len(t)]
    xs, ys = t[keep].tolist(), d[keep].tolist()
    hull: list[int] = []
    for i in range(len(xs)):     # Andrew's monotone chain, lower half (a few thousand points)
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = (xs[hull[-2]], ys[hull[-2]]), (xs[hull[-1]], ys[hull[-1]])
            if (x2 - x1) * (ys[i] - y1) - (y2 - y1) * (xs[i] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    if len(hull) == 1:
        return Line(ys[hull[0]], 0.0)
    hx = [xs[i] for i in hull]
    k = int(np.clip(np.searchsorted(hx, t_mean) - 1, 0, len(hull) - 2))
    (x1, y1), (x2, y2) = (xs[hull[k]], ys[hull[k]]), (xs[hull[k + 1]], ys[hull[k + 1]])
    slope = (y2 - y1) / (x2 - x1) if x2 != x1 else 0.0
    return Line(y1 - slope * x1, slope)


def estimate(a_to_b: tuple[np.ndarray, np.ndarray], b_to_a: tuple[np.ndarray, np.ndarray],
             ref_ns: int) -> Clock:
    """Each argument: (t_a - ref_ns, t_b - t_a) in ns of the packets that went that way."""
    (t_ab, d_ab), (t_ba, d_ba) = a_to_b, b_to_a
    if not len(d_ab) and not len(d_ba):
        return Clock(0.0, 0.0, None, ref_ns, "none")
    if not len(d_ab) or not len(d_ba):
        # one direction only: no bound on the other side; zero minimum delay assumed
        if len(d_ab):
            line = lower_line(t_ab, d_ab)
        else:
            neg = lower_line(t_ba, -d_ba)
            line = Line(-neg.at_ref, -neg.slope)
        return Clock(line.at_ref, line.slope, None, ref_ns, "one direction only")
    upper = lower_line(t_ab, d_ab)
    neg = lower_line(t_ba, -d_ba)
    lower = Line(-neg.at_ref, -neg.slope)
    ends = np.array([min(t_ab.min(), t_ba.min()), max(t_ab.max(), t_ba.max()), 0.0])
    drift = (upper.slope + lower.slope) / 2
    if abs(drift) * (ends[1] - ends[0]) < np.abs(upper(ends) - lower(ends)).max() / 2:
        # a drift that moves the clock less over the capture than the bounds are apart is
        # the delays' own wander, not the clocks': flat bounds
        upper, lower = Line(float(d_ab.min()), 0.0), Line(float(d_ba.max()), 0.0)
    if d_ab.min() >= 0 >= d_ba.max():
        spread = max(np.abs(upper(ends)).max(), np.abs(lower(ends)).max())
        return Clock(0.0, 0.0, float(spread), ref_ns, "as captured")
    middle = Line((upper.at_ref + lower.at_ref) / 2, (upper.slope + lower.slope) / 2)
    spread = float(np.abs(upper(ends) - lower(ends)).max() / 2)
    return Clock(middle.at_ref, middle.slope, spread, ref_ns, "symmetric minimum delay")
