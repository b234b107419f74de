"""Built inputs that try to exhaust the reader (issue 17): each is read within a stated
time and memory (the command runs in a subprocess under RLIMIT_AS and a timeout),
prints what tshark prints where tshark reads it, and says in one line what it
refused or dropped otherwise. Each class has a quick small input and, marked slow,
the issue's size."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support import capwriter as cw  # noqa: E402
from support import hostile  # noqa: E402
from support.bounded import run_bounded, tcpsift_args  # noqa: E402

from tcpsift.decode.reassembly import PendingDatagrams  # noqa: E402

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
FRAGMENT_FIELDS = ["frame.number", "ip.id", "ip.flags.mf", "ip.frag_offset", "udp.srcport",
                   "udp.dstport", "udp.length"]
# The address space a command may reserve (RLIMIT_AS): Polars' allocator and thread
# pools reserve far more than they use; what is used is held to `peak_mb` per test.
MEMORY_MB = 1500


def _e(fields):
    return [a for f in fields for a in ("-e", f)]


def _tshark(path: Path, fields) -> str:
    return subprocess.run([TSHARK, "-r", str(path), "-T", "fields", *_e(fields)],
                          capture_output=True, check=True).stdout.decode()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _fields_like_tshark(path: Path, *, seconds: float, peak_mb: float):
    got = run_bounded(tcpsift_args("fields", path, *_e(FRAGMENT_FIELDS)), seconds=seconds,
                      memory_mb=MEMORY_MB)
    assert got.code == 0 and got.seconds < seconds and got.peak_mb < peak_mb, got.describe()
    assert got.out == _tshark(path, FRAGMENT_FIELDS)
    return got


# ----------------------------------------------------------------------------- IP fragments

@needs_tshark
@pytest.mark.parametrize("n,seconds", [
    (1_000, 5),
    pytest.param(20_000, 8, marks=pytest.mark.slow),     # 1.1 MB; was 46-56 s
])
def test_duplicate_fragments_of_one_datagram_take_linear_time(tmp_path, n, seconds):
    path = _write(tmp_path, "dup.pcap", hostile.duplicate_first_fragments(n))
    _fields_like_tshark(path, seconds=seconds, peak_mb=150)


@needs_tshark
@pytest.mark.parametrize("n,seconds", [
    (1_000, 5),
    pytest.param(60_000, 15, marks=pytest.mark.slow),    # 3.5 MB; was 3.9 GB, 31 s
])
def test_pending_fragments_are_not_zero_filled_to_their_offset(tmp_path, n, seconds):
    path = _write(tmp_path, "far.pcap", hostile.unrelated_far_fragments(n))
    _fields_like_tshark(path, seconds=seconds, peak_mb=200)


@needs_tshark
def test_overlapping_fragments_keep_the_copy_tshark_keeps(tmp_path):
    path = _write(tmp_path, "overlap.pcap", hostile.overlapping_fragments())
    _fields_like_tshark(path, seconds=10, peak_mb=150)


@needs_tshark
@pytest.mark.slow
def test_too_many_pending_datagrams_drop_the_oldest_with_one_warning(tmp_path):
    # more unrelated datagrams than the bound: none of them could complete, so the
    # output is still tshark's, and one line says that some were dropped
    path = _write(tmp_path, "far.pcap", hostile.unrelated_far_fragments(70_000))
    got = _fields_like_tshark(path, seconds=20, peak_mb=250)
    lines = got.err.strip().splitlines()
    assert len(lines) == 1 and "incomplete IP datagrams were dropped" in lines[0], got.err


def _fragment_key(i):
    return (4, i, i, 1, 17)


def test_the_oldest_incomplete_datagram_is_dropped_first():
    pending = PendingDatagrams(max_datagrams=3)
    for i in range(5):
        assert pending.add(_fragment_key(i), 0, b"x" * 8, False) is None
    assert pending.dropped == 2 and len(pending.datagrams) == 3
    # datagram 0 was dropped: its last fragment starts a datagram of its own
    assert pending.add(_fragment_key(0), 8, b"y" * 8, True) is None
    assert pending.add(_fragment_key(4), 8, b"y" * 8, True) == b"x" * 8 + b"y" * 8
    assert "3 incomplete IP datagrams were dropped" in pending.warning()


def test_pending_fragment_bytes_are_bounded():
    pending = PendingDatagrams(max_bytes=1 << 20)
    for i in range(100):
        for offset in range(0, 64_000, 8_000):     # 8 non-duplicate pieces of 8000 bytes
            pending.add(_fragment_key(i), offset, b"z" * 8_000, False)
        assert pending.held <= 1 << 20
    assert pending.dropped > 0


def test_first_copy_wins_and_the_first_last_fragment_sets_the_length():
    pending = PendingDatagrams()
    key = _fragment_key(1)
    assert pending.add(key, 8, b"B" * 16, False) is None
    assert pending.add(key, 8, b"b" * 8, False) is None           # a duplicate: nothing new
    assert pending.add(key, 16, b"L" * 8, True) is None            # the length: 24
    assert pending.add(key, 16, b"l" * 16, True) is None           # a second tail: ignored
    # the lowest offset comes first; at offset 8 the earlier copy
    assert pending.add(key, 0, b"A" * 12, False) == b"A" * 12 + b"B" * 12


# ----------------------------------------------------------------------------- pcapng blocks

def _pcapng_then_zeros(tmp_path: Path, block_length: int) -> Path:
    head = hostile.pcapng_huge_block_head()
    return _write(tmp_path, "head.pcapng", head[:-4] + struct.pack("<I", block_length))


@pytest.mark.parametrize("block_length,command", [
    # over tshark's limit: refused at once
    (0xFFFFFFFC, ["info", "-"]),
    (0xFFFFFFFC, ["fields", "-", "-e", "frame.number"]),
    # under it: read whole (once), then its trailing length is wrong
    (0x07FFFFFC, ["info", "-"]),
    pytest.param(0x07FFFFFC, ["fields", "-", "-e", "frame.number"], marks=pytest.mark.slow),
], ids=["over-info", "over-fields", "under-info", "under-fields"])
def test_a_huge_pcapng_block_on_endless_input_ends_in_one_warning(tmp_path, block_length,
                                                                   command):
    head = _pcapng_then_zeros(tmp_path, block_length)
    args = " ".join(tcpsift_args(*command))
    got = run_bounded(f"cat {head} /dev/zero | {args}", seconds=20, memory_mb=MEMORY_MB)
    assert got.code == 1 and got.peak_mb < 400, got.describe()
    lines = got.err.strip().splitlines()
    assert len(lines) == 1 and "corrupt block at offset 216" in lines[0] \
        and "kept the 2 packets before it" in lines[0], got.err
    if command[0] == "fields" and TSHARK is not None:
        with open(head, "rb") as fh:
            theirs = subprocess.run(f"cat - /dev/zero | head -c 300000000 | {TSHARK} -r - "
                                    f"-T fields -e frame.number", shell=True, stdin=fh,
                                    capture_output=True).stdout.decode()
        assert got.out == theirs


@needs_tshark
@pytest.mark.slow
def test_a_long_block_tshark_skips_is_skipped(tmp_path):
    w = cw.PcapngWriter()
    w.section()
    w.interface(cw.LINKTYPE_ETHERNET)
    w.epb(0, hostile.T0, cw.ether(cw.ipv4(cw.udp(b"x"))))
    w.unknown(0xABCD, bytes(128 << 20))
    w.epb(0, hostile.T0 + 1000, cw.ether(cw.ipv4(cw.udp(b"y"))))
    path = _write(tmp_path, "long.pcapng", w.getvalue())
    got = run_bounded(tcpsift_args("fields", path, "-e", "frame.number", "-e", "ip.src"),
                      seconds=20, memory_mb=MEMORY_MB)
    assert got.code == 0 and got.peak_mb < 400, got.describe()
    assert got.out == _tshark(path, ["frame.number", "ip.src"])


# ----------------------------------------------------------------------------- zstd

def test_zstd_output_per_call_is_bounded():
    from tcpsift.capture.compressed import Inflate
    data = hostile.zstd_pcap_of_zeros(256 << 20)
    pos = 0

    def read(n):
        nonlocal pos
        pos += n
        return data[pos - n:pos]

    stream = Inflate(read, len(data), "zstd")
    total = largest = 0
    while piece := stream._decompress(1 << 21):
        total += len(piece)
        largest = max(largest, len(piece))
    assert total == 24 + (256 << 20) and not stream.warnings
    assert largest <= 32 << 20


@pytest.mark.slow
def test_a_zstd_bomb_is_read_in_bounded_memory(tmp_path):
    zero_bytes = 1 << 30            # 1 GiB of zeros in 33 KB; was 1.15 GB of memory
    path = _write(tmp_path, "zeros.pcap.zst", hostile.zstd_pcap_of_zeros(zero_bytes))
    got = run_bounded(tcpsift_args("info", path), seconds=60, memory_mb=MEMORY_MB)
    assert got.code == 0 and got.peak_mb < 300, got.describe()
    assert f"Number of packets:   {zero_bytes // 16}\n" in got.out


_FRAME_BYTES = ("import sys, tcpsift; c = tcpsift.read(sys.argv[1]); "
                "sys.stdout.write(c.frame_bytes(1).hex())")


@pytest.mark.parametrize("skipped,peak_mb", [
    (16 << 20, 300),
    pytest.param(2 << 30, 400, marks=pytest.mark.slow),     # was 4.3 GB
])
def test_frame_bytes_of_a_compressed_file_do_not_keep_it_whole(tmp_path, skipped, peak_mb):
    import zstandard
    packed = hostile.zstd_frame_after_skipped_blocks(skipped)
    path = _write(tmp_path, "late.pcapng.zst", packed)
    got = run_bounded([sys.executable, "-c", _FRAME_BYTES, str(path)], seconds=60,
                      memory_mb=MEMORY_MB)
    assert got.code == 0 and got.peak_mb < peak_mb, got.describe()
    # the same frame read from the decompressed file (pread)
    plain = tmp_path / "late.pcapng"
    with open(path, "rb") as src, open(plain, "wb") as dst:
        zstandard.ZstdDecompressor().copy_stream(src, dst)
    import tcpsift
    try:
        assert bytes.fromhex(got.out) == tcpsift.read(plain).frame_bytes(1)
    finally:
        plain.unlink()


# ----------------------------------------------------------------------------- valid input

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "captures" / "public"
SMALL_PCAP = PUBLIC / "pcap" / "le-usec-ethernet-http-fin.pcap"
SMALL_PCAPNG = PUBLIC / "pcapng" / "le-two-interfaces-tsresol-ns-and-us.pcapng"
TIME_FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "udp.srcport", "tcp.srcport"]
needs_corpus = pytest.mark.skipif(not SMALL_PCAP.exists() or not SMALL_PCAPNG.exists(),
                                  reason="public capture corpus not found")


@needs_tshark
@needs_corpus
@pytest.mark.parametrize("how,path", [
    # a file header in two pieces
    ("(head -c 10 {f}; sleep 0.3; tail -c +11 {f}) | {tcpsift} -", SMALL_PCAP),
    ("(head -c 10 {f}; sleep 0.3; tail -c +11 {f}) | {tcpsift} -", SMALL_PCAPNG),
    ("{tcpsift} <(cat {f})", SMALL_PCAP),                              # a pipe by its path
], ids=["pcap-header-in-pieces", "pcapng-header-in-pieces", "pipe-path"])
@pytest.mark.slow
def test_streams_that_pause_or_are_not_regular_files_are_read(path, how):
    tcpsift = " ".join(tcpsift_args("fields", *_e(TIME_FIELDS)))
    got = run_bounded(how.format(f=path, tcpsift=tcpsift), seconds=20, memory_mb=MEMORY_MB)
    assert got.code == 0 and got.err == "", got.describe()
    assert got.out == _tshark(path, TIME_FIELDS)


@needs_tshark
@needs_corpus
def test_a_fifo_is_read(tmp_path):
    fifo = tmp_path / "live"
    os.mkfifo(fifo)
    writer = subprocess.Popen(f"cat {SMALL_PCAPNG} > {fifo}", shell=True)
    try:
        got = run_bounded(tcpsift_args("fields", fifo, *_e(TIME_FIELDS)), seconds=20,
                          memory_mb=MEMORY_MB)
    finally:
        writer.kill()
        writer.wait()
    assert got.code == 0, got.describe()
    assert got.out == _tshark(SMALL_PCAPNG, TIME_FIELDS)


@needs_tshark
@needs_corpus
def test_two_pipes_are_merged_like_mergecap(tmp_path):
    # each pipe can be read once: the files are merged as they are read, not first
    # checked for order by reading them ahead
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(SMALL_PCAP), str(SMALL_PCAPNG)],
                   check=True)
    tcpsift = " ".join(tcpsift_args("fields", *_e(TIME_FIELDS)))
    got = run_bounded(f"{tcpsift} <(cat {SMALL_PCAP}) <(cat {SMALL_PCAPNG})", seconds=20,
                      memory_mb=MEMORY_MB)
    assert got.code == 0, got.describe()
    assert got.out == _tshark(merged, TIME_FIELDS)


def _section(w: cw.PcapngWriter, tsresol: int | None = None, version=(1, 0), opts=(),
             first_units: int = 1_700_000_000_123_456_789):
    w.section(version=version)
    w.interface(cw.LINKTYPE_ETHERNET, tsresol=tsresol, opts=opts)
    frame = cw.ether(cw.ipv4(cw.udp(b"x"), proto=cw.IPPROTO_UDP))
    for units in (first_units, 1_234_567, 0):
        w.epb(0, None, frame, units=units)


@needs_tshark
def test_pcapng_that_tshark_reads_is_read_alike(tmp_path):
    # one section per case: resolutions beyond what 64 bits hold, beyond 1 ns, and the
    # version 1.2 some writers used
    w = cw.PcapngWriter()
    for tsresol in (0x13, 0x14, 0x7F, 0xBF, 0xC0, 0xFF):
        _section(w, tsresol)
    _section(w, 9, version=(1, 2))
    # two if_tsresol (10^-3 first, then 10^-9): the first counts
    _section(w, 9, opts=[(cw.IF_TSRESOL, bytes([3]))], first_units=1_700_000_000_123)
    path = _write(tmp_path, "odd.pcapng", w.getvalue())
    got = run_bounded(tcpsift_args("fields", path, *_e(TIME_FIELDS)), seconds=20,
                      memory_mb=MEMORY_MB)
    assert got.code == 0, got.describe()
    assert got.out == _tshark(path, TIME_FIELDS)


@needs_tshark
@pytest.mark.parametrize("version", [(1, 1), (2, 0), (0, 9)])
def test_pcapng_versions_tshark_refuses_are_refused(tmp_path, version):
    import tcpsift
    w = cw.PcapngWriter()
    _section(w, version=version)
    path = _write(tmp_path, "odd.pcapng", w.getvalue())
    assert subprocess.run([TSHARK, "-r", str(path)], capture_output=True).returncode != 0
    with pytest.raises(tcpsift.CaptureError, match="unsupported pcapng version"):
        tcpsift.read(path)


# ----------------------------------------------------------------------------- interfaces

@needs_tshark
@pytest.mark.parametrize("data,bound", [
    (lambda: hostile.many_interfaces(5_000), "4096 in a section"),
    pytest.param(lambda: hostile.many_interfaces(1_000_000), "4096 in a section",
                 marks=pytest.mark.slow),       # 20 MB; was 1.7 GB and 199 MB of JSON
    pytest.param(lambda: hostile.many_sections(70_000), "65536 in a file",
                 marks=pytest.mark.slow),
], ids=["5000-interfaces", "1000000-interfaces", "70000-sections"])
@pytest.mark.slow
def test_interfaces_are_bounded(tmp_path, data, bound):
    path = _write(tmp_path, "ifaces.pcapng", data())
    got = run_bounded(tcpsift_args("info", "--json", path), seconds=30, memory_mb=MEMORY_MB)
    assert got.code == 1 and got.peak_mb < 250 and len(got.out) < 20 << 20, got.describe()
    lines = got.err.strip().splitlines()
    assert len(lines) == 1 and f"past the bound of {bound}" in lines[0], got.err
    fields = run_bounded(tcpsift_args("fields", path, *_e(TIME_FIELDS)), seconds=30,
                         memory_mb=MEMORY_MB)
    assert fields.code == 1 and fields.out == _tshark(path, TIME_FIELDS), fields.describe()


@needs_tshark
@pytest.mark.parametrize("n,peak_mb", [
    (1_000_000, 150),
    pytest.param(8_000_000, 250, marks=pytest.mark.slow),     # 32 MB; was 900 MB
])
@pytest.mark.slow
def test_the_options_of_a_block_are_not_all_kept(tmp_path, n, peak_mb):
    path = _write(tmp_path, "options.pcapng", hostile.interface_of_many_options(n))
    got = run_bounded(tcpsift_args("fields", path, *_e(TIME_FIELDS)), seconds=30,
                      memory_mb=MEMORY_MB)
    assert got.code == 0 and got.peak_mb < peak_mb, got.describe()
    assert got.out == _tshark(path, TIME_FIELDS)
