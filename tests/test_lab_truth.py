"""tcpsift's TCP analysis against the lab's ground truth (../shared/lab/captures).

Each lab capture comes with NAME.truth.json saying what was injected (slow SYN-ACKs,
client resets, zero-window episodes, dropped segments); see ../shared/lab/README.md.
These tests find those facts again from the packet table plus the compiled analysis
(`Capture.tcp`: stream, window and verdict columns), exactly. tests/test_tcp_kernel.py
holds the kernel equal to the pure-Python reference on these captures too.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import tcp_conformance as tc  # noqa: E402
from support.tcp_reference import FAST_RETRANSMISSION, FLAG_BITS, OUT_OF_ORDER, RETRANSMISSION, ZERO_WINDOW  # noqa: E402

LAB = tc.shared() / "lab" / "captures"
pytestmark = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")

SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def truth(name: str) -> dict:
    return json.loads((LAB / f"{name}.truth.json").read_text())


def table(file: str) -> pl.DataFrame:
    """Packet table with the TCP analysis columns, TCP rows only."""
    import tcpsift

    cap = tcpsift.read(str(LAB / file))
    res = cap.tcp
    t = cap.packets.join(res.drop("file_id"), on="frame", how="left", maintain_order="left")
    return t.filter(pl.col("stream").is_not_null()).with_columns(
        pl.col("src").cast(pl.String), pl.col("dst").cast(pl.String))


def endpoint(ep: str) -> tuple[str, int]:
    host, _, port = ep.rpartition(":")
    return host.strip("[]"), int(port)


def from_to(t: pl.DataFrame, a: str, b: str) -> pl.Expr:
    (ha, pa), (hb, pb) = endpoint(a), endpoint(b)
    return ((pl.col("src") == ha) & (pl.col("sport") == pa) & (pl.col("dst") == hb)
            & (pl.col("dport") == pb))


# --- slow SYN-ACKs --------------------------------------------------------------------

def test_slow_synack_connections():
    tr = truth("slow-synack")
    exp = tr["expected"]
    t = table("slow-synack.pcap")
    # per stream: first pure SYN, first SYN-ACK (the truth's definition)
    syn = (t.filter(pl.col("tcp_flags") & (SYN | ACK) == SYN)
           .group_by("stream").agg(pl.col("frame").min().alias("syn_frame"),
                                   pl.col("ts_ns").min().alias("syn_ns")))
    synack = (t.filter(pl.col("tcp_flags") & (SYN | ACK) == (SYN | ACK))
              .group_by("stream").agg(pl.col("frame").min().alias("syn_ack_frame"),
                                      pl.col("ts_ns").min().alias("syn_ack_ns")))
    conns = (syn.join(synack, on="stream", how="left").sort("syn_frame")
             .with_row_index("syn_order", offset=1)
             .with_columns(((pl.col("syn_ack_ns") - pl.col("syn_ns")) / 1e6).alias("ms")))
    assert len(conns) == exp["total_connections"]
    slow = conns.filter(pl.col("ms") > exp["threshold_ms"])
    assert slow["syn_order"].to_list() == exp["connections_over_threshold"]
    first = slow.row(0, named=True)
    fc = exp["first_connection_over_threshold"]["from_capture"]
    assert (first["stream"], first["syn_frame"], first["syn_ack_frame"]) == (
        fc["tcp_stream"], fc["syn_frame"], fc["syn_ack_frame"])
    assert first["ms"] == pytest.approx(fc["syn_to_syn_ack_ms"], abs=0.001)
    # the deliberate near misses stay below the threshold but above the untouched ones
    for order in exp["connections_delayed_below_threshold"]:
        ms = conns.filter(pl.col("syn_order") == order)["ms"][0]
        assert ms < exp["threshold_ms"]
    # every injected connection is one stream whose handshake the truth also timed
    for c in tr["injected"]["connections"]:
        row = conns.filter(pl.col("syn_order") == c["syn_order"]).row(0, named=True)
        assert row["stream"] == c["from_capture"]["tcp_stream"]
        assert row["ms"] == pytest.approx(c["from_capture"]["syn_to_syn_ack_ms"], abs=0.001)


# --- client resets --------------------------------------------------------------------

def test_client_reset_connections():
    tr = truth("client-resets")
    t = table("client-resets.pcapng")
    streams = {}
    for s, g in t.group_by("stream"):
        g = g.sort("frame")
        # direction 0: sent by the side that opened the stream (the client here)
        server_ip = g.filter(pl.col("direction") == 0)["dst"][0]
        synack = g.filter(pl.col("tcp_flags") & (SYN | ACK) == (SYN | ACK))
        # handshake complete: the client's first pure ACK after the SYN-ACK
        done = None
        if len(synack):
            acks = g.filter((pl.col("frame") > synack["frame"][0]) & (pl.col("direction") == 0)
                            & (pl.col("tcp_flags") & (SYN | ACK | FIN | RST) == ACK))
            done = acks["frame"][0] if len(acks) else None
        closes = g.filter(pl.col("tcp_flags") & (FIN | RST) != 0)
        streams[s[0]] = (server_ip, done, closes["frame"][0] if len(closes) else None)
    for r in tr["expected"]["resets"]:
        fc = r["from_capture"]
        rst = t.filter(from_to(t, r["client"], r["server"])
                       & (pl.col("tcp_flags") & RST != 0)).sort("frame")
        assert rst["frame"][0] == fc["rst_frame"]
        assert rst["stream"][0] == fc["tcp_stream"]
        frame = fc["rst_frame"]
        server_ip = endpoint(r["server"])[0]

        def is_open(v, frame=frame):
            _, done, close = v
            return done is not None and done < frame and (close is None or close >= frame)

        others = [s for s, v in streams.items() if s != fc["tcp_stream"] and is_open(v)]
        assert sum(streams[s][0] != server_ip for s in others) == r["open_to_other_servers"]
        assert sum(streams[s][0] == server_ip for s in others) == r["open_to_same_server"]


# --- zero window ----------------------------------------------------------------------

def test_zero_window_episodes():
    tr = truth("zero-window")
    zc = tr["zero_window_connection"]
    t = table("zero-window.pcap")
    client = t.filter(from_to(t, zc["client"], zc["server"])).sort("frame")
    assert client["stream"].unique().to_list() == [zc["from_capture"]["tcp_stream"]]
    client = client.filter(pl.col("tcp_flags") & (SYN | FIN | RST) == 0)
    episodes, cur = [], None
    for f, w in zip(client["frame"], client["window_scaled"]):
        if w == 0 and cur is None:
            cur = [f, None, None]
        elif w != 0 and cur is not None:
            cur[1], cur[2] = f, w
            episodes.append(cur)
            cur = None
    assert len(episodes) == zc["zero_window_episodes"]
    for got, ep in zip(episodes, zc["episodes"]):
        fc = ep["from_capture"]
        assert got == [fc["first_zero_frame"], fc["reopen_frame"], fc["reopen_window"]]
    # the zero_window verdict is on exactly the client's zero-window frames
    flagged = client.filter(pl.col("analysis") & ZERO_WINDOW != 0)
    assert len(flagged) == zc["from_capture"]["zero_window_frames_tshark"]
    assert (flagged["window_scaled"] == 0).all()


# --- dropped segments -----------------------------------------------------------------

HOLE = RETRANSMISSION | FAST_RETRANSMISSION | OUT_OF_ORDER


def test_dropped_segments():
    tr = truth("loss-retrans")
    t = table("loss-retrans.pcap")
    total = 0
    for c in tr["injected"]["connections"]:
        d = c["data_direction"]
        snd, rcv = (c["client"], c["server"]) if d == "c2s" else (c["server"], c["client"])
        data = t.filter(from_to(t, snd, rcv) & (pl.col("tcp_len") > 0)).sort("frame")
        assert data["stream"].unique().to_list() == [c["from_capture"]["tcp_stream"]]
        dropped = c["dropped"]
        assert len(dropped) == c["dropped_count"][d]
        total += len(dropped)
        seen, refilled, retransmitted = set(), set(), set()
        for seq, a in zip(data["seq"], data["analysis"]):
            if a & HOLE:
                retransmitted.add(seq)
                if seq not in seen:
                    refilled.add(seq)      # first copy in the capture is a re-sending
            seen.add(seq)
        want = {p["seq"] for p in dropped}
        kind = {r["rule"]: r["kind"] for r in c["planned_drops"]}
        tail = {p["seq"] for p in dropped if any(kind.get(r) == "tail" for r in p["rules"])}
        if d == "s2c":
            # lost before the capture point: the segments first seen as a re-sending are
            # exactly the dropped ones, except a lost tail: nothing follows it, so its
            # re-sending is the first copy and looks like new data (no verdict, in tshark
            # neither); it is the last data segment, seen once
            assert refilled == want - tail
            for seq in tail:
                assert data["seq"].to_list().count(seq) == 1
                assert data["seq"][-1] == seq
        else:
            # lost after the capture point: each dropped frame is in the capture and its
            # data was sent again; nothing else was
            assert sorted(p["from_capture"]["frame"] for p in dropped) == sorted(
                data.filter(pl.col("seq").is_in(list(want)) & (pl.col("analysis") & HOLE == 0))
                ["frame"].to_list())
            assert retransmitted == want
        # the reference's verdict counts in the data direction are tshark's
        flags = c["from_capture"]["data_direction_tshark_flags"]
        for name, n in flags.items():
            bits = FLAG_BITS[name]
            if name == "retransmission":   # tshark's field is also set on fast/spurious ones
                bits |= FLAG_BITS["fast_retransmission"] | FLAG_BITS["spurious_retransmission"]
            got = data.filter(pl.col("analysis") & bits != 0)
            if name == "lost_segment":
                got = t.filter(from_to(t, snd, rcv) & (pl.col("analysis") & FLAG_BITS[name] != 0))
            assert len(got) == n, name
    assert total == tr["expected"]["lost_packets_total"]
