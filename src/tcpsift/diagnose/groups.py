"""Per-connection operations on rows sorted into contiguous groups (a connection, or a
connection's side), in NumPy: Polars' `.over()` hashes its groups on every call, which
for tens of thousands of connections costs seconds per column."""
from __future__ import annotations

import numpy as np

_LIMIT = 1 << 62


def starts_of(*keys: np.ndarray) -> np.ndarray:
    """True on each group's first row (a key changes from the row before)."""
    n = len(keys[0])
    start = np.ones(n, bool)
    if n > 1:
        change = np.zeros(n - 1, bool)
        for k in keys:
            change |= k[1:] != k[:-1]
        start[1:] = change
    return start


def first_rows(starts: np.ndarray) -> np.ndarray:
    """Per row, the index of its group's first row."""
    return np.maximum.accumulate(np.where(starts, np.arange(len(starts)), 0))


def previous(values: np.ndarray, starts: np.ndarray):
    """(values of the row before in the group, valid): invalid on a group's first row."""
    out = np.empty_like(values)
    if len(values):
        out[1:] = values[:-1]
        out[:1] = values[:1]
    return out, ~starts


def following(values: np.ndarray, starts: np.ndarray):
    """(values of the row after in the group, valid): invalid on a group's last row."""
    out = np.empty_like(values)
    valid = np.zeros(len(values), bool)
    if len(values):
        out[:-1] = values[1:]
        out[-1:] = values[-1:]
        valid[:-1] = ~starts[1:]
    return out, valid


def last_valid(valid: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per row, the index of the latest row of its group up to it where `valid` holds;
    -1 where there is none."""
    at = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1)) \
        if len(valid) else np.zeros(0, np.int64)
    return np.where(at >= first_rows(starts), at, -1)


def running_max(values: np.ndarray, valid: np.ndarray, starts: np.ndarray):
    """(the largest of `values` where `valid` so far in the group, defined): a cumulative
    maximum that starts again with each group."""
    v = values.astype(np.int64)
    n = len(v)
    defined = last_valid(valid, starts) >= 0
    if n == 0 or not valid.any():
        return np.zeros(n, np.int64), defined
    lo = int(v[valid].min())
    span = int(v[valid].max()) - lo + 1
    group = np.cumsum(starts) - 1
    if int(group[-1]) * span < _LIMIT - span:
        base = group.astype(np.int64) * span
        key = base + np.where(valid, v - lo, 0)
        return np.maximum.accumulate(key) - base + lo, defined
    out = np.empty(n, np.int64)      # too wide for one key: group by group
    bounds = np.append(np.flatnonzero(starts), n)
    for a, b in zip(bounds[:-1], bounds[1:]):
        out[a:b] = np.maximum.accumulate(np.where(valid[a:b], v[a:b], lo))
    return out, defined


def run_ids(inside: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per row, a number that is the same along each maximal run of `inside` rows of a
    group (different runs, different numbers; meaningless outside runs)."""
    before, ok = previous(inside, starts)
    return np.cumsum(inside & ~(before & ok))


def first_at_least(values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   target: np.ndarray) -> np.ndarray:
    """Per query: the first index j in [lo, hi) with values[j] >= target (`values`
    non-decreasing there); hi where there is none. A binary search of all queries at
    once."""
    lo = lo.astype(np.int64).copy()
    hi = hi.astype(np.int64).copy()
    n = len(values)
    active = lo < hi
    while active.any():
        mid = (lo + hi) // 2
        below = values[np.minimum(mid, n - 1)] < target
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)
        active = lo < hi
    return lo
