"""Several files given together are one capture merged by time. When the files are
already in that order (a ring buffer's files, in order), `tcpsift fields` prints them
one after the other, chunk by chunk; otherwise it merges whole tables. Either way the
text must be what the capture printed whole prints: frame numbers and the TCP analysis
go on across the files (and the whole file's text is held equal to tshark's by the
conformance suite)."""
from __future__ import annotations

import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpsift.capture.files import in_merge_order
from tcpsift.cli.main import cli
from tcpsift.textstream import fields as streamed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.corpus import SAMPLE, SHARED  # noqa: E402

LAB = sorted((SHARED / "lab").rglob("*.pcap")) if (SHARED / "lab").is_dir() else []
CAPTURES = [SAMPLE, *LAB[:3]]
FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "tcp.srcport", "tcp.stream",
          "tcp.seq", "tcp.ack", "tcp.analysis.retransmission", "tcp.analysis.ack_rtt",
          "tcp.analysis.bytes_in_flight", "tcp.time_relative", "frame.time_delta",
          "eth.src"]
TABLE_FIELDS = ["frame.number", "frame.interface_id", "vlan.id", "tcp.options.sack_le",
                "tcp.stream", "tcp.analysis.duplicate_ack", "frame.time_relative",
                "frame.time_delta_displayed"]


