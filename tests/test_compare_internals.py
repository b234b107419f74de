"""Helpers of tcpsift.compare against NumPy's own answers."""
from __future__ import annotations

import numpy as np


def test_stable_order_is_numpys_stable_argsort():
    from tcpsift.compare.points import stable_order

    rng = np.random.default_rng(7)
    for values in (rng.integers(0, 2**63, 50, dtype=np.uint64)[rng.integers(0, 50, 100_000)],
                   rng.integers(0, 300, 10_000),                 # small: lowest bits differ
                   np.array([5, 3, 5, 3, 4]), np.array([], np.int64), np.array([9])):
        assert np.array_equal(stable_order(values), np.argsort(values, kind="stable"))
