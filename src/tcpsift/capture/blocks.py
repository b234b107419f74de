"""A capture's bytes one block at a time, through a few buffers used again and again.

Reading blocks that stay in the CPU cache is as fast as `cat`, and faster than
walking a memory map; it also bounds memory for files larger than RAM. (Measured on
bulk.pcap's `fields -Y tcp`, a map populated ahead with MADV_POPULATE_READ and dropped
behind with MADV_DONTNEED: 15 % less CPU, since nothing is copied, but 10 % more wall
time. The walk of the record headers, a chain of dependent loads, then misses the
TLB and the cache on every page of the map, and that thread is the pipeline's
critical path; the copy runs in the other thread and leaves the block in the cache.)

Another thread of the caller's may read blocks ahead of the one being walked while it
would otherwise wait (`help()`): the copy from the page cache and the decode then
overlap (both run without the GIL).

A record cut by a block's end is carried over: `next(keep_from)` copies the bytes
from `keep_from` to the end of the view in front of the next block, so that the
caller sees them contiguous. Each buffer has `HEAD` bytes of room before its block
for that; a longer carry (a pcapng block of more than 256 KiB) is joined by copy.
"""
from __future__ import annotations

import mmap
import os
import threading
from collections import deque

from tcpsift.errors import CaptureError

# Room before each block for the carried part of a record: a whole pcap record of
# the largest frame tshark accepts (262144 bytes + 16) fits.
HEAD = (1 << 18) + 4096
# Buffers per file: the consumer holds one or two, helpers fill the others ahead.
BUFFERS = 8


def _new_buffer(size: int):
    """A buffer whose block (after HEAD, a whole number of pages) starts on a page
    boundary, like the page cache's pages it is copied from: the kernel's copy is 20 %
    faster so (2 MiB reads of a cached file: 0.085 s against 0.107 s per 600 MB into a
    bytearray, whose bytes start 16 bytes past a boundary). Anonymous memory, mapped
    page by page as it is first written; a bytearray if the process may map no more
    (vm.max_map_count, with thousands of files open at once)."""
    try:
        return mmap.mmap(-1, size)
    except OSError:
        return bytearray(size)


Buffer = mmap.mmap | bytearray
# a block filled: (its buffer, bytes read into it after HEAD, end of data reached)
Filled = tuple[Buffer, int, bool]


class _BufferPool:
    """The buffers a filler hands out and takes back: at most BUFFERS of them."""

    def __init__(self, block: int):
        self.block = block
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.free: list[Buffer] = []
        self.allocated = 0

    def _buffer(self) -> Buffer | None:
        """Under the lock: a free buffer, or a new one (None if BUFFERS are out)."""
        if self.free:
            return self.free.pop()
        if self.allocated < BUFFERS:
            self.allocated += 1
            return _new_buffer(HEAD + self.block)
        return None

    def give(self, buf: Buffer) -> None:
        with self.lock:
            self.free.append(buf)


