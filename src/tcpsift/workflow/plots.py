"""Plots of one TCP connection: the series (a Polars frame) and the picture (a matplotlib
Figure), for `tcpsift plot` and for Python.

    frame = plot_data(capture, stream, "window")           # what is drawn, frame by frame
    fig = plot(capture, stream, "tseq", direction="s2c")   # matplotlib.figure.Figure

`direction` names the data flow studied, as tcptrace's a2b/b2a graphs and Wireshark's
stream graphs do: `s2c` is the data the server sends, together with the ACKs, windows and
SACK blocks the client returns about it. Without one, the direction that carried more
payload. Every series keeps `frame` (find the point in Wireshark) and the connection's
relative time `time_rel_s` (tcp.time_relative). The per-packet columns are the ladder's
(tcpsift.workflow.ladder): the same values, equal to tshark's.

Series by kind (sender = packets in `direction`, receiver = the other way):
  window      receiver's packets but RSTs (whose window means nothing): frame, time_rel_s, window
  window-ack  the same plus ack
  tseq        every packet: frame, time_rel_s, direction, flags, seq, next_seq, len, ack,
              window, window_edge (ack + window), sack (relative left-right pairs), verdicts
  rtt         receiver's ACKs with an ACK RTT: frame, time_rel_s, ack_rtt_s, acks_frame
  throughput  every packet: frame, time_rel_s, direction, len, acked_bytes (how far this
              ACK moved the cumulative ACK), throughput_bit_s (sender rows) and goodput_bit_s
              (receiver rows) averaged over the trailing average_s seconds
  inflight    every packet: frame, time_rel_s, direction, bytes_in_flight (sender rows,
              tcp.analysis.bytes_in_flight), window (receiver rows)

The library draws on a figure of its own (matplotlib's object API, no pyplot state, no
backend chosen): a guest in the caller's matplotlib.
"""
from __future__ import annotations

import functools
import io
import math
import os
from dataclasses import dataclass
from typing import cast

import polars as pl

from tcpsift.addresses import endpoint
from tcpsift.tcp import FLAG_BITS

C = pl.col

KINDS = {
    "window": "receive window over time",
    "window-ack": "receive window and ACK number on twin axes",
    "tseq": "time-sequence graph (tcptrace's marks)",
    "rtt": "ACK round-trip time samples over time",
    "throughput": "throughput and goodput, moving average",
    "inflight": "bytes in flight against the receive window",
}
DIRECTIONS = ("c2s", "s2c")
INSTALL_HINT = "plots need matplotlib: pip install 'tcpsift[plot]'"
# savefig's metadata per format without the time of drawing: the same capture gives the
# same file (`tcpsift plot`, the report's figures)
UNDATED = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
RETRANSMISSIONS = (FLAG_BITS["retransmission"] | FLAG_BITS["fast_retransmission"]
                   | FLAG_BITS["spurious_retransmission"])


class PlotError(ValueError):
    """A request that cannot be drawn (unknown stream, kind or direction); the message is
    one line that says what is valid."""


# --- the connection's packets -----------------------------------------------------------

@dataclass
class Connection:
    """One stream's packets (ladder columns and the analysis the plots need), its endpoints
    and the data direction studied."""
    stream: int
    client: str
    server: str
    direction: str
    packets: pl.DataFrame
    source: str
    # which end the capture point sits next to, judged from the handshake (None: unknown)
    captured_near: str | None = None
    # SYN to handshake ACK, wherever the capture point is (None without a handshake)
    handshake_rtt_s: float | None = None

    @property
    def sender(self) -> str:
        return "client" if self.direction == "c2s" else "server"

    @property
    def receiver(self) -> str:
        return "server" if self.direction == "c2s" else "client"

    def sent(self) -> pl.DataFrame:
        return self.packets.filter(C("direction") == self.direction)

    def received(self) -> pl.DataFrame:
        return self.packets.filter(C("direction") != self.direction)



