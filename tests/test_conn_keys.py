"""The connection table's join keys: `community_id` equals the `communityid` package's
value (the reference implementation of the spec) on every connection of the lab and some
public captures; `uid` does not change when other files are read with a capture."""
from __future__ import annotations

from pathlib import Path

import communityid
import polars as pl
import pytest

import tcpsift

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LAB = SHARED / "lab" / "captures"
LAB_CAPTURES = sorted(p.name for p in LAB.glob("*.pcap*")) if LAB.is_dir() else []
PUBLIC = ["tcp/many-connections-650-http.pcap", "tcp/mixed-126-streams.pcap",
          "tcp/port-reuse-multiple-synack.pcapng", "tcp/many-connections-web-browsing.pcapng"]


def package_community_ids(conns: pl.DataFrame) -> list[str]:
    cid = communityid.CommunityID()
    return [cid.calc(communityid.FlowTuple.make_tcp(c, s, cp, sp)) for c, cp, s, sp
            in conns.select("client", "client_port", "server", "server_port").iter_rows()]


def check_community_ids(path: Path):
    conns = tcpsift.read(path).conns
    assert len(conns) > 0
    assert conns["community_id"].to_list() == package_community_ids(conns)


@pytest.mark.parametrize("name", ["client-resets.pcapng", "seed-like.pcap"])
def test_community_id_equals_the_package_on_lab_captures(name):
    if not (LAB / name).exists():
        pytest.skip("needs the lab captures")
    check_community_ids(LAB / name)


@pytest.mark.parametrize("name", [n for n in LAB_CAPTURES
                                  if n not in ("client-resets.pcapng", "seed-like.pcap")])
def test_community_id_equals_the_package_on_every_lab_capture(name):
    check_community_ids(LAB / name)


@pytest.mark.slow
@pytest.mark.parametrize("name", PUBLIC)
def test_community_id_equals_the_package_on_public_captures(name):
    path = SHARED / "captures" / "public" / name
    if not path.exists():
        pytest.skip(f"{name} not in the corpus")
    check_community_ids(path)


def test_community_id_of_both_directions_and_equal_addresses():
    """The spec's ordering cases: the lower endpoint first by address, then by port (the
    same address at both ends), IPv4 and IPv6."""
    from tcpsift.tcp.keys import community_id

    flows = pl.DataFrame({
        "client": ["10.0.0.2", "10.0.0.1", "127.0.0.1", "127.0.0.1", "2001:db8::2", "::1"],
        "client_port": [80, 40000, 5000, 80, 443, 1],
        "server": ["10.0.0.1", "10.0.0.2", "127.0.0.1", "127.0.0.1", "2001:db8::1", "::1"],
        "server_port": [40000, 80, 80, 5000, 50000, 65535],
    }, schema_overrides={"client_port": pl.UInt16, "server_port": pl.UInt16})
    ours = community_id(flows["client"], flows["client_port"], flows["server"], flows["server_port"])
    assert ours.to_list() == package_community_ids(flows)
    assert ours[0] == ours[1] and ours[2] == ours[3]


@pytest.mark.skipif(not LAB.is_dir(), reason="needs the lab captures")
def test_uid_does_not_change_when_files_are_added():
    alone = tcpsift.read(LAB / "client-resets.pcapng").conns
    together = tcpsift.read([LAB / "slow-synack.pcap", LAB / "client-resets.pcapng"]).conns
    assert alone["uid"].n_unique() == len(alone)
    assert together["uid"].n_unique() == len(together)
    joined = alone.join(together, on="uid", how="left", suffix="_together")
    # the same connections, under other stream numbers
    assert joined["community_id"].to_list() == joined["community_id_together"].to_list()
    assert joined["first_ts_ns"].to_list() == joined["first_ts_ns_together"].to_list()
    assert (joined["stream"] != joined["stream_together"]).all()
