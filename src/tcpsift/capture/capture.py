"""`tcpsift.read()` and the Capture it returns."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tcpsift import schema
from tcpsift.capture.chunks import CaptureChunks
from tcpsift.capture.files import capture_paths
from tcpsift.capture.modes import DEFAULT_MODE, MODES
from tcpsift.capture.table import layer_table


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

    def export(self, path, streams=None, frames=None, format=None) -> int:
        """Write the frames of TCP streams `streams` and/or frame numbers `frames` to a pcap
        or pcapng file (tcpsift.workflow.export); the number of frames written."""
        from tcpsift.workflow.export import export
        return export(self, path, streams=streams, frames=frames, format=format)

    def sql(self, query: str, memory_limit: str | None = None,
            threads: int | None = None) -> pl.DataFrame:
        """One SQL statement over the views packets, tcp, conns and layers, run by DuckDB
        (the `sql` extra; tcpsift.workflow.sql), as a Polars DataFrame."""
        from tcpsift.workflow.sql import sql
        return sql(self, query, memory_limit=memory_limit, threads=threads)

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


def read(paths: str | bytes | os.PathLike | Iterable[str | bytes | os.PathLike], columns=None,
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

    `paths`: a path (str, bytes or os.PathLike) or a list of them; a file object is
    refused (TypeError), pass its path. `columns` (optional): a list of packet-table
    column names to keep, plus the ones frame and payload access need
    (FRAME_ACCESS_COLUMNS); a bare string is refused (TypeError).

    Raises CaptureError when a file is not a capture at all (with "merge" and "concat",
    only when none of the files is; the others make the capture incomplete). A file
    damaged part-way keeps every packet before the fault; `Capture.warnings` says where
    it stopped.
    """
    paths = capture_paths(paths)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if columns is not None:
        if isinstance(columns, (str, bytes)):
            # (a string is an iterable of its letters: 'src' would mean s, r, c)
            raise TypeError(f"columns is a list of column names, not a string: "
                            f"columns=[{columns!r}]")
        columns = set(columns) | FRAME_ACCESS_COLUMNS
        unknown = columns - set(schema.PACKET_COLUMN_NAMES)
        if unknown:
            raise ValueError(f"no such packet columns: {', '.join(sorted(unknown))}")
    if mode == "separate":
        return [_read_capture([path], columns, merge=False, first_file_id=file_id)
                for file_id, path in enumerate(paths)]
    return _read_capture(paths, columns, merge=mode == "merge")


def _read_capture(paths: list[str], columns, merge: bool, first_file_id: int = 0) -> Capture:
    """Files read as one capture (tcpsift.capture.chunks): merged by time, or one after
    the other; file ids from `first_file_id`. Each chunk's table is built as it comes
    (the next chunk is decoded meanwhile)."""
    chunks = CaptureChunks(paths, "merge" if merge else "concat", CHUNK,
                           first_file_id=first_file_id)
    tables, layer_rows, file_ids = [], [], []
    for chunk in chunks:
        tables.append(chunk.table(columns))
        layer_rows.append(chunk.layer_rows)
        file_ids.append(chunk.file_id if isinstance(chunk.file_id, np.ndarray)
                        else np.full(len(chunk), chunk.file_id, np.uint16))
    packets = pl.concat(tables, rechunk=False) if len(tables) > 1 else tables[0]
    n = len(packets)
    file_id = first_file_id if len(chunks.files) == 1 else np.concatenate(file_ids)
    layer_df = layer_table(np.concatenate(layer_rows), np.arange(1, n + 1, dtype=np.uint32),
                           chunks.words.series, file_id)
    info = CaptureInfo([f.info for f in chunks.files])
    by_id = {first_file_id + i: f for i, f in enumerate(chunks.files)}
    return Capture(by_id, packets, layer_df, info, chunks.warnings, chunks.complete)
