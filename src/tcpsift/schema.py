"""Every column of tcpsift's tables, declared once.

The packet table has one row per frame (as tshark numbers frames). Each column
is declared here with its dtype, unit and meaning, and the Wireshark field it
corresponds to where there is one. `docs/schema.md` is generated from this
module (`python -m tcpsift.schema > docs/schema.md`) and a test checks that it
is current.

dtypes are named by their Polars name (strings, so that importing this module
does not import Polars: the CLI's start-up must stay light).
"""
from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    unit: str
    meaning: str
    wireshark: str = ""


# Values of the `status` column: how far decoding of the frame got.
DECODE_STATUS = (
    "ok",            # every layer present was decoded
    "truncated",     # the captured bytes end inside a header (snaplen, cut frame)
    "malformed",     # a header field is impossible (bad version, length below minimum, ...)
    "unsupported",   # the link type is not one tcpsift decodes; only frame fields are set
)

# Values of the `encap` column: the outermost tunnel or label stack the
# innermost IP packet arrived in ("" when it came straight off the link).
ENCAPSULATIONS = (
    "", "mpls", "gre", "erspan1", "erspan2", "erspan3", "vxlan", "geneve",
    "gtpu", "ipip", "6in4", "4in6", "6in6", "pppoe",
)

PACKET_COLUMNS: tuple[Column, ...] = (
    Column("frame", "UInt32", "", "frame number, 1-based, in the order tshark numbers frames "
           "(several files: in the order mergecap merges them)", "frame.number"),
    Column("file_id", "UInt16", "", "index of the file this frame came from, in the order the "
           "files were given"),
    Column("file_frame", "UInt32", "", "frame number inside its own file, 1-based"),
    Column("file_offset", "UInt64", "bytes", "offset of the frame's first captured byte in its "
           "(decompressed) file"),
    Column("ts_ns", "Int64", "ns", "capture time, nanoseconds since the Unix epoch (UTC), "
           "if_tsoffset applied", "frame.time_epoch"),
    Column("time", "Datetime:ns:UTC", "", "ts_ns as a Polars Datetime (the same buffer, no "
           "copy), for dt.* and time-based group-bys", "frame.time"),
    Column("cap_len", "UInt32", "bytes", "bytes captured", "frame.cap_len"),
    Column("len", "UInt32", "bytes", "bytes on the wire (original length)", "frame.len"),
    Column("iface", "UInt32", "", "interface id (pcapng: IDB index in its section; pcap: 0)",
           "frame.interface_id"),
    Column("linktype", "UInt16", "", "link-layer header type (LINKTYPE_*) of the frame's interface"),
    Column("status", "Enum:" + ",".join(DECODE_STATUS), "", "how far decoding got: "
           + ", ".join(DECODE_STATUS)),
    Column("eth_src", "Categorical", "", "source MAC address of the innermost Ethernet header "
           "(aa:bb:cc:dd:ee:ff; the link's own unless a tunnel carries Ethernet frames: "
           "VXLAN, ERSPAN, GRE/Geneve bridging, MPLS pseudowires); null without Ethernet "
           "(Linux cooked, raw IP, loopback links)", "eth.src"),
    Column("eth_dst", "Categorical", "", "destination MAC address of that Ethernet header",
           "eth.dst"),
    Column("eth_type", "UInt16", "", "type field of that Ethernet header (0x8100 when a VLAN "
           "tag follows); null when the field is below 0x0600 (an 802.3 length)", "eth.type"),
    Column("vlan_id", "UInt16", "", "VLAN id of the outermost 802.1Q/802.1ad tag; null without tag",
           "vlan.id"),
    Column("vlan_depth", "UInt8", "", "number of VLAN tags"),
    Column("encap", "Enum:" + ",".join(ENCAPSULATIONS), "", "outermost encapsulation of the "
           "innermost IP packet: " + ", ".join(e or '""' for e in ENCAPSULATIONS)),
    Column("outer_src", "Categorical", "", "source address of the outermost IP header when the "
           "packet was tunnelled; null otherwise"),
    Column("outer_dst", "Categorical", "", "destination address of the outermost IP header when "
           "tunnelled; null otherwise"),
    Column("ip_version", "UInt8", "", "4 or 6 for the innermost IP header; null without IP",
           "ip.version"),
    Column("src", "Categorical", "", "source address of the innermost IP header, as text "
           "(IPv4 dotted quad, IPv6 RFC 5952)", "ip.src / ipv6.src"),
    Column("dst", "Categorical", "", "destination address of the innermost IP header",
           "ip.dst / ipv6.dst"),
    Column("ip_hdr_len", "UInt16", "bytes", "IPv4 header length; IPv6: 40 plus extension headers",
           "ip.hdr_len"),
    Column("ip_len", "UInt32", "bytes", "IPv4 total length; IPv6 40 + payload length "
           "(jumbo payload length where used)", "ip.len"),
    Column("ip_id", "UInt32", "", "IPv4 identification; IPv6 fragment identification",
           "ip.id"),
    Column("ttl", "UInt8", "hops", "IPv4 TTL or IPv6 hop limit", "ip.ttl / ipv6.hlim"),
    Column("ip_proto", "UInt8", "", "transport protocol number after extension headers",
           "ip.proto"),
    Column("ipv6_nxt", "UInt8", "", "IPv6: next header of the fixed header (the first extension "
           "header, or the transport when there is none)", "ipv6.nxt"),
    Column("dont_fragment", "Boolean", "", "IPv4 DF flag", "ip.flags.df"),
    Column("more_fragments", "Boolean", "", "IPv4 MF flag or IPv6 fragment header M flag",
           "ip.flags.mf"),
    Column("frag_offset", "UInt16", "8 bytes", "fragment offset in 8-byte units; non-zero or "
           "more_fragments means the transport header may be absent", "ip.frag_offset"),
    Column("sport", "UInt16", "", "TCP or UDP source port", "tcp.srcport / udp.srcport"),
    Column("dport", "UInt16", "", "TCP or UDP destination port", "tcp.dstport / udp.dstport"),
    Column("tcp_flags", "UInt16", "", "TCP flags field, 12 bits (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 "
           "URG=32 ECE=64 CWR=128 AE=256, reserved 0xe00)", "tcp.flags"),
    Column("flags", "Categorical", "", "TCP flags as letters in the order F S R P A U E C N, "
           "e.g. SA, PA, FA (tcpdump/Zeek style)"),
    Column("seq", "UInt32", "", "raw TCP sequence number", "tcp.seq_raw"),
    Column("ack", "UInt32", "", "raw TCP acknowledgment number", "tcp.ack_raw"),
    Column("tcp_hdr_len", "UInt8", "bytes", "TCP header length", "tcp.hdr_len"),
    Column("window", "UInt16", "", "raw TCP window field (not scaled)", "tcp.window_size_value"),
    Column("tcp_len", "UInt32", "bytes", "TCP payload length computed from the IP length "
           "(correct when the capture is cut by snaplen)", "tcp.len"),
    Column("mss", "UInt16", "bytes", "MSS option value", "tcp.options.mss_val"),
    Column("wscale", "UInt8", "", "window scale option shift count", "tcp.options.wscale.shift"),
    Column("sack_perm", "Boolean", "", "SACK-permitted option present", "tcp.options.sack_perm"),
    Column("sack_blocks", "List:UInt32", "", "SACK option edges, flattened: left1, right1, "
           "left2, right2, ... (raw sequence numbers); a block cut in half by the snapshot "
           "length keeps its left edge only", "tcp.options.sack_le / sack_re"),
    Column("tsval", "UInt32", "", "timestamp option TSval", "tcp.options.timestamp.tsval"),
    Column("tsecr", "UInt32", "", "timestamp option TSecr", "tcp.options.timestamp.tsecr"),
    Column("udp_len", "UInt16", "bytes", "UDP length field", "udp.length"),
    Column("icmp_type", "UInt8", "", "ICMP or ICMPv6 type", "icmp.type / icmpv6.type"),
    Column("icmp_code", "UInt8", "", "ICMP or ICMPv6 code", "icmp.code / icmpv6.code"),
    Column("payload_offset", "UInt32", "bytes", "offset of the transport payload inside the "
           "captured frame (TCP/UDP); null without transport header"),
)

