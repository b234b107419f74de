"""Open a capture file: detect its container by content, undo compression.

The only module that touches the file system for captures. A plain file is read in
blocks through one reused buffer; a gzip or zstd file is decompressed into memory,
keeping every byte that decompressed cleanly before a fault.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field

from tcpsift.errors import CaptureError

PCAP_MAGICS = {
    # first four bytes -> (big endian, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": (False, False),
    b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True),
    b"\xa1\xb2\x3c\x4d": (True, True),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
OTHER_FORMATS = {
    b"snoop\x00\x00\x00": "snoop",
    b"\x89PNG": "a PNG image",
}


# Bytes read at a time: large enough that a syscall per block costs nothing, small
# enough to stay in the CPU cache while the block is walked and decoded.
BLOCK_SIZE = 1 << 22


@dataclass
class Source:
    """A capture file and what the container layer learned opening it. A compressed
    file is held decompressed in `data`; a plain one is read in blocks (`blocks()`)."""
    path: str
    data: bytes | None = None
    container: str = "pcap"           # "pcap" or "pcapng"
    compression: str | None = None    # None, "gzip" or "zstd"
    file_size: int = 0
    warnings: list[str] = field(default_factory=list)

    def blocks(self, block: int | None = None):
        """The bytes one block at a time (tcpsift.capture.blocks.Blocks)."""
        from tcpsift.capture.blocks import Blocks
        return Blocks(self, block or BLOCK_SIZE)

    def read_at(self, offset: int, length: int) -> bytes:
        """`length` bytes of the (decompressed) capture from `offset`."""
        if self.data is not None:
            return bytes(self.data[offset:offset + length])
        try:
            with open(self.path, "rb") as fh:
                return os.pread(fh.fileno(), length, offset)
        except OSError as e:
            raise CaptureError(self.path, e.strerror or str(e)) from None


def _gunzip(raw, path, warnings):
    """Decompress every gzip member; keep all output that came before a fault.

    zlib checks the CRC when it reads a member's 8-byte trailer and discards the
    output of the call that fails, so the data goes in pieces and the trailer alone.
    """
    out = bytearray()
    data = memoryview(bytes(raw))
    step = 1 << 20
    while len(data):
        d = zlib.decompressobj(wbits=31)
        pos = 0
        try:
            while pos < len(data) and not d.eof:
                piece = data[pos:pos + step] if len(data) - pos > step + 8 else data[pos:-8] or data[pos:]
                out += d.decompress(piece)
                pos += len(piece)
        except zlib.error as e:
            warnings.append(f"compressed data is damaged ({e}); kept what decompressed before it")
            return bytes(out)
        if not d.eof:
            warnings.append("compressed stream cut short; kept what decompressed before the end")
            return bytes(out)
        data = memoryview(d.unused_data)
        if len(data) and bytes(data[:2]) != GZIP_MAGIC:
            break       # trailing garbage after the last member, as gzip(1) ignores it
    return bytes(out)


def _unzstd(raw, path, warnings):
    import zstandard

    out = bytearray()
    d = zstandard.ZstdDecompressor().decompressobj()
    try:
        out += d.decompress(bytes(raw))
    except zstandard.ZstdError as e:
        warnings.append(f"compressed data is damaged ({e}); kept what decompressed before it")
    return bytes(out)


def _container(head: bytes, path: str) -> str:
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    for magic, name in OTHER_FORMATS.items():
        if head.startswith(magic):
            raise CaptureError(path, f"not a pcap or pcapng file ({name})")
    raise CaptureError(path, "not a pcap or pcapng file")


def open_source(path) -> Source:
    """Open `path` as a capture. Raises CaptureError when it is not one."""
    path = os.fspath(path)
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise CaptureError(path, e.strerror or str(e)) from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise CaptureError(path, "empty file: not a pcap or pcapng file")
        head = fh.read(4)
        if head[:2] == GZIP_MAGIC or head == ZSTD_MAGIC:
            fh.seek(0)
            raw = fh.read()
            warnings: list[str] = []
            compression = "gzip" if head[:2] == GZIP_MAGIC else "zstd"
            data = (_gunzip if compression == "gzip" else _unzstd)(raw, path, warnings)
            if not data:
                raise CaptureError(path, f"{compression} data holds no capture"
                                   + (f" ({warnings[0]})" if warnings else ""))
            container = _container(data[:8], path)
            return Source(path, data, container, compression, size, warnings)
        container = _container(head + fh.read(4), path)
        return Source(path, None, container, file_size=size)