def _packets(capture, stream: int, rungs: pl.DataFrame | None = None) -> pl.DataFrame:
    """The stream's rows: the ladder's (frame, direction, time_rel_s, flags, seq, ack, len,
    window, verdicts) and the analysis columns the plots draw besides. `rungs`: the
    stream's ladder when the caller has it already."""
    from tcpsift.workflow.ladder import COLUMNS, ladder

    keys = ["frame", "file_id"]
    tcp = capture.scan("tcp").filter(C("stream") == stream).select(
        *keys, "next_seq", "analysis", "acks_frame", "ack_rtt_ns", "bytes_in_flight",
        # the raw seq minus the relative one: the side's base, to make SACK edges relative
        C("rel_seq").cast(pl.Int64).alias("_rel_seq")).collect()
    # the packet table's rows of the stream's frames only (a join with all of them costs
    # ~0.2 s on a million packets; from the cache, only the row groups that hold them)
    frames = tcp["frame"]
    ours = (C("frame").is_between(frames.min(), frames.max())
            & C("frame").is_in(frames.implode())) if len(frames) else pl.lit(False)
    pk = capture.scan("packets").filter(ours).select(
        *keys, "tcp_flags", C("seq").cast(pl.Int64).alias("_raw_seq"), "sack_blocks").collect()
    extra = tcp.join(pk, on=keys, how="left").select(
        "frame", "tcp_flags", "next_seq", "analysis", "acks_frame", "ack_rtt_ns",
        "bytes_in_flight", ((C("_raw_seq") - C("_rel_seq")) % (1 << 32)).alias("_base"),
        "sack_blocks")
    if rungs is None:
        rungs = ladder(capture, stream=stream)
    return rungs.select(*COLUMNS).join(extra, on="frame", how="left", maintain_order="left")


def connection(capture, stream: int, direction: str | None = None, *,
               rungs: pl.DataFrame | None = None) -> Connection:
    """Stream `stream` of `capture`; PlotError when there is no such stream. `rungs`: the
    stream's ladder (tcpsift.workflow.ladder.ladder) when the caller has made it already."""
    conns = capture.conns
    row = conns.filter(C("stream") == stream)
    if direction is not None and direction not in DIRECTIONS:
        raise PlotError(f"unknown direction {direction!r}: use c2s or s2c")
    source = ", ".join(os.path.basename(f["path"]) for f in capture.info.files)
    if row.is_empty():
        valid = (f"streams are 0-{conns['stream'].max()}" if len(conns)
                 else "it has no TCP connection")
        raise PlotError(f"no TCP stream {stream} in {source}: {valid}")
    r = row.row(0, named=True)
    client, server = str(r["client"]), str(r["server"])
    packets = _packets(capture, stream, rungs)
    if direction is None:
        direction = "s2c" if (r["s2c_payload"] or 0) > (r["c2s_payload"] or 0) else "c2s"
    return Connection(stream, endpoint(client, r["client_port"]),
                      endpoint(server, r["server_port"]), direction, packets, source,
                      _captured_near(r["syn_to_synack_ns"], r["synack_to_ack_ns"]),
                      _handshake_rtt(r["syn_to_synack_ns"], r["synack_to_ack_ns"]))


def _handshake_rtt(syn_to_synack_ns, synack_to_ack_ns) -> float | None:
    if syn_to_synack_ns is None or synack_to_ack_ns is None:
        return None
    return (syn_to_synack_ns + synack_to_ack_ns) / 1e9


def _captured_near(syn_to_synack_ns, synack_to_ack_ns) -> str | None:
    """Next to the client, SYN to SYN-ACK takes the path's round trip and SYN-ACK to ACK
    almost nothing; next to the server the other way round."""
    if syn_to_synack_ns is None or synack_to_ack_ns is None:
        return None
    if synack_to_ack_ns * 5 < syn_to_synack_ns:
        return "client"
    if syn_to_synack_ns * 5 < synack_to_ack_ns:
        return "server"
    return None


# --- the series -------------------------------------------------------------------------

def _window_rows(conn: Connection) -> pl.DataFrame:
    return conn.received().filter((C("tcp_flags") & RST) == 0)


