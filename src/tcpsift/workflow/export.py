"""`tcpsift export` and `Capture.export`: some frames of a capture written back to a pcap or
pcapng file, byte for byte, with their timestamps, link types and interfaces, in capture
order, so that what was found here opens in Wireshark.

pcapng output has one interface description per (file, interface) that the frames use,
with the interface's link type, snapshot length, name, time resolution and time offset
(what the reader keeps of an IDB: its comments, description, FCS length and other
options, and the packets' own options such as comments and flags, are not kept, so not
written). Each timestamp is written in its interface's own resolution when it goes back
to the value read (else in nanoseconds). A frame without a timestamp (a simple packet
block) is written as a simple packet block when its interface is the output's first,
else with time 0. pcap output holds one link type, and uses the nanosecond magic when
an interface's resolution is finer than a microsecond or a timestamp has sub-microsecond
digits. Custom blocks, which tshark shows as frames, are not packets and are left out.
"""
from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable

import numpy as np
import polars as pl

from tcpsift.capture.files import linktype_name
from tcpsift.outputs import replaced

FORMATS = ("pcap", "pcapng")
SUFFIXES = {".pcap": "pcap", ".cap": "pcap", ".pcapng": "pcapng"}
# the columns of the packet table an export reads
COLUMNS = ("frame", "file_id", "file_offset", "ts_ns", "cap_len", "len", "iface", "linktype")
# pcap's snapshot length when the interfaces say "no limit" (0), as libpcap's default
DEFAULT_SNAPLEN = 262144
# frames and captured bytes handed to the file in one writelines() call: bound the list
# of pieces, and the bytes a compressed file's pieces hold
BATCH = 1 << 16
BATCH_BYTES = 1 << 25
NS = 1_000_000_000

PCAPNG_SHB, PCAPNG_IDB, PCAPNG_SPB, PCAPNG_EPB = 0x0A0D0D0A, 1, 3, 6
OPT_END, OPT_IF_NAME, OPT_IF_TSRESOL, OPT_IF_TSOFFSET, OPT_SHB_USERAPPL = 0, 2, 9, 14, 4


class ExportError(ValueError):
    """What cannot be exported, in one line."""


def format_for(path: str | os.PathLike) -> str:
    """The output format a file name asks for: pcap for .pcap and .cap, else pcapng (which
    holds everything an export writes)."""
    return SUFFIXES.get(os.path.splitext(os.fspath(path))[1].lower(), "pcapng")


def selection(cap, streams: Iterable[int] | None = None,
              frames: Iterable[int] | None = None) -> pl.DataFrame:
    """The packet-table rows (COLUMNS) of the frames wanted, in capture order: those of
    the TCP streams `streams` (cap.tcp's `stream`) and among the frame numbers `frames`
    (a range, or any numbers); both when both are given, every frame when neither is."""
    rows = cap.packets.select(COLUMNS)
    if streams is not None:
        wanted = cap.tcp.filter(pl.col("stream").is_in(sorted({int(s) for s in streams})))
        rows = rows.join(wanted.select("frame", "file_id"), on=["frame", "file_id"],
                         how="semi", maintain_order="left")
    if frames is not None:
        if isinstance(frames, range) and frames.step == 1:
            rows = rows.filter(pl.col("frame").is_between(frames.start, frames.stop - 1))
        else:
            rows = rows.filter(pl.col("frame").is_in(sorted({int(f) for f in frames})))
    return rows


class _FrameRange:
    """The frames first..last as a RecordFilter (tcpsift.capture.reader): the blocks of
    records outside are not decoded, and the walk ends after `last`."""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last

    def skips(self, ts_ns: np.ndarray, has_ts: np.ndarray, first_row: int) -> bool:
        return first_row + len(ts_ns) < self.first or first_row + 1 > self.last

    def ends(self, row: int) -> bool:
        return row >= self.last


