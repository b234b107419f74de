"""Keys of the connection table that other tools and other reads can join on.

- `community_id()`: the Community ID flow hash (version 1, https://github.com/corelight/
  community-id-spec) that Zeek, Suricata and Arkime log: "1:" + base64(SHA-1(seed,
  lower endpoint's address, higher endpoint's address, protocol, 0, lower port, higher
  port)), the endpoints ordered by address bytes, then port. The `communityid` package
  computes the same per flow in Python (~25-60 µs a flow); this packs every flow's bytes
  with NumPy and hashes the rows in the compiled kernel (SHA-1 and BLAKE2b of one block,
  tcpsift.tcp._analysis; tests hold them equal to the package and to hashlib).
- `uid()`: a connection id like Zeek's "C..." uid, but derived from what identifies the
  connection (its first packet's time and its client/server addresses and ports), not
  drawn at random: the same connection gets the same uid in every read, whatever other
  files are read with it, while `stream` is an ordinal that shifts.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.tcp import _analysis as K

TCP = 6
UID_DIGITS = 11   # 62**11 > 2**64


def _packed(addresses: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(rows x 16 uint8: the address's 16 bytes as tcpsift.addresses.pack gives them, IPv4
    as ::ffff:a.b.c.d, so its own 4 bytes are the last, null as zeros; is IPv6) of an
    address column. Each distinct address (a capture has few) is packed once and the rows
    gather its bytes: the rows as Python bytes cost ten times as long."""
    from tcpsift.addresses import pack

    text = addresses.cast(pl.String)
    distinct = text.drop_nulls().unique().to_list()
    table = np.zeros((len(distinct) + 1, 16), np.uint8)     # (the last row: null)
    if distinct:
        table[:-1] = np.frombuffer(b"".join(pack(t) for t in distinct),
                                   np.uint8).reshape(-1, 16)
    v6 = np.array([":" in t for t in distinct] + [False])
    index = text.replace_strict(distinct, range(len(distinct)), default=len(distinct),
                                return_dtype=pl.Int64).to_numpy()
    return table[index], v6[index]


def _port_bytes(ports: np.ndarray) -> np.ndarray:
    return ports.astype(">u2").view(np.uint8).reshape(-1, 2)


def community_id(src: pl.Series, sport: pl.Series, dst: pl.Series, dport: pl.Series,
                 proto: int = TCP, seed: int = 0) -> pl.Series:
    """The Community ID v1 of each flow (address text and port columns)."""
    if len(src) == 0:
        return pl.Series("community_id", [], pl.String)
    return _community_id(_packed(src), sport, _packed(dst)[0], dport, proto, seed)


def _community_id(src: tuple[np.ndarray, np.ndarray], sport: pl.Series, b: np.ndarray,
                  dport: pl.Series, proto: int = TCP, seed: int = 0) -> pl.Series:
    """community_id() of addresses already packed (_packed)."""
    a, v6 = src
    pa, pb = (np.ascontiguousarray(p.fill_null(0).to_numpy(), dtype=np.uint16)
              for p in (sport, dport))
    text = K.community_id_rows(np.ascontiguousarray(a), np.ascontiguousarray(b), pa, pb,
                               np.ascontiguousarray(v6, dtype=np.uint8), proto, seed)
    return pl.Series("community_id", text.view("S30").ravel()).cast(pl.String)


def uid(first_ts_ns: pl.Series, client: pl.Series, client_port: pl.Series,
        server: pl.Series, server_port: pl.Series) -> pl.Series:
    """"C" + 11 base-62 digits of a 64-bit BLAKE2b hash of the connection's first packet
    time (int64 ns, big-endian), client address, server address (16 bytes each, IPv4 as
    ::ffff:a.b.c.d), client port, server port (big-endian) and the protocol (TCP)."""
    if len(first_ts_ns) == 0:
        return pl.Series("uid", [], pl.String)
    return _uid(first_ts_ns, _packed(client)[0], client_port, _packed(server)[0], server_port)


Packed = tuple[np.ndarray, np.ndarray]      # (n x 16 bytes, is IPv6): _packed()'s


def packed(addresses: pl.Series) -> Packed:
    """An address column packed for connection_keys (to pack it once for several calls)."""
    return _packed(addresses)


def connection_keys(first_ts_ns: pl.Series, client: pl.Series | Packed, client_port: pl.Series,
                    server: pl.Series | Packed, server_port: pl.Series, community: bool = True
                    ) -> tuple[pl.Series, pl.Series | None]:
    """(uid(...), community_id(client, client_port, server, server_port), or None when not
    `community`), the addresses packed once for both (or given packed: packed()'s form)."""
    if len(first_ts_ns) == 0:
        return (pl.Series("uid", [], pl.String),
                pl.Series("community_id", [], pl.String) if community else None)
    c = client if isinstance(client, tuple) else _packed(client)
    s = server if isinstance(server, tuple) else _packed(server)
    return (_uid(first_ts_ns, c[0], client_port, s[0], server_port),
            _community_id(c, client_port, s[0], server_port) if community else None)


def _uid(first_ts_ns: pl.Series, a: np.ndarray, client_port: pl.Series, b: np.ndarray,
         server_port: pl.Series) -> pl.Series:
    """uid() of addresses already packed (_packed)."""
    n = len(first_ts_ns)
    # (a connection whose frames carry no time or no ports hashes 0 for them)
    ts = first_ts_ns.fill_null(0).to_numpy().astype(">i8").view(np.uint8).reshape(-1, 8)
    rows = np.concatenate([ts, a, b, _port_bytes(client_port.fill_null(0).to_numpy()),
                           _port_bytes(server_port.fill_null(0).to_numpy()),
                           np.full((n, 1), TCP, np.uint8)], axis=1)
    text = K.uid_rows(np.ascontiguousarray(rows), UID_DIGITS)
    return pl.Series("uid", text.view(f"S{UID_DIGITS + 1}").ravel()).cast(pl.String)
