"""tcpsift.tcp.Analyzer (the sans-I/O analyzer) against `capture.tcp`, which the
conformance suite holds equal to tshark: fed in batches of any size, saved and restored
between batches, with and without eviction; and its saved state's checks."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tcpsift
from tcpsift.errors import CaptureError
from tcpsift.tcp import Analyzer

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, capture_files  # noqa: E402

LAB = capture_files("lab")
PUBLIC = capture_files("captures/public")


def captures(paths):
    for path in paths:
        try:
            yield path, tcpsift.read(path)
        except CaptureError:
            continue


def fed(cap, size: int, analyzer: Analyzer | None = None, restore_between=False,
        layers=True) -> tuple[pl.DataFrame, Analyzer]:
    """The analyzer's rows for the capture's packet table fed `size` rows at a time."""
    an = analyzer or Analyzer()
    rows = []
    for start in range(0, cap.packets.height, size):
        rows.append(an.feed(cap.packets.slice(start, size), cap.layers if layers else None))
        if restore_between:
            an = Analyzer.restore(an.save())
    return (pl.concat(rows) if rows else an.feed(cap.packets)), an


def test_batches_and_restores_give_the_capture_table():
    cap = tcpsift.read(SAMPLE)
    want = cap.tcp
    for size in (1, 97, 65536):
        got, an = fed(cap, size)
        assert got.equals(want), size
        assert an.late_packets == 0
    got, _ = fed(cap, 7, restore_between=True)
    assert got.equals(want)


def test_eviction_reports_every_stream_once_and_frees_the_state():
    cap = tcpsift.read(SAMPLE)
    an = Analyzer(grace=0.01, remember=None)
    ended, later, during = set(), [], 0
    for start in range(0, cap.packets.height, 5):
        rows = an.feed(cap.packets.slice(start, 5))
        later.append(set(rows["stream"].drop_nulls().to_list()) & ended)
        now = an.ended()
        assert not set(now) & ended
        ended |= set(now)
        during += len(now)
    an.finish()
    ended |= set(an.ended())
    assert ended == set(range(an.streams)) and an.streams == cap.tcp["stream"].max() + 1
    assert an.late_packets == 0 and not any(later)   # nothing came for a freed stream
    assert during > 5                                  # freed while the capture went on
    assert an.sizes()["conversations"] == 0 and an.sizes()["segments"] == 0
    assert an.sizes()["tombstones"] == an.streams


def test_finish_without_eviction_reports_every_stream():
    cap = tcpsift.read(SAMPLE)
    an = Analyzer(grace=None)
    assert an.feed(cap.packets).equals(cap.tcp) and an.ended() == []
    an.finish()
    assert an.ended() == list(range(an.streams)) and an.sizes()["conversations"] == 0
    restored = Analyzer.restore(an.save())
    assert restored.ended() == [] and restored.sizes()["tombstones"] == an.streams


def test_addresses_no_state_uses_are_dropped(monkeypatch):
    """Address ids are dropped as their conversations go (here at every batch): the rows
    stay those of an analyzer that keeps them all."""
    from tcpsift.tcp import analyzer as mod

    cap = tcpsift.read(SAMPLE)
    keep, _ = fed(cap, 9, Analyzer(grace=0.001, remember=0.002))
    monkeypatch.setattr(mod, "_FIRST_COMPACTION", 0)
    got, an = fed(cap, 9, Analyzer(grace=0.001, remember=0.002), restore_between=True)
    assert got.equals(keep)
    an.finish()
    an.feed(cap.packets.clear())
    assert an.sizes()["addresses"] <= 2 * an.sizes()["tombstones"]


def test_state_checks():
    cap = tcpsift.read(SAMPLE)
    an = Analyzer(grace=0.001, remember=10)
    an.feed(cap.packets.slice(0, 60))
    state = an.save()
    assert state[:16] == b"TCPSIFT-ANALYZER"
    again = Analyzer.restore(state)
    assert again.save() == state
    rest = cap.packets.slice(60)
    assert again.feed(rest).equals(an.feed(rest))
    with pytest.raises(ValueError, match="checksum"):
        Analyzer.restore(state[:100] + bytes([state[100] ^ 1]) + state[101:])
    with pytest.raises(ValueError, match="magic"):
        Analyzer.restore(b"PK\x03\x04" + state[4:])
    with pytest.raises(ValueError):
        Analyzer.restore(state[:-9])
    with pytest.raises(ValueError, match="version"):
        Analyzer.restore(state[:16] + (2).to_bytes(4, "little") + state[20:])
    with pytest.raises(ValueError, match="frame order"):
        again.feed(cap.packets.slice(0, 3))
    assert Analyzer.restore(Analyzer().save()).feed(cap.packets).equals(cap.tcp)


def test_restore_refuses_unsound_structures():
    """A state whose checksum is right but whose content is not (made by hand): every
    structure is checked before the kernel uses it."""
    import struct
    import zlib

    from tcpsift.tcp import analyzer as mod

    cap = tcpsift.read(SAMPLE)
    an = Analyzer(grace=None)
    an.feed(cap.packets.slice(0, 30))
    parts = mod._read_sections(an.save())

    def blob(**changed):
        out = [mod.MAGIC, struct.pack("<II", mod.VERSION, len(mod._SECTIONS))]
        for name, dtype in mod._SECTIONS.items():
            arr = changed.get(name, parts[name])
            layout = mod._layout(dtype).encode()
            out += [struct.pack("<H", len(name)), name.encode(), struct.pack("<H", len(layout)),
                    layout, struct.pack("<Q", len(arr)), np.asarray(arr, dtype).tobytes()]
        body = b"".join(out)
        return body + struct.pack("<I", zlib.crc32(body))

    assert Analyzer.restore(blob()).feed(cap.packets.slice(30)).equals(
        an.feed(cap.packets.slice(30)))
    conv = parts["conversations"].copy()
    conv["segments1"][0] = 1 << 20
    with pytest.raises(ValueError, match="out of range"):
        Analyzer.restore(blob(conversations=conv))
    conv = parts["conversations"].copy()
    conv["key_lo"][1], conv["key_hi"][1] = conv["key_lo"][0], conv["key_hi"][0]
    with pytest.raises(ValueError, match="twice"):
        Analyzer.restore(blob(conversations=conv))
    conv = parts["conversations"].copy()
    conv["stream"][0] = 10**6
    with pytest.raises(ValueError, match="stream"):
        Analyzer.restore(blob(conversations=conv))
    with pytest.raises(ValueError, match="unknown address"):
        Analyzer.restore(blob(address_ids=parts["address_ids"] + 1000))


@pytest.mark.slow
@pytest.mark.parametrize("size", [97, 65536])
def test_batches_on_the_corpus(size):
    checked = 0
    for path, cap in captures(LAB + PUBLIC):
        got, an = fed(cap, size)
        assert got.equals(cap.tcp), path
        assert an.late_packets == 0, path
        checked += cap.tcp["stream"].is_not_null().sum()
    assert checked > 100_000


@pytest.mark.slow
def test_single_frames_and_restores_on_the_lab_and_a_sample():
    """Batches of one frame (a few ms of Polars each: the lab's 18k frames and every
    sixth public capture under 3000 frames), and a restore between batches of 97."""
    checked = 0
    for path, cap in captures(LAB + PUBLIC[::6]):
        if path in LAB or cap.packets.height < 3000:
            got, _ = fed(cap, 1)
            assert got.equals(cap.tcp), path
            checked += 1
        got, _ = fed(cap, 97, restore_between=True)
        assert got.equals(cap.tcp), path
    assert checked > 30


@pytest.mark.slow
def test_scan_batches_without_layers():
    """scan() has no layer table: equal wherever no ICMP error quotes a TCP header."""
    checked = 0
    for path, cap in captures(LAB + PUBLIC[::3]):
        quoted = cap.layers.filter(pl.col("quoted") & (pl.col("kind") == "tcp")).height
        if quoted or cap.packets.height == 0:
            continue
        an = Analyzer()
        got = pl.concat([an.feed(b) for b in tcpsift.scan(path).collect_batches(chunk_size=997)])
        assert got.equals(cap.tcp), path
        checked += 1
    assert checked > 20


@pytest.mark.slow
def test_eviction_keeps_stream_numbers():
    """Evicting as early as possible (grace 0): stream numbers stay tshark's (tombstones);
    the other columns differ only on captures where late packets were counted."""
    late_captures = 0
    for path, cap in captures(LAB + PUBLIC):
        got, an = fed(cap, 4096, Analyzer(grace=0, remember=None))
        assert got["stream"].equals(cap.tcp["stream"]), path
        if an.late_packets:
            late_captures += 1
        else:
            assert got.equals(cap.tcp), path
    assert late_captures < 20


@pytest.mark.slow
def test_idle_frees_conversations_that_never_end():
    """A SYN scan's half-open attempts never end: `idle` frees them; the stream numbers
    stay tshark's, and other columns differ only where late packets are counted."""
    paths = [p for p in PUBLIC if p.name == "many-connections-synscan.pcap"]
    if not paths:
        pytest.skip("many-connections-synscan.pcap not in the corpus")
    cap = tcpsift.read(paths[0])
    kept, _ = fed(cap, 97, Analyzer())
    got, an = fed(cap, 97, Analyzer(idle=0.5, remember=None))
    assert kept.equals(cap.tcp)
    assert got["stream"].equals(cap.tcp["stream"])
    assert an.sizes()["conversations"] < 10 < an.streams
    differ = got.with_row_index().join(cap.tcp.with_row_index(), on="index").filter(
        pl.col("analysis").ne_missing(pl.col("analysis_right")))
    assert differ.height <= an.late_packets


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", ["port-reuse-multiple-synack.pcapng",
                                  "rst-inject-port-reuse.pcap", "fin-rst-close.pcap"])
def test_tombstones_against_tshark(name):
    """Where eviction acts (a SYN on a freed conversation's ports, a late packet) the
    stream numbers and the reused-ports verdicts are tshark's."""
    paths = [p for p in PUBLIC if p.name == name]
    if not paths:
        pytest.skip(f"{name} not in the corpus")
    cap = tcpsift.read(paths[0])
    got, an = fed(cap, 1, Analyzer(grace=0, remember=None))

    def tshark(*args):
        out = subprocess.run(["tshark", "-r", str(paths[0]), *args, "-T", "fields",
                              "-e", "frame.number", "-e", "tcp.stream"],
                             capture_output=True, text=True, check=True).stdout
        return {int(f): int(s) for f, s in (line.split("\t") for line in out.splitlines())
                if s}

    ours = dict(zip(got["frame"].to_list(), got["stream"].to_list()))
    assert {f: s for f, s in ours.items() if s is not None} == tshark()
    reused = set(got.filter(tcpsift.tcp.verdict("reused_ports"))["frame"].to_list())
    assert reused == set(tshark("-Y", "tcp.analysis.reused_ports"))
