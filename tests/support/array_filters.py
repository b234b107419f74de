"""-Y filters of every kind the array path evaluates (tcpsift.textstream.select), with
literals ({v4}, {v6}, {mac}, {port}) taken from the capture they run on."""
from __future__ import annotations

import polars as pl

# terms of every kind, the literals taken from the capture itself (literals())
FILTERS = [
    "tcp", "udp", "ip", "ipv6", "icmp", "icmpv6", "eth", "vlan", "frame", "not tcp",
    "ip.src == {v4}", "ip.addr == {v4} and not ip.dst == {v4}", "ip.src != {v4}",
    "ip.addr ~= {v4}", "ipv6.addr == {v6} or ipv6.src ~= {v6}", "eth.dst == {mac}",
    "eth.src != {mac} && eth.type == 0x0800", "tcp.port == {port}",
    "tcp.srcport == {port} || udp.port == 53", "tcp.port != {port}", "udp.srcport > 1024",
    "tcp.stream == 1", "tcp.stream >= 2 and tcp.stream < 5",
    "tcp.flags.syn == 1 and tcp.flags.ack == 0", "tcp.flags.reset == 1 or tcp.flags.fin == 1",
    "tcp.flags.push != 1", "tcp.flags == 0x0018", "tcp.len > 0", "!(tcp.len > 0) && tcp",
    "frame.len >= 100 and frame.len le 1000", "frame.number > 3", "frame.cap_len < 60",
    "ip.ttl <= 64", "ip.proto == 17", "ip.version == 6",
    "ipv6.hlim > 60", "ip.id == 0", "tcp.window_size_value == 0", "tcp.options.mss_val",
    "tcp.options.wscale.shift >= 7", "tcp.options.timestamp.tsval", "tcp.hdr_len > 20",
    "icmp.type == 8 or icmp.code == 3", "icmpv6.type == 135", "vlan.id == 20",
    "tcp.analysis.retransmission", "tcp.analysis.duplicate_ack or tcp.analysis.out_of_order",
    "tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment",
    "tcp.analysis.zero_window || tcp.analysis.window_update || tcp.analysis.window_full",
    "tcp.analysis.keep_alive or tcp.analysis.keep_alive_ack",
    "not tcp.analysis.fast_retransmission and tcp.stream == 0",
    "frame.time_epoch > 1258133614.5",
    # the other header fields, and the TCP analysis numbers
    "ip.len > 100", "ip.flags.df == 1", "ip.flags.mf == 0 and ip.frag_offset == 0",
    "ip.flags.df != 1 and ip", "ipv6.plen > 0", "ipv6.nxt == 6 or ipv6.nxt == 17",
    "tcp.options.sack_perm",
    "tcp.options.sack_le or tcp.options.sack_re", "ieee8021ad", "not ieee8021ad.id == 5",
    "tcp.seq > 1000", "tcp.ack == 1", "tcp.nxtseq < 100", "tcp.window_size > 60000",
    "tcp.time_relative > 1", "tcp.time_delta < 0.0001", "tcp.analysis.ack_rtt > 0.01",
    "tcp.analysis.initial_rtt < 0.05", "tcp.analysis.bytes_in_flight > 1000",
    "tcp.analysis.push_bytes_sent >= 100", "tcp.analysis.duplicate_ack_num >= 2",
    "tcp.analysis.duplicate_ack_frame", "not tcp.analysis.acks_frame and tcp",
    "tcp.analysis.acks_frame > 3 and tcp.ack != 1",
    "frame.time_relative > 1", "frame.time_delta < 0.0001 or frame.number < 3",
]


def literals(cap) -> dict:
    """An IPv4 and an IPv6 address, an Ethernet address and a TCP port the capture holds
    (or ones it does not), so that the comparisons select some frames."""
    p = cap.packets

    def first(expr, column, default):
        values = p.filter(expr).get_column(column).drop_nulls()
        return str(values[len(values) // 2]) if len(values) else default

    return {"v4": first(pl.col("ip_version") == 4, "src", "192.0.2.1"),
            "v6": first(pl.col("ip_version") == 6, "src", "2001:db8::1"),
            "mac": first(pl.lit(True), "eth_dst", "00:11:22:33:44:55"),
            "port": first(pl.col("ip_proto") == 6, "dport", "80")}

# one filter of each kind (what a tshark run per filter and capture can afford)
CORE = ["tcp", "udp or icmp", "not ip", "ip.addr == {v4} and tcp.port == {port}",
        "ip.src != {v4}", "eth.dst == {mac}", "tcp.stream == 1 or tcp.stream > 3",
        "tcp.flags.syn == 1 or tcp.flags.reset == 1", "tcp.len > 0 and frame.len >= 100",
        "tcp.analysis.retransmission or tcp.analysis.duplicate_ack",
        "tcp.analysis.zero_window or tcp.analysis.lost_segment", "tcp.options.wscale.shift"]
