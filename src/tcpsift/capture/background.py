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


def in_background(make_items: Callable[[], Iterator], ahead: int = 1) -> Iterator:
    """Yield what make_items() yields, computed in a thread that runs at most `ahead`
    items in front of the consumer (plus the one it is making). An exception in the
    thread is raised here; leaving the loop early stops the thread."""
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
            item = items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
        _quick_handoffs(False)
