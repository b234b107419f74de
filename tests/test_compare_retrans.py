"""tcpsift.compare: where each retransmission's original went missing, and window shrinks
seen at one point only; against the lab's two-point truth and against what the tests
inject into a real capture (samples/sample.pcap: no retransmission in it, tshark finds none)."""
from __future__ import annotations

import ipaddress
import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import capreader, capwriter  # noqa: E402
from support import tcp_conformance as tc  # noqa: E402

LAB = tc.shared() / "lab" / "captures"
needs_lab = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.pcap"
SERVER_PORTS = {80, 443}


@dataclass
class Tcp:
    """The fields of an Ethernet frame's TCP segment (parsed here, not by tcpsift)."""
    src: object
    dst: object
    sport: int
    dport: int
    seq: int
    flags: int
    window: int
    length: int
    ip_id: int | None
    ip_at: int          # offset of the IP header
    tcp_at: int         # offset of the TCP header

    @property
    def flow(self):
        return (self.src, self.sport, self.dst, self.dport)


def parse(frame: bytes) -> Tcp | None:
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0800 and frame[23] == 6:
        ihl = (frame[14] & 0x0F) * 4
        total = int.from_bytes(frame[16:18], "big")
        at = 14 + ihl
        src, dst = ipaddress.ip_address(frame[26:30]), ipaddress.ip_address(frame[30:34])
        ip_id, payload_end = int.from_bytes(frame[18:20], "big"), 14 + total
    elif ethertype == 0x86DD and frame[20] == 6:
        at = 54
        src, dst = ipaddress.ip_address(frame[22:38]), ipaddress.ip_address(frame[38:54])
        ip_id, payload_end = None, 54 + int.from_bytes(frame[18:20], "big")
    else:
        return None
    sport, dport, seq = struct.unpack("!HHI", frame[at:at + 8])
    offset = (frame[at + 12] >> 4) * 4
    return Tcp(src, dst, sport, dport, seq, frame[at + 13],
               int.from_bytes(frame[at + 14:at + 16], "big"), payload_end - at - offset,
               ip_id, 14, at)


def from_client(t: Tcp) -> bool:
    return t.dport in SERVER_PORTS


# --- the lab ------------------------------------------------------------------------------

def truth(pair: str) -> dict:
    return json.loads((LAB / f"twopoint-{pair}.truth.json").read_text())


def expected_retransmissions(pair: str) -> dict:
    """Per direction, from the upstream capture (parsed here) and the truth's list of the
    packets the router dropped: data segments that start below the highest byte their flow
    had sent, by whether the first segment that carried that byte is one the truth says was
    dropped between the points (the lab drops nothing elsewhere: the rest are spurious)."""
    tr = truth(pair)
    out = {}
    for direction, facts in tr["injected"]["directions"].items():
        dropped = {(p["ip_id"], p["seq"]) for p in facts["lost"]["packets"] if p["len"] > 0}
        clients = {f["client"].rsplit(":", 1)[0].strip("[]") for f in tr["injected"]["flows_in_both"]}
        frames = capreader.read_frames(LAB / f"twopoint-{pair}-{facts['upstream_point']}.pcap")
        sent: dict = {}          # flow -> [(start, end, ip_id, seq)] relative to its first seq
        counts = {"count": 0, "lost_between_points": 0, "spurious": 0}
        for f in frames:
            t = parse(f.data)
            if t is None or t.length <= 0 or t.flags & 0x02:
                continue
            client = str(t.src if from_client(t) else t.dst)
            if client not in clients or (direction == "c2s") != from_client(t):
                continue
            segments = sent.setdefault(t.flow, [])
            base = segments[0][3] if segments else t.seq
            start = (t.seq - base) % 2**32
            highest = max((end for _, end, _, _ in segments), default=-1)
            if start < highest and not (t.length <= 1 and start == highest - 1):
                original = next(s for s in segments if s[0] <= start < s[1])
                counts["count"] += 1
                lost = (original[2], original[3]) in dropped
                counts["lost_between_points" if lost else "spurious"] += 1
            segments.append((start, start + t.length, t.ip_id, t.seq))
        out[direction] = counts
    return out


