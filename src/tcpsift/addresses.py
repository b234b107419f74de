"""IP addresses in a binary form, for joins with tables that hold addresses as bytes.

The packet table's address columns (`src`, `dst`, `outer_src`, `outer_dst`, and the
layer and connection tables' addresses) are Polars Categoricals of the address text.
Polars keeps one dictionary of categories for the whole process, so the columns of two
`tcpsift.read()` calls compare and join as they are, by text:

    a, b = tcpsift.read(["point-a.pcap", "point-b.pcap"], mode="separate")
    a.packets.join(b.packets, on=["src", "dst", "sport", "dport", "seq"])

A table from elsewhere (Zeek, a database, another tool's Parquet) may hold addresses as
16 bytes instead. `binary()` gives that form, IPv4 addresses mapped into IPv6
(`::ffff:a.b.c.d`, RFC 4291 2.5.5.2, the form IPv6 sockets use), so that one column holds
both versions and sorts by the address's bytes:

    pkts.with_columns(src16=tcpsift.addresses.binary("src"))

It is computed when asked for, not kept in the packet table: each distinct address is
packed once (a capture has few), and the rows are looked up by their dictionary code.
"""
from __future__ import annotations

import socket

import polars as pl

__all__ = ["binary", "to_binary", "pack"]

_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def pack(text: str) -> bytes:
    """One address's 16 bytes: IPv6 as is, IPv4 as ::ffff:a.b.c.d."""
    if ":" in text:
        return socket.inet_pton(socket.AF_INET6, text)
    return _V4_MAPPED + socket.inet_pton(socket.AF_INET, text)


def to_binary(addresses: pl.Series) -> pl.Series:
    """An address column (Categorical or String) as 16-byte Binary; null stays null."""
    if addresses.dtype == pl.Categorical:
        distinct = addresses.drop_nulls().unique()
        codes = distinct.to_physical().to_list()
        packed = [pack(text) for text in distinct.cast(pl.String).to_list()]
        return addresses.to_physical().replace_strict(
            codes, packed, default=None, return_dtype=pl.Binary).alias(addresses.name)
    texts = addresses.drop_nulls().unique().to_list()
    return addresses.replace_strict(texts, [pack(t) for t in texts], default=None,
                                    return_dtype=pl.Binary)


def binary(column: str | pl.Expr = "src") -> pl.Expr:
    """The expression of an address column as 16-byte Binary (see to_binary), for
    `select`, `with_columns` or a join key: `binary("src")`."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.map_batches(to_binary, return_dtype=pl.Binary, is_elementwise=True)


def endpoint(address, port) -> str:
    """An address and port as text, an IPv6 address in brackets (RFC 3986's form, as
    Wireshark writes it): "192.0.2.10:80", "[2001:db8::1]:80"."""
    address = str(address)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def endpoint_expr(address: str, port: str) -> pl.Expr:
    """endpoint() over two columns (an address column and its port column)."""
    text = pl.col(address).cast(pl.String)
    return pl.concat_str(pl.when(text.str.contains(":")).then("[" + text + "]").otherwise(text),
                         pl.lit(":"), pl.col(port).cast(pl.String))
