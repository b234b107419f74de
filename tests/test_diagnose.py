"""`tcpsift diagnose` / tcpsift.diagnose against outside truth: the lab captures
(../shared/lab/captures/*.truth.json: what the generator injected, and what tshark found
in the capture), through the Python function and the command's JSON and text."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import tcp_conformance as tc  # noqa: E402

LAB = tc.shared() / "lab" / "captures"
pytestmark = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
THINK_TOLERANCE_MS = 5.0   # the server's think time as its application logged it


def truth(name: str) -> dict:
    return json.loads((LAB / f"{name}.truth.json").read_text())


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


_cache: dict = {}


def diagnosed(file: str):
    """tcpsift.diagnose(file), once per file."""
    if file not in _cache:
        import tcpsift

        _cache[file] = tcpsift.diagnose(str(LAB / file))
    return _cache[file]


def cli_json(file: str) -> dict:
    """The command's JSON (in-process: the same code the entry point runs)."""
    from click.testing import CliRunner

    from tcpsift.cli.main import cli

    key = ("json", file)
    if key not in _cache:
        result = CliRunner().invoke(cli, ["diagnose", str(LAB / file), "--format", "json"])
        assert result.exit_code == 0, result.output
        _cache[key] = json.loads(result.stdout)
    return _cache[key]


def row_of(diagnosis, client_port: int) -> dict:
    import polars as pl

    rows = diagnosis.connections.filter(pl.col("client_port") == client_port)
    assert len(rows) == 1, f"no single connection from port {client_port}"
    return rows.row(0, named=True)


def episodes_of(diagnosis, stream: int, kind: str) -> list[dict]:
    import polars as pl

    return diagnosis.episodes.filter((pl.col("stream") == stream) & (pl.col("kind") == kind)) \
        .sort("start_ns").to_dicts()


def json_conn(got: dict, client_port: int) -> dict:
    (conn,) = [c for c in got["connections"] if c["client_port"] == client_port]
    return conn


# --- zero-window.pcap ---------------------------------------------------------------------

def test_zero_window_names_the_clients_receive_window_with_the_truths_episodes():
    t = truth("zero-window")["zero_window_connection"]
    d = diagnosed("zero-window.pcap")
    row = row_of(d, port_of(t["client"]))
    assert (row["limit"], row["limit_side"]) == ("zero_window", "client")
    assert row["zero_window_episodes"] == t["zero_window_episodes"]
    assert row["zero_window_frames"] == t["from_capture"]["zero_window_frames_tshark"]
    got = episodes_of(d, row["stream"], "zero_window")
    want = [e["from_capture"] for e in t["episodes"]]
    assert [e["first_frame"] for e in got] == [w["first_zero_frame"] for w in want]
    assert [e["last_frame"] for e in got] == [w["reopen_frame"] for w in want]
    assert [e["frames"] for e in got] == [w["frames"] for w in want]
    for e, w in zip(got, want):
        assert e["side"] == "client"
        assert e["duration_ns"] / 1e6 == pytest.approx(w["zero_window_ms"], abs=0.01)
    # the three episodes are the connection's time's largest share
    total = sum(w["zero_window_ms"] for w in want)
    assert row["zero_window_ns"] / 1e6 == pytest.approx(total, abs=0.01)
    assert row["zero_window_share"] > 0.5


def test_zero_window_the_other_downloads_window_dips_once_without_reaching_zero():
    t = truth("zero-window")["window_dip_connection"]
    d = diagnosed("zero-window.pcap")
    row = row_of(d, port_of(t["client"]))
    assert not t["window_reached_zero"]
    assert row["zero_window_episodes"] == 0 and row["window_dips"] == 1
    (dip,) = episodes_of(d, row["stream"], "window_dip")
    fc = t["from_capture"]
    assert (dip["side"], dip["first_frame"], dip["last_frame"]) == \
        ("client", fc["first_below_threshold_frame"], fc["recovered_frame"])
    assert (dip["min_window"], dip["min_window_frame"]) == (fc["min_window"], fc["min_window_frame"])


def test_zero_window_capture_has_no_loss():
    # the forwarder dropped nothing (truth: verification); a tail loss probe the client
    # reported with a D-SACK is not a loss
    d = diagnosed("zero-window.pcap")
    assert truth("zero-window")["verification"]["points"]["client"]["dropped_after_this_point"] == 0
    assert d.connections["c2s_lost"].sum() == 0 and d.connections["s2c_lost"].sum() == 0


