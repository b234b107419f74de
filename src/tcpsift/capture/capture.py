"""`tcpsift.read()` and the Capture it returns."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tcpsift import schema
from tcpsift.capture.background import in_background
from tcpsift.capture.files import RecordStats, capture_paths, each_file, in_merge_order
from tcpsift.capture.merge import merged_chunks, open_files
from tcpsift.capture.modes import DEFAULT_MODE, MODES
from tcpsift.capture.reader import SourceWalk
from tcpsift.capture.source import open_source
from tcpsift.capture.table import AddressWords, layer_table, packet_table
from tcpsift.decode import _decode
from tcpsift.decode.reassembly import merge_reassembled


@dataclass
class CaptureInfo:
    """What `tcpsift info` reports, per file and in total."""
    files: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"files": self.files}


class Capture:
    """Decoded capture: the packet table, the layer table and access to frame bytes."""

    def __init__(self, files: dict, packets: pl.DataFrame, layers: pl.DataFrame,
                 info: CaptureInfo, warnings: list[str], complete: bool):
        self._files = files         # file_id -> _File
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

    @property
    def conns(self) -> pl.DataFrame:
        """The connection table (tcpsift.tcp.connections), computed on first access."""
        cached = self.__dict__.get("_conns")
        if cached is None:
            from tcpsift.tcp.connections import connections
            cached = self.__dict__["_conns"] = connections(self)
        return cached

    def __repr__(self):
        return f"<Capture {len(self.packets)} frames from {len(self._files)} file(s)>"

    def _repr_html_(self):
        """Jupyter's display: the summary and the connections that carried the most data."""
        from tcpsift.workflow.report import summary_html
        return summary_html(self)

    def conn(self, stream: int):
        """One TCP connection (tcp.stream): `.row`, `.ladder`, `.plot(kind)`; displays its
        facts and ladder in Jupyter."""
        from tcpsift.workflow.report import ConnectionView
        return ConnectionView(self, stream)

    def _locate(self, frame: int):
        if not 1 <= frame <= len(self.packets):
            raise IndexError(f"no frame {frame} (the capture has {len(self.packets)})")
        row = self.packets.row(frame - 1, named=True)
        return row, self._files[row["file_id"]].source

    def frame_bytes(self, frame: int) -> bytes:
        """The captured bytes of one frame (frame numbers are 1-based)."""
        row, source = self._locate(frame)
        return source.read_at(row["file_offset"], row["cap_len"])

    def payload(self, frame: int) -> bytes:
        """The captured part of the frame's TCP or UDP payload (b"" when it has none)."""
        row, source = self._locate(frame)
        if row["payload_offset"] is None:
            return b""
        start = row["file_offset"] + row["payload_offset"]
        end = row["file_offset"] + row["cap_len"]
        if row["tcp_len"] is not None:
            end = min(end, start + row["tcp_len"])
        elif row["udp_len"] is not None and row["udp_len"] >= 8:
            end = min(end, start + row["udp_len"] - 8)
        return source.read_at(start, max(end - start, 0))


FRAME_ACCESS_COLUMNS = {"frame", "file_id", "file_offset", "cap_len", "payload_offset",
                        "tcp_len", "udp_len"}

# Frames decoded per chunk: bounds the decoder's intermediate arrays (those the table
# does not keep are freed chunk by chunk).
CHUNK = 1 << 18


@dataclass
class _File:
    """One file read into table chunks."""
    source: object
    info: dict
    warnings: list
    complete: bool
    chunks: list = field(default_factory=list)          # pl.DataFrame per chunk
    reassembled_rows: list = field(default_factory=list)
    reassembled_layers: list = field(default_factory=list)


def _read_file(path, file_id: int, first_row: int, addrs, words: AddressWords, layers,
               columns) -> _File:
    src = open_source(path)
    walk = SourceWalk(src, reassemble=True)
    stats = RecordStats()
    out = _File(src, {}, [], True)
    row = first_row

    def decoded():
        # in a thread of its own (the table of chunk k is built while chunk k+1 is
        # decoded); fresh arrays per chunk: Polars keeps NumPy buffers without copying
        # (a column may be the decoder's array itself), so a chunk's arrays must outlive it.
        # The addresses met so far are in `words` when this starts (earlier files are
        # done); the texts of new ones come with each chunk.
        sacks = _decode.U32Buffer()
        known = len(addrs)
        for rec, pkt in walk.chunks(addrs, layers, sacks, first_row, CHUNK):
            texts = addrs.texts(known)
            known += len(texts)
            yield rec, pkt, sacks.to_numpy(), texts
            sacks.clear()

    # this thread helps the decoding thread while it waits for chunks
    for rec, pkt, sack_edges, new_texts in in_background(decoded, helper=walk):
        n = len(rec["offset"])
        words.add(new_texts)
        stats.add(rec)
        file_frame = None if first_row == 0 else np.arange(
            row - first_row + 1, row - first_row + n + 1, dtype=np.uint32)
        out.chunks.append(packet_table(
            rec, pkt, sack_edges, np.arange(row + 1, row + n + 1, dtype=np.uint32),
            file_id, file_frame, words.series, columns))
        row += n
    out.reassembled_rows = walk.reassembled_rows
    out.reassembled_layers = walk.reassembled_layers
    out.info = stats.describe(walk.info, walk.warnings, walk.complete)
    out.warnings = walk.warnings + stats.unsupported_warnings(src.path)
    out.complete = walk.complete
    return out


