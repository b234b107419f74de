"""Walk a Source's records and decode them, chunk by chunk, into column arrays."""
from __future__ import annotations

import struct
import threading
from typing import Protocol

import numpy as np

from tcpsift.capture import _records
from tcpsift.capture.source import BOUND_NOTE, PCAP_MAGICS, Source
from tcpsift.decode import _decode, reassembly
from tcpsift.errors import CaptureError

# Records per chunk when the caller does not say: an upper bound from the file size
# (a record takes 16 bytes or more), capped so that the reservation stays reasonable;
# np.empty only reserves address space, and pages no record reaches are never touched.
MAX_CHUNK_RECORDS = 1 << 27
# A block of at least SPLIT_MIN frames, while another thread helps (see SourceWalk.help),
# is decoded in two parts at once: the helper decodes its last SPLIT_SHARE. Only small
# frames make that many in a block (2 MiB: 3000 frames of 700 bytes); with large frames
# the copy from the page cache costs more than the decode, and the helper does better
# to read ahead (measured on the benchmark captures: 15-20 % faster on many.pcap, 5 %
# on headers.pcap, and 5-10 % slower on bulk.pcap if split).
SPLIT_MIN = 3000
SPLIT_SHARE = 0.45
# LINKTYPE values are assigned well below this; 65000 and up are reserved, and no
# reader (wiretap included) accepts them.
RESERVED_LINKTYPES = 65000


PCAP_HEADER = 24


def _pcap_header(path: str, buf):
    if len(buf) < PCAP_HEADER:
        raise CaptureError(path, f"not a pcap or pcapng file (cut short in the pcap file "
                                 f"header: {len(buf)} of {PCAP_HEADER} bytes)")
    big, nsec = PCAP_MAGICS[bytes(buf[:4])]
    e = ">" if big else "<"
    major, minor, _zone, _sigfigs, snaplen, ltfield = struct.unpack(e + "HHiIII", buf[4:24])
    if major != 2:
        raise CaptureError(path, f"unsupported pcap version {major}.{minor}")
    if ltfield & 0x03FF0000:
        raise CaptureError(path, f"pcap link-type field {ltfield:#010x} has reserved bits set")
    if ltfield & 0xFFFF >= RESERVED_LINKTYPES:
        raise CaptureError(path, f"unknown link type {ltfield & 0xFFFF} (reserved range)")
    return {
        "byte_order": "big-endian" if big else "little-endian",
        "ts_resolution": "ns" if nsec else "us", "version": f"{major}.{minor}",
        "snaplen": snaplen, "linktype": ltfield & 0xFFFF, "big": big, "nsec": nsec,
        "swap_lens": 1 if minor < 3 else 2 if minor == 3 else 0,
    }


def _trim(arrays: dict | None, n: int) -> dict:
    assert arrays is not None       # (the walk fills them before it hands a chunk on)
    return {k: v[:n] for k, v in arrays.items()}


class RecordFilter(Protocol):
    """Which frames a reader wants, told from their records before they are decoded."""

    def skips(self, ts_ns: np.ndarray, has_ts: np.ndarray, first_row: int) -> bool:
        """Whether none of these consecutive frames (the first at row `first_row`) is
        wanted."""

    def ends(self, row: int) -> bool:
        """Whether no frame at row `row` or after is wanted."""


def decoding_warnings(bounded: int, state) -> list[str]:
    """What a walk says about frames it could not decode as tshark shows them: nested
    past the decoder's bounds (`bounded`), or with a pcapng time past what int64
    nanoseconds hold (`state`: the PcapngState, or None for pcap)."""
    out = []
    if bounded:
        out.append(f"{bounded} frames nest headers past tcpsift's bounds (16 tunnels or "
                   f"ICMP errors in one another, 64 headers in all): decoded up to them "
                   f"{BOUND_NOTE}")
    late = getattr(state, "out_of_range", 0)
    if late:
        out.append(f"{late} packets have a time before 1677-09-21 or after 2262-04-11, "
                   f"which tcpsift's nanosecond times cannot hold: kept without a time "
                   f"{BOUND_NOTE}")
    return out