def read_frames(paths, frames: Iterable[int], mode: str = "merge"):
    """The packet-table rows (COLUMNS) of the frame numbers `frames` of the capture of
    `paths`, without building the capture: only their records are read (no decoding),
    up to the last one. Returns (files read: file id -> FileRead, rows, warnings,
    complete), for Writer. Raises CaptureError as tcpsift.read does."""
    from tcpsift.capture.chunks import CaptureChunks

    if isinstance(frames, range) and frames.step == 1:
        first, last, keep = frames.start, frames.stop - 1, None
    else:
        keep = sorted({int(f) for f in frames})
        first, last = (keep[0], keep[-1]) if keep else (1, 0)
    chunks = CaptureChunks(paths, mode, decode=False, wanted=_FrameRange(first, last))
    rows = pl.concat([chunk.table(COLUMNS).filter(pl.col("frame").is_between(first, last))
                      for chunk in chunks] or [pl.DataFrame(schema=pl_schema())])
    if keep is not None:
        rows = rows.filter(pl.col("frame").is_in(keep))
    files = {fid: f for fid, f in enumerate(chunks.files)}
    return files, rows, chunks.warnings, chunks.complete


def pl_schema() -> dict:
    """The dtypes of COLUMNS."""
    from tcpsift import schema

    types = schema.polars_schema()
    return {name: types[name] for name in COLUMNS}


def export(cap, path: str | os.PathLike, streams: Iterable[int] | None = None,
           frames: Iterable[int] | None = None, format: str | None = None) -> int:
    """Write the frames of `streams` and/or `frames` (see selection()) to `path` as pcap or
    pcapng (`format`, else from the file name: format_for()). The file appears only
    once complete (written beside it under a temporary name). Returns the number of
    frames written. Raises ExportError when the frames cannot go to that format (pcap:
    several link types) or `path` is one of the capture's files."""
    path = os.fspath(path)
    for info in cap.info.files:
        if os.path.exists(path) and os.path.exists(info["path"]) \
                and os.path.samefile(path, info["path"]):
            raise ExportError(f"{path}: is the input file {info['path']}; not writing over it")
    rows = selection(cap, streams, frames)
    writer = Writer(cap._files, rows, format or format_for(path))
    with replaced(path) as out:
        writer.write(out)
    return writer.count


