"""Wireshark-exact TCP analysis (tcp.stream, tcp.analysis.*): see tcpsift.tcp.analysis.

This package module holds only what is plain data, so that importing it costs nothing;
the Polars side (analyze(), analyze_tables(), the batch-by-batch Analyzer of
tcpsift.tcp.analyzer) loads on first use, and tcpsift.tcp.chunks feeds the kernel from
decoder arrays without Polars.
"""
from __future__ import annotations

# The packet-table columns the analysis reads (for tcpsift.read(columns=...)).
INPUT_COLUMNS = ("frame", "ts_ns", "status", "src", "dst", "ip_len", "ip_hdr_len", "ip_proto",
                 "more_fragments", "frag_offset", "sport", "dport", "tcp_flags", "seq", "ack",
                 "tcp_hdr_len", "window", "tcp_len", "wscale", "sack_blocks", "payload_offset")

# Bits of the `analysis` column: Wireshark's TCP_A_* values ...
FLAG_BITS = {
    "retransmission": 0x0001, "lost_segment": 0x0002, "ack_lost_segment": 0x0004,
    "keep_alive": 0x0008, "duplicate_ack": 0x0010, "zero_window": 0x0020,
    "zero_window_probe": 0x0040, "zero_window_probe_ack": 0x0080, "keep_alive_ack": 0x0100,
    "out_of_order": 0x0200, "fast_retransmission": 0x0400, "window_update": 0x0800,
    "window_full": 0x1000, "reused_ports": 0x2000, "spurious_retransmission": 0x4000,
}
# ... and three markers: Wireshark keeps analysis data for the frame (its SEQ/ACK tree is
# shown); computed but not shown by tshark (the capture ends in the TCP options); the
# row's TCP header is one quoted in an ICMP error.
HAS_ANALYSIS = 0x10000
NOT_SHOWN = 0x20000
QUOTED = 0x40000

# The bits whose presence makes tshark's display filter `tcp.analysis.<verdict>` match a
# frame: Wireshark adds the generic retransmission item to fast and spurious
# retransmissions too, so `tcp.analysis.retransmission` counts all three. (Checked
# against tshark 4.0 on every frame of the lab and public TCP captures: no other verdict
# implies another.)
FILTER_BITS = {**FLAG_BITS, "retransmission": FLAG_BITS["retransmission"]
               | FLAG_BITS["fast_retransmission"] | FLAG_BITS["spurious_retransmission"]}


def shown_analysis(analysis="analysis"):
    """The `analysis` bits tshark shows (0 where it shows none): a verdict computed but
    not shown (the capture ends in the options) does not match its filter either."""
    import polars as pl

    bits = pl.col(analysis) if isinstance(analysis, str) else analysis
    return (pl.when((bits & (HAS_ANALYSIS | NOT_SHOWN)) == HAS_ANALYSIS).then(bits)
            .otherwise(0))


def verdict(name: str, analysis="analysis"):
    """A Polars expression over the TCP table: True on the rows where tshark's filter
    `tcp.analysis.<name>` matches (False where the row has no TCP analysis), e.g.
    `cap.tcp.select(tcpsift.tcp.verdict("retransmission").sum())`. `analysis` is the
    column (name or expression) holding the `analysis` bits."""
    if name not in FILTER_BITS:
        raise ValueError(f"unknown verdict {name!r}; valid: {', '.join(FILTER_BITS)}")
    return (shown_analysis(analysis) & FILTER_BITS[name]) != 0


_FROM_ANALYSIS = {"analyze", "analyze_tables", "output_table", "schema", "_inputs",
                  "_empty_outputs", "_quoted_tcp", "_ranks", "_addr_key"}


def __getattr__(name: str):
    if name == "Analyzer":
        from tcpsift.tcp.analyzer import Analyzer
        return Analyzer
    if name in _FROM_ANALYSIS:
        from tcpsift.tcp import analysis
        return getattr(analysis, name)
    raise AttributeError(f"module 'tcpsift.tcp' has no attribute {name!r}")
