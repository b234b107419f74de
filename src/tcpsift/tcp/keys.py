"""Keys of the connection table that other tools and other reads can join on.

- `community_id()`: the Community ID flow hash (version 1, https://github.com/corelight/
  community-id-spec) that Zeek, Suricata and Arkime log: "1:" + base64(SHA-1(seed,
  lower endpoint's address, higher endpoint's address, protocol, 0, lower port, higher
  port)), the endpoints ordered by address bytes, then port. The `communityid` package
  computes the same per flow in Python (~25-60 µs a flow); this packs every flow's bytes
  with NumPy and leaves only the hash itself per row (tests hold the two equal).
- `uid()`: a connection id like Zeek's "C..." uid, but derived from what identifies the
  connection (its first packet's time and its client/server addresses and ports), not
  drawn at random: the same connection gets the same uid in every read, whatever other
  files are read with it, while `stream` is an ordinal that shifts.
"""
from __future__ import annotations

import hashlib
from base64 import b64encode

import numpy as np
import polars as pl

TCP = 6
_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                        np.uint8)
UID_DIGITS = 11   # 62**11 > 2**64


def _packed(addresses: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(rows x 16 uint8: the address's 16 bytes as tcpsift.addresses.pack gives them, IPv4
    as ::ffff:a.b.c.d, so its own 4 bytes are the last; is IPv6) of an address column."""
    from tcpsift.addresses import to_binary

    packed = np.frombuffer(b"".join(to_binary(addresses).to_list()), np.uint8).reshape(-1, 16)
    return packed, addresses.cast(pl.String).str.contains(":").to_numpy()


def _port_bytes(ports: np.ndarray) -> np.ndarray:
    return ports.astype(">u2").view(np.uint8).reshape(-1, 2)


def _lexicographic_less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise a < b for two uint8 matrices compared as byte strings."""
    differ = a != b
    first = differ.argmax(axis=1)
    rows = np.arange(len(a))
    return differ.any(axis=1) & (a[rows, first] < b[rows, first])


def community_id(src: pl.Series, sport: pl.Series, dst: pl.Series, dport: pl.Series,
                 proto: int = TCP, seed: int = 0) -> pl.Series:
    """The Community ID v1 of each flow (address text and port columns)."""
    n = len(src)
    if n == 0:
        return pl.Series("community_id", [], pl.String)
    a, v6 = _packed(src)
    b, _ = _packed(dst)
    pa, pb = (p.fill_null(0).to_numpy().astype(np.uint16) for p in (sport, dport))
    # the lower endpoint first: by address bytes, on equal addresses by port
    swap = _lexicographic_less(b, a) | ((a == b).all(axis=1) & (pb < pa))
    lo, hi = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
    plo, phi = np.where(swap, pb, pa), np.where(swap, pa, pb)
    fixed = np.tile(np.array([seed >> 8, seed & 0xFF], np.uint8), (n, 1))
    tail = np.column_stack([np.full(n, proto, np.uint8), np.zeros(n, np.uint8),
                            _port_bytes(plo), _port_bytes(phi)])
    v6_rows = np.concatenate([fixed, lo, hi, tail], axis=1)                    # 40 bytes
    v4_rows = np.concatenate([fixed, lo[:, 12:], hi[:, 12:], tail], axis=1)   # 16 bytes
    v6_bytes, v4_bytes = v6_rows.tobytes(), v4_rows.tobytes()
    sha1 = hashlib.sha1
    out = ["1:" + b64encode(sha1(v6_bytes[i * 40:i * 40 + 40] if is6 else
                                 v4_bytes[i * 16:i * 16 + 16]).digest()).decode()
           for i, is6 in enumerate(v6.tolist())]
    return pl.Series("community_id", out, pl.String)


def uid(first_ts_ns: pl.Series, client: pl.Series, client_port: pl.Series,
        server: pl.Series, server_port: pl.Series) -> pl.Series:
    """"C" + 11 base-62 digits of a 64-bit BLAKE2b hash of the connection's first packet
    time (int64 ns, big-endian), client address, server address (16 bytes each, IPv4 as
    ::ffff:a.b.c.d), client port, server port (big-endian) and the protocol (TCP)."""
    n = len(first_ts_ns)
    if n == 0:
        return pl.Series("uid", [], pl.String)
    a, _ = _packed(client)
    b, _ = _packed(server)
    # (a connection whose frames carry no time or no ports hashes 0 for them)
    ts = first_ts_ns.fill_null(0).to_numpy().astype(">i8").view(np.uint8).reshape(-1, 8)
    rows = np.concatenate([ts, a, b, _port_bytes(client_port.fill_null(0).to_numpy()),
                           _port_bytes(server_port.fill_null(0).to_numpy()),
                           np.full((n, 1), TCP, np.uint8)], axis=1)
    width = rows.shape[1]
    data = rows.tobytes()
    blake = hashlib.blake2b
    digests = b"".join(blake(data[i * width:(i + 1) * width], digest_size=8).digest()
                       for i in range(n))
    value = np.frombuffer(digests, ">u8").astype(np.uint64)
    digits = np.empty((n, UID_DIGITS), np.uint8)
    for place in range(UID_DIGITS - 1, -1, -1):
        value, digit = np.divmod(value, np.uint64(62))
        digits[:, place] = _BASE62[digit]
    text = np.concatenate([np.full((n, 1), ord("C"), np.uint8), digits], axis=1)
    return pl.Series("uid", text.view(f"S{UID_DIGITS + 1}").ravel()).cast(pl.String)
