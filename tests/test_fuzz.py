"""Mutation fuzzing of real captures, decoded in-process with tcpsift.read.

Seeds are small files from ../shared/captures/public (classic pcap in both byte orders
and both resolutions, pcapng in both byte orders with SPB/EPB, Ethernet, VLAN/QinQ,
SLL/SLL2, GRE, VXLAN, MPLS, IPv6 extension headers, TCP options). Mutations: bit flips,
byte overwrites, truncation at any point, and container length fields (pcap
caplen/origlen, pcapng block total length / captured length / option length) set to
0, 0xFFFFFFFF, 0x7FFFFFFF or just above the bytes that remain.

For every mutant:
- tcpsift.read raises nothing but tcpsift.CaptureError, within the Hypothesis deadline;
- every frame whose record ends before the first mutated byte decodes exactly as in the
  unmutated file (all columns, and its bytes);
- no column holds an impossible value (cap_len <= 262144, payload inside the captured
  frame, header lengths in range, consecutive frame numbers, ...).

TCPSIFT_FUZZ_EXAMPLES sets the number of examples (default 150; e.g. 20000 for a long run).
"""
from __future__ import annotations

import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

tcpsift = pytest.importorskip("tcpsift")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TCPSIFT_SHARED", REPO.parent / "shared"))
PUBLIC = SHARED / "captures" / "public"
EXAMPLES = int(os.environ.get("TCPSIFT_FUZZ_EXAMPLES", "150"))
DEADLINE_MS = int(os.environ.get("TCPSIFT_FUZZ_DEADLINE_MS", "5000"))
MAX_FRAME = 262144

SEEDS = [
    "pcap/le-usec-ethernet-http-fin.pcap",
    "pcap/be-nsec-ethernet.pcap",
    "pcap/be-usec-ethernet-pptp-gre.pcap",
    "pcap/le-nsec-sll-tcp-handshake.pcap",
    "linktypes/sll2-tcp.pcap",
    "linktypes/ethernet-8021q-icmp-arp.pcap",
    "linktypes/ethernet-qinq-http.pcap",
    "encap/vxlan-icmp.pcap",
    "encap/gre-plain-ipv4.pcap",
    "encap/mpls-label-stack-in-vlan.pcap",
    "l3l4/tcp-options-sack-blocks.pcap",
    "l3l4/ipv6-ext-headers-assorted.pcap",              # pcapng despite the name
    "pcapng/le-two-interfaces-tsresol-ns-and-us.pcapng",
    "pcapng/generator/be-011-spb-epb-mix.pcapng",
]


# ----------------------------------------------------------------------------- structure

@dataclass
class Seed:
    name: str
    data: bytes
    endian: str
    frame_ends: list[int]      # offset just past each frame's record/block, in frame order
    length_fields: list[int]   # offsets of 32-bit container length fields
    option_lengths: list[int]  # offsets of 16-bit pcapng option length fields
    packets: object            # the unmutated packet table
    frames: list[bytes]
    header_fields: list[tuple[int, int]]   # (offset, size) of IP/TCP/UDP length fields


