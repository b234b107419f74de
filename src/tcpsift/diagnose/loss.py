"""Loss and recovery (docs/diagnose.md, "Loss and recovery").

Per segment that takes sequence space (payload, SYN or FIN; not keep-alives or
zero-window probes), seen from the capture point:
- a repeat: its first sequence number was seen before on that side (as a segment's
  first, or a merged packet's piece's: seen_before): sent again after being seen (lost
  after the capture point, or spurious);
- a hole: it starts above the highest sequence number seen so far (something before it
  was not seen: lost before the capture point);
- a fill: it starts below the highest sequence number seen, at a number never seen before
  (a retransmission filling a hole, or, with a TCP timestamp not later than the segment
  that overtook it, a reordered segment: sent_before_overtaker).

Lost packets per side: the repeats' pieces (not the spurious ones: tshark's verdict, or
the receiver's D-SACK naming the segment as received twice), plus those never seen: where
the side's IPv4 identification counts up one by one (Linux, and most stacks per
connection, and not skipping on many steps as a counter shared between flows does), the
identifications missing between the packets seen, less those merged packets used (so a
lost retransmission, a lost last segment and a lost pure ACK count too); else the fills
not reordered and the silent tails (silent_tail). Only in a connection that shows loss
somewhere (a hole, fill, repeat, silent tail, or timeout after a few missing
identifications): elsewhere missing identifications are another flow's. A retransmission
(a repeat, a fill, a silent tail, or a segment after missing identifications: a lost last
segment's retransmission arrives in order) after the sender was silent for RTO_FLOOR_NS
and twice the round-trip time is a retransmission timeout. A recovery episode starts at a
hole, a fill (not reordered), a repeat (not a spurious one) or a timeout (there at the
sender's last packet before its silence) and lasts until the receiver acknowledges
everything sent up to then (the highest sequence number at the episode's start).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.diagnose.groups import first_at_least, last_valid, previous, running_max, starts_of

C = pl.col
KEEP_ALIVE, ZERO_WINDOW_PROBE, SPURIOUS = 0x8, 0x40, 0x4000
RTO_FLOOR_NS = 200_000_000
# an IPv4 identification counter counts "one by one" when every step between a side's
# packets is small and forward, and at least this share of them are +1
ID_SEQUENTIAL = 0.5
ID_MAX_STEP = 64
# ... and skips forward on at most this share of them (a counter shared with other flows
# skips after many packets; so would a side losing more than this share, whose fills
# and repeats count instead)
ID_SKIP_MOST = 0.25
# a lost last segment, resent in order after a timeout, leaves a gap of itself and its
# lost retransmissions or probes before the copy that arrives: a few identifications
TAIL_GAP_MOST = 3

SIDE_EXPR = pl.when(C("from_client")).then(pl.lit("client")).otherwise(pl.lit("server"))


def segment_kinds(rows: pl.DataFrame, rtt_ns: pl.DataFrame, gap_rows: pl.Series,
                  sequential: pl.DataFrame, sizes: pl.DataFrame,
                  tail_gap_rows: pl.Series | None = None) -> pl.DataFrame:
    """The rows that take sequence space, with `repeat`, `repeat_pieces`, `hole`,
    `fill`, `reordered`, `after_gap` (IPv4 identifications are missing before it:
    id_gap_rows), `spurious`, `tail` (silent_tail), `timeout` (bool) and `high` (the
    side's highest sequence number after the row). `rtt_ns`: stream -> round-trip time
    estimate; `sequential`: the sides (stream, from_client) whose identifications count
    one by one; `sizes`: segment_sizes."""
    segs = (rows.rename({"prev_hi": "_prev_hi", "since_side_ns": "_since"})
            .filter(((C("tcp_len") > 0) | C("syn") | C("fin")) & C("seq_u").is_not_null()
                    & ((C("analysis") & (KEEP_ALIVE | ZERO_WINDOW_PROBE)) == 0))
            .with_columns(
                # the very same packet again (a copy the network or a SPAN port made:
                # same IPv4 identification or TCP timestamp), not a retransmission
                _copy=~pl.struct("stream", "from_client", "seq_u", "tcp_len", "ip_id", "tsval")
                .is_first_distinct() & (C("ip_id").is_not_null() | C("tsval").is_not_null()),
                high=pl.when(C("from_client")).then(C("hi_c")).otherwise(C("hi_s")))
            .join(rtt_ns, on="stream", how="left", maintain_order="left"))
    segs = (pl.concat([segs, seen_before(segs, sizes)], how="horizontal")
            .with_columns(C("repeat") & ~C("_copy"),
                          _threshold=pl.max_horizontal(pl.lit(RTO_FLOOR_NS),
                                                       2 * C("rtt_ns").fill_null(0))))
    seen = C("_prev_hi") > 0
    after_gap = C("idx").is_in(gap_rows.implode())
    # after a gap the size of a lost last segment and its lost probes (TAIL_GAP_MOST)
    tail_gap = C("idx").is_in((gap_rows if tail_gap_rows is None else tail_gap_rows).implode())
    # what the sender sent again: a repeat, a fill, or a segment after a missing one (a
    # lost last segment's retransmission arrives in order)
    resent = C("repeat") | (seen & (C("seq_u") < C("_prev_hi"))) \
        | (after_gap & (C("tcp_len") > 0) & (C("seq_u") == C("_prev_hi")))
    threshold = pl.max_horizontal(pl.lit(RTO_FLOOR_NS), 2 * C("rtt_ns").fill_null(0))
    segs = segs.select(
        "stream", "idx", "frame", "ts_ns", "from_client", "tcp_len", "high", "raw_seq",
        "side_prev_idx", "seq_u", "tsval", "_prev_hi", "_since", "_threshold",
        "repeat", "repeat_pieces", hole=seen & (C("seq_u") > C("_prev_hi")), after_gap=after_gap,
        tail_gap=tail_gap,
        fill=~C("repeat") & seen & (C("seq_u") < C("_prev_hi")),
        spurious=C("repeat") & ((C("analysis") & SPURIOUS) != 0),
        timeout=resent & (C("_since").fill_null(0) >= threshold))
    segs = segs.with_columns(C("spurious") | dsack_spurious(rows, segs),
                             reordered=C("fill") & sent_before_overtaker(segs))
    return segs.with_columns(tail=silent_tail(rows, segs, sequential)).with_columns(
        C("timeout") | C("tail")).drop("seq_u", "tsval", "_prev_hi", "_since", "_threshold")


def seen_before(segs: pl.DataFrame, sizes: pl.DataFrame) -> pl.DataFrame:
    """Per segment: its first sequence number was seen before on its side, as a
    segment's first, or as the first of one of the pieces of a longer packet seen before
    (a TSO super-segment or a GRO merge, cut at the side's segment size: segment_sizes):
    the pieces the sender resends start there. Columns `repeat` and `repeat_pieces` (how
    many of the segment's own pieces were seen before: a merged retransmission holds
    several)."""
    n = len(segs)
    key = segs.select("stream", "from_client", "seq_u")
    seg = segment_of(segs["stream"].to_numpy(), segs["from_client"].to_numpy(), sizes)
    length = segs["tcp_len"].fill_null(0).to_numpy().astype(np.int64)
    longer = (seg > 0) & (length > seg)
    if not longer.any():
        repeat = ~pl.struct(key).is_first_distinct()
        return key.select(repeat=repeat, repeat_pieces=repeat.cast(pl.Int64))
    long = segs.select("stream", "from_client", "seq_u", "tcp_len",
                       _row=pl.int_range(n, dtype=pl.Int64)).with_columns(
        seg=pl.Series(seg)).filter(pl.Series(longer))
    pieces = (long.with_columns(_piece=pl.int_ranges(1, (C("tcp_len") + C("seg") - 1)
                                                     // C("seg"), dtype=pl.Int64))
              .explode("_piece")
              .select("stream", "from_client", seq_u=C("seq_u") + C("_piece") * C("seg"),
                      _row="_row", _piece="_piece"))
    # each packet's pieces right after it, in the order seen
    both = pl.concat([key.with_columns(_row=pl.int_range(n, dtype=pl.Int64),
                                       _piece=pl.lit(0, pl.Int64)),
                      pieces.cast({"stream": key.schema["stream"],
                                   "from_client": pl.Boolean, "seq_u": key.schema["seq_u"]})],
                     how="diagonal_relaxed").sort("_row", "_piece")
    again = (~pl.struct("stream", "from_client", "seq_u").is_first_distinct())
    flags = both.select(again.alias("again"), "_row", first=C("_piece") == 0)
    hit = flags["again"].to_numpy()
    row = flags["_row"].to_numpy()
    first = flags["first"].to_numpy()
    return pl.DataFrame({"repeat": hit[first],
                         "repeat_pieces": np.bincount(row, weights=hit, minlength=n)
                         .astype(np.int64)})


def _side_order(segs: pl.DataFrame):
    """(order sorting `segs` by stream, side and idx; True on each side's first row in
    that order)."""
    stream = segs["stream"].to_numpy()
    client = segs["from_client"].to_numpy()
    # (`segs` are in idx order, and sorted by stream: a stable sort by stream and side)
    order = np.argsort(stream.astype(np.int64) * 2 + client, kind="stable")
    return order, starts_of(stream[order], client[order])


def _later(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TCP timestamp a after b (RFC 7323: modulo 2^32)."""
    d = (a.astype(np.int64) - b.astype(np.int64)) % (1 << 32)
    return (d > 0) & (d < (1 << 31))


def sent_before_overtaker(segs: pl.DataFrame) -> pl.Series:
    """Per segment: a fill whose TCP timestamp is not later than that of the segment that
    first went above its sequence number (the one that overtook it): sent before it, so
    a reordered original, not a retransmission (which the sender sends at least a round
    trip later, with a later timestamp). False without timestamps."""
    n = len(segs)
    if n == 0:
        return pl.Series([], dtype=pl.Boolean)
    order, starts = _side_order(segs)
    fill = segs["fill"].to_numpy()[order]
    high = segs["high"].to_numpy().astype(np.int64)[order]
    seq = segs["seq_u"].fill_null(0).to_numpy().astype(np.int64)[order]
    tsval = segs["tsval"]
    has_ts = tsval.is_not_null().to_numpy()[order]
    ts = tsval.fill_null(0).to_numpy()[order]
    first = np.flatnonzero(starts)[np.cumsum(starts) - 1]
    at = np.flatnonzero(fill & has_ts)
    out = np.zeros(n, bool)
    if len(at):
        # `high` never decreases along a side: the first row whose end passed seq + 1
        j = first_at_least(high, first[at], at, seq[at] + 1)
        ok = (j < at) & has_ts[np.minimum(j, n - 1)]
        j = np.minimum(j, n - 1)
        out[at] = ok & ~_later(ts[at], ts[j])
    result = np.zeros(n, bool)
    result[order] = out
    return pl.Series(result)


def silent_tail(rows: pl.DataFrame, segs: pl.DataFrame, sequential: pl.DataFrame) -> pl.Series:
    """Per segment: the retransmission of a lost last segment, told without IPv4
    identifications (sides not in `sequential`, e.g. IPv6): a segment that continues the
    sequence in order after the sender was silent for a retransmission timeout
    (RTO_FLOOR_NS and twice the round trip) while the receiver sent no new data (no
    request to answer), where the sender had retransmitted (a fill or a repeat) within a
    timeout before it fell silent: the sender was recovering, its last segment went
    missing and the timer resent it. An application's pause after a recovery, with no
    request between, would look the same (docs/diagnose.md, Limits)."""
    n = len(segs)
    since = segs["_since"].fill_null(-1).to_numpy().astype(np.int64)
    threshold = segs["_threshold"].to_numpy().astype(np.int64)
    in_order = (segs["tcp_len"].to_numpy() > 0) & (since >= threshold) \
        & (segs["seq_u"].fill_null(-1).to_numpy() == segs["_prev_hi"].fill_null(-2).to_numpy())
    if not in_order.any():
        return pl.Series(np.zeros(n, bool))
    order, starts = _side_order(segs)
    col = {c: segs[c].to_numpy()[order] for c in ("stream", "from_client", "idx")}
    ts = segs["ts_ns"].to_numpy().astype(np.int64)[order]
    retx = ((segs["repeat"] & ~segs["spurious"]) | (segs["fill"] & ~segs["reordered"])) \
        .to_numpy()[order]
    last = last_valid(retx, starts)
    # the previous retransmission before this row on the side
    before, ok = previous(last, starts)
    before = np.where(ok, before, -1)
    since, threshold, in_order = since[order], threshold[order], in_order[order]
    recent = (before >= 0) & (ts - since - ts[np.maximum(before, 0)] <= threshold)
    # the receiver's highest sequence number when the sender fell silent and now
    prev_idx = segs["side_prev_idx"].to_numpy().astype(np.int64)[order]
    hi_c, hi_s = rows["hi_c"].to_numpy(), rows["hi_s"].to_numpy()
    client = col["from_client"]
    idx = col["idx"].astype(np.int64)
    peer_now = np.where(client, hi_s[idx], hi_c[idx])
    peer_then = np.where(client, hi_s[np.maximum(prev_idx, 0)], hi_c[np.maximum(prev_idx, 0)])
    quiet_peer = (prev_idx >= 0) & (peer_now == peer_then)
    candidate = in_order & recent & quiet_peer
    if candidate.any() and len(sequential):
        keyed = pl.DataFrame({"stream": col["stream"], "from_client": client}).join(
            sequential.select("stream", "from_client", _seq=pl.lit(True)),
            on=["stream", "from_client"], how="left", maintain_order="left")
        candidate &= ~keyed["_seq"].fill_null(False).to_numpy()
    result = np.zeros(n, bool)
    result[order] = candidate
    return pl.Series(result)


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


def segment_sizes(rows: pl.DataFrame) -> pl.DataFrame:
    """Per stream and side: `seg`, the payload of a full segment on the wire as the
    side sends it: the MSS the other side announced in its SYN, less the 12 bytes of
    the TCP timestamp option when both SYNs carried it; for a connection without a SYN,
    the side's most common payload length. (From the SYNs: a few rows per connection.)"""
    syns = rows.filter(C("syn")).group_by("stream", "from_client").agg(
        _mss=C("mss").max().cast(pl.Int64), _ts=C("tsval").is_not_null().any())
    both = syns.group_by("stream").agg(_both=C("_ts").all() & (pl.len() == 2))
    sized = (syns.filter(C("_mss").is_not_null())
             .select("stream", from_client=~C("from_client"), _mss="_mss")
             .join(both, on="stream", how="left")
             .select("stream", "from_client",
                     seg=(C("_mss") - pl.when(C("_both")).then(12).otherwise(0)).clip(1)))
    stream = rows["stream"].to_numpy()
    present = stream[np.r_[True, stream[1:] != stream[:-1]]] if len(stream) else stream
    without = np.setdiff1d(present, syns["stream"].to_numpy())
    if not len(without):
        return sized
    common = (rows.filter((C("tcp_len") > 0) & C("stream").is_in(pl.Series(without).implode()))
              .group_by("stream", "from_client")
              .agg(seg=C("tcp_len").mode().max().cast(pl.Int64).clip(1)))
    return pl.concat([sized, common.cast(sized.schema)])


def segment_of(stream: np.ndarray, client: np.ndarray, sizes: pl.DataFrame) -> np.ndarray:
    """Per row (its stream and side): segment_sizes' `seg`, 0 where there is none (a
    gather from a table by stream and side, not a join)."""
    known = sizes["stream"].to_numpy().astype(np.int64)
    top = max(int(stream.max(initial=0)), int(known.max(initial=0))) + 1
    table = np.zeros(2 * top, np.int64)
    table[known * 2 + sizes["from_client"].to_numpy()] = sizes["seg"].to_numpy()
    return table[stream.astype(np.int64) * 2 + client]


def id_steps(rows: pl.DataFrame, sizes: pl.DataFrame) -> pl.DataFrame:
    """Per IPv4 packet (identification not 0): the step of the identification from that
    side's packet before, -32768..32767 (mod 2^16), the identification unwrapped along
    the side, and `pieces`: how many identifications the packet used. A capture on the
    sending host shows a TSO super-segment the NIC cuts into pieces, each with the next
    identification; one on the receiving host shows GRO's merge of consecutive segments
    under the first one's identification: either way, a packet longer than one segment
    (`sizes`: segment_sizes) stands for ceil(length / segment) of them. `expected`: the step the
    packet before makes expected (its pieces)."""
    v4 = (rows.filter((C("ip_version") == 4) & (C("ip_id") != 0))
          .select("stream", "from_client", "idx", "ip_id", "tcp_len")
          .sort("stream", "from_client", "idx"))
    ids = v4["ip_id"].to_numpy().astype(np.int64)
    length = v4["tcp_len"].fill_null(0).to_numpy().astype(np.int64)
    seg = segment_of(v4["stream"].to_numpy(), v4["from_client"].to_numpy(), sizes)
    pieces = np.where((seg > 0) & (length > seg), -(-length // np.maximum(seg, 1)), 1)
    starts = starts_of(v4["stream"].to_numpy(), v4["from_client"].to_numpy())
    before, ok = previous(ids, starts)
    expected, _ = previous(pieces, starts)
    step = (ids - before + 32768) % 65536 - 32768
    step[starts] = 0
    total = np.cumsum(step)
    first = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1
    unwrapped = total - total[first][group] + ids[first][group] if len(ids) else total
    return v4.drop("tcp_len").with_columns(
        step=pl.Series(step), id_u=pl.Series(unwrapped), first=pl.Series(starts),
        pieces=pl.Series(pieces), expected=pl.Series(np.where(starts, 1, expected)))


def id_gaps(steps: pl.DataFrame) -> pl.DataFrame:
    """Per stream and side: whether the IPv4 identification counts up one by one (every
    step small, most of them the expected one: reordering and copies allowed), and how
    many identifications between the first and the last seen were never seen (none used
    by a packet's pieces)."""
    later = ~C("first")
    top = C("id_u") == C("id_u").max()
    return steps.group_by("stream", "from_client").agg(
        id_sequential=((C("step") == C("expected")).filter(later).mean() >= ID_SEQUENTIAL)
        & ((C("step") > C("expected")).filter(later).mean() <= ID_SKIP_MOST)
        & ((C("step") - C("expected")).abs() <= ID_MAX_STEP).filter(later).all()
        & (later.sum() >= 4),
        # the pieces of merged packets below the highest identification used the ones
        # after theirs
        id_missing=(C("id_u").max() - C("id_u").min() + 1 - C("id_u").n_unique()
                    - (C("pieces") - 1).filter(~top).sum()).clip(0))


def id_gap_rows(steps: pl.DataFrame, gaps: pl.DataFrame, most: int = ID_MAX_STEP) -> pl.Series:
    """The rows (idx) of sides counting one by one that come after missing
    identifications (at most `most` of them)."""
    sequential = gaps.filter(C("id_sequential")).select("stream", "from_client")
    return (steps.join(sequential, on=["stream", "from_client"], how="semi")
            .filter(~C("first") & (C("step") > C("expected"))
                    & (C("step") - C("expected") <= most))["idx"])


def loss_counts(segs: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """Per stream and side: lost (estimated), seen_then_resent, unseen, retransmissions,
    timeouts."""
    per = segs.group_by("stream", "from_client").agg(
        repeats=C("repeat").sum(), spurious=C("spurious").sum(),
        resent_pieces=C("repeat_pieces").filter(C("repeat") & ~C("spurious")).sum(),
        fills=(C("fill") & ~C("reordered")).sum(), timeouts=C("timeout").sum(),
        tails=C("tail").sum(), holes=C("hole").sum(), positions=C("fill").sum(),
        gap_timeouts=(C("after_gap") & C("timeout") & ~C("repeat") & ~C("fill")).sum(),
        tail_timeouts=(C("tail_gap") & C("timeout") & ~C("repeat") & ~C("fill")).sum())
    per = per.join(gaps, on=["stream", "from_client"], how="left", maintain_order="left")
    # a connection in which neither side shows anything missing or resent (no hole, fill,
    # repeat, silent tail, or timeout after at most TAIL_GAP_MOST missing identifications)
    # has lost nothing: identifications missing there are another flow's (a counter
    # shared between connections: steps of several after small packets) or the
    # capture's own drops
    trouble = (pl.sum_horizontal("holes", "positions", "repeats", "tail_timeouts", "tails")
               .sum().over("stream")) > 0
    # a side whose identification counts one by one: every identification never seen
    # (lost data, lost retransmissions and lost pure ACKs alike); else the
    # retransmissions of segments never seen
    unseen = pl.when(~trouble).then(0).when(C("id_sequential").fill_null(False)) \
        .then(C("id_missing")).otherwise(C("fills") + C("tails"))
    return per.select("stream", "from_client",
                      seen_then_resent=C("resent_pieces").cast(pl.Int64),
                      spurious=C("spurious").cast(pl.Int64),
                      unseen=unseen.cast(pl.Int64),
                      retransmissions=(C("repeats") + C("fills") + C("gap_timeouts")
                                       + C("tails")).cast(pl.Int64),
                      timeouts=C("timeouts").cast(pl.Int64)) \
        .with_columns(lost=C("seen_then_resent") + C("unseen"))


def recovery_episodes(rows: pl.DataFrame, segs: pl.DataFrame) -> pl.DataFrame:
    """Loss recovery episodes: from each hole, fill or repeat to the acknowledgment of
    everything sent up to it; overlapping ones merged. Columns as window episodes'."""
    # a timeout's episode starts where the sender fell silent; a spurious repeat is none
    events = (segs.filter(C("hole") | (C("fill") & ~C("reordered"))
                          | (C("repeat") & ~C("spurious"))
                          | (C("after_gap") & C("timeout")) | C("tail"))
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
