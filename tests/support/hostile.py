"""Captures built to exhaust a reader (issue 17), each small on disk.

Every builder returns the file's bytes; `n` scales the input (the tests use a small
size in the quick tier and the issue's size in the slow one).
"""
from __future__ import annotations

import struct

from support import capwriter as cw

T0 = 1_700_000_000_000_000_000
FRAGMENT_PAYLOAD = b"\xab" * 8


def _fragment(ident: int, offset_units: int, more: bool, src: str = "192.0.2.1",
              payload: bytes = FRAGMENT_PAYLOAD) -> bytes:
    return cw.ether(cw.ipv4(payload, src=src, proto=cw.IPPROTO_UDP, ident=ident,
                            mf=more, frag_offset=offset_units))


def duplicate_first_fragments(n: int = 20_000) -> bytes:
    """A last fragment at offset 16, then `n` identical first fragments (offset 0,
    8 bytes) of the same datagram: the gap at 8..16 is never filled, so every
    fragment joins one datagram that never completes."""
    records = [cw.Record(T0, _fragment(7, 2, False))]
    records += [cw.Record(T0 + (i + 1) * 1000, _fragment(7, 0, True)) for i in range(n)]
    return cw.pcap_file(records)


def unrelated_far_fragments(n: int = 20_000) -> bytes:
    """`n` datagrams of one 8-byte fragment each at offset 65,520 (the last 8-byte
    unit a datagram may have), each a datagram of its own (ids and sources differ)."""
    records = [cw.Record(T0 + i * 1000,
                         _fragment(i & 0xFFFF, 8190, True, src=f"10.{(i >> 16) & 255}.0.1"))
               for i in range(n)]
    return cw.pcap_file(records)


def overlapping_fragments() -> bytes:
    """Two datagrams whose fragments overlap with different bytes: the copy that
    tshark keeps decides the UDP ports of the reassembled frame.

    Datagram 1: the first fragment (UDP header with ports 1111 -> 2222) arrives,
    then a second first fragment with ports 3333 -> 4444, then the last fragment.
    Datagram 2: a fragment at offset 8 arrives before one at offset 0 that overlaps
    it with other bytes, then the last."""
    def udp_start(sport: int, dport: int) -> bytes:
        return struct.pack("!HHHH", sport, dport, 8 + 24, 0) + b"A" * 8

    records = [
        cw.Record(T0, _fragment(1, 0, True, payload=udp_start(1111, 2222))),
        cw.Record(T0 + 1000, _fragment(1, 0, True, payload=udp_start(3333, 4444))),
        cw.Record(T0 + 2000, _fragment(1, 2, False, payload=b"B" * 16)),
        cw.Record(T0 + 3000, _fragment(2, 1, True, payload=b"C" * 16)),
        cw.Record(T0 + 4000, _fragment(2, 0, True, payload=udp_start(5555, 6666))),
        cw.Record(T0 + 5000, _fragment(2, 3, False, payload=b"D" * 8)),
    ]
    return cw.pcap_file(records)


def pcapng_huge_block_head() -> bytes:
    """A pcapng section with one interface and two packets, then the header of a
    block that says it is 0xFFFFFFFC bytes long (the rest: whatever follows)."""
    w = cw.PcapngWriter()
    w.section()
    w.interface(cw.LINKTYPE_ETHERNET)
    for i in range(2):
        w.epb(0, T0 + i * 1000, cw.ether(cw.ipv4(cw.udp(b"x" * 10), proto=cw.IPPROTO_UDP)))
    return w.getvalue() + struct.pack("<II", 6, 0xFFFFFFFC)


def many_interfaces(n: int = 1_000_000) -> bytes:
    """A pcapng section with `n` interface descriptions and one packet."""
    w = cw.PcapngWriter()
    w.section()
    idb = struct.pack("<IIHHII", 1, 20, cw.LINKTYPE_ETHERNET, 0, 0, 20)
    w.interface(cw.LINKTYPE_ETHERNET)
    w.epb(0, T0, cw.ether(cw.ipv4(cw.udp(b"x" * 10), proto=cw.IPPROTO_UDP)))
    return w.getvalue() + idb * (n - 1)


def zstd_stream(pieces) -> bytes:
    """The zstd frame of the concatenated `pieces` (compressed as they come)."""
    import zstandard
    compressor = zstandard.ZstdCompressor().compressobj()
    out = [compressor.compress(piece) for piece in pieces]
    return b"".join(out) + compressor.flush()


def zeros(n: int, piece: int = 1 << 20):
    for start in range(0, n, piece):
        yield bytes(min(piece, n - start))


def zstd_pcap_of_zeros(n: int) -> bytes:
    """A pcap header then `n` zero bytes (n / 16 empty records), zstd-compressed: a
    few KB that inflate to `n` bytes."""
    return zstd_stream(_chain([cw.pcap_header()], zeros(n)))


def _chain(*iterables):
    for it in iterables:
        yield from it


def zstd_frame_after_skipped_blocks(skipped: int) -> bytes:
    """A pcapng section whose one packet comes after `skipped` bytes of blocks that
    readers skip (1 MiB each), zstd-compressed."""
    w = cw.PcapngWriter()
    w.section()
    w.interface(cw.LINKTYPE_ETHERNET)
    head = w.getvalue()
    skip = cw.PcapngWriter()
    skip.unknown(0xABCD, bytes((1 << 20) - 12))
    block = skip.getvalue()
    tail = cw.PcapngWriter()
    tail.epb(0, T0, cw.ether(cw.ipv4(cw.udp(b"payload"), proto=cw.IPPROTO_UDP)))
    return zstd_stream(_chain([head], (block for _ in range(skipped >> 20)),
                              [tail.getvalue()]))


def many_sections(n: int) -> bytes:
    """One packet, then `n` sections of one empty interface each."""
    w = cw.PcapngWriter()
    w.section()
    w.interface(cw.LINKTYPE_ETHERNET)
    w.epb(0, T0, cw.ether(cw.ipv4(cw.udp(b"x" * 10), proto=cw.IPPROTO_UDP)))
    empty = cw.PcapngWriter()
    empty.section()
    empty.interface(cw.LINKTYPE_ETHERNET)
    return w.getvalue() + empty.getvalue() * n


def interface_of_many_options(n: int) -> bytes:
    """An interface description holding `n` empty comment options, then one packet."""
    w = cw.PcapngWriter()
    w.section()
    w.interface(cw.LINKTYPE_ETHERNET, opts=[(cw.OPT_COMMENT, b"")] * n)
    w.epb(0, T0, cw.ether(cw.ipv4(cw.udp(b"x" * 10), proto=cw.IPPROTO_UDP)))
    return w.getvalue()