# Headers a frame carries more than once (tunnels, stacked VLAN tags, the IP/TCP/UDP
# headers quoted inside ICMP errors) also appear in the layer table: for every such
# frame, one row per header occurrence of these kinds, outermost first. The packet
# table keeps the innermost Ethernet, IP and transport header of the frame itself (never
# a quoted one). Wireshark prints repeated fields comma-joined in this order.
LAYER_KINDS = ("vlan", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "eth")

LAYER_COLUMNS: tuple[Column, ...] = (
    Column("frame", "UInt32", "", "frame number of the packet table row"),
    Column("file_id", "UInt16", "", "index of the file the frame came from (packet table's "
           "file_id)"),
    Column("index", "UInt8", "", "position of this header in the frame, 0 = outermost"),
    Column("kind", "Enum:" + ",".join(LAYER_KINDS), "", "header kind: " + ", ".join(LAYER_KINDS)),
    Column("quoted", "Boolean", "", "inside an ICMP/ICMPv6 error message"),
    Column("vlan_id", "UInt16", "", "vlan: VLAN id", "vlan.id"),
    Column("tpid", "UInt16", "", "vlan: tag protocol identifier (0x8100 802.1Q; 0x88a8 802.1ad "
           "S-tag, which Wireshark shows as ieee8021ad.id, not vlan.id)"),
    Column("eth_src", "Categorical", "", "eth: source MAC address", "eth.src"),
    Column("eth_dst", "Categorical", "", "eth: destination MAC address", "eth.dst"),
    Column("eth_type", "UInt16", "", "eth: type field; null below 0x0600 (an 802.3 length)",
           "eth.type"),
    Column("src", "Categorical", "", "ipv4/ipv6: source address", "ip.src / ipv6.src"),
    Column("dst", "Categorical", "", "ipv4/ipv6: destination address", "ip.dst / ipv6.dst"),
    Column("ip_hdr_len", "UInt16", "bytes", "ipv4/ipv6: header length", "ip.hdr_len"),
    Column("ip_len", "UInt32", "bytes", "ipv4/ipv6: total length", "ip.len"),
    Column("ip_id", "UInt32", "", "ipv4: identification", "ip.id"),
    Column("ttl", "UInt8", "hops", "ipv4: TTL; ipv6: hop limit", "ip.ttl / ipv6.hlim"),
    Column("ip_proto", "UInt8", "", "ipv4: protocol; ipv6: last next-header", "ip.proto"),
    Column("ipv6_nxt", "UInt8", "", "ipv6: next header of the fixed header", "ipv6.nxt"),
    Column("dont_fragment", "Boolean", "", "ipv4: DF flag", "ip.flags.df"),
    Column("more_fragments", "Boolean", "", "ipv4: MF flag", "ip.flags.mf"),
    Column("frag_offset", "UInt16", "8 bytes", "ipv4: fragment offset", "ip.frag_offset"),
    Column("sport", "UInt16", "", "tcp/udp: source port", "tcp.srcport / udp.srcport"),
    Column("dport", "UInt16", "", "tcp/udp: destination port", "tcp.dstport / udp.dstport"),
    Column("udp_len", "UInt16", "bytes", "udp: length field", "udp.length"),
    Column("seq", "UInt32", "", "tcp: raw sequence number", "tcp.seq_raw"),
    Column("ack", "UInt32", "", "tcp: raw acknowledgment number (quoted headers: when 16 bytes "
           "or more were quoted)", "tcp.ack_raw"),
    Column("tcp_flags", "UInt16", "", "tcp: flags bitmask", "tcp.flags"),
    Column("tcp_hdr_len", "UInt8", "bytes", "tcp: header length", "tcp.hdr_len"),
    Column("window", "UInt16", "", "tcp: raw window", "tcp.window_size_value"),
    Column("icmp_type", "UInt8", "", "icmp/icmpv6: type", "icmp.type"),
    Column("icmp_code", "UInt8", "", "icmp/icmpv6: code", "icmp.code"),
)