def _with_sack(conn: Connection, frame: pl.DataFrame) -> pl.DataFrame:
    """A `sack` column: the receiver's SACK blocks relative to the sender's base (the
    sender's own blocks, when data flows both ways, are about the other sequence space and
    are left out)."""
    base = conn.sent().get_column("_base").drop_nulls()
    sender_base = base[0] if len(base) else 0
    flat = (frame.filter(C("direction") != conn.direction)
            .select("frame", "sack_blocks").explode("sack_blocks")
            .drop_nulls("sack_blocks")
            .with_columns(((C("sack_blocks").cast(pl.Int64) - sender_base) % (1 << 32))
                          .alias("edge"))
            .with_columns((pl.int_range(pl.len()).over("frame") // 2).alias("block")))
    pairs = (flat.group_by("frame", "block", maintain_order=True)
             .agg(C("edge").cast(pl.String).str.join("-").alias("pair"))
             .group_by("frame", maintain_order=True)
             .agg(C("pair").str.join(" ").alias("sack")))
    return frame.join(pairs, on="frame", how="left")


def default_average(duration_s: float, rtt_s: float | None = None) -> float:
    """Moving-average period for throughput: a twentieth of the connection and at least four
    round trips (a sender sends in bursts once per round trip), on a 1-2-5 scale, between
    1 ms and 1 s (Wireshark's fixed 1 s flattens a one-second transfer)."""
    target = min(max(duration_s / 20, 4 * (rtt_s or 0), 0.001), 1.0)
    exp = math.floor(math.log10(target))
    for step in (1, 2, 5, 10):
        if step * 10 ** exp >= target * (1 - 1e-9):
            return round(step * 10 ** exp, 6)
    return 1.0


def _trailing_rate(times: list[float], amounts: list[int], period: float) -> list[int]:
    """bit/s (whole) over the trailing `period` at each time: the sum of amounts in (t - period, t]."""
    out, total, oldest = [], 0, 0
    for t, a in zip(times, amounts):
        total += a
        while times[oldest] <= t - period:
            total -= amounts[oldest]
            oldest += 1
        out.append(round(total * 8 / period))
    return out


def _throughput(conn: Connection, average_s: float | None) -> pl.DataFrame:
    rows = conn.packets
    if average_s is None:
        span = cast("float | None", rows["time_rel_s"].max()) if len(rows) else 0
        average_s = default_average(span or 0, conn.handshake_rtt_s)
    sent = C("direction") == conn.direction
    ack_rows = ~sent & ((C("tcp_flags") & ACK) != 0)
    # how far each of the receiver's ACKs moved the cumulative ACK (the first one starts it)
    acks = rows.filter(ack_rows).select(
        "frame", (C("ack").cast(pl.Int64) - C("ack").cast(pl.Int64).cum_max().shift(1))
        .clip(lower_bound=0).fill_null(0).alias("acked_bytes"))
    rows = rows.join(acks, on="frame", how="left").with_columns(
        # a row without a segment length (an ICMP error quoting one) carries no bytes
        pl.when(sent).then(C("len").fill_null(0)).otherwise(0).alias("_sent_bytes"),
        C("acked_bytes").fill_null(0))
    sender = rows.filter(sent)
    receiver = rows.filter(~sent)
    rates = pl.concat([
        sender.select("frame", pl.Series("throughput_bit_s", _trailing_rate(
            sender["time_rel_s"].to_list(), sender["_sent_bytes"].to_list(), average_s),
            dtype=pl.Int64), pl.lit(None, pl.Int64).alias("goodput_bit_s")),
        receiver.select("frame", pl.lit(None, pl.Int64).alias("throughput_bit_s"),
                        pl.Series("goodput_bit_s", _trailing_rate(
                            receiver["time_rel_s"].to_list(),
                            receiver["acked_bytes"].to_list(), average_s),
                            dtype=pl.Int64)),
    ])
    return (rows.join(rates, on="frame", how="left")
            .select("frame", "time_rel_s", "direction", "len", "acked_bytes",
                    "throughput_bit_s", "goodput_bit_s",
                    pl.lit(average_s).alias("average_s")))


def series(conn: Connection, kind: str, average_s: float | None = None,
           start_s: float | None = None, end_s: float | None = None) -> pl.DataFrame:
    """The plotted series of `kind` for a connection (see the module's docstring), the rows
    between start_s and end_s (connection-relative seconds) when given."""
    _check_kind(kind)
    rows = _series(conn, kind, average_s)
    if start_s is not None:
        rows = rows.filter(C("time_rel_s") >= start_s)
    if end_s is not None:
        rows = rows.filter(C("time_rel_s") <= end_s)
    return rows


def _series(conn: Connection, kind: str, average_s: float | None) -> pl.DataFrame:
    if kind == "window":
        return _window_rows(conn).select("frame", "time_rel_s", "window")
    if kind == "window-ack":
        return _window_rows(conn).select("frame", "time_rel_s", "window", "ack")
    if kind == "tseq":
        rows = _with_sack(conn, conn.packets)
        return rows.select(
            "frame", "time_rel_s", "direction", "flags", "seq", "next_seq", "len", "ack",
            "window",
            pl.when((C("tcp_flags") & ACK) != 0)
            .then(C("ack").cast(pl.Int64) + C("window")).alias("window_edge"),
            "sack", "verdicts")
    if kind == "rtt":
        return conn.received().filter(C("ack_rtt_ns").is_not_null()).select(
            "frame", "time_rel_s", (C("ack_rtt_ns") / 1e9).alias("ack_rtt_s"), "acks_frame")
    if kind == "throughput":
        return _throughput(conn, average_s)
    sent = C("direction") == conn.direction   # inflight
    return conn.packets.filter(sent | ((C("tcp_flags") & RST) == 0)).select(
        "frame", "time_rel_s", "direction",
        pl.when(sent).then(C("bytes_in_flight")).alias("bytes_in_flight"),
        pl.when(~sent).then(C("window")).alias("window"))


def plot_data(capture, stream: int, kind: str, direction: str | None = None,
              average_s: float | None = None, start_s: float | None = None,
              end_s: float | None = None) -> pl.DataFrame:
    """The series `plot()` draws, one row per packet used (see the module's docstring)."""
    _check_kind(kind)
    return series(connection(capture, stream, direction), kind, average_s, start_s, end_s)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise PlotError(f"unknown plot kind {kind!r}: one of {', '.join(KINDS)}")


# --- the pictures -----------------------------------------------------------------------

# One SI prefix per axis (ticks "0 200 400" with "(kB)" in the label read faster than
# a prefix on every tick).
_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))
_SECONDS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"))

COLOURS = {"data": "#1f3b73", "retransmission": "#d62728", "out_of_order": "#1f9bd6",
           "probe": "#ff7f0e", "ack": "#2ca02c", "window": "#b8860b", "sack": "#9467bd",
           "zero": "#d62728", "goodput": "#2ca02c"}


def _seconds_unit(seconds: float) -> tuple[float, str]:
    """The unit a duration reads best in: (seconds per unit, its name)."""
    return next(((f, n) for f, n in _SECONDS if seconds >= f), _SECONDS[-1])


def _duration(seconds: float) -> str:
    factor, unit = _seconds_unit(seconds)
    return f"{seconds / factor:.3g} {unit}"


def _si_axis(axis, unit: str, largest: float, quantity: str) -> None:
    """Label `axis` '<quantity> (<prefix><unit>)' and divide its ticks by the prefix."""
    from matplotlib.ticker import FuncFormatter

    if unit == "s":
        factor, name = _seconds_unit(largest)
    else:
        factor, prefix = next(((f, p) for f, p in _PREFIXES if largest >= f), _PREFIXES[-1])
        name = prefix + unit
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / factor:g}"))
    axis.set_label_text(f"{quantity} ({name})")


