"""Walk a Source's records and decode them, chunk by chunk, into column arrays."""
from __future__ import annotations

import struct


from tcpsift.capture import _records
from tcpsift.capture.source import PCAP_MAGICS, Source
from tcpsift.decode import _decode
from tcpsift.errors import CaptureError

# Records per walk: an upper bound from the buffer size (a record takes 16 bytes or
# more), so one walk usually takes the whole file. np.empty only reserves address
# space; pages that no record reaches are never touched. The cap keeps the
# reservation reasonable for huge files, which are then walked in several chunks.
MAX_CHUNK_RECORDS = 1 << 27
# LINKTYPE values are assigned well below this; 65000 and up are reserved, and no
# reader (wiretap included) accepts them.
RESERVED_LINKTYPES = 65000


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


def _trim(arrays: dict, n: int) -> dict:
    return {k: v[:n] for k, v in arrays.items()}


class SourceWalk:
    """Walks and decodes one source chunk by chunk; after the walk, `info`, `warnings`
    and `complete` say what was learned about the file."""

    def __init__(self, src: Source):
        self.src = src
        self.view = memoryview(src.data).cast("B") if not isinstance(src.data, bytes) else src.data
        self.warnings = [f"{src.path}: {w}" for w in src.warnings]
        self.complete = not src.warnings
        self.info: dict = {"path": src.path, "format": src.container,
                           "compression": src.compression, "file_size": src.file_size}
        if src.container == "pcap":
            self.hdr = _pcap_header(src)
            self.info.update({k: self.hdr[k] for k in ("byte_order", "ts_resolution", "version",
                                                        "snaplen")})
            self.state = None
        else:
            self.state = _records.PcapngState()

    def chunks(self, addrs, layers, sack_edges, first_row: int, capacity: int | None = None,
               reuse: bool = False):
        """Yield (records, packets) array dicts of up to `capacity` frames each (default:
        the whole file at once). With `reuse`, every chunk is written into the same
        arrays (valid until the next chunk): memory stays in cache, for aggregates."""
        view, state, hdr = self.view, self.state, getattr(self, "hdr", None)
        pos = 24 if state is None else 0
        if capacity is None:
            capacity = min(len(view) // 16 + 1, MAX_CHUNK_RECORDS)
        row = first_row
        out = pkt_out = None
        while True:
            if out is None or not reuse:
                out = _records.new_record_arrays(capacity)
                pkt_out = _decode.new_packet_arrays(capacity)
            if state is None:
                n, pos, error = _records.walk_pcap(view, pos, hdr["big"], hdr["nsec"],
                                                   hdr["linktype"], out, capacity, hdr["swap_lens"])
            else:
                n, pos, error = _records.walk_pcapng(view, pos, state, out, capacity)
            rec, pkt = _trim(out, n), _trim(pkt_out, n)
            _decode.decode_frames(view, rec["offset"], rec["cap_len"], rec["len"],
                                  rec["linktype"], addrs, pkt, layers, row, sack_edges)
            row += n
            if error is not None:
                if state is not None and not state.sections and "version" not in error:
                    raise CaptureError(self.src.path, f"not a pcap or pcapng file ({error})")
                if row == first_row:
                    raise CaptureError(self.src.path, error)
            yield rec, pkt
            if error is not None:
                self.warnings.append(f"{self.src.path}: {error}; kept the {row - first_row} "
                                     f"packets before it")
                self.complete = False
                break
            if n < capacity:
                break
        self._finish_info()

    def _finish_info(self):
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
