"""`tcpsift compare` / tcpsift.compare against outside truth: the lab's two-point pairs
(../shared/lab/captures/twopoint-*, with what the generator injected between the points)
and pairs built here from real captures with what the test did to them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import tcp_conformance as tc  # noqa: E402

LAB = tc.shared() / "lab" / "captures"
needs_lab = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
PAIRS = ("lossy", "clean-slow-server", "offset")


def truth(pair: str) -> dict:
    return json.loads((LAB / f"twopoint-{pair}.truth.json").read_text())


def compared(pair: str) -> dict:
    import tcpsift.compare

    return tcpsift.compare.compare(LAB / f"twopoint-{pair}-a.pcap",
                                   LAB / f"twopoint-{pair}-b.pcap").to_dict()


@pytest.fixture(scope="module")
def lab_results() -> dict:
    return {pair: compared(pair) for pair in PAIRS}


@needs_lab
@pytest.mark.parametrize("pair", PAIRS)
def test_lab_counts_per_direction_as_injected(pair, lab_results):
    got, injected = lab_results[pair], truth(pair)["injected"]["directions"]
    for direction, facts in injected.items():
        mine = got["per_direction"][direction]
        assert mine["upstream"] == facts["upstream_point"]
        assert mine["lost_between_points"] == facts["lost"]["count"]
        assert mine["duplicated_between_points"] == facts["duplicated"]["count"]
        assert mine["reordered_between_points"] == facts["reordered"]["count"]
        assert mine["matched"] == facts["from_capture"]["one_way_delay_ms"]["matched_packets"]


@needs_lab
@pytest.mark.parametrize("pair", PAIRS)
def test_lab_delay_and_clock_as_measured(pair, lab_results):
    got, tr = lab_results[pair], truth(pair)
    assert got["clock_offset_s"] == pytest.approx(tr["expected"]["clock_offset_b_minus_a_s"],
                                                  abs=1e-3)
    for direction, facts in tr["injected"]["directions"].items():
        delay = facts["from_capture"]["one_way_delay_ms"]
        assert got["per_direction"][direction]["one_way_delay_ms"]["median"] == \
            pytest.approx(delay["median"], abs=1.0)


@needs_lab
@pytest.mark.parametrize("pair", PAIRS)
def test_lab_verdict_and_its_directions(pair, lab_results):
    got, expected = lab_results[pair], truth(pair)["expected"]
    assert got["verdict"] == expected["verdict"]
    if expected["verdict"] == "network":
        names = {"c2s": "client-to-server", "s2c": "server-to-client"}
        headline = got["evidence"][0]
        assert f"(most: {names[expected['dominant_direction']]})" in headline \
            or headline == f"network: {names[expected['dominant_direction']]}"
        for direction in expected["directions"]:
            assert names[direction] in headline


@needs_lab
@pytest.mark.parametrize("pair", PAIRS)
def test_lab_connections_at_one_point_are_listed_not_lost(pair, lab_results):
    got, injected = lab_results[pair], truth(pair)["injected"]
    endpoint = "{client}:{client_port}"
    both = {endpoint.format(**c) for c in got["connections"]}
    only_b = {endpoint.format(**c) for c in got["only_at_b"]}
    plain = lambda flows: {f["client"].replace("[", "").replace("]", "") for f in flows}  # noqa: E731
    assert both == plain(injected["flows_in_both"])
    assert only_b == plain(injected["flows_only_in_b"])
    assert got["only_at_a"] == []
