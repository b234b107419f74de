"""One capture point's TCP packets, ready to be matched with the other point's.

A packet is recognised at both points by what does not change in transit: addresses and
ports, seq, ack, flags, payload length, window, SACK blocks, TCP timestamps and the IPv4
id (never TTL, checksums or link headers). These fields are hashed into one 64-bit `key`
per packet; two different packets of one million share a key with odds of about 1e-7.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tcpsift.tcp import INPUT_COLUMNS, shown_analysis

C = pl.col
SYN, ACK = 0x02, 0x10

KEY_COLUMNS = ("src", "dst", "sport", "dport", "seq", "ack", "tcp_flags", "tcp_len", "window",
               "sack_blocks", "tsval", "tsecr", "ip_id")
# the packet-table columns a comparison reads (tcpsift.read(columns=...))
READ_COLUMNS = frozenset({*INPUT_COLUMNS, *KEY_COLUMNS, "ts_ns"})


@dataclass
class Point:
    """`packets`: one row per TCP packet (frame, ts_ns, key, stream, direction, tcp_len,
    tcp_flags, window_scaled, shown: the analysis bits tshark shows, src, sport);
    `streams`: one row per connection as this point sees it (stream, client, client_port,
    server, server_port, first_ts_ns, packets, client_dir, role_from: 0 its SYN, 1 its
    SYN-ACK, 2 only its ports); `start_ns`/`end_ns`: the capture's first and last time."""
    name: str
    label: str
    capture: object
    packets: pl.DataFrame
    streams: pl.DataFrame
    start_ns: int | None
    end_ns: int | None


def point(name: str, label: str, capture) -> Point:
    pk, tcp = capture.packets, capture.tcp
    rows = pl.concat([pk.select("frame", "ts_ns", "src", "dst", "sport", "dport", "tcp_flags",
                                "tcp_len", pl.struct(*KEY_COLUMNS).hash().alias("key")),
                      tcp.select("stream", "direction", "window_scaled",
                                 shown_analysis().alias("shown"))],
                     how="horizontal").filter(C("stream").is_not_null() & C("ts_ns").is_not_null())
    span = pk.select(C("ts_ns").min().alias("start"), C("ts_ns").max().alias("end")).row(0)
    return Point(name, label, capture, rows, _streams(rows), *span)


def _streams(rows: pl.DataFrame) -> pl.DataFrame:
    """Who is the client of each connection, by the connection table's rule (docs/schema.md:
    the sender of the first SYN; else the receiver of the first SYN-ACK; else the side on
    the higher port), without building the whole connection table."""
    flags = C("tcp_flags").fill_null(0)
    syn, synack = (flags & (SYN | ACK)) == SYN, (flags & (SYN | ACK)) == (SYN | ACK)
    first_of_dir0 = C("direction") == 0
    per = rows.group_by("stream").agg(
        syn_dir=C("direction").filter(syn).first(),
        synack_dir=C("direction").filter(synack).first(),
        src0=C("src").filter(first_of_dir0).first(), sport0=C("sport").filter(first_of_dir0).first(),
        dst0=C("dst").filter(first_of_dir0).first(), dport0=C("dport").filter(first_of_dir0).first(),
        src1=C("dst").filter(~first_of_dir0).first(), sport1=C("dport").filter(~first_of_dir0).first(),
        dst1=C("src").filter(~first_of_dir0).first(), dport1=C("sport").filter(~first_of_dir0).first(),
        first_ts_ns=C("ts_ns").min(), packets=pl.len())
    # the endpoints in direction 0's terms, from the other direction's packets if need be
    src = pl.coalesce("src0", "src1").cast(pl.String)
    dst = pl.coalesce("dst0", "dst1").cast(pl.String)
    sport, dport = pl.coalesce("sport0", "sport1"), pl.coalesce("dport0", "dport1")
    by_port = pl.when(sport < dport).then(1).otherwise(0)
    client_dir = (pl.when(C("syn_dir").is_not_null()).then(C("syn_dir"))
                  .when(C("synack_dir").is_not_null()).then(1 - C("synack_dir"))
                  .otherwise(by_port)).cast(pl.UInt8)
    role_from = (pl.when(C("syn_dir").is_not_null()).then(0)
                 .when(C("synack_dir").is_not_null()).then(1).otherwise(2)).cast(pl.UInt8)
    zero = C("client_dir") == 0
    return (per.with_columns(client_dir=client_dir, role_from=role_from, _src=src, _dst=dst,
                             _sport=sport, _dport=dport)
            .select("stream",
                    client=pl.when(zero).then("_src").otherwise("_dst"),
                    client_port=pl.when(zero).then("_sport").otherwise("_dport"),
                    server=pl.when(zero).then("_dst").otherwise("_src"),
                    server_port=pl.when(zero).then("_dport").otherwise("_sport"),
                    first_ts_ns="first_ts_ns", packets="packets", client_dir="client_dir",
                    role_from="role_from")
            .sort("stream"))