def _largest(*columns) -> float:
    values = [c.max() for c in columns if c is not None and c.len() and c.max() is not None]
    return float(max(values, default=0) or 0)


def _time_axis(ax, data: pl.DataFrame) -> None:
    _si_axis(ax.xaxis, "s", _largest(data["time_rel_s"]),
             "time since the connection's first packet")


def _has_verdict(bits: int) -> pl.Expr:
    """Rows with any of these tcp.analysis bits."""
    return (C("analysis").fill_null(0) & bits) != 0


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this direction (try --direction)", ha="center",
            va="center", transform=ax.transAxes, color="grey")


def _step(ax, frame: pl.DataFrame, y: str, **style):
    return ax.step(frame["time_rel_s"].to_numpy(), frame[y].to_numpy(), where="post",
                   **{"linewidth": 1.2, **style})[0]


def _draw_window(ax, conn: Connection, data: pl.DataFrame) -> list:
    if data.is_empty():
        _no_data(ax, "window advertisements")
        return []
    handles = [_step(ax, data, "window", color=COLOURS["data"],
                     label=f"window advertised by the {conn.receiver}")]
    zero = data.filter(C("window") == 0)
    if len(zero):
        handles.append(ax.scatter(zero["time_rel_s"], zero["window"], marker="x", s=40,
                                  color=COLOURS["zero"], zorder=3, clip_on=False,
                                  label=f"zero window ({len(zero)} frames)"))
        _label_zero_episodes(ax, data)
    else:
        _label_deepest_dip(ax, conn, data)
    _si_axis(ax.yaxis, "B", _largest(data["window"]), "receive window")
    ax.set_ylim(bottom=0)
    return handles


