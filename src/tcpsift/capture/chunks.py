"""A capture's frames as decoded chunks in capture order: the one loop around
SourceWalk.chunks that tcpsift.read and tcpsift.scan share.

Several files are read as one capture in one of two modes: "merge" (mergecap's
order; files already in that order one after the other, a ring buffer's, are
streamed one after the other, files that interleave are merged as they are read:
tcpsift.capture.merge) or "concat" (the files one after the other as given). Frame
numbers, file ids, frame numbers in the file and address texts are the same
whichever reader asks; a reader that wants only some frames (a RecordFilter) gets
chunks without the others, and the frames it can rule out from their records alone
are not even decoded when files are read one after the other.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tcpsift.capture.background import in_background
from tcpsift.capture.files import RecordStats, each_file_in_turn, in_merge_order
from tcpsift.capture.merge import merged_chunks, open_files
from tcpsift.capture.paths import capture_paths
from tcpsift.capture.reader import RecordFilter, SourceWalk
from tcpsift.capture.source import open_source
from tcpsift.decode import _decode

if TYPE_CHECKING:
    import polars as pl

    from tcpsift.capture.table import AddressWords

MODES = ("merge", "concat")


class _NoTables:
    """The address texts of a reader that builds no tables: none kept (no Polars)."""

    def add(self, texts: list[str]) -> None:
        pass

    @property
    def series(self) -> pl.Series:
        raise TypeError("CaptureChunks(tables=False) keeps no address texts")


@dataclass
class Chunk:
    """Consecutive frames of the capture, decoded."""
    rec: dict                       # record arrays (tcpsift.capture._records)
    pkt: dict                       # decoder arrays; not written unless `decoded`
    sack_edges: np.ndarray          # the SACK edges of the chunk's frames
    layer_rows: np.ndarray          # layer rows, "row" = the capture row
    first_row: int                  # the capture row (0-based) of the first frame
    file_id: int | np.ndarray       # the frames' file: one for all, or one per frame
    file_frame: np.ndarray | None   # frame numbers in the file; None: the capture's
    addresses: pl.Series | None     # address texts (AddressWords.series), the chunk's ids
                                    # included; None when the reader builds no tables
    decoded: bool = True
    # the texts of the addresses first met in this chunk, in id order (with tables, or
    # `texts`: those of the ids before them came with the chunks before)
    new_texts: list[str] = field(default_factory=list)
    live: bool = False              # its frames come from a stream (a pipe, standard
                                    # input): a reader that prints shows them now
    prepared: object = None         # what the reader's `prepare` made of it

    def __len__(self) -> int:
        return len(self.rec["offset"])

    @property
    def frame(self) -> np.ndarray:
        return np.arange(self.first_row + 1, self.first_row + len(self) + 1, dtype=np.uint32)

    @property
    def address_texts(self) -> pl.Series:
        """The address texts tables encode the chunk's address ids with."""
        if self.addresses is None:
            raise TypeError("CaptureChunks(tables=False) builds no tables")
        return self.addresses

    def table(self, columns=None) -> pl.DataFrame:
        """The chunk's packet table (only `columns`, if given)."""
        from tcpsift.capture.table import packet_table

        return packet_table(self.rec, self.pkt, self.sack_edges, self.frame, self.file_id,
                            self.file_frame, self.address_texts, columns)


@dataclass
class FileRead:
    """What reading one file left: its source (for frame bytes), Capture.info's entry,
    its warnings, whether it was read to its end without a fault, and how many frames
    were walked (all of them, unless a RecordFilter ended the walk)."""
    source: object
    info: dict
    warnings: list
    complete: bool
    frames: int


