"""The compiled passes of `tcpsift compare` (src/tcpsift/compare/_points.pyx) against the
obvious Python of what each one's docstring says, on random inputs (Hypothesis). The
comparison they serve is checked against the lab's truth and tshark in test_compare*.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpsift.compare import _points as K

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(st.data())
def test_rank_order_is_the_order_by_block_then_rank(data):
    blocks = data.draw(st.integers(1, 4))
    n = data.draw(st.integers(0, 60))
    block = np.array(data.draw(st.lists(st.integers(0, blocks - 1), min_size=n, max_size=n)),
                     np.uint8)
    # ranks distinct within a block, with gaps
    rank = np.zeros(n, np.int64)
    for b in range(blocks):
        mine = np.flatnonzero(block == b)
        rank[mine] = data.draw(st.permutations(range(3 * len(mine))))[:len(mine)]
    expected = sorted(range(n), key=lambda i: (block[i], rank[i]))
    assert K.rank_order(rank, block, blocks).tolist() == expected


@SETTINGS
@given(st.lists(st.integers(0, 12), max_size=40), st.lists(st.integers(0, 12), max_size=40))
def test_unique_pairs_are_the_keys_once_at_each_point(keys_a, keys_b):
    a, b = np.array(keys_a, np.uint64), np.array(keys_b, np.uint64)
    order_a, order_b = np.argsort(a, kind="stable"), np.argsort(b, kind="stable")
    rows_a, rows_b = K.unique_pairs(a[order_a], order_a.astype(np.int64),
                                    b[order_b], order_b.astype(np.int64))
    expected = [(i, keys_b.index(k)) for i, k in enumerate(keys_a)
                if keys_a.count(k) == 1 and keys_b.count(k) == 1]
    assert list(zip(rows_a.tolist(), rows_b.tolist())) == expected


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.booleans(), st.booleans()),
                max_size=50))
def test_flow_marks_are_overtaken_packets_and_first_losses(rows):
    flow = np.array([r[0] for r in rows], np.int64)
    frame_down = np.array([r[1] for r in rows], np.int64)
    arrived = np.array([r[2] for r in rows], np.uint8)
    lost = np.array([r[3] and not r[2] for r in rows], np.uint8)
    reordered, burst = K.flow_marks(flow, frame_down, arrived, lost)
    for i, (f, down, came, _) in enumerate(rows):
        later = [rows[j][1] for j in range(i + 1, len(rows)) if rows[j][0] == f and rows[j][2]]
        assert reordered[i] == bool(came and later and down > min(later))
        before = [j for j in range(i) if rows[j][0] == f]
        assert burst[i] == bool(lost[i] and not (before and lost[before[-1]]))


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.sampled_from([0x10, 0x12, 0x04,
                                                                             0x18, 0x02]),
                          st.integers(0, 5)), max_size=50))
def test_window_shrinks_are_smaller_windows_than_the_flows_last(rows):
    conn = np.array([r[0] for r in rows], np.int64)
    s2c = np.array([r[1] for r in rows], np.uint8)
    flags = np.array([r[2] for r in rows], np.uint16)
    window = np.array([r[3] for r in rows], np.uint16)
    at, previous = K.window_shrinks(conn, s2c, flags, window)
    expected, last = [], {}
    for i, (c, d, f, w) in enumerate(rows):
        if f & 0x06:        # SYN or RST: left out
            continue
        if (c, d) in last and w < last[(c, d)]:
            expected.append((i, last[(c, d)]))
        last[(c, d)] = w
    assert list(zip(at.tolist(), previous.tolist())) == expected


WIDTHS = (np.bool_, np.uint8, np.uint16, np.uint32)


@SETTINGS
@given(st.data())
def test_packet_keys_mix_each_column_at_its_own_width(data):
    n = data.draw(st.integers(0, 20))
    dtypes = data.draw(st.lists(st.sampled_from(WIDTHS), min_size=1, max_size=13))
    columns = [np.array(data.draw(st.lists(st.integers(0, np.iinfo(d).max if d != np.bool_
                                                       else 1), min_size=n, max_size=n)), d)
               for d in dtypes]
    last = np.array(data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n)),
                    np.uint64)
    mask = 2**64 - 1

    def mix(key: int, value: int) -> int:
        key = ((key ^ value) * 0x9E3779B97F4A7C15) & mask
        return key ^ (key >> 31)

    expected = []
    for i in range(n):
        key = 0
        for column in columns:
            key = mix(key, int(column[i]))
        expected.append(mix(key, int(last[i])))
    assert K.packet_keys(columns, last).tolist() == expected


def test_packet_keys_refuse_wider_or_signed_columns():
    for dtype in (np.uint64, np.int32):
        with pytest.raises(ValueError, match="unsigned integers of 1, 2 or 4 bytes"):
            K.packet_keys([np.zeros(3, dtype)], np.zeros(3, np.uint64))