def test_cli_json_zero_window_as_the_function():
    t = truth("zero-window")["zero_window_connection"]
    conn = json_conn(cli_json("zero-window.pcap"), port_of(t["client"]))
    assert (conn["limit"], conn["limit_side"]) == ("zero_window", "client")
    assert conn["counts"]["zero_window_episodes"] == t["zero_window_episodes"]
    firsts = [e["first_frame"] for e in conn["episodes"] if e["kind"] == "zero_window"]
    assert firsts == [e["from_capture"]["first_zero_frame"] for e in t["episodes"]]
    assert any("receive window zero: 3 episodes" in s for s in conn["evidence"])
    assert abs(sum(conn["shares"].values()) - 1) < 1e-9


# --- twopoint-clean-slow-server-{a,b}.pcap: either point's file ----------------------------

POINTS = ("twopoint-clean-slow-server-a.pcap", "twopoint-clean-slow-server-b.pcap")


@pytest.mark.parametrize("file", POINTS)
def test_slow_server_names_the_servers_zero_window(file):
    sb = truth("twopoint-clean-slow-server")["injected"]["server_behaviour"]
    d = diagnosed(file)
    (port,) = {port_of(s["client"]) for s in sb["read_stalls"]}
    row = row_of(d, port)
    assert (row["limit"], row["limit_side"]) == ("zero_window", "server")
    assert row["zero_window_episodes"] == sb["from_capture"]["server_zero_window_episodes"]
    assert row["zero_window_frames"] == sb["from_capture"]["server_zero_window_frames"]
    # each episode starts after the application stopped reading, within its stall
    for episode, stall in zip(episodes_of(d, row["stream"], "zero_window"), sb["read_stalls"]):
        assert episode["side"] == "server"
        assert stall["start_time"] <= episode["start_ns"] / 1e9 <= stall["start_time"] + stall["ms"] / 1e3


@pytest.mark.parametrize("file", POINTS)
def test_slow_server_names_the_servers_think_time_as_logged(file):
    sb = truth("twopoint-clean-slow-server")["injected"]["server_behaviour"]
    d = diagnosed(file)
    thinking = [r for r in sb["responses"] if r["injected_think_ms"] > 0]
    by_port: dict[int, list] = {}
    for r in thinking:
        by_port.setdefault(port_of(r["client"]), []).append(r)
    for port, responses in by_port.items():
        row = row_of(d, port)
        assert (row["limit"], row["limit_side"]) == ("server_think", "server"), port
        got = episodes_of(d, row["stream"], "server_think")
        assert row["server_think_count"] == len(got) == len(responses), port
        want = sorted(responses, key=lambda r: r["request_time"])
        for episode, response in zip(got, want):
            assert episode["duration_ns"] / 1e6 == pytest.approx(
                response["server_delay_ms"], abs=THINK_TOLERANCE_MS)
    total = sum(int(c) for c in d.connections["server_think_count"])
    assert total == len(thinking)


@pytest.mark.parametrize("file", POINTS)
def test_slow_server_clean_network_loses_nothing(file):
    t = truth("twopoint-clean-slow-server")
    assert all(t["expected"]["per_direction"][d]["lost_between_points"] == 0
               for d in ("c2s", "s2c"))
    d = diagnosed(file)
    assert d.connections["c2s_lost"].sum() == 0 and d.connections["s2c_lost"].sum() == 0


def test_cli_text_names_window_and_think_time():
    from click.testing import CliRunner

    from tcpsift.cli.main import cli

    result = CliRunner().invoke(cli, ["diagnose", str(LAB / POINTS[1]), "--width", "200"])
    assert result.exit_code == 0, result.output
    assert "server's receive window zero: 2 episodes (4 frames)" in result.stdout
    assert "server's think time: 8 times" in result.stdout
    assert "zero_window (server)" in result.stdout and "server_think (server)" in result.stdout


# --- loss-retrans.pcap -------------------------------------------------------------------

