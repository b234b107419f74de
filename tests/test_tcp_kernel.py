"""The compiled TCP analysis (tcpsift.tcp, Cython) equals the pure-Python reference
(tests/support/tcp_reference.py, itself checked against tshark 4.0.17): every column,
every row.

- every capture of ../shared/captures/public and ../shared/lab/captures (the whole
  corpus takes a few seconds; TCPSIFT_TCP_KERNEL_MAX_FRAMES caps the frames per capture
  for the reference, default 200,000);
- Hypothesis-generated TCP conversations: several connections interleaved, IPv4 and
  IPv6, handshakes with and without window scaling, retransmissions, reordering, gaps,
  zero windows and probes, keep-alives, duplicate ACKs, SACK blocks, RST, FIN, SYN port
  reuse, time running backwards, headers quoted in ICMP errors, bogus header lengths.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from support import capwriter as cw  # noqa: E402
from support.tcp_reference import COLUMNS  # noqa: E402
from support.tcp_reference import analyze as reference

import tcpsift  # noqa: E402
from tcpsift.schema import TCP_ANALYSIS_COLUMNS, TCP_KEY_COLUMNS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TCPSIFT_SHARED", REPO.parent / "shared"))
MAX_FRAMES = int(os.environ.get("TCPSIFT_TCP_KERNEL_MAX_FRAMES", "200000"))
EXAMPLES = int(os.environ.get("TCPSIFT_TCP_KERNEL_EXAMPLES", "150"))


def corpus() -> list[str]:
    out = []
    for sub in ("captures/public", "lab/captures"):
        d = SHARED / sub
        if d.is_dir():
            out += [str(p.relative_to(SHARED)) for p in sorted(d.rglob("*"))
                    if p.is_file() and p.name != "MANIFEST.tsv"
                    and not p.name.endswith((".md", ".json"))]
    return out


CAPTURES = corpus()


def assert_same(cap, where: str) -> None:
    packets, layers = cap.packets, cap.layers
    if packets.height > MAX_FRAMES:
        packets = packets.head(MAX_FRAMES)
        layers = layers.filter(pl.col("frame") <= packets["frame"].max())
    want = reference(packets, layers)
    # the table's keys (frame, file_id) first, then the columns the reference computes
    got = tcpsift.tcp.analyze_tables(packets, layers)
    keys = [c.name for c in TCP_KEY_COLUMNS]
    assert got.columns[:len(keys)] == keys
    assert (got["frame"] == packets["frame"]).all()
    got = got.drop(keys)
    assert got.schema == want.schema
    for c in want.columns:
        eq = want[c].eq_missing(got[c])
        if not eq.all():
            rows = (~eq).arg_true()[:5]
            pytest.fail(f"{where}: column {c} differs on {int((~eq).sum())} rows, e.g. frames "
                        f"{packets['frame'].gather(rows).to_list()}: reference "
                        f"{want[c].gather(rows).to_list()} kernel {got[c].gather(rows).to_list()}")


def test_analysis_bits_agree():
    from support import tcp_reference as ref

    from tcpsift.tcp import _analysis as K

    names = {**tcpsift.tcp.FLAG_BITS, "HAS_ANALYSIS": tcpsift.tcp.HAS_ANALYSIS,
             "NOT_SHOWN": tcpsift.tcp.NOT_SHOWN, "QUOTED": tcpsift.tcp.QUOTED}
    assert names == K.ANALYSIS_BITS
    assert tcpsift.tcp.FLAG_BITS == {**ref.FLAG_BITS, "retransmission": ref.RETRANSMISSION}


def test_columns_match_schema_and_reference():
    # the table's keys (frame, file_id) come first, then the kernel's columns
    assert [c.name for c in TCP_ANALYSIS_COLUMNS] == list(COLUMNS)
    keys = [c.name for c in TCP_KEY_COLUMNS]
    assert list(tcpsift.tcp.schema())[:len(keys)] == keys
    assert {k: v for k, v in tcpsift.tcp.schema().items() if k not in keys} == dict(COLUMNS)


@pytest.mark.slow
@pytest.mark.skipif(not CAPTURES, reason=f"capture corpus not found under {SHARED}")
@pytest.mark.parametrize("capture", CAPTURES or ["<none>"])
def test_kernel_equals_reference_on_corpus(capture):
    try:
        cap = tcpsift.read(str(SHARED / capture))
    except tcpsift.CaptureError:
        pytest.skip("not a capture tcpsift reads")
    assert_same(cap, capture)


def test_capture_tcp_is_cached_and_aligned():
    data = cw.pcap_file([cw.Record(1_000_000_000 + i * 1000, cw.eth_ipv4_tcp(
        b"x" * i, tcp_seq=100 + sum(range(i)), tcp_flags=cw.TCP_ACK)) for i in range(5)])
    with tempfile.NamedTemporaryFile(suffix=".pcap") as fh:
        fh.write(data)
        fh.flush()
        cap = tcpsift.read(fh.name)
        t = cap.tcp
        assert t is cap.tcp
        assert t.height == cap.packets.height
        assert t["stream"].to_list() == [0] * 5
        assert t["rel_seq"].to_list() == [1, 1, 2, 4, 7]


# --- generated conversations -------------------------------------------------------------

ENDPOINTS = [("192.0.2.1", "198.51.100.2"), ("2001:db8::1", "2001:db8::2"),
             ("10.0.0.2", "10.0.0.1")]


@st.composite
def conversations(draw):
    """A list of pcap records: a few connections (some sharing addresses and ports, so
    that a new SYN reuses them), each side keeping a sequence cursor that events advance,
    repeat (retransmission), skip (gap) or step back (reordering)."""
    nconn = draw(st.integers(1, 3))
    conns = []
    for _ in range(nconn):
        src, dst = draw(st.sampled_from(ENDPOINTS))
        sport = draw(st.sampled_from([40000, 40001]))
        conns.append({"src": src, "dst": dst, "sport": sport, "dport": 80,
                      "seq": [draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))],
                      "sent": [[], []], "ws": draw(st.sampled_from([None, 0, 2, 7, 15])),
                      "last": [(0, 65535), (0, 65535)]})
    ts = 1_600_000_000_000_000_000
    recs = []
    nev = draw(st.integers(1, 40))
    pending = []      # events an episode forces next: (connection, side, kind)
    for _ in range(nev):
        if pending:
            c, side, kind = pending.pop(0)
        else:
            c = conns[draw(st.integers(0, nconn - 1))]
            side = draw(st.integers(0, 1))
            kind = draw(st.sampled_from([
                "syn", "synack", "data", "data", "data", "ack", "ack", "ack", "fin", "rst",
                "retrans", "gap", "back", "probe", "keepalive", "newsyn", "icmp", "bogus",
                "repeat", "repeat", "zwp", "ka"]))
        dt = draw(st.sampled_from([0, 100_000, 1_000_000, 2_900_000, 30_000_000, -500_000]))
        ts += dt
        seq = c["seq"][side]
        other = c["seq"][1 - side]
        ack_choice = draw(st.sampled_from(["cur", "cur", "old", "ahead", "zero"]))
        ack = {"cur": other, "old": (other - draw(st.integers(1, 3000))) % 2**32,
               "ahead": (other + draw(st.integers(1, 3000))) % 2**32, "zero": 0}[ack_choice]
        window = draw(st.sampled_from([0, 512, 65535, 29200, 29200]))
        n = draw(st.sampled_from([0, 1, 100, 1448]))
        if kind == "zwp":
            # zero window episode: this side closes its window, the other probes, this
            # side repeats its zero-window ACK
            kind, window = "ack", 0
            pending[:0] = [(c, 1 - side, "probe"), (c, side, "repeat")]
        elif kind == "ka":
            kind = "keepalive"
            pending[:0] = [(c, 1 - side, "repeat")]
        flags = cw.TCP_ACK
        options = b""
        payload = b""
        if kind in ("syn", "synack", "newsyn"):
            flags = cw.TCP_SYN | (cw.TCP_ACK if kind == "synack" else 0)
            if kind == "newsyn":
                seq = draw(st.integers(0, 2**32 - 1))
            c["seq"][side] = (seq + 1) % 2**32
            if c["ws"] is not None and draw(st.booleans()):
                options = cw.opt_mss(1460) + cw.opt_nop() + cw.opt_ws(c["ws"])
            if kind != "synack":
                ack = 0 if draw(st.booleans()) else ack
        elif kind in ("data", "gap"):
            if kind == "gap":
                seq = (seq + draw(st.integers(1, 5000))) % 2**32
            payload = b"d" * max(n, 1)
            flags |= cw.TCP_PSH if draw(st.booleans()) else 0
            c["sent"][side].append((seq, len(payload)))
            c["seq"][side] = (seq + len(payload)) % 2**32
        elif kind == "retrans" and c["sent"][side]:
            seq, ln = draw(st.sampled_from(c["sent"][side]))
            payload = b"r" * ln
        elif kind == "back":
            seq = (seq - draw(st.integers(1, 3000))) % 2**32
            payload = b"b" * max(n, 1)
        elif kind == "probe":
            payload = b"p"
        elif kind == "keepalive":
            seq = (seq - 1) % 2**32
            payload = b"k" * draw(st.integers(0, 1))
        elif kind == "fin":
            flags |= cw.TCP_FIN
            c["seq"][side] = (seq + 1) % 2**32
        elif kind == "repeat":
            # the same ACK and window again: a duplicate ACK, or the ACK of a keep-alive
            # or of a zero window probe when one just went the other way
            ack, window = c["last"][side]
        elif kind == "rst":
            flags = cw.TCP_RST | (cw.TCP_ACK if draw(st.booleans()) else 0)
        if kind == "ack" and draw(st.booleans()):
            left = (other - draw(st.integers(1, 4000))) % 2**32
            nb = draw(st.integers(1, 4))
            options = cw.opt_nop() + cw.opt_nop() + cw.opt_sack(
                [((left + 10 * i) % 2**32, (left + 10 * i + 5) % 2**32) for i in range(nb)])
        c["last"][side] = (ack, window)
        src, dst = (c["src"], c["dst"]) if side == 0 else (c["dst"], c["src"])
        sport, dport = (c["sport"], c["dport"]) if side == 0 else (c["dport"], c["sport"])
        seg = cw.tcp(payload, sport=sport, dport=dport, seq=seq, ack=ack, flags=flags,
                     window=window, options=options,
                     data_offset=draw(st.sampled_from([3, 4])) if kind == "bogus" else None)
        v6 = ":" in src
        if kind == "icmp":
            # an ICMP error from the receiver quoting (part of) this segment
            quote = draw(st.sampled_from([8, 16, 20]))
            inner = (cw.ipv6(seg, src=src, dst=dst) if v6 else cw.ipv4(seg, src=src, dst=dst))
            inner = inner[:(40 if v6 else 20) + quote]
            if v6:
                pkt = cw.ipv6(cw.icmpv6(1, 4, b"\0\0\0\0", inner), src=dst, dst=src, nh=58)
            else:
                itype = draw(st.sampled_from([3, 5, 11]))
                pkt = cw.ipv4(cw.icmp(itype, 1, b"\0\0\0\0", inner), src=dst, dst=src, proto=1)
        else:
            pkt = cw.ipv6(seg, src=src, dst=dst) if v6 else cw.ipv4(seg, src=src, dst=dst)
        eth = cw.ether(pkt, ethertype=0x86DD if v6 else 0x0800)
        if options and flags & cw.TCP_SYN and draw(st.integers(0, 4)) == 0:
            # the capture ends inside the TCP options (snaplen)
            cut = 14 + (40 if v6 else 20) + 20 + draw(st.integers(1, len(options) - 1))
            recs.append(cw.Record(ts, eth[:cut], orig_len=len(eth)))
        else:
            recs.append(cw.Record(ts, eth))
    return recs


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conversations())
def test_kernel_equals_reference_on_generated_conversations(recs):
    with tempfile.NamedTemporaryFile(suffix=".pcap") as fh:
        fh.write(cw.pcap_file(recs, nsec=True))
        fh.flush()
        cap = tcpsift.read(fh.name)
        assert_same(cap, "generated")


@st.composite
def bulk_transfers(draw):
    """One long transfer: many segments in flight, ACKs lagging behind, old segments
    retransmitted, copies seen twice, SACK blocks, sequence numbers that wrap: the
    kernel's ordered list of unacknowledged segments and its fallback are exercised."""
    isn = draw(st.sampled_from([0, 1000, 2**32 - 3000, 2**31 - 500,
                                draw(st.integers(0, 2**32 - 1))]))
    peer = draw(st.integers(0, 2**32 - 1))
    mss = draw(st.sampled_from([100, 1000, 1460]))
    a, b = "192.0.2.7", "198.51.100.9"
    ts = 1_700_000_000_000_000_000

    def seg(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b""):
        return cw.ether(cw.ipv4(cw.tcp(payload, sport=sport, dport=dport, seq=seq % 2**32,
                                       ack=ack % 2**32, flags=flags, window=8192,
                                       options=options), src=src, dst=dst))

    recs = [cw.Record(ts, seg(a, b, 5000, 80, isn, 0, cw.TCP_SYN, options=cw.opt_ws(3))),
            cw.Record(ts + 1000, seg(b, a, 80, 5000, peer, isn + 1, cw.TCP_SYN | cw.TCP_ACK,
                                     options=cw.opt_ws(5))),
            cw.Record(ts + 2000, seg(a, b, 5000, 80, isn + 1, peer + 1, cw.TCP_ACK))]
    ts += 3000
    sent = []          # starts of the chunks sent
    nxt = isn + 1
    acked = isn + 1
    for _ in range(draw(st.integers(10, 150))):
        ts += draw(st.sampled_from([10_000, 500_000, 4_000_000]))
        ev = draw(st.sampled_from(["send", "send", "send", "send", "ack", "ack", "old",
                                   "dup", "sack", "fin"]))
        if ev == "send" or (ev in ("old", "dup") and not sent):
            n = draw(st.sampled_from([mss, mss, mss // 2, 1]))
            sent.append((nxt, n))
            recs.append(cw.Record(ts, seg(a, b, 5000, 80, nxt, peer + 1,
                                          cw.TCP_ACK | cw.TCP_PSH, b"x" * n)))
            nxt += n
        elif ev == "old":
            s0, n = draw(st.sampled_from(sent))
            recs.append(cw.Record(ts, seg(a, b, 5000, 80, s0, peer + 1, cw.TCP_ACK, b"r" * n)))
        elif ev == "dup":
            # the last few segments seen again (a capture point that sees them twice)
            for s0, n in sent[-draw(st.integers(1, 4)):]:
                recs.append(cw.Record(ts, seg(a, b, 5000, 80, s0, peer + 1, cw.TCP_ACK,
                                              b"d" * n)))
        elif ev in ("ack", "sack"):
            if sent:
                s0, n = draw(st.sampled_from(sent))
                acked = s0 + n if draw(st.booleans()) else s0 + n // 2
            opts = b""
            if ev == "sack" and sent:
                l0, n0 = draw(st.sampled_from(sent))
                opts = cw.opt_nop() + cw.opt_nop() + cw.opt_sack([(l0 % 2**32,
                                                                    (l0 + n0) % 2**32)])
            recs.append(cw.Record(ts, seg(b, a, 80, 5000, peer + 1, acked, cw.TCP_ACK,
                                          options=opts)))
        elif ev == "fin":
            recs.append(cw.Record(ts, seg(a, b, 5000, 80, nxt, peer + 1,
                                          cw.TCP_ACK | cw.TCP_FIN)))
    return recs


@pytest.mark.slow
@settings(max_examples=max(EXAMPLES // 3, 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bulk_transfers())
def test_kernel_equals_reference_on_generated_bulk_transfers(recs):
    with tempfile.NamedTemporaryFile(suffix=".pcap") as fh:
        fh.write(cw.pcap_file(recs, nsec=True))
        fh.flush()
        assert_same(tcpsift.read(fh.name), "generated bulk")
