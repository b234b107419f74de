"""IP reassembly, as tshark does it by default (`ip.defragment`, `ipv6.defragment`).

Fragments carry no transport header of their own: the frame whose fragment completes
a datagram is decoded again from a synthetic frame (its own bytes up to the end of its
IP header, or IPv6 fragment header, followed by the reassembled payload), so that its
row shows the transport (and any tunnelled packet) the datagram carries, as tshark
shows it on that frame. Fragments are rare; this pass touches only them.
"""
from __future__ import annotations

import heapq

import numpy as np

from tcpsift.capture.source import BOUND_NOTE
from tcpsift.decode import _decode

# Wireshark keeps at most this much of a datagram being reassembled.
MAX_DATAGRAM = 65535 + 8
# Incomplete datagrams held at once, and the bytes their fragments hold (each fragment
# counted with PIECE_OVERHEAD for its bookkeeping). tshark sets no limit: it keeps
# every incomplete datagram to the end of the capture. Past either bound the oldest
# incomplete datagrams are dropped (a datagram still incomplete after this many
# others is almost never completed), with one warning for the file.
MAX_PENDING_DATAGRAMS = 1 << 16
MAX_PENDING_BYTES = 64 << 20
PIECE_OVERHEAD = 128


class _Datagram:
    """The fragments of one datagram as they came (never zero-filled to an offset).

    Completion is known in O(log n) per fragment: `reach` is the end of the data
    contiguous from offset 0, `beyond` a heap of the fragments that start past it.
    The datagram is put together once, when complete, as tshark does: fragments in
    offset order, the earlier one first at the same offset, each giving only the
    bytes past those before it (so the first copy of overlapping data wins).
    A fragment that starts where an earlier one starts and ends no later can give
    nothing: it is not kept (a flood of duplicates costs no memory)."""
    __slots__ = ("pieces", "end_at", "beyond", "reach", "total", "held")

    def __init__(self):
        self.pieces: list[tuple[int, int, bytes]] = []     # (offset, arrival, bytes)
        self.end_at: dict[int, int] = {}                     # offset -> furthest end
        self.beyond: list[tuple[int, int]] = []              # heap of (offset, end)
        self.reach = 0
        self.total = -1
        self.held = 0

    def add(self, offset: int, chunk: bytes, last: bool) -> bool:
        """Add a fragment; True when the datagram is complete."""
        end = offset + len(chunk)
        if end > MAX_DATAGRAM:
            return False
        if last and self.total < 0:
            self.total = end        # the first last fragment says the length, as in tshark
        if self.end_at.get(offset, -1) < end:
            self.end_at[offset] = end
            self.pieces.append((offset, len(self.pieces), chunk))
            self.held += len(chunk) + PIECE_OVERHEAD
            if offset <= self.reach:
                self.reach = max(self.reach, end)
                while self.beyond and self.beyond[0][0] <= self.reach:
                    self.reach = max(self.reach, heapq.heappop(self.beyond)[1])
            else:
                heapq.heappush(self.beyond, (offset, end))
        return self.total >= 0 and self.reach >= self.total

    def payload(self) -> bytes:
        out = bytearray()
        for offset, _arrival, chunk in sorted(self.pieces, key=lambda p: (p[0], p[1])):
            if offset > len(out):
                break
            out += chunk[len(out) - offset:]
        return bytes(out[:self.total])