def test_loss_retrans_counts_the_lost_packets_per_connection_and_direction():
    t = truth("loss-retrans")
    d = diagnosed("loss-retrans.pcap")
    for conn in t["injected"]["connections"]:
        row = row_of(d, port_of(conn["client"]))
        assert (row["c2s_lost"], row["s2c_lost"]) == \
            (conn["dropped_count"]["c2s"], conn["dropped_count"]["s2c"]), conn["name"]
        assert row["loss_episodes"] >= 1 and row["loss_share"] > 0
    assert d.connections["c2s_lost"].sum() + d.connections["s2c_lost"].sum() == \
        t["expected"]["lost_packets_total"]


def test_loss_retrans_upload_episodes_follow_the_dropped_frames():
    # the capture is at the client: the upload's dropped segments are in it, and each
    # loss episode starts after one of them
    conn = next(c for c in truth("loss-retrans")["injected"]["connections"] if c["name"] == "upload")
    d = diagnosed("loss-retrans.pcap")
    row = row_of(d, port_of(conn["client"]))
    dropped = sorted(p["from_capture"]["frame"] for p in conn["dropped"])
    episodes = episodes_of(d, row["stream"], "loss")
    assert {e["side"] for e in episodes} == {"client"}
    assert len(episodes) == len({p["rules"][0] for p in conn["dropped"]})
    for e in episodes:
        assert any(f < e["first_frame"] for f in dropped)


def test_cli_json_names_loss():
    t = truth("loss-retrans")
    got = cli_json("loss-retrans.pcap")
    for conn in t["injected"]["connections"]:
        c = json_conn(got, port_of(conn["client"]))
        assert (c["counts"]["c2s_lost"], c["counts"]["s2c_lost"]) == \
            (conn["dropped_count"]["c2s"], conn["dropped_count"]["s2c"])
        assert any(s.startswith("loss: ") for s in c["evidence"])
        assert any(e["kind"] == "loss" for e in c["episodes"])


def _dropped_per_connection(pair: str, data_only: str | None = None) -> dict:
    """{(client port, direction): packets the lab's forwarder dropped between the
    points}; with `data_only` a direction, only that direction's data segments (length
    above 0) count in it."""
    directions = truth(f"twopoint-{pair}")["injected"]["directions"]
    out: dict = {}
    for d in ("c2s", "s2c"):
        for p in directions[d]["lost"]["packets"]:
            if d == data_only and p["len"] == 0:
                continue
            port = p["sport"] if d == "c2s" else p["dport"]
            out[(port, d)] = out.get((port, d), 0) + 1
    return out


def _lost_per_connection(file: str) -> dict:
    out = {}
    for row in diagnosed(file).connections.iter_rows(named=True):
        for d in ("c2s", "s2c"):
            if row[f"{d}_lost"]:
                out[(row["client_port"], d)] = row[f"{d}_lost"]
    return out


@pytest.mark.parametrize("pair", ("lossy", "offset", "clean-slow-server"))
@pytest.mark.parametrize("point", ("a", "b"))
def test_two_point_pairs_each_point_counts_what_was_dropped_between_them(pair, point):
    # the lab's forwarder between the points dropped these. At the point downstream of a
    # direction every dropped packet is missing (IPv4: the sender's identifications show
    # each one, pure ACKs too; IPv6: the retransmission of a segment never seen, told from
    # a reordered one by its TCP timestamp). At the point upstream the dropped packet was
    # seen: data is resent and counted, a lost pure ACK is never resent and leaves no
    # trace (its TSval is echoed anyway: the same sender's other packets carry it)
    directions = truth(f"twopoint-{pair}")["injected"]["directions"]
    (upstream,) = [d for d in ("c2s", "s2c") if directions[d]["upstream_point"] == point]
    assert _lost_per_connection(f"twopoint-{pair}-{point}.pcap") == \
        _dropped_per_connection(pair, data_only=upstream)


def test_two_point_pairs_downstream_totals_are_the_truths_per_direction_counts():
    for pair in ("lossy", "offset", "clean-slow-server"):
        t = truth(f"twopoint-{pair}")
        for d in ("c2s", "s2c"):
            downstream = t["injected"]["directions"][d]["downstream_point"]
            c = diagnosed(f"twopoint-{pair}-{downstream}.pcap").connections
            assert int(c[f"{d}_lost"].sum()) == \
                t["expected"]["per_direction"][d]["lost_between_points"], (pair, d)