def _label_zero_episodes(ax, data: pl.DataFrame, most: int = 6) -> None:
    """The first frame of each run of zero windows (the first few runs)."""
    firsts = data.filter((C("window") == 0) & (C("window").shift(1).fill_null(1) != 0))
    for r in firsts.head(most).iter_rows(named=True):
        ax.annotate(f"zero window\nframe {r['frame']}", (r["time_rel_s"], 0), xytext=(4, 14),
                    textcoords="offset points", fontsize=7, color=COLOURS["zero"])


def _label_deepest_dip(ax, conn: Connection, data: pl.DataFrame) -> None:
    dip = _deepest_dip(conn, data)
    if dip is not None:
        ax.annotate(f"deepest dip: {dip['window']:,} B, frame {dip['frame']}\n"
                    f"(earlier peak {dip['peak']:,} B)", (dip["time_rel_s"], dip["window"]),
                    # below the dip, where the window just came down from, unless that
                    # is the axis
                    xytext=(-40, 30 if dip["window"] < 0.1 * cast(int, data["window"].max()) else -25),
                    textcoords="offset points", fontsize=8, ha="right", va="center",
                    arrowprops={"arrowstyle": "->", "color": "grey"})


def _deepest_dip(conn: Connection, data: pl.DataFrame) -> dict | None:
    """The window furthest below the largest one advertised before it (a window still
    growing after the handshake is no dip), when under 90 % of that peak; SYNs are left
    out (their window is never scaled)."""
    rows = (data.join(conn.packets.select("frame", "tcp_flags"), on="frame", how="left")
            .filter((C("tcp_flags") & SYN) == 0)
            .with_columns(C("window").cum_max().alias("peak")))
    rows = rows.filter(C("peak") > 0).with_columns((C("window") / C("peak")).alias("ratio"))
    if rows.is_empty() or cast(float, rows["ratio"].min()) >= 0.9:
        return None
    return rows.sort("ratio", "frame").row(0, named=True)


def _draw_window_ack(ax, conn: Connection, data: pl.DataFrame) -> list:
    handles = _draw_window(ax, conn, data)
    if data.is_empty():
        return handles
    ax.yaxis.label.set_color(COLOURS["data"])
    twin = ax.twinx()
    handles.append(_step(twin, data, "ack", color=COLOURS["ack"],
                         label=f"ACK number sent by the {conn.receiver} (relative)"))
    _si_axis(twin.yaxis, "B", _largest(data["ack"]), "ACK number, relative")
    twin.yaxis.label.set_color(COLOURS["ack"])
    twin.set_ylim(bottom=0)
    return handles


def _segments(conn: Connection, data: pl.DataFrame) -> pl.DataFrame:
    """The sender's rows that occupy sequence space (data, SYN, FIN)."""
    return data.filter((C("direction") == conn.direction) & (C("next_seq") != C("seq")))