@needs_lab
@pytest.mark.parametrize("pair", ("lossy", "clean-slow-server", "offset"))
def test_lab_retransmissions_by_where_their_original_went_missing(pair):
    import tcpsift

    got = tcpsift.compare(LAB / f"twopoint-{pair}-a.pcap", LAB / f"twopoint-{pair}-b.pcap")
    per = got.to_dict()["per_direction"]
    for direction, want in expected_retransmissions(pair).items():
        r = per[direction]["retransmissions"]
        assert (r["count"], r["original_lost_between_points"], r["spurious"]) == \
            (want["count"], want["lost_between_points"], want["spurious"]), direction
        assert r["original_lost_before_upstream"] == 0     # the lab drops only at the router
    # each data packet dropped between the points and retransmitted is named in the evidence
    if pair == "lossy":
        assert any("5 after their original was lost between a and b" in e for e in got.evidence)


@needs_lab
def test_lab_window_shrinks_at_one_point_are_the_networks_copies():
    import tcpsift

    got = tcpsift.compare(LAB / "twopoint-lossy-a.pcap", LAB / "twopoint-lossy-b.pcap")
    tr = truth("lossy")["injected"]["directions"]
    # the duplicates the router made (second copies at b) and the packets it dropped
    copies = {frame for p in tr["c2s"]["duplicated"]["packets"]
              for frame in p["from_capture"]["frames_b"][1:]}
    shrinks = got.window_shrinks
    downstream = shrinks.filter(shrinks["seen_at"] == "downstream")
    assert set(downstream["frame"].to_list()) <= copies and len(downstream) > 0
    assert (downstream["point"] == "b").all()
    conns = got.to_dict()["connections"]
    listed = {f for c in conns for f in c["c2s"]["window_shrink_frames"]["downstream"]}
    assert listed == set(downstream["frame"].to_list())
    clean = tcpsift.compare(LAB / "twopoint-clean-slow-server-a.pcap",
                            LAB / "twopoint-clean-slow-server-b.pcap")
    assert clean.window_shrinks.is_empty()      # nothing lost, duplicated or reordered there


# --- injected into a real capture ---------------------------------------------------------

def with_ip_id(frame: bytes, t: Tcp, ip_id: int) -> bytes:
    """The IPv4 frame with another IP id and its header checksum made again (a
    retransmission: the same segment sent again, under a new id)."""
    b = bytearray(frame)
    b[18:20] = ip_id.to_bytes(2, "big")
    header = 14 + (b[14] & 0x0F) * 4
    b[24:26] = b"\0\0"
    b[24:26] = capwriter.inet_checksum(bytes(b[14:header])).to_bytes(2, "big")
    return bytes(b)


def with_window(frame: bytes, t: Tcp, window: int) -> bytes:
    b = bytearray(frame)
    b[t.tcp_at + 14:t.tcp_at + 16] = window.to_bytes(2, "big")
    return bytes(b)


def write(path: Path, records) -> Path:
    path.write_bytes(capwriter.pcap_file(sorted(records, key=lambda r: r.ts_ns), nsec=True))
    return path


RESENT_AFTER_NS = 300_000_000


