"""One capture point's TCP packets, ready to be matched with the other point's.

A packet is recognised at both points by what does not change in transit: addresses and
ports, seq, ack, flags, payload length, window, SACK blocks, TCP timestamps and the IPv4
id (never TTL, checksums or link headers). These fields are hashed into one 64-bit `key`
per packet; two different packets of one million share a key with odds of about 1e-7.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tcpsift.compare._points import connections, packet_keys
from tcpsift.compare.nat import to_a_view

C = pl.col
SYN, ACK = 0x02, 0x10

KEY_COLUMNS = ("src", "dst", "sport", "dport", "seq", "ack", "tcp_flags", "tcp_len", "window",
               "sack_blocks", "tsval", "tsecr", "ip_id")
# the packet-table columns a comparison reads (tcpsift.read(columns=...))
READ_COLUMNS = frozenset({*KEY_COLUMNS, "ts_ns"})


@dataclass
class Point:
    """`packets`: one row per TCP packet (frame, ts_ns, key, stream, direction, src, dst,
    sport, dport, tcp_flags, tcp_len, seq, window);
    `streams`: one row per connection as this point sees it (stream, client, client_port,
    server, server_port, first_ts_ns, packets, client_dir, role_from: 0 its SYN, 1 its
    SYN-ACK, 2 only its ports); `start_ns`/`end_ns`: the capture's first and last time;
    `span_doubles`: copies the capture itself made (SPAN doubles), left out of `packets`;
    `key_order`: the order of `packets` by key, `sorted_keys` their keys in that order;
    `rank`: each packet's place in the order by stream, then capture order (reused where
    packets are taken per connection in capture order)."""
    name: str
    label: str
    packets: pl.DataFrame
    streams: pl.DataFrame
    start_ns: int | None
    end_ns: int | None
    key_order: np.ndarray
    sorted_keys: np.ndarray
    rank: np.ndarray
    span_doubles: int = 0


def point(name: str, label: str, capture, nat=()) -> Point:
    """`nat`: translations (tcpsift.compare.nat) that give this point's packets the other
    point's view of their addresses and ports."""
    pk = capture.packets
    rows = pk.select("frame", *READ_COLUMNS - {"frame"})
    if any(rows[c].null_count() for c in ("seq", "ts_ns", "tcp_flags")):
        # (only then: a filter copies every column, even when it keeps every row)
        rows = rows.filter(C("seq").is_not_null() & C("ts_ns").is_not_null()
                           & C("tcp_flags").is_not_null())
    rows = rows.rechunk()
    rows = to_a_view(rows, list(nat))
    rows = rows.select("frame", "ts_ns", "src", "dst", "sport", "dport", "tcp_flags", "tcp_len",
                       "seq", "ack", "tsval", "window", key=pl.Series(_keys(rows)))
    start_ns, end_ns = pk.select(C("ts_ns").min().alias("start"),
                                 C("ts_ns").max().alias("end")).row(0)
    keys = rows["key"].to_numpy()
    key_order = np.argsort(keys)
    sorted_keys = keys[key_order]
    doubles = _capture_doubles(rows, key_order, sorted_keys)
    doubled = int(doubles.sum())
    if doubled < SPAN_SHARE * len(rows):
        doubled = 0
    else:
        rows = rows.filter(pl.Series(~doubles))
        keys = rows["key"].to_numpy()
        key_order = np.argsort(keys)
        sorted_keys = keys[key_order]
    rows, found = _with_streams(rows)
    return Point(name, label, rows, _streams(rows, found), start_ns, end_ns, key_order,
                 sorted_keys, span_doubles=doubled, rank=found["rank"])


# a copy this close after an identical packet at the same point may be the capture's own
# doubling (a SPAN port mirroring a packet as it enters and as it leaves) ...
SPAN_GAP_NS = 50_000
# ... and is taken for one when this share of the point's packets are such copies (a
# stack sends identical packets microseconds apart too, IPv6 duplicate ACKs for one,
# but not one in ten)
SPAN_SHARE = 0.10


def _capture_doubles(rows: pl.DataFrame, key_order: np.ndarray,
                     sorted_keys: np.ndarray) -> np.ndarray:
    """True for the second of each two copies of a packet at this point: in a chain of
    identical packets each within SPAN_GAP_NS of the one before, every other one (two
    identical packets a stack sent back to back are four copies when mirrored twice).
    `key_order`: the rows' order by key; `sorted_keys`: the keys in that order."""
    keys, ts = rows["key"].to_numpy(), rows["ts_ns"].to_numpy()
    if not len(keys):
        return np.zeros(0, bool)
    same = sorted_keys[1:] == sorted_keys[:-1]
    # only the keys that repeat need their copies in capture order (few of them)
    repeated = key_order[np.r_[same, False] | np.r_[False, same]]
    order = repeated[np.lexsort((repeated, keys[repeated]))]
    k, t = keys[order], ts[order]
    repeat = np.zeros(len(k), bool)
    repeat[1:] = (k[1:] == k[:-1]) & (np.abs(t[1:] - t[:-1]) <= SPAN_GAP_NS)
    index = np.arange(len(k))
    chain_start = np.maximum.accumulate(np.where(repeat, 0, index))
    doubles = np.zeros(len(keys), bool)
    doubles[order] = (index - chain_start) % 2 == 1
    return doubles


