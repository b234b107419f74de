"""The connection table's verdict counts equal what tshark 4.0's display filter of the same
name counts: `c2s_<v>` / `s2c_<v>` of stream N are the frames of that stream and direction
that `tshark -Y tcp.analysis.<v>` keeps (fast and spurious retransmissions also match
tcp.analysis.retransmission)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

import tcpsift
from tcpsift.schema import VERDICTS

sys.path.insert(0, str(Path(__file__).parent))
from support import tcp_conformance as tc  # noqa: E402

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
SHARED = tc.shared()

QUICK = ["lab/captures/loss-retrans.pcap"]
SLOW = ["lab/captures/seed-like.pcap", "lab/captures/twopoint-lossy-a.pcap",
        "lab/captures/zero-window.pcap", "captures/public/tcp/ssh-dups-fast-retransmissions.pcap",
        "captures/public/tcp/many-connections-mobile-app.pcapng",
        "captures/public/tcp/reassembly-lost-segments.pcap",
        "captures/public/tcp/retransmit-timeout-spurious.pcapng",
        "captures/public/tcp/out-of-order-zero-window-206.pcap",
        "captures/public/tcp/keep-alive-many.pcap"]
ADDRESS_FIELDS = ["tcp.stream", "ip.src", "ipv6.src", "tcp.srcport"]


def tshark_counts(path: Path, conns: pl.DataFrame) -> Counter:
    """{(stream, "c2s" | "s2c", verdict): frames tshark shows tcp.analysis.<verdict> on},
    the direction told by the frame's source address and port against the product's
    client (the innermost header: the last of a field's comma-joined values)."""
    client = {row["stream"]: (str(row["client"]), row["client_port"])
              for row in conns.select("stream", "client", "client_port").iter_rows(named=True)}
    fields = ADDRESS_FIELDS + [f"tcp.analysis.{v}" for v in VERDICTS]
    counts = Counter()
    for line in tc.tshark_fields(path, fields).decode().splitlines():
        stream, ip4, ip6, sport, *flags = line.split("\t")
        if not stream or "," in stream:
            continue   # not TCP, or a TCP header quoted in an ICMP error
        source = ((ip4 or ip6).split(",")[-1], int(sport.split(",")[-1]))
        direction = "c2s" if source == client[int(stream)] else "s2c"
        counts.update((int(stream), direction, v) for v, shown in zip(VERDICTS, flags) if shown)
    return counts


def product_counts(conns: pl.DataFrame) -> Counter:
    counts = Counter()
    for row in conns.iter_rows(named=True):
        for d in ("c2s", "s2c"):
            counts.update({(row["stream"], d, v): row[f"{d}_{v}"] for v in VERDICTS
                           if row[f"{d}_{v}"]})
    return counts


def check(capture: str):
    path = SHARED / capture
    if not path.exists():
        pytest.skip(f"{capture} not in the shared corpus")
    conns = tcpsift.read(path).conns
    theirs = tshark_counts(path, conns)
    assert sum(theirs.values()) > 0, "a capture with no verdict tests nothing"
    assert product_counts(conns) == theirs


@needs_tshark
@pytest.mark.parametrize("capture", QUICK)
def test_verdict_counts_equal_tsharks_filters(capture):
    check(capture)


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("capture", SLOW)
def test_verdict_counts_equal_tsharks_filters_more_captures(capture):
    check(capture)


@needs_tshark
def test_fast_retransmissions_count_as_retransmissions_like_tsharks_filter():
    """The trap of issue 16: the plain-bit count was 0 where tshark's filter counts the
    fast retransmissions; here the filter itself, not its fields, is the oracle."""
    path = SHARED / QUICK[0]
    if not path.exists():
        pytest.skip("needs the lab captures")
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.analysis.retransmission",
                          "-T", "fields", "-e", "tcp.stream"], capture_output=True, text=True,
                         env=tc._env(), check=True).stdout
    conns = tcpsift.read(path).conns
    total = conns.select(pl.col("c2s_retransmission").sum() + pl.col("s2c_retransmission").sum())
    assert total.item() == len(out.split()) > 0
    fast = conns.select(pl.col("c2s_fast_retransmission").sum()
                        + pl.col("s2c_fast_retransmission").sum()).item()
    assert fast > 0, "the capture should hold fast retransmissions"


def test_verdict_expression_names_the_valid_verdicts():
    from tcpsift.tcp import verdict

    with pytest.raises(ValueError, match="valid: retransmission"):
        verdict("retransmissions")
