"""Capture files whose frames interleave in time, merged chunk by chunk as mergecap
merges them, in memory bounded by a few chunks per file instead of the whole capture.

Each file is walked and decoded in its own order (all in one thread, with one address
table). A frame's merge key (tcpsift.capture.files.merge_keys: the greatest timestamp
of its file up to it) never decreases along a file, so once every unfinished file has
frames decoded ahead, a frame whose key is below the smallest of those files' last
keys can be placed: no frame still to be read sorts before it. Those frames, from
every file, sorted by (key, the later file first, position), are the next merged
chunk: the order tcpsift.read gives the whole capture.

What a chunk carries per frame is carried across: the decoder's arrays, the SACK
edges (variable-length per frame), the layer rows (renumbered to the merged rows) and
each frame's file and frame number in its file. IP fragments are reassembled within
each file, as tcpsift.read does (a datagram whose fragments were captured in different
files is not: docs/conformance.md).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tcpsift.capture.files import RecordStats, each_file, merge_keys
from tcpsift.capture.reader import SourceWalk
from tcpsift.capture.source import open_source
from tcpsift.decode import _decode
from tcpsift.errors import CaptureError


@dataclass
class MergedChunk:
    rec: dict                   # record arrays, in merged order
    pkt: dict                   # decoder arrays, in merged order
    sack_edges: np.ndarray      # the SACK edges of the chunk's frames, in merged order
    layer_rows: np.ndarray      # layer rows, "row" = the merged row (from first_row)
    file_id: np.ndarray         # each frame's file (index into the files given)
    file_frame: np.ndarray      # each frame's number in its file (1-based)
    first_row: int              # the merged row of the chunk's first frame


@dataclass
class _File:
    """One file's frames decoded and not merged yet (file-local rows from `base_row`)."""
    file_id: int
    path: str
    walk: SourceWalk
    chunks: Iterator[tuple[dict, dict]]     # the walk's chunks: (record, decoder arrays)
    layers: object = field(default_factory=_decode.LayerBuffer)
    sacks: object = field(default_factory=_decode.U32Buffer)
    stats: RecordStats = field(default_factory=RecordStats)
    rec: dict = field(default_factory=dict)     # (empty until the first load)
    pkt: dict = field(default_factory=dict)
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    edges: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    edge_start: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    layer_rows: np.ndarray | None = None
    base_row: int = 0           # the file-local row of the first pending frame
    last_key: int | None = None     # the merge key of the last frame decoded
    done: bool = False

    @property
    def count(self) -> int:
        return len(self.keys)

    def load(self):
        """Decode the file's next chunk behind its pending frames (or note its end)."""
        try:
            rec, pkt = next(self.chunks)
        except StopIteration:
            self.done = True
            return
        n = len(rec["offset"])
        self.stats.add(rec)
        layer_rows, edges = self.walk.chunk_extras(self.layers, self.sacks)
        keys = merge_keys(rec["ts_ns"], rec["has_ts"], self.last_key)
        if n:
            self.last_key = int(keys[-1])
        counts = pkt["sack_count"].astype(np.int64)
        if not self.count:
            self.rec, self.pkt = rec, pkt
            self.keys, self.edges = keys, edges
            self.edge_start = np.concatenate([[0], np.cumsum(counts)])
            self.layer_rows = layer_rows
        else:
            self.rec = {k: np.concatenate([v, rec[k]]) for k, v in self.rec.items()}
            self.pkt = {k: np.concatenate([v, pkt[k]]) for k, v in self.pkt.items()}
            self.keys = np.concatenate([self.keys, keys])
            self.edge_start = np.concatenate(
                [self.edge_start, self.edge_start[-1] + np.cumsum(counts)])
            self.edges = np.concatenate([self.edges, edges])
            self.layer_rows = np.concatenate([self.layer_rows, layer_rows])

    @property
    def warnings(self) -> list[str]:
        """Once the walk has ended: what it met, and the link types it could not decode."""
        return self.walk.warnings + self.stats.unsupported_warnings(self.path)

    def drop(self, t: int):
        """Forget the first t pending frames (merged)."""
        # frames are pending, so a load() has set the layer rows
        assert self.layer_rows is not None
        self.rec = {k: v[t:] for k, v in self.rec.items()}
        self.pkt = {k: v[t:] for k, v in self.pkt.items()}
        self.keys = self.keys[t:]
        self.edges = self.edges[self.edge_start[t]:]
        self.edge_start = self.edge_start[t:] - self.edge_start[t]
        self.layer_rows = self.layer_rows[self.layer_rows["row"] >= self.base_row + t]
        self.base_row += t


# Descriptors the process may open besides the merged files while they are read (an
# output file, frame bytes read again, a library's own), beyond those open already.
SPARE_FILES = 16


