"""Run a generator in a thread of its own, a bounded number of items ahead.

The decoding kernels and the text formatter release the GIL, so a producer that
decodes chunk k+1 while its consumer prints chunk k keeps both cores busy.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

_END = object()


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
