"""The connection table: lab ground truth, the sample capture, one crafted scenario per
termination state (Zeek conn_state) and the ended_by / history columns."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

import tcpsift
from tcpsift.tcp.connections import connections

sys.path.insert(0, str(Path(__file__).parent))
from support import capwriter as cw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT.parent / "shared" / "lab" / "captures"
needs_lab = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
F, S, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10
CLIENT, SERVER = ("192.0.2.10", 40000), ("198.51.100.20", 80)


def truth(name):
    return json.loads((LAB / f"{name}.truth.json").read_text())


def lab_hosts(tr) -> dict:
    return {a: name for name, h in tr["topology"]["hosts"].items() for a in (h["ipv4"], h["ipv6"])}


@needs_lab
def test_client_resets_with_clients_mapped_to_hosts():
    """client_by as a dict: the lab's client is one host with two addresses."""
    tr = truth("client-resets")
    conns = connections(tcpsift.read(LAB / "client-resets.pcapng"), client_by=lab_hosts(tr))
    resets = conns.filter(pl.col("ended_by") == "rst_client")
    expected = tr["expected"]["resets"]
    assert sorted(resets["stream"].to_list()) == sorted(r["from_capture"]["tcp_stream"]
                                                        for r in expected)
    for r in expected:
        fc = r["from_capture"]
        row = conns.filter(pl.col("stream") == fc["tcp_stream"]).row(0, named=True)
        assert row["close_frame"] == fc["rst_frame"]
        assert row["conn_state"] == "RSTO"
        assert row["client_open_to_other_servers_at_end"] == fc["open_to_other_servers"]
        assert row["client_open_to_same_server_at_end"] == fc["open_to_same_server"]
        assert row["client_open_at_end"] == fc["open_to_other_servers"] + fc["open_to_same_server"]


def test_client_by_names_its_valid_values():
    with pytest.raises(ValueError, match="valid: 'ip', 'mac'"):
        connections(tcpsift.read(ROOT / "samples" / "sample.pcap"), client_by="host")


@needs_lab
def test_slow_synacks_found_exactly():
    exp = truth("slow-synack")["expected"]
    conns = connections(tcpsift.read(LAB / "slow-synack.pcap")).sort("syn_ts_ns")
    assert len(conns) == exp["total_connections"]
    ms = conns["syn_to_synack_ns"] / 1e6
    order = pl.Series(range(1, len(conns) + 1))
    assert order.filter(ms > exp["threshold_ms"]).to_list() == exp["connections_over_threshold"]
    first = conns.filter(ms > exp["threshold_ms"]).row(0, named=True)
    fc = exp["first_connection_over_threshold"]["from_capture"]
    assert first["stream"] == fc["tcp_stream"]
    assert first["syn_to_synack_ns"] / 1e6 == pytest.approx(fc["syn_to_syn_ack_ms"], abs=0.001)


def test_sample_capture_states():
    conns = connections(tcpsift.read(ROOT / "samples" / "sample.pcap"))
    refused = conns.filter(pl.col("server_port") == 81)
    assert refused["conn_state"].to_list() == ["REJ", "REJ"]
    assert refused["history"].to_list() == ["Sr", "Sr"]
    assert set(conns.filter(pl.col("server_port") == 80)["conn_state"]) <= {"SF", "RSTO"}
    assert (conns["c2s_packets"] + conns["s2c_packets"]).sum() == \
        tcpsift.read(ROOT / "samples" / "sample.pcap").packets.filter(pl.col("ip_proto") == 6).height


def _capture(tmp_path, packets) -> tcpsift.Capture:
    """packets: (from_client, flags, seq, ack, payload) at 1 ms steps."""
    recs = []
    for i, (from_client, flags, seq, ack, payload) in enumerate(packets):
        (sa, sp), (da, dp) = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        opts = cw.opt_mss(1460) + cw.opt_ws(7) if flags & S else b""
        frame = cw.ether(cw.ipv4(cw.tcp(payload, sport=sp, dport=dp, seq=seq, ack=ack,
                                        flags=flags, options=opts), src=sa, dst=da))
        recs.append(cw.Record(1_700_000_000_000_000_000 + i * 1_000_000, frame))
    path = tmp_path / "t.pcap"
    path.write_bytes(cw.pcap_file(recs))
    return tcpsift.read(path)


HANDSHAKE = [(True, S, 100, 0, b""), (False, S | A, 500, 101, b""), (True, A, 101, 501, b"")]
DATA = [(True, P | A, 101, 501, b"GET"), (False, A, 501, 104, b"")]

