"""`tcpsift.read()` and the Capture it returns."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from tcpsift import schema
from tcpsift.cache.entry import CacheEntry, open_entry
from tcpsift.cache.folder import cache_folder
from tcpsift.capture.modes import DEFAULT_MODE, MODES
from tcpsift.capture.paths import capture_paths

if TYPE_CHECKING:
    from tcpsift.capture.source import Source


@dataclass
class CaptureInfo:
    """What `tcpsift info` reports, per file and in total."""
    files: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"files": self.files}


class Capture:
    """Decoded capture: the packet table, the layer table and access to frame bytes.

    Each table is made when first used and kept: decoded (packets, layers), computed
    (tcp, conns), or read from the cache (tcpsift.cache) when the capture has an entry
    there, in which case it is also stored there once made."""

    def __init__(self, files: dict, packets: pl.DataFrame | None, layers: pl.DataFrame | None,
                 info: CaptureInfo, warnings: list[str], complete: bool,
                 entry: CacheEntry | None = None, decode=None, columns=None):
        self._files = files         # file_id -> FileRead (or _FileByPath: not read yet)
        self._tables = {"packets": packets, "layers": layers}
        self.info = info
        self._warnings = warnings
        self.complete = complete
        self._entry = entry         # the cache entry, if any
        self._decode = decode       # () -> Capture: the files read again (cached: not yet)
        self._columns = columns     # the packet columns read() was asked for

    @property
    def warnings(self) -> list[str]:
        """One line per problem met: each naming its file (a file damaged part-way: where
        it stopped), and the cache's ("cache: ..."), once what it writes is written."""
        if self._entry is not None:
            self._entry.flush()
        return self._warnings

    @property
    def packets(self) -> pl.DataFrame:
        """The packet table: one row per frame (docs/schema.md)."""
        return self._table("packets")

    @property
    def layers(self) -> pl.DataFrame:
        """The layer table: one row per header a frame carries more than once."""
        return self._table("layers")

    @property
    def tcp(self) -> pl.DataFrame:
        """The TCP analysis (tcpsift.tcp.analyze), one row per packet-table row; computed
        on first access and kept."""
        return self._table("tcp")

    @property
    def conns(self) -> pl.DataFrame:
        """The connection table (tcpsift.tcp.connections), computed on first access."""
        return self._table("conns")

    def scan(self, name: str) -> pl.LazyFrame:
        """The table `name` ("packets", "layers", "tcp" or "conns") as a LazyFrame: a
        query of a table kept in the cache reads only the columns and row groups it needs
        (one stream's rows, a count); otherwise it runs on the table in memory."""
        if self._tables.get(name) is None and self._entry is not None:
            path = self._entry.path(name)
            if path is not None:
                frame = pl.scan_parquet(path)
                if name == "packets":
                    frame = _only(frame, self._columns)
                return _as_file(frame, self._first_file_id)
        return self._table(name).lazy()

    def cached_file(self, name: str):
        """The Parquet file of table `name` in the cache (computed and stored first when
        the entry lacks it), for a reader of its own such as DuckDB; None when the capture
        is not cached, or its entry cannot be written."""
        if self._entry is None:
            return None
        path = self._entry.path(name)
        if path is None and self._tables.get(name) is None and name in ("tcp", "conns"):
            self._table(name)
            path = self._entry.path(name)
        return path

    def _table(self, name: str) -> pl.DataFrame:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = self._make(name)
        return table

    def _make(self, name: str) -> pl.DataFrame:
        entry = self._entry
        if entry is not None:
            table = entry.load(name, _in_order(self._columns) if name == "packets" else None)
            if table is not None:
                return _as_file(table, self._first_file_id)
        if name in ("packets", "layers"):
            self._read_again()
            read_again = self._tables[name]
            assert read_again is not None
            return read_again
        if name == "tcp":
            from tcpsift.tcp import analyze
            table = analyze(self)
        else:
            from tcpsift.tcp.connections import connections
            table = connections(self)
        if entry is not None:
            entry.store(name, table)
        return table

    def _read_again(self) -> None:
        """The tables of a cached capture whose entry lacks them: the files decoded."""
        fresh = self._decode()
        self._files = fresh._files
        for name in ("packets", "layers"):
            table = fresh._table(name)
            if self._entry is not None:
                self._entry.store(name, table)
            self._tables[name] = _only(table, self._columns) if name == "packets" else table

    @property
    def _first_file_id(self) -> int | None:
        """The file id of a capture of one file (None: of several files)."""
        return next(iter(self._files)) if len(self._files) == 1 else None

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


def _in_order(columns) -> list[str] | None:
    """The packet columns `columns` names, in the table's order (None: all)."""
    return None if columns is None else [c for c in schema.PACKET_COLUMN_NAMES if c in columns]


def _only(packets, columns):
    """The packet table's (a DataFrame or LazyFrame) `columns` (all: None)."""
    wanted = _in_order(columns)
    return packets if wanted is None else packets.select(wanted)