class CaptureChunks:
    """Iterating yields the capture's Chunks of about `chunk` frames; then `files` (the
    files read, FileRead), `warnings` and `complete` say what was met.

    `decode` False fills the record arrays only (for readers of record columns:
    tcpsift.capture.table.RECORD_COLUMNS); merged files are decoded all the same.
    `tables` False: the reader builds no tables (tcpsift info: no Polars, no address
    texts). `reuse` K > 0: each file's chunks are written into K sets of arrays in turn,
    so a chunk's arrays are valid until K more have come (a reader that does not keep
    them stays in the CPU cache). `reassemble` False leaves IP fragments as they are.
    `wanted` leaves out chunks and, read one after the other, blocks of frames that it
    skips, and stops where it ends (then `files` describes the part read). File ids
    count the files read from `first_file_id`; `opened` has the `info` of each file as
    it is opened (its format: known before its frames), indexed by file id less
    `first_file_id`.

    `texts` True: chunks carry their new address texts (Chunk.new_texts) without
    tables (no Polars). `prepare(chunk)` is called in the decoding thread for each
    chunk, its result put in `chunk.prepared` (work on chunk k+1 that overlaps the
    reader's work on chunk k: the streamed `fields` builds the TCP kernel's inputs
    there); the address table (`addrs`) then holds the chunk's addresses."""

    def __init__(self, paths, mode: str = "merge", chunk: int = 1 << 18, decode: bool = True,
                 wanted: RecordFilter | None = None, first_file_id: int = 0,
                 tables: bool = True, reuse: int = 0, reassemble: bool = True,
                 texts: bool = False, prepare: Callable[[Chunk], object] | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.paths = capture_paths(paths)
        self.mode = mode
        self.chunk = chunk
        self.decode = decode
        self.wanted = wanted
        self.first_file_id = first_file_id
        self.tables, self.reuse, self.reassemble = tables, reuse, reassemble
        self.texts, self.prepare = texts or tables, prepare
        self.addrs = _decode.AddressTable()
        self.words: AddressWords | _NoTables = _NoTables()
        if tables:
            from tcpsift.capture.table import AddressWords
            self.words = AddressWords()
        self.files: list[FileRead] = []
        self.opened: list[dict] = []
        self._problems: list[str] = []  # the files that are not captures

    @property
    def warnings(self) -> list[str]:
        """One line per problem met so far: files that are not captures, then each file's."""
        return self._problems + [w for f in self.files for w in f.warnings]

    @property
    def complete(self) -> bool:
        """Whether every file read so far was a capture, read without a fault."""
        return not self._problems and all(f.complete for f in self.files)

    def _addresses(self):
        return self.words.series if self.tables else None

    def __iter__(self) -> Iterator[Chunk]:
        if self.mode == "merge" and len(self.paths) > 1 and not in_merge_order(self.paths):
            yield from self._merged()
        else:
            yield from each_file_in_turn(self.paths, self._one_file, self._problems)

    def _one_file(self, path: str) -> Iterator[Chunk]:
        """One file's chunks, after the frames of the files read before it."""
        first_row = sum(f.frames for f in self.files)
        wanted = self.wanted
        if wanted is not None and wanted.ends(first_row):
            return
        src = open_source(path)
        walk = SourceWalk(src, reassemble=self.reassemble)
        self.opened.append(walk.info)
        file_id = self.first_file_id + len(self.files)
        stats = RecordStats()
        addrs, prepare, live = self.addrs, self.prepare, src.pipe is not None

        def decoded():
            # in a thread of its own: the caller's work on chunk k (building its table,
            # printing it) overlaps the decoding of chunk k+1 (and what else is done here
            # per chunk); without `reuse`, fresh arrays per chunk (a table may be the
            # decoder's arrays themselves, so they must outlive the chunk)
            layers, sacks = _decode.LayerBuffer(), _decode.U32Buffer()
            known = len(addrs)
            for rec, pkt in walk.chunks(addrs, layers, sacks, first_row, self.chunk,
                                        reuse=self.reuse, decode=self.decode, wanted=wanted):
                row = walk.chunk_row
                stats.add(rec)
                layer_rows, sack_edges = walk.chunk_extras(layers, sacks)
                texts = addrs.texts(known) if self.texts else []
                known += len(texts)
                file_frame = None if first_row == 0 else np.arange(
                    row - first_row + 1, row - first_row + len(rec["offset"]) + 1,
                    dtype=np.uint32)
                chunk = Chunk(rec, pkt, sack_edges, layer_rows, row, file_id, file_frame,
                              None, self.decode, texts, live)
                if prepare is not None:
                    chunk.prepared = prepare(chunk)
                yield chunk

        # this thread helps the decoding thread while it waits for chunks
        for chunk in in_background(decoded, helper=walk):
            self.words.add(chunk.new_texts)
            chunk.addresses = self._addresses()
            yield chunk
        self.files.append(FileRead(src, stats.describe(walk.info, walk.warnings, walk.complete),
                                   walk.warnings + stats.unsupported_warnings(src.path),
                                   walk.complete, walk.frames))

    def _merged(self) -> Iterator[Chunk]:
        """Files whose frames interleave, merged chunk by chunk as they are read (in a
        thread of their own, tcpsift.capture.merge)."""
        files, warnings, _ = open_files(self.paths, self.addrs, self.chunk)
        self._problems.extend(warnings)
        self.opened.extend(f.walk.info for f in files)
        wanted, prepare = self.wanted, self.prepare
        live = any(f.walk.src.pipe is not None for f in files)

        def merged():
            for m, texts in merged_chunks(files, self.addrs):
                chunk = Chunk(m.rec, m.pkt, m.sack_edges, m.layer_rows, m.first_row,
                              m.file_id + np.uint16(self.first_file_id), m.file_frame, None,
                              True, texts, live)
                if prepare is not None:
                    chunk.prepared = prepare(chunk)
                yield chunk

        for chunk in in_background(merged):
            self.words.add(chunk.new_texts)
            first_row = chunk.first_row
            if wanted is not None:
                if wanted.ends(first_row):
                    break
                if wanted.skips(chunk.rec["ts_ns"], chunk.rec["has_ts"], first_row):
                    continue
            chunk.addresses = self._addresses()
            yield chunk
        for f in files:
            walk = f.walk
            self.files.append(FileRead(walk.src, f.stats.describe(walk.info, walk.warnings,
                                                                  walk.complete),
                                       f.warnings, walk.complete, f.stats.packets))