def _draw_tseq(ax, conn: Connection, data: pl.DataFrame) -> list:
    """tcptrace's marks: segments as bars from seq to next_seq, retransmissions red with an
    R, out-of-order O, window probes P; the receiver's ACK line, window edge (ACK + window),
    SACK blocks, duplicate-ACK ticks and zero windows; SYN/FIN/RST named."""
    sent = data.filter(C("direction") == conn.direction)
    recv = data.filter(C("direction") != conn.direction)
    with_analysis = conn.packets.select("frame", "analysis", "tcp_flags")
    sent = sent.join(with_analysis, on="frame", how="left")
    recv = recv.join(with_analysis, on="frame", how="left")
    handles = []
    segments = _segments(conn, sent)
    # Linux probes a zero window with an empty segment just below the ACK, which
    # Wireshark calls a keep-alive: probes are marked whatever their length
    probes = FLAG_BITS["zero_window_probe"] | FLAG_BITS["keep_alive"]
    marks = [
        (segments.filter(_has_verdict(RETRANSMISSIONS)), "retransmission",
         "retransmission (R)", "$R$"),
        (segments.filter(_has_verdict(FLAG_BITS["out_of_order"])), "out_of_order",
         "out of order (O)", "$O$"),
        (sent.filter(_has_verdict(probes)), "probe", "window probe / keep-alive (P)", "$P$"),
    ]
    plain = segments.filter(
        ~_has_verdict(RETRANSMISSIONS | FLAG_BITS["out_of_order"] | probes))
    if len(plain):
        handles.append(ax.vlines(plain["time_rel_s"], plain["seq"], plain["next_seq"],
                                 color=COLOURS["data"], linewidth=1.4, zorder=3,
                                 label=f"data segment ({conn.sender} → {conn.receiver})"))
    for marked, colour, label, letter in marks:
        if marked.is_empty():
            continue
        ax.vlines(marked["time_rel_s"], marked["seq"], marked["next_seq"],
                  color=COLOURS[colour], linewidth=1.8, zorder=3)
        handles.append(ax.scatter(marked["time_rel_s"], marked["next_seq"], marker=letter,
                                  s=60, color=COLOURS[colour], zorder=4,
                                  label=f"{label}: {len(marked)}"))
    acks = recv.filter(((C("tcp_flags") & ACK) != 0) & ((C("tcp_flags") & RST) == 0))
    if len(acks):
        # under the segments: next to the receiver, each ACK follows its segment at once
        handles.append(_step(ax, acks, "ack", color=COLOURS["ack"], zorder=2,
                             label=f"ACK ({conn.receiver})"))
        handles.append(_step(ax, acks, "window_edge", color=COLOURS["window"],
                             label="receive window edge (ACK + window)"))
    sacks = (recv.select("time_rel_s", C("sack").str.split(" ")).explode("sack")
             .drop_nulls("sack")
             .with_columns(C("sack").str.split_exact("-", 1)
                           .struct.rename_fields(["left", "right"])).unnest("sack")
             .with_columns(C("left").cast(pl.Int64), C("right").cast(pl.Int64)))
    if len(sacks):
        handles.append(ax.vlines(sacks["time_rel_s"], sacks["left"], sacks["right"],
                                 color=COLOURS["sack"], linewidth=2.0,
                                 label=f"SACK block ({conn.receiver})"))
    dups = acks.filter(_has_verdict(FLAG_BITS["duplicate_ack"]))
    if len(dups):
        handles.append(ax.scatter(dups["time_rel_s"], dups["ack"], marker=3, s=16,
                                  linewidths=0.8, color=COLOURS["ack"], zorder=3,
                                  label=f"duplicate ACK: {len(dups)}"))
    zero = acks.filter(_has_verdict(FLAG_BITS["zero_window"]))
    if len(zero):
        handles.append(ax.scatter(zero["time_rel_s"], zero["ack"], marker="x", s=50,
                                  color=COLOURS["zero"], zorder=4,
                                  label=f"zero window: {len(zero)}"))
    _label_syn_fin_rst(ax, sent, recv)
    if not handles:
        _no_data(ax, "segments or ACKs")
    # the receiver's own sequence numbers are not drawn: they must not set the scale
    top = _largest(sent["next_seq"], acks["window_edge"] if len(acks) else None)

    _si_axis(ax.yaxis, "B", top, "relative sequence number")
    return handles