# The TCP analysis table (`Capture.tcp`, `tcpsift.tcp.analyze()`): one row per packet-table
# row, in the same order, null where the row has no TCP header. Wireshark 4.0's tcp.stream
# and tcp.analysis.* as tshark computes them in its single pass with default preferences.
# Times are nanoseconds (may be negative when capture time runs backwards); sequence
# numbers are modulo 2^32.
TCP_ANALYSIS_BITS = (
    (0x0001, "retransmission"), (0x0002, "lost_segment (previous segment not captured)"),
    (0x0004, "ack_lost_segment (ACKed unseen segment)"), (0x0008, "keep_alive"),
    (0x0010, "duplicate_ack"), (0x0020, "zero_window"), (0x0040, "zero_window_probe"),
    (0x0080, "zero_window_probe_ack"), (0x0100, "keep_alive_ack"), (0x0200, "out_of_order"),
    (0x0400, "fast_retransmission"), (0x0800, "window_update"), (0x1000, "window_full"),
    (0x2000, "reused_ports"), (0x4000, "spurious_retransmission"),
    (0x10000, "HAS_ANALYSIS: Wireshark keeps analysis data for the frame (its SEQ/ACK "
              "analysis tree is shown; decides whether initial_rtt is printed)"),
    (0x20000, "NOT_SHOWN: computed, but tshark does not print it (the capture ends inside "
              "the TCP options)"),
    (0x40000, "QUOTED: the TCP header is one quoted inside an ICMP error (no sequence "
              "analysis)"),
)