def _coalesced(file: str, tmp_path: Path) -> Path:
    """The lab capture as a host's own capture would show it: consecutive segments merged
    as Linux's GRO merges what it receives (and TSO super-segments what it sends), by
    test_compare_offload.coalesce."""
    from support import capreader, capwriter
    from test_compare_offload import clients, coalesce

    frames = capreader.read_frames(LAB / file)
    client = clients(frames)
    records, merged = coalesce(frames, lambda t: t.src in client)
    assert len(merged) > 10, "the capture has runs to merge"
    out = tmp_path / f"merged-{file}"
    out.write_bytes(capwriter.pcap_file(records, nsec=True))
    return out


@pytest.mark.parametrize("pair", ("lossy", "offset"))
@pytest.mark.parametrize("point", ("a", "b"))
def test_merged_segments_count_what_was_dropped_as_the_wire_capture(pair, point, tmp_path):
    # a merged packet stands for its pieces: the identifications it used, the first
    # sequence numbers its pieces had (a retransmission of one of them is a repeat)
    import tcpsift

    directions = truth(f"twopoint-{pair}")["injected"]["directions"]
    (upstream,) = [d for d in ("c2s", "s2c") if directions[d]["upstream_point"] == point]
    merged = _coalesced(f"twopoint-{pair}-{point}.pcap", tmp_path)
    got = {}
    for row in tcpsift.diagnose(str(merged)).connections.iter_rows(named=True):
        for d in ("c2s", "s2c"):
            if row[f"{d}_lost"]:
                got[(row["client_port"], d)] = row[f"{d}_lost"]
    assert got == _dropped_per_connection(pair, data_only=upstream)


def test_merged_segments_loss_retrans_counts_the_truths_drops(tmp_path):
    import tcpsift

    t = truth("loss-retrans")
    c = tcpsift.diagnose(str(_coalesced("loss-retrans.pcap", tmp_path))).connections
    for conn in t["injected"]["connections"]:
        row = c.filter(c["client_port"] == port_of(conn["client"])).row(0, named=True)
        assert (row["c2s_lost"], row["s2c_lost"]) == \
            (conn["dropped_count"]["c2s"], conn["dropped_count"]["s2c"]), conn["name"]


def test_cli_json_two_point_lossy_at_b_counts_the_lost_pure_acks():
    # three of the client's pure ACKs of the download were dropped: b (downstream c2s)
    # misses their identifications
    got = cli_json("twopoint-lossy-b.pcap")
    want = _dropped_per_connection("lossy", data_only="s2c")
    for conn in got["connections"]:
        for d in ("c2s", "s2c"):
            assert conn["counts"][f"{d}_lost"] == want.get((conn["client_port"], d), 0)


# --- seed-like.pcap ------------------------------------------------------------------------

def test_seed_like_names_the_clients_receive_window_during_its_stall():
    t = truth("seed-like")
    stall = t["injected"]["download"]["read_stall"]
    dip = t["expected"]["window_dip"]
    d = diagnosed("seed-like.pcap")
    row = row_of(d, port_of(t["injected"]["download"]["client"]))
    assert row["window_dips"] == dip["count"] and row["zero_window_episodes"] == 0
    (episode,) = episodes_of(d, row["stream"], "window_dip")
    assert episode["side"] == "client"
    assert (episode["min_window"], episode["min_window_frame"]) == \
        (dip["from_capture"]["min_window"], dip["from_capture"]["min_window_frame"])
    start, end = episode["start_ns"] / 1e9, (episode["start_ns"] + episode["duration_ns"]) / 1e9
    assert stall["start_time"] <= start and end <= stall["end_time"] + 0.05
    assert any("client's receive window dipped to 337,920 bytes at frame 3068" in s
               for s in d.evidence(row["stream"]))


def test_seed_like_counts_the_congestion_drops_of_each_ipv4_connection():
    t = truth("seed-like")
    drops: dict[int, int] = {}
    for p in t["injected"]["congestion_drops"]["packets"]:
        if ":" not in p["dst"]:
            drops[p["dport"]] = drops.get(p["dport"], 0) + 1
    d = diagnosed("seed-like.pcap")
    for port, count in drops.items():
        row = row_of(d, port)
        assert (row["c2s_lost"], row["s2c_lost"]) == (0, count), port


