"""The fuzz targets of tests/fuzz/targets.py, briefly (the quick tier): a few examples
each, so that every target stays runnable; scripts/fuzz.py runs one for long.

The examples are the same on every run (derandomized); TCPSIFT_FUZZ_QUICK_EXAMPLES sets
how many per target (default 8)."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from support import capwriter as cw

from .targets import TARGETS, Input

EXAMPLES = int(os.environ.get("TCPSIFT_FUZZ_QUICK_EXAMPLES", "8"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target(name):
    target = TARGETS[name]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def run(inp):
        target.run(inp)

    run()


# What the fuzzer found, kept as regressions: (target, input).
FOUND = [
    # RecursionError from the -Y parser and the tree walks (issue 17's 2,000 parentheses,
    # 5,000 nots, 500 ors): now a FieldError past 100 levels of parentheses, and long
    # chains of and/or/not a shallow tree
    ("filter", b"(" * 2000 + b"tcp" + b")" * 2000),
    ("filter", b"(not " * 101 + b"tcp" + b")" * 101),
    ("filter", b"not " * 5000 + b"tcp"),
    ("filter", b" or ".join([b"tcp.port == 80"] * 500)),
    ("filter", b" and ".join([b"tcp"] * 5000)),
    # OverflowError (inf, nan as a time) and Polars' "integer too large" for literals
    # past int64: now FieldErrors
    ("filter", b"frame.time_epoch > inf"),
    ("filter", b"frame.time_relative == nan"),
    ("filter", b"tcp.analysis.ack_rtt > 1e400"),
    ("filter", b"tcp.port == 99999999999999999999999"),
    ("filter", b"tcp.seq < -0x10000000000000000"),
    # (gzip target) IPv6 extension headers past the payload length (0, no jumbo option)
    # were "ok" with a header longer than the packet: now malformed, as tshark says
    ("decode", cw.pcap_file([cw.Record(1_700_000_000_000_000_000, cw.ether(
        cw.ipv6(b"", nh=59, ext=[cw.hbh()], payload_length=0), ethertype=cw.ETH_IPV6))])),
    # (gzip target) a SACK option of length 16 gives 3 edges, as tshark reads it: the
    # harness's "odd SACK edge count" was no impossibility
    ("decode", cw.pcap_file([cw.Record(1_700_000_000_000_000_000, cw.ether(cw.ipv4(cw.tcp(
        b"", options=b"\x05\x10" + bytes(range(1, 15)) + b"\x01\x01"))))])),
]


@pytest.mark.parametrize("name, data", FOUND, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FOUND)])
def test_found(name, data):
    TARGETS[name].run(Input(data))