def _split(path: Path, out_dir: Path, parts: int) -> list[Path]:
    """The classic pcap `path` cut into `parts` files of consecutive records, each with
    the file header: a ring buffer of it."""
    data = path.read_bytes()
    header, endian = data[:24], "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    records, off = [], 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, off + 8)[0]
        records.append(data[off:off + 16 + caplen])
        off += 16 + caplen
    cut = [len(records) * i // parts for i in range(parts + 1)]
    paths = []
    for i, (a, b) in enumerate(zip(cut, cut[1:])):
        p = out_dir / f"{path.stem}_{i:05d}.pcap"
        p.write_bytes(header + b"".join(records[a:b]))
        paths.append(p)
    return paths


def _fields(paths, names, *extra) -> tuple[int, str]:
    args = ["fields", *map(str, paths), *[a for n in names for a in ("-e", n)], *extra]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("names", [FIELDS, pytest.param(TABLE_FIELDS, marks=pytest.mark.slow)],
                         ids=["fast", "table"])
def test_ring_buffer_prints_what_the_whole_capture_prints(tmp_path, monkeypatch, path, names):
    monkeypatch.setattr(streamed, "CHUNK", 97)
    parts = _split(path, tmp_path, 4)
    assert in_merge_order([str(p) for p in parts])
    whole = _fields([path], names)
    assert whole[0] == 0
    assert _fields(parts, names) == whole
    # with a filter too
    assert _fields(parts, names, "-Y", "tcp.len > 0") == _fields([path], names, "-Y",
                                                                 "tcp.len > 0")


def test_files_out_of_order_are_merged_by_time(tmp_path, monkeypatch):
    """Given last file first, the files are not in merge order: they are merged by time
    (not printed one after the other), which puts the frames back in time order."""
    monkeypatch.setattr(streamed, "CHUNK", 50)
    parts = _split(SAMPLE, tmp_path, 3)
    shuffled = [parts[2], parts[0], parts[1]]
    assert not in_merge_order([str(p) for p in shuffled])
    assert _fields(shuffled, FIELDS) == _fields([SAMPLE], FIELDS)
    assert _fields(shuffled, TABLE_FIELDS) == _fields([SAMPLE], TABLE_FIELDS)


def test_in_merge_order_follows_the_merge_keys(tmp_path):
    """Overlapping files are not in order; a file whose own timestamps go back is (the
    merge never reorders a file's frames), but the next file must start after its
    greatest time (on a tie mergecap takes the later file's frame first)."""
    from support import capwriter as cw

    def capture(name, times):
        p = tmp_path / name
        frame = cw.eth_ipv4_tcp(b"x")
        p.write_bytes(cw.pcap_file([cw.Record(t * 1000, frame) for t in times]))
        return str(p)

    a, b = capture("a.pcap", [1, 2, 3]), capture("b.pcap", [4, 4, 5])
    c, back = capture("c.pcap", [2, 6]), capture("back.pcap", [7, 6])
    assert in_merge_order([a, b])
    assert not in_merge_order([b, a])
    assert not in_merge_order([a, c])
    assert not in_merge_order([a, capture("tie.pcap", [3, 4])])
    assert in_merge_order([back])
    assert in_merge_order([back, capture("d.pcap", [8, 9])])
    assert not in_merge_order([back, capture("e.pcap", [7, 9])])


def test_in_merge_order_reads_files_whole_only_when_it_must(tmp_path, monkeypatch):
    """First frames out of order need no whole file; the last file is never walked
    whole (its own order does not matter)."""
    from support import capwriter as cw

    from tcpsift.capture import files

    def capture(name, times):
        p = tmp_path / name
        p.write_bytes(cw.pcap_file([cw.Record(t * 1000, cw.eth_ipv4_tcp(b"x")) for t in times]))
        return str(p)

    a, b, c = capture("a.pcap", [1, 2]), capture("b.pcap", [3, 9]), capture("c.pcap", [10, 4])
    whole = []
    greatest = files._greatest_key
    monkeypatch.setattr(files, "_greatest_key", lambda p, first_only=False: (
        whole.append(p) if not first_only else None) or greatest(p, first_only))
    assert not in_merge_order([b, a])
    assert whole == []
    assert in_merge_order([a, b, c])
    assert whole == [a, b]
    assert in_merge_order([a, str(tmp_path / "missing.pcap"), b])    # (skipped, as read skips it)


@pytest.mark.parametrize("names", [["frame.number"], ["frame.number", "vlan.id"]])
@pytest.mark.parametrize("in_order", [True, False], ids=["in-order", "interleaved"])
def test_a_bad_file_among_ring_buffer_files_is_a_warning(tmp_path, names, in_order):
    """As tcpsift.read does: the others are printed (one after the other, or merged),
    the bad one named in a warning, exit code 1, the same text and warnings as the
    merged tables give."""
    import tcpsift
    from tcpsift.capture.modes import describe

    parts = _split(SAMPLE, tmp_path, 2)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    files = [parts[0], bad, parts[1]] if in_order else [parts[1], bad, parts[0]]
    result = CliRunner().invoke(cli, ["fields", *map(str, files),
                                      *[a for n in names for a in ("-e", n)]])
    assert result.exit_code == 1
    assert result.stdout == _fields([SAMPLE], names)[1]
    expected = tcpsift.read(list(map(str, files))).warnings
    mode_line = f"tcpsift: {describe(len(files), 'merge')}"
    assert result.stderr.splitlines() == [mode_line] + [f"tcpsift: warning: {w}" for w in expected]
    assert len(expected) == 1 and str(bad) in expected[0]


@pytest.mark.skipif(not shutil.which("mergecap") or not shutil.which("tshark"),
                    reason="mergecap and tshark not installed")
@pytest.mark.parametrize("chunk", [3, 7, 1 << 16])
def test_merged_files_are_in_mergecap_order(tmp_path, monkeypatch, chunk):
    """Files whose timestamps interleave, tie and go back within a file: tcpsift merges
    them as mergecap does (the earliest head frame first, the later file on a tie, a
    file's own frames never reordered), so its text is tshark's on mergecap's output;
    also when the streamed merge reads a few frames of each file at a time."""
    from support import capwriter as cw

    monkeypatch.setattr(streamed, "CHUNK", chunk)

    rng = random.Random(5)
    files, ident = [], 0
    for k in range(3):
        times, t = [], 1_700_000_000_000_000_000
        for _ in range(60):
            t += rng.choice([-3, 1, 2, 5, 0]) * 1000    # microseconds, some backwards
            times.append(t)
        records = []
        for t in times:
            ident += 1
            records.append(cw.Record(t, cw.eth_ipv4_tcp(b"x", ip_ident=ident)))
        path = tmp_path / f"part{k}.pcap"
        path.write_bytes(cw.pcap_file(records))
        files.append(path)
    merged = tmp_path / "merged.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(merged), *map(str, files)],
                   check=True)
    # (frame.time_delta: negative where the merge goes back in time)
    names = ["frame.number", "frame.time_epoch", "ip.id", "frame.time_relative",
             "frame.time_delta"]
    tshark = subprocess.run(["tshark", "-r", str(merged), "-T", "fields",
                             *[a for n in names for a in ("-e", n)]],
                            capture_output=True, text=True, check=True).stdout
    assert not in_merge_order([str(p) for p in files])
    assert _fields(files, names) == (0, tshark)


