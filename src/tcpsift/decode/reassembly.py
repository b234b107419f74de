"""IP reassembly, as tshark does it by default (`ip.defragment`, `ipv6.defragment`).

Fragments carry no transport header of their own: the frame whose fragment completes
a datagram is decoded again from a synthetic frame (its own bytes up to the end of its
IP header, or IPv6 fragment header, followed by the reassembled payload), so that its
row shows the transport (and any tunnelled packet) the datagram carries, as tshark
shows it on that frame. Fragments are rare; this pass touches only them.
"""
from __future__ import annotations

import numpy as np

from tcpsift.decode import _decode

# Wireshark keeps at most this much of a datagram being reassembled.
MAX_DATAGRAM = 65535 + 8


class _Datagram:
    __slots__ = ("data", "covered", "total")

    def __init__(self):
        self.data = bytearray()
        self.covered: list[tuple[int, int]] = []
        self.total = -1

    def add(self, offset: int, chunk: bytes, last: bool) -> bool:
        """Add a fragment; True when the datagram is complete."""
        end = offset + len(chunk)
        if end > MAX_DATAGRAM:
            return False
        if len(self.data) < end:
            self.data.extend(b"\0" * (end - len(self.data)))
        self.data[offset:end] = chunk
        self.covered.append((offset, end))
        if last:
            self.total = end
        if self.total < 0:
            return False
        reach = 0
        for lo, hi in sorted(self.covered):
            if lo > reach:
                return False
            reach = max(reach, hi)
        return reach >= self.total


def reassemble(view, base: int, rec: dict, pkt: dict, addrs, first_row: int,
               pending: dict | None = None):
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
        pending = {}
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
        dg = pending.setdefault(key, _Datagram())
        chunk = bytes(view[start + data_off:start + data_off + length])
        if not dg.add(int(pkt["frag_offset"][i]) * 8, chunk, not pkt["more_fragments"][i]):
            continue
        del pending[key]
        payload = bytes(dg.data[:dg.total])
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
