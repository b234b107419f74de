"""The connection table from the kernel's per-connection aggregates
(tcpsift.tcp.connections: connections() from the tables, read_connections() chunk by
chunk without them) equals the whole-table NumPy formulation kept in
tests/support/conns_reference.py, on every capture of the corpus and the lab, with
either client_by, whatever the chunk size; the kernel's hashes equal hashlib's."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from polars.testing import assert_frame_equal

import tcpsift
from tcpsift.errors import CaptureError
from tcpsift.tcp import _analysis as K
from tcpsift.tcp.connections import _read_connections, connections, read_connections

sys.path.insert(0, str(Path(__file__).parent))
from support import conns_reference as reference  # noqa: E402
from support.corpus import SAMPLE, SHARED, capture_files  # noqa: E402

FILES = capture_files("captures/public", "captures/malformed", "lab")
LAB = SHARED / "lab" / "captures"


@pytest.mark.parametrize("client_by", ["ip", "mac"])
def test_sample_every_path_and_chunk_size(client_by):
    cap = tcpsift.read(SAMPLE)
    want = reference.connections(cap, client_by=client_by)
    assert len(want) > 0
    assert_frame_equal(connections(cap, client_by=client_by), want)
    for chunk in (1, 97, 1 << 16):
        got, warnings, complete = read_connections([SAMPLE], client_by=client_by, chunk=chunk)
        assert_frame_equal(got, want)
        assert (warnings, complete) == (cap.warnings, cap.complete)


def test_hosts_as_clients():
    cap = tcpsift.read(SAMPLE)
    hosts = {a: "one host" for a in cap.conns["client"].unique().to_list()[:2]}
    want = reference.connections(cap, client_by=hosts)
    assert_frame_equal(connections(cap, client_by=hosts), want)
    assert_frame_equal(read_connections([SAMPLE], client_by=hosts)[0], want)


def test_several_files_merged_and_concatenated():
    paths = [LAB / "twopoint-clean-slow-server-a.pcap", LAB / "twopoint-clean-slow-server-b.pcap"]
    if not all(p.exists() for p in paths):
        paths = [SAMPLE, SAMPLE]
    for mode in ("merge", "concat"):
        cap = tcpsift.read(paths, mode=mode)
        got, warnings, complete = read_connections(paths, mode=mode)
        assert_frame_equal(got, reference.connections(cap))
        assert (warnings, complete) == (cap.warnings, cap.complete)


def test_rows_come_as_connections_end():
    """With eviction, a connection's record is taken (and freed) when the kernel frees
    its conversation: the records held at once stay below the connections seen."""
    path = LAB / "slow-synack.pcap"
    if not path.exists():
        pytest.skip("no lab capture")
    cap = tcpsift.read(path)
    want = reference.connections(cap)
    table, _, _, late, peak = _read_connections([path], "merge", "ip", 97, 0)
    assert late == 0 and peak < len(want) / 2
    assert_frame_equal(table, want)
    assert _read_connections([path], "merge", "ip", 97, -1)[4] == len(want)


def test_late_packets_read_again():
    """The sample's conversations get packets after they ended: with a grace of 0 they
    are late, the first read stops there, and the table comes from a read without
    eviction."""
    assert _read_connections([SAMPLE], "merge", "ip", 97, 0)[3] > 0
    assert_frame_equal(read_connections([SAMPLE], grace=0.0, chunk=97)[0],
                       reference.connections(tcpsift.read(SAMPLE)))


def test_not_a_capture(tmp_path):
    bad = tmp_path / "text.pcap"
    bad.write_text("not a capture\n")
    with pytest.raises(CaptureError):
        read_connections([bad])
    with pytest.raises(ValueError, match="client_by"):
        read_connections([SAMPLE], client_by="port")


def same(got, want, path) -> None:
    try:
        assert_frame_equal(got, want)
    except AssertionError as e:
        raise AssertionError(f"{path}: {e}") from None


@pytest.mark.slow
def test_corpus_tables_and_streamed_equal_the_reference():
    checked = 0
    for path in FILES:
        try:
            cap = tcpsift.read(path)
        except CaptureError:
            continue
        for client_by in ("ip", "mac"):
            want = reference.connections(cap, client_by=client_by)
            same(connections(cap, client_by=client_by), want, path)
            same(read_connections([path], client_by=client_by)[0], want, path)
        if len(cap.packets) < 20_000:
            # chunk boundaries anywhere: a connection's state spans chunks; eviction
            # as soon as a conversation ends
            for grace in (None, 0.0, 5.0):
                same(read_connections([path], chunk=97, grace=grace)[0],
                     reference.connections(cap), path)
        checked += len(want)
    assert checked > 100


def test_kernel_hashes_equal_hashlib():
    rng = np.random.default_rng(7)
    for width in (1, 16, 40, 47, 55):
        rows = rng.integers(0, 256, (200, width), dtype=np.uint8)
        longer = rng.integers(0, 256, (200, 40), dtype=np.uint8)
        pick = rng.integers(0, 2, 200, dtype=np.uint8)
        got = K.sha1_rows(longer, rows, pick)
        for i in range(200):
            data = (longer[i] if pick[i] else rows[i]).tobytes()
            assert got[i].tobytes() == hashlib.sha1(data).digest()
    for width in (1, 47, 127, 128):
        rows = rng.integers(0, 256, (100, width), dtype=np.uint8)
        for size in (8, 20, 64):
            got = K.blake2b_rows(rows, size)
            for i in range(100):
                assert got[i].tobytes() == hashlib.blake2b(rows[i].tobytes(),
                                                           digest_size=size).digest()