class _Filler(_BufferPool):
    """Fills block i (the file's bytes from i * block, read with pread) in whichever
    thread gets to it first: the consumer when it needs the block, or another thread
    that calls help() while it has nothing else to do (the table-building or printing
    thread of a pipeline, waiting for its next chunk). Unlike a reading thread of its
    own, this never puts a third busy thread on two cores; without helpers, the
    consumer reads every block itself. A consumer whose next block a helper is still
    reading reads a block further ahead meanwhile rather than wait (in bulk.pcap's
    streamed `fields`, the walking thread had waited 0.2 s in all for such blocks)."""

    def __init__(self, fd: int, block: int):
        super().__init__(block)
        self.fd = fd
        self.claimed = 0            # blocks claimed for filling so far
        self.taken = 0              # blocks handed to the consumer so far
        self.ready: dict = {}       # block index -> (buf, got, eof) or OSError
        self.last: int | None = None    # index of the block that reached the end or failed
        self.helping = 0            # helpers reading now
        self.closed = False

    def _fill(self, index: int, buf):
        """(buf, bytes read, end of file reached), or the OSError met."""
        view = memoryview(buf)
        have = 0
        try:
            while have < self.block:
                got = os.preadv(self.fd, [view[HEAD + have:HEAD + self.block]],
                                index * self.block + have)
                if not got:
                    return buf, have, True
                have += got
            return buf, have, False
        except OSError as e:
            return e
        finally:
            view.release()

    def _note_last(self, index: int, result):
        """Under the lock: no block after the end of the file or a read error is read."""
        if isinstance(result, OSError) or result[2]:
            self.last = index if self.last is None else min(self.last, index)


    def take(self):
        """The next block: (buffer, bytes read into it after HEAD, end of file reached)."""
        with self.lock:
            index = self.taken
            self.taken += 1
        while True:
            with self.lock:
                if index in self.ready:
                    result = self.ready.pop(index)
                    break
                if index >= self.claimed:       # nobody has claimed it: fill it here
                    self.claimed += 1
                    buf = self._buffer() or _new_buffer(HEAD + self.block)
                    result = None
                    break
                # a helper is filling it: rather than wait, read a block further ahead
                ahead = self._claim()
                if ahead is None:
                    self.changed.wait()
                    continue
            self._fill_claimed(*ahead)
        if result is None:
            result = self._fill(index, buf)
            with self.lock:
                self._note_last(index, result)
        if isinstance(result, OSError):
            raise result
        return result

    def _can_claim(self) -> bool:
        """Under the lock: whether a block can be read ahead now (not closed, not past
        the end, a buffer to spare)."""
        return not self.closed and (self.last is None or self.claimed <= self.last) \
            and (bool(self.free) or self.allocated < BUFFERS)

    def can_help(self) -> bool:
        with self.lock:
            return self._can_claim()

    def _claim(self):
        """Under the lock: (index, buffer) of the next block to read ahead, or None."""
        if not self._can_claim():
            return None
        buf = self._buffer()
        self.claimed += 1
        self.helping += 1
        return self.claimed - 1, buf

    def _fill_claimed(self, index: int, buf):
        result = OSError("interrupted")     # what the consumer gets if this is cut short
        try:
            result = self._fill(index, buf)
        finally:
            with self.lock:
                self.ready[index] = result
                self._note_last(index, result)
                self.helping -= 1
                self.changed.notify_all()

    def help(self) -> bool:
        """Fill the next block ahead of the consumer if a buffer is free; False if not."""
        with self.lock:
            claim = self._claim()
        if claim is None:
            return False
        self._fill_claimed(*claim)
        return True

    def close(self):
        """Once this returns, no helper reads the file any more."""
        with self.lock:
            self.closed = True
            while self.helping:
                self.changed.wait()


class _StreamFiller(_BufferPool):
    """The blocks of a stream read in order (a compressed file's decompressed bytes,
    tcpsift.capture.compressed.Inflate, or standard input): block i is the next `block`
    bytes. The same take/give/help protocol as _Filler; one thread at a time reads (the
    stream is sequential), the consumer or a helper ahead of it, while the other decodes."""

    def __init__(self, stream, block: int):
        super().__init__(block)
        self.stream = stream
        self.ready: deque = deque()     # blocks filled ahead, in order
        self.busy = False               # a thread is reading
        self.ended = False              # a block reached the end (or an error came)
        self.closed = False

    def _fill(self, buf):
        """(buf, bytes read into it after HEAD, end of data reached) or the exception
        met (raised in the consumer by take()); under no lock, by the thread that set
        `busy`, which then calls _filled."""
        view = memoryview(buf)
        have = 0
        eof = False
        more_soon = getattr(self.stream, "more_soon", None)    # (standard input)
        try:
            while have < self.block:
                got = self.stream.readinto(view[HEAD + have:HEAD + self.block])
                if not got:
                    eof = True
                    break
                have += got
                if more_soon is not None and have < self.block and not more_soon():
                    break       # a live source paused: a short block, decoded now
            result: Filled | BaseException = (buf, have, eof)
        except BaseException as e:      # whatever it is, `busy` must be cleared
            result = e
        finally:
            view.release()
        return result

    def _filled(self, result, ahead: bool):
        """Under the lock: the fill is over (a block read ahead joins `ready` at once,
        so that no other thread fills the block after it first)."""
        self.busy = False
        self.ended = self.ended or isinstance(result, BaseException) or result[2]
        if ahead:
            self.ready.append(result)
        self.changed.notify_all()

    def take(self):
        with self.lock:
            while not self.ready and self.busy:
                self.changed.wait()
            if self.ready:
                result = self.ready.popleft()
            elif self.ended:
                result = (self._buffer() or _new_buffer(HEAD + self.block), 0, True)
            else:
                self.busy = True
                result = None
                buf = self._buffer() or _new_buffer(HEAD + self.block)
        if result is None:
            result = self._fill(buf)
            with self.lock:
                self._filled(result, ahead=False)
        if isinstance(result, BaseException):
            raise result
        return result

    def _can_claim(self) -> bool:
        """Under the lock: whether a helper may read the next block now (a helper must
        not wait for a live source that has nothing yet: it has work of its own)."""
        more_soon = getattr(self.stream, "more_soon", None)
        return not (self.closed or self.busy or self.ended) \
            and (bool(self.free) or self.allocated < BUFFERS) \
            and (more_soon is None or more_soon(0))

    def can_help(self) -> bool:
        with self.lock:
            return self._can_claim()

    def help(self) -> bool:
        with self.lock:
            if not self._can_claim():
                return False
            self.busy = True
            buf = self._buffer()
        result = self._fill(buf)
        with self.lock:
            self._filled(result, ahead=True)
        return True

    @property
    def warnings(self) -> list[str]:
        return self.stream.warnings

    def close(self):
        with self.lock:
            self.closed = True
            while self.busy:
                self.changed.wait()
        self.stream.close()


