"""capture/background.py: a generator run in a thread, a bounded number of items ahead."""
from __future__ import annotations

import sys
import threading

import pytest

from tcpsift.capture.background import in_background


def test_items_come_in_order_and_the_switch_interval_is_restored():
    before = sys.getswitchinterval()
    seen = []
    for x in in_background(lambda: iter(range(1000))):
        seen.append(x)
        assert sys.getswitchinterval() <= before
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

    before = threading.active_count()
    it = in_background(items, ahead=1)
    assert next(it) == 0
    it.close()
    assert threading.active_count() == before
    assert len(produced) <= 4      # one taken, one queued, one being put, one made


def test_the_consumer_does_the_idle_work_while_it_waits():
    """The consumer runs `idle` only while no item is ready, and gets every item in
    order whether or not idle has work."""
    gate = threading.Event()
    idle_calls = []

    def items():
        yield 0
        gate.wait(5)            # item 1 comes only after the consumer has idled
        yield 1
        yield 2

    def idle():
        idle_calls.append(threading.current_thread().name)
        if len(idle_calls) == 3:
            gate.set()
        return len(idle_calls) < 3      # work for three calls, then nothing to do

    got = list(in_background(items, idle=idle))
    assert got == [0, 1, 2]
    assert len(idle_calls) >= 3
    assert set(idle_calls) == {threading.current_thread().name}
