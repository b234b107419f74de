"""`tcpsift export` and `Capture.export`: some frames of a capture written back to a pcap or
pcapng file, byte for byte, with their timestamps, link types and interfaces, in capture
order, so that what was found here opens in Wireshark.

pcapng output has one interface description per (file, interface) that the frames use,
with the interface's link type and snapshot length and, from a pcapng input, the options
of its IDB as they were (name, description, comments, if_tsresol, if_tsoffset, filter,
OS, speed, FCS length, custom options...); from a pcap input, its time resolution. Each
packet keeps the options of its enhanced (or obsolete) packet block: comments, flags,
hashes, drop count, packet id, queue, verdicts, custom options (and an obsolete packet
block's drops count, as epb_dropcount). The section header keeps the input section's
options (comments, hardware, OS, application) when the frames come from one section;
from several, their comments, and the hardware, OS and application they all name
alike. Options are read from the input's blocks (the reader keeps only an IDB's name,
resolution and offset): the packet blocks' and IDBs' bytes, located from the frames'
offsets and a walk over the block headers up to the IDBs used. Their values are copied
byte for byte; those of a big-endian section are written in the output's (little) byte
order, numbers swapped as the pcapng spec defines them (custom options: the PEN only;
options of unknown codes are copied as they are). Custom options 19372 and 19373,
which the spec says are not to be copied into a new file, are left out, as is what
follows a malformed option. Name resolution, statistics and decryption-secret blocks
are not written.

Each timestamp is written in its interface's own resolution when it goes back to the
value read (else in nanoseconds, and the IDB's if_tsresol says so). A frame of a simple
packet block (no timestamp) is written as a simple packet block when its interface is
the output's first and such a block reads back as the frame, else with time 0; a frame
whose time is out of tcpsift's range (kept without one) gets its packet block's time
back when its interface keeps its resolution. pcap output holds one link type, and
uses the nanosecond magic when an interface's resolution is finer than a microsecond
or a timestamp has sub-microsecond digits; it has no options. Custom blocks, which
tshark shows as frames, are not packets and are left out.
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

PCAPNG_SHB, PCAPNG_IDB, PCAPNG_PB, PCAPNG_SPB, PCAPNG_EPB = 0x0A0D0D0A, 1, 2, 3, 6
OPT_END, OPT_IF_NAME, OPT_IF_TSRESOL, OPT_IF_TSOFFSET, OPT_SHB_USERAPPL = 0, 2, 9, 14, 4
OPT_COMMENT, OPT_SHB_HARDWARE, OPT_SHB_OS = 1, 2, 3
OPT_IF_FILTER, OPT_EPB_DROPCOUNT, OPT_EPB_VERDICT = 11, 4, 7
# custom options: with a PEN first; those the spec says a rewriting tool does not copy
OPT_CUSTOM_COPIED, OPT_CUSTOM_NOT_COPIED = (2988, 2989), (19372, 19373)
# the options whose values are numbers (struct formats), by block: a big-endian section's
# are swapped into the output's byte order (if_speed, if_tzone, if_tsoffset, if_txspeed,
# if_rxspeed; epb_flags/pack_flags, epb_dropcount, epb_packetid, epb_queue)
NUMBER_OPTIONS = {"shb": {}, "idb": {8: "Q", 10: "i", 14: "q", 16: "Q", 17: "Q"},
                  "epb": {2: "I", 4: "Q", 5: "Q", 6: "I"}}
# the block types of an enhanced and an obsolete packet block as the first 32-bit word
# reads little-endian, when the block is little- and big-endian
PACKET_TYPES_LE = (PCAPNG_EPB, PCAPNG_PB)
PACKET_TYPES_BE = (PCAPNG_EPB << 24, PCAPNG_PB << 24)


class ExportError(ValueError):
    """What cannot be exported, in one line."""


def format_for(path: str | os.PathLike) -> str:
    """The output format a file name asks for: pcap for .pcap and .cap, else pcapng (which
    holds everything an export writes)."""
    return SUFFIXES.get(os.path.splitext(os.fspath(path))[1].lower(), "pcapng")


class FrameRanges:
    """Frame numbers as ranges of step 1 (`--frames 10-20,35,40-`), kept as ranges: an
    open end (up to 2^32) is not a set of four billion numbers."""

    def __init__(self, ranges: Iterable[range]):
        self.ranges = [r for r in ranges if len(r)]
        if any(r.step != 1 for r in self.ranges):
            raise ValueError("frame ranges have a step of 1")

    def __iter__(self):
        for r in self.ranges:
            yield from r

    def bounds(self) -> tuple[int, int]:
        """The first and last frame numbers (1, 0 when none)."""
        if not self.ranges:
            return 1, 0
        return min(r.start for r in self.ranges), max(r.stop - 1 for r in self.ranges)

    def expr(self) -> pl.Expr:
        """The condition on the "frame" column."""
        return pl.any_horizontal([pl.col("frame").is_between(r.start, r.stop - 1)
                                  for r in self.ranges] or [pl.lit(False)])


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
        elif isinstance(frames, FrameRanges):
            rows = rows.filter(frames.expr())
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
    elif isinstance(frames, FrameRanges):
        (first, last), keep = frames.bounds(), None
    else:
        keep = sorted({int(f) for f in frames})
        first, last = (keep[0], keep[-1]) if keep else (1, 0)
    chunks = CaptureChunks(paths, mode, decode=False, wanted=_FrameRange(first, last))
    rows = pl.concat([chunk.table(COLUMNS).filter(pl.col("frame").is_between(first, last))
                      for chunk in chunks] or [pl.DataFrame(schema=pl_schema())])
    if keep is not None:
        rows = rows.filter(pl.col("frame").is_in(keep))
    elif isinstance(frames, FrameRanges):
        rows = rows.filter(frames.expr())
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
    """One interface of the output: an input file's interface (its IDB's facts, and the
    options of a pcapng input's IDB: (code, value) in the output's byte order, or None
    from a pcap input or when its IDB was not found)."""

    def __init__(self, facts: dict, options: list[tuple[int, bytes]] | None = None,
                 file_id: int = 0):
        self.facts = facts
        self.options = options
        self.file_id = file_id
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
        self.simple = self._simple_blocks()
        self.layouts = self._layouts(rows)
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
        untimed = np.unique(inverse[self.simple])
        if len(untimed) == 1:
            order = np.concatenate([untimed, order[order != untimed[0]]])
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        interfaces = []
        for k in keys[order].tolist():
            fid, index = k >> 32, k & 0xFFFFFFFF
            layout = self.layouts.get(fid)
            options = layout.idb_options.get(index) if layout is not None else None
            interfaces.append(_Interface(self.infos[fid]["interfaces"][index], options, fid))
        return interfaces, rank[inverse].astype(np.uint32)

    def _simple_blocks(self) -> np.ndarray:
        """Which frames come from simple packet blocks (no time): of the frames without a
        time, those of a pcapng file whose block before them is one (its type and both
        its lengths checked), not a packet block whose time tcpsift's range cannot hold."""
        simple = ~self.timed
        untimed = np.flatnonzero(simple)
        for fid in np.unique(self.file_id[untimed]).tolist():
            if self.sources[fid].container != "pcapng":
                continue
            mine = untimed[self.file_id[untimed] == fid]
            at = self.offset[mine].astype(np.int64) - 12
            if self.sources[fid].compression is None:       # mapped: at once
                data = self._data(fid)
                words = np.frombuffer(data, "<u4", count=len(data) // 4)
                aligned = (at >= 0) & (at % 4 == 0)
                kind, length, trailer = _block_words(words, at[aligned] // 4)
                simple[mine[~aligned]] = False
                simple[mine[aligned]] = (kind == PCAPNG_SPB) & (length >= 16) \
                    & (trailer == length)
            else:
                simple[mine] = [_is_simple_block(self._data(fid), a) for a in at.tolist()]
        return simple

    def _layouts(self, rows: pl.DataFrame) -> dict:
        """The _Layout of each pcapng file whose frames are written (its section headers,
        and the options of its section headers and IDBs): its block headers walked up to
        the IDBs its frames use, or, for a file of several sections, to its last frame."""
        iface = rows["iface"].to_numpy()
        layouts = {}
        for fid in np.unique(self.file_id).tolist():
            if self.sources[fid].container != "pcapng":
                continue
            mine = self.file_id == fid
            several = int(self.infos[fid].get("sections", 1) or 1) > 1
            wanted = None if several else set(np.unique(iface[mine]).tolist())
            layouts[fid] = _Layout(self._data(fid), wanted, int(self.offset[mine].max()))
        return layouts

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
        """The offsets of a pcapng file's section header blocks, up to its last frame
        written (for files of several sections, whose packets name their interface
        within their section)."""
        layout = self.layouts.get(fid)      # (None: no frame of the file is written)
        return np.asarray(layout.section_starts if layout and layout.section_starts else [0],
                          np.int64)

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
                tails: memoryview | None = None, tail_at=None, tail_len=None,
                optioned: np.ndarray | None = None):
        """Each frame's pieces in turn, a batch of frames at a time: its header
        (heads[head_at:+head_len]), its captured bytes, its trailer if any. (A list
        comprehension per batch: ~1 us a frame, where a loop appending took ~3.)
        pcapng: the frames `optioned` may have options (_packet_options()): a batch
        that holds some is written by _frames_with_options()."""
        data = [self._data(fid) if fid in self.sources else None
                for fid in range(max(self.sources, default=-1) + 1)]
        for part in self._batches():
            if optioned is not None and optioned[part].any():
                yield self._frames_with_options(part, data, heads, head_at, head_len,
                                                tails, tail_at, tail_len, optioned)
                continue
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

    def _frames_with_options(self, part: slice, data: list, heads: memoryview, head_at,
                             head_len, tails, tail_at, tail_len, optioned) -> list:
        """The pieces of the pcapng blocks of the frames of `part`, a frame at a time: those
        `optioned` read from their input block, with its options after the frame's
        padding, and the block's length grown by them."""
        pieces: list = []
        for i in range(part.start, part.stop):
            fid, first, cap = int(self.file_id[i]), int(self.offset[i]), int(self.cap_len[i])
            h, t = int(head_at[i]), int(tail_at[i])
            head, tail = heads[h:h + int(head_len[i])], tails[t:t + int(tail_len[i])]
            if not optioned[i]:
                pieces += (head, data[fid][first:first + cap], tail)
                continue
            frame, options, units = _packet(data[fid], first, cap)
            own = bytearray(head)
            if units is not None and not self.timed[i] and len(own) == 28 \
                    and self.raw_units[self.out_iface[i]]:
                # its time, out of tcpsift's range, as it was
                struct.pack_into("<II", own, 12, units >> 32, units & 0xFFFFFFFF)
            if options:
                body = _options(options)
                length = struct.unpack_from("<I", own, 4)[0] + len(body)
                struct.pack_into("<I", own, 4, length)
                tail = memoryview(bytes(tail[:-4]) + body + struct.pack("<I", length))
            pieces += (own, frame, tail)
        return pieces

    def _packet_options(self) -> np.ndarray:
        """Which frames to read with their input's packet block (_packet()): in a pcapng
        file mapped, those of enhanced packet blocks that hold more than the frame, of
        obsolete packet blocks, and the frames kept without a time (a time out of
        tcpsift's range) whose block is one (its time is copied), from the block headers
        at once; every frame of a compressed pcapng file (whose bytes come forward only)."""
        optioned = np.zeros(self.count, bool)
        for fid in self.layouts:
            mine = np.flatnonzero(self.file_id == fid)
            if self.sources[fid].compression is not None:
                optioned[mine] = True
                continue
            data = self._data(fid)
            words = np.frombuffer(data, "<u4", count=len(data) // 4)
            at = self.offset[mine].astype(np.int64) - 28
            aligned = (at >= 0) & (at % 4 == 0)
            optioned[mine[~aligned]] = True         # (not met in a well-formed file)
            mine, at = mine[aligned], at[aligned] // 4
            kind, length, trailer = _block_words(words, at)
            padded = (self.cap_len[mine].astype(np.int64) + 3) & ~3
            # (a frame without a time may be a simple packet block's: the lengths tell)
            packet = np.isin(kind, PACKET_TYPES_LE) & (length >= 32 + padded) \
                & (trailer == length)
            obsolete = kind == PCAPNG_PB        # (its drops count)
            optioned[mine] = packet & ((length > 32 + padded) | ~self.timed[mine] | obsolete)
        return optioned

    def _section_options(self) -> list[tuple[int, bytes]]:
        """The output section header's options: those of the input section the frames come
        from, when one; else the comments of their sections, and the hardware, OS and
        application if all name the same; tcpsift as the application when none does."""
        from importlib.metadata import version

        own = (OPT_SHB_USERAPPL, f"tcpsift {version('tcpsift')}".encode())
        sections: list = []         # the options of each section used (None: a pcap file)
        used = sorted({(i.file_id, int(i.facts.get("section", 0) or 0)) for i in self.interfaces})
        for fid, section in used:
            layout = self.layouts.get(fid)
            known = layout is not None and section < len(layout.shb_options)
            sections.append(layout.shb_options[section] if layout is not None and known
                            else None)
        if len(sections) == 1 and sections[0] is not None:
            options = list(sections[0])
        else:
            options = []
            for found in sections:
                for code, value in found or ():
                    if code == OPT_COMMENT and (code, value) not in options:
                        options.append((code, value))
            for code in (OPT_SHB_HARDWARE, OPT_SHB_OS, OPT_SHB_USERAPPL):
                values = {None if found is None else
                          next((v for c, v in found if c == code), None) for found in sections}
                if len(values) == 1 and None not in values:
                    options.append((code, values.pop()))
        if not any(code == OPT_SHB_USERAPPL for code, _ in options):
            options.append(own)
        return options

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
        out.write(_block(PCAPNG_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                         + _options(self._section_options())))
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
        # the interfaces whose frames without a time can take their input block's: those
        # written in their input's resolution
        self.raw_units = [(i.resol, i.pow2) == (int(i.facts.get("tsresol", 6)),
                                                bool(i.facts.get("tsresol_pow2", False)))
                          for i in self.interfaces]
        # a simple packet block where one reads back as the frame: its captured length is
        # the original length cut to the first interface's snapshot length (a frame kept
        # without a time from a packet block may have been cut otherwise: time 0)
        snaplen = int(self.interfaces[0].facts.get("snaplen") or 0) if self.interfaces else 0
        spb_len = np.minimum(self.wire_len, snaplen) if snaplen else self.wire_len
        simple = self.simple & (self.out_iface == 0) & (self.cap_len == spb_len)
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
                                   memoryview(tails.tobytes()), tail_at, pad + 4,
                                   self._packet_options()):
            out.writelines(pieces)


class _Layout:
    """What an export needs of a pcapng file's blocks other than packets, from a walk over
    its block headers from the start (`data`: the file's bytes, sliceable): the offsets of
    its section headers (`section_starts`), the options of each section header
    (`shb_options`, by section) and of its IDBs (`idb_options`, by index among the
    file's IDBs, all sections, as the reader counts them), in the output's byte order.
    The walk ends once the IDBs `wanted` are read (None: all), or past offset `until`
    (a packet comes after its IDB), or at a block that is not well formed."""

    def __init__(self, data, wanted: set[int] | None, until: int):
        self.section_starts: list[int] = []
        self.shb_options: list[list[tuple[int, bytes]]] = []
        self.idb_options: dict[int, list[tuple[int, bytes]]] = {}
        pos, big, count = 0, False, 0
        while pos <= until and (wanted is None or not wanted <= self.idb_options.keys()):
            head = bytes(data[pos:pos + 12])
            if len(head) < 12:
                break
            if head[:4] == b"\x0a\x0d\x0d\x0a":
                big = head[8:12] == b"\x1a\x2b\x3c\x4d"
            kind, length = struct.unpack(">II" if big else "<II", head[:8])
            if length < 12 or length % 4:
                break
            if kind == PCAPNG_SHB:
                self.section_starts.append(pos)
                self.shb_options.append(
                    _parse_options(data[pos + 24:pos + length - 4], big, "shb"))
            elif kind == PCAPNG_IDB:
                if wanted is None or count in wanted:
                    self.idb_options[count] = _parse_options(
                        data[pos + 16:pos + length - 4], big, "idb")
                count += 1
            pos += length


def _parse_options(raw, big: bool, block: str) -> list[tuple[int, bytes]]:
    """The options of a block (`raw`: its options' bytes; `block`: "shb", "idb" or "epb"
    for packet blocks) as (code, value), values in the output's byte order, up to
    opt_endofopt or the end; an option that runs past the end, and what follows, is left
    out, and so are custom options not to be copied (OPT_CUSTOM_NOT_COPIED)."""
    raw = bytes(raw)
    options = []
    pos, end = 0, len(raw)
    head = struct.Struct(">HH" if big else "<HH")
    while end - pos >= 4:
        code, length = head.unpack_from(raw, pos)
        if code == OPT_END or length > end - pos - 4:
            break
        value = raw[pos + 4:pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)
        if code in OPT_CUSTOM_NOT_COPIED:
            continue
        options.append((code, _little_endian(block, code, value) if big else value))
    return options


def _little_endian(block: str, code: int, value: bytes) -> bytes:
    """An option value of a big-endian section in little-endian order: its numbers
    swapped (NUMBER_OPTIONS; a custom option's PEN; the 16- and 32-bit fields of each
    instruction of an if_filter BPF program; the 64-bit value of an eBPF epb_verdict);
    strings, addresses, hashes and options of unknown codes as they are."""
    number = NUMBER_OPTIONS[block].get(code)
    if number is not None and len(value) == struct.calcsize(number):
        return struct.pack("<" + number, *struct.unpack(">" + number, value))
    if code in OPT_CUSTOM_COPIED and len(value) >= 4:
        return value[3::-1] + value[4:]
    if block == "idb" and code == OPT_IF_FILTER and value[:1] == b"\x01" \
            and (len(value) - 1) % 8 == 0:
        program = np.frombuffer(value[1:], [("code", ">u2"), ("jt", "u1"), ("jf", "u1"),
                                            ("k", ">u4")])
        return value[:1] + program.astype([("code", "<u2"), ("jt", "u1"), ("jf", "u1"),
                                            ("k", "<u4")]).tobytes()
    if block == "epb" and code == OPT_EPB_VERDICT and value[:1] in (b"\x01", b"\x02") \
            and len(value) == 9:
        return value[:1] + value[:0:-1]
    return value


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


def _block_words(words: np.ndarray, at: np.ndarray) -> tuple:
    """The type, total length and trailing total length of the pcapng blocks that start at
    the 32-bit words `at` of a file (`words`: the file as little-endian words), as int64
    in their own byte order (that of the type word that reads as a small number); a
    block that would run past the end has trailing length -1."""
    kind, length = words[at].astype(np.int64), words[at + 1]
    big = kind >= 1 << 24       # (the types read here are small numbers)
    kind = np.where(big, words[at].byteswap(), kind).astype(np.int64)
    length = np.where(big, length.byteswap(), length).astype(np.int64)
    inside = (length >= 12) & (at + length // 4 <= len(words))
    trailer = words[np.where(inside, at + length // 4 - 1, 0)]
    trailer = np.where(big, trailer.byteswap(), trailer).astype(np.int64)
    return kind, length, np.where(inside, trailer, -1)


def _is_simple_block(data, at: int) -> bool:
    """Whether a simple packet block starts at offset `at` of a pcapng file (`data`)."""
    kind, length = struct.unpack("<II", bytes(data[at:at + 8]))
    if kind == PCAPNG_SPB << 24:
        length = int.from_bytes(struct.pack("<I", length), "big")
    elif kind != PCAPNG_SPB:
        return False
    trailer = bytes(data[at + length - 4:at + length]) if length >= 16 else b""
    return len(trailer) == 4 and length == struct.unpack(
        ">I" if kind != PCAPNG_SPB else "<I", trailer)[0]


def _packet(data, first: int, cap: int) -> tuple:
    """The captured bytes of the frame at offset `first` of a pcapng file (`data`), the
    options of its enhanced or obsolete packet block (_parse_options()) and the block's
    timestamp units; no options and None when the frame is not in such a block (its
    type and both its lengths checked). The block's header lies 28 bytes before the
    frame; it is read first, then the frame with its padding, options and trailing
    length at once (forward: a compressed file's bytes)."""
    if first < 28:
        return data[first:first + cap], [], None
    head = bytes(data[first - 28:first - 8])
    kind = struct.unpack_from("<I", head)[0]
    if kind not in PACKET_TYPES_LE and kind not in PACKET_TYPES_BE:
        return data[first:first + cap], [], None
    big = kind in PACKET_TYPES_BE
    order = ">" if big else "<"
    _, length, _, hi, lo = struct.unpack(order + "5I", head)
    padded = (cap + 3) & ~3
    if length < 32 + padded:
        return data[first:first + cap], [], None
    end = first - 28 + length
    body = data[first:end]
    if len(body) != end - first or struct.unpack(order + "I", body[-4:])[0] != length:
        return body[:cap], [], None
    options = _parse_options(body[padded:-4], big, "epb")
    if kind == PACKET_TYPES_LE[1] or kind == PACKET_TYPES_BE[1]:
        # an obsolete packet block's drops count, unless "not available", as epb_dropcount
        drops = struct.unpack_from(order + "H", head, 10)[0]
        if drops != 0xFFFF and not any(code == OPT_EPB_DROPCOUNT for code, _ in options):
            options.append((OPT_EPB_DROPCOUNT, struct.pack("<Q", drops)))
    return body[:cap], options, hi << 32 | lo


def _idb(interface: _Interface) -> bytes:
    facts = interface.facts
    tsresol = bytes([interface.resol | (0x80 if interface.pow2 else 0)])
    if interface.options is not None:
        # the input IDB's options; its if_tsresol replaced when the timestamps are written
        # in another resolution (nanoseconds: _write_pcapng)
        options = list(interface.options)
        if (interface.resol, interface.pow2) != (int(facts.get("tsresol", 6)),
                                                 bool(facts.get("tsresol_pow2", False))):
            options = [o for o in options if o[0] != OPT_IF_TSRESOL] + [(OPT_IF_TSRESOL, tsresol)]
        return _block(PCAPNG_IDB, struct.pack("<HHI", int(facts["linktype"]), 0,
                                              int(facts.get("snaplen") or 0)) + _options(options))
    options = []
    if facts.get("name"):
        options.append((OPT_IF_NAME, facts["name"].encode()))
    if interface.resol != 6 or interface.pow2:
        options.append((OPT_IF_TSRESOL, tsresol))
    if facts.get("tsoffset"):
        options.append((OPT_IF_TSOFFSET, struct.pack("<q", int(facts["tsoffset"]))))
    return _block(PCAPNG_IDB, struct.pack("<HHI", int(facts["linktype"]), 0,
                                          int(facts.get("snaplen") or 0)) + _options(options))