class Blocks:
    """The bytes of `source` (decompressed) in views of about `block` bytes: `view()`
    is the current one, `base` the offset of its first byte, `final` true when it
    reaches the end of the data; `warnings`, once it has, why the decompressed data
    ended early."""

    def __init__(self, source, block: int):
        self.path = source.path
        self.base = 0
        self.final = False
        self.paused = False         # the view ends where a live source paused
        self.fh = None
        self.filler: _Filler | _StreamFiller | None = None     # None once closed
        self.warnings: list[str] = []
        self._owner = None          # the pool buffer the view lies in, if any
        self._view = memoryview(b"")
        block = max(block, 64)      # the first block holds any file header
        if source.compression is not None or source.pipe is not None:
            if source.pipe is not None:
                if source.pipe.taken:
                    raise CaptureError(source.path, "standard input can be read only once")
                source.pipe.taken = True
            stream = source.pipe if source.pipe is not None else source.inflate()
            self.filler = _StreamFiller(stream, block)
            self.warnings = self.filler.warnings
            return
        try:
            self.fh = open(source.path, "rb", buffering=0)
        except OSError as e:
            raise CaptureError(source.path, e.strerror or str(e)) from None
        self.filler = _Filler(self.fh.fileno(), block)

    def view(self) -> memoryview:
        return self._view

    def next(self, keep_from: int = 0, need: int = 0) -> bool:
        """Drop the view's bytes before `keep_from` and read on behind the rest; False
        (and no change) once the data has ended. `need` is how many bytes from
        `keep_from` the caller needs at least: blocks are joined until they are there."""
        filler = self.filler
        if self.final or filler is None:
            return False
        tail = self._view[keep_from:]
        self.base += keep_from
        try:
            while True:
                buf, got, eof = filler.take()
                kept = len(tail)
                if kept <= HEAD:
                    start = HEAD - kept
                    buf[start:HEAD] = tail
                    view, owner = memoryview(buf)[start:HEAD + got], buf
                else:
                    # room for all that is needed at once: joining block by block
                    # would copy the carried bytes again for every block (a 128 MiB
                    # pcapng block: 64 copies of up to 128 MiB)
                    joined = bytearray(max(need, kept + got))
                    joined[:kept] = tail
                    joined[kept:kept + got] = memoryview(buf)[HEAD:HEAD + got]
                    filled = kept + got
                    filler.give(buf)
                    while filled < need and not eof:
                        buf, got, eof = filler.take()
                        # (the last block may bring more than fits: the bytearray grows once)
                        joined[filled:filled + got] = memoryview(buf)[HEAD:HEAD + got]
                        filled += got
                        filler.give(buf)
                    view, owner = memoryview(joined)[:filled], None
                tail.release()
                if self._owner is not None:
                    filler.give(self._owner)
                self._view, self._owner, self.final = view, owner, eof
                self.paused = not eof and got < filler.block
                if eof or len(view) >= need:
                    return True
                tail = view
        except OSError as e:
            raise CaptureError(self.path, f"read error near offset {self.base}: "
                                          f"{e.strerror or e}") from None

    def can_help(self) -> bool:
        """Whether help() would read a block now."""
        filler = self.filler
        return filler is not None and filler.can_help()

    def help(self) -> bool:
        """Read a block ahead of the consumer, in the calling thread (any thread); False
        when there is nothing to do now."""
        filler = self.filler
        return filler is not None and filler.help()

    def close(self):
        if self.filler is not None:
            self.filler.close()
            self.filler = None
        if self.fh is not None:
            self.fh.close()
            self.fh = None