def _read_merged(paths: list[str], addrs, words: AddressWords, columns):
    """Files whose frames interleave in time, merged chunk by chunk as they are read
    (tcpsift.capture.merge: mergecap's order) in a thread of their own while this one
    builds each merged chunk's table. Returns (per-file _File, table chunks, layer rows
    numbered by merged row, each row's file, warnings of files that are not captures,
    complete)."""
    files, warnings, complete = open_files(paths, addrs, CHUNK)
    chunks, layer_rows, file_ids, row = [], [], [], 0
    for chunk, new_texts in in_background(lambda: merged_chunks(files, addrs)):
        n = len(chunk.file_id)
        words.add(new_texts)
        chunks.append(packet_table(chunk.rec, chunk.pkt, chunk.sack_edges,
                                   np.arange(row + 1, row + n + 1, dtype=np.uint32),
                                   chunk.file_id, chunk.file_frame, words.series, columns))
        layer_rows.append(chunk.layer_rows)
        file_ids.append(chunk.file_id)
        row += n
    results = []
    for f in files:
        walk = f.walk
        results.append(_File(walk.src, f.stats.describe(walk.info, walk.warnings,
                                                        walk.complete),
                             f.warnings, walk.complete))
    layers = np.concatenate(layer_rows) if layer_rows else _decode.LayerBuffer().to_numpy()
    file_id = np.concatenate(file_ids) if file_ids else 0
    return results, chunks, layers, file_id, warnings, complete


def read(paths: str | os.PathLike | Iterable[str | os.PathLike], columns=None,
         mode: str = DEFAULT_MODE) -> Capture | list[Capture]:
    """Decode one capture file, or several.

    `mode` says what several files become:
      "merge" (default): one capture, frames in timestamp order as mergecap merges them
        (a ring buffer's files, or captures taken at the same time on several links);
      "concat": one capture, the files' frames one after the other in the order given
        (`mergecap -a`), frame numbers going on from file to file;
      "separate": a list of Captures, one per file, each analysed on its own (two
        capture points of the same traffic: merged, every packet would look like its
        own retransmission). `file_id` is still the file's position in `paths`.

    `columns` (optional) keeps only those packet-table columns, plus the ones frame and
    payload access need (FRAME_ACCESS_COLUMNS).

    Raises CaptureError when a file is not a capture at all (with "merge" and "concat",
    only when none of the files is; the others make the capture incomplete). A file
    damaged part-way keeps every packet before the fault; `Capture.warnings` says where
    it stopped.
    """
    paths = capture_paths(paths)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if columns is not None:
        columns = set(columns) | FRAME_ACCESS_COLUMNS
        unknown = columns - set(schema.PACKET_COLUMN_NAMES)
        if unknown:
            raise ValueError(f"no such packet columns: {', '.join(sorted(unknown))}")
    if mode == "separate":
        return [_read_capture([path], columns, merge=False, first_file_id=file_id)
                for file_id, path in enumerate(paths)]
    return _read_capture(paths, columns, merge=mode == "merge")


def _read_capture(paths: list[str], columns, merge: bool, first_file_id: int = 0) -> Capture:
    """Files read as one capture: merged by time (when they are not in merge order one
    after the other already), or one after the other; file ids from `first_file_id`."""
    addrs = _decode.AddressTable()
    words = AddressWords()
    if merge and len(paths) > 1 and not in_merge_order(paths):
        files, chunks, layer_rows, file_id, warnings, complete = _read_merged(
            paths, addrs, words, columns)
    else:
        layers = _decode.LayerBuffer()
        files = []

        def read_one(path):
            first_row = sum(f.info["packets"] for f in files)
            files.append(_read_file(path, first_file_id + len(files), first_row, addrs,
                                    words, layers, columns))
            return files[-1]

        _, warnings, complete = each_file(paths, read_one)
        file_id = first_file_id if len(files) == 1 else np.repeat(
            np.arange(first_file_id, first_file_id + len(files), dtype=np.uint16),
            [f.info["packets"] for f in files])
        chunks = [c for f in files for c in f.chunks]
        layer_rows = merge_reassembled(layers.to_numpy(),
                                       [r for f in files for r in f.reassembled_rows],
                                       [r for f in files for r in f.reassembled_layers])
    for f in files:
        warnings.extend(f.warnings)
        complete &= f.complete
    packets = pl.concat(chunks, rechunk=False) if len(chunks) > 1 else chunks[0]
    n = len(packets)
    layer_df = layer_table(layer_rows, np.arange(1, n + 1, dtype=np.uint32), words.series,
                           file_id)
    info = CaptureInfo([f.info for f in files])
    by_id = {first_file_id + i: f for i, f in enumerate(files)}
    return Capture(by_id, packets, layer_df, info, warnings, complete)
