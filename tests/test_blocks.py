"""Files are read in blocks through one buffer: a record cut by a block's end must be
decoded as if the file had been read whole, and a fault found at the same offset."""
from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tcpsift
from tcpsift.capture import blocks, reader, table
from tcpsift.capture import capture as capmod
from tcpsift.capture import source as srcmod
from tcpsift.capture.reader import SourceWalk
from tcpsift.decode import _decode
from tcpsift.errors import CaptureError

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, capture_files  # noqa: E402

FILES = capture_files("captures/public", "captures/malformed")


def _read(path):
    try:
        cap = tcpsift.read(path)
    except CaptureError as e:
        return str(e)
    return cap


@pytest.fixture(scope="module")
def whole():
    return {p: _read(p) for p in FILES}


@pytest.mark.slow
@pytest.mark.parametrize("block,buffers,head", [(1, 1, None), (61, 4, 16), (1024, 2, 24),
                                                (4099, 4, None)])
def test_small_blocks_read_like_one_block(monkeypatch, whole, block, buffers, head):
    """`head` small: records are carried over by joining blocks instead of in the
    room before the next block. read()'s table-building thread reads blocks ahead of
    the decoding thread (`buffers` - 1 at most)."""
    monkeypatch.setattr(srcmod, "BLOCK_SIZE", block)
    monkeypatch.setattr(blocks, "BUFFERS", buffers)
    if head is not None:
        monkeypatch.setattr(blocks, "HEAD", head)
    monkeypatch.setattr(capmod, "CHUNK", 53)
    for path, expect in whole.items():
        got = _read(path)
        if isinstance(expect, str):
            assert got == expect, path
            continue
        assert not isinstance(got, str), f"{path}: {got}"
        assert got.packets.equals(expect.packets), path
        assert got.layers.equals(expect.layers), path
        assert got.warnings == expect.warnings, path
        assert got.complete == expect.complete, path


def test_block_starts_on_a_page_boundary():
    """The kernel copies from the page cache fastest into a page-aligned destination."""
    buf = blocks._new_buffer(blocks.HEAD + 4096)
    block = np.frombuffer(buf, np.uint8)[blocks.HEAD:]
    assert block.ctypes.data % 4096 == 0


