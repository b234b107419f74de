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
def test_stream_numbers_are_tsharks_tcp_stream_at_each_point(pair, lab_results):
    """stream_a / stream_b (and only_at_*'s stream) name the connection as tshark's
    tcp.stream does in that point's capture."""
    got = lab_results[pair]
    for side in "ab":
        path = LAB / f"twopoint-{pair}-{side}.pcap"
        out = tc.tshark_fields(path, ("tcp.stream", "ip.src", "ipv6.src", "tcp.srcport",
                                      "ip.dst", "ipv6.dst", "tcp.dstport"))
        streams = {}
        for line in out.decode().splitlines():
            stream, src4, src6, sport, dst4, dst6, dport = line.split("\t")
            ends = frozenset({(src4 or src6, int(sport)), (dst4 or dst6, int(dport))})
            streams.setdefault(ends, set()).add(int(stream))
        rows = [(c[f"stream_{side}"], c) for c in got["connections"]]
        rows += [(c["stream"], c) for c in got[f"only_at_{side}"]]
        assert rows
        for stream, c in rows:
            ends = frozenset({(c["client"], c["client_port"]), (c["server"], c["server_port"])})
            assert stream in streams[ends], (side, c)


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


# --- pairs built from a real capture ------------------------------------------------------
#
# samples/sample.pcap: real Linux connections between the client 192.0.2.10 /
# 2001:db8:1::10 and the server 198.51.100.10 / 2001:db8:2::10 (samples/README.md). b is
# made from its frames: the same bytes, with the times, drops and rewrites each test says.

import ipaddress  # noqa: E402

from click.testing import CliRunner  # noqa: E402
from support import capreader, capwriter  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.pcap"
CLIENTS = {ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8:1::10")}
HOURS = 5 * 3600 + 0.123456789
DRIFT = 50e-6


def ip_source(frame: bytes):
    """The IP source address of an Ethernet frame; None when it carries no IP."""
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0800:
        return ipaddress.ip_address(frame[26:30])
    if ethertype == 0x86DD:
        return ipaddress.ip_address(frame[22:38])
    return None


def is_tcp(frame: bytes) -> bool:
    ethertype = int.from_bytes(frame[12:14], "big")
    return (ethertype == 0x0800 and frame[23] == 6) or (ethertype == 0x86DD and frame[20] == 6)


def write_b(tmp_path: Path, frames, shift_ns=lambda ts: 0, name: str = "b.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(capwriter.pcap_file(
        [capwriter.Record(f.ts_ns + shift_ns(f.ts_ns), f.data, f.wire_len) for f in frames],
        nsec=True))
    return path


def run_compare(a: Path, b: Path):
    import tcpsift

    return tcpsift.compare(a, b)


def test_identical_captures_lose_nothing_and_take_no_time(tmp_path):
    frames = capreader.read_frames(SAMPLE)
    got = run_compare(SAMPLE, write_b(tmp_path, frames)).to_dict()
    tcp_frames = sum(is_tcp(f.data) for f in frames)
    assert got["clock_offset_s"] == 0 and got["drift_ppm"] == 0
    sides = got["per_direction"].values()
    assert sum(d["matched"] for d in sides) == tcp_frames
    for d in sides:
        assert (d["lost_between_points"], d["duplicated_between_points"],
                d["reordered_between_points"]) == (0, 0, 0)
        assert d["one_way_delay_ms"]["min"] == d["one_way_delay_ms"]["max"] == 0


def test_offset_of_hours_and_drift_of_50_ppm_are_found(tmp_path):
    frames = capreader.read_frames(SAMPLE)
    start = frames[0].ts_ns
    b = write_b(tmp_path, frames,
                lambda ts: round(HOURS * 1e9) + round((ts - start) * DRIFT))
    got = run_compare(SAMPLE, b).to_dict()
    assert got["clock_offset_s"] == pytest.approx(HOURS, abs=1e-6)
    assert got["drift_ppm"] == pytest.approx(DRIFT * 1e6, abs=0.05)
    for d in got["per_direction"].values():
        assert d["lost_between_points"] == 0
        assert abs(d["one_way_delay_ms"]["min"]) < 0.01 and abs(d["one_way_delay_ms"]["max"]) < 0.01


def test_packets_dropped_from_b_are_lost_in_their_direction(tmp_path):
    frames = capreader.read_frames(SAMPLE)
    tcp = [i for i, f in enumerate(frames) if is_tcp(f.data)]
    # every 6th TCP frame, never the first or the last (b must still span the same time)
    dropped = set(tcp[3:-1:6])
    b = write_b(tmp_path, [f for i, f in enumerate(frames) if i not in dropped],
                lambda ts: round(HOURS * 1e9))
    from_client = sum(ip_source(frames[i].data) in CLIENTS for i in dropped)
    got = run_compare(SAMPLE, b).to_dict()["per_direction"]
    assert got["c2s"]["lost_between_points"] == from_client
    assert got["s2c"]["lost_between_points"] == len(dropped) - from_client
    assert got["c2s"]["upstream"] == got["s2c"]["upstream"] == "a"


