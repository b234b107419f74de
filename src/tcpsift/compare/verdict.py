"""The verdict: is the network between the points to blame, or an endpoint; with evidence.

- `inconclusive`: no packet is seen at both points (nothing to compare).
- `network`: packets seen at the upstream point went missing before the downstream one
  in some direction, or the one-way delay between the points varies by more than
  UNSTABLE_DELAY_MS (queueing); the directions named are those, the dominant one the
  highest loss rate.
- `endpoint: server` / `endpoint: client`: everything seen upstream arrived downstream
  with a stable delay; the endpoint named is the one that kept the other waiting longer:
  its think time (the gap before it answers data with data of its own, measured at the
  point nearest to it) plus the time its zero windows lasted.
- `inconclusive` too when the network is clean and neither endpoint waits.
"""
from __future__ import annotations

import polars as pl

C = pl.col
FIN, SYN, RST = 0x01, 0x02, 0x04
UNSTABLE_DELAY_MS = 50.0
NAMES = {"c2s": "client-to-server", "s2c": "server-to-client"}
SENDER = {"c2s": "client", "s2c": "server"}
RECEIVER = {"c2s": "client", "s2c": "server"}     # whose receive window a direction carries
FRAMES_SHOWN = 5


def judge(result, rows: dict[str, pl.DataFrame]) -> tuple[str, list[str]]:
    """`rows`: per point ("a", "b"), its packets of connections seen at both points (conn,
    direction, frame, ts_ns, tcp_len, tcp_flags, seq, window)."""
    if result.matched == 0:
        why = (f"inconclusive: no packet of {result.a} is seen at {result.b}: they do not "
               "hold the same traffic")
        if not result.time_overlap:
            why += " (and their times do not overlap)"
        return "inconclusive", [why]
    evidence = [_clock_sentence(result)]
    faulty = []
    for row in result.per_direction.iter_rows(named=True):
        d = row["direction"]
        evidence += _direction_sentences(result, row, rows)
        unstable = (row["delay_p99_ms"] or 0) - (row["delay_min_ms"] or 0) > UNSTABLE_DELAY_MS
        if row["lost_between_points"] or unstable:
            faulty.append((row["lost_between_points"] / max(row["sent"], 1), d))
    if faulty:
        names = [d for _, d in sorted(faulty, reverse=True)]
        evidence.insert(0, "network: " + ", ".join(NAMES[d] for d in names)
                        + (f" (most: {NAMES[names[0]]})" if len(names) > 1 else ""))
        return "network", evidence
    waits = {side: _waits(result, rows, side) for side in ("server", "client")}
    totals = {side: w["think_ns"] + w["zero_window_ns"] for side, w in waits.items()}
    for side, w in waits.items():
        evidence += _wait_sentences(side, w)
    if not any(totals.values()):
        return "inconclusive", ["inconclusive: the network between the points lost nothing and "
                                "delayed stably, and neither endpoint waits"] + evidence
    side = max(totals, key=lambda s: totals[s])
    evidence.insert(0, f"endpoint: {side}: every packet seen upstream is seen downstream "
                       f"with a stable delay; the time goes into the {side} "
                       f"({_s(totals[side])} of think time and zero window, the other side "
                       f"{_s(totals['client' if side == 'server' else 'server'])})")
    return f"endpoint: {side}", evidence


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n:,} {noun if n == 1 else plural}"


def _ms(ns) -> str:
    return f"{ns / 1e6:,.2f} ms"


def _s(ns) -> str:
    return f"{ns / 1e9:,.3f} s"


def _clock_sentence(result) -> str:
    c = result.clock
    unc = "" if c.uncertainty_ns is None else f" ± {_ms(c.uncertainty_ns)}"
    names = result.point_names or {}
    return (f"clock: {names.get('b', 'b')} minus {names.get('a', 'a')} = {c.offset_ns / 1e9:+.6f} s{unc} ({c.method}), "
            f"drift {c.drift * 1e6:+.2f} ppm")