# The keys of the analysis table, the packet table's own arrays: join on `frame`.
TCP_KEY_COLUMNS: tuple[Column, ...] = (
    Column("frame", "UInt32", "", "frame number of the packet-table row", "frame.number"),
    Column("file_id", "UInt16", "", "index of the file the frame came from (packet table's "
           "file_id)"),
)

# What the analysis kernel computes (its output arrays, tcpsift.tcp.chunks.empty_outputs).
TCP_ANALYSIS_COLUMNS: tuple[Column, ...] = (
    Column("stream", "UInt32", "", "connection index, 0-based, in order of first appearance; "
           "a pure SYN whose seq differs from the base seq of that side of the latest "
           "connection with the same addresses and ports starts a new stream (port reuse); "
           "TCP headers quoted in ICMP errors (>= 16 bytes, not in ICMPv4 redirects) are "
           "looked up too and can open a stream", "tcp.stream"),
    Column("direction", "UInt8", "", "0 = sent by the endpoint that opened the stream (the "
           "sender of its first packet, or the receiver if that packet is a SYN-ACK), "
           "1 = the other way (tcpsift's own)"),
    Column("time_relative_ns", "Int64", "ns", "time since the stream's first packet",
           "tcp.time_relative"),
    Column("time_delta_ns", "Int64", "ns", "time since the stream's previous packet (either "
           "direction)", "tcp.time_delta"),
    Column("rel_seq", "UInt32", "", "seq minus the side's base seq (the SYN's seq, else the "
           "first seq seen minus 1); null when there is no segment length (IP fragment, "
           "quoted header): tshark then prints the raw seq", "tcp.seq"),
    Column("rel_ack", "UInt32", "", "ack minus the other side's base seq; null without the "
           "ACK flag (tshark then prints the raw ack)", "tcp.ack"),
    Column("next_seq", "UInt32", "", "rel_seq + payload length (+ 1 for SYN or FIN); null "
           "when rel_seq is", "tcp.nxtseq"),
    Column("win_scale", "Int16", "shift", "window scale shift applied to this segment's "
           "window: >= 0 the shift (capped at 14), -1 unknown, -2 not used; null on SYNs "
           "(never scaled). tshark prints 2^shift, or -1 / -2", "tcp.window_size_scalefactor"),
    Column("window_scaled", "UInt32", "bytes", "window << win_scale when win_scale >= 0, "
           "else the raw window", "tcp.window_size"),
    Column("analysis", "UInt32", "bitmask", "the verdicts, Wireshark's TCP_A_* bits: "
           + ", ".join(f"{b:#x} {name}" for b, name in TCP_ANALYSIS_BITS)
           + ". tshark also sets tcp.analysis.retransmission for fast and spurious "
           "retransmissions. Null when the TCP header length is below 20",
           "tcp.analysis.flags, tcp.analysis.*"),
    Column("dup_ack_num", "UInt32", "", "n-th duplicate of the ACK",
           "tcp.analysis.duplicate_ack_num"),
    Column("dup_ack_of_frame", "UInt32", "", "frame of the original (last non-duplicate) ACK",
           "tcp.analysis.duplicate_ack_frame"),
    Column("acks_frame", "UInt32", "", "frame of the segment this ACK acknowledges exactly",
           "tcp.analysis.acks_frame"),
    Column("ack_rtt_ns", "Int64", "ns", "time from that segment to this ACK (tshark omits an "
           "RTT of exactly 0)", "tcp.analysis.ack_rtt"),
    Column("initial_rtt_ns", "Int64", "ns", "the stream's iRTT as known when this frame was "
           "analysed: first pure ACK minus the latest pure SYN; null before",
           "tcp.analysis.initial_rtt"),
    Column("bytes_in_flight", "UInt32", "bytes", "unacknowledged bytes of this side after "
           "this segment (minus the other side's last SACKed bytes); null when 0 or not "
           "computed", "tcp.analysis.bytes_in_flight"),
    Column("push_bytes_sent", "UInt32", "bytes", "bytes sent since the last PSH (with "
           "bytes_in_flight)", "tcp.analysis.push_bytes_sent"),
)

