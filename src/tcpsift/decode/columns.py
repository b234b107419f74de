"""The decoder's per-frame columns and constants, declared once.

`decode_frames` (decode/_decode.pyx) decodes each frame into a C struct, `Pkt`, and
writes tiles of such rows out column by column into the arrays of
`new_packet_arrays()`. Everything that names those columns is generated from the
tables below: the `Pkt` struct (fields ordered by size, so that it has no padding), the
`Columns` struct of array pointers, `write_rows()` (one copy loop per column),
`columns_of()`, and the compile-time constants (presence bits, `status`, `encap` and
layer-kind codes, their values taken from `tcpsift.schema`). Two Cython include files
hold the generated code; they are checked in, and setup.py writes them again when they
are stale:

    python -m tcpsift.decode.columns            # rewrites both files
    python -m tcpsift.decode.columns --check    # exit status 1 when one is stale

`_decode.new_packet_arrays()` builds its arrays from `PACKET_ARRAYS` at run time, and
`_decode.PRESENCE` is `PRESENCE`. These are the decoder's raw arrays, not the packet
table: `capture/table.py` turns them into the columns of `schema.PACKET_COLUMNS`
(presence masks, dtypes, dictionaries).

This module imports nothing but `tcpsift.schema` (setup.py imports it before the
kernels are built).
"""
from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tcpsift.schema import DECODE_STATUS, ENCAPSULATIONS, LAYER_KINDS

# NumPy dtype name -> C type of a Pkt field (and of the array's elements)
C_TYPES = {"uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t"}
SIZES = {"uint8": 1, "uint16": 2, "uint32": 4}


@dataclass(frozen=True)
class PktField:
    """A field of the decoder's per-frame struct `Pkt`.

    `array`: the name of the output array it is written to (new_packet_arrays), or ""
    for the decoder's own bookkeeping, which is never written out. `field` is the
    struct member when it differs from `array`.
    """
    array: str
    dtype: str
    field: str = ""
    note: str = ""

    @property
    def member(self) -> str:
        return self.field or self.array

    @property
    def ctype(self) -> str:
        return C_TYPES[self.dtype]


def _out(array: str, dtype: str, field: str = "", note: str = "") -> PktField:
    return PktField(array, dtype, field, note)


def _own(field: str, note: str = "") -> PktField:
    return PktField("", "uint8", field, note)


# The output arrays, in new_packet_arrays' order (the decoder's dict keeps it).
PACKET_ARRAYS: tuple[PktField, ...] = (
    _out("status", "uint8", note="ST_* (schema.DECODE_STATUS)"),
    _out("present", "uint32", note="P_* bits: which columns have a value"),
    _out("vlan_id", "uint16"),
    _out("vlan_depth", "uint8"),
    _out("encap", "uint8", note="E_* (schema.ENCAPSULATIONS)"),
    _out("outer_src", "uint32"),
    _out("outer_dst", "uint32"),
    _out("ip_version", "uint8"),
    _out("src", "uint32", note="address ids (AddressTable)"),
    _out("dst", "uint32"),
    _out("ip_hdr_len", "uint16"),
    _out("ip_len", "uint32"),
    _out("ip_id", "uint32"),
    _out("ttl", "uint8"),
    _out("ip_proto", "uint8"),
    _out("dont_fragment", "uint8", "df"),
    _out("more_fragments", "uint8", "mf"),
    _out("frag_offset", "uint16", "frag"),
    _out("sport", "uint16"),
    _out("dport", "uint16"),
    _out("tcp_flags", "uint16"),
    _out("seq", "uint32"),
    _out("ack", "uint32"),
    _out("tcp_hdr_len", "uint8"),
    _out("window", "uint16"),
    _out("tcp_len", "uint32"),
    _out("mss", "uint16"),
    _out("wscale", "uint8"),
    _out("tsval", "uint32"),
    _out("tsecr", "uint32"),
    _out("udp_len", "uint16"),
    _out("icmp_type", "uint8"),
    _out("icmp_code", "uint8"),
    _out("payload_offset", "uint32", "payload_off"),
    _out("sack_count", "uint8", "sack_n", "SACK edges in FrameScratch.sack"),
    _out("ip_offset", "uint32", "ip_off", "offset of the innermost IP header in the frame"),
    _out("frag_data_offset", "uint32", "frag_data_off",
         "fragment: offset of its data in the frame (0: not a fragment)"),
    _out("ipv6_nxt", "uint8"),
    _out("eth_src", "uint32", note="MAC address ids of the innermost Ethernet header"),
    _out("eth_dst", "uint32"),
    _out("eth_type", "uint16"),
)

