"""`tcpsift.read()` and the Capture it returns."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import polars as pl

from tcpsift import schema
from tcpsift.capture.files import file_info, linktype_name, read_files  # noqa: F401
from tcpsift.capture.reader import FileResult, _concat
from tcpsift.capture.table import layer_table, packet_table

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

    @property
    def tcp(self) -> pl.DataFrame:
        """The TCP analysis (tcpsift.tcp.analyze), one row per packet-table row; computed
        on first access and kept."""
        cached = self.__dict__.get("_tcp")
        if cached is None:
            from tcpsift.tcp import analyze
            cached = self.__dict__["_tcp"] = analyze(self)
        return cached

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


FRAME_ACCESS_COLUMNS = {"frame", "file_id", "file_offset", "cap_len", "payload_offset",
                        "tcp_len", "udp_len"}


def _merge_reassembled(layer_rows: np.ndarray, results: list[FileResult]) -> np.ndarray:
    """Replace the layer rows of re-decoded (reassembled) frames with their new ones."""
    replaced = [r.reassembled_rows for r in results if len(r.reassembled_rows)]
    if not replaced:
        return layer_rows
    gone = np.isin(layer_rows["row"], np.concatenate(replaced))
    merged = np.concatenate([layer_rows[~gone]] + [r.reassembled_layers for r in results
                                                   if r.reassembled_layers is not None])
    return merged[np.argsort(merged["row"], kind="stable")]


def read(paths: str | os.PathLike | Iterable[str | os.PathLike], columns=None) -> Capture:
    """Decode one capture file, or several read as one capture in timestamp order.

    `columns` (optional) keeps only those packet-table columns, plus the ones frame and
    payload access need (FRAME_ACCESS_COLUMNS).

    Raises CaptureError when a file is not a capture at all. A file damaged part-way
    keeps every packet before the fault; `Capture.warnings` says where it stopped.
    """
    decoded = read_files(paths)
    results, addrs, layers = decoded.results, decoded.addresses, decoded.layers
    warnings, complete = decoded.warnings, decoded.complete
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
    if columns is not None:
        columns = set(columns) | FRAME_ACCESS_COLUMNS
        unknown = columns - set(schema.PACKET_COLUMN_NAMES)
        if unknown:
            raise ValueError(f"no such packet columns: {', '.join(sorted(unknown))}")
    packets = packet_table(rec, pkt, sacks, frame, file_id, file_frame, texts, columns)
    layer_rows = _merge_reassembled(layers.to_numpy(), results)
    frame_of_row = frame
    if order is not None:
        frame_of_row = np.empty(n, np.uint32)
        frame_of_row[order] = frame
    layer_df = layer_table(layer_rows, frame_of_row, texts)
    if order is not None and len(layer_df):
        layer_df = layer_df.sort(["frame", "index"])
    info = CaptureInfo([file_info(r) for r in results])
    return Capture(results, packets, layer_df, info, warnings, complete)
