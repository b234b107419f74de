"""Which decoder presence bits make each packet column non-null (Polars-free, so that
both the table builder and the streaming text writer read the same rule)."""

# column -> presence bits (names of tcpsift.decode._decode.PRESENCE): the column has a
# value when any of them is set. Columns with other rules are in table.PACKET_MASKS.
COLUMN_PRESENCE = {
    "eth_src": ("eth",), "eth_dst": ("eth",), "eth_type": ("eth_type",),
    "vlan_id": ("vlan",), "outer_src": ("outer",), "outer_dst": ("outer",),
    "ip_version": ("ip", "ip_hdr"), "src": ("ip",), "dst": ("ip",),
    "ip_hdr_len": ("ip", "ip_hdr"),
    "ip_id": ("ip_id",), "ttl": ("ip",), "ip_proto": ("ip",),
    "dont_fragment": ("ip",), "more_fragments": ("ip",), "frag_offset": ("ip",),
    "sport": ("tcp", "udp"), "dport": ("tcp", "udp"),
    "tcp_flags": ("tcp_flags",), "flags": ("tcp_flags",), "seq": ("seq",),
    "ack": ("ack",), "tcp_hdr_len": ("tcp_flags",), "window": ("tcp_flags",),
    "tcp_len": ("tcp_len",), "mss": ("mss",), "wscale": ("wscale",),
    "sack_perm": ("tcp",), "tsval": ("ts",), "tsecr": ("tsecr",),
    "udp_len": ("udp",), "icmp_type": ("icmp",), "icmp_code": ("icmp",),
    "payload_offset": ("payload",),
}


def bits_of(*names: str) -> int:
    """The decoder presence bits of these names (tcpsift.decode._decode.PRESENCE) as
    one mask."""
    from tcpsift.decode._decode import PRESENCE

    bits = 0
    for name in names:
        bits |= PRESENCE[name]
    return bits


def presence_bits(column: str) -> int:
    """The bits of COLUMN_PRESENCE[column] as one mask (0: always present)."""
    return bits_of(*COLUMN_PRESENCE.get(column, ()))
