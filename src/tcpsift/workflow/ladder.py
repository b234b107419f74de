"""The ladder of one TCP connection: its packets in order, one row each, as the classic
hand-written scapy script prints them (`tcpsift ladder`), and as a Polars frame.

    table = ladder(capture, stream=3)                       # or conn="A:P B:P", frame=N
    lad = build(capture, conn="192.0.2.11:46057 198.51.100.21:80")
    lad.connection.client, lad.connection.first_frame, lad.table
    lad, warnings, complete = read_ladder("big.pcap", stream=3)   # without the tables

Columns (`COLUMNS`, what `--format csv|json` writes, in this order):

  frame       frame.number
  direction   c2s (sent by the client) or s2c
  time_rel_s  seconds since the connection's first packet (tcp.time_relative)
  flags       TCP flags as letters in the order F S R P A U E C N (S, SA, PA, FA, R, RA ...)
  seq, ack    relative sequence and acknowledgment numbers (tcp.seq, tcp.ack)
  len         payload length (tcp.len)
  window      the window with the connection's scale applied (tcp.window_size)
  verdicts    the names of the tcp.analysis.* verdicts tshark gives the frame, joined by
              ';' in `VERDICTS` order (tshark also names `retransmission` on fast and
              spurious retransmissions)

and two more: `dup_ack_num` (tcp.analysis.duplicate_ack_num: this is the n-th duplicate
of the ACK), which the text view shows as `[Dup ACK #n]`, and `time_rel_ns`, the exact
time_rel_s (a float has no room for nanoseconds beside the seconds of a time counted
from 1970, which a connection whose first packet has no timestamp gives); the CSV prints
its time from it.

The values are those `tcpsift fields` prints for the same tshark fields (the expressions of
tcpsift.fields), so they equal tshark's. A frame belongs to the connection when its
tcp.stream is the connection's, as `tshark -Y "tcp.stream == N"` selects it: an ICMP error
quoting one of the connection's TCP headers is one of its rows (with the quoted header's
numbers).

Client and server are those of the connection table (tcpsift.tcp.connections): the client
is the sender of the first SYN (without ACK); without one, the receiver of the first
SYN-ACK; without a handshake, the side on the higher port (equal ports: the first sender).
`c2s` rows are those the client sent.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import polars as pl

from tcpsift import conditions
from tcpsift import fields as F
from tcpsift.addresses import endpoint
from tcpsift.schema import PACKET_COLUMN_NAMES
from tcpsift.tcp import INPUT_COLUMNS

if TYPE_CHECKING:
    import numpy as np

C = pl.col

COLUMNS = ("frame", "direction", "time_rel_s", "flags", "seq", "ack", "len", "window",
           "verdicts")

# The tcp.analysis.* verdicts (the fields tshark prints as a bare "1"), in the order the
# `verdicts` column lists them, with the label of the text view.
VERDICTS = {
    "retransmission": "Retransmission",
    "fast_retransmission": "Fast retransmission",
    "spurious_retransmission": "Spurious retransmission",
    "out_of_order": "Out-of-order",
    "lost_segment": "Previous segment not captured",
    "ack_lost_segment": "ACKed unseen segment",
    "zero_window": "Zero window",
    "zero_window_probe": "Zero window probe",
    "zero_window_probe_ack": "Zero window probe ACK",
    "window_full": "Window full",
    "window_update": "Window update",
    "keep_alive": "Keep-alive",
    "keep_alive_ack": "Keep-alive ACK",
    "reused_ports": "Port numbers reused",
    "duplicate_ack": "Dup ACK",
}

# tshark fields behind the columns
_SOURCES = {"time_rel_s": "tcp.time_relative", "seq": "tcp.seq", "ack": "tcp.ack",
            "len": "tcp.len", "window": "tcp.window_size",
            "dup_ack_num": "tcp.analysis.duplicate_ack_num"}
_FLAG_LETTERS = "FSRPAUECN"   # bit 0 first, as the packet table's `flags` spells them

_FIELD_NAMES = ["frame.number", *_SOURCES.values(), "tcp.flags",
                *(f"tcp.analysis.{v}" for v in VERDICTS)]
_FIELD_ROOTS = {root for name in _FIELD_NAMES for e in F.FIELDS[name].packet
                for root in e.meta.root_names()}
# The packet-table columns the ladder reads beside the TCP analysis: the fields' expressions
# (tcp.* read the analysis' columns, not these), the flag letters, the times of the header
# lines, and what names client and server (_roles: the endpoints and flags).
_ROW_COLUMNS = frozenset(
    {root for root in _FIELD_ROOTS if not root.startswith("_t_")}
    | set(F.IS_TCP.meta.root_names())
    | {"frame", "file_id", "flags", "ts_ns", "src", "dst", "sport", "dport", "tcp_flags"})
# The TCP-table columns it reads: the keys, stream and direction, and those of the
# fields' expressions (`_t_<name>`; the `_t_q_*` of quoted headers come from the layer
# table).
_TCP_COLUMNS = ("frame", "file_id", "stream", "direction",
                *sorted({root[3:] for root in _FIELD_ROOTS if root.startswith("_t_")
                         and not root.startswith("_t_q_")} - {"stream", "direction"}))
# ... and with the analysis' inputs: what build() needs of a Capture (for
# tcpsift.read(columns=...)). read_ladder analyses from the decoder's arrays and builds
# only _ROW_COLUMNS (on bulk.pcap half the time of these).
PACKET_COLUMNS = frozenset(_ROW_COLUMNS | set(INPUT_COLUMNS))


class LadderError(ValueError):
    """No such connection (unknown stream, endpoints or frame); the message is one line that
    says what is valid."""


@dataclass(frozen=True)
class Connection:
    """The connection a ladder shows, as its header lines describe it."""
    stream: int
    client: str
    client_port: int | None     # (None: the connection's rows have no ports)
    server: str
    server_port: int | None
    packets: int            # frames of the connection
    capture_packets: int    # frames of the capture
    first_frame: int
    last_frame: int
    first_ts_ns: int        # absolute times, ns since the epoch
    last_ts_ns: int


@dataclass(frozen=True)
class Ladder:
    connection: Connection
    table: pl.DataFrame     # COLUMNS + dup_ack_num, time_rel_ns; one row per frame


def build(capture, *, stream: int | None = None, conn: str | None = None,
          frame: int | None = None) -> Ladder:
    """The ladder of the connection chosen by exactly one of `stream` (tcp.stream),
    `conn` ("A:P B:P", either order; IPv6 as [addr]:port) or `frame` (the connection a frame
    belongs to). Raises LadderError when there is no such connection."""
    check_choice(stream=stream, conn=conn, frame=frame)
    rows = None
    if stream is not None and 0 <= stream < 1 << 32:
        # the stream's rows first (from the cache: the row groups that can hold them);
        # the capture's streams are counted only when it has none, to say which are valid
        chosen, rows = stream, _rows(capture, stream)
    if rows is None or rows.tcp.is_empty():
        chosen = find_stream(capture, stream=stream, conn=conn, frame=frame)
        rows = _rows(capture, chosen)
    frames = capture.scan("packets").select(pl.len()).collect().item()
    return _ladder(rows, chosen, frames)


def _ladder(rows, chosen: int, capture_packets: int) -> Ladder:
    client, client_port, server, server_port = _roles(rows)
    table = _table(rows, _client_direction(rows, client, client_port, server, server_port))
    pk = rows.packets
    return Ladder(Connection(chosen, client, client_port, server, server_port,
                             pk.height, capture_packets, pk["frame"].min(),
                             pk["frame"].max(), pk["ts_ns"].min(), pk["ts_ns"].max()), table)


def read_ladder(paths, stream: int, mode: str = "merge") -> tuple[Ladder, list[str], bool]:
    """build(tcpsift.read(paths, mode=mode), stream=stream) without the capture's tables:
    (the ladder, the capture's warnings, whether it was read completely). The frames are
    decoded and analysed chunk by chunk (tcpsift.capture.chunks and the TCP kernel's
    Analyzer, as the streamed `tcpsift fields` does); only the chunks that hold frames of
    the stream become tables, of which those rows are kept. Raises CaptureError as read()
    does, LadderError when the capture has no such stream."""
    import numpy as np

    from tcpsift.capture.chunks import CaptureChunks
    from tcpsift.capture.table import layer_table, packet_table
    from tcpsift.tcp import _analysis as K
    from tcpsift.tcp import output_table
    from tcpsift.tcp.chunks import chunk_inputs, empty_outputs

    chunks = CaptureChunks(paths, mode)
    analyzer = K.Analyzer()
    packets, tcp, layers, frames = [], [], [], 0
    for chunk in chunks:
        n = len(chunk)
        frames += n
        out = empty_outputs(n)
        analyzer.feed(n, chunk_inputs(chunk.rec, chunk.pkt, chunk.sack_edges, chunk.layer_rows,
                                      chunk.first_row, len(chunks.addrs)), out)
        hit = np.flatnonzero((out["stream"] == stream) & ((out["_valid"] & K.V_BITS["row"]) != 0))
        if not len(hit):
            continue
        # the table of the stream's rows only: every record and decoder array is per row
        frame = chunk.frame
        table = packet_table({k: v[hit] for k, v in chunk.rec.items()},
                             {k: v[hit] for k, v in chunk.pkt.items()}, np.zeros(0, np.uint32),
                             frame[hit], _rows_of(chunk.file_id, hit),
                             _rows_of(chunk.file_frame, hit), chunk.address_texts, _ROW_COLUMNS)
        packets.append(table)
        tcp.append(output_table({k: v[hit] for k, v in out.items()}, table))
        if len(chunk.layer_rows):
            # (an ICMP error's row reads the TCP header it quotes from its layer rows)
            rows = chunk.layer_rows.copy()
            rows["row"] -= chunk.first_row
            layers.append(layer_table(rows, frame, chunk.address_texts, chunk.file_id)
                          .filter(C("frame").is_in(table["frame"].implode())))
    if not packets:
        top = analyzer.streams - 1
        valid = f"its TCP streams are 0-{top}" if top >= 0 else "it has no TCP stream"
        raise LadderError(f"no TCP stream {stream} in the capture: {valid}")
    rows = SimpleNamespace(packets=pl.concat(packets), tcp=pl.concat(tcp),
                           layers=pl.concat(layers) if layers else None, info=None)
    return _ladder(rows, stream, frames), chunks.warnings, chunks.complete


def _rows_of(per_row, rows: np.ndarray):
    """An optional per-row array (else a value for all rows, or None) at `rows`."""
    import numpy as np

    return per_row[rows] if isinstance(per_row, np.ndarray) else per_row


def ladder(capture, *, stream: int | None = None, conn: str | None = None,
           frame: int | None = None) -> pl.DataFrame:
    """The ladder's rows (`COLUMNS` + dup_ack_num, time_rel_ns) of the connection chosen as in build()."""
    return build(capture, stream=stream, conn=conn, frame=frame).table


# --- choosing the connection -------------------------------------------------------------

def find_stream(capture, *, stream: int | None = None, conn: str | None = None,
                frame: int | None = None) -> int:
    """The tcp.stream chosen by exactly one of stream / conn / frame (see build())."""
    check_choice(stream=stream, conn=conn, frame=frame)
    # (from the cache: the stream column alone is read)
    top = capture.scan("tcp").select(C("stream").max()).collect().item()
    valid = f"its TCP streams are 0-{top}" if top is not None else "it has no TCP stream"
    if stream is not None:
        if not 0 <= stream <= (top if top is not None else -1):
            raise LadderError(f"no TCP stream {stream} in the capture: {valid}")
        return stream
    streams = capture.tcp["stream"]
    if frame is not None:
        n = capture.packets.height
        if not 1 <= frame <= n:
            raise LadderError(f"no frame {frame}: the capture has frames 1-{n}")
        s = streams[_row_of_frame(capture, frame)]
        if s is None:
            raise LadderError(f"frame {frame} is not a TCP packet ({valid})")
        return s
    assert conn is not None         # check_choice: the one given
    return _stream_between(capture, *parse_conn(conn), valid)


def check_choice(*, stream: int | None = None, conn: str | None = None,
                 frame: int | None = None) -> None:
    """LadderError unless exactly one of stream / conn / frame is given."""
    if sum(v is not None for v in (stream, conn, frame)) != 1:
        raise LadderError("choose the connection with one of --stream N, --conn \"A:P B:P\" "
                          "or --frame N")


def _row_of_frame(capture, frame: int) -> int:
    # frame numbers are 1..n in row order (a merged capture is numbered after merging)
    return frame - 1


_ENDPOINT = re.compile(r"\[(?P<v6>[^\]]+)\]:(?P<p6>\d+)|(?P<addr>[^\s\[\]]+):(?P<port>\d+)")


def parse_conn(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """"A:P B:P" (IPv6 as [addr]:port, or bare: the last colon starts the port) -> the two
    endpoints, addresses in their canonical text."""
    parts = text.replace(",", " ").split()
    endpoints: list[tuple[str, int]] = []
    for part in parts:
        m = _ENDPOINT.fullmatch(part)
        try:
            if m is None:
                raise ValueError
            addr = ipaddress.ip_address(m["v6"] or m["addr"])
            port = int(m["p6"] or m["port"])
            if port > 65535:
                raise ValueError
        except ValueError:
            endpoints = []
            break
        endpoints.append((str(addr), port))
    if len(endpoints) != 2:
        raise LadderError(f"--conn {text!r}: expected two endpoints \"ADDRESS:PORT ADDRESS:PORT\" "
                          "(IPv6 as [ADDRESS]:PORT)")
    return endpoints[0], endpoints[1]


def _stream_between(capture, a: tuple[str, int], b: tuple[str, int], valid: str) -> int:
    pk = capture.packets
    src, dst = C("src").cast(pl.String), C("dst").cast(pl.String)

    def sent(x, y):
        return (src == x[0]) & (C("sport") == x[1]) & (dst == y[0]) & (C("dport") == y[1])

    hit = pk.select((sent(a, b) | sent(b, a)).fill_null(False)).to_series()
    found = capture.tcp["stream"].filter(hit).drop_nulls().unique().sort().to_list()
    ends = f"{endpoint(*a)} {endpoint(*b)}"
    if not found:
        raise LadderError(f"no TCP connection between {ends} in the capture ({valid}; "
                          "`tcpsift conns` lists them)")
    if len(found) > 1:
        shown = ", ".join(map(str, found[:10])) + (" ..." if len(found) > 10 else "")
        raise LadderError(f"{ends} is {len(found)} connections (the ports were reused): "
                          f"streams {shown}; choose one with --stream")
    return found[0]



# --- the rows -----------------------------------------------------------------------------

_PACKET_ORDER = [c for c in PACKET_COLUMN_NAMES if c in _ROW_COLUMNS]


def _rows(capture, stream: int) -> SimpleNamespace:
    """The capture restricted to the stream's frames: the columns the field expressions
    and the roles read (packets, tcp, layers), row for row."""
    # (from the cache: only these columns, and only the row groups that can hold the
    # stream's frames, are read)
    tcp = capture.scan("tcp").filter(C("stream") == stream).select(_TCP_COLUMNS).collect()
    frames = tcp["frame"]
    packets = capture.scan("packets").select(_PACKET_ORDER)
    layers = capture.scan("layers")
    if len(frames):
        ours = C("frame").is_between(frames.min(), frames.max()) & C("frame").is_in(
            frames.implode())
        packets, layers = packets.filter(ours), layers.filter(ours)
    else:
        packets, layers = packets.head(0), layers.head(0)
    return SimpleNamespace(packets=packets.collect(), tcp=tcp, layers=layers.collect(),
                           info=getattr(capture, "info", None))


SYN, ACK = 0x02, 0x10


def _roles(rows) -> tuple[str, int | None, str, int | None]:
    """(client, client port, server, server port) of the stream of `rows` as the
    connection table names them (tcpsift.tcp.connections), by the rule of its kernel's
    ConnAggregates.take() on the rows it reads: the client's direction is the first SYN's,
    else the other than the first SYN-ACK's, else 1 when direction 0's first row goes
    from a lower port to a higher one; then each direction's first row gives the
    endpoints. A missing address is "None", as str() of the table's null. (No connection
    table is built: no NumPy, no kernel; tests hold these equal to the table's.)"""
    pk = rows.packets
    t = pl.DataFrame({"d": rows.tcp["direction"].fill_null(0) & 1,
                      "fl": pk["tcp_flags"].fill_null(0) & (SYN | ACK),
                      # (Categorical: a row gives its text)
                      "src": pk["src"], "dst": pk["dst"], "sport": pk["sport"],
                      "dport": pk["dport"]})

    def first(condition: pl.Expr) -> dict | None:
        hit = t.filter(condition).head(1)
        return hit.row(0, named=True) if hit.height else None

    side = [first(C("d") == 0), first(C("d") == 1)]
    syn, synack = first(C("fl") == SYN), first(C("fl") == SYN | ACK)
    if syn is not None:
        cd = syn["d"]
    elif synack is not None:
        cd = 1 - synack["d"]
    else:
        s0 = side[0]
        cd = int(s0 is not None and s0["sport"] is not None
                 and s0["sport"] < (s0["dport"] or 0))
    c, s = side[cd] or {}, side[1 - cd] or {}
    # (a side that never sent still has its endpoints: from the other side's rows)
    client = server = client_port = server_port = None
    if c.get("src") is not None:
        client, server = c["src"], c["dst"]
    elif s.get("src") is not None:
        client, server = s["dst"], s["src"]
    if c.get("sport") is not None:
        client_port, server_port = c["sport"], c["dport"]
    elif s.get("sport") is not None:
        client_port, server_port = s["dport"], s["sport"]
    return str(client), client_port, str(server), server_port


def _client_direction(rows, client: str, client_port: int | None, server: str,
                      server_port: int | None) -> int:
    """The value of the TCP table's `direction` on the client's packets."""
    pk, direction = rows.packets, rows.tcp["direction"]
    own = pk.select(F.IS_TCP.fill_null(False)).to_series()
    src = pk["src"].cast(pl.String)
    for (addr, port), flip in (((client, client_port), 0), ((server, server_port), 1)):
        if addr is None or port is None:
            continue
        sent = own & (src == addr).fill_null(False) & (pk["sport"] == port).fill_null(False)
        first = direction.filter(sent).first() if sent.any() else None
        if first is not None:
            return int(first) ^ flip
    return 0


def _flag_letters(bits: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.when((bits & (1 << i)) != 0).then(pl.lit(letter))
                          for i, letter in enumerate(_FLAG_LETTERS)], ignore_nulls=True)


def _table(rows, client_direction: int) -> pl.DataFrame:
    wide = F.with_tcp(rows)

    def value(name: str) -> pl.Expr:
        return F.FIELDS[name].packet[0]

    # a frame's own TCP header spells its flags in the packet table; an ICMP error's row
    # takes the flags of the header it quotes
    own_flags = pl.when(F.IS_TCP).then(C("flags").cast(pl.String))
    flags: pl.Expr = own_flags
    if not wide.select(F.IS_TCP.fill_null(False).all()).item():
        from tcpsift.tcp import _quoted_tcp

        quoted = _quoted_tcp(rows.layers).select("frame", _q_flags="tcp_flags")
        wide = wide.join(quoted, on="frame", how="left", maintain_order="left")
        flags = own_flags.otherwise(_flag_letters(C("_q_flags")))
    # the verdicts as bits, then each combination's names once (concatenating texts row by
    # row cost 20 ms on a 148k-packet stream; a stream has few combinations)
    bits = pl.sum_horizontal([pl.when(value(f"tcp.analysis.{v}").is_not_null())
                              .then(pl.lit(1 << k, pl.UInt32)).otherwise(pl.lit(0, pl.UInt32))
                              for k, v in enumerate(VERDICTS)])
    wide = wide.with_columns(_verdict_bits=bits)
    names = {b: ";".join(v for k, v in enumerate(VERDICTS) if b >> k & 1)
             for b in wide["_verdict_bits"].unique().to_list()}
    verdicts = C("_verdict_bits").replace_strict(names, return_dtype=pl.String)
    return wide.select(
        C("frame"),
        pl.when(C("_t_direction") == client_direction).then(pl.lit("c2s"))
        .otherwise(pl.lit("s2c")).alias("direction"),
        (value("tcp.time_relative") / 1e9).alias("time_rel_s"),
        flags.alias("flags"),
        *(value(_SOURCES[c]).alias(c) for c in ("seq", "ack", "len", "window")),
        verdicts.alias("verdicts"),
        value(_SOURCES["dup_ack_num"]).alias("dup_ack_num"),
        value("tcp.time_relative").alias("time_rel_ns"),
    )


# --- --where ---------------------------------------------------------------------------------

def where(table: pl.DataFrame, condition: str) -> pl.DataFrame:
    """The rows where an SQL condition on the ladder's columns holds (tcpsift.conditions),
    e.g. "direction = 'c2s' and time_rel_s > 21.1 and window < 500000"; aggregates are
    over the whole ladder (`window = min(window)`). Raises LadderError, naming the valid
    columns, for anything else."""
    try:
        return conditions.where(table, condition)
    except conditions.ConditionError as e:
        raise LadderError(f"--where: {e}") from None


# --- output ---------------------------------------------------------------------------------

def write_csv(table: pl.DataFrame, fh) -> None:
    """`COLUMNS` as CSV; times exactly as tshark prints tcp.time_relative (9 decimals)."""
    exact = F.FIELDS["tcp.time_relative"].fmt(C("time_rel_ns")).alias("time_rel_s")
    # no quoting: no column holds a comma, quote or line break, and tshark quotes nothing
    table.with_columns(exact).select(COLUMNS).write_csv(fh, quote_style="never")


def write_json(table: pl.DataFrame, fh) -> None:
    """`COLUMNS` as a JSON array of row objects."""
    fh.write(table.select(COLUMNS).write_json() + "\n")


def text_lines(table: pl.DataFrame) -> pl.DataFrame:
    """The text view of the rows: (direction, main, verdicts) per row, main as the classic
    script prints it (`[ 2588]  0.307359s flag=PA seq=1 ack=1 len=174 win=64128`, times to
    the microsecond), verdicts as ` [Retransmission] [Dup ACK #2]` ("" when none; the
    plain retransmission verdict is left out beside a fast or spurious one)."""
    if table.is_empty():
        return pl.DataFrame(schema={"direction": pl.String, "main": pl.String,
                                    "verdicts": pl.String})
    frame_width = len(str(table["frame"].max()))
    us = (C("time_rel_s") * 1e6).round().cast(pl.Int64)
    whole = (us // 1_000_000).cast(pl.String)
    # a space before the widest time, as the classic script's {:9.6f} gives
    time_width = len(str(int(cast("float | None", table["time_rel_s"].max()) or 0))) + 8
    micros = (us % 1_000_000).cast(pl.String).str.pad_start(6, "0")
    time = pl.concat_str([whole, pl.lit("."), micros]).str.pad_start(time_width)

    def number(name: str) -> pl.Expr:
        return C(name).cast(pl.String).fill_null("-")

    main = pl.concat_str([
        pl.lit("["), C("frame").cast(pl.String).str.pad_start(frame_width), pl.lit("] "),
        time.fill_null(" " * time_width), pl.lit("s flag="), C("flags").fill_null("-"),
        pl.lit(" seq="), number("seq"), pl.lit(" ack="), number("ack"),
        pl.lit(" len="), number("len"), pl.lit(" win="), number("window")])
    names = C("verdicts").str.split(";")
    specific = names.list.contains("fast_retransmission") | names.list.contains(
        "spurious_retransmission")
    labels = []
    for name, label in VERDICTS.items():
        shown = names.list.contains(name)
        if name == "retransmission":
            shown = shown & ~specific
        text = pl.lit(f" [{label}]")
        if name == "duplicate_ack":
            text = pl.concat_str([pl.lit(f" [{label} #"), C("dup_ack_num").cast(pl.String),
                                  pl.lit("]")], ignore_nulls=True)
        labels.append(pl.when(shown).then(text))
    return table.select("direction", main.alias("main"),
                        pl.concat_str(labels, ignore_nulls=True).alias("verdicts"))


def header_lines(conn: Connection, shown: int | None = None, utc: bool = False) -> list[str]:
    """The lines above the ladder: the endpoints, the packet counts, the first and last
    frames with their absolute times (local time, or UTC), and how many rows a --where
    kept (`shown`)."""
    lines = [
        f"TCP stream {conn.stream}: {endpoint(conn.client, conn.client_port)} (client, -->) "
        f"<-> {endpoint(conn.server, conn.server_port)} (server, <--)",
        f"packets: {conn.packets} in the connection, {conn.capture_packets} in the capture",
        f"first: frame {conn.first_frame} at {absolute_time(conn.first_ts_ns, utc)}",
        f"last:  frame {conn.last_frame} at {absolute_time(conn.last_ts_ns, utc)}",
    ]
    if shown is not None:
        lines.append(f"rows where the condition holds: {shown}")
    return lines


def absolute_time(ns: int, utc: bool = False) -> str:
    """ns since the epoch as `2018-09-26 21:21:02.883718124 CEST` (local time, or UTC)."""
    from datetime import datetime, timezone

    seconds, fraction = divmod(ns, 1_000_000_000)
    t = datetime.fromtimestamp(seconds, timezone.utc)
    if not utc:
        t = t.astimezone()
    return f"{t:%Y-%m-%d %H:%M:%S}.{fraction:09d} {t.tzname()}"