def _direction_sentences(result, row: dict, rows) -> list[str]:
    d, up, down = _ends(result, row)
    sent, lost = row["sent"], row["lost_between_points"]
    bursts = f" in {_count(row['loss_bursts'], 'burst')}" if lost else ""
    out = [f"{NAMES[d]}: {lost:,} of {sent:,} packets lost between {up} and {down} "
           f"({100 * lost / max(sent, 1):.2f} %){bursts}"]
    if row["matched"]:
        out.append(f"{NAMES[d]}: one-way delay {up}→{down} min {row['delay_min_ms']:.2f} ms, "
                   f"median {row['delay_median_ms']:.2f} ms, p99 {row['delay_p99_ms']:.2f} ms, "
                   f"max {row['delay_max_ms']:.2f} ms")
    if row["matched_by_byte_range"]:
        how = ("only by byte range: the delays above are approximate"
               if row["delay_approximate"] else "their delays are left out of the figures above")
        out.append(f"{NAMES[d]}: {_count(row['matched_by_byte_range'], 'packet')} matched by "
                   "byte range (segmentation offload at a capturing host: TSO super-segments "
                   f"or GRO-merged segments); {how}")
    if row["duplicated_between_points"] or row["reordered_between_points"]:
        out.append(f"{NAMES[d]}: {_count(row['duplicated_between_points'], 'copy')} duplicated "
                   f"and {_count(row['reordered_between_points'], 'packet')} reordered between "
                   "the points")
    out += _retransmission_sentences(row, up, down)
    shrinks = result.window_shrinks
    if len(shrinks) and (row["window_shrinks_only_upstream"]
                         or row["window_shrinks_only_downstream"]):
        seen = []
        for where, point in (("upstream", up), ("downstream", down)):
            # (the first ones in the capture: the order of connections says nothing)
            frames = shrinks.filter((C("direction") == d) & (C("seen_at") == where))["frame"].sort()
            if len(frames):
                shown = ", ".join(str(f) for f in frames.head(FRAMES_SHOWN))
                more = f", … {len(frames) - FRAMES_SHOWN:,} more" \
                    if len(frames) > FRAMES_SHOWN else ""
                times = "time" if len(frames) == 1 else "times"
                seen.append(f"{len(frames):,} {times} only at {point} (frames {shown}{more})")
        out.append(f"{NAMES[d]}: the {RECEIVER[d]}'s advertised window shrank "
                   + " and ".join(seen))
    return out


def _ends(result, row: dict) -> tuple[str, str, str]:
    """(the direction, its upstream point's name, its downstream point's name): "a" and
    "b", or the names the points have on a path (result.point_names)."""
    up = row["upstream"]
    down = "b" if up == "a" else "a"
    names = result.point_names or {}
    return row["direction"], names.get(up, up), names.get(down, down)


def _retransmission_sentences(row: dict, up: str, down: str) -> list[str]:
    """Where the originals of the sender's retransmissions (seen at the upstream point)
    went missing (tcpsift.compare.retrans)."""
    d = row["direction"]
    total = row["retransmissions"]
    if not total:
        return []
    parts = []
    for column, text in (
            ("retrans_lost_between_points", f"after their original was lost between {up} and "
                                            f"{down}"),
            ("retrans_lost_before_upstream", f"whose original never reached {up} (lost "
                                             "before it)"),
            ("retrans_spurious", f"spurious: the original reached {down}"),
            ("retrans_unknown", f"whose original was sent while {down} was not capturing")):
        if row[column]:
            parts.append(f"{row[column]:,} {text}")
    return [f"{NAMES[d]}: the {SENDER[d]} retransmitted {_count(total, 'data segment')} "
            f"(seen at {up}): " + "; ".join(parts)]


def _waits(result, rows, side: str) -> dict:
    """The endpoint's think time (gaps before it answers the other side's data with data,
    at the point nearest to it) and the time its zero windows lasted."""
    own = "s2c" if side == "server" else "c2s"
    near = rows[result.upstream[own]]
    data = near.filter(C("tcp_len") > 0).sort("frame").with_columns(
        prev_dir=C("direction").shift(1).over("conn"), prev_ts=C("ts_ns").shift(1).over("conn"))
    answers = data.filter((C("direction") == own) & (C("prev_dir") != own))
    think = answers.select(C("ts_ns") - C("prev_ts")).to_series()
    sent = near.filter(C("direction") == own).sort("frame").with_columns(
        # Wireshark's zero window: a window of 0 on a segment without SYN, FIN or RST
        zero=(C("window") == 0) & ((C("tcp_flags") & (SYN | FIN | RST)) == 0),
        next_ts=C("ts_ns").shift(-1).over("conn"))
    sent = sent.with_columns(starts=C("zero") & ~C("zero").shift(1).over("conn").fill_null(False))
    episodes = sent.with_columns(episode=C("starts").cum_sum().over("conn")).filter(C("zero")) \
        .group_by("conn", "episode").agg(
            lasted=pl.coalesce(C("next_ts").max(), C("ts_ns").max()) - C("ts_ns").min())
    return {"answers": think.len(), "think_ns": int(think.sum() or 0),
            "think_median_ns": think.median(), "zero_windows": episodes.height,
            "zero_window_ns": int(episodes["lasted"].sum() or 0)}


def _wait_sentences(side: str, w: dict) -> list[str]:
    out = []
    if w["answers"]:
        out.append(f"{side} think time: median {_ms(w['think_median_ns'])} over "
                   f"{_count(w['answers'], 'answer')} ({_s(w['think_ns'])} in all)")
    if w["zero_windows"]:
        out.append(f"{side} zero window: {_count(w['zero_windows'], 'episode')}, "
                   f"{_s(w['zero_window_ns'])} in all")
    return out
