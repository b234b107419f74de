"""Open a capture file: detect its container by content, through any compression.

The only module that opens capture files. A plain file is read in blocks through a
few reused buffers; a gzip or zstd file is decompressed block by block the same way
(tcpsift.capture.compressed).
"""
from __future__ import annotations

import os
import select
import stat
import threading
import weakref
from dataclasses import dataclass, field

from tcpsift.capture.compressed import Inflate, compression_of
from tcpsift.errors import CaptureError

PCAP_MAGICS = {
    # first four bytes -> (big endian, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": (False, False),
    b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True),
    b"\xa1\xb2\x3c\x4d": (True, True),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
OTHER_FORMATS = {
    b"snoop\x00\x00\x00": "snoop",
    b"\x89PNG": "a PNG image",
}


# Bytes read at a time: large enough that a syscall per block costs nothing, small
# enough to stay in the CPU cache while the block is walked and decoded (2 MiB blocks
# in 8 buffers measured 3-10 % faster than 4 MiB in 4, the same memory).
BLOCK_SIZE = 1 << 21
# Every warning about a bound on what one input may make the reader hold ends with
# this, so that commands quiet about a complete read (fields) still print it.
BOUND_NOTE = "(a bound: docs/limits.md)"
# The path that means standard input, as for tshark -r.
STDIN = "-"
# Standard input that brings nothing for this long is paused (a live capture).
STALL = 0.01
# The pipe buffer asked for on standard input (Linux allows up to 1 MiB unprivileged).
PIPE_SIZE = 1 << 20