TCP_COLUMNS: tuple[Column, ...] = (*TCP_KEY_COLUMNS, *TCP_ANALYSIS_COLUMNS)
TCP_COLUMN_NAMES = tuple(c.name for c in TCP_COLUMNS)

# Wireshark's tcp.analysis verdicts, in TCP_A_* bit order (tcpsift.tcp.FLAG_BITS).
VERDICTS = ("retransmission", "lost_segment", "ack_lost_segment", "keep_alive", "duplicate_ack",
            "zero_window", "zero_window_probe", "zero_window_probe_ack", "keep_alive_ack",
            "out_of_order", "fast_retransmission", "window_update", "window_full",
            "reused_ports", "spurious_retransmission")
CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
               "SHR", "OTH")
ENDINGS = ("fin_both", "fin_client", "fin_server", "rst_client", "rst_server", "open")


def _per_direction() -> tuple[Column, ...]:
    out = []
    for d, who in (("c2s", "client to server"), ("s2c", "server to client")):
        out += [Column(f"{d}_packets", "UInt32", "", f"packets {who}"),
                Column(f"{d}_bytes", "UInt64", "bytes", f"frame bytes on the wire {who}"),
                Column(f"{d}_payload", "UInt64", "bytes", f"TCP payload bytes {who}")]
        out += [Column(f"{d}_{v}", "UInt32", "", f"segments {who} that tshark's filter "
                       f"tcp.analysis.{v} matches"
                       + (" (fast and spurious ones included)" if v == "retransmission" else ""),
                       f"tcp.analysis.{v}") for v in VERDICTS]
    return tuple(out)


