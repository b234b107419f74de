"""`tcpsift.read()` and the Capture it returns."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import polars as pl

from tcpsift.capture.reader import FileResult, _concat, read_source
from tcpsift.capture.source import open_source
from tcpsift.capture.table import layer_table, packet_table
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
class CaptureInfo:
    """What `tcpsift info` reports, per file and in total."""
    files: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"files": self.files}


class Capture:
    """Decoded capture: the packet table, the layer table and access to frame bytes."""

    def __init__(self, results: list[FileResult], packets: pl.DataFrame, layers: pl.DataFrame,
                 info: CaptureInfo, warnings: list[str], complete: bool):
        self._results = results
        self.packets = packets
        self.layers = layers
        self.info = info
        self.warnings = warnings
        self.complete = complete

    def __repr__(self):
        return f"<Capture {len(self.packets)} frames from {len(self._results)} file(s)>"

    def _locate(self, frame: int):
        if not 1 <= frame <= len(self.packets):
            raise IndexError(f"no frame {frame} (the capture has {len(self.packets)})")
        row = self.packets.row(frame - 1, named=True)
        return row, self._results[row["file_id"]].source.data

    def frame_bytes(self, frame: int) -> bytes:
        """The captured bytes of one frame (frame numbers are 1-based)."""
        row, data = self._locate(frame)
        start = row["file_offset"]
        return bytes(data[start:start + row["cap_len"]])

    def payload(self, frame: int) -> bytes:
        """The captured part of the frame's TCP or UDP payload (b"" when it has none)."""
        row, data = self._locate(frame)
        if row["payload_offset"] is None:
            return b""
        start = row["file_offset"] + row["payload_offset"]
        end = row["file_offset"] + row["cap_len"]
        if row["tcp_len"] is not None:
            end = min(end, start + row["tcp_len"])
        elif row["udp_len"] is not None and row["udp_len"] >= 8:
            end = min(end, start + row["udp_len"] - 8)
        return bytes(data[start:end])


def _file_info(res: FileResult, packets: pl.DataFrame | None) -> dict:
    info = dict(res.info)
    rec = res.records
    n = len(rec["offset"])
    ts = rec["ts_ns"][rec["has_ts"]]
    lts = sorted({int(i["linktype"]) for i in info["interfaces"]})
    info.update({
        "packets": n,
        "bytes": int(rec["cap_len"].sum(dtype=np.uint64)),
        "wire_bytes": int(rec["len"].sum(dtype=np.uint64)),
        "first_ns": int(ts.min()) if len(ts) else None,
        "last_ns": int(ts.max()) if len(ts) else None,
        "linktypes": [{"linktype": lt, "name": linktype_name(lt),
                       "decoded": lt in SUPPORTED_LINKTYPES} for lt in lts],
        "warnings": list(res.warnings),
        "complete": res.complete,
    })
    info["duration_ns"] = (info["last_ns"] - info["first_ns"]) if len(ts) else None
    return info


def _unsupported_warnings(results: list[FileResult]) -> list[str]:
    out = []
    for res in results:
        lts, counts = np.unique(res.records["linktype"], return_counts=True)
        for lt, cnt in zip(lts.tolist(), counts.tolist()):
            if lt not in SUPPORTED_LINKTYPES and lt != 0xFFFF:
                out.append(f"{res.source.path}: {cnt} frames of link type {lt} "
                           f"({linktype_name(lt)}) are not decoded beyond the frame")
    return out


def _merge_reassembled(layer_rows: np.ndarray, results: list[FileResult]) -> np.ndarray:
    """Replace the layer rows of re-decoded (reassembled) frames with their new ones."""
    replaced = [r.reassembled_rows for r in results if len(r.reassembled_rows)]
    if not replaced:
        return layer_rows
    gone = np.isin(layer_rows["row"], np.concatenate(replaced))
    merged = np.concatenate([layer_rows[~gone]] + [r.reassembled_layers for r in results
                                                   if r.reassembled_layers is not None])
    return merged[np.argsort(merged["row"], kind="stable")]


def read(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Capture:
    """Decode one capture file, or several read as one capture in timestamp order.

    Raises CaptureError when a file is not a capture at all. A file damaged part-way
    keeps every packet before the fault; `Capture.warnings` says where it stopped.
    """
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
    warnings.extend(_unsupported_warnings(results))

    rec = _concat([r.records for r in results])
    pkt = _concat([r.packets for r in results])
    sacks = np.concatenate([r.sack_edges for r in results])
    file_id = np.concatenate([np.full(len(r.records["offset"]), i, np.uint16)
                              for i, r in enumerate(results)])
    file_frame = np.concatenate([np.arange(1, len(r.records["offset"]) + 1, dtype=np.uint32)
                                 for r in results])
    n = len(file_id)
    order = None
    if len(results) > 1:
        # merge by time; frames without a timestamp (SPB, custom blocks) keep their place
        # after the frame before them in their own file
        ts = rec["ts_ns"].copy()
        for fid in range(len(results)):
            sel = np.flatnonzero(file_id == fid)
            t = ts[sel]
            known = rec["has_ts"][sel]
            idx = np.where(known, np.arange(len(sel)), 0)
            np.maximum.accumulate(idx, out=idx)
            ts[sel] = np.where(known | (idx > 0), t[idx], np.iinfo(np.int64).min)
        order = np.argsort(ts, kind="stable")
        if np.array_equal(order, np.arange(n)):
            order = None
    if order is not None:
        # SACK edges follow their frames: regroup them in the new order
        starts = np.zeros(n + 1, np.int64)
        np.cumsum(pkt["sack_count"], out=starts[1:])
        counts = pkt["sack_count"][order].astype(np.int64)
        gather = np.repeat(starts[:-1][order], counts) + (
            np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        sacks = sacks[gather]
        rec = {k: v[order] for k, v in rec.items()}
        pkt = {k: v[order] for k, v in pkt.items()}
        file_id, file_frame = file_id[order], file_frame[order]
    frame = np.arange(1, n + 1, dtype=np.uint32)
    texts = addrs.texts()
    packets = packet_table(rec, pkt, sacks, frame, file_id, file_frame, texts)
    layer_rows = _merge_reassembled(layers.to_numpy(), results)
    frame_of_row = frame
    if order is not None:
        frame_of_row = np.empty(n, np.uint32)
        frame_of_row[order] = frame
    layer_df = layer_table(layer_rows, frame_of_row, texts)
    if order is not None and len(layer_df):
        layer_df = layer_df.sort(["frame", "index"])
    info = CaptureInfo([_file_info(r, packets) for r in results])
    return Capture(results, packets, layer_df, info, warnings, complete)