class _Stdin:
    """Standard input, or a FIFO (a path that is not a regular file: `<(cat f)`), read
    once as a stream (`readinto`, `read`): the bytes read to sniff the format come
    first again. `count`: the bytes read from it so far. `owned`: the descriptor was
    opened here (closed by close())."""

    def __init__(self, fd: int = 0, owned: bool = False):
        self.fd, self.owned = fd, owned
        self.replay = b""
        self.count = 0
        self.warnings: list[str] = []
        self.taken = False          # a walk has it (it cannot be read twice)

    def sniff(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end), read again by the next reads."""
        while len(self.replay) < n:
            got = os.read(self.fd, n - len(self.replay))
            if not got:
                break
            self.count += len(got)
            self.replay += got
        return self.replay

    def read(self, n: int) -> bytes:
        if self.replay:
            data, self.replay = self.replay[:n], self.replay[n:]
            return data
        data = os.read(self.fd, n)
        self.count += len(data)
        return data

    def readinto(self, view) -> int:
        if self.replay:
            data = self.read(len(view))
            view[:len(data)] = data
            return len(data)
        n = os.readv(self.fd, [view])
        self.count += n
        return n

    def more_soon(self, within: float = STALL) -> bool:
        """Whether more bytes (or the end) come within `within` seconds (a live
        capture may pause: then the frames read so far are decoded and printed
        rather than held, and a thread with other work does not wait for it)."""
        return bool(self.replay) or bool(select.select([self.fd], [], [], within)[0])

    def close(self):
        if self.owned:      # (standard input stays open: it is not ours)
            self.owned = False
            os.close(self.fd)


class _InflatedStdin:
    """Compressed standard input, decompressed: the same stream interface as _Stdin."""

    def __init__(self, stdin: _Stdin, stream: Inflate):
        self.stdin, self.stream = stdin, stream
        self.readinto = stream.readinto
        self.warnings = stream.warnings
        self.taken = False

    @property
    def count(self) -> int:
        return self.stdin.count

    def more_soon(self, within: float = STALL) -> bool:
        return self.stream.holds_output() or self.stdin.more_soon(within)

    def close(self):
        self.stdin.close()


class _InflatedReader:
    """The bytes of a compressed file at any offset, without keeping the file whole
    (it may inflate to far more than memory): a decompressor stays where the last read
    ended, so reading on from there continues it, and reading before it starts again
    from the beginning. Frames read in order (a loop over frames, an export) cost one
    pass over the file; memory stays at one scratch buffer."""

    SCRATCH = 1 << 20

    def __init__(self, source: Source):
        self.source = source
        self.lock = threading.Lock()
        self.stream: Inflate | None = None
        self.pos = 0                # decompressed bytes the stream has handed out
        self._closer: weakref.finalize | None = None

    def _restart(self):
        if self._closer is not None:
            self._closer()
        self.stream = self.source.inflate()
        # the file is closed when this reader goes, if no restart closed it before
        self._closer = weakref.finalize(self, self.stream.close)
        self.pos = 0

    def _take(self, n: int, keep: bool) -> list[bytes]:
        """The next n bytes (fewer at the end) in pieces; dropped unless `keep`."""
        if self.stream is None:
            self._restart()
        assert self.stream is not None
        pieces = []
        scratch = memoryview(bytearray(min(n, self.SCRATCH)))
        while n > 0:
            got = self.stream.readinto(scratch[:min(n, len(scratch))])
            if not got:
                break
            if keep:
                pieces.append(bytes(scratch[:got]))
            self.pos += got
            n -= got
        return pieces

    def read(self, offset: int, length: int) -> bytes:
        with self.lock:
            if self.stream is None or offset < self.pos:
                self._restart()
            self._take(offset - self.pos, keep=False)
            if self.pos < offset:
                return b""
            return b"".join(self._take(length, keep=True))


# Guards the creation of a Source's _InflatedReader (frame bytes may be asked for
# from several threads).
_READER_LOCK = threading.Lock()


@dataclass
class Source:
    """A capture file and what the container layer learned opening it; its bytes
    (decompressed) come one block at a time from `blocks()`."""
    path: str
    container: str = "pcap"           # "pcap" or "pcapng"
    compression: str | None = None    # None, "gzip" or "zstd"
    file_size: int = 0
    pipe: _Stdin | _InflatedStdin | None = None   # standard input or a FIFO (read once)
    _inflated: _InflatedReader | None = field(default=None, repr=False, compare=False)

    def blocks(self, block: int | None = None):
        """The bytes one block at a time (tcpsift.capture.blocks.Blocks)."""
        from tcpsift.capture.blocks import Blocks
        return Blocks(self, block or BLOCK_SIZE)

    def inflate(self) -> Inflate:
        """The decompressed bytes of a compressed file, from the start."""
        if self.compression is None:
            raise ValueError(f"{self.path} is not compressed")
        fd = _open_fd(self.path)
        return Inflate(lambda n: os.read(fd, n), self.file_size, self.compression,
                       close=lambda: os.close(fd))

    def read_at(self, offset: int, length: int) -> bytes:
        """`length` bytes of the (decompressed) capture from `offset` (fewer at the end).
        A compressed file is decompressed again up to them (_InflatedReader)."""
        if self.pipe is not None:
            raise CaptureError(self.path, "frame bytes are not kept from standard input; "
                                          "save the capture to a file first")
        if self.compression is not None:
            with _READER_LOCK:
                if self._inflated is None:
                    self._inflated = _InflatedReader(self)
            try:
                return self._inflated.read(offset, length)
            except OSError as e:
                raise CaptureError(self.path, e.strerror or str(e)) from None
        try:
            with open(self.path, "rb") as fh:
                return os.pread(fh.fileno(), length, offset)
        except OSError as e:
            raise CaptureError(self.path, e.strerror or str(e)) from None


def is_stream(path) -> bool:
    """Whether `path` can be read only once: standard input, or a file that is not a
    regular one (a FIFO, `<(cat f)`)."""
    path = os.fspath(path)
    if path == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False            # (open_source says what is wrong with it)
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _open_fd(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as e:
        raise CaptureError(path, e.strerror or str(e)) from None


def _container(head: bytes, path: str) -> str:
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    for magic, name in OTHER_FORMATS.items():
        if head.startswith(magic):
            raise CaptureError(path, f"not a pcap or pcapng file ({name})")
    raise CaptureError(path, "not a pcap or pcapng file")


def _first_bytes(stream: Inflate, path: str) -> bytes:
    """The first 8 decompressed bytes (fewer if the data holds fewer), left unread."""
    try:
        head = stream.peek(8)
    except OSError as e:
        raise CaptureError(path, e.strerror or str(e)) from None
    if not head:
        raise CaptureError(path, f"{stream.compression} data holds no capture"
                           + (f" ({stream.warnings[0]})" if stream.warnings else ""))
    return head


def _open_stream(path: str, fd: int = 0, owned: bool = False) -> Source:
    """Standard input, or a FIFO or other file that is not a regular one, as a stream."""
    try:        # a larger pipe: fewer switches between the writer and us
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except (ImportError, OSError):
        pass    # not a pipe, or not Linux
    stdin = _Stdin(fd, owned)
    try:
        try:
            head = stdin.sniff(8)
        except OSError as e:
            raise CaptureError(path, e.strerror or str(e)) from None
        if not head:
            raise CaptureError(path, "empty input: not a pcap or pcapng file")
        compression = compression_of(head)
        if compression is None:
            return Source(path, _container(head, path), pipe=stdin)
        stream = Inflate(stdin.read, None, compression)
        return Source(path, _container(_first_bytes(stream, path), path), compression,
                      pipe=_InflatedStdin(stdin, stream))
    except CaptureError:
        stdin.close()
        raise


def open_source(path) -> Source:
    """Open `path` as a capture ("-": standard input). Raises CaptureError when it is
    not one."""
    path = os.fspath(path)
    if path == STDIN:
        return _open_stream(STDIN)
    fd = _open_fd(path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            stream_fd, fd = fd, -1          # (kept open: the stream's now)
            return _open_stream(path, stream_fd, owned=True)
        size = st.st_size
        if size == 0:
            raise CaptureError(path, "empty file: not a pcap or pcapng file")
        head = os.pread(fd, 8, 0)
    except OSError as e:
        raise CaptureError(path, e.strerror or str(e)) from None
    finally:
        if fd >= 0:
            os.close(fd)
    compression = compression_of(head)
    if compression is not None:
        src = Source(path, compression=compression, file_size=size)
        stream = src.inflate()
        try:
            src.container = _container(_first_bytes(stream, path), path)
        finally:
            stream.close()
        return src
    return Source(path, _container(head, path), compression, size)
