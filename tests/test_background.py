"""capture/background.py: a generator run in a thread, a bounded number of items ahead."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from tcpsift.capture.background import in_background


def test_items_come_in_order_and_the_switch_interval_is_left_alone():
    before = sys.getswitchinterval()
    seen = []
    for x in in_background(lambda: iter(range(1000))):
        seen.append(x)
        assert sys.getswitchinterval() == before
    assert seen == list(range(1000))
    assert sys.getswitchinterval() == before


def test_an_exception_in_the_thread_is_raised_in_the_consumer():
    def items():
        yield 1
        raise ValueError("bad record")

    got = []
    with pytest.raises(ValueError, match="bad record"):
        for x in in_background(items):
            got.append(x)
    assert got == [1]


def test_leaving_early_stops_the_thread():
    produced = []

    def items():
        for i in range(10_000):
            produced.append(i)
            yield i

    def decoding_threads():
        # (only ours: threads other tests left, e.g. a cache still writing, do not count)
        return [t for t in threading.enumerate() if t.name == "tcpsift-decode"]

    before = decoding_threads()
    it = in_background(items, ahead=1)
    assert next(it) == 0
    assert len(decoding_threads()) == len(before) + 1
    it.close()
    assert decoding_threads() == before
    assert len(produced) <= 4      # one taken, one queued, one being put, one made


def test_the_consumer_helps_while_it_waits_and_is_woken_for_work():
    """The consumer does the helper's work only while no item is ready, is woken when
    work is posted, and gets every item in order."""
    class Helper:
        def __init__(self):
            self.wake = threading.Condition()
            self.posted = 0
            self.done = []

        def post(self):
            with self.wake:
                self.posted += 1
                self.wake.notify_all()

        def help_ready(self):
            return self.posted > len(self.done)

        def help(self):
            if not self.help_ready():
                return False
            self.done.append(threading.current_thread().name)
            return True

    helper = Helper()

    def items():
        yield 0
        for _ in range(3):
            helper.post()
            deadline = time.monotonic() + 5
            while len(helper.done) < helper.posted and time.monotonic() < deadline:
                time.sleep(0.001)       # the consumer, waiting for item 1, does the work
        yield 1
        yield 2

    got = list(in_background(items, helper=helper))
    assert got == [0, 1, 2]
    assert helper.done == [threading.current_thread().name] * 3