class _Interface:
    """One interface of the output: an input file's interface (its IDB's facts)."""

    def __init__(self, facts: dict):
        self.facts = facts
        self.resol = int(facts.get("tsresol", 6))
        self.pow2 = bool(facts.get("tsresol_pow2", False))
        self.offset_ns = int(facts.get("tsoffset", 0)) * NS

    def finer_than_us(self) -> bool:
        return self.resol >= 20 if self.pow2 else self.resol > 6

    def units(self, ts_ns: np.ndarray) -> tuple[np.ndarray, bool]:
        """The timestamps as the pcapng reader's units of this interface, and whether they
        are exact (they read back as `ts_ns`: tcpsift.capture._records.ts_to_ns, which
        computes modulo 2^64 as the file's unsigned units do); when not, the caller writes
        nanoseconds, which always are."""
        ns = ts_ns - self.offset_ns
        if not self.pow2 and self.resol <= 9:
            step = 10 ** (9 - self.resol)
            units = ns // step
            return units.view(np.uint64), bool((units * step == ns).all())
        if len(ns) and ns.min() < 0:
            return ns.view(np.uint64), False
        ns = ns.astype(np.uint64)
        if self.pow2:
            if self.resol > 30:         # beyond the room of 64-bit arithmetic below
                return ns, False
            scale = np.uint64(1 << self.resol)
            # the smallest count of 2^-r s whose floor in ns is the value: the inverse
            rest = (ns % np.uint64(NS) * scale + np.uint64(NS - 1)) // np.uint64(NS)
            units = ns // np.uint64(NS) * scale + rest
            back = (units // scale) * np.uint64(NS) + ((units % scale) * np.uint64(NS)) // scale
            return units, bool((back == ns).all())
        step = 10 ** (self.resol - 9)
        if len(ns) and int(ns.max()) * step >= 1 << 64:
            return ns, False
        return ns * np.uint64(step), True


class Writer:
    """The frames of `rows` (selection(), read_frames()) as one pcap or pcapng file;
    `files`: file id -> the file read (tcpsift.capture.chunks.FileRead: its source and
    info)."""

    def __init__(self, files: dict, rows: pl.DataFrame, fmt: str):
        if fmt not in FORMATS:
            raise ExportError(f"unknown output format {fmt!r}: pcap or pcapng")
        self.fmt = fmt
        self.sources = {fid: f.source for fid, f in files.items()}
        for fid in rows["file_id"].unique().to_list():
            if self.sources[fid].pipe is not None:
                raise ExportError("frame bytes are not kept from standard input; save the "
                                  "capture to a file and export from it")
        # custom blocks (no interface) are not packets
        self.skipped = int(rows["iface"].null_count())
        rows = rows.filter(pl.col("iface").is_not_null())
        self.count = len(rows)
        self.file_id = rows["file_id"].to_numpy()
        self.offset = rows["file_offset"].to_numpy()
        self.cap_len = rows["cap_len"].to_numpy()
        self.wire_len = rows["len"].to_numpy()
        self.timed = rows["ts_ns"].is_not_null().to_numpy()
        self.ts_ns = rows["ts_ns"].fill_null(0).to_numpy()
        self.linktype = rows["linktype"].to_numpy()
        self.infos = {fid: f.info for fid, f in files.items()}
        self.interfaces, self.out_iface = self._interfaces(rows)
        if fmt == "pcap":
            linktypes = sorted({int(i.facts["linktype"]) for i in self.interfaces})
            if len(linktypes) > 1:
                names = ", ".join(linktype_name(lt) for lt in linktypes)
                raise ExportError(f"a pcap file holds one link type, and these frames have "
                                  f"{len(linktypes)} ({names}): write .pcapng")

    def _interfaces(self, rows: pl.DataFrame):
        """The output's interfaces, and each frame's index among them: one per (file, IDB)
        used, in order of first use, except that the one whose frames have no timestamp
        comes first (a simple packet block belongs to the first interface)."""
        section_first = {fid: self._section_firsts(info) for fid, info in self.infos.items()}
        glob = rows["iface"].to_numpy().astype(np.int64)
        for fid, firsts in section_first.items():
            if len(firsts) > 1:
                mine = self.file_id == fid
                sections = np.searchsorted(self._section_starts(fid), self.offset[mine],
                                           side="right") - 1
                glob[mine] += np.asarray(firsts, np.int64)[sections]
        key = self.file_id.astype(np.int64) << 32 | glob
        keys, first_use, inverse = np.unique(key, return_index=True, return_inverse=True)
        order = np.argsort(first_use, kind="stable")
        untimed = np.unique(inverse[~self.timed])
        if len(untimed) == 1:
            order = np.concatenate([untimed, order[order != untimed[0]]])
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        interfaces = [_Interface(self.infos[int(k >> 32)]["interfaces"][int(k & 0xFFFFFFFF)])
                      for k in keys[order]]
        return interfaces, rank[inverse].astype(np.uint32)

    @staticmethod
    def _section_firsts(info: dict) -> list[int]:
        """The index in info["interfaces"] of each section's first interface."""
        firsts: list[int] = []
        sections = int(info.get("sections", 1) or 1)
        for s in range(sections):
            at = [i for i, f in enumerate(info["interfaces"]) if f.get("section", 0) == s]
            firsts.append(at[0] if at else (firsts[-1] if firsts else 0))
        return firsts

    def _section_starts(self, fid: int) -> np.ndarray:
        """The offsets of a pcapng file's section header blocks (for files of several
        sections, whose packets name their interface within their section): a walk over
        the block headers."""
        data = self._data(fid)
        starts, pos, big = [], 0, False
        while True:
            head = bytes(data[pos:pos + 12])
            if len(head) < 12:
                break
            if head[:4] == b"\x0a\x0d\x0d\x0a":
                starts.append(pos)
                big = head[8:12] == b"\x1a\x2b\x3c\x4d"
            length = struct.unpack(">I" if big else "<I", head[4:8])[0]
            if length < 12:
                break
            pos += length
        return np.asarray(starts or [0], np.int64)

    def _data(self, fid: int):
        """The (decompressed) bytes of file `fid`, sliceable: the file mapped, or a compressed
        file read on as the slices ask (_Compressed)."""
        cache = self.__dict__.setdefault("_bytes", {})
        if fid not in cache:
            source = self.sources[fid]
            if source.compression is not None:
                cache[fid] = _Compressed(source)
            elif source.file_size == 0:
                cache[fid] = memoryview(b"")
            else:
                with open(source.path, "rb") as fh:
                    cache[fid] = memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
        return cache[fid]

    def _batches(self):
        """Consecutive slices of the frames, of at most BATCH frames and BATCH_BYTES
        captured bytes (or one frame): the pieces written at a time."""
        ends = np.cumsum(self.cap_len, dtype=np.int64)
        start = 0
        while start < self.count:
            before = int(ends[start - 1]) if start else 0
            stop = min(start + BATCH, int(np.searchsorted(ends, before + BATCH_BYTES, "right")))
            stop = max(stop, start + 1)
            yield slice(start, stop)
            start = stop

    def write(self, out) -> None:
        if self.fmt == "pcap":
            self._write_pcap(out)
        else:
            self._write_pcapng(out)

    def _frames(self, heads: memoryview, head_at: np.ndarray, head_len: np.ndarray,
                tails: memoryview | None = None, tail_at=None, tail_len=None):
        """Each frame's pieces in turn, a batch of frames at a time: its header
        (heads[head_at:+head_len]), its captured bytes, its trailer if any. (A list
        comprehension per batch: ~1 us a frame, where a loop appending took ~3.)"""
        data = [self._data(fid) if fid in self.sources else None
                for fid in range(max(self.sources, default=-1) + 1)]
        for part in self._batches():
            columns = zip(self.file_id[part].tolist(), self.offset[part].tolist(),
                          (self.offset[part] + self.cap_len[part]).tolist(),
                          head_at[part].tolist(), (head_at[part] + head_len[part]).tolist())
            if tails is None:
                yield [piece for fid, first, end, h, h_end in columns
                       for piece in (heads[h:h_end], data[fid][first:end])]
            else:
                ends = zip(tail_at[part].tolist(), (tail_at[part] + tail_len[part]).tolist())
                yield [piece for (fid, first, end, h, h_end), (t, t_end) in zip(columns, ends)
                       for piece in (heads[h:h_end], data[fid][first:end], tails[t:t_end])]

    def _write_pcap(self, out) -> None:
        nsec = any(i.finer_than_us() for i in self.interfaces) or bool((self.ts_ns % 1000).any())
        if self.count and (self.ts_ns.min() < 0 or self.ts_ns.max() >= (1 << 32) * NS):
            raise ExportError("a timestamp is outside pcap's range (1970 to 2106): write .pcapng")
        snaplens = [int(i.facts.get("snaplen") or DEFAULT_SNAPLEN) for i in self.interfaces]
        snaplen = max(snaplens + [int(self.cap_len.max()) if self.count else 0, 1])
        linktype = int(self.interfaces[0].facts["linktype"]) if self.interfaces else 1
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D if nsec else 0xA1B2C3D4, 2, 4, 0, 0,
                              snaplen, linktype))
        heads = np.empty(self.count, [("sec", "<u4"), ("frac", "<u4"), ("cap", "<u4"),
                                      ("len", "<u4")])
        heads["sec"] = self.ts_ns // NS
        heads["frac"] = self.ts_ns % NS // (1 if nsec else 1000)
        heads["cap"] = self.cap_len
        heads["len"] = self.wire_len
        at = np.arange(self.count, dtype=np.int64) * 16
        for pieces in self._frames(memoryview(heads.tobytes()), at, np.full(self.count, 16)):
            out.writelines(pieces)

    def _write_pcapng(self, out) -> None:
        from importlib.metadata import version

        out.write(_block(PCAPNG_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                         + _options([(OPT_SHB_USERAPPL, f"tcpsift {version('tcpsift')}".encode())])))
        # each interface's timestamps in its own units when they read back exactly
        units = np.zeros(self.count, np.uint64)
        for index, interface in enumerate(self.interfaces):
            mine = (self.out_iface == index) & self.timed
            interface_units, exact = interface.units(self.ts_ns[mine])
            if not exact:
                interface.resol, interface.pow2 = 9, False
                interface_units, _ = interface.units(self.ts_ns[mine])
            units[mine] = interface_units
            out.write(_idb(interface))
        simple = ~self.timed & (self.out_iface == 0)
        padded = (self.cap_len + 3) & ~np.uint32(3)
        block_len = np.where(simple, 16, 32) + padded.astype(np.int64)
        heads = np.zeros(self.count, [("type", "<u4"), ("len", "<u4"), ("iface", "<u4"),
                                      ("ts_hi", "<u4"), ("ts_lo", "<u4"), ("cap", "<u4"),
                                      ("wire", "<u4")])
        heads["type"] = np.where(simple, PCAPNG_SPB, PCAPNG_EPB)
        heads["len"] = block_len
        heads["iface"] = self.out_iface
        heads["ts_hi"] = units >> np.uint64(32)
        heads["ts_lo"] = units & np.uint64(0xFFFFFFFF)
        heads["cap"] = self.cap_len
        heads["wire"] = self.wire_len
        # a simple packet block's header is the type, the length and the original length
        heads["iface"][simple] = self.wire_len[simple]
        head_at = np.arange(self.count, dtype=np.int64) * 28
        head_len = np.where(simple, 12, 28)
        # each frame's trailer: padding to 4 bytes, then the block length again
        tails = np.zeros(self.count, [("pad", "<u4"), ("len", "<u4")])
        tails["len"] = block_len
        pad = (padded - self.cap_len).astype(np.int64)
        tail_at = np.arange(self.count, dtype=np.int64) * 8 + 4 - pad
        for pieces in self._frames(memoryview(heads.tobytes()), head_at, head_len,
                                   memoryview(tails.tobytes()), tail_at, pad + 4):
            out.writelines(pieces)