def check_open_file_limit(paths: list[str]) -> None:
    """Files merged by time are all open until their last frame is merged: refuse at
    once (CaptureError, one line) when the open-file limit cannot hold them, instead of
    failing on the file that finds no descriptor left (mergecap refuses too)."""
    try:
        import resource
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return
    if soft == resource.RLIM_INFINITY:
        return
    try:
        already = len(os.listdir("/proc/self/fd")) - 1      # (less the listing's own)
    except OSError:
        already = 3
    need = already + len(paths) + SPARE_FILES
    if need > soft:
        raise CaptureError(
            f"{len(paths):,} files",
            f"merged by time they are all open at once, and {soft:,} open files are "
            f"allowed (ulimit -n): raise the limit to {need:,} or more, or read them "
            f"one after the other (mode concat)")


def open_files(paths: list[str], addrs, chunk: int) -> tuple[list[_File], list[str], bool]:
    """The files to merge, each decoding its frames with `addrs`, together about `chunk`
    at a time; with the warnings about files that are not captures (skipped, as
    tcpsift.capture.files.each_file says) and whether all could be opened. CaptureError
    when the open-file limit cannot hold them all (check_open_file_limit)."""
    check_open_file_limit(paths)
    walks, warnings, complete = each_file(
        paths, lambda path: (path, SourceWalk(open_source(path), reassemble=True)))
    per_file = max(min(chunk, 1024), chunk // len(walks))
    files: list[_File] = []
    for path, walk in walks:
        f = _File(len(files), path, walk, iter(()))     # (its chunks need its buffers)
        f.chunks = walk.chunks(addrs, f.layers, f.sacks, 0, per_file)
        files.append(f)
    return files, warnings, complete


def merged_chunks(files: list[_File], addrs):
    """Yield (MergedChunk, the texts of the addresses `addrs` met since the last one, in
    id order) after another: the frames of `files` in merge order."""
    row = 0
    known = len(addrs)
    while True:
        for f in files:
            while not f.done and not f.count:
                f.load()
        unfinished = [f for f in files if not f.done]
        if not unfinished and not any(f.count for f in files):
            return
        bound = min(int(f.keys[-1]) for f in unfinished) if unfinished else None
        take = [f.count if bound is None else int(np.searchsorted(f.keys, bound, "left"))
                for f in files]
        if not sum(take):
            # every pending frame sorts at or after the bound: read on where it lies
            for f in unfinished:
                if int(f.keys[-1]) == bound:
                    f.load()
            continue
        chunk = _merge([(f, t) for f, t in zip(files, take) if t], row)
        row += len(chunk.file_id)
        texts = addrs.texts(known)
        known += len(texts)
        yield chunk, texts


def _merge(parts: list, first_row: int) -> MergedChunk:
    """The first t pending frames of each (file, t) of `parts`, in merge order."""
    key = np.concatenate([f.keys[:t] for f, t in parts])
    file_id = np.concatenate([np.full(t, f.file_id, np.uint16) for f, t in parts])
    position = np.concatenate([np.arange(t, dtype=np.int64) for _, t in parts])
    order = np.lexsort((position, -file_id.astype(np.int32), key))
    m = len(order)
    rec = {k: np.concatenate([f.rec[k][:t] for f, t in parts])[order]
           for k in parts[0][0].rec}
    pkt = {k: np.concatenate([f.pkt[k][:t] for f, t in parts])[order]
           for k in parts[0][0].pkt}
    file_frame = np.concatenate([np.arange(f.base_row + 1, f.base_row + t + 1, dtype=np.uint32)
                                 for f, t in parts])[order]
    # SACK edges: each frame's run of edges, taken in the merged order
    edges = np.concatenate([f.edges[:f.edge_start[t]] for f, t in parts]).astype(np.uint32)
    offsets = np.cumsum([0] + [int(f.edge_start[t]) for f, t in parts[:-1]])
    starts = np.concatenate([f.edge_start[:t] + o for (f, t), o in zip(parts, offsets)])[order]
    counts = pkt["sack_count"].astype(np.int64)
    if counts.sum():
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        edges = edges[np.repeat(starts, counts) + within]
    else:
        edges = edges[:0]
    # layer rows: file-local rows -> merged rows
    merged_row = np.empty(m, np.int64)
    merged_row[order] = np.arange(first_row, first_row + m)
    layer_parts, candidate = [], 0
    for f, t in parts:
        lr = f.layer_rows[f.layer_rows["row"] < f.base_row + t].copy()
        lr["row"] = merged_row[candidate + lr["row"] - f.base_row]
        layer_parts.append(lr)
        candidate += t
    layer_rows = np.concatenate(layer_parts)
    layer_rows = layer_rows[np.argsort(layer_rows["row"], kind="stable")]
    for f, t in parts:
        f.drop(t)
    return MergedChunk(rec, pkt, edges, layer_rows, file_id[order], file_frame, first_row)
