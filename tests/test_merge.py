"""Several capture files whose frames interleave, read as one capture: the frames come in
mergecap's order (checked here against a plain simulation of its greedy merge, and in
tests/fields against tshark on mergecap's output), merged chunk by chunk as the files are
read (tcpsift.capture.merge), with each frame's tables, layers and TCP analysis those of
the same frame read from the whole capture."""
from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import polars as pl
import pytest

import tcpsift
from tcpsift.capture import capture as capture_module

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED  # noqa: E402

PUBLIC = SHARED / "captures" / "public"
# classic pcap captures with tunnels, stacked tags or ICMP errors (layer rows), and one
# with many TCP streams; none with IP fragments (files dealt at random split datagrams,
# which tcpsift reassembles within each file only: docs/conformance.md)
CAPTURES = [SAMPLE, *[PUBLIC / p for p in (
    "encap/gre-within-gre.pcap", "encap/gtp-u.pcap", "encap/6in4-tcp.pcap",
    "l3l4/icmpv6-assorted.pcap", "linktypes/ethernet-vlan-mixed-collisions.pcap",
    "tcp/mixed-126-streams.pcap")]]
FILE_COLUMNS = ["file_id", "file_frame", "file_offset"]
TEXT = ("src", "dst", "outer_src", "outer_dst")


def _records(path: Path):
    data = path.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen = struct.unpack_from(endian + "III", data, off)
        out.append(((sec, frac), data[off:off + 16 + caplen]))
        off += 16 + caplen
    return data[:24], out


def _deal(path: Path, out_dir: Path, parts: int, seed: int, reverse_last: bool):
    """`path` dealt at random into `parts` files (the last one's frames in reverse
    order if `reverse_last`: its time goes back, so the merge must reorder); returns the
    files and, per file, the whole capture's frame numbers and timestamps of its frames."""
    header, records = _records(path)
    rng = random.Random(seed)
    dealt: list[list] = [[] for _ in range(parts)]
    for i, (ts, raw) in enumerate(records):
        dealt[rng.randrange(parts)].append((i + 1, ts, raw))
    if reverse_last:
        dealt[-1].reverse()
    paths = []
    for k, recs in enumerate(dealt):
        p = out_dir / f"{path.stem}_{k}.pcap"
        p.write_bytes(header + b"".join(raw for _, _, raw in recs))
        paths.append(p)
    return paths, [[(frame, ts) for frame, ts, _ in recs] for recs in dealt]


def _mergecap_order(files: list[list]) -> list[int]:
    """mergecap's greedy merge, plainly: repeatedly take the head frame of the file with
    the earliest head timestamp, the later file on a tie (Wireshark 4.0 merge.c)."""
    heads = [0] * len(files)
    order = []
    while True:
        best = None
        for k, recs in enumerate(files):
            if heads[k] < len(recs) and (best is None or recs[heads[k]][1] <= files[best][heads[best]][1]):
                best = k
        if best is None:
            return order
        order.append(files[best][heads[best]][0])
        heads[best] += 1


def _comparable(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns([pl.col(c).cast(pl.String) for c in TEXT if c in df.columns])


@pytest.mark.slow
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk", [5, 1 << 18])
@pytest.mark.parametrize("reverse_last", [False, True], ids=["in-time", "time-goes-back"])
def test_interleaved_files_read_as_mergecap_orders_them(tmp_path, monkeypatch, path, chunk,
                                                        reverse_last):
    if not path.exists():
        pytest.skip(f"{path} not in the corpus")
    monkeypatch.setattr(capture_module, "CHUNK", chunk)
    parts, dealt = _deal(path, tmp_path, 3, seed=len(path.name), reverse_last=reverse_last)
    whole = tcpsift.read(path)
    merged = tcpsift.read(parts)
    order = _mergecap_order(dealt)           # whole-capture frame numbers, merged order
    assert merged.packets.height == whole.packets.height == len(order)
    if reverse_last:
        assert order != sorted(order)   # (in time, ties may reorder too: later file first)
    # every frame's row is the whole capture's row of that frame (but the frame number)
    expected = whole.packets[[f - 1 for f in order]].with_columns(
        frame=merged.packets["frame"])
    assert _comparable(merged.packets.drop(FILE_COLUMNS)).equals(
        _comparable(expected.drop(FILE_COLUMNS)))
    # each frame's file and its number there
    where = {frame: (k, i + 1) for k, recs in enumerate(dealt) for i, (frame, _) in enumerate(recs)}
    assert merged.packets["file_id"].to_list() == [where[f][0] for f in order]
    assert merged.packets["file_frame"].to_list() == [where[f][1] for f in order]
    # layer rows: those of the same frames, renumbered
    new_frame = {old: new + 1 for new, old in enumerate(order)}
    want_layers = whole.layers.with_columns(
        frame=pl.col("frame").replace_strict(new_frame, return_dtype=pl.UInt32)).sort(
        ["frame", "index"])
    assert _comparable(merged.layers.drop("file_id")).equals(
        _comparable(want_layers.drop("file_id")))
    assert merged.layers["file_id"].to_list() == [
        where[order[f - 1]][0] for f in merged.layers["frame"]]
    # the TCP analysis of the merged capture is the analysis of those frames in that
    # order: the same as the whole capture's where the order did not change
    if order == sorted(order):
        assert merged.tcp.drop("file_id").equals(whole.tcp.drop("file_id"))
    # and the frame bytes come from the right file
    for frame in (1, len(order) // 2 + 1, len(order)):
        assert merged.frame_bytes(frame) == whole.frame_bytes(order[frame - 1])
