"""`tcpsift fields` prints what `tshark -T fields` prints, on every capture of the corpus.

Every differing cell must be listed in known_differences.toml (and explained in
docs/conformance.md); anything else fails. Differences listed there as decoder bugs
(kind = "decoder") make the capture xfail until the decoder is fixed. tshark output is
cached (see harness.py), so only the first run pays for tshark.
"""
from __future__ import annotations

import pytest
from harness import (
    captures,
    corpus,
    covering,
    fail_on_undocumented,
    known_differences,
    run,
    tcpsift_fields,
    tshark_fields,
    tshark_version,
)

KNOWN = known_differences()
CAPTURES = captures()

pytestmark = [
    pytest.mark.skipif(tshark_version() is None, reason="tshark is not installed (the oracle)"),
    pytest.mark.skipif(not CAPTURES, reason=f"capture corpus not found at {corpus()} "
                                            "(set TCPSIFT_CORPUS)"),
]


def test_tshark_is_the_reference_version():
    assert "4.0." in tshark_version(), f"expected tshark 4.0.x, found {tshark_version()}"


@pytest.mark.parametrize("capture", CAPTURES or ["<none>"])
def test_fields_match_tshark(capture):
    _, diffs = run(capture)
    # the frame count and readability are never "known" differences
    fail_on_undocumented(capture, diffs, KNOWN)
    bugs = {covering(d, KNOWN).reason for d in diffs if covering(d, KNOWN).kind == "decoder"}
    if bugs:
        pytest.xfail("decoder bug (notes/fields-conformance.md): " + " | ".join(sorted(bugs)))


# Ethernet headers the corpus does not have: cut before their end, type fields around
# 802.3's length range, and flags tcp.flags.str spells out (hand-made, see capwriter).
ETH_FIELDS = ["frame.number", "eth.src", "eth.dst", "eth.type", "tcp.flags", "tcp.flags.str",
              "frame.time_relative", "frame.time_delta"]


def test_ethernet_edges_and_flag_letters_like_tshark(tmp_path):
    import sys
    from pathlib import Path

    from click.testing import CliRunner

    from tcpsift.cli.main import cli

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from support import capwriter as cw

    frame = cw.ether(cw.ipv4(cw.tcp()))
    records = [cw.Record(1_000_000 * n, frame[:n], orig_len=len(frame))
               for n in (5, 6, 12, 13, 14, 15)]
    records += [cw.Record(2_000_000 + t, cw.ether(b"\0" * 46, ethertype=t))
                for t in (46, 1500, 1501, 1535, 1536, 0x88CC, 0xFFFF)]
    records += [cw.Record(3_000_000 - flags, cw.ether(cw.ipv4(cw.tcp(flags=flags))))
                for flags in (0x002, 0x012, 0x0C0, 0x100, 0x200, 0x400, 0x800, 0xFFF, 0)]
    path = tmp_path / "ethernet-edges.pcap"
    path.write_bytes(cw.pcap_file(records, nsec=True))     # (times going back too)
    theirs = tshark_fields(path, ETH_FIELDS)[1]
    assert tcpsift_fields(path, ETH_FIELDS) == theirs
    res = CliRunner().invoke(cli, ["fields", str(path), *[a for f in ETH_FIELDS
                                                          for a in ("-e", f)]])
    assert (res.exit_code, res.stdout_bytes) == (0, theirs)