# The decoder's bookkeeping in Pkt: zeroed with the row, never written out. (Counts are
# bounded by MAX_DEPTH and MAX_LAYERS, so bytes: every frame's tile row is zeroed, and
# growing Pkt by 16 bytes once made decoding 20 % slower.)
BOOKKEEPING: tuple[PktField, ...] = (
    _own("ip_count", "non-quoted IP headers seen"),
    _own("l4_count", "non-quoted transport headers seen"),
    _own("eth_count", "Ethernet headers seen (tunnels can carry Ethernet frames)"),
    _own("nlayers", "layer rows in FrameScratch.layers (0 until the frame needs them)"),
    _own("any_quoted", "a header quoted in an ICMP error was seen"),
    _own("any_odd_tag", "the frame needs the table path (its layer rows): a VLAN tag with a "
         "TPID other than 0x8100 (802.1ad, 0x9100), or a TCP header tshark shows in part "
         "(data offset below 5, cut before 20 bytes, a SACK option shorter than one block)"),
    PktField("", "uint16", "trace", "until a frame needs layer rows, the kinds of its headers "
             "(kind + 1, 4 bits each, the first highest): see _decode.new_layer"),
    _own("q_tags", "802.1Q tags seen (MAX_VLAN_TAGS)"),
    _own("bounded", "decoding stopped at MAX_DEPTH or MAX_LAYERS"),
)

# Presence bits, bit i = 1 << i: (name in PRESENCE, constant, meaning). The name is what
# the rest of the package asks for (capture/presence.py).
PRESENCE_BITS: tuple[tuple[str, str, str], ...] = (
    ("vlan", "P_VLAN", "a VLAN tag"),
    ("ip", "P_IP", "an IP header (addresses and the rest)"),
    ("outer", "P_OUTER", "an outer IP header (tunnelled)"),
    ("tcp", "P_TCP", "a TCP header (ports)"),
    ("udp", "P_UDP", "a UDP header"),
    ("icmp", "P_ICMP", "an ICMP or ICMPv6 header"),
    ("mss", "P_MSS", "TCP MSS option"),
    ("wscale", "P_WS", "TCP window scale option"),
    ("sack_perm", "P_SACKP", "TCP SACK-permitted option"),
    ("ts", "P_TS", "TCP timestamps option (tsval)"),
    ("payload", "P_PAYLOAD", "payload_offset"),
    ("ip_id", "P_IPID", "IPv4 identification or IPv6 fragment identification"),
    ("tcp_len", "P_TCPLEN", "TCP payload length"),
    ("sack", "P_SACK", "TCP SACK option"),
    ("tcp_flags", "P_FLAGS", "TCP header long enough for offset/flags/window"),
    ("seq", "P_SEQ", "TCP sequence number"),
    ("ack", "P_ACK", "TCP acknowledgment number"),
    ("tsecr", "P_TSECR", "TCP timestamps option's TSecr"),
    ("ip_hdr", "P_IPHDR", "IP version and lengths only (a bogus header stopped decoding)"),
    ("no_ip_len", "P_NOIPLEN", "... and not even the total length (bogus header length)"),
    ("eth", "P_ETH", "an Ethernet header (its MAC addresses)"),
    ("eth_type", "P_ETHTYPE", "... with a type field (not an 802.3 length)"),
)
PRESENCE = {name: 1 << i for i, (name, _, _) in enumerate(PRESENCE_BITS)}

# Constants for the values of the schema's enumerations: constant -> value. The code is
# the value's index in the schema's tuple (the Enum the table casts the array to).
STATUS_CODES = {"ST_OK": "ok", "ST_TRUNC": "truncated", "ST_MALFORMED": "malformed",
                "ST_UNSUPPORTED": "unsupported"}
