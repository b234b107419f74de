"""A minimal pure-Python reader of pcap/pcapng (plain, gzip, zstd), for tests and checks.

`read_frames(path) -> list[Frame]` where Frame has ts_ns, data, wire_len, linktype, iface.
Stops quietly at the first damaged record. Custom blocks are not frames here.
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass


@dataclass
class Frame:
    ts_ns: int | None
    data: bytes
    wire_len: int
    linktype: int
    iface: int


def load(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(raw).read()
    return raw


def read_frames(path) -> list[Frame]:
    buf = load(path)
    if buf[:4] == b"\x0a\x0d\x0d\x0a":
        return _pcapng(buf)
    return _pcap(buf)


def _pcap(buf: bytes) -> list[Frame]:
    magic_le = struct.unpack_from("<I", buf)[0]
    for e in "<>":
        m = struct.unpack_from(e + "I", buf)[0]
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError("not pcap")
    nsec = m == 0xA1B23C4D
    linktype = struct.unpack_from(e + "I", buf, 20)[0] & 0x0FFFFFFF
    off, out = 24, []
    while off + 16 <= len(buf):
        sec, frac, caplen, wire = struct.unpack_from(e + "IIII", buf, off)
        if caplen > 262144 or off + 16 + caplen > len(buf):
            break
        ts = sec * 10**9 + (frac if nsec else frac * 1000)
        out.append(Frame(ts, buf[off + 16: off + 16 + caplen], wire, linktype, 0))
        off += 16 + caplen
    del magic_le
    return out


def _pcapng(buf: bytes) -> list[Frame]:
    out, off, e, ifaces = [], 0, "<", []
    while off + 12 <= len(buf):
        btype = struct.unpack_from("<I", buf, off)[0]
        if btype == 0x0A0D0D0A:
            bom = buf[off + 8: off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, blen = struct.unpack_from(e + "II", buf, off)
        if blen < 12 or off + blen > len(buf):
            break
        body = buf[off + 8: off + blen - 4]
        if btype == 1:
            lt, _r, snap = struct.unpack_from(e + "HHI", body)
            res, tsoff = 6, 0
            p = 8
            while p + 4 <= len(body):
                code, ln = struct.unpack_from(e + "HH", body, p)
                if code == 0:
                    break
                v = body[p + 4: p + 4 + ln]
                if code == 9 and ln >= 1:
                    res = v[0]
                if code == 14 and ln == 8:
                    tsoff = struct.unpack(e + "q", v)[0]
                p += 4 + ln + (-ln % 4)
            ifaces.append((lt, snap, res, tsoff))
        elif btype in (6, 2):
            if btype == 6:
                iface, hi, lo, caplen, wire = struct.unpack_from(e + "IIIII", body)
                data = body[20: 20 + caplen]
            else:
                iface, _d, hi, lo, caplen, wire = struct.unpack_from(e + "HHIIII", body)
                data = body[20: 20 + caplen]
            if iface >= len(ifaces):
                break
            lt, _s, res, tsoff = ifaces[iface]
            div = (1 << (res & 0x7F)) if res & 0x80 else 10 ** res
            units = (hi << 32) | lo
            s, f = divmod(units, div)
            out.append(Frame((s + tsoff) * 10**9 + f * 10**9 // div, data, wire, lt, iface))
        elif btype == 3:
            if not ifaces:
                break
            wire = struct.unpack_from(e + "I", body)[0]
            lt, snap = ifaces[0][0], ifaces[0][1]
            n = min(wire, snap) if snap else wire
            out.append(Frame(None, body[4: 4 + n], wire, lt, 0))
        off += blen
    return out