@pytest.mark.slow
def test_buffers_fall_back_to_bytearrays(monkeypatch, whole):
    """A process that may map no more memory reads its blocks into bytearrays."""
    def refuse(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(blocks.mmap, "mmap", refuse)
    monkeypatch.setattr(srcmod, "BLOCK_SIZE", 1024)
    for path, expect in list(whole.items())[:40]:
        got = _read(path)
        if isinstance(expect, str):
            assert got == expect, path
            continue
        assert got.packets.equals(expect.packets), path
        assert got.warnings == expect.warnings, path


def test_frame_bytes_come_from_the_file():
    path = SAMPLE
    cap = tcpsift.read(path)
    data = path.read_bytes()
    for row in cap.packets.head(50).iter_rows(named=True):
        start = row["file_offset"]
        assert cap.frame_bytes(row["frame"]) == data[start:start + row["cap_len"]]


@pytest.mark.parametrize("block", [7, 64, 1000, 4096])
def test_blocks_read_ahead_by_a_helper_thread_join_up_to_the_file(block):
    """A thread calling help() all the time reads blocks ahead of the consumer; the
    views the consumer walks (with records carried over at random points and blocks
    joined for long ones) still spell the file."""
    data = SAMPLE.read_bytes()
    src = srcmod.open_source(str(SAMPLE))
    blk = src.blocks(block)
    done = threading.Event()
    helped = []

    def helper():
        while not done.is_set():
            helped.append(blk.help())

    thread = threading.Thread(target=helper)
    thread.start()
    rng = random.Random(block)
    got = bytearray()
    try:
        assert blk.next()
        while True:
            view = blk.view()
            assert bytes(view) == data[blk.base:blk.base + len(view)]
            keep = rng.randrange(len(view) + 1)
            got += view[:keep]
            del view
            if not blk.next(keep, need=rng.choice([0, 0, 3 * block])):
                got += blk.view()[keep:]     # the data had ended: the view is unchanged
                break
    finally:
        done.set()
        thread.join()
        blk.close()
    assert bytes(got) == data
    assert any(helped)
    assert blk.help() is False          # closed: nothing more is read


def _walk_all(path, helper: bool):
    """Every chunk's record and packet arrays, the address texts, layer rows and SACK
    edges of one walk; with a thread calling help() all along if `helper`."""
    walk = SourceWalk(srcmod.open_source(str(path)), reassemble=True)
    walk._helped = helper
    addrs, layers, sacks = _decode.AddressTable(), _decode.LayerBuffer(), _decode.U32Buffer()
    done = threading.Event()
    thread = threading.Thread(target=lambda: [walk.help() or time.sleep(0) for _ in iter(
        done.is_set, True)], name="helper")
    if helper:
        thread.start()
    chunks = []
    try:
        for rec, pkt in walk.chunks(addrs, layers, sacks, 0, 50):
            chunks.append({k: v.copy() for k, v in (rec | pkt).items()})
    finally:
        done.set()
        if helper:
            thread.join()
    return chunks, addrs.texts(), layers.to_numpy(), sacks.to_numpy(), walk.warnings


@pytest.mark.slow
@pytest.mark.parametrize("block", [4099, 1 << 16])
def test_blocks_decoded_in_two_parts_by_two_threads_equal_one_thread(monkeypatch, block):
    """The helper decodes the end of each block with addresses, layer rows and SACK
    edges of its own; merged, they are what one thread decodes (address ids included)."""
    monkeypatch.setattr(srcmod, "BLOCK_SIZE", block)
    monkeypatch.setattr(reader, "SPLIT_MIN", 2)
    helper_parts = []
    run = SourceWalk._run

    def counted_run(self, part):
        if threading.current_thread().name == "helper":
            helper_parts.append(part.n)
        run(self, part)

    monkeypatch.setattr(SourceWalk, "_run", counted_run)
    for path in FILES:
        try:
            one = _walk_all(path, helper=False)
        except CaptureError:
            continue
        two = _walk_all(path, helper=True)
        assert len(one[0]) == len(two[0]), path
        for a, b in zip(one[0], two[0]):
            present = a["present"]
            for name in a:
                if name in ("src", "dst"):      # ids only where the frame has addresses
                    keep = (present & _decode.PRESENCE["ip"]) != 0
                    assert np.array_equal(a[name][keep], b[name][keep]), (path, name)
                elif name in ("outer_src", "outer_dst"):
                    keep = (present & _decode.PRESENCE["outer"]) != 0
                    assert np.array_equal(a[name][keep], b[name][keep]), (path, name)
                else:
                    assert np.array_equal(a[name], b[name]), (path, name)
        assert one[1] == two[1], path
        assert np.array_equal(one[2], two[2]), path
        assert np.array_equal(one[3], two[3]), path
        assert one[4] == two[4], path
    assert helper_parts, "the helper thread decoded no part"


def test_a_consumer_whose_block_a_helper_is_reading_reads_the_next_one_meanwhile():
    data = SAMPLE.read_bytes()
    block = 1000
    with open(SAMPLE, "rb") as fh:
        filler = blocks._Filler(fh.fileno(), block)
        release = threading.Event()
        started = threading.Event()
        filled_by = {}
        fill = filler._fill

        def slow_fill(index, buf):
            filled_by[index] = threading.current_thread().name
            if index == 0:
                started.set()
                release.wait(5)         # the helper's read of block 0 takes long
            return fill(index, buf)

        filler._fill = slow_fill
        helper = threading.Thread(target=filler.help, name="helper")
        helper.start()
        assert started.wait(5)
        threading.Timer(0.2, release.set).start()
        got = []
        for _ in range(3):
            buf, n, eof = filler.take()
            got.append(bytes(buf[blocks.HEAD:blocks.HEAD + n]))
            filler.give(buf)
        helper.join()
        filler.close()
    assert got == [data[i * block:(i + 1) * block] for i in range(3)]
    me = threading.current_thread().name
    assert filled_by[0] == "helper" and filled_by[1] == me, filled_by


@pytest.mark.slow
def test_columns_kept_as_constants_equal_arrays(monkeypatch, whole):
    """A chunk's column that is null in every row, or one value in every row, is kept
    as a constant (Polars materializes it when it is read): the table must be the one
    built with every column an array, chunk boundaries anywhere (53-frame chunks make
    many such chunks, 262144-frame chunks few)."""
    multi = [[str(p) for p in sorted(Path(FILES[0]).parent.glob("*.pcap*"))[:3]]]
    for chunk in (53, capmod.CHUNK):
        monkeypatch.setattr(capmod, "CHUNK", chunk)
        for path in list(whole) + multi:
            monkeypatch.setattr(table, "CONSTANT_COLUMNS", True)
            got = _read(path)
            if isinstance(got, str):
                continue
            monkeypatch.setattr(table, "CONSTANT_COLUMNS", False)
            plain = _read(path)
            assert got.packets.schema == plain.packets.schema, path
            assert got.packets.equals(plain.packets), (path, chunk)
            for name in ("mss", "vlan_id", "status", "iface", "file_id", "ip_version"):
                assert got.packets[name].to_list() == plain.packets[name].to_list(), path
