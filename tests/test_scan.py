"""tcpsift.scan(): the packet table as a LazyFrame. read() is exact against tshark
(tests/conformance), so the truth here is read()'s table: a scan collected whole, a
projection, a time or frame condition, a row limit and batches give read()'s rows,
while the frames a time or frame condition rules out are not decoded at all."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import polars as pl
import pytest

import tcpsift
from tcpsift.capture import reader
from tcpsift.capture import source as source_module

sys.path.insert(0, str(Path(__file__).parent))
from support.capreader import read_frames  # noqa: E402
from support.capwriter import Record, pcap_file  # noqa: E402
from support.corpus import SAMPLE, SHARED, capture_files  # noqa: E402

LAB = capture_files("lab/captures")
PUBLIC = capture_files("captures/public")
# every 6th public capture, and every compressed one (their blocks come from Inflate)
PUBLIC_SAMPLE = sorted({*PUBLIC[::6], *(p for p in PUBLIC if p.suffix in (".gz", ".zst"))})
MALFORMED = SHARED / "captures" / "malformed"
TWO_POINTS = [SHARED / "lab" / "captures" / f"twopoint-lossy-{side}.pcap" for side in "ab"]
SEED_LIKE = SHARED / "lab" / "captures" / "seed-like.pcap"
if not SEED_LIKE.exists():     # (a clone without the shared corpus beside it)
    SEED_LIKE = SAMPLE


def _name(path: Path) -> str:
    return path.name


@pytest.fixture
def decoded(monkeypatch):
    """Counts the frames the walk decodes (with 8 KiB blocks, so that a small capture
    has many: a block is what a time condition rules out or not)."""
    monkeypatch.setattr(source_module, "BLOCK_SIZE", 8192)
    count = [0]
    decode = reader.SourceWalk._decode

    def counting(self, view, out, pkt_out, at, n, *args):
        count[0] += n
        return decode(self, view, out, pkt_out, at, n, *args)

    monkeypatch.setattr(reader.SourceWalk, "_decode", counting)
    return count


def _check_whole(path: Path):
    report = tcpsift.ScanReport()
    lf = tcpsift.scan(str(path), report=report)
    cap = tcpsift.read(str(path))
    assert lf.collect_schema() == cap.packets.schema
    assert lf.collect().equals(cap.packets)
    assert (report.warnings, report.complete) == (cap.warnings, cap.complete)


@pytest.mark.parametrize("path", LAB, ids=_name)
def test_collect_equals_read_lab(path):
    _check_whole(path)


@pytest.mark.parametrize("path", PUBLIC_SAMPLE, ids=_name)
def test_collect_equals_read_public(path):
    _check_whole(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(set(PUBLIC) - set(PUBLIC_SAMPLE)), ids=_name)
def test_collect_equals_read_public_rest(path):
    _check_whole(path)


def test_schema_is_the_declared_one():
    assert dict(tcpsift.scan(str(SEED_LIKE)).collect_schema()) == \
        dict(tcpsift.read(str(SEED_LIKE)).packets.schema)
    assert tcpsift.scan(str(SEED_LIKE)).collect_schema().names() == \
        list(tcpsift.schema.PACKET_COLUMN_NAMES)


def _time_window(packets: pl.DataFrame, lo_q: float, hi_q: float) -> pl.Expr:
    lo, hi = (int(packets["ts_ns"].quantile(q)) for q in (lo_q, hi_q))
    return (pl.col("ts_ns") >= lo) & (pl.col("ts_ns") < hi)


@pytest.mark.parametrize("path", LAB, ids=_name)
def test_projection_and_time_filter(path, decoded):
    """3 columns, 10 % of the time: read()'s rows filtered the same way, and most frames
    never decoded."""
    packets = tcpsift.read(str(path)).packets
    everything, decoded[0] = decoded[0], 0
    window = _time_window(packets, 0.45, 0.55)
    query = window & (pl.col("tcp_len") > 0)
    got = tcpsift.scan(str(path)).filter(query).select("frame", "src", "tcp_len").collect()
    assert got.equals(packets.filter(query).select("frame", "src", "tcp_len"))
    assert got.height
    assert decoded[0] < everything / 2


def test_filter_on_the_time_column(decoded):
    """`time` (a Datetime view of ts_ns) compared with datetimes rules out blocks too."""
    packets = tcpsift.read(str(SEED_LIKE)).packets
    everything, decoded[0] = decoded[0], 0
    lo, hi = (packets["time"].quantile(q) for q in (0.6, 0.7))
    query = pl.col("time").is_between(lo, hi)
    got = tcpsift.scan(str(SEED_LIKE)).filter(query).select("time", "sport").collect()
    assert got.equals(packets.filter(query).select("time", "sport"))
    assert got.height and decoded[0] < everything / 2


def test_conditions_that_rule_out_no_block(decoded):
    """An `or` with other columns, and a condition on a column the walk does not know:
    every frame is decoded, the rows are still read()'s."""
    packets = tcpsift.read(str(SEED_LIKE)).packets
    everything, decoded[0] = decoded[0], 0
    for query in (_time_window(packets, 0.4, 0.5) | (pl.col("flags") == "S"),
                  pl.col("dport") == 80, pl.col("ts_ns").is_null() | (pl.col("tcp_len") > 0)):
        decoded[0] = 0
        got = tcpsift.scan(str(SEED_LIKE)).filter(query).collect()
        assert got.equals(packets.filter(query))
        assert decoded[0] == everything


