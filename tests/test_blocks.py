"""Files are read in blocks through one buffer: a record cut by a block's end must be
decoded as if the file had been read whole, and a fault found at the same offset."""
from __future__ import annotations

import sys
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


@pytest.mark.parametrize("block,prefetch,head", [(1, False, None), (61, False, 16),
                                                 (1024, True, 24), (4099, True, None)])
def test_small_blocks_read_like_one_block(monkeypatch, whole, block, prefetch, head):
    """`head` small: records are carried over by joining blocks instead of in the
    room before the next block."""
    monkeypatch.setattr(srcmod, "BLOCK_SIZE", block)
    if prefetch:
        monkeypatch.setattr(blocks, "PREFETCH_MIN_SIZE", 0)
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