def _keys(rows: pl.DataFrame) -> np.ndarray:
    """The 64-bit key of each packet: its KEY_COLUMNS mixed column by column in one
    compiled pass (tcpsift.compare._points.packet_keys). The addresses enter as their
    Categorical codes, which are the same in every read of the process."""
    def values(column: str) -> np.ndarray:
        series = rows[column].to_physical()
        series = series if series.null_count() == 0 else series.fill_null(0)
        # (no copy: each at its own width, which packet_keys checks)
        return np.ascontiguousarray(series.to_numpy())

    fields = [values(c) for c in KEY_COLUMNS if c != "sack_blocks"]
    fields.append(np.ascontiguousarray(rows["ip_id"].is_null().to_numpy()))
    # the SACK blocks: a hash of those there are (few), 0 for none (the same at both points,
    # whatever the other packets hold)
    sack = np.zeros(len(rows), np.uint64)
    blocks = rows["sack_blocks"]
    if blocks.null_count() < len(rows):
        has = blocks.is_not_null()
        sack[has.to_numpy()] = blocks.filter(has).hash().to_numpy()
    return packet_keys(fields, sack)


def _with_streams(rows: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """(`rows` with `stream` (0, 1, ... per point, in the order of their first packets) and
    `direction` (0: from the endpoint lower in address code and port order, 1: the other
    way) of each TCP packet; the kernel's other arrays: each row's `rank` in the order by
    stream, then capture order, and per stream its first SYN, SYN-ACK and row of each
    direction, first time and packet count). A connection is its addresses and ports, and
    a new one starts there with a SYN of a new sequence number (a reused port), as
    tcp.stream starts one; the TCP analysis itself (which costs three quarters of a read)
    is not needed for this."""
    def column(name: str, dtype) -> np.ndarray:
        return np.ascontiguousarray(rows[name].to_physical().to_numpy(), dtype=dtype)

    found = connections(column("src", np.uint32), column("dst", np.uint32),
                        column("sport", np.uint16), column("dport", np.uint16),
                        column("tcp_flags", np.uint16), column("seq", np.uint32),
                        column("ts_ns", np.int64))
    return rows.with_columns(stream=pl.Series(found["stream"]),
                             direction=pl.Series(found["direction"])), found


def _streams(rows: pl.DataFrame, found: dict) -> pl.DataFrame:
    """Who is the client of each connection, by the connection table's rule (docs/schema.md:
    the sender of the first SYN; else the receiver of the first SYN-ACK; else the side on
    the higher port), without building the whole connection table. `found`: the kernel's
    per-stream arrays (_with_streams)."""
    none = len(rows)
    if not none:
        return pl.DataFrame(schema={"stream": pl.UInt32, "client": pl.String,
                                    "client_port": pl.UInt16, "server": pl.String,
                                    "server_port": pl.UInt16, "first_ts_ns": pl.Int64,
                                    "packets": pl.UInt32, "client_dir": pl.UInt8,
                                    "role_from": pl.UInt8})
    direction = found["direction"]
    syn_row, synack_row = found["syn_row"], found["synack_row"]
    # the side of direction 0: its own first packet, else the other side's, reversed
    row0, row1 = found["row0"], found["row1"]
    has0 = row0 < none
    take = np.where(has0, row0, row1)
    sport, dport = rows["sport"].to_numpy()[take], rows["dport"].to_numpy()[take]
    # (gathered, then made text: a million addresses as text cost more than the gather)
    src = rows["src"].gather(take).cast(pl.String).to_numpy()
    dst = rows["dst"].gather(take).cast(pl.String).to_numpy()
    addr0, addr1 = np.where(has0, src, dst), np.where(has0, dst, src)
    port0, port1 = np.where(has0, sport, dport), np.where(has0, dport, sport)
    with_syn, with_synack = syn_row < none, synack_row < none
    client_dir = np.where(with_syn, direction[np.minimum(syn_row, none - 1)],
                          np.where(with_synack, 1 - direction[np.minimum(synack_row, none - 1)],
                                   (port0 < port1).astype(np.uint8)))
    zero = client_dir == 0
    return pl.DataFrame({
        "stream": np.arange(len(take), dtype=np.uint32),
        "client": np.where(zero, addr0, addr1), "client_port": np.where(zero, port0, port1),
        "server": np.where(zero, addr1, addr0), "server_port": np.where(zero, port1, port0),
        "first_ts_ns": found["first_ts"], "packets": found["packets"].astype(np.uint32),
        "client_dir": client_dir.astype(np.uint8),
        "role_from": np.where(with_syn, 0, np.where(with_synack, 1, 2)).astype(np.uint8)}
    ).with_columns(C("client").cast(pl.String), C("server").cast(pl.String),
                   C("client_port").cast(pl.UInt16), C("server_port").cast(pl.UInt16))
