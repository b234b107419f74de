"""Run a generator in a thread of its own, a bounded number of items ahead.

The decoding kernels and the text formatter release the GIL, so a producer that
decodes chunk k+1 while its consumer prints chunk k keeps both cores busy.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

_END = object()

# How often a waiting consumer with a helper looks again for work it was not woken for.
IDLE_POLL = 0.001


class Helper(Protocol):
    """Work a waiting consumer can do for the producer (see in_background)."""
    wake: threading.Condition       # notified when there is work (or an item)

    def help_ready(self) -> bool:
        """Whether help() has work now; called with `wake` held."""

    def help(self) -> bool:
        """Do one piece of work; False if there was none."""


def in_background(make_items: Callable[[], Iterator], ahead: int = 1,
                  helper: Helper | None = None) -> Iterator:
    """Yield what make_items() yields, computed in a thread that runs at most `ahead`
    items in front of the consumer (plus the one it is making). An exception in the
    thread is raised here; leaving the loop early stops the thread.

    With a `helper`, the consumer works for the producer while it waits for an item
    (reads its input ahead, decodes part of it): a core that would idle does it. The
    producer wakes it through `helper.wake`; work that appears without a wake-up is
    looked for every IDLE_POLL seconds."""
    cv = helper.wake if helper is not None else threading.Condition()
    items: deque = deque()
    stopped = False

    def put(item) -> bool:
        with cv:
            while len(items) >= ahead and not stopped and item is not _END \
                    and not isinstance(item, BaseException):
                cv.wait()
            if stopped:
                return False
            items.append(item)
            cv.notify_all()
            return True

    def run():
        try:
            for item in make_items():
                if not put(item):
                    return
            put(_END)
        except BaseException as e:      # handed to the consumer, raised there
            put(e)

    def next_item():
        while True:
            with cv:
                while not items:
                    if helper is not None and helper.help_ready():
                        break
                    cv.wait(IDLE_POLL if helper is not None else None)
                if items:
                    item = items.popleft()
                    cv.notify_all()     # room for the producer
                    return item
            assert helper is not None   # without a helper the wait ends with an item
            helper.help()

    thread = threading.Thread(target=run, name="tcpsift-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = next_item()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        with cv:
            stopped = True
            cv.notify_all()
        thread.join()