class PendingDatagrams:
    """The incomplete datagrams of a file, carried from block to block, within
    MAX_PENDING_DATAGRAMS and MAX_PENDING_BYTES (oldest dropped first); `dropped`
    counts the datagrams dropped so, `warning()` says so in one line."""

    def __init__(self, max_datagrams: int = MAX_PENDING_DATAGRAMS,
                 max_bytes: int = MAX_PENDING_BYTES):
        self.max_datagrams, self.max_bytes = max_datagrams, max_bytes
        self.datagrams: dict[tuple, _Datagram] = {}
        self.held = 0
        self.dropped = 0

    def add(self, key: tuple, offset: int, chunk: bytes, last: bool) -> bytes | None:
        """Add a fragment; the datagram's payload when this fragment completes it."""
        dg = self.datagrams.get(key)
        if dg is None:
            dg = self.datagrams[key] = _Datagram()
        before = dg.held
        complete = dg.add(offset, chunk, last)
        self.held += dg.held - before
        if complete:
            del self.datagrams[key]
            self.held -= dg.held
            return dg.payload()
        while self.datagrams and (len(self.datagrams) > self.max_datagrams
                                  or self.held > self.max_bytes):
            oldest = next(iter(self.datagrams))
            self.held -= self.datagrams.pop(oldest).held
            self.dropped += 1
        return None

    def clear(self):
        """Let the incomplete datagrams go (the file has ended: none can complete)."""
        self.datagrams.clear()
        self.held = 0

    def warning(self) -> str | None:
        if not self.dropped:
            return None
        return (f"{self.dropped} incomplete IP datagrams were dropped unreassembled "
                f"(more than {self.max_datagrams} pending, or more than "
                f"{self.max_bytes >> 20} MiB of their fragments, at once) {BOUND_NOTE}")


def reassemble(view, base: int, rec: dict, pkt: dict, addrs, first_row: int,
               pending: PendingDatagrams | None = None):
    """Reassemble the IP fragments of frames just decoded, patching `pkt` rows in place.

    `view` holds the file's bytes from file offset `base` (record offsets are file
    offsets).
    `pending` carries the datagrams still incomplete from block to block of a file.
    Returns (rows, layer_rows): the global row numbers that were re-decoded and the
    layer-table rows their synthetic decode produced (to replace their old ones).
    """
    frag = np.flatnonzero(pkt["frag_data_offset"] != 0)
    layers = _decode.LayerBuffer()
    if len(frag) == 0:
        return np.empty(0, np.int64), layers.to_numpy()
    if pending is None:
        pending = PendingDatagrams()
    done_rows = []
    for i in frag.tolist():
        if pkt["status"][i] != 0:
            continue
        data_off = int(pkt["frag_data_offset"][i])
        # payload bytes of this fragment per its IP header, as far as they were captured
        length = int(pkt["ip_len"][i]) - (data_off - int(pkt["ip_offset"][i]))
        start = int(rec["offset"][i]) - base
        captured = int(rec["cap_len"][i]) - data_off
        if length < 0 or captured < length:
            continue        # cut by the snapshot length: cannot be reassembled
        key = (int(pkt["ip_version"][i]), int(pkt["src"][i]), int(pkt["dst"][i]),
               int(pkt["ip_id"][i]), int(pkt["ip_proto"][i]) if pkt["ip_version"][i] == 4 else 0)
        chunk = bytes(view[start + data_off:start + data_off + length])
        payload = pending.add(key, int(pkt["frag_offset"][i]) * 8, chunk,
                              not pkt["more_fragments"][i])
        if payload is None:
            continue
        frame = bytes(view[start:start + data_off]) + payload
        one = _decode.new_packet_arrays(1)
        _decode.decode_frames(frame, np.zeros(1, np.int64), np.array([len(frame)], np.uint32),
                              np.array([len(frame)], np.uint32), rec["linktype"][i:i + 1].copy(),
                              addrs, one, layers, first_row + i, _decode.U32Buffer(),
                              reasm_off=int(pkt["ip_offset"][i]), reasm_len=len(payload))
        for name, col in one.items():
            if name in ("frag_data_offset", "ip_offset", "sack_count"):
                continue
            pkt[name][i] = col[0]
        # the payload now lives in no captured frame; SACK edges are not re-added
        pkt["present"][i] &= np.uint32(~(_decode.PRESENCE["payload"] | _decode.PRESENCE["sack"]) & 0xFFFFFFFF)
        done_rows.append(first_row + i)
    return np.array(done_rows, np.int64), layers.to_numpy()


def merge_reassembled(layer_rows: np.ndarray, replaced: list, replacements: list) -> np.ndarray:
    """Layer rows with those of re-decoded (reassembled) frames replaced: `replaced` and
    `replacements` are what reassemble() returned, call by call."""
    if not replaced:
        return layer_rows
    gone = np.isin(layer_rows["row"], np.concatenate(replaced))
    merged = np.concatenate([layer_rows[~gone]] + list(replacements))
    return merged[np.argsort(merged["row"], kind="stable")]