ENCAP_CODES = {"E_NONE": "", "E_MPLS": "mpls", "E_GRE": "gre", "E_ERSPAN1": "erspan1",
               "E_ERSPAN2": "erspan2", "E_ERSPAN3": "erspan3", "E_VXLAN": "vxlan",
               "E_GENEVE": "geneve", "E_GTPU": "gtpu", "E_IPIP": "ipip", "E_6IN4": "6in4",
               "E_4IN6": "4in6", "E_6IN6": "6in6", "E_PPPOE": "pppoe"}
LAYER_KIND_CODES = {"K_VLAN": "vlan", "K_IPV4": "ipv4", "K_IPV6": "ipv6", "K_TCP": "tcp",
                    "K_UDP": "udp", "K_ICMP": "icmp", "K_ICMPV6": "icmpv6", "K_ETH": "eth"}

HERE = Path(__file__).resolve().parent
CONSTANTS_PXI = HERE / "_constants.pxi"
COLUMNS_PXI = HERE / "_columns.pxi"

_HEADER = ("# Generated from src/tcpsift/decode/columns.py by `python -m tcpsift.decode.columns`;\n"
           "# do not edit by hand (a test fails when this file is stale).\n")
# names the generated functions use for themselves
_RESERVED = {"c", "rows", "n", "at", "r", "out", "array"}


def pkt_fields() -> list[PktField]:
    """Pkt's fields: largest first (stable), so that none needs padding."""
    fields = [*PACKET_ARRAYS, *BOOKKEEPING]
    return sorted(fields, key=lambda f: -SIZES[f.dtype])


def pkt_size() -> int:
    """sizeof(Pkt), rounded up to 8 bytes (the decoder zeroes it a word at a time)."""
    size = sum(SIZES[f.dtype] for f in pkt_fields())
    return size + (-size % 8)


def _check() -> None:
    arrays = [f.array for f in PACKET_ARRAYS]
    members = [f.member for f in (*PACKET_ARRAYS, *BOOKKEEPING)]
    assert all(arrays) and not _RESERVED & set(arrays), "an array without a usable name"
    assert len(set(arrays)) == len(arrays) and len(set(members)) == len(members), "a name twice"
    assert all(f.dtype in C_TYPES for f in (*PACKET_ARRAYS, *BOOKKEEPING))
    assert len(PRESENCE_BITS) <= 32 and len(PRESENCE) == len(PRESENCE_BITS)
    assert set(STATUS_CODES.values()) == set(DECODE_STATUS)
    assert set(ENCAP_CODES.values()) == set(ENCAPSULATIONS)
    assert set(LAYER_KIND_CODES.values()) == set(LAYER_KINDS)


def constants_pxi() -> str:
    """_constants.pxi: the compile-time constants (Cython DEF)."""
    _check()
    lines = [_HEADER.rstrip("\n"), ""]
    lines.append("# --- presence bits (the `present` column; PRESENCE names them) ---")
    for i, (_, const, meaning) in enumerate(PRESENCE_BITS):
        lines.append(f"DEF {const} = 1 << {i}".ljust(24) + f"# {meaning}")
    for title, codes, values in (
            ("status values: index into schema.DECODE_STATUS", STATUS_CODES, DECODE_STATUS),
            ("encapsulation codes: index into schema.ENCAPSULATIONS", ENCAP_CODES, ENCAPSULATIONS),
            ("layer kinds: index into schema.LAYER_KINDS", LAYER_KIND_CODES, LAYER_KINDS)):
        lines += ["", f"# --- {title} ---"]
        for const, value in sorted(codes.items(), key=lambda kv: values.index(kv[1])):
            lines.append(f"DEF {const} = {values.index(value)}".ljust(24) + f"# {value!r}")
    return "\n".join(lines) + "\n"


def _loop(lhs: str, rhs: str) -> list[str]:
    return ["    for r in range(TILE):", "        if r == n:", "            break",
            f"        {lhs}[r] = rows[r].{rhs}"]


