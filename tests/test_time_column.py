"""The packet table's `time` column: capture times as a Polars Datetime (ns, UTC)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import tcpsift

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED  # noqa: E402

C = pl.col


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
@pytest.mark.parametrize("name", ["twopoint-lossy-b.pcap", "client-resets.pcapng"])
def test_time_is_tsharks_frame_time_epoch(name):
    """nanosecond (b) and microsecond pcap, pcapng"""
    path = SHARED / "lab" / "captures" / name
    path = path if path.exists() else SAMPLE
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch"], capture_output=True, text=True,
                         check=True).stdout
    truth = {int(f): int(Decimal(t) * 10**9)
             for f, t in (line.split("\t") for line in out.splitlines())}
    packets = tcpsift.read(path).packets
    assert packets.schema["time"] == pl.Datetime("ns", "UTC")
    got = dict(packets.select("frame", C("time").dt.epoch("ns")).iter_rows())
    assert got == truth


def test_time_shares_the_buffer_of_ts_ns():
    """No copy: the Datetime is a view of the same 8-byte integers."""
    packets = tcpsift.read(SAMPLE).packets
    address = [s.to_numpy().__array_interface__["data"][0]
               for s in (packets["ts_ns"], packets["time"].to_physical())]
    assert address[0] == address[1]


def test_time_is_null_where_ts_ns_is():
    """Frames without a timestamp (pcapng simple packet blocks) have no time either."""
    files = sorted((SHARED / "captures").rglob("*.pcapng"))
    checked = 0
    for path in files[:40]:
        try:
            packets = tcpsift.read(path).packets
        except tcpsift.CaptureError:
            continue
        assert packets["time"].is_null().equals(packets["ts_ns"].is_null()), path
        checked += packets["ts_ns"].null_count()
    if files and not checked:
        pytest.skip("no frame without a timestamp in the corpus")
