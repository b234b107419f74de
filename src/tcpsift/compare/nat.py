"""Address translation between the points: `--nat "A=B"` says that what a sees as A, b
sees as B (an address, or an address and port: `192.0.2.10:40000=203.0.113.5:61000`,
`[2001:db8::1]:80=[2001:db8:9::1]:8080`). b's packets are given a's view before their
keys are made, so a translated connection matches as any other."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import polars as pl

C = pl.col


@dataclass(frozen=True)
class Endpoint:
    address: str          # as tcpsift prints it (RFC 5952 for IPv6)
    port: int | None      # None: every port


@dataclass(frozen=True)
class Translation:
    at_a: Endpoint
    at_b: Endpoint


def endpoint(text: str) -> Endpoint:
    """`addr`, `addr:port`, `ipv6`, `[ipv6]` or `[ipv6]:port`; ValueError when not one."""
    text = text.strip()
    port = None
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected [address]:port")
            port = rest[1:]
    elif text.count(":") == 1:
        address, port = text.split(":")
    else:
        address = text
    try:
        canonical = str(ipaddress.ip_address(address))
        number = None if port is None else int(port)
    except ValueError:
        raise ValueError(f"{text!r}: not an address or address:port") from None
    if number is not None and not 0 <= number <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    return Endpoint(canonical, number)


def translation(text: str) -> Translation:
    """One `A=B` rule: A as a sees it, B as b sees it (both with a port, or neither)."""
    left, equals, right = text.partition("=")
    if not equals:
        raise ValueError(f"{text!r}: expected A=B (a's view = b's view)")
    rule = Translation(endpoint(left), endpoint(right))
    if (rule.at_a.port is None) != (rule.at_b.port is None):
        raise ValueError(f"{text!r}: give a port on both sides or on neither")
    return rule


def to_a_view(rows: pl.DataFrame, rules: list[Translation]) -> pl.DataFrame:
    """b's packet rows (src, dst, sport, dport) with every translated endpoint as a sees
    it."""
    if not rules:
        return rows
    src, dst = C("src").cast(pl.String), C("dst").cast(pl.String)
    sport, dport = C("sport"), C("dport")
    new = {"src": src, "dst": dst, "sport": sport, "dport": dport}
    for rule in rules:
        for addr, port, addr_col, port_col in ((src, sport, "src", "sport"),
                                               (dst, dport, "dst", "dport")):
            hit = addr == rule.at_b.address
            if rule.at_b.port is not None:
                hit = hit & (port == rule.at_b.port)
                new[port_col] = pl.when(hit).then(pl.lit(rule.at_a.port, pl.UInt16)) \
                    .otherwise(new[port_col])
            new[addr_col] = pl.when(hit).then(pl.lit(rule.at_a.address)).otherwise(new[addr_col])
    return rows.with_columns(new["src"].cast(pl.Categorical).alias("src"),
                             new["dst"].cast(pl.Categorical).alias("dst"),
                             new["sport"].alias("sport"), new["dport"].alias("dport"))
