"""Addresses are comparable across reads (text) and have a binary form for joins."""
from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import polars as pl
import pytest

import tcpsift
from tcpsift import addresses

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SHARED  # noqa: E402

C = pl.col
LAB = SHARED / "lab" / "captures"
SEGMENT = ["src", "dst", "sport", "dport", "seq", "ack", "tcp_len"]


def _pair(name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    paths = [LAB / f"twopoint-{name}-a.pcap", LAB / f"twopoint-{name}-b.pcap"]
    if not all(p.exists() for p in paths):
        pytest.skip("lab captures not present")
    return tcpsift.read(paths[0]).packets, tcpsift.read(paths[1]).packets


def _as_text(packets: pl.DataFrame) -> pl.DataFrame:
    return packets.with_columns(C("src", "dst").cast(pl.String))


def _mapped(text: str) -> bytes:
    """The standard library's 16 bytes of an address, IPv4 mapped into IPv6."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        ip = ipaddress.IPv6Address(f"::ffff:{ip}")
    return ip.packed


def test_address_columns_of_two_reads_join_like_their_text():
    """The two capture points of the same traffic, read apart (each read numbers its
    addresses from 0): a join on the Categorical columns matches the segments a join on
    the address texts matches."""
    a, b = _pair("lossy")
    by_category = a.join(b, on=SEGMENT, suffix="_b").select("frame", "frame_b").sort(pl.all())
    by_text = _as_text(a).join(_as_text(b), on=SEGMENT, suffix="_b").select(
        "frame", "frame_b").sort(pl.all())
    assert by_category.height > 1000
    assert by_category.equals(by_text)
    # and elementwise comparison and filtering across reads
    first_b = b["src"][0]
    assert a.filter(C("src") == first_b).height == _as_text(a).filter(
        C("src") == str(first_b)).height > 0


def test_binary_form_is_the_ipv4_mapped_address_and_joins_alike():
    a, b = _pair("lossy")
    both = pl.concat([a.select("src", "dst"), b.select("src", "dst")])
    texts = pl.concat([both["src"], both["dst"]]).cast(pl.String).unique().to_list()
    assert any(":" in t for t in texts) and any("." in t for t in texts)
    got = pl.DataFrame({"text": texts}).with_columns(
        packed=addresses.binary(C("text"))).rows()
    assert got == [(t, _mapped(t)) for t in texts]
    # a Categorical column gives the same bytes, row by row, nulls kept
    rows = a.select("src", src16=addresses.binary("src"))
    assert rows["src16"].to_list() == [_mapped(t) for t in rows["src"].cast(pl.String)]
    outer = a.select(addresses.binary("outer_src"))
    assert outer.null_count().item() == a["outer_src"].null_count()
    # joined on the binary form: the same segments as on text
    keys = [k for k in SEGMENT if k not in ("src", "dst")]

    def binary_keys(p: pl.DataFrame) -> pl.DataFrame:
        return p.with_columns(src=addresses.binary("src"), dst=addresses.binary("dst"))

    by_bytes = binary_keys(a).join(binary_keys(b), on=["src", "dst", *keys], suffix="_b")
    by_text = _as_text(a).join(_as_text(b), on=SEGMENT, suffix="_b")
    assert by_bytes.height > 100
    assert by_bytes.select("frame", "frame_b").sort(pl.all()).equals(
        by_text.select("frame", "frame_b").sort(pl.all()))
