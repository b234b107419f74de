"""Read capture files into decoded arrays: everything before the Polars tables.

`read_files` is what `tcpsift.read` and `tcpsift info` share; it needs NumPy only, so
commands that summarise a capture do not pay for importing Polars.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from tcpsift.capture.reader import FileResult, read_source
from tcpsift.capture.source import open_source
from tcpsift.decode import _decode
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


@dataclass
class DecodedFiles:
    """The decoded arrays of every file that could be read, and what went wrong."""
    results: list[FileResult]
    addresses: object          # _decode.AddressTable shared by all files
    layers: object             # _decode.LayerBuffer shared by all files
    warnings: list[str]
    complete: bool


def read_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> DecodedFiles:
    """Walk and decode each file. Raises CaptureError when a single file (or every
    file) is not a capture; with several files a bad one becomes a warning."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("no capture file given")
    addrs = _decode.AddressTable()
    layers = _decode.LayerBuffer()
    results: list[FileResult] = []
    warnings: list[str] = []
    complete = True
    row = 0
    for p in paths:
        try:
            src = open_source(p)
            res = read_source(src, addrs, layers, row)
        except CaptureError as e:
            if len(paths) == 1:
                raise
            warnings.append(str(e))
            complete = False
            continue
        results.append(res)
        warnings.extend(res.warnings)
        complete &= res.complete
        row += len(res.records["offset"])
    if not results:
        raise CaptureError(paths[0], "none of the files could be read")
    warnings.extend(unsupported_warnings(results))
    return DecodedFiles(results, addrs, layers, warnings, complete)


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
        ts = rec["ts_ns"][rec["has_ts"]]
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
            self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)
        for lt, cnt in zip(*np.unique(rec["linktype"], return_counts=True)):
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


def file_info(res: FileResult) -> dict:
    stats = RecordStats()
    stats.add(res.records)
    return stats.describe(res.info, res.warnings, res.complete)


def unsupported_warnings(results: list[FileResult]) -> list[str]:
    out = []
    for res in results:
        stats = RecordStats()
        stats.add(res.records)
        out += stats.unsupported_warnings(res.source.path)
    return out
