"""Loss and recovery (docs/diagnose.md, "Loss and recovery").

Per segment that takes sequence space (payload, SYN or FIN; not keep-alives or
zero-window probes), seen from the capture point:
- a repeat: its first sequence number was seen before on that side: sent again after
  being seen (lost after the capture point, or spurious);
- a hole: it starts above the highest sequence number seen so far (something before it
  was not seen: lost before the capture point);
- a fill: it starts below the highest sequence number seen, at a number never seen before
  (a retransmission filling a hole, or a reordered segment).

Lost packets per side: the repeats (not the spurious ones: tshark's verdict, or the
receiver's D-SACK naming the segment as received twice), plus those never
seen: where the side's IPv4 identification counts up one by one (Linux, and most stacks
per connection), the identifications missing between the packets seen (so a lost
retransmission and a lost last segment count too); else the fills. A retransmission (a
repeat, a fill, or a segment after missing identifications: a lost last segment's
retransmission arrives in order) after the sender was silent for RTO_FLOOR_NS and twice
the round-trip time is a retransmission timeout. A recovery episode starts at a hole, a
fill, a repeat (not a spurious one) or a timeout (there at the sender's last packet
before its silence) and lasts until the receiver acknowledges everything sent up to then
(the highest sequence number at the episode's start).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.diagnose.groups import first_at_least, previous, running_max, starts_of

C = pl.col
KEEP_ALIVE, ZERO_WINDOW_PROBE, SPURIOUS = 0x8, 0x40, 0x4000
RTO_FLOOR_NS = 200_000_000
# an IPv4 identification counter counts "one by one" when every step between a side's
# packets is small and forward, and at least this share of them are +1
ID_SEQUENTIAL = 0.5
ID_MAX_STEP = 64

SIDE_EXPR = pl.when(C("from_client")).then(pl.lit("client")).otherwise(pl.lit("server"))


def segment_kinds(rows: pl.DataFrame, rtt_ns: pl.DataFrame, gap_rows: pl.Series) -> pl.DataFrame:
    """The rows that take sequence space, with `repeat`, `hole`, `fill`, `after_gap`
    (IPv4 identifications are missing before it: id_gap_rows), `spurious`, `timeout`
    (bool) and `high` (the side's highest sequence number after the row). `rtt_ns`:
    stream -> round-trip time estimate."""
    segs = (rows.rename({"prev_hi": "_prev_hi", "since_side_ns": "_since"})
            .filter(((C("tcp_len") > 0) | C("syn") | C("fin")) & C("seq_u").is_not_null()
                    & ((C("analysis") & (KEEP_ALIVE | ZERO_WINDOW_PROBE)) == 0))
            .with_columns(
                repeat=~pl.struct("stream", "from_client", "seq_u").is_first_distinct(),
                # the very same packet again (a copy the network or a SPAN port made:
                # same IPv4 identification or TCP timestamp), not a retransmission
                _copy=~pl.struct("stream", "from_client", "seq_u", "tcp_len", "ip_id", "tsval")
                .is_first_distinct() & (C("ip_id").is_not_null() | C("tsval").is_not_null()),
                high=pl.when(C("from_client")).then(C("hi_c")).otherwise(C("hi_s")))
            .join(rtt_ns, on="stream", how="left", maintain_order="left")
            .with_columns(C("repeat") & ~C("_copy")))
    seen = C("_prev_hi") > 0
    after_gap = C("idx").is_in(gap_rows.implode())
    # what the sender sent again: a repeat, a fill, or a segment after a missing one (a
    # lost last segment's retransmission arrives in order)
    resent = C("repeat") | (seen & (C("seq_u") < C("_prev_hi"))) \
        | (after_gap & (C("tcp_len") > 0) & (C("seq_u") == C("_prev_hi")))
    threshold = pl.max_horizontal(pl.lit(RTO_FLOOR_NS), 2 * C("rtt_ns").fill_null(0))
    segs = segs.select(
        "stream", "idx", "frame", "ts_ns", "from_client", "tcp_len", "high", "raw_seq",
        "side_prev_idx",
        "repeat", hole=seen & (C("seq_u") > C("_prev_hi")), after_gap=after_gap,
        fill=~C("repeat") & seen & (C("seq_u") < C("_prev_hi")),
        spurious=C("repeat") & ((C("analysis") & SPURIOUS) != 0),
        timeout=resent & (C("_since").fill_null(0) >= threshold))
    return segs.with_columns(C("spurious") | dsack_spurious(rows, segs))


def dsack_spurious(rows: pl.DataFrame, segs: pl.DataFrame) -> pl.Series:
    """Per segment of `segs`: a repeat the receiver reported as received twice with a
    D-SACK (RFC 2883: a first SACK block below the acknowledgment number, naming the
    segment's first sequence number) after it: the original had arrived, the repeat was
    spurious (a tail loss probe, a too early timeout)."""
    reports = rows.filter(C("sack_left").is_not_null() & C("raw_ack").is_not_null()).filter(
        (C("raw_ack").cast(pl.Int64) - C("sack_left").cast(pl.Int64)).mod(1 << 32)
         .is_between(1, (1 << 31) - 1)).select(
        "stream", from_client=~C("from_client"), raw_seq=C("sack_left"), _report=C("idx"))
    repeats = segs.filter(C("repeat")).select("stream", "from_client", "raw_seq", "idx")
    hit = (repeats.join(reports, on=["stream", "from_client", "raw_seq"], how="inner")
           .filter(C("_report") > C("idx"))["idx"].unique())
    return segs["idx"].is_in(hit.implode(), nulls_equal=False) if len(hit) \
        else pl.Series([False] * len(segs))


def id_steps(rows: pl.DataFrame) -> pl.DataFrame:
    """Per IPv4 packet (identification not 0) after its side's first: the step of the
    identification from that side's packet before, -32768..32767 (mod 2^16), and the
    identification unwrapped along the side."""
    v4 = (rows.filter((C("ip_version") == 4) & (C("ip_id") != 0))
          .select("stream", "from_client", "idx", "ip_id").sort("stream", "from_client", "idx"))
    ids = v4["ip_id"].to_numpy().astype(np.int64)
    starts = starts_of(v4["stream"].to_numpy(), v4["from_client"].to_numpy())
    before, ok = previous(ids, starts)
    step = (ids - before + 32768) % 65536 - 32768
    step[starts] = 0
    total = np.cumsum(step)
    first = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1
    unwrapped = total - total[first][group] + ids[first][group] if len(ids) else total
    return v4.with_columns(step=pl.Series(step), id_u=pl.Series(unwrapped),
                           first=pl.Series(starts))


def id_gaps(steps: pl.DataFrame) -> pl.DataFrame:
    """Per stream and side: whether the IPv4 identification counts up one by one (every
    step small, most of them +1: reordering and copies allowed), and how many
    identifications between the first and the last seen were never seen."""
    later = ~C("first")
    return steps.group_by("stream", "from_client").agg(
        id_sequential=((C("step") == 1).filter(later).mean() >= ID_SEQUENTIAL)
        & (C("step").abs() <= ID_MAX_STEP).filter(later).all() & (later.sum() >= 4),
        id_missing=(C("id_u").max() - C("id_u").min() + 1 - C("id_u").n_unique()))


def id_gap_rows(steps: pl.DataFrame, gaps: pl.DataFrame) -> pl.Series:
    """The rows (idx) of sides counting one by one that come after missing
    identifications."""
    sequential = gaps.filter(C("id_sequential")).select("stream", "from_client")
    return (steps.join(sequential, on=["stream", "from_client"], how="semi")
            .filter(~C("first") & (C("step") >= 2))["idx"])


def loss_counts(segs: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """Per stream and side: lost (estimated), seen_then_resent, unseen, retransmissions,
    timeouts."""
    per = segs.group_by("stream", "from_client").agg(
        repeats=C("repeat").sum(), spurious=C("spurious").sum(), holes=C("hole").sum(),
        fills=C("fill").sum(), timeouts=C("timeout").sum(),
        gap_timeouts=(C("after_gap") & C("timeout") & ~C("repeat") & ~C("fill")).sum())
    per = per.join(gaps, on=["stream", "from_client"], how="left", maintain_order="left")
    trouble = (C("holes") + C("fills") + C("repeats") + C("gap_timeouts")) > 0
    unseen = pl.when(~trouble).then(0).when(C("id_sequential").fill_null(False)) \
        .then(C("id_missing")).otherwise(C("fills"))
    return per.select("stream", "from_client",
                      seen_then_resent=(C("repeats") - C("spurious")).cast(pl.Int64),
                      spurious=C("spurious").cast(pl.Int64),
                      unseen=unseen.cast(pl.Int64),
                      retransmissions=(C("repeats") + C("fills") + C("gap_timeouts"))
                      .cast(pl.Int64),
                      timeouts=C("timeouts").cast(pl.Int64)) \
        .with_columns(lost=C("seen_then_resent") + C("unseen"))


def recovery_episodes(rows: pl.DataFrame, segs: pl.DataFrame) -> pl.DataFrame:
    """Loss recovery episodes: from each hole, fill or repeat to the acknowledgment of
    everything sent up to it; overlapping ones merged. Columns as window episodes'."""
    # a timeout's episode starts where the sender fell silent; a spurious repeat is none
    events = (segs.filter(C("hole") | C("fill") | (C("repeat") & ~C("spurious"))
                          | (C("after_gap") & C("timeout")))
              .select("stream", "from_client", "high", "idx",
                      start=pl.when(C("timeout") & (C("side_prev_idx") >= 0))
                      .then(C("side_prev_idx")).otherwise(C("idx")))
              .sort("start", "idx"))
    stream = rows["stream"].to_numpy().astype(np.int64)
    starts = events["start"].to_numpy().astype(np.int64)
    ev_stream = events["stream"].to_numpy().astype(np.int64)
    # the connection's last row (rows are sorted by stream)
    stream_last = np.searchsorted(stream, ev_stream, side="right").astype(np.int64) - 1
    ends = np.empty(len(events), np.int64)
    client = events["from_client"].to_numpy()
    high = events["high"].to_numpy()
    at = events["idx"].to_numpy().astype(np.int64)
    for side, una in ((True, "una_c"), (False, "una_s")):
        mask = client == side
        ends[mask] = first_at_least(rows[una].to_numpy(), at[mask], stream_last[mask] + 1,
                                    high[mask])
    ends = np.minimum(ends, stream_last)
    group_starts = starts_of(ev_stream)
    reach, _ = running_max(ends, np.ones(len(ends), bool), group_starts)
    reach_before, ok = previous(reach, group_starts)
    new = ~ok | (starts > reach_before)
    merged = (pl.DataFrame({"stream": ev_stream, "start_idx": starts, "end_idx": ends,
                            "from_client": events["from_client"],
                            "_episode": np.cumsum(new)})
              .group_by("_episode", maintain_order=True)
              .agg(C("stream").first(), C("start_idx").first(), C("end_idx").max(),
                   side=SIDE_EXPR.first(), frames=pl.len()))
    ref = rows.select("idx", "frame", "ts_ns")
    return (merged.join(ref.rename({"idx": "start_idx", "frame": "first_frame",
                                    "ts_ns": "start_ns"}), on="start_idx", how="left", maintain_order="left")
            .join(ref.rename({"idx": "end_idx", "frame": "last_frame", "ts_ns": "end_ns"}),
                  on="end_idx", how="left", maintain_order="left")
            .select("stream", kind=pl.lit("loss"), side="side", first_frame="first_frame",
                    last_frame="last_frame", start_ns="start_ns", end_ns="end_ns",
                    start_idx="start_idx", end_idx="end_idx", frames="frames",
                    min_window=pl.lit(None, pl.Int64), min_window_frame=pl.lit(None, pl.UInt32)))