def columns_pxi() -> str:
    """_columns.pxi: Pkt, Columns, write_rows(), columns_of(), COLUMN_DTYPES, PRESENCE."""
    _check()
    out = [_HEADER.rstrip("\n"), ""]
    out += ["cdef struct Pkt:",
            "    # One frame's columns and the decoder's bookkeeping, fields by size, 8-byte",
            f"    # aligned and without padding ({pkt_size()} bytes): a frame starts by zeroing it",
            "    # (zero_words: a few vector stores). Written out: the fields with an array name."]
    fields = pkt_fields()
    width = max(len(f"{f.ctype} {f.member}") for f in fields) + 2
    own = False
    for f in fields:
        decl = f"{f.ctype} {f.member}"
        note = "; ".join(x for x in (f.array if f.array != f.member else "", f.note) if x)
        if not f.array and not own:
            out.append("    # the decoder's bookkeeping (not written out; BOOKKEEPING)")
        own = not f.array
        if len(f"    {decl.ljust(width)}# {note}") > 100:
            out += textwrap.wrap(note, 92, initial_indent="    # ", subsequent_indent="    # ")
            note = ""
        out.append(f"    {decl.ljust(width)}# {note}" if note else f"    {decl}")
    size = sum(SIZES[f.dtype] for f in fields)
    if size % 8:
        pad = f"uint8_t _pad[{-size % 8}]"
        out.append(f"    {pad.ljust(width)}# (a multiple of 8 bytes: zero_words zeroes words)")
    out += ["", "", f"assert sizeof(Pkt) == {pkt_size()}", "", ""]

    out += ["cdef struct Columns:", "    # decode_frames' output arrays (new_packet_arrays), as pointers"]
    out += [f"    {f.ctype}* {f.array}" for f in PACKET_ARRAYS]
    out += ["", ""]

    out += ["cdef void write_rows(Columns* c, const Pkt* rows, Py_ssize_t n, Py_ssize_t at) noexcept nogil:",
            '    """Rows [0, n) of a tile (n <= TILE) to index `at` of the columns, one column after',
            "    the other. (Loops of TILE steps that stop at n, which the compiler unrolls: loops of",
            '    n steps took 0.40 s instead of 0.23 s in the measurement at TILE.)"""',
            "    cdef Py_ssize_t r"]
    out += [f"    cdef {f.ctype}* {f.array} = c.{f.array} + at" for f in PACKET_ARRAYS]
    for f in PACKET_ARRAYS:
        out += _loop(f.array, f.member)
    out += ["", ""]

    out += ["cdef Columns columns_of(dict out, Py_ssize_t at, Py_ssize_t n) except *:",
            '    """Pointers to the arrays of `out` (new_packet_arrays: each of its type), checked to',
            '    have room for `n` frames from index `at`. The arrays must outlive their use."""',
            "    if at < 0 or any(len(array) < at + n for array in out.values()):",
            '        raise ValueError(f"no room for {n} frames at index {at}")']
    out += [f'    cdef {f.ctype}[::1] {f.array} = out["{f.array}"]' for f in PACKET_ARRAYS]
    out += ["    cdef Columns c"]
    out += [f"    c.{f.array} = &{f.array}[0]" for f in PACKET_ARRAYS]
    out += ["    return c", "", ""]

    out += ["# What this build of the decoder writes: (array, NumPy dtype name), in order (a test",
            "# holds it equal to columns.PACKET_ARRAYS, which new_packet_arrays follows)",
            "COLUMN_DTYPES = ("]
    out += [f'    ("{f.array}", "{f.dtype}"),' for f in PACKET_ARRAYS]
    out += [")", "", "# presence bits by name (capture/presence.py)", "PRESENCE = {"]
    out += [f'    "{name}": {const},' for name, const, _ in PRESENCE_BITS]
    out += ["}"]
    return "\n".join(out) + "\n"


def generated() -> dict[Path, str]:
    """Each generated file and the text it should hold."""
    return {CONSTANTS_PXI: constants_pxi(), COLUMNS_PXI: columns_pxi()}


def stale() -> list[Path]:
    """The generated files whose text is not what this module generates now."""
    return [path for path, text in generated().items()
            if not path.exists() or path.read_text() != text]


def write() -> list[Path]:
    """Write the stale generated files; returns them."""
    paths = stale()
    for path in paths:
        path.write_text(generated()[path])
    return paths


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        paths = stale()
        for path in paths:
            print(f"stale: {path} (run python -m tcpsift.decode.columns)", file=sys.stderr)
        return 1 if paths else 0
    if argv:
        print("usage: python -m tcpsift.decode.columns [--check]", file=sys.stderr)
        return 2
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
