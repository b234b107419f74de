"""tcpsift.compare with segmentation offload: b is a host's own capture, made here from a
real capture by merging consecutive segments as Linux does (GRO for what the host
receives, a TSO super-segment for what it sends), and nothing may be reported lost."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import capreader, capwriter  # noqa: E402
from support import tcp_conformance as tc  # noqa: E402
from test_compare_retrans import Tcp, parse  # noqa: E402

SHARED = tc.shared()
SOURCES = {
    # a public capture of one HTTP download, without TCP timestamps
    "bulk-http-download": SHARED / "captures" / "public" / "tcp" / "bulk-http-download.pcap",
    # the lab's capture at a router port: uploads and downloads, with TCP timestamps
    "lab-lossy-a": SHARED / "lab" / "captures" / "twopoint-lossy-a.pcap",
}
GRO_MAX_BYTES = 65_535 - 40 - 60    # what one merged IP packet can hold
ACK, PSH = 0x10, 0x08


@dataclass
class Merged:
    """What `coalesce` did: per merged segment, how many wire segments it holds and whether
    they left the client."""
    pieces: int
    from_client: bool


def mergeable(first: Tcp, last: Tcp, nxt: Tcp, first_frame: bytes, nxt_frame: bytes,
              size: int) -> bool:
    """Whether Linux's tcp_gro_receive would add `nxt` to the run `first`..`last`: the same
    flow, the next bytes in order, the same ack, window, header length and options (TCP
    timestamps among them), only ACK (and PSH) set, no PSH on the run so far (it ends a
    run), the IPv4 id one more, and room left."""
    if nxt.flow != last.flow or nxt.length <= 0 or nxt.seq != (last.seq + last.length) % 2**32:
        return False
    if last.flags & PSH or nxt.flags & ~PSH != ACK or first.flags & ~PSH != ACK:
        return False
    head = slice(first.tcp_at + 8, first.tcp_at + 12)         # the ack
    if first_frame[head] != nxt_frame[nxt.tcp_at + 8:nxt.tcp_at + 12]:
        return False
    offset = (first_frame[first.tcp_at + 12] >> 4) * 4
    if first.window != nxt.window or offset != (nxt_frame[nxt.tcp_at + 12] >> 4) * 4:
        return False
    if first_frame[first.tcp_at + 20:first.tcp_at + offset] != \
            nxt_frame[nxt.tcp_at + 20:nxt.tcp_at + offset]:
        return False
    if first.ip_id is not None and nxt.ip_id != (last.ip_id + 1) & 0xFFFF:
        return False
    return size + nxt.length <= GRO_MAX_BYTES


def merged_frame(frames: list[bytes], parsed: list[Tcp]) -> bytes:
    """The first frame's headers with every payload after them: the IP length made
    again (and the IPv4 header checksum), PSH when any had it (the TCP checksum is left as
    it was: a capture on the host shows it unfinished too)."""
    first, t = bytearray(frames[0]), parsed[0]
    offset = (first[t.tcp_at + 12] >> 4) * 4
    payload = b"".join(f[p.tcp_at + (f[p.tcp_at + 12] >> 4) * 4:][:p.length]
                       for f, p in zip(frames, parsed))
    out = first[:t.tcp_at + offset] + payload
    if any(p.flags & PSH for p in parsed):
        out[t.tcp_at + 13] |= PSH
    if t.ip_id is not None:
        out[16:18] = (len(out) - 14).to_bytes(2, "big")
        header = 14 + (out[14] & 0x0F) * 4
        out[24:26] = b"\0\0"
        out[24:26] = capwriter.inet_checksum(bytes(out[14:header])).to_bytes(2, "big")
    else:
        out[18:20] = (len(out) - 54).to_bytes(2, "big")
    return bytes(out)


def coalesce(frames, from_client) -> tuple[list[capwriter.Record], list[Merged]]:
    """The capture as the host would have seen it: runs of consecutive segments of a flow
    (adjacent in the capture) merged into one, at the first one's time."""
    records, merged = [], []
    i = 0
    while i < len(frames):
        f = frames[i]
        t = parse(f.data)
        run = [i]
        if t is not None and t.length > 0 and f.wire_len == len(f.data):
            size = t.length
            while i + len(run) < len(frames):
                g = frames[i + len(run)]
                nxt = parse(g.data)
                last = parse(frames[run[-1]].data)
                if nxt is None or g.wire_len != len(g.data) or \
                        not mergeable(t, last, nxt, f.data, g.data, size):
                    break
                run.append(i + len(run))
                size += nxt.length
        if len(run) == 1:
            records.append(capwriter.Record(f.ts_ns, f.data, f.wire_len))
        else:
            data = merged_frame([frames[k].data for k in run], [parse(frames[k].data) for k in run])
            records.append(capwriter.Record(f.ts_ns, data))
            merged.append(Merged(len(run), from_client(t)))
        i += len(run)
    return records, merged


def clients(frames) -> set:
    """The clients' addresses as docs/schema.md defines a client: the senders of SYNs, else
    the side on the higher port (parsed here)."""
    found, first = set(), None
    for f in frames:
        t = parse(f.data)
        if t is not None and (t.flags & 0x12) == 0x02:
            found.add(t.src)
        first = first or t
    assert first is not None
    return found or {first.src if first.sport > first.dport else first.dst}


@pytest.mark.parametrize("source", SOURCES)
def test_a_hosts_merged_segments_are_matched_by_byte_range_nothing_lost(source, tmp_path):
    import tcpsift

    path = SOURCES[source]
    if not path.exists():
        pytest.skip(f"needs {path}")
    frames = capreader.read_frames(path)
    client = clients(frames)

    def from_client(t: Tcp) -> bool:
        return t.src in client

    records, merged = coalesce(frames, from_client)
    assert len(merged) > 10, "the source has runs to merge"
    # b is the client host: what it sends it captures 1 ms before a sees it (as TSO
    # super-segments), what it receives 1 ms after (merged by GRO)
    for r in records:
        t = parse(r.data)
        if t is not None:
            r.ts_ns += -1_000_000 if from_client(t) else 1_000_000
    b = tmp_path / "b.pcap"
    b.write_bytes(capwriter.pcap_file(sorted(records, key=lambda r: r.ts_ns), nsec=True))
    got = tcpsift.compare(path, b).to_dict()
    c2s, s2c = got["per_direction"]["c2s"], got["per_direction"]["s2c"]
    assert (c2s["upstream"], s2c["upstream"]) == ("b", "a")
    for d in (c2s, s2c):
        assert d["lost_between_points"] == 0
        assert d["matched"] == d["sent_upstream"]
    # received: each wire segment at a inside a merged one at b; sent: each super-segment
    # at b covered by its pieces at a
    assert s2c["matched_by_byte_range"] == sum(m.pieces for m in merged if not m.from_client)
    assert c2s["matched_by_byte_range"] == sum(1 for m in merged if m.from_client)
    # the exact matches give the delays; the byte-range ones are only approximate
    assert s2c["one_way_delay_ms"]["median"] == pytest.approx(1.0, abs=1e-6)
    assert not s2c["one_way_delay_approximate"]
    assert got["verdict"] != "network"
