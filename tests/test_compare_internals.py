"""tcpsift.compare: its quantiles against NumPy's, and a real capture with copies in one
microsecond compared with itself."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import tcp_conformance as tc  # noqa: E402

SSH_DUPS = tc.shared() / "captures" / "public" / "tcp" / "ssh-dups-fast-retransmissions.pcap"


def test_identical_captures_with_copies_in_one_microsecond_lose_nothing():
    # a public capture with packets captured up to four times in the same microsecond: at
    # both points the same, so nothing is lost, duplicated or retransmitted for a loss
    # between them, whatever order the sorts give to copies of one time
    import tcpsift

    if not SSH_DUPS.exists():
        pytest.skip(f"needs {SSH_DUPS}")
    got = tcpsift.compare(SSH_DUPS, SSH_DUPS).to_dict()
    for d in got["per_direction"].values():
        assert d["matched"] == d["sent_upstream"] > 0
        assert (d["lost_between_points"], d["duplicated_between_points"],
                d["reordered_between_points"]) == (0, 0, 0)
        assert d["retransmissions"]["original_lost_between_points"] == 0
        assert d["window_shrinks_only_upstream"] == d["window_shrinks_only_downstream"] == 0


@pytest.mark.parametrize("groups", (2, 40))
def test_delay_quantiles_are_numpys(groups):
    from tcpsift.compare.stats import QUANTILES, _quantiles

    rng = np.random.default_rng(3)
    g = rng.integers(0, groups, 5_000)
    g[g == 1] = 0                                           # group 1 empty
    delay = rng.integers(-10**6, 10**9, 5_000)
    got = _quantiles(g, delay, groups)
    for k in range(groups):
        mine = delay[g == k]
        want = np.quantile(mine, list(QUANTILES.values())) if len(mine) else [np.nan] * 4
        assert np.allclose([got[name][k] for name in QUANTILES], want, equal_nan=True)