def _deal(path: Path, out_dir: Path, parts: int, seed: int) -> list[Path]:
    """The classic pcap `path` dealt into `parts` files at random (each record to one
    file, in order): files whose frames interleave in time, as two capture points'."""
    data = path.read_bytes()
    header, endian = data[:24], "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    rng = random.Random(seed)
    records: list[list[bytes]] = [[] for _ in range(parts)]
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, off + 8)[0]
        records[rng.randrange(parts)].append(data[off:off + 16 + caplen])
        off += 16 + caplen
    paths = []
    for i, recs in enumerate(records):
        p = out_dir / f"{path.stem}_dealt{i}.pcap"
        p.write_bytes(header + b"".join(recs))
        paths.append(p)
    return paths


def _whole_tables(paths, names, flt=None) -> str:
    """What the merged whole tables print (tcpsift.read of all the files at once)."""
    import io

    import tcpsift
    from tcpsift.fields import write
    from tcpsift.fields.filter import compile_filter

    cap = tcpsift.read([str(p) for p in paths])
    out = io.BytesIO()
    write(cap, names, out, compile_filter(flt)(cap) if flt else None)
    return out.getvalue().decode()


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("names", [FIELDS, pytest.param(TABLE_FIELDS, marks=pytest.mark.slow)],
                         ids=["fast", "table"])
@pytest.mark.parametrize("chunk", [97, 1 << 16])
def test_interleaved_files_stream_as_the_merged_tables(tmp_path, monkeypatch, path, names,
                                                       chunk):
    """Files whose frames interleave are merged chunk by chunk as they are read (not as
    whole tables): the text is what the merged whole tables print (held equal to
    tshark on mergecap's output below and by the conformance suite), with and without
    a filter, for any chunk size."""
    monkeypatch.setattr(streamed, "CHUNK", chunk)
    parts = _deal(path, tmp_path, 3, seed=len(path.name))
    assert not in_merge_order([str(p) for p in parts])
    assert _fields(parts, names) == (0, _whole_tables(parts, names))
    assert _fields(parts, names, "-Y", "tcp.len > 0") == (
        0, _whole_tables(parts, names, "tcp.len > 0"))


@pytest.mark.skipif(not shutil.which("mergecap") or not shutil.which("tshark"),
                    reason="mergecap and tshark not installed")
@pytest.mark.parametrize("path", CAPTURES[:2], ids=lambda p: p.name)
def test_interleaved_files_print_what_tshark_prints_on_mergecap_output(tmp_path, monkeypatch,
                                                                      path):
    """The streamed merge against outside truth: tshark on mergecap's merge of the same
    files, with the TCP analysis fields (which depend on the merged order)."""
    monkeypatch.setattr(streamed, "CHUNK", 101)
    parts = _deal(path, tmp_path, 3, seed=7)
    merged = tmp_path / "merged.pcap"
    subprocess.run(["mergecap", "-F", "nsecpcap", "-w", str(merged), *map(str, parts)],
                   check=True)
    tshark = subprocess.run(["tshark", "-r", str(merged), "-T", "fields",
                             *[a for n in FIELDS for a in ("-e", n)]],
                            capture_output=True, text=True, check=True).stdout
    assert _fields(parts, FIELDS) == (0, tshark)