def _label_syn_fin_rst(ax, sent: pl.DataFrame, recv: pl.DataFrame) -> None:
    """Name the SYN, FIN and RST packets: the sender's above its segment, the receiver's
    below its ACK (both sides' SYN and FIN often fall on the same spot)."""
    for rows, y, offset, colour in ((sent, "seq", (-4, 8), COLOURS["data"]),
                                    (recv, "ack", (4, -12), COLOURS["ack"])):
        for r in rows.filter((C("tcp_flags") & (SYN | FIN | RST)) != 0).iter_rows(named=True):
            names = [n for n, bit in (("SYN", SYN), ("FIN", FIN), ("RST", RST))
                     if r["tcp_flags"] & bit]
            at = r[y] if r[y] is not None else 0
            ax.annotate("+".join(names), (r["time_rel_s"], at), xytext=offset,
                        textcoords="offset points", fontsize=7, color=colour,
                        ha="right" if offset[0] < 0 else "left")


def _draw_rtt(ax, conn: Connection, data: pl.DataFrame) -> list:
    if data.is_empty():
        _no_data(ax, "ACK RTT samples")
        return []
    handles = [ax.scatter(data["time_rel_s"], data["ack_rtt_s"], s=8,
                          color=COLOURS["data"], label="ACK RTT (segment → its ACK)")]
    median = cast(float, data["ack_rtt_s"].median())
    handles.append(ax.axhline(median, color="grey", linestyle="--", linewidth=1,
                              label=f"median {_duration(median)}"))
    worst = data.sort("ack_rtt_s", "frame", descending=[True, False]).row(0, named=True)
    ax.annotate(f"largest: {_duration(worst['ack_rtt_s'])}, frame {worst['frame']}",
                (worst["time_rel_s"], worst["ack_rtt_s"]), xytext=(8, -4),
                textcoords="offset points", fontsize=8, va="top")
    low, high = cast(float, data["ack_rtt_s"].min()), cast(float, data["ack_rtt_s"].max())
    if high > 100 * low:
        # ACK delays of microseconds beside RTTs of tens of milliseconds
        ax.set_yscale("log")
        _si_axis(ax.yaxis, "s", high, "round-trip time, log scale")
    else:
        _si_axis(ax.yaxis, "s", high, "round-trip time")
        ax.set_ylim(bottom=0)
    return handles


def _draw_throughput(ax, conn: Connection, data: pl.DataFrame) -> list:
    sent = data.filter(C("throughput_bit_s").is_not_null())
    good = data.filter(C("goodput_bit_s").is_not_null())
    if sent.filter(C("len") > 0).is_empty():
        _no_data(ax, "data")
        return []
    period = data["average_s"][0]
    handles = [_rate_curve(ax, sent, "len", period, color=COLOURS["data"],
                           label=f"throughput: bytes the {conn.sender} sent")]
    if len(good):
        handles.append(_rate_curve(ax, good, "acked_bytes", period, color=COLOURS["goodput"],
                                   label=f"goodput: bytes the {conn.receiver} acknowledged"))
    _si_axis(ax.yaxis, "bit/s", _largest(data["throughput_bit_s"], data["goodput_bit_s"]),
             "rate")
    ax.set_ylim(bottom=0)
    return handles


def _rate_curve(ax, rows: pl.DataFrame, amount: str, period: float, **style):
    """The trailing average drawn between packets too: it steps up when a packet enters the
    window and down `period` later when it leaves (as Wireshark draws it); the series holds
    the value just after each packet."""
    import numpy as np

    times = rows["time_rel_s"].to_numpy()
    bytes_ = rows[amount].fill_null(0).to_numpy().astype(float)
    at = np.concatenate([times + period, times])
    change = np.concatenate([-bytes_, bytes_])
    order = np.lexsort((np.r_[np.zeros(len(times)), np.ones(len(times))], at))
    rate = np.cumsum(change[order]) * 8 / period
    return ax.step(at[order], rate, where="post", linewidth=1.2, **style)[0]


def _draw_inflight(ax, conn: Connection, data: pl.DataFrame) -> list:
    flight = data.filter(C("bytes_in_flight").is_not_null())
    window = data.filter(C("window").is_not_null())
    handles = []
    if len(window):
        handles.append(_step(ax, window, "window", color=COLOURS["window"],
                             label=f"receive window advertised by the {conn.receiver}"))
    if len(flight):
        handles.append(_step(ax, flight, "bytes_in_flight", color=COLOURS["data"],
                             label=f"bytes in flight ({conn.sender}, unacknowledged)"))
    else:
        _no_data(ax, "bytes in flight")
    _si_axis(ax.yaxis, "B", _largest(data["bytes_in_flight"], data["window"]), "bytes")
    ax.set_ylim(bottom=0)
    return handles