CONN_COLUMNS: tuple[Column, ...] = (
    Column("stream", "UInt32", "", "connection id: its index in this read (shifts when files "
           "are added)", "tcp.stream"),
    Column("uid", "String", "", "stable connection id, like Zeek's uid: \"C\" + 11 base-62 "
           "digits of a hash of the first packet's time and the client and server addresses "
           "and ports (tcpsift.tcp.keys.uid): the same in every read of that connection"),
    Column("client", "String", "", "client address as text: sender of the first SYN; without one "
           "the receiver of the first SYN-ACK; without a handshake the side on the higher port "
           "(equal ports: the first sender)"),
    Column("client_port", "UInt16", "", "client port"),
    Column("server", "String", "", "server address as text"),
    Column("server_port", "UInt16", "", "server port"),
    Column("community_id", "String", "", "Community ID v1 flow hash (seed 0), as Zeek, Suricata "
           "and Arkime log it: joins with their logs"),
    Column("first_frame", "UInt32", "", "first frame of the connection"),
    Column("last_frame", "UInt32", "", "last frame of the connection"),
    Column("first_ts_ns", "Int64", "ns", "time of the first frame"),
    Column("last_ts_ns", "Int64", "ns", "time of the last frame"),
    Column("duration_ns", "Int64", "ns", "last minus first time"),
    Column("syn_ts_ns", "Int64", "ns", "time of the client's first SYN"),
    Column("synack_ts_ns", "Int64", "ns", "time of the server's first SYN-ACK"),
    Column("ack_ts_ns", "Int64", "ns", "time of the client's first pure ACK after the SYN-ACK "
           "(handshake completed)"),
    Column("syn_to_synack_ns", "Int64", "ns", "SYN-ACK time minus SYN time"),
    Column("synack_to_ack_ns", "Int64", "ns", "handshake ACK time minus SYN-ACK time"),
    Column("established_frame", "UInt32", "", "frame of the handshake-completing ACK"),
    Column("close_frame", "UInt32", "", "first frame with FIN or RST, either direction"),
    Column("conn_state", "Enum:" + ",".join(CONN_STATES), "", "Zeek's conn_state: "
           + ", ".join(CONN_STATES)),
    Column("history", "String", "", "Zeek-style history letters (client upper case)"),
    Column("ended_by", "Enum:" + ",".join(ENDINGS), "", "who ended it: " + ", ".join(ENDINGS)),
    Column("client_open_at_end", "Int64", "", "other connections of the same client open when "
           "this one ended (at its first FIN/RST, else its last frame): handshake completed "
           "before, no FIN/RST yet"),
    Column("client_open_to_other_servers_at_end", "Int64", "", "the same, counting only "
           "connections to other server addresses"),
    Column("client_open_to_same_server_at_end", "Int64", "", "the same, counting only "
           "connections to this connection's server address (client_open_at_end minus "
           "client_open_to_other_servers_at_end)"),
    *_per_direction(),
    Column("client_mss", "UInt16", "bytes", "MSS option of the client's SYN"),
    Column("server_mss", "UInt16", "bytes", "MSS option of the server's SYN-ACK"),
    Column("client_wscale", "UInt8", "", "window scale shift offered in the client's SYN"),
    Column("server_wscale", "UInt8", "", "window scale shift offered in the server's SYN-ACK"),
    Column("client_sack_perm", "Boolean", "", "SACK permitted in the client's SYN"),
    Column("server_sack_perm", "Boolean", "", "SACK permitted in the server's SYN-ACK"),
    Column("client_timestamps", "Boolean", "", "timestamps option in the client's SYN"),
    Column("server_timestamps", "Boolean", "", "timestamps option in the server's SYN-ACK"),
    Column("client_min_window", "UInt32", "bytes", "smallest scaled window the client "
           "advertised (SYN excluded)", "tcp.window_size"),
    Column("server_min_window", "UInt32", "bytes", "smallest scaled window the server "
           "advertised (SYN-ACK excluded)", "tcp.window_size"),
    Column("ack_rtt_min_ns", "Int64", "ns", "smallest ACK RTT", "tcp.analysis.ack_rtt"),
    Column("ack_rtt_median_ns", "Int64", "ns", "median ACK RTT", "tcp.analysis.ack_rtt"),
    Column("ack_rtt_max_ns", "Int64", "ns", "largest ACK RTT", "tcp.analysis.ack_rtt"),
)