def test_injected_retransmissions_are_placed_where_their_original_went_missing(tmp_path):
    import tcpsift

    frames = capreader.read_frames(SAMPLE)
    parsed = [parse(f.data) for f in frames]
    # server data segments of IPv4 connections, three from the middle of their flows
    data = [i for i, t in enumerate(parsed)
            if t and t.ip_id is not None and not from_client(t) and t.length > 0]
    by_flow: dict = {}
    for i in data:
        by_flow.setdefault(parsed[i].flow, []).append(i)
    middle = [segs[1] for segs in by_flow.values() if len(segs) >= 3][:3]
    assert len(middle) == 3
    between, spurious, before = middle

    def resent(i: int) -> capwriter.Record:
        f, t = frames[i], parsed[i]
        return capwriter.Record(f.ts_ns + RESENT_AFTER_NS,
                                with_ip_id(f.data, t, (t.ip_id + 0x4000) & 0xFFFF), f.wire_len)

    plain = [capwriter.Record(f.ts_ns, f.data, f.wire_len) for f in frames]
    extra = [resent(i) for i in middle]
    # a: every original but `before`'s (lost before a); b: neither that nor `between`'s
    a = write(tmp_path / "a.pcap", [r for i, r in enumerate(plain) if i != before] + extra)
    b = write(tmp_path / "b.pcap", [r for i, r in enumerate(plain) if i not in (before, between)]
              + extra)
    got = tcpsift.compare(a, b).to_dict()
    s2c = got["per_direction"]["s2c"]
    assert s2c["upstream"] == "a" and s2c["lost_between_points"] == 1
    assert s2c["retransmissions"] == {"count": 3, "original_lost_between_points": 1,
                                      "original_lost_before_upstream": 1, "spurious": 1,
                                      "unknown": 0}
    assert got["per_direction"]["c2s"]["retransmissions"]["count"] == 0
    result = tcpsift.compare(a, b)
    rows = result.retransmissions.sort("t")
    # frames in a: the originals' order, `before` left out
    frame_in_a = {i: n for n, i in enumerate(
        sorted([i for i in range(len(frames)) if i != before]
               + [("x", i) for i in middle], key=lambda i: _time(frames, i)), start=1)}
    causes = dict(zip(rows["frame"].to_list(), rows["cause"].to_list()))
    assert causes == {frame_in_a[("x", between)]: "lost_between_points",
                      frame_in_a[("x", spurious)]: "spurious",
                      frame_in_a[("x", before)]: "lost_before_upstream"}
    originals = dict(zip(rows["frame"].to_list(), rows["original_frame"].to_list()))
    assert originals[frame_in_a[("x", between)]] == frame_in_a[between]
    assert originals[frame_in_a[("x", before)]] is None
    per_conn = [c["s2c"]["retransmissions"]["count"] for c in got["connections"]]
    assert sorted(per_conn, reverse=True)[:3] == [1, 1, 1] and sum(per_conn) == 3
    assert any("1 spurious: the original reached b" in e for e in result.evidence)


def _time(frames, i) -> tuple:
    # the order the writer gives (stable sort by time): a resent copy is at its own time
    if isinstance(i, tuple):
        return (frames[i[1]].ts_ns + RESENT_AFTER_NS, 1, i[1])
    return (frames[i].ts_ns, 0, i)


def test_a_window_shrink_lost_between_the_points_is_seen_upstream_only(tmp_path):
    import tcpsift

    frames = capreader.read_frames(SAMPLE)
    parsed = [parse(f.data) for f in frames]
    # a client ACK between two of its flow's packets with the same window
    client: dict = {}
    for i, t in enumerate(parsed):
        if t and from_client(t) and not t.flags & 0x02:
            client.setdefault(t.flow, []).append(i)
    target = next(mid for seq in client.values() for prev, mid, nxt in zip(seq, seq[1:], seq[2:])
                  if parsed[prev].window == parsed[nxt].window > 2 and parsed[mid].length == 0)
    shrunk = frames[target].data = with_window(frames[target].data, parsed[target],
                                               parsed[target].window // 2)
    assert shrunk
    records = [capwriter.Record(f.ts_ns, f.data, f.wire_len) for f in frames]
    a = write(tmp_path / "a.pcap", records)
    b = write(tmp_path / "b.pcap", [r for i, r in enumerate(records) if i != target])
    got = tcpsift.compare(a, b)
    c2s = got.to_dict()["per_direction"]["c2s"]
    assert (c2s["window_shrinks_only_upstream"], c2s["window_shrinks_only_downstream"]) == (1, 0)
    assert got.window_shrinks["frame"].to_list() == [target + 1]
    assert got.to_dict()["per_direction"]["s2c"]["window_shrinks_only_upstream"] == 0
    conn = [c for c in got.to_dict()["connections"] if c["c2s"]["window_shrink_frames"]["upstream"]]
    assert len(conn) == 1 and conn[0]["c2s"]["window_shrink_frames"]["upstream"] == [target + 1]
    assert any(f"shrank 1 time only at a (frames {target + 1})" in e for e in got.evidence)
