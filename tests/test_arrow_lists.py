"""capture/_arrow.pyx: the SACK List column handed to Polars through the Arrow C data
interface equals the same lists built with Polars from Python lists."""
from __future__ import annotations

import gc

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcpsift.capture._arrow import UInt32Lists


def _expected(counts, values):
    out, at = [], 0
    for c in counts:
        out.append(values[at:at + c] if c else None)
        at += c
    return pl.Series(out, dtype=pl.List(pl.UInt32))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=300), st.data())
def test_lists_equal_polars_own(counts, data):
    total = sum(counts)
    values = data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=total, max_size=total + 3))
    c = np.array(counts, np.uint8)
    v = np.array(values, np.uint32)
    got = pl.Series(UInt32Lists(c, v))
    del c, v
    gc.collect()                    # the column owns its memory
    assert got.dtype == pl.List(pl.UInt32)
    assert got.to_list() == _expected(counts, values).to_list()


def test_too_few_values_is_an_error():
    import pytest
    with pytest.raises(ValueError):
        UInt32Lists(np.array([3], np.uint8), np.array([1, 2], np.uint32))
