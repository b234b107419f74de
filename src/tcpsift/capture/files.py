"""What `tcpsift.read` and `tcpsift info` share about capture files: the list of paths
and the policy for bad ones, per-file record totals, link-type names. NumPy only."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from tcpsift.decode._decode import SUPPORTED_LINKTYPES
from tcpsift.errors import CaptureError

LINKTYPE_NAMES = {
    0: "NULL", 1: "ETHERNET", 9: "PPP", 10: "FDDI", 12: "RAW", 14: "RAW", 50: "PPP_HDLC",
    101: "RAW", 104: "C_HDLC", 105: "IEEE802_11", 107: "FRELAY", 108: "LOOP",
    113: "LINUX_SLL", 127: "IEEE802_11_RADIOTAP", 129: "ARCNET_LINUX", 192: "PPI",
    227: "CAN_SOCKETCAN", 228: "IPV4", 229: "IPV6", 230: "IEEE802_15_4_NOFCS",
    231: "DBUS", 239: "NFLOG", 242: "IPOIB", 253: "NETLINK", 258: "PKTAP",
    271: "VSOCK", 276: "LINUX_SLL2", 0xFFFF: "(custom block)",
}


def linktype_name(lt: int) -> str:
    return LINKTYPE_NAMES.get(lt, f"LINKTYPE_{lt}")


def each_file(paths: list[str], read_one: Callable[[str], object]):
    """read_one(path) for each file, with tcpsift's policy for files that are not captures
    (each_file_in_turn). Returns (results of the files that were read, warnings,
    complete)."""
    warnings: list[str] = []
    results = list(each_file_in_turn(paths, lambda path: [read_one(path)], warnings))
    return results, warnings, not warnings


def each_file_in_turn(paths: list[str], read_one: Callable[[str], Iterable],
                      warnings: list[str]) -> Iterator:
    """What read_one(path) yields, for each file in turn, with tcpsift's policy for files
    that are not captures: a single such file raises CaptureError; among several, it
    becomes a warning (appended to `warnings`; the capture is then incomplete), and only
    when none can be read does it raise. (A walk raises CaptureError before it yields
    anything: a file is a capture or not from its first bytes.)"""
    read = 0
    for path in paths:
        try:
            yield from read_one(path)
        except CaptureError as e:
            if len(paths) == 1:
                raise
            warnings.append(str(e))
            continue
        read += 1
    if not read:
        raise CaptureError(paths[0], "none of the files could be read")


class RecordStats:
    """Totals over a file's records, accumulated chunk by chunk."""

    def __init__(self):
        self.packets = self.bytes = self.wire_bytes = 0
        self.first_ns = self.last_ns = None
        self.linktypes: dict[int, int] = {}

    def add(self, rec: dict) -> None:
        self.packets += len(rec["offset"])
        self.bytes += int(rec["cap_len"].sum(dtype=np.uint64))
        self.wire_bytes += int(rec["len"].sum(dtype=np.uint64))
        # (without copies in the common case: every frame has a time, one link type)
        ts = rec["ts_ns"]
        if not rec["has_ts"].all():
            ts = ts[rec["has_ts"]]
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
            self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)
        linktypes = rec["linktype"]
        if len(linktypes) and linktypes.min() == linktypes.max():
            counts = [(linktypes[0], len(linktypes))]
        else:
            counts = list(zip(*np.unique(linktypes, return_counts=True)))
        for lt, cnt in counts:
            self.linktypes[int(lt)] = self.linktypes.get(int(lt), 0) + int(cnt)

    def unsupported_warnings(self, path: str) -> list[str]:
        return [f"{path}: {cnt} frames of link type {lt} ({linktype_name(lt)}) are not "
                f"decoded beyond the frame"
                for lt, cnt in sorted(self.linktypes.items())
                if lt not in SUPPORTED_LINKTYPES and lt != 0xFFFF]

    def describe(self, info: dict, warnings: list[str], complete: bool) -> dict:
        """The per-file facts `Capture.info` and `tcpsift info` report."""
        out = dict(info)
        lts = sorted({int(i["linktype"]) for i in info["interfaces"]})
        out.update({
            "packets": self.packets, "bytes": self.bytes, "wire_bytes": self.wire_bytes,
            "first_ns": self.first_ns, "last_ns": self.last_ns,
            "duration_ns": None if self.first_ns is None else self.last_ns - self.first_ns,
            "linktypes": [{"linktype": lt, "name": linktype_name(lt),
                           "decoded": lt in SUPPORTED_LINKTYPES} for lt in lts],
            "warnings": list(warnings), "complete": complete,
        })
        return out


def merge_keys(ts: np.ndarray, known: np.ndarray, before=None) -> np.ndarray:
    """The key of each frame of one file (in file order) by which several files merge:
    the greatest timestamp up to and including it in its file (`before`: the greatest
    of the file's earlier frames, if any). Files merge as mergecap merges them: it
    takes the frame at the head of whichever file has the earliest one (the last such
    file on a tie: Wireshark 4.0's merge.c compares with <=), and never reorders a
    file's own frames. That order is the files' frames sorted by this key, then by
    file (the later first), then by position in the file. (A frame without a
    timestamp, SPB or custom block, so stays right after the frame before it.)"""
    keys = np.where(known, ts, np.iinfo(np.int64).min)
    if len(keys) and before is not None:
        keys[0] = max(int(keys[0]), before)
    return np.maximum.accumulate(keys)


def _greatest_key(path: str, first_only: bool = False) -> int | None:
    """The greatest merge key of the file's frames (with `first_only`, the first
    frame's key, reading one small block); None for a file without frames or that is
    not a capture. Walks record headers only (no decoding)."""
    from tcpsift.capture.reader import SourceWalk
    from tcpsift.capture.source import open_source
    from tcpsift.decode import _decode

    try:
        walk = SourceWalk(open_source(path), block=1 << 16 if first_only else None)
        before = None
        for rec, _ in walk.chunks(_decode.AddressTable(), _decode.LayerBuffer(),
                                  _decode.U32Buffer(), 0, 1 if first_only else 1 << 16,
                                  reuse=1, decode=False):
            if len(rec["ts_ns"]):
                before = int(merge_keys(rec["ts_ns"], rec["has_ts"], before)[-1])
                if first_only:
                    walk.blocks.close()
                    break
        return before
    except CaptureError:
        return None


def in_merge_order(paths: list[str]) -> bool:
    """Whether the frames of `paths`, one file after the other, are already in the
    order several files merge in (merge_keys): each file's first frame comes after
    every frame of the files before it (a tie goes to the later file), as a ring
    buffer's files given in order do. Then they can be streamed one after the other.
    The first frames are read first (files that overlap are found without reading
    them whole); then every file but the last is walked, record headers only. A file
    without frames, or that is not a capture, does not count: both ways of reading
    several files skip the latter with a warning (each_file)."""
    from tcpsift.capture.source import is_stream
    if any(map(is_stream, paths)):  # standard input, a FIFO: read once, merged, not checked
        return False
    keys = [(p, _greatest_key(p, first_only=True)) for p in paths]
    firsts = [(p, k) for p, k in keys if k is not None]
    if any(b <= a for (_, a), (_, b) in zip(firsts, firsts[1:])):
        return False
    last: int | None = None         # the greatest key of the files so far
    for i, (path, first) in enumerate(firsts):
        if last is not None and first <= last:
            return False
        if i < len(firsts) - 1:     # (the last file's own order does not matter)
            greatest = _greatest_key(path)
            if greatest is not None:
                last = greatest if last is None else max(last, greatest)
    return True
