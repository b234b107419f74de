"""More than two points, in path order: `compare(a, b, c)`.

Each segment of the path (a with b, b with c, ...) is compared as two points are
(`compare_points`); the result says, per segment and direction, which point is upstream,
what was lost, duplicated, reordered between its two points and the one-way delay across
it. The verdict is `network` when some segment loses packets or delays them unstably (the
evidence names the segments, the one losing the largest share first), else the verdict
the segments agree on, else `inconclusive`. Points given out of path order show as a
direction whose upstream point does not follow the order (a warning).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from tcpsift.compare import stats
from tcpsift.compare.comparison import Comparison, compare_points
from tcpsift.compare.points import SPAN_GAP_NS, Point
from tcpsift.compare.verdict import NAMES, UNSTABLE_DELAY_MS

C = pl.col


@dataclass
class PathComparison:
    """`points`: the point names (a, b, c, ...) and `labels` (their files); `segments`: the
    Comparison of each pair of neighbours, in path order (its own a and b are the
    segment's two points: `point_names`); `per_segment`: one row per segment and
    direction (segment "a-b", from, to, direction, upstream, the per-direction figures)."""
    points: list[str]
    labels: list[str]
    segments: list[Comparison]
    per_segment: pl.DataFrame
    verdict: str = "inconclusive"
    evidence: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    complete: bool = True

    @property
    def matched(self) -> int:
        return min(s.matched for s in self.segments)

    @property
    def time_overlap(self) -> bool:
        return all(s.time_overlap for s in self.segments)

    def to_dict(self) -> dict:
        from tcpsift.compare.comparison import _connection_dict, _direction_dict

        segments = []
        for seg in self.segments:
            names = seg.point_names or {"a": "a", "b": "b"}
            body = seg.to_dict()
            body["per_direction"] = {
                row["direction"]: {**_direction_dict(row), "upstream": names[row["upstream"]]}
                for row in seg.per_direction.iter_rows(named=True)}
            body["connections"] = [_connection_dict(row) for row in
                                   seg.connections.iter_rows(named=True)]
            for c in body["connections"]:
                for d in stats.DIRECTIONS:
                    c[d]["upstream"] = names[c[d]["upstream"]]
            segments.append({"segment": f"{names['a']}-{names['b']}", "from": names["a"],
                             "to": names["b"], **body})
        return {"points": dict(zip(self.points, self.labels)), "segments": segments,
                "verdict": self.verdict, "evidence": list(self.evidence),
                "warnings": list(self.warnings)}


def compare_path(points: list[Point], caps: list) -> PathComparison:
    segments = [compare_points(x, y, []) for x, y in zip(points, points[1:])]
    tables = []
    for seg, x, y in zip(segments, points, points[1:]):
        names = {"a": x.name, "b": y.name}
        tables.append(seg.per_direction.with_columns(
            segment=pl.lit(f"{x.name}-{y.name}"), **{"from": pl.lit(x.name)}, to=pl.lit(y.name),
            upstream=C("upstream").replace_strict(names)))
    per_segment = pl.concat(tables, how="diagonal_relaxed").select(
        "segment", "from", "to", "direction", "upstream", pl.exclude(
            "segment", "from", "to", "direction", "upstream"))
    result = PathComparison([p.name for p in points], [p.label for p in points], segments,
                            per_segment)
    result.warnings = [w for cap in caps for w in cap.warnings]
    result.warnings += [f"{p.label}: {p.span_doubles:,} packets captured twice within "
                        f"{SPAN_GAP_NS // 1000} µs (SPAN doubles): each counted once"
                        for p in points if p.span_doubles]
    result.warnings += _order_warnings(per_segment)
    result.complete = all(cap.complete for cap in caps)
    result.verdict, result.evidence = _judge(result)
    return result


def _order_warnings(per_segment: pl.DataFrame) -> list[str]:
    """A direction whose upstream point is the segment's first point on one segment and its
    second on another: the points are not in path order."""
    out = []
    for d in stats.DIRECTIONS:
        rows = per_segment.filter((C("direction") == d) & (C("matched") > 0))
        forward = (rows["upstream"] == rows["from"]).to_list()
        if len(set(forward)) > 1:
            out.append(f"{NAMES[d]}: the upstream point does not follow the order given on "
                       "every segment: are the points in path order?")
    return out


def _judge(result: PathComparison) -> tuple[str, list[str]]:
    faulty = []
    for row in result.per_segment.iter_rows(named=True):
        unstable = (row["delay_p99_ms"] or 0) - (row["delay_min_ms"] or 0) > UNSTABLE_DELAY_MS
        if row["lost_between_points"] or unstable:
            faulty.append((row["lost_between_points"] / max(row["sent"], 1),
                           row["delay_p99_ms"] or 0, row["segment"], row["direction"], row))
    evidence = []
    for seg in result.segments:
        names = seg.point_names or {}
        prefix = f"{names.get('a', 'a')}-{names.get('b', 'b')}: "
        evidence += [prefix + e for e in seg.evidence]
    if faulty:
        faulty.sort(key=lambda f: (f[0], f[1]), reverse=True)
        parts = []
        for share, _, segment, d, row in faulty:
            what = (f"{row['lost_between_points']:,} of {row['sent']:,} packets lost "
                    f"({100 * share:.2f} %)" if row["lost_between_points"] else
                    f"one-way delay p99 {row['delay_p99_ms']:.2f} ms over a minimum of "
                    f"{row['delay_min_ms']:.2f} ms")
            parts.append(f"segment {segment}, {NAMES[d]}: {what}")
        clean = sorted({s for s in result.per_segment["segment"].to_list()}
                       - {f[2] for f in faulty})
        tail = f"; clean: segment {', '.join(clean)}" if clean else ""
        return "network", ["network: " + "; ".join(parts) + tail] + evidence
    verdicts = {seg.verdict for seg in result.segments}
    if len(verdicts) == 1:
        verdict = verdicts.pop()
        return verdict, [f"{verdict}: every segment of the path says so"] + evidence
    return "inconclusive", ["inconclusive: the segments disagree (" + ", ".join(
        f"{(s.point_names or {}).get('a', 'a')}-{(s.point_names or {}).get('b', 'b')}: "
        f"{s.verdict}" for s in result.segments) + ")"] + evidence