# `tcpsift.diagnose()` / `tcpsift diagnose` (docs/diagnose.md): one row per TCP connection,
# where its time went. Each stretch between two of its packets goes to one class.
DIAGNOSE_CLASSES = (
    ("handshake", "from the first SYN to the handshake's ACK"),
    ("zero_window", "a receiver advertises a zero window (an episode: from its first zero "
                    "to its window update)"),
    ("loss", "loss recovery: from a hole, a fill or a resent segment to the acknowledgment "
             "of everything sent up to it"),
    ("server_think", "the server's think time: from the client's last new segment to the "
                     "server's answer, less the server side's round trip"),
    ("client_think", "the client's think time, the same the other way"),
    ("window_full", "bytes in flight leave less than a segment of the receiver's window "
                    "(RFC 4898: limited by the receive window)"),
    ("rtt", "data in flight, the sender waits for acknowledgments (round trip, congestion "
            "window or bandwidth; RFC 4898: limited by congestion)"),
    ("sender", "nothing outstanding while the window is open: the application has nothing "
               "to send (RFC 4898: limited by the sender)"),
)

DIAGNOSE_COLUMNS: tuple[Column, ...] = (
    Column("stream", "UInt32", "", "connection id (tcp.stream)", "tcp.stream"),
    Column("uid", "String", "", "stable connection id (the connection table's)"),
    Column("client", "String", "", "client address"),
    Column("client_port", "UInt16", "", "client port"),
    Column("server", "String", "", "server address"),
    Column("server_port", "UInt16", "", "server port"),
    Column("first_frame", "UInt32", "", "first frame of the connection"),
    Column("last_frame", "UInt32", "", "last frame of the connection"),
    Column("duration_ns", "Int64", "ns", "first to last packet: the sum of the class times"),
    Column("limit", "String", "", "the class with the most time: "
           + ", ".join(name for name, _ in DIAGNOSE_CLASSES) + " (none when no time passed)"),
    Column("limit_side", "String", "", "whose: the receiver whose window (zero_window, "
           "window_full), the side whose data was lost (loss), the side thinking; else empty"),
    *(Column(f"{name}_ns", "Int64", "ns", f"time: {meaning}")
      for name, meaning in DIAGNOSE_CLASSES),
    *(Column(f"{name}_share", "Float64", "", f"{name}_ns / duration_ns")
      for name, _ in DIAGNOSE_CLASSES),
    Column("zero_window_episodes", "UInt32", "", "zero-window episodes (either receiver)"),
    Column("zero_window_frames", "UInt32", "", "frames advertising the zero windows"),
    Column("window_dips", "UInt32", "", "runs of windows below half the largest that side "
           "had advertised, never reaching zero"),
    Column("window_full_episodes", "UInt32", "", "runs of time held by a full window"),
    Column("loss_episodes", "UInt32", "", "loss recovery episodes (overlapping ones merged)"),
    Column("c2s_lost", "Int64", "", "packets lost client to server: resent after being seen, "
           "plus never seen (IPv4 identifications missing where they count one by one; "
           "else segments filling holes)"),
    Column("s2c_lost", "Int64", "", "packets lost server to client, the same"),
    Column("c2s_retransmissions", "Int64", "", "segments client to server sent again "
           "(resent after being seen, or filling a hole)"),
    Column("s2c_retransmissions", "Int64", "", "the same server to client"),
    Column("spurious_retransmissions", "Int64", "", "segments resent although the receiver "
           "had them (tshark's spurious_retransmission, or the receiver's D-SACK); not lost"),
    Column("timeouts", "Int64", "", "retransmissions after the sender was silent for 200 ms "
           "and twice the round trip (retransmission timeouts)"),
    Column("server_think_count", "UInt32", "", "server think times of 10 ms or more"),
    Column("server_think_median_ns", "Int64", "ns", "their median"),
    Column("server_think_max_ns", "Int64", "ns", "the longest"),
    Column("client_think_count", "UInt32", "", "client think times of 10 ms or more"),
    Column("evidence_frames", "List:UInt32", "", "first frames of the episodes of the "
           "limiting class (at most 10)"),
)