def _walk_pcap(b: bytes):
    e = "<" if struct.unpack_from("<I", b)[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    ends, fields, off = [], [], 24
    while off + 16 <= len(b):
        caplen = struct.unpack_from(e + "I", b, off + 8)[0]
        fields += [off + 8, off + 12]
        off += 16 + caplen
        ends.append(off)
    return e, ends, fields, []


def _walk_pcapng(b: bytes):
    ends, fields, opts, off, e = [], [], [], 0, "<"
    while off + 12 <= len(b):
        if b[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if b[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack_from(e + "II", b, off)
        fields += [off + 4, off + blen - 4]
        body_opts = {0x0A0D0D0A: 16, 1: 8, 6: 20, 5: 12}.get(btype)
        if btype == 6:
            caplen = struct.unpack_from(e + "I", b, off + 20)[0]
            fields += [off + 20, off + 24]
            body_opts = 20 + caplen + (-caplen % 4)
        if btype == 3:
            fields.append(off + 8)
        if body_opts is not None:
            p, end = off + 8 + body_opts, off + blen - 4
            while p + 4 <= end:
                code, ln = struct.unpack_from(e + "HH", b, p)
                opts.append(p + 2)
                if code == 0:
                    break
                p += 4 + ln + (-ln % 4)
        off += blen
        if btype in (2, 3, 6, 0x00000BAD, 0x40000BAD):
            ends.append(off)
    return e, ends, fields, opts


def load_seed(name: str) -> Seed:
    data = (PUBLIC / name).read_bytes()
    walk = _walk_pcapng if data[:4] == b"\x0a\x0d\x0d\x0a" else _walk_pcap
    e, ends, fields, opts = walk(data)
    cap = tcpsift.read(str(PUBLIC / name))
    pk = cap.packets
    assert pk.height == len(ends), f"{name}: walker found {len(ends)} frames, tcpsift {pk.height}"
    frames = [cap.frame_bytes(i + 1) for i in range(pk.height)]
    hdr = []
    for row in pk.iter_rows(named=True):
        po, base = row["payload_offset"], row["file_offset"]
        if po is None or base is None or row["encap"] not in ("", None):
            continue
        if row["tcp_hdr_len"] is not None:
            t = po - row["tcp_hdr_len"]
            hdr.append((base + t + 12, 1))                     # TCP data offset
        else:
            t = po - 8
            hdr.append((base + t + 4, 2))                      # UDP length
        ip = t - row["ip_hdr_len"]
        if row["ip_version"] == 4 and ip >= 0:
            hdr += [(base + ip + 2, 2), (base + ip, 1)]        # total length, version/IHL
        elif row["ip_version"] == 6 and ip >= 0:
            hdr.append((base + ip + 4, 2))                     # payload length
    return Seed(name, data, e, ends, fields, opts, pk, frames, hdr)


_SEEDS: dict[str, Seed] = {}


def seed(name: str) -> Seed:
    if name not in _SEEDS:
        _SEEDS[name] = load_seed(name)
    return _SEEDS[name]


AVAILABLE = [s for s in SEEDS if (PUBLIC / s).exists()]
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"no public corpus at {PUBLIC}")


# ----------------------------------------------------------------------------- mutations

@st.composite
def mutant(draw):
    """(seed name, mutated bytes, offset of the first changed byte, description)."""
    s = seed(draw(st.sampled_from(AVAILABLE)))
    b = bytearray(s.data)
    n = len(b)
    kind = draw(st.sampled_from(["bitflip", "bytes", "truncate", "length", "length",
                                 "option-length", "header-length", "header-length", "combo"]))
    changed: list[int] = []
    desc = []

    def put32(off, val):
        if off + 4 <= len(b):
            old = bytes(b[off:off + 4])
            b[off:off + 4] = struct.pack(s.endian + "I", val & 0xFFFFFFFF)
            if bytes(b[off:off + 4]) != old:
                changed.append(off)

    kinds = ["bitflip", "bytes", "length"] if kind == "combo" else [kind]
    for k in kinds:
        if k == "bitflip":
            for _ in range(draw(st.integers(1, 4))):
                off = draw(st.integers(0, n - 1))
                b[off] ^= 1 << draw(st.integers(0, 7))
                changed.append(off)
            desc.append("bitflip")
        elif k == "bytes":
            off = draw(st.integers(0, n - 1))
            val = draw(st.binary(min_size=1, max_size=8))
            old = bytes(b[off:off + len(val)])
            b[off:off + len(val)] = val
            b[:] = b[:n] if len(b) > n else b
            if bytes(b[off:off + len(val)]) != old:
                changed.append(off)
            desc.append(f"bytes@{off}")
        elif k == "length" and s.length_fields:
            off = draw(st.sampled_from(s.length_fields))
            remaining = n - off - 4
            val = draw(st.sampled_from([0, 0xFFFFFFFF, 0x7FFFFFFF, remaining + 1, remaining + 4,
                                        remaining, 1, 12, 0x00FFFF00, MAX_FRAME + 1]))
            put32(off, val)
            desc.append(f"len32@{off}={val:#x}")
        elif k == "option-length" and s.option_lengths:
            off = draw(st.sampled_from(s.option_lengths))
            val = draw(st.sampled_from([0xFFFF, 0x7FFF, 12336, 1, 3, 0xFFFC]))
            old = bytes(b[off:off + 2])
            b[off:off + 2] = struct.pack(s.endian + "H", val)
            if bytes(b[off:off + 2]) != old:
                changed.append(off)
            desc.append(f"optlen@{off}={val}")
        elif k == "header-length" and s.header_fields:
            off, size = draw(st.sampled_from(s.header_fields))
            if size == 2:
                val = draw(st.sampled_from([0, 1, 7, 8, 19, 20, 39, 40, 0x7FFF, 0xFFFF]))
                new = struct.pack("!H", val)
            else:
                new = bytes([draw(st.sampled_from([0x00, 0x10, 0x40, 0x41, 0x44, 0x4F, 0x50,
                                                   0x60, 0xF0, 0xFF]))])
            if off + size <= len(b) and bytes(b[off:off + size]) != new:
                b[off:off + size] = new
                changed.append(off)
            desc.append(f"hdr@{off}={new.hex()}")
        elif k in ("truncate", "length", "option-length", "header-length"):
            cut = draw(st.integers(0, n - 1))
            del b[cut:]
            changed.append(cut)
            desc.append(f"cut@{cut}")
    first = min(changed) if changed else len(b)
    return s.name, bytes(b), first, " ".join(desc)


# ----------------------------------------------------------------------------- checks

def impossible_values(pk, size: int, check_tcp_len=False) -> list[str]:
    bad = []
    if pk.height == 0:
        return bad

    def viol(name, mask):
        rows = pk.filter(mask)
        if rows.height:
            bad.append(f"{name}: frames {rows['frame'].to_list()[:5]}")

    import polars as pl
    c = pl.col
    viol("frame numbers", c("frame") != pl.int_range(1, pl.len() + 1))
    viol("cap_len > 262144", c("cap_len") > MAX_FRAME)
    viol("capture bytes past the file end", c("file_offset") + c("cap_len") > size)
    viol("payload_offset outside the captured frame", c("payload_offset") > c("cap_len"))
    viol("payload_offset without a transport header",
         c("payload_offset").is_not_null() & c("sport").is_null())
    viol("ip_version not 4/6", c("ip_version").is_not_null() & ~c("ip_version").is_in([4, 6]))
    viol("ok IPv4 header length", (c("status") == "ok") & (c("ip_version") == 4)
         & ((c("ip_hdr_len") < 20) | (c("ip_hdr_len") > 60) | (c("ip_hdr_len") % 4 != 0)))
    viol("ok IPv6 header length", (c("status") == "ok") & (c("ip_version") == 6)
         & ((c("ip_hdr_len") < 40) | (c("ip_hdr_len") % 8 != 0)))
    viol("ok IP header longer than the packet", (c("status") == "ok")
         & (c("ip_hdr_len") > c("ip_len")))
    viol("ok TCP header length", (c("status") == "ok") & c("tcp_hdr_len").is_not_null()
         & ((c("tcp_hdr_len") < 20) | (c("tcp_hdr_len") > 60) | (c("tcp_hdr_len") % 4 != 0)))
    viol("ok TCP header outside the IP packet", (c("status") == "ok")
         & (c("ip_hdr_len") + c("tcp_hdr_len") + c("tcp_len") > c("ip_len")))
    viol("vlan_depth beyond the frame", c("vlan_depth") * 4 > c("cap_len"))
    viol("vlan_id > 4095", c("vlan_id") > 4095)
    viol("frag_offset > 8191 for IPv4", (c("ip_version") == 4) & (c("frag_offset") > 8191))
    viol("transport in a non-first fragment", (c("frag_offset") > 0) & c("sport").is_not_null())
    # (an odd count is what tshark reads from a SACK option whose length is not 2 + 8n:
    # every whole edge; an option holds 38 bytes at most, so 9 edges)
    viol("more than 9 SACK edges", c("sack_blocks").list.len() > 9)
    viol("tunnel columns without encap", c("outer_src").is_not_null()
         & (c("encap").cast(pl.Utf8) == ""))
    if check_tcp_len:
        # (the larger of len and cap_len: an original length below the captured length
        # is accepted as is, and tshark then bounds by the captured bytes)
        viol("tcp_len > frame length", c("tcp_len") > pl.max_horizontal(c("len"), c("cap_len")))
    return bad


def decode(data: bytes):
    with tempfile.NamedTemporaryFile(suffix=".cap") as f:
        f.write(data)
        f.flush()
        try:
            cap = tcpsift.read(f.name)
        except tcpsift.CaptureError as e:
            msg = str(e)
            assert msg.strip() and "\n" not in msg.strip(), repr(msg)
            return None
        frames = [cap.frame_bytes(i + 1) for i in range(cap.packets.height)]
        payloads = [cap.payload(i + 1) for i in range(min(cap.packets.height, 64))]
        return cap, frames, payloads


def check_mutant(name, data, first, desc, check_tcp_len=False):
    s = seed(name)
    res = decode(data)
    prefix = sum(1 for end in s.frame_ends if end <= first)
    if res is None:
        # nothing readable is only acceptable when the fault is before the first frame
        assert prefix == 0, f"{name} [{desc}]: CaptureError although {prefix} frames precede it"
        return
    cap, frames, payloads = res
    pk = cap.packets
    assert pk.height >= prefix, (
        f"{name} [{desc}]: {pk.height} frames, but {prefix} end before byte {first}")
    if prefix:
        got = pk.head(prefix)
        want = s.packets.head(prefix)
        for col in want.columns:
            assert got[col].to_list() == want[col].to_list(), (
                f"{name} [{desc}]: column {col} differs in the first {prefix} frames")
        assert frames[:prefix] == s.frames[:prefix]
    for i, fb in enumerate(frames):
        assert len(fb) == pk["cap_len"][i]
    for i, p in enumerate(payloads):
        assert len(p) <= len(frames[i])
    bad = impossible_values(pk, len(data), check_tcp_len)
    assert not bad, f"{name} [{desc}]: " + "; ".join(bad)
    if prefix < len(s.frame_ends) and pk.height < len(s.frame_ends):
        # stopped early: that must be visible
        assert not cap.complete or pk.height >= prefix


SETTINGS = settings(max_examples=EXAMPLES, deadline=DEADLINE_MS, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def test_seeds_walk():
    for name in AVAILABLE:
        s = seed(name)
        assert s.frame_ends and s.frame_ends[-1] <= len(s.data)
        assert not impossible_values(s.packets, len(s.data)), name


@pytest.mark.slow
@SETTINGS
@given(mutant())
def test_mutated_captures(m):
    check_mutant(*m)


@settings(max_examples=max(20, EXAMPLES // 3), deadline=DEADLINE_MS,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutant())
def test_mutated_captures_tcp_len_within_frame(m):
    """tshark never reports tcp.len above frame.len (its tvb is capped by the frame's
    reported length; notes/decoder-mismatches.md #9, fixed)."""
    check_mutant(*m, check_tcp_len=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", AVAILABLE)
def test_every_truncation_point_of_a_small_seed(name):
    """Deterministic: cut the first 600 bytes at every offset (all of a small seed)."""
    s = seed(name)
    stop = min(len(s.data), 600)
    for cut in range(0, stop, 1 if len(s.data) <= 600 else 7):
        check_mutant(name, s.data[:cut], cut, f"cut@{cut}")