_DRAW = {"window": _draw_window, "window-ack": _draw_window_ack, "tseq": _draw_tseq,
         "rtt": _draw_rtt, "throughput": _draw_throughput, "inflight": _draw_inflight}


def _title(conn: Connection, kind: str, data: pl.DataFrame) -> str:
    flow = f"{conn.sender} → {conn.receiver}"
    if kind == "window":
        return f"Receive window advertised by the {conn.receiver} (data {flow})"
    if kind == "window-ack":
        return f"Receive window and ACK number sent by the {conn.receiver} (data {flow})"
    if kind == "tseq":
        return f"Time-sequence graph, data {flow}"
    if kind == "rtt":
        return f"ACK round-trip time, data {flow}"
    if kind == "throughput":
        period = data["average_s"][0] if len(data) else default_average(0)
        return (f"Throughput and goodput, data {flow} "
                f"(moving average over {_duration(period)})")
    return f"Bytes in flight against the receive window, data {flow}"


def _vantage_note(conn: Connection, kind: str) -> str | None:
    """Where the capture point hides part of the picture: next to the receiver, an ACK
    follows its segment at once and little is ever in flight."""
    if conn.captured_near != conn.receiver or kind not in ("rtt", "inflight"):
        return None
    other = "c2s" if conn.direction == "s2c" else "s2c"
    what = (f"these RTTs are its ACK delay; --direction {other} shows the path's round trip"
            if kind == "rtt" else "each segment is ACKed as soon as it is seen, so little "
            f"is in flight here; the {conn.sender}'s own count is larger")
    return f"Captured next to the {conn.receiver}, the receiver: {what}."


def _zoom_note(conn: Connection, kind: str, data: pl.DataFrame) -> str | None:
    """Hundreds of segments are one line in the time-sequence graph."""
    if kind != "tseq":
        return None
    shown = len(_segments(conn, data))
    if shown <= 400:
        return None
    return (f"{shown} segments: zoom in with --start/--end (start_s, end_s in Python) "
            "to see each one and its marks.")


@functools.cache
def _figure_class():
    """matplotlib's Figure, which shows itself in Jupyter as a picture: a notebook's inline
    support only registers Figure when pyplot is imported, and the library never is."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e

    class PlotFigure(Figure):
        def _repr_png_(self) -> bytes:
            out = io.BytesIO()
            self.savefig(out, format="png", dpi=100)
            return out.getvalue()

    return PlotFigure


def figure(conn: Connection, kind: str, data: pl.DataFrame):
    """Draw `data` (series(conn, kind)) on a new matplotlib Figure."""
    _check_kind(kind)
    fig = _figure_class()(figsize=(10, 6), layout="constrained")
    ax = fig.add_subplot()
    handles = _DRAW[kind](ax, conn, data)
    fig.suptitle(_title(conn, kind, data), fontsize=13)
    # notes go under the title: inside the axes they hide what they are about
    notes = [n for n in (_vantage_note(conn, kind), _zoom_note(conn, kind, data)) if n]
    ax.set_title("\n".join([f"{conn.source} · TCP stream {conn.stream} · client "
                            f"{conn.client} ⇄ server {conn.server} · "
                            f"{len(conn.packets)} packets", *notes]),
                 fontsize=9, color="dimgrey")
    _time_axis(ax, conn.packets if data.is_empty() else data)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    if handles:
        # below the axes: inside, a legend hides some curve or mark in one capture or another
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3),
                   fontsize=8, frameon=False)
    return fig


def plot(capture, stream: int, kind: str, direction: str | None = None,
         average_s: float | None = None, start_s: float | None = None,
         end_s: float | None = None):
    """A matplotlib Figure of `kind` for one stream (see the module's docstring)."""
    _check_kind(kind)
    conn = connection(capture, stream, direction)
    return figure(conn, kind, series(conn, kind, average_s, start_s, end_s))