PACKET_COLUMN_NAMES = tuple(c.name for c in PACKET_COLUMNS)
PACKET_COLUMN = {c.name: c for c in PACKET_COLUMNS}


def polars_schema(columns=PACKET_COLUMNS):
    """The Polars schema (name -> dtype) for a column list. Imports Polars."""
    import polars as pl

    out: dict[str, pl.DataType | type[pl.DataType]] = {}
    for c in columns:
        if c.dtype.startswith("Enum:"):
            out[c.name] = pl.Enum(c.dtype[5:].split(","))
        elif c.dtype.startswith("List:"):
            out[c.name] = pl.List(getattr(pl, c.dtype[5:]))
        elif c.dtype.startswith("Datetime:"):
            _, unit, zone = c.dtype.split(":")
            out[c.name] = pl.Datetime(unit, zone)
        else:
            out[c.name] = getattr(pl, c.dtype)
    return out


def _markdown_table(columns) -> list[str]:
    lines = ["| column | dtype | unit | meaning | Wireshark field |", "| --- | --- | --- | --- | --- |"]
    for c in columns:
        dtype = c.dtype.split(":")[0] if c.dtype.startswith("Enum:") else c.dtype
        ws = f"`{c.wireshark}`" if c.wireshark else ""
        lines.append(f"| `{c.name}` | {dtype} | {c.unit} | {c.meaning} | {ws} |")
    return lines


def markdown() -> str:
    """docs/schema.md, generated."""
    lines = [
        "# The packet table",
        "",
        "Generated from `src/tcpsift/schema.py` by `python -m tcpsift.schema`; do not edit by hand.",
        f"Schema version {SCHEMA_VERSION}. One row per frame; null where the layer is absent.",
        "",
        *_markdown_table(PACKET_COLUMNS),
        "",
        "# The layer table",
        "",
        "`Capture.layers`: for frames that carry a header kind more than once (tunnels, stacked",
        "VLAN tags, headers quoted in ICMP errors), one row per header occurrence, outermost first.",
        "",
        *_markdown_table(LAYER_COLUMNS),
        "",
        "# The TCP analysis table",
        "",
        "`Capture.tcp` (`tcpsift.tcp.analyze()`): Wireshark 4.0's TCP analysis as tshark computes",
        "it (single pass, default preferences). One row per packet-table row, in the same order,",
        "keyed by its `frame` and `file_id`; the analysis columns are null where the row has no",
        "TCP header. Times may be negative when capture time runs backwards; sequence numbers",
        "are modulo 2^32.",
        "",
        *_markdown_table(TCP_COLUMNS),
        "",
        "# The connection table",
        "",
        "`Capture.conns` (`tcpsift.tcp.connections.connections()`, `tcpsift conns`): one row per",
        "TCP connection (`tcp.stream`).",
        "",
        *_markdown_table(CONN_COLUMNS),
        "",
        "# The diagnosis table",
        "",
        "`tcpsift.diagnose(capture).connections` (`tcpsift diagnose`, docs/diagnose.md): one",
        "row per TCP connection, where its time went and what held it back.",
        "",
        *_markdown_table(DIAGNOSE_COLUMNS),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
