"""Every table carries its keys: `frame` and `file_id` join the TCP analysis and the
layer table to the packet table (issue 15), so nothing relies on row positions."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import tcpsift
from tcpsift import schema

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED  # noqa: E402

C = pl.col
PUBLIC = SHARED / "captures" / "public"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def test_tcp_table_has_the_declared_columns_keys_first():
    tcp = tcpsift.read(SAMPLE).tcp
    assert dict(tcp.schema) == schema.polars_schema(schema.TCP_COLUMNS)
    assert tcp.columns[:2] == ["frame", "file_id"]


@needs_tshark
def test_tcp_rows_joined_on_frame_are_tsharks_frames():
    """tshark's frame.number, tcp.stream and tcp.seq, joined to the analysis on `frame`
    (the analysis table alone, shuffled: no row position involved)."""
    path = SHARED / "lab" / "captures" / "loss-retrans.pcap"
    path = path if path.exists() else SAMPLE
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.seq"],
                         capture_output=True, text=True, check=True).stdout
    truth = pl.DataFrame([line.split("\t") for line in out.splitlines()],
                         schema=["frame", "stream", "rel_seq"], orient="row").select(
        C("frame").cast(pl.UInt32), C("stream").cast(pl.UInt32), C("rel_seq").cast(pl.UInt32))
    tcp = tcpsift.read(path).tcp.sample(fraction=1.0, shuffle=True, seed=1)
    got = truth.join(tcp.select("frame", "stream", "rel_seq"), on="frame", how="left",
                     suffix="_got")
    assert got.height > 100
    assert got["stream"].equals(got["stream_got"].alias("stream"))
    assert got["rel_seq"].equals(got["rel_seq_got"].alias("rel_seq"))


def test_keys_of_files_read_together_lead_back_to_each_file():
    """Two files with repeated headers (tunnels, ICMP-quoted headers) merged into one
    capture: every layer row and TCP row names the file its frame came from, and through
    the packet table's file_frame it is that file's own row, read alone."""
    paths = [PUBLIC / "encap" / "vxlan-icmp.pcap", PUBLIC / "l3l4" / "icmp-traceroute.pcapng"]
    if not all(p.exists() for p in paths):
        pytest.skip("public corpus not present")
    both = tcpsift.read(paths)
    where = both.packets.select("frame", "file_id", "file_frame")
    assert both.tcp.select("frame", "file_id").equals(where.select("frame", "file_id"))
    layers = both.layers.join(where, on="frame", how="left", suffix="_packet")
    assert layers["file_id"].equals(layers["file_id_packet"].alias("file_id"))
    for file_id, path in enumerate(paths):
        alone = tcpsift.read(path).layers
        mine = (layers.filter(C("file_id") == file_id)
                .with_columns(frame=C("file_frame"), file_id=pl.lit(0, pl.UInt16))
                .select(alone.columns))
        assert alone.height > 0, path
        assert mine.equals(alone), path
