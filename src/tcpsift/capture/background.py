"""Run a generator in a thread of its own, a bounded number of items ahead.

The decoding kernels and the text formatter release the GIL, so a producer that
decodes chunk k+1 while its consumer prints chunk k keeps both cores busy.
"""
from __future__ import annotations

import queue
import sys
import threading
from typing import Callable, Iterator

_END = object()

# While a pipeline runs, the threads hand the GIL to each other often (each kernel call
# releases it); with CPython's default switch interval (5 ms) a thread that comes out of
# a kernel can wait that long for a thread running Python code. 0.5 ms cut the wall
# time of `tcpsift fields` with the TCP analysis by ~10 % on the benchmark captures.
# The interval is process-wide: it is set while any pipeline runs and then restored.
SWITCH_INTERVAL = 0.0005
# How often a waiting consumer with an `idle` task looks again for work there.
IDLE_POLL = 0.001
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


def _quick_handoffs(on: bool):
    global _switch_users, _switch_saved
    with _switch_lock:
        if on:
            if _switch_users == 0:
                _switch_saved = sys.getswitchinterval()
                sys.setswitchinterval(min(SWITCH_INTERVAL, _switch_saved))
            _switch_users += 1
        else:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


def _next(items: queue.Queue, idle):
    if idle is None:
        return items.get()
    while True:
        try:
            return items.get_nowait()
        except queue.Empty:
            pass
        if not idle():
            try:
                return items.get(timeout=IDLE_POLL)
            except queue.Empty:
                pass


def in_background(make_items: Callable[[], Iterator], ahead: int = 1,
                  idle: Callable[[], bool] | None = None) -> Iterator:
    """Yield what make_items() yields, computed in a thread that runs at most `ahead`
    items in front of the consumer (plus the one it is making). An exception in the
    thread is raised here; leaving the loop early stops the thread.

    `idle`, if given, is called while the consumer waits for an item: work done there
    for the producer (reading its input ahead) uses a core that would be idle. It
    returns False when it has nothing to do; it is then called again every
    IDLE_POLL seconds."""
    items: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def run():
        try:
            for item in make_items():
                if not put(item):
                    return
            put(_END)
        except BaseException as e:      # handed to the consumer, raised there
            put(e)

    thread = threading.Thread(target=run, name="tcpsift-decode", daemon=True)
    _quick_handoffs(True)
    thread.start()
    try:
        while True:
            item = _next(items, idle)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
        _quick_handoffs(False)
