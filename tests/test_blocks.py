"""Files are read in blocks through one buffer: a record cut by a block's end must be
decoded as if the file had been read whole, and a fault found at the same offset."""
from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import pytest

import tcpsift
from tcpsift.capture import blocks
from tcpsift.capture import capture as capmod
from tcpsift.capture import source as srcmod
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