class _Part:
    """The part of a block's frames posted for a helper to decode."""
    __slots__ = ("args", "at", "n", "state", "error", "bounded")
    POSTED, RUNNING, DONE = range(3)

    def __init__(self, args: tuple, at: int, n: int):
        self.args, self.at, self.n = args, at, n
        self.state = _Part.POSTED
        self.error: BaseException | None = None
        self.bounded = 0


class SourceWalk:
    """Walks and decodes one source chunk by chunk; after the walk, `info`, `warnings`
    and `complete` say what was learned about the file. Another thread may read
    blocks ahead of the walk with `blocks.help()` (see tcpsift.capture.blocks).

    With `reassemble`, IP fragments are reassembled while their bytes are at hand;
    `reassembled_rows` and `reassembled_layers` then list the re-decoded rows and the
    layer rows that replace theirs (see tcpsift.decode.reassembly).

    A thread that would otherwise wait for the walk's chunks can help it (help(), with
    help_ready() and `wake`: the Helper of tcpsift.capture.background): it reads blocks
    ahead, and decodes the last part of each block's frames while the walking thread
    decodes the first. The helper decodes with addresses, layer rows and SACK edges of
    its own, merged after the walker's part as if one thread had decoded in order."""

    def __init__(self, src: Source, reassemble: bool = False, block: int | None = None):
        self.src = src
        self.warnings: list[str] = []
        self.complete = True
        self.info: dict = {"path": src.path, "format": src.container,
                           "compression": src.compression, "file_size": src.file_size}
        self.reassemble = reassemble
        self.pending = reassembly.PendingDatagrams()
        self.reassembled_rows: list = []
        self.reassembled_layers: list = []
        self._extras_seen = 0           # reassembled frames chunk_extras() has handed on
        self.chunk_row = 0              # the row of the last chunk's first frame
        self.frames = 0                 # frames walked, once the walk has ended
        self.bounded = 0                # frames decoded only up to the decoder's bounds
        self.blocks = src.blocks(block)
        self.wake = threading.Condition()
        self._part: _Part | None = None
        self._helped = False
        self._own = (_decode.AddressTable(), _decode.LayerBuffer(), _decode.U32Buffer())
        self._own_ids = np.empty(0, np.uint32)     # the helper's address ids -> the walk's
        # (a stream may bring the file header in pieces: wait for all of it)
        self.blocks.next(0, PCAP_HEADER if src.container == "pcap" else 0)
        if src.container == "pcap":
            try:
                self.hdr = _pcap_header(src.path, self.blocks.view()[:PCAP_HEADER])
            except CaptureError:
                self.blocks.close()
                raise
            self.info.update({k: self.hdr[k] for k in ("byte_order", "ts_resolution", "version",
                                                        "snaplen")})
            self.state = None
        else:
            self.hdr = None
            self.state = _records.PcapngState()

    def _walk(self, view, pos, out, at, room):
        b = self.blocks
        if self.state is None:
            hdr = self.hdr
            return _records.walk_pcap(view, pos, hdr["big"], hdr["nsec"], hdr["linktype"], out,
                                      room, hdr["swap_lens"], at, b.base, b.final)
        return _records.walk_pcapng(view, pos, self.state, out, room, at, b.base, b.final)

    def chunks(self, addrs, layers, sack_edges, first_row: int, capacity: int | None = None,
               reuse: int = 0, decode: bool = True, wanted: RecordFilter | None = None):
        """Yield (records, packets) array dicts of up to `capacity` frames each (default:
        the whole file at once). With `reuse` = K > 0, the chunks are written into K
        sets of arrays in turn (a chunk's arrays are valid until K more chunks have
        come): memory stays in cache, for consumers that do not keep the arrays.
        Without `decode`, only the record arrays are filled (packets: not written).

        With `wanted`, a block's records that it skips are walked but neither decoded
        nor yielded, and the walk ends where it says no later frame is wanted: a
        chunk's frames are then consecutive, but not always the ones after the last
        chunk's; `chunk_row` is the row of the first frame of the chunk just yielded.
        (IP fragments in skipped records are not reassembled with later ones.)"""
        blocks = self.blocks
        if capacity is None:
            capacity = min(self.src.file_size // 16 + 1, MAX_CHUNK_RECORDS)
        pos = PCAP_HEADER if self.state is None else 0
        row = first_row
        out: dict | None = None
        pkt_out: dict | None = None
        sets: list = []
        filled = 0
        yielded = False
        error = None
        try:
            while True:
                if out is None:
                    if reuse and len(sets) == reuse:
                        out, pkt_out = sets.pop(0)
                    else:
                        out = _records.new_record_arrays(capacity)
                        pkt_out = _decode.new_packet_arrays(capacity)
                    if reuse:
                        sets.append((out, pkt_out))
                if wanted is not None and wanted.ends(row):
                    break
                view = blocks.view()
                room = capacity - filled
                n, pos, error, need = self._walk(view, pos, out, filled, room)
                skip = n and wanted is not None and wanted.skips(
                    out["ts_ns"][filled:filled + n], out["has_ts"][filled:filled + n], row)
                if n and decode and not skip:
                    self._decode(view, out, pkt_out, filled, n, addrs, layers, sack_edges, row)
                del view
                if skip and filled:
                    # the frames kept so far end here: hand them on as a chunk
                    self.chunk_row = row - filled
                    yield _trim(out, filled), _trim(pkt_out, filled)
                    yielded = True
                    filled = 0
                    out = None
                if not skip:
                    filled += n
                row += n
                if error is not None:
                    if self.state is not None and not self.state.sections and "version" not in error:
                        raise CaptureError(self.src.path, f"not a pcap or pcapng file ({error})")
                    if row == first_row:
                        raise CaptureError(self.src.path, error)
                    break
                # a full chunk, or the frames so far when a live source paused
                if filled == capacity or (filled and blocks.paused):
                    self.chunk_row = row - filled
                    yield _trim(out, filled), _trim(pkt_out, filled)
                    yielded = True
                    filled = 0
                    out = None
                    continue
                if skip and n == room:      # the room ran out inside the block
                    continue
                if not blocks.next(pos, need):
                    break
                pos = 0
            if filled or not yielded:       # (every pass of the loop has arrays)
                self.chunk_row = row - filled
                yield _trim(out, filled), _trim(pkt_out, filled)
        finally:
            blocks.close()
        self.frames = row - first_row
        if blocks.warnings:     # the decompressed data ended early: say so first
            self.warnings.extend(f"{self.src.path}: {w}" for w in blocks.warnings)
            self.complete = False
        if error is not None:
            self.warnings.append(f"{self.src.path}: {error}; kept the {row - first_row} "
                                 f"packets before it")
            self.complete = False
        dropped = self.pending.warning()
        if dropped is not None:
            self.warnings.append(f"{self.src.path}: {dropped}")
        self.warnings += [f"{self.src.path}: {w}" for w in
                          decoding_warnings(self.bounded, self.state)]
        self.pending.clear()        # (a walk outlives its file when files are merged)
        self._finish_info()

    def chunk_extras(self, layers, sack_edges):
        """After a chunk of chunks(): its layer rows (with those of frames reassembled
        since the last call in place of theirs) and SACK edges, copied out of the
        decoder's buffers, which are then emptied."""
        seen = self._extras_seen
        layer_rows = reassembly.merge_reassembled(layers.to_numpy(),
                                                  self.reassembled_rows[seen:],
                                                  self.reassembled_layers[seen:])
        self._extras_seen = len(self.reassembled_rows)
        edges = sack_edges.to_numpy()
        layers.clear()
        sack_edges.clear()
        return layer_rows, edges

    def help_ready(self) -> bool:
        self._helped = True
        part = self._part
        return (part is not None and part.state == _Part.POSTED) or self.blocks.can_help()

    def help(self) -> bool:
        with self.wake:
            part = self._part
            if part is None or part.state != _Part.POSTED:
                part = None
            else:
                part.state = _Part.RUNNING
        if part is None:
            return self.blocks.help()
        self._run(part)
        return True

    def _run(self, part: _Part):
        addrs, layers, sack_edges = self._own
        try:
            view, rec, pkt_out, row, base = part.args
            part.bounded = _decode.decode_frames(
                view, rec["offset"], rec["cap_len"], rec["len"], rec["linktype"], addrs,
                pkt_out, layers, row, sack_edges, base=base, at=part.at)
        except BaseException as e:      # raised in the walking thread
            part.error = e
        finally:
            with self.wake:
                part.state = _Part.DONE
                self.wake.notify_all()

    def _decode(self, view, out, pkt_out, at, n, addrs, layers, sack_edges, row):
        base = self.blocks.base
        rec = {k: v[at:at + n] for k, v in out.items()}
        mine = n if not self._helped or n < SPLIT_MIN else n - int(n * SPLIT_SHARE)
        part = None
        if mine < n:
            part = _Part((view, {k: v[mine:] for k, v in rec.items()}, pkt_out, row + mine,
                          base), at + mine, n - mine)
            with self.wake:
                self._part = part
                self.wake.notify_all()
        self.bounded += _decode.decode_frames(
            view, rec["offset"][:mine], rec["cap_len"][:mine], rec["len"][:mine],
            rec["linktype"][:mine], addrs, pkt_out, layers, row, sack_edges, base=base, at=at)
        if part is not None:
            self._finish(part, addrs, pkt_out, layers, sack_edges)
        if self.reassemble:
            pkt = {k: v[at:at + n] for k, v in pkt_out.items()}
            rows, layer_rows = reassembly.reassemble(view, base, rec, pkt, addrs, row,
                                                     self.pending)
            if len(rows):
                self.reassembled_rows.append(rows)
                self.reassembled_layers.append(layer_rows)

    def _finish(self, part: _Part, addrs, pkt_out, layers, sack_edges):
        """Wait for the helper's part (or decode it here if no helper took it) and merge
        its addresses, layer rows and SACK edges after this thread's."""
        with self.wake:
            self._part = None
            run_here = part.state == _Part.POSTED
            if run_here:
                part.state = _Part.RUNNING
            while not run_here and part.state != _Part.DONE:
                self.wake.wait()
        if run_here:
            self._run(part)
        if part.error is not None:
            raise part.error
        self.bounded += part.bounded
        own_addrs, own_layers, own_sacks = self._own
        if len(own_addrs) > len(self._own_ids):
            self._own_ids = np.concatenate([self._own_ids,
                                            addrs.absorb(own_addrs, len(self._own_ids))])
        _decode.remap_addresses(pkt_out, part.at, part.at + part.n, self._own_ids)
        first = len(layers)
        layers.take_from(own_layers)
        layers.remap_addresses(first, self._own_ids)
        sack_edges.take_from(own_sacks)

    def _finish_info(self):
        if self.src.pipe is not None:       # its size is known now
            self.info["file_size"] = self.src.pipe.count
        if self.state is not None:
            self.info.update({"byte_order": "big-endian" if self.state.big else "little-endian",
                              "sections": self.state.sections,
                              "interfaces": self.state.interfaces})
        else:
            hdr = self.hdr
            self.info["interfaces"] = [{"linktype": hdr["linktype"], "snaplen": hdr["snaplen"],
                                        "tsresol": 9 if hdr["nsec"] else 6,
                                        "tsresol_pow2": False, "tsoffset": 0, "name": None,
                                        "section": 0}]