SCENARIOS = {
    # name: (packets, conn_state, history, ended_by)
    "S0": ([(True, S, 100, 0, b"")], "S0", "S", "open"),
    "REJ": ([(True, S, 100, 0, b""), (False, R | A, 0, 101, b"")], "REJ", "Sr", "rst_server"),
    "S1": (HANDSHAKE + DATA, "S1", "ShADa", "open"),
    "SF": (HANDSHAKE + DATA + [(True, F | A, 104, 501, b""), (False, F | A, 501, 105, b""),
                               (True, A, 105, 502, b"")], "SF", "ShADaFf", "fin_both"),
    "S2": (HANDSHAKE + DATA + [(True, F | A, 104, 501, b"")], "S2", "ShADaF", "fin_client"),
    "S3": (HANDSHAKE + DATA + [(False, F | A, 501, 104, b"")], "S3", "ShADaf", "fin_server"),
    "RSTO": (HANDSHAKE + DATA + [(True, R | A, 104, 501, b"")], "RSTO", "ShADaR", "rst_client"),
    "RSTR": (HANDSHAKE + DATA + [(False, R | A, 501, 104, b"")], "RSTR", "ShADar", "rst_server"),
    "RSTOS0": ([(True, S, 100, 0, b""), (True, R, 101, 0, b"")], "RSTOS0", "SR", "rst_client"),
    "SH": ([(True, S, 100, 0, b""), (True, F, 101, 0, b"")], "SH", "SF", "fin_client"),
    "OTH": ([(True, P | A, 101, 501, b"GET"), (False, A, 501, 104, b"")], "OTH", "Da", "open"),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_termination_states(tmp_path, name):
    packets, state, history, ended = SCENARIOS[name]
    row = connections(_capture(tmp_path, packets)).row(0, named=True)
    assert (row["conn_state"], row["history"], row["ended_by"]) == (state, history, ended)
    assert (str(row["client"]), row["client_port"]) == CLIENT
    assert (str(row["server"]), row["server_port"]) == SERVER


def test_handshake_times_and_options(tmp_path):
    row = connections(_capture(tmp_path, HANDSHAKE + DATA)).row(0, named=True)
    assert row["syn_to_synack_ns"] == 1_000_000 and row["synack_to_ack_ns"] == 1_000_000
    assert (row["client_mss"], row["server_mss"], row["client_wscale"]) == (1460, 1460, 7)
    assert (row["c2s_packets"], row["s2c_packets"], row["c2s_payload"]) == (3, 2, 3)


def test_no_handshake_lower_port_is_the_server(tmp_path):
    # the capture starts mid-connection with a packet from the server
    packets = [(False, P | A, 501, 101, b"HTTP"), (True, A, 101, 505, b"")]
    row = connections(_capture(tmp_path, packets)).row(0, named=True)
    assert (str(row["server"]), row["server_port"]) == SERVER


def test_schema_declares_the_table_and_the_verdicts():
    from tcpsift import schema
    from tcpsift.tcp import FLAG_BITS

    assert list(FLAG_BITS) == list(schema.VERDICTS)
    conns = connections(tcpsift.read(ROOT / "samples" / "sample.pcap"))
    assert dict(conns.schema) == schema.polars_schema(schema.CONN_COLUMNS)


@pytest.mark.slow
def test_conns_command_filters_with_sql(tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, "-m", "tcpsift", "conns", str(ROOT / "samples" / "sample.pcap"),
                          "--format", "csv", "--where", "conn_state = 'REJ'"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == 3 and out[0].startswith("stream,uid,client,")
    bad = subprocess.run([sys.executable, "-m", "tcpsift", "conns", str(ROOT / "samples" / "sample.pcap"),
                          "--where", "nonsense >"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("tcpsift: --where:") and "Traceback" not in bad.stderr


def test_a_refused_connection_was_never_open(tmp_path):
    """A connection refused (SYN, RST) before another ends is not subtracted from the
    open count (it was never open); here: A open, B refused, C open, then A ends, with C
    the one other connection open at that instant."""
    def conn(port, flags, seq, ack, from_client=True):
        (sa, sp), (da, dp) = ((CLIENT[0], port), SERVER) if from_client else (SERVER, (CLIENT[0], port))
        return cw.ether(cw.ipv4(cw.tcp(b"", sport=sp, dport=dp, seq=seq, ack=ack, flags=flags),
                                src=sa, dst=da))

    def handshake(port):
        return [conn(port, S, 100, 0), conn(port, S | A, 500, 101, False), conn(port, A, 101, 501)]

    frames = (handshake(40001) + [conn(40002, S, 100, 0), conn(40002, R | A, 0, 101, False)]
              + handshake(40003) + [conn(40001, F | A, 101, 501)])
    path = tmp_path / "t.pcap"
    path.write_bytes(cw.pcap_file([cw.Record(1_700_000_000_000_000_000 + i * 1_000_000, f)
                                   for i, f in enumerate(frames)]))
    conns = connections(tcpsift.read(path))
    a = conns.filter(pl.col("client_port") == 40001).row(0, named=True)
    assert (a["client_open_at_end"], a["client_open_to_same_server_at_end"]) == (1, 1)