# b sees the client through a NAT: its addresses rewritten, the same times
NAT = {"192.0.2.10": "203.0.113.5", "2001:db8:1::10": "2001:db8:9::10"}


def translated_b(tmp_path: Path) -> Path:
    frames = capreader.read_frames(SAMPLE)
    for f in frames:
        for old, new in NAT.items():
            f.data = f.data.replace(ipaddress.ip_address(old).packed,
                                    ipaddress.ip_address(new).packed)
    return write_b(tmp_path, frames)


def flow_of(frame: bytes):
    """(source address, source port, destination port) of an IPv4 TCP frame; None else."""
    if int.from_bytes(frame[12:14], "big") != 0x0800 or frame[23] != 6:
        return None
    tcp = 14 + (frame[14] & 0x0F) * 4
    return (ipaddress.ip_address(frame[26:30]), int.from_bytes(frame[tcp:tcp + 2], "big"),
            int.from_bytes(frame[tcp + 2:tcp + 4], "big"))


def test_consecutive_losses_of_a_flow_are_one_burst(tmp_path):
    frames = capreader.read_frames(SAMPLE)
    from_server = [i for i, f in enumerate(frames)
                   if flow_of(f.data) and flow_of(f.data)[0] not in CLIENTS]
    flows: dict = {}
    for i in from_server:
        flows.setdefault(flow_of(frames[i].data), []).append(i)
    first, second = [packets for packets in flows.values() if len(packets) >= 5][:2]
    # three packets in a row of one connection's server side, one of another's
    dropped = set(first[1:4]) | {second[1]}
    got = run_compare(SAMPLE, write_b(tmp_path, [f for i, f in enumerate(frames)
                                                 if i not in dropped])).to_dict()
    s2c = got["per_direction"]["s2c"]
    assert (s2c["lost_between_points"], s2c["loss_bursts"]) == (4, 2)


def test_delays_each_way_and_a_queue_are_found(tmp_path):
    # b at the server's side: client packets reach it 2 ms after a, every 10th of them
    # 150 ms later still (a queue); server packets leave it 3 ms before a sees them
    frames = capreader.read_frames(SAMPLE)
    client_packets = 0
    shifted = []
    for f in frames:
        if not is_tcp(f.data):
            continue
        if ip_source(f.data) in CLIENTS:
            client_packets += 1
            queued = 150_000_000 if client_packets % 10 == 0 else 0
            shifted.append(capwriter.Record(f.ts_ns + 2_000_000 + queued, f.data, f.wire_len))
        else:
            shifted.append(capwriter.Record(f.ts_ns - 3_000_000, f.data, f.wire_len))
    b = tmp_path / "b.pcap"
    b.write_bytes(capwriter.pcap_file(sorted(shifted, key=lambda r: r.ts_ns), nsec=True))
    got = run_compare(SAMPLE, b).to_dict()
    c2s, s2c = got["per_direction"]["c2s"], got["per_direction"]["s2c"]
    assert (c2s["upstream"], s2c["upstream"]) == ("a", "b")
    assert got["clock_offset_s"] == 0       # causal as captured: taken as it is
    assert c2s["one_way_delay_ms"]["min"] == pytest.approx(2.0, abs=1e-6)
    assert c2s["one_way_delay_ms"]["max"] == pytest.approx(152.0, abs=1e-6)
    assert s2c["one_way_delay_ms"]["min"] == s2c["one_way_delay_ms"]["max"] == \
        pytest.approx(3.0, abs=1e-6)
    assert c2s["lost_between_points"] == s2c["lost_between_points"] == 0
    # no loss, but a delay that varies by 150 ms between the points
    assert got["verdict"] == "network"
    assert got["evidence"][0] == "network: client-to-server"


def test_unrelated_captures_are_inconclusive_with_the_reason(tmp_path):
    got = run_compare(SAMPLE, translated_b(tmp_path))
    assert got.verdict == "inconclusive"
    assert "no packet" in got.evidence[0] and got.matched == 0


def test_nat_rules_match_the_translated_connections(tmp_path):
    import tcpsift

    rules = [f"{a}={b}" if ":" not in a else f"[{a}]=[{b}]" for a, b in NAT.items()]
    got = tcpsift.compare(SAMPLE, translated_b(tmp_path), nat=rules).to_dict()
    tcp_frames = sum(is_tcp(f.data) for f in capreader.read_frames(SAMPLE))
    assert sum(d["matched"] for d in got["per_direction"].values()) == tcp_frames
    assert all(d["lost_between_points"] == 0 for d in got["per_direction"].values())
    assert len(got["connections"]) == 11 and got["only_at_a"] == got["only_at_b"] == []