def test_seed_like_counts_the_ipv6_connections_drops_too():
    t = truth("seed-like")
    drops = [p for p in t["injected"]["congestion_drops"]["packets"] if ":" in p["dst"]]
    (port,) = {p["dport"] for p in drops}
    row = row_of(diagnosed("seed-like.pcap"), port)
    # the last of them is the response's last segment: resent by the timer after the
    # sender's recovery, in order, with no request between
    assert (row["c2s_lost"], row["s2c_lost"]) == (0, len(drops))
    assert row["timeouts"] >= 1


def test_seed_like_every_connection_counts_the_truths_drops():
    t = truth("seed-like")
    drops: dict[int, int] = {}
    for p in t["injected"]["congestion_drops"]["packets"]:
        drops[p["dport"]] = drops.get(p["dport"], 0) + 1
    c = diagnosed("seed-like.pcap").connections
    got = {r["client_port"]: r["s2c_lost"] for r in c.iter_rows(named=True) if r["s2c_lost"]}
    assert got == drops and int(c["c2s_lost"].sum()) == 0
    assert sum(drops.values()) == t["injected"]["congestion_drops"]["count"]


@pytest.mark.parametrize("name", ("slow-synack", "client-resets"))
def test_captures_without_drops_count_no_loss(name):
    t = truth(name)
    assert t["verification"]["points"]["client"]["dropped_before_this_point"] == 0
    assert t["verification"]["points"]["client"]["dropped_after_this_point"] == 0
    file = t["captures"][0]["file"]
    c = diagnosed(file).connections
    assert int(c["c2s_lost"].sum()) == 0 and int(c["s2c_lost"].sum()) == 0


# --- slow-synack.pcap ----------------------------------------------------------------------

def test_slow_synack_held_handshakes_and_only_they_limit_their_connections():
    t = truth("slow-synack")
    d = diagnosed("slow-synack.pcap")
    assert len(d.connections) == t["expected"]["total_connections"]
    low, high = t["tolerances"]["delayed_handshake_checked_within_ms"]
    for conn in t["injected"]["connections"]:
        row = row_of(d, conn["client_port"])
        held = conn["syn_ack_added_delay_ms"] > 0
        assert (row["limit"] == "handshake") == held, conn["syn_order"]
        if held:
            # the handshake: SYN to SYN-ACK, then the client's ACK at once
            extra = row["handshake_ns"] / 1e6 - conn["from_capture"]["syn_to_syn_ack_ms"]
            assert low <= extra <= high, conn["syn_order"]


# --- the API and bad input -----------------------------------------------------------------

def test_api_takes_a_capture_or_paths_and_streams():
    import polars as pl

    import tcpsift

    cap = tcpsift.read(str(LAB / "zero-window.pcap"))
    d = tcpsift.diagnose(cap, streams=[1])
    assert isinstance(d.connections, pl.DataFrame) and d.connections["stream"].to_list() == [1]
    assert set(d.episodes["stream"].to_list()) == {1}
    from tcpsift.schema import DIAGNOSE_COLUMNS, polars_schema

    assert dict(d.connections.schema) == polars_schema(DIAGNOSE_COLUMNS)


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpsift", "diagnose", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_bad_input_is_one_line_never_a_traceback(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture file at all\n" * 10)
    header_only = tmp_path / "header.pcap"
    header_only.write_bytes((LAB / "loss-retrans.pcap").read_bytes()[:24])
    for path in (empty, garbage, header_only, tmp_path):
        result = run_cli(path)
        assert result.returncode == 2, (path, result.stderr)
        assert result.stdout == "" and "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("tcpsift: ")
    result = run_cli(LAB / "zero-window.pcap", "--stream", "7")
    assert result.returncode == 2 and result.stderr == \
        "tcpsift: no TCP stream 7 (the capture has 2: 0 to 1)\n"


def test_empty_capture_is_one_line_exit_2(tmp_path):
    from click.testing import CliRunner

    from tcpsift.cli.main import cli

    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    result = CliRunner().invoke(cli, ["diagnose", str(empty)])
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("tcpsift: ")


def test_damaged_capture_is_diagnosed_up_to_the_fault_with_a_warning(tmp_path):
    cut = tmp_path / "cut.pcap"
    data = (LAB / "zero-window.pcap").read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])
    result = run_cli(cut, "--format", "json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "warning" in result.stderr
    got = json.loads(result.stdout)
    assert got["connections"] and got["warnings"]