def test_frame_range_stops_reading(decoded):
    packets = tcpsift.read(str(SEED_LIKE)).packets
    everything, decoded[0] = decoded[0], 0
    query = pl.col("frame").is_between(200, 400)
    got = tcpsift.scan(str(SEED_LIKE)).filter(query).select("frame", "dst", "seq").collect()
    assert got.equals(packets.filter(query).select("frame", "dst", "seq"))
    assert decoded[0] < everything / 4
    # a frame that has no time (none here) or comes early: the blocks after are skipped
    query = pl.col("ts_ns").is_null() | (pl.col("frame") < 5)
    assert tcpsift.scan(str(SEED_LIKE)).filter(query).collect().equals(packets.filter(query))


def test_columns_constant_in_every_chunk():
    """Columns a chunk holds as one value (no VLAN, one file, one link type) still have a
    row per frame."""
    columns = ["file_id", "vlan_id", "linktype"]
    assert tcpsift.scan(str(SEED_LIKE)).select(columns).collect().equals(
        tcpsift.read(str(SEED_LIKE)).packets.select(columns))


def test_record_columns_need_no_decoding(decoded):
    columns = ["frame", "ts_ns", "len", "file_offset"]
    got = tcpsift.scan(str(SEED_LIKE)).select(columns).collect()
    assert decoded[0] == 0
    assert got.equals(tcpsift.read(str(SEED_LIKE)).packets.select(columns))


def test_n_rows(decoded):
    packets = tcpsift.read(str(SEED_LIKE)).packets
    everything, decoded[0] = decoded[0], 0
    assert tcpsift.scan(str(SEED_LIKE)).head(50).collect().equals(packets.head(50))
    assert decoded[0] < everything / 4
    query = pl.col("tcp_len") > 1000
    assert tcpsift.scan(str(SEED_LIKE)).filter(query).head(7).collect().equals(
        packets.filter(query).head(7))
    assert tcpsift.scan(str(SEED_LIKE)).head(0).collect().equals(packets.head(0))