class _Compressed:
    """A compressed file's bytes, sliced, decompressed forward as the slices ask: frames of
    one file come in file order, so an export makes one pass over the file and holds a
    window of it (from the last slice's start to the end of what was decompressed).
    A slice before the window starts the decompression again. (Source.read_at does the
    same a frame at a time, at ~30 us a frame; this keeps the window between slices.)"""

    STEP = 1 << 20

    def __init__(self, source):
        self.source = source
        self.stream = None
        self.window = bytearray()
        self.base = 0               # the file offset of window[0]
        self.scratch = memoryview(bytearray(self.STEP))

    def __getitem__(self, part: slice) -> bytes:
        first, end = part.start, part.stop
        if self.stream is None or first < self.base:
            self._restart()
        if first - self.base > len(self.window) // 2:     # drop what no slice will ask for
            drop = min(first - self.base, len(self.window))
            del self.window[:drop]
            self.base += drop
        stream = self.stream
        assert stream is not None       # _restart() opened it
        while self.base + len(self.window) < end:
            got = stream.readinto(self.scratch)
            if not got:
                break
            self.window += self.scratch[:got]
        return bytes(self.window[first - self.base:end - self.base])

    def _restart(self):
        if self.stream is not None:
            self.stream.close()
        self.stream = self.source.inflate()
        self.window = bytearray()
        self.base = 0

    def __del__(self):
        if self.stream is not None:
            self.stream.close()


def _options(options: list[tuple[int, bytes]]) -> bytes:
    """A pcapng options list, ended by opt_endofopt (nothing when there is none)."""
    if not options:
        return b""
    body = b"".join(struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
                    for code, value in options)
    return body + struct.pack("<HH", OPT_END, 0)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def _idb(interface: _Interface) -> bytes:
    facts = interface.facts
    options = []
    if facts.get("name"):
        options.append((OPT_IF_NAME, facts["name"].encode()))
    if interface.resol != 6 or interface.pow2:
        options.append((OPT_IF_TSRESOL, bytes([interface.resol | (0x80 if interface.pow2 else 0)])))
    if facts.get("tsoffset"):
        options.append((OPT_IF_TSOFFSET, struct.pack("<q", int(facts["tsoffset"]))))
    return _block(PCAPNG_IDB, struct.pack("<HHI", int(facts["linktype"]), 0,
                                          int(facts.get("snaplen") or 0)) + _options(options))
