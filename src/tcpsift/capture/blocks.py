"""A capture's bytes one block at a time, through a few buffers used again and again.

Reading blocks that stay in the CPU cache is as fast as `cat`, and faster than
walking a memory map (on a VM each 4 KiB page mapped costs a TLB fill); it also
bounds memory for files larger than RAM. A second thread reads the next block while
the caller walks and decodes this one: the copy from the page cache and the decode
overlap (both run without the GIL).

A record cut by a block's end is carried over: `next(keep_from)` copies the bytes
from `keep_from` to the end of the view in front of the next block, so that the
caller sees them contiguous. Each buffer has `HEAD` bytes of room before its block
for that; a longer carry (a pcapng block of more than 256 KiB) is joined by copy.
"""
from __future__ import annotations

import queue
import threading

from tcpsift.errors import CaptureError

# Room before each block for the carried part of a record: a whole pcap record of
# the largest frame tshark accepts (262144 bytes + 16) fits.
HEAD = (1 << 18) + 4096
# Smaller files are read in the caller's thread: a thread would not pay for itself.
PREFETCH_MIN_SIZE = 1 << 23


def _fill(fh, buf: bytearray, size: int):
    """Read up to `size` bytes into buf[HEAD:]; (bytes read, end of file reached)."""
    view = memoryview(buf)
    have = 0
    try:
        while have < size:
            got = fh.readinto(view[HEAD + have:HEAD + size])
            if not got:
                return have, True
            have += got
        return have, False
    finally:
        view.release()


class _SyncFiller:
    """Fills buffers when asked, in the caller's thread (files of one block)."""

    def __init__(self, fh, block: int):
        self.fh, self.block, self.free = fh, block, []

    def give(self, buf):
        self.free.append(buf)

    def take(self):
        buf = self.free.pop() if self.free else bytearray(HEAD + self.block)
        return (buf, *_fill(self.fh, buf, self.block))

    def close(self):
        pass


class _ThreadFiller:
    """Fills the buffers it is given in order, in a thread of its own."""

    def __init__(self, fh, block: int, count: int = 2):
        self.fh, self.block = fh, block
        self.todo: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="tcpsift-read", daemon=True)
        self.thread.start()
        for _ in range(count):
            self.give(bytearray(HEAD + block))

    def _run(self):
        while (buf := self.todo.get()) is not None:
            try:
                self.done.put((buf, *_fill(self.fh, buf, self.block)))
            except OSError as e:
                self.done.put(e)
                return

    def give(self, buf):
        self.todo.put(buf)

    def take(self):
        item = self.done.get()
        if isinstance(item, OSError):
            raise item
        return item

    def close(self):
        self.todo.put(None)
        self.thread.join()


class Blocks:
    """The bytes of `source` in views of about `block` bytes: `view()` is the current
    one, `base` the file offset of its first byte, `final` true when it reaches the
    end of the data. Compressed sources are one view of their decompressed bytes."""

    def __init__(self, source, block: int, read_ahead: bool = True):
        self.path = source.path
        self.base = 0
        self.final = False
        self.fh = self.filler = None
        self._owner = None          # the pool buffer the view lies in, if any
        if source.data is not None:
            self._view = memoryview(source.data)
            self.final = True
            return
        self._view = memoryview(b"")
        block = max(block, 64)      # the first block holds any file header
        try:
            self.fh = open(source.path, "rb", buffering=0)
        except OSError as e:
            raise CaptureError(source.path, e.strerror or str(e)) from None
        big = read_ahead and source.file_size > max(block, PREFETCH_MIN_SIZE)
        self.filler = _ThreadFiller(self.fh, block) if big else _SyncFiller(self.fh, block)

    def view(self) -> memoryview:
        return self._view

    def next(self, keep_from: int = 0, need: int = 0) -> bool:
        """Drop the view's bytes before `keep_from` and read on behind the rest; False
        (and no change) once the data has ended. `need` is how many bytes from
        `keep_from` the caller needs at least: blocks are joined until they are there."""
        if self.final:
            return False
        tail = self._view[keep_from:]
        self.base += keep_from
        try:
            while True:
                buf, got, eof = self.filler.take()
                kept = len(tail)
                if kept <= HEAD:
                    start = HEAD - kept
                    buf[start:HEAD] = tail
                    view, owner = memoryview(buf)[start:HEAD + got], buf
                else:
                    joined = bytearray(kept + got)
                    joined[:kept] = tail
                    joined[kept:] = memoryview(buf)[HEAD:HEAD + got]
                    view, owner = memoryview(joined), None
                    self.filler.give(buf)
                tail.release()
                if self._owner is not None:
                    self.filler.give(self._owner)
                self._view, self._owner, self.final = view, owner, eof
                if eof or len(view) >= need:
                    return True
                tail = view
        except OSError as e:
            raise CaptureError(self.path, f"read error near offset {self.base}: "
                                          f"{e.strerror or e}") from None

    def close(self):
        if self.filler is not None:
            self.filler.close()
            self.filler = None
        if self.fh is not None:
            self.fh.close()
            self.fh = None
