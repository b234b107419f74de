"""Walk a Source's records and decode them, chunk by chunk, into column arrays."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from tcpsift.capture import _records
from tcpsift.capture.source import PCAP_MAGICS, Source
from tcpsift.decode import _decode, reassembly
from tcpsift.errors import CaptureError

# Records per walk: an upper bound from the buffer size (a record takes 16 bytes or
# more), so one walk usually takes the whole file. np.empty only reserves address
# space; pages that no record reaches are never touched. The cap keeps the
# reservation reasonable for huge files, which are then walked in several chunks.
MAX_CHUNK_RECORDS = 1 << 27
# LINKTYPE values are assigned well below this; 65000 and up are reserved, and no
# reader (wiretap included) accepts them.
RESERVED_LINKTYPES = 65000


@dataclass
class FileResult:
    """One file's decoded arrays and what was learned about the file."""
    source: Source
    records: dict                     # record arrays (offset, cap_len, len, ts_ns, has_ts, iface, linktype)
    packets: dict                     # decoder arrays (see _decode.new_packet_arrays)
    sack_edges: np.ndarray
    info: dict
    warnings: list[str] = field(default_factory=list)
    complete: bool = True
    reassembled_rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    reassembled_layers: np.ndarray | None = None


def _pcap_header(src: Source):
    buf = src.data
    if len(buf) < 24:
        raise CaptureError(src.path, f"not a pcap or pcapng file (cut short in the pcap file "
                                     f"header: {len(buf)} of 24 bytes)")
    big, nsec = PCAP_MAGICS[bytes(buf[:4])]
    e = ">" if big else "<"
    major, minor, _zone, _sigfigs, snaplen, ltfield = struct.unpack(e + "HHiIII", buf[4:24])
    if major != 2:
        raise CaptureError(src.path, f"unsupported pcap version {major}.{minor}")
    if ltfield & 0x03FF0000:
        raise CaptureError(src.path, f"pcap link-type field {ltfield:#010x} has reserved bits set")
    if ltfield & 0xFFFF >= RESERVED_LINKTYPES:
        raise CaptureError(src.path, f"unknown link type {ltfield & 0xFFFF} (reserved range)")
    return {
        "byte_order": "big-endian" if big else "little-endian",
        "ts_resolution": "ns" if nsec else "us", "version": f"{major}.{minor}",
        "snaplen": snaplen, "linktype": ltfield & 0xFFFF, "big": big, "nsec": nsec,
        "swap_lens": 1 if minor < 3 else 2 if minor == 3 else 0,
    }


def _concat(chunks: list[dict]) -> dict:
    if len(chunks) == 1:
        return chunks[0]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _trim(arrays: dict, n: int) -> dict:
    return {k: v[:n] for k, v in arrays.items()}


def read_source(src: Source, addrs, layers, first_row: int) -> FileResult:
    """Walk and decode every record of `src`. `first_row` numbers layer rows globally."""
    view = memoryview(src.data).cast("B") if not isinstance(src.data, bytes) else src.data
    warnings = [f"{src.path}: {w}" for w in src.warnings]
    complete = not src.warnings
    info: dict = {"path": src.path, "format": src.container, "compression": src.compression,
                  "file_size": src.file_size}
    if src.container == "pcap":
        hdr = _pcap_header(src)
        info.update({k: hdr[k] for k in ("byte_order", "ts_resolution", "version", "snaplen")})
        pos = 24
        state = None
    else:
        state = _records.PcapngState()
        pos = 0
    rec_chunks, pkt_chunks = [], []
    sack_edges = _decode.U32Buffer()
    row = first_row
    capacity = min(len(view) // 16 + 1, MAX_CHUNK_RECORDS)
    while True:
        out = _records.new_record_arrays(capacity)
        if state is None:
            n, pos, error = _records.walk_pcap(view, pos, hdr["big"], hdr["nsec"], hdr["linktype"],
                                               out, capacity, hdr["swap_lens"])
        else:
            n, pos, error = _records.walk_pcapng(view, pos, state, out, capacity)
        rec = _trim(out, n)
        pkt = _decode.new_packet_arrays(n)
        _decode.decode_frames(view, rec["offset"], rec["cap_len"], rec["len"], rec["linktype"], addrs, pkt,
                              layers, row, sack_edges)
        row += n
        rec_chunks.append(rec)
        pkt_chunks.append(pkt)
        if error is not None:
            if state is not None and not state.sections and "version" not in error:
                raise CaptureError(src.path, f"not a pcap or pcapng file ({error})")
            if row == first_row:
                raise CaptureError(src.path, error)
            warnings.append(f"{src.path}: {error}; kept the {row - first_row} packets before it")
            complete = False
            break
        if n < capacity:
            break
    if state is not None:
        info.update({"byte_order": "big-endian" if state.big else "little-endian",
                     "sections": state.sections, "interfaces": state.interfaces})
    else:
        info["interfaces"] = [{"linktype": hdr["linktype"], "snaplen": hdr["snaplen"],
                               "tsresol": 9 if hdr["nsec"] else 6, "tsresol_pow2": False,
                               "tsoffset": 0, "name": None, "section": 0}]
    rec, pkt = _concat(rec_chunks), _concat(pkt_chunks)
    rows, layer_rows = reassembly.reassemble(view, rec, pkt, addrs, first_row)
    return FileResult(src, rec, pkt, sack_edges.to_numpy(), info, warnings, complete, rows,
                      layer_rows)