def test_batches():
    """One batch per chunk of about Polars' streaming chunk size; together read()'s table."""
    packets = tcpsift.read(str(SEED_LIKE)).packets
    with pl.Config(streaming_chunk_size=500):
        batches = list(tcpsift.scan(str(SEED_LIKE)).collect_batches())
    assert len(batches) == -(-packets.height // 500)
    assert all(b.height <= 500 for b in batches)
    assert pl.concat(batches).equals(packets)
    assert tcpsift.scan(str(SEED_LIKE)).collect(engine="streaming").equals(packets)


def _halves(path: Path, out: Path) -> list[Path]:
    """The capture cut in two files at a frame whose time is later than all before it:
    files in merge order (as a ring buffer's are)."""
    frames = read_frames(path)
    cut = len(frames) // 2
    while frames[cut].ts_ns <= max(f.ts_ns for f in frames[:cut]):
        cut += 1
    files = []
    for k, part in enumerate((frames[:cut], frames[cut:])):
        files.append(out / f"half-{k}.pcap")
        files[-1].write_bytes(pcap_file([Record(f.ts_ns, f.data, f.wire_len) for f in part],
                                        frames[0].linktype, nsec=True))
    return files


def test_several_files_merge(tmp_path):
    """Interleaved files (merged as they are read) and files in merge order (read one
    after the other): read()'s table, with or without a time condition."""
    for files in (TWO_POINTS, _halves(SEED_LIKE, tmp_path)):
        paths = [str(p) for p in files]
        packets = tcpsift.read(paths).packets
        assert tcpsift.scan(paths).collect().equals(packets)
        query = _time_window(packets, 0.3, 0.6) & (pl.col("file_id") == 1)
        assert tcpsift.scan(paths).filter(query).select("frame", "file_frame", "src").collect() \
            .equals(packets.filter(query).select("frame", "file_frame", "src"))
        middle = pl.col("frame").is_between(packets.height // 2, packets.height // 2 + 300)
        assert tcpsift.scan(paths).filter(middle).collect().equals(packets.filter(middle))
        assert tcpsift.scan(paths).head(1234).collect().equals(packets.head(1234))


def test_several_files_concat(tmp_path):
    """One file after the other as given (here the later half first): each file's own
    table, frame numbers going on and file ids the files' places."""
    files = [str(p) for p in reversed(_halves(SEED_LIKE, tmp_path))] + [str(TWO_POINTS[0])]
    parts, before = [], 0
    for file_id, path in enumerate(files):
        own = tcpsift.read(path).packets
        parts.append(own.with_columns(frame=pl.col("frame") + before,
                                      file_id=pl.lit(file_id, dtype=pl.UInt16)))
        before += own.height
    expected = pl.concat(parts)
    assert tcpsift.scan(files, mode="concat").collect().equals(expected)
    query = pl.col("frame").is_between(before - 900, before - 100)
    assert tcpsift.scan(files, mode="concat").filter(query).collect().equals(
        expected.filter(query))
    with pytest.raises(ValueError, match="mode"):
        tcpsift.scan(files, mode="separate")


DAMAGED = ["made/pcap-cut-in-packet-body.pcap", "made/gzip-truncated.pcap.gz",
           "made/pcapng-cut-in-block.pcapng", "made/pcap-caplen-0xffffffff-record-11.pcap"]


@pytest.mark.parametrize("name", DAMAGED)
def test_damaged_file_keeps_the_frames_before_the_fault(name):
    path = str(MALFORMED / name)
    cap = tcpsift.read(path)
    assert not cap.complete and cap.packets.height
    report = tcpsift.ScanReport()
    lf = tcpsift.scan(path, report=report)
    assert lf.collect().equals(cap.packets)
    assert (report.warnings, report.complete) == (cap.warnings, False)
    lf.collect()        # collected again: the same lines, once
    assert report.warnings == cap.warnings


def test_warnings_without_a_report_go_to_the_logger(caplog):
    path = str(MALFORMED / DAMAGED[0])
    with caplog.at_level(logging.WARNING, logger="tcpsift"):
        tcpsift.scan(path).collect()
    assert [r.getMessage() for r in caplog.records if r.name == "tcpsift"] == \
        tcpsift.read(path).warnings


@pytest.mark.parametrize("name", ["made/zero-byte-file.pcap", "made/not-a-capture-text.pcap"])
def test_not_a_capture(name, tmp_path):
    path = str(MALFORMED / name)
    with pytest.raises(tcpsift.CaptureError) as raised:
        tcpsift.read(path)
    lf = tcpsift.scan(path)     # nothing opened until collected
    with pytest.raises(tcpsift.CaptureError) as scanned:
        lf.collect()
    assert str(scanned.value) == str(raised.value)
    # among several files, a warning
    paths = [str(SEED_LIKE), path]
    report = tcpsift.ScanReport()
    assert tcpsift.scan(paths, report=report).collect().equals(tcpsift.read(paths).packets)
    assert not report.complete and report.warnings == tcpsift.read(paths).warnings
