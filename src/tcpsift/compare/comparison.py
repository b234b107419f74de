"""`compare(a, b)`: the same traffic captured at two points, packet by packet."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import polars as pl

from tcpsift.compare import clock as clocks
from tcpsift.compare import matching, retrans, stats, windows
from tcpsift.compare.nat import translation
from tcpsift.compare.points import READ_COLUMNS, SPAN_GAP_NS, Point, point

C = pl.col
# delays below this are no evidence of which point sees a packet first (timestamps of
# two capture hosts, rounded to microseconds, and the drift fit's residue)
TIMING_RESOLUTION_NS = 10_000
ORIENTATION_BINS = 64


class CompareError(ValueError):
    """The two captures cannot be compared (one has no TCP packets)."""


@dataclass
class Comparison:
    """The result of `compare()`. Tables (Polars): `per_direction` (one row per direction),
    `connections` (one row per connection seen at both points), `only_at_a`/`only_at_b`
    (connections seen at one point), `packets` (one row per upstream packet of the
    connections at both points: its fate downstream). `span_doubles`: per point, the
    copies its capture made itself (SPAN doubles), counted once. `to_dict()` is the JSON."""
    a: str
    b: str
    clock: clocks.Clock
    upstream: dict
    per_direction: pl.DataFrame
    connections: pl.DataFrame
    only_at_a: pl.DataFrame
    only_at_b: pl.DataFrame
    packets: pl.DataFrame
    verdict: str = "inconclusive"
    evidence: list = field(default_factory=list)
    time_overlap: bool = True
    warnings: list = field(default_factory=list)
    complete: bool = True
    span_doubles: dict = field(default_factory=dict)
    retransmissions: pl.DataFrame = field(default_factory=pl.DataFrame)
    window_shrinks: pl.DataFrame = field(default_factory=pl.DataFrame)
    # on a path: the names of the two points (a: the one nearer the path's start)
    point_names: dict | None = None

    @property
    def matched(self) -> int:
        return int(self.per_direction["matched"].sum()) if len(self.per_direction) else 0

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, **self.clock.to_dict(),
                "per_direction": {row["direction"]: _direction_dict(row)
                                  for row in self.per_direction.iter_rows(named=True)},
                "connections": [_connection_dict(row)
                                for row in self.connections.iter_rows(named=True)],
                "only_at_a": self.only_at_a.to_dicts(), "only_at_b": self.only_at_b.to_dicts(),
                "span_doubles": dict(self.span_doubles),
                "verdict": self.verdict, "evidence": list(self.evidence),
                "warnings": list(self.warnings)}


def _delay_dict(row: dict, prefix: str = "") -> dict:
    return {stat: row[f"{prefix}delay_{stat}_ms"] for stat in ("min", "median", "p99", "max")}


def _direction_dict(row: dict, prefix: str = "") -> dict:
    return {"upstream": row[f"{prefix}upstream"], "sent_upstream": row[f"{prefix}sent"],
            **{name: row[f"{prefix}{name}"] for name in (
                "matched", "lost_between_points", "loss_bursts", "duplicated_between_points",
                "reordered_between_points")},
            "matched_by_byte_range": row[f"{prefix}matched_by_byte_range"],
            "one_way_delay_ms": _delay_dict(row, prefix),
            "one_way_delay_approximate": row[f"{prefix}delay_approximate"],
            **{name: row[f"{prefix}{name}"] for name in (
                "window_shrinks_only_upstream", "window_shrinks_only_downstream")},
            "retransmissions": {"count": row[f"{prefix}retransmissions"],
                                **{f"original_{c}" if c.startswith("lost") else c:
                                   row[f"{prefix}retrans_{c}"]
                                   for c in retrans.CAUSES}}}


def _connection_dict(row: dict) -> dict:
    keys = ("uid_a", "uid_b", "community_id", "client", "client_port", "server", "server_port",
            "stream_a", "stream_b")
    out = {**{k: row[k] for k in keys},
           **{d: _direction_dict(row, f"{d}_") for d in stats.DIRECTIONS}}
    for d in stats.DIRECTIONS:
        out[d]["window_shrink_frames"] = {
            where: row[f"{d}_window_shrink_frames_{where}"] or []
            for where in ("upstream", "downstream")}
    return out


def compare(a, b, *more, names: tuple[str, ...] | None = None, nat=()):
    """Compare captures of the same traffic taken at two points (paths or Captures of
    `tcpsift.read`): a Comparison. With more than two, in path order (`compare(a, b, c)`):
    a `tcpsift.compare.path.PathComparison` of each segment of the path (a with b, b with
    c, ...). `nat`: address translations between two points, "A=B" texts (what a sees as
    A, b sees as B: an address, or address:port on both sides); on a path, what the first
    point sees as A, the points after the translation see as B (every point after the
    first is given the first one's view: those before the translation have no B). Raises CompareError when
    one has no TCP packets or a translation is not valid; CaptureError (from reading) when
    a file is not a capture."""
    try:
        rules = [translation(text) for text in nat]
    except ValueError as e:
        raise CompareError(f"--nat {e}") from None
    given = [a, b, *more]
    letters = POINT_NAMES[:len(given)]
    labels = names or tuple(str(x) if _is_path(x) else n for x, n in zip(given, letters))
    # every point after the first is given the first one's view: on a path, the points
    # before the translation have no translated endpoint to rewrite
    points, caps = [], []
    for x, n, label in zip(given, letters, labels):
        cap = _capture(x, n)
        points.append(point(n, label, cap, nat=rules if n != "a" else ()))
        # a capture read here is not needed past its point: read one at a time and freed
        # then, its tables are memory the next steps reuse instead of growing the process
        caps.append(_Outcome(cap.warnings, cap.complete) if _is_path(x) else cap)
        del cap
    for p in points:
        if not len(p.packets):
            raise CompareError(f"{p.label}: no TCP packets")
    if more:
        from tcpsift.compare.path import compare_path

        return compare_path(points, caps)
    # (the two points are the comparison's own: it may free their rows once read)
    return compare_points(points.pop(0), points.pop(0), caps, consume=True)


POINT_NAMES = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class _Outcome:
    """What a comparison keeps of a Capture it read itself."""
    warnings: list[str]
    complete: bool


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def _capture(x, name: str):
    """The Capture of `x` (a path, read here with the columns compare needs, or a Capture
    of tcpsift.read), checked for the columns."""
    if _is_path(x):
        import tcpsift

        return tcpsift.read(x, columns=READ_COLUMNS)
    missing = READ_COLUMNS - set(x.packets.columns)
    if missing:
        raise CompareError(f"{name}: the capture was read without the columns compare "
                           f"needs: {', '.join(sorted(missing))} (read it with "
                           "columns=tcpsift.compare.points.READ_COLUMNS or all columns)")
    return x


def compare_points(pa: Point, pb: Point, caps: list, consume: bool = False) -> Comparison:
    """Two points (named "a" and "b" in the result, whatever their names on a path: those
    are its `point_names` then) of Captures `caps`. `consume`: the points are not used
    again (their packet rows are freed once read)."""
    import dataclasses

    names = {"a": pa.name, "b": pb.name}
    pa, pb = dataclasses.replace(pa, name="a"), dataclasses.replace(pb, name="b")
    result, rows = _compare(pa, pb, consume)
    if names != {"a": "a", "b": "b"}:
        result.point_names = names
    result.warnings = [w for cap in caps for w in cap.warnings]
    result.span_doubles = {p.name: p.span_doubles for p in (pa, pb)}
    result.warnings += [f"{p.label}: {p.span_doubles:,} packets captured twice within "
                        f"{SPAN_GAP_NS // 1000} µs (SPAN doubles): each counted once"
                        for p in (pa, pb) if p.span_doubles]
    result.complete = all(cap.complete for cap in caps)
    from tcpsift.compare.verdict import judge
    result.verdict, result.evidence = judge(result, rows)
    return result


def _compare(pa: Point, pb: Point, consume: bool = False) -> tuple[Comparison, dict]:
    # compare() gives points with packets, and a packet of a point has a time
    assert pa.start_ns is not None
    pairs = matching.unique_pairs(pa, pb)
    conns = _connections(matching.connection_pairs(pairs), pa, pb)
    rows = {p.name: _annotated(p, conns) for p in (pa, pb)}
    if consume:
        # (what follows reads `rows`: the memory of the points' rows is reused by it
        # instead of growing the process, a page fault per 4 KiB)
        for p in (pa, pb):
            p.packets, p.rank = p.packets.clear(), p.rank[:0]
            p.key_order, p.sorted_keys = p.key_order[:0], p.sorted_keys[:0]
    index = {name: stats.frame_index(r) for name, r in rows.items()}
    samples = _samples(pairs, index, pa.start_ns)
    a_client_side = _a_on_client_side(samples)
    ab, ba = ("c2s", "s2c") if a_client_side is not False else ("s2c", "c2s")
    clock = clocks.estimate(_series(samples, ab), _series(samples, ba), pa.start_ns)
    del samples
    rows["b"] = rows["b"].with_columns(t=clock.a_time(C("t")))
    if a_client_side is None:
        upstream = {d: _upstream_by_counts(rows, d) for d in stats.DIRECTIONS}
    else:
        upstream = {ab: "a", ba: "b"}
    span = {"a": (pa.start_ns, pa.end_ns),
            "b": tuple(pl.select(clock.a_time(pl.lit(t))).item() for t in (pb.start_ns, pb.end_ns))}
    down_span = {d: span["b" if up == "a" else "a"] for d, up in upstream.items()}
    fate = stats.fates(rows["a"], rows["b"], upstream, down_span, pairs, index)
    resent = retrans.retransmissions(rows, upstream, fate)
    shrinks = windows.one_point_shrinks(rows, upstream, fate)
    per_direction = _with_upstream(_with_counts(
        stats.summary(fate, ["direction"]),
        [retrans.counts(resent, ["direction"]), windows.counts(shrinks, ["direction"])],
        ["direction"]), upstream)
    by_conn = ["conn", "direction"]
    per_conn = _with_counts(stats.summary(fate, by_conn), [
        retrans.counts(resent, by_conn), windows.counts(shrinks, by_conn),
        windows.frames(shrinks)], by_conn)
    connections = _connection_table(conns, per_conn, upstream)
    overlap = max(span["a"][0], span["b"][0]) <= min(span["a"][1], span["b"][1])
    return Comparison(pa.label, pb.label, clock, upstream, per_direction, connections,
                      _only_at(pa, conns, "stream_a"), _only_at(pb, conns, "stream_b"),
                      fate, time_overlap=overlap, retransmissions=resent,
                      window_shrinks=shrinks), rows


def _connections(pairs: pl.DataFrame, pa: Point, pb: Point) -> pl.DataFrame:
    """conn, stream_a, stream_b, the endpoints (from the point that saw the handshake, a
    first) and, per point, which `direction` value is client to server."""
    sa = pa.streams.rename(lambda c: c if c == "stream" else f"{c}_a").rename({"stream": "stream_a"})
    sb = pb.streams.rename(lambda c: c if c == "stream" else f"{c}_b").rename({"stream": "stream_b"})
    t = pairs.join(sa, on="stream_a").join(sb, on="stream_b")
    use_a = C("role_from_a") <= C("role_from_b")
    t = t.with_columns(**{k: pl.when(use_a).then(C(f"{k}_a")).otherwise(C(f"{k}_b"))
                          for k in ("client", "client_port", "server", "server_port")})
    for side in "ab":
        same = (C(f"client_{side}") == C("client")) & (C(f"client_port_{side}") == C("client_port"))
        t = t.with_columns(pl.when(same).then(C(f"client_dir_{side}"))
                           .otherwise(1 - C(f"client_dir_{side}")).alias(f"c2s_dir_{side}"))
    return t


def _annotated(p: Point, conns: pl.DataFrame) -> pl.DataFrame:
    """The point's packets of connections seen at both points: key, t (its time, on a's
    clock once known), ts_ns (as captured), frame, conn, direction, rank (Point.rank: the
    order by connection, then capture order, without a sort), and what the verdict reads
    (tcp_len, tcp_flags, seq, window)."""
    side = p.name
    # per stream number (dense): its connection (-1: seen at this point only) and which
    # `direction` value is client to server; gathered per packet, not joined
    n = (cast("int | None", p.streams["stream"].max()) or 0) + 1
    conn_of, c2s_of = np.full(n, -1, np.int64), np.zeros(n, np.uint8)
    streams = conns[f"stream_{side}"].to_numpy()
    conn_of[streams] = conns["conn"].to_numpy()
    c2s_of[streams] = conns[f"c2s_dir_{side}"].to_numpy()
    stream = p.packets["stream"].to_numpy()
    conn = conn_of[stream]
    keep = conn >= 0
    s2c = p.packets["direction"].to_numpy() != c2s_of[stream]
    # (the columns chosen before the rows: a filter copies every column it is given)
    return p.packets.select(
        "key", "ts_ns", "frame", "tcp_len", "tcp_flags", "seq", "ack", "tsval", "window",
        t="ts_ns").filter(pl.Series(keep)).with_columns(
        conn=pl.Series(conn[keep]), direction=stats.direction_of(s2c[keep]),
        rank=pl.Series(p.rank[keep]))


def _samples(pairs: pl.DataFrame, index: dict, start_ns: int) -> pl.DataFrame:
    """The clock's samples: direction, t (a's time since `start_ns`), delta (t_b - t_a) of
    the uniquely paired packets of the connections seen at both points. `index`: per
    point, stats.frame_index of its rows."""
    (conn_a, s2c_a), (conn_b, _) = index["a"], index["b"]
    fa, fb = pairs["frame_a"].to_numpy(), pairs["frame_b"].to_numpy()
    fa_in, fb_in = np.minimum(fa, len(conn_a) - 1), np.minimum(fb, len(conn_b) - 1)
    same = ((fa < len(conn_a)) & (fb < len(conn_b)) & (conn_a[fa_in] >= 0)
            & (conn_a[fa_in] == conn_b[fb_in]))
    ts_a, ts_b = pairs["ts_a"].to_numpy()[same], pairs["ts_b"].to_numpy()[same]
    return pl.DataFrame({
        "direction": stats.direction_of(s2c_a[fa[same]]),
        "t": ts_a - start_ns, "delta": ts_b - ts_a})


def _series(samples: pl.DataFrame, direction: str) -> tuple[np.ndarray, np.ndarray]:
    s = samples.filter(C("direction") == direction)
    return (s["t"].cast(pl.Float64).to_numpy(), s["delta"].cast(pl.Float64).to_numpy())


def _a_on_client_side(samples: pl.DataFrame) -> bool | None:
    """Whether client-to-server packets reach a before b: their t_b - t_a lies above the
    server-to-client packets' (compared within time bins, so that a drifting clock does not
    blur it); None when the two are within the timing resolution of each other."""
    if samples.is_empty():
        return None
    t = C("t")
    binned = samples.with_columns(bin=((t - t.min()) * ORIENTATION_BINS
                                       // (t.max() - t.min() + 1)))
    medians = binned.group_by("bin").agg(
        c2s=C("delta").filter(C("direction") == "c2s").median(),
        s2c=C("delta").filter(C("direction") == "s2c").median()).drop_nulls()
    if medians.is_empty():
        return None
    gap = medians.select((C("c2s") - C("s2c")).median()).item()
    if abs(gap) <= TIMING_RESOLUTION_NS:
        return None
    return gap > 0


def _upstream_by_counts(rows: dict, direction: str) -> str:
    """Without timing evidence: the point that saw more of the direction's packets (of the
    connections seen at both: losses happen downstream of the upstream point)."""
    seen = {side: r.select((C("direction") == direction).sum()).item() for side, r in rows.items()}
    return "a" if seen["a"] >= seen["b"] else "b"


COUNTED = ("retransmissions", *(f"retrans_{c}" for c in retrans.CAUSES),
           "window_shrinks_only_upstream", "window_shrinks_only_downstream")


def _with_counts(table: pl.DataFrame, counts: list[pl.DataFrame], on: list[str]) -> pl.DataFrame:
    """`table` with the columns of each of `counts` (COUNTED: 0 where it has no row)."""
    for extra in counts:
        extra = extra.with_columns(C(c).cast(table.schema[c]) for c in on)
        table = table.join(extra, on=on, how="left", maintain_order="left")
    return table.with_columns(C(c).fill_null(0) for c in COUNTED if c in table.columns)


def _with_upstream(table: pl.DataFrame, upstream: dict) -> pl.DataFrame:
    full = pl.DataFrame({"direction": list(stats.DIRECTIONS)}).join(
        table, on="direction", how="left", maintain_order="left")
    return full.with_columns(upstream=C("direction").replace_strict(upstream),
                             **{c: C(c).fill_null(0) for c in (
                                 "sent", "matched", "lost_between_points", "loss_bursts",
                                 "duplicated_between_points", "reordered_between_points",
                                 "matched_by_byte_range", *COUNTED)},
                             delay_approximate=C("delay_approximate").fill_null(False))


def _connection_table(conns: pl.DataFrame, per_conn: pl.DataFrame, upstream: dict) -> pl.DataFrame:
    from tcpsift.tcp import keys

    wide = conns.select("conn", "stream_a", "stream_b", "client", "client_port", "server",
                        "server_port", "first_ts_ns_a", "first_ts_ns_b")
    for d in stats.DIRECTIONS:
        part = per_conn.filter(C("direction") == d).drop("direction")
        part = part.rename({c: f"{d}_{c}" for c in part.columns if c != "conn"})
        wide = wide.join(part, on="conn", how="left").with_columns(
            pl.lit(upstream[d]).alias(f"{d}_upstream"))
    # (the addresses packed once for the three keys)
    client, server = keys.packed(wide["client"]), keys.packed(wide["server"])
    uid_a, community_id = keys.connection_keys(wide["first_ts_ns_a"], client,
                                               wide["client_port"], server, wide["server_port"])
    uid_b, _ = keys.connection_keys(wide["first_ts_ns_b"], client, wide["client_port"], server,
                                    wide["server_port"], community=False)
    return wide.with_columns(uid_a.alias("uid_a"), uid_b.alias("uid_b"),
                             community_id).sort("conn")


def _only_at(p: Point, conns: pl.DataFrame, stream_col: str) -> pl.DataFrame:
    """The connections of point `p` that the other point does not see."""
    from tcpsift.tcp import keys

    alone = p.streams.join(conns.select(C(stream_col).alias("stream")), on="stream", how="anti")
    return alone.with_columns(
        keys.uid(alone["first_ts_ns"], alone["client"], alone["client_port"], alone["server"],
                 alone["server_port"]),
        keys.community_id(alone["client"], alone["client_port"], alone["server"],
                          alone["server_port"])
    ).select("stream", "uid", "community_id", "client", "client_port", "server", "server_port",
             "packets")