def test_cli_bad_nat_rule_is_one_line_exit_2(tmp_path):
    result = cli_compare(SAMPLE, SAMPLE, "--nat", "192.0.2.10:80=203.0.113.5")
    assert result.exit_code == 2
    assert result.stderr == ("tcpsift: --nat '192.0.2.10:80=203.0.113.5': give a port on "
                             "both sides or on neither\n")


def cli_compare(*args):
    from tcpsift.cli.main import cli

    return CliRunner().invoke(cli, ["compare", *map(str, args)], env={"TCPSIFT_WIDTH": "120"})


def test_cli_json_has_the_documented_keys(tmp_path):
    result = cli_compare(SAMPLE, write_b(tmp_path, capreader.read_frames(SAMPLE)),
                         "--format", "json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert {"clock_offset_s", "clock_offset_uncertainty_s", "drift_ppm", "per_direction",
            "connections", "verdict", "evidence"} <= got.keys()
    for d in ("c2s", "s2c"):
        assert {"upstream", "matched", "lost_between_points", "duplicated_between_points",
                "reordered_between_points", "one_way_delay_ms"} <= got["per_direction"][d].keys()
        assert got["per_direction"][d]["one_way_delay_ms"].keys() == {"min", "median", "p99", "max"}
    # 11 connections in the sample (samples/README.md), each with its keys
    assert len(got["connections"]) == 11
    assert all(c["uid_a"] and c["community_id"] for c in got["connections"])


@needs_lab
def test_cli_text_names_the_verdict_and_evidence():
    result = cli_compare(LAB / "twopoint-offset-a.pcap", LAB / "twopoint-offset-b.pcap")
    assert result.exit_code == 0, result.output
    assert "verdict: network" in result.stdout
    assert "server-to-client: 7 of 363 packets lost between b and a" in result.stdout


@needs_lab
def test_cli_captures_without_common_time_or_packet_are_one_line_exit_2():
    result = cli_compare(SAMPLE, LAB / "twopoint-lossy-a.pcap")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tcpsift: ")
    assert "do not overlap in time" in result.stderr


def test_cli_empty_capture_is_one_line_exit_2(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(capwriter.pcap_file([]))
    result = cli_compare(SAMPLE, empty)
    assert result.exit_code == 2
    assert result.stderr == f"tcpsift: {empty}: no TCP packets\n"


def test_cli_damaged_capture_warns_and_exits_1(tmp_path):
    b = write_b(tmp_path, capreader.read_frames(SAMPLE))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(b.read_bytes()[:-50])    # the last record cut short
    result = cli_compare(SAMPLE, cut)
    assert result.exit_code == 1
    assert result.stderr.startswith("tcpsift: warning: ") and "verdict:" in result.stdout


def test_span_doubles_at_either_point_are_counted_once(tmp_path):
    # both captures mirror every frame twice, 4 us apart, as a SPAN port that copies a
    # packet entering and leaving the switch; b also dropped every 6th TCP frame
    frames = capreader.read_frames(SAMPLE)
    tcp = [i for i, f in enumerate(frames) if is_tcp(f.data)]
    dropped = set(tcp[3:-1:6])

    def doubled(kept):
        return [capwriter.Record(f.ts_ns + extra, f.data, f.wire_len)
                for f in kept for extra in (0, 4000)]
    a = tmp_path / "a.pcap"
    a.write_bytes(capwriter.pcap_file(doubled(frames), nsec=True))
    b = tmp_path / "b.pcap"
    b.write_bytes(capwriter.pcap_file(
        doubled([f for i, f in enumerate(frames) if i not in dropped]), nsec=True))
    got = run_compare(a, b).to_dict()
    assert got["span_doubles"] == {"a": len(tcp), "b": len(tcp) - len(dropped)}
    sides = got["per_direction"]
    assert sides["c2s"]["lost_between_points"] + sides["s2c"]["lost_between_points"] \
        == len(dropped)
    for d in sides.values():
        assert d["duplicated_between_points"] == 0 and d["reordered_between_points"] == 0


def test_a_capture_read_without_the_needed_columns_is_refused():
    import tcpsift
    from tcpsift.compare import CompareError

    narrow = tcpsift.read(SAMPLE, columns=["ts_ns", "src", "dst"])
    with pytest.raises(CompareError, match="a: the capture was read without the columns"):
        tcpsift.compare(narrow, SAMPLE)