def _as_file(table, file_id: int | None):
    """A cached table of one file as the table of file `file_id` (the same file is file 0
    alone and file 1 of a pair read with mode="separate")."""
    if file_id is None or "file_id" not in table.collect_schema().names():
        return table
    return table.with_columns(pl.lit(file_id, dtype=pl.UInt16).alias("file_id"))


class _FileByPath:
    """A file of a capture read from the cache: opened only when frame bytes are wanted."""

    def __init__(self, path: str, info: dict):
        self.path = path
        self.info = info            # (Capture.info's entry of the file)
        self._source: Source | None = None

    @property
    def source(self):
        if self._source is None:
            from tcpsift.capture.source import open_source
            self._source = open_source(self.path)
        return self._source


FRAME_ACCESS_COLUMNS = {"frame", "file_id", "file_offset", "cap_len", "payload_offset",
                        "tcp_len", "udp_len"}

# Frames decoded per chunk: bounds the decoder's intermediate arrays (those the table
# does not keep are freed chunk by chunk).
CHUNK = 1 << 18


def read(paths: str | bytes | os.PathLike | Iterable[str | bytes | os.PathLike], columns=None,
         mode: str = DEFAULT_MODE,
         cache: bool | str | os.PathLike | None = None) -> Capture | list[Capture]:
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

    `cache`: where the capture's tables are kept as Parquet to be read again instead of
    decoded (tcpsift.cache): None or True, the folder TCPSIFT_CACHE names (unless "off"),
    else the user's cache folder (~/.cache/tcpsift); a path, that folder; False, no
    cache. An entry is used only while the files are unchanged; a problem with the cache
    is a line in `Capture.warnings`, never an error. Standard input is never cached.

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
    folder = cache_folder(cache)
    if mode == "separate":
        return [_cached_capture([path], columns, False, file_id, folder)
                for file_id, path in enumerate(paths)]
    return _cached_capture(paths, columns, mode == "merge", 0, folder)


def cached(paths, mode: str = DEFAULT_MODE, cache=None) -> Capture | None:
    """The capture of `paths` read as `mode` ("merge" or "concat") from its cache entry
    when the entry holds its packet and layer tables (each table read when used), else
    None: nothing is read from the files (a reader that streams them, `tcpsift fields`,
    does that better than building tables to store)."""
    paths = capture_paths(paths)
    notes: list[str] = []
    entry = open_entry(cache_folder(cache), paths, mode, notes)
    if entry is None or entry.path("packets") is None or entry.path("layers") is None:
        return None
    # (the entry's tables, checked once: read from it as they are used)
    return _capture_of(entry, notes, paths, None, mode == "merge", 0)


def _cached_capture(paths: list[str], columns, merge: bool, first_file_id: int,
                    folder) -> Capture:
    """The capture from its cache entry, if it has one (its tables read when used), else
    read and its entry started with its packet and layer tables."""
    notes: list[str] = []
    entry = open_entry(folder, paths, "merge" if merge else "concat", notes)
    return _capture_of(entry, notes, paths, columns, merge, first_file_id)


def _capture_of(entry: CacheEntry | None, notes: list[str], paths: list[str], columns,
                merge: bool, first_file_id: int) -> Capture:
    """_cached_capture() once its entry (None: not cached) is open; `notes`, what opening
    it met."""
    def decode(columns=columns if entry is None else None) -> Capture:
        return _read_capture(paths, columns, merge, first_file_id)

    if entry is not None and entry.meta is not None:
        meta = entry.meta
        infos = meta["info"]["files"]
        files = {first_file_id + i: _FileByPath(f["path"], f)
                 for i, f in enumerate(infos)}
        warnings = list(meta["warnings"]) + notes
        entry.notes = warnings      # (what the entry meets later is said there too)
        return Capture(files, None, None, CaptureInfo(meta["info"]["files"]), warnings,
                       meta["complete"], entry, decode, columns)
    cap = decode()
    own = list(cap.warnings)        # (the capture's, not the cache's)
    cap._warnings.extend(notes)
    if entry is not None:
        entry.notes = cap._warnings
        entry.store_meta(cap.info.to_dict(), own, cap.complete)
        for name in ("packets", "layers"):
            entry.store(name, cap._table(name))
        cap._tables["packets"] = _only(cap.packets, columns)
        cap._entry, cap._decode, cap._columns = entry, decode, columns
    return cap


def _read_capture(paths: list[str], columns, merge: bool, first_file_id: int = 0) -> Capture:
    """Files read as one capture (tcpsift.capture.chunks): merged by time, or one after
    the other; file ids from `first_file_id`. Each chunk's table is built as it comes
    (the next chunk is decoded meanwhile)."""
    # (here: a capture read from the cache imports neither NumPy nor the decoder)
    import numpy as np

    from tcpsift.capture.chunks import CaptureChunks
    from tcpsift.capture.table import layer_table

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
