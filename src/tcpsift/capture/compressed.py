"""The decompressed bytes of a gzip or zstd capture, read piece by piece.

A compressed capture is never inflated whole: the walk reads it block by block like a
plain file (tcpsift.capture.blocks), so memory stays bounded by the blocks, and a
helper thread can decompress the next block while the walking thread decodes (zlib and
zstd work without the GIL).

Every gzip member and zstd frame is read in turn, as gzip(1) and zstd(1) do; zeros
after the last one are ignored, other bytes that do not start another are ignored with
a warning. A fault (damaged data, a stream cut short) ends the data with a warning,
keeping every byte decompressed before it.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAGICS = {"gzip": GZIP_MAGIC, "zstd": ZSTD_MAGIC}
# Compressed bytes given to the decompressor at a time: a fault loses the output of
# the call that meets it (zlib and zstd discard it), so pieces are small. zlib's output
# per call has a limit (max_length); zstandard's decompressobj has none, so its pieces
# bound its output: a zstd block of up to 128 KiB can be 4 bytes (an RLE block), so
# 1 KiB of input inflates to 32 MiB at most (16 KiB pieces: 512 MiB, and a 61 KB file of
# zeros took 1.14 GB). Smaller pieces cost more calls: 256 bytes took 0.27 s per 200 MB
# of output, 1 KiB 0.07-0.13 s, like 16 KiB.
INPUT_STEP = {"gzip": 1 << 16, "zstd": 1 << 10}
# A gzip member ends with its CRC and length. The file's last bytes are given to zlib
# alone, so that a bad CRC (zlib discards the output of the call that fails) costs no data.
GZIP_TRAILER = 8


def compression_of(head: bytes) -> str | None:
    for name, magic in MAGICS.items():
        if head.startswith(magic):
            return name
    return None


class Inflate:
    """`readinto(view)` fills `view` with the next decompressed bytes (0 at the end);
    `warnings` says why the data ended early, if it did. The compressed bytes come from
    `read(n)` (up to n bytes, b"" at the end): `size` of them, or an unknown number
    (None: a pipe; a bad CRC then loses the output of the last piece). `close` is
    called by close()."""

    def __init__(self, read: Callable[[int], bytes], size: int | None, compression: str,
                 close: Callable[[], None] | None = None):
        self.read, self.size, self.compression = read, size, compression
        self._close = close
        self.pos = 0                    # compressed bytes read so far
        self.exhausted = False          # every compressed byte has been read
        self.pending = b""              # compressed bytes not given to the decompressor yet
        self.out = memoryview(b"")      # decompressed bytes not handed out yet
        self.decompressor: Any = None   # of the current member or frame (zlib or zstd)
        self.held = False               # the decompressor may hold output (gzip)
        self.ended = False
        self.warnings: list[str] = []
        self.errors: tuple = (zlib.error,)
        if compression == "zstd":
            import zstandard
            self.errors += (zstandard.ZstdError,)

    def _read_input(self) -> bytes:
        n = step = INPUT_STEP[self.compression]
        if self.size is not None:
            left = self.size - self.pos
            n = min(step, left - GZIP_TRAILER) if left > GZIP_TRAILER else left
        data = self.read(n) if n > 0 else b""
        self.pos += len(data)
        if not data or (self.size is not None and self.pos >= self.size):
            self.exhausted = True       # (also a file that shrank since it was opened)
        return data

    def _start(self) -> bool:
        """A decompressor for the member or frame at the input, if one starts there.
        Other bytes end the data: zeros (padding) silently, anything else with a
        warning (it may be a damaged member or frame)."""
        while len(self.pending) < 4 and not self.exhausted:
            self.pending += self._read_input()
        if not self.pending.startswith(MAGICS[self.compression]):
            offset = self.pos - len(self.pending)
            while not self.pending.strip(b"\0") and not self.exhausted:
                self.pending = self._read_input()
            if self.pending.strip(b"\0"):
                self.warnings.append(f"the bytes from offset {offset} of the file are not "
                                     f"{self.compression} data; ignored them")
            return False
        if self.compression == "gzip":
            self.decompressor = zlib.decompressobj(wbits=31)
        else:
            import zstandard
            self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        return True

    def _fail(self, message: str):
        self.warnings.append(message)
        self.ended = True

    def _decompress(self, limit: int) -> bytes:
        """More decompressed bytes (about `limit` at most for gzip), b"" at the end."""
        while not self.ended:
            d = self.decompressor
            if d is None:
                if not self._start():
                    self.ended = True
                    break
                continue
            try:
                if self.pending or self.held:
                    if self.compression == "gzip":
                        out = d.decompress(self.pending, limit)
                        self.pending = d.unconsumed_tail
                        # output cut at the limit: zlib may hold more after taking every
                        # input byte, asked for before more input is given (that input
                        # may be a CRC that fails, which would lose it)
                        self.held = limit > 0 and len(out) >= limit
                    else:
                        out, self.pending = d.decompress(self.pending), b""
                elif not self.exhausted:
                    self.pending = self._read_input()
                    continue
                else:                   # all the input given: what the decompressor holds
                    out = d.flush() if self.compression == "gzip" else b""
                    if not out and not d.eof:
                        self._fail("compressed stream cut short; kept what decompressed "
                                   "before the end")
                        break
            except self.errors as e:
                self._fail(f"compressed data is damaged ({e}); kept what decompressed "
                           f"before it")
                break
            if d.eof:
                # the input after the member or frame (zlib may leave a copy of it in
                # unconsumed_tail too when an output limit was reached: not used)
                self.pending = d.unused_data
                self.decompressor = None
                self.held = False
            if out:
                return out
        return b""

    def peek(self, n: int) -> bytes:
        """The next n decompressed bytes (fewer at the end), left to be read."""
        while len(self.out) < n:
            more = self._decompress(n - len(self.out))
            if not more:
                break
            self.out = memoryview(bytes(self.out) + more)
        return bytes(self.out[:n])

    def holds_output(self) -> bool:
        """Whether decompressed bytes are waiting to be read (peeked, or more than the
        last readinto took)."""
        return bool(self.out)

    def readinto(self, view) -> int:
        if not self.out:
            self.out = memoryview(self._decompress(len(view)))
        n = min(len(view), len(self.out))
        view[:n] = self.out[:n]
        self.out = self.out[n:]
        return n

    def read_all(self) -> bytes:
        pieces: list[bytes] = []
        while True:
            piece = self._decompress(1 << 22)
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)

    def close(self):
        if self._close is not None:
            self._close()
            self._close = None

