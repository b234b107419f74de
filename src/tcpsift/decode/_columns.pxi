# Generated from src/tcpsift/decode/columns.py by `python -m tcpsift.decode.columns`;
# do not edit by hand (a test fails when this file is stale).

cdef struct Pkt:
    # One frame's columns and the decoder's bookkeeping, fields by size, 8-byte
    # aligned and without padding (112 bytes): a frame starts by zeroing it
    # (zero_words: a few vector stores). Written out: the fields with an array name.
    uint32_t present        # P_* bits: which columns have a value
    uint32_t outer_src
    uint32_t outer_dst
    uint32_t src            # address ids (AddressTable)
    uint32_t dst
    uint32_t ip_len
    uint32_t ip_id
    uint32_t seq
    uint32_t ack
    uint32_t tcp_len
    uint32_t tsval
    uint32_t tsecr
    uint32_t payload_off    # payload_offset
    uint32_t ip_off         # ip_offset; offset of the innermost IP header in the frame
    # frag_data_offset; fragment: offset of its data in the frame (0: not a fragment)
    uint32_t frag_data_off
    uint32_t eth_src        # MAC address ids of the innermost Ethernet header
    uint32_t eth_dst
    uint16_t vlan_id
    uint16_t ip_hdr_len
    uint16_t frag           # frag_offset
    uint16_t sport
    uint16_t dport
    uint16_t tcp_flags
    uint16_t window
    uint16_t mss
    uint16_t udp_len
    uint16_t eth_type
    # the decoder's bookkeeping (not written out; BOOKKEEPING)
    # until a frame needs layer rows, the kinds of its headers (kind + 1, 4 bits each, the
    # first highest): see _decode.new_layer
    uint16_t trace
    uint8_t status          # ST_* (schema.DECODE_STATUS)
    uint8_t vlan_depth
    uint8_t encap           # E_* (schema.ENCAPSULATIONS)
    uint8_t ip_version
    uint8_t ttl
    uint8_t ip_proto
    uint8_t df              # dont_fragment
    uint8_t mf              # more_fragments
    uint8_t tcp_hdr_len
    uint8_t wscale
    uint8_t icmp_type
    uint8_t icmp_code
    uint8_t sack_n          # sack_count; SACK edges in FrameScratch.sack
    uint8_t ipv6_nxt
    # the decoder's bookkeeping (not written out; BOOKKEEPING)
    uint8_t ip_count        # non-quoted IP headers seen
    uint8_t l4_count        # non-quoted transport headers seen
    uint8_t eth_count       # Ethernet headers seen (tunnels can carry Ethernet frames)
    uint8_t nlayers         # layer rows in FrameScratch.layers (0 until the frame needs them)
    uint8_t any_quoted      # a header quoted in an ICMP error was seen
    # the frame needs the table path (its layer rows): a VLAN tag with a TPID other than
    # 0x8100 (802.1ad, 0x9100), or a TCP header tshark shows in part (data offset below 5,
    # cut before 20 bytes, a SACK option shorter than one block)
    uint8_t any_odd_tag
    uint8_t q_tags          # 802.1Q tags seen (MAX_VLAN_TAGS)
    uint8_t bounded         # decoding stopped at MAX_DEPTH or MAX_LAYERS


assert sizeof(Pkt) == 112


cdef struct Columns:
    # decode_frames' output arrays (new_packet_arrays), as pointers
    uint8_t* status
    uint32_t* present
    uint16_t* vlan_id
    uint8_t* vlan_depth
    uint8_t* encap
    uint32_t* outer_src
    uint32_t* outer_dst
    uint8_t* ip_version
    uint32_t* src
    uint32_t* dst
    uint16_t* ip_hdr_len
    uint32_t* ip_len
    uint32_t* ip_id
    uint8_t* ttl
    uint8_t* ip_proto
    uint8_t* dont_fragment
    uint8_t* more_fragments
    uint16_t* frag_offset
    uint16_t* sport
    uint16_t* dport
    uint16_t* tcp_flags
    uint32_t* seq
    uint32_t* ack
    uint8_t* tcp_hdr_len
    uint16_t* window
    uint32_t* tcp_len
    uint16_t* mss
    uint8_t* wscale
    uint32_t* tsval
    uint32_t* tsecr
    uint16_t* udp_len
    uint8_t* icmp_type
    uint8_t* icmp_code
    uint32_t* payload_offset
    uint8_t* sack_count
    uint32_t* ip_offset
    uint32_t* frag_data_offset
    uint8_t* ipv6_nxt
    uint32_t* eth_src
    uint32_t* eth_dst
    uint16_t* eth_type


cdef void write_rows(Columns* c, const Pkt* rows, Py_ssize_t n, Py_ssize_t at) noexcept nogil:
    """Rows [0, n) of a tile (n <= TILE) to index `at` of the columns, one column after
    the other. (Loops of TILE steps that stop at n, which the compiler unrolls: loops of
    n steps took 0.40 s instead of 0.23 s in the measurement at TILE.)"""
    cdef Py_ssize_t r
    cdef uint8_t* status = c.status + at
    cdef uint32_t* present = c.present + at
    cdef uint16_t* vlan_id = c.vlan_id + at
    cdef uint8_t* vlan_depth = c.vlan_depth + at
    cdef uint8_t* encap = c.encap + at
    cdef uint32_t* outer_src = c.outer_src + at
    cdef uint32_t* outer_dst = c.outer_dst + at
    cdef uint8_t* ip_version = c.ip_version + at
    cdef uint32_t* src = c.src + at
    cdef uint32_t* dst = c.dst + at
    cdef uint16_t* ip_hdr_len = c.ip_hdr_len + at
    cdef uint32_t* ip_len = c.ip_len + at
    cdef uint32_t* ip_id = c.ip_id + at
    cdef uint8_t* ttl = c.ttl + at
    cdef uint8_t* ip_proto = c.ip_proto + at
    cdef uint8_t* dont_fragment = c.dont_fragment + at
    cdef uint8_t* more_fragments = c.more_fragments + at
    cdef uint16_t* frag_offset = c.frag_offset + at
    cdef uint16_t* sport = c.sport + at
    cdef uint16_t* dport = c.dport + at
    cdef uint16_t* tcp_flags = c.tcp_flags + at
    cdef uint32_t* seq = c.seq + at
    cdef uint32_t* ack = c.ack + at
    cdef uint8_t* tcp_hdr_len = c.tcp_hdr_len + at
    cdef uint16_t* window = c.window + at
    cdef uint32_t* tcp_len = c.tcp_len + at
    cdef uint16_t* mss = c.mss + at
    cdef uint8_t* wscale = c.wscale + at
    cdef uint32_t* tsval = c.tsval + at
    cdef uint32_t* tsecr = c.tsecr + at
    cdef uint16_t* udp_len = c.udp_len + at
    cdef uint8_t* icmp_type = c.icmp_type + at
    cdef uint8_t* icmp_code = c.icmp_code + at
    cdef uint32_t* payload_offset = c.payload_offset + at
    cdef uint8_t* sack_count = c.sack_count + at
    cdef uint32_t* ip_offset = c.ip_offset + at
    cdef uint32_t* frag_data_offset = c.frag_data_offset + at
    cdef uint8_t* ipv6_nxt = c.ipv6_nxt + at
    cdef uint32_t* eth_src = c.eth_src + at
    cdef uint32_t* eth_dst = c.eth_dst + at
    cdef uint16_t* eth_type = c.eth_type + at
    for r in range(TILE):
        if r == n:
            break
        status[r] = rows[r].status
    for r in range(TILE):
        if r == n:
            break
        present[r] = rows[r].present
    for r in range(TILE):
        if r == n:
            break
        vlan_id[r] = rows[r].vlan_id
    for r in range(TILE):
        if r == n:
            break
        vlan_depth[r] = rows[r].vlan_depth
    for r in range(TILE):
        if r == n:
            break
        encap[r] = rows[r].encap
    for r in range(TILE):
        if r == n:
            break
        outer_src[r] = rows[r].outer_src
    for r in range(TILE):
        if r == n:
            break
        outer_dst[r] = rows[r].outer_dst
    for r in range(TILE):
        if r == n:
            break
        ip_version[r] = rows[r].ip_version
    for r in range(TILE):
        if r == n:
            break
        src[r] = rows[r].src
    for r in range(TILE):
        if r == n:
            break
        dst[r] = rows[r].dst
    for r in range(TILE):
        if r == n:
            break
        ip_hdr_len[r] = rows[r].ip_hdr_len
    for r in range(TILE):
        if r == n:
            break
        ip_len[r] = rows[r].ip_len
    for r in range(TILE):
        if r == n:
            break
        ip_id[r] = rows[r].ip_id
    for r in range(TILE):
        if r == n:
            break
        ttl[r] = rows[r].ttl
    for r in range(TILE):
        if r == n:
            break
        ip_proto[r] = rows[r].ip_proto
    for r in range(TILE):
        if r == n:
            break
        dont_fragment[r] = rows[r].df
    for r in range(TILE):
        if r == n:
            break
        more_fragments[r] = rows[r].mf
    for r in range(TILE):
        if r == n:
            break
        frag_offset[r] = rows[r].frag
    for r in range(TILE):
        if r == n:
            break
        sport[r] = rows[r].sport
    for r in range(TILE):
        if r == n:
            break
        dport[r] = rows[r].dport
    for r in range(TILE):
        if r == n:
            break
        tcp_flags[r] = rows[r].tcp_flags
    for r in range(TILE):
        if r == n:
            break
        seq[r] = rows[r].seq
    for r in range(TILE):
        if r == n:
            break
        ack[r] = rows[r].ack
    for r in range(TILE):
        if r == n:
            break
        tcp_hdr_len[r] = rows[r].tcp_hdr_len
    for r in range(TILE):
        if r == n:
            break
        window[r] = rows[r].window
    for r in range(TILE):
        if r == n:
            break
        tcp_len[r] = rows[r].tcp_len
    for r in range(TILE):
        if r == n:
            break
        mss[r] = rows[r].mss
    for r in range(TILE):
        if r == n:
            break
        wscale[r] = rows[r].wscale
    for r in range(TILE):
        if r == n:
            break
        tsval[r] = rows[r].tsval
    for r in range(TILE):
        if r == n:
            break
        tsecr[r] = rows[r].tsecr
    for r in range(TILE):
        if r == n:
            break
        udp_len[r] = rows[r].udp_len
    for r in range(TILE):
        if r == n:
            break
        icmp_type[r] = rows[r].icmp_type
    for r in range(TILE):
        if r == n:
            break
        icmp_code[r] = rows[r].icmp_code
    for r in range(TILE):
        if r == n:
            break
        payload_offset[r] = rows[r].payload_off
    for r in range(TILE):
        if r == n:
            break
        sack_count[r] = rows[r].sack_n
    for r in range(TILE):
        if r == n:
            break
        ip_offset[r] = rows[r].ip_off
    for r in range(TILE):
        if r == n:
            break
        frag_data_offset[r] = rows[r].frag_data_off
    for r in range(TILE):
        if r == n:
            break
        ipv6_nxt[r] = rows[r].ipv6_nxt
    for r in range(TILE):
        if r == n:
            break
        eth_src[r] = rows[r].eth_src
    for r in range(TILE):
        if r == n:
            break
        eth_dst[r] = rows[r].eth_dst
    for r in range(TILE):
        if r == n:
            break
        eth_type[r] = rows[r].eth_type


cdef Columns columns_of(dict out, Py_ssize_t at, Py_ssize_t n) except *:
    """Pointers to the arrays of `out` (new_packet_arrays: each of its type), checked to
    have room for `n` frames from index `at`. The arrays must outlive their use."""
    if at < 0 or any(len(array) < at + n for array in out.values()):
        raise ValueError(f"no room for {n} frames at index {at}")
    cdef uint8_t[::1] status = out["status"]
    cdef uint32_t[::1] present = out["present"]
    cdef uint16_t[::1] vlan_id = out["vlan_id"]
    cdef uint8_t[::1] vlan_depth = out["vlan_depth"]
    cdef uint8_t[::1] encap = out["encap"]
    cdef uint32_t[::1] outer_src = out["outer_src"]
    cdef uint32_t[::1] outer_dst = out["outer_dst"]
    cdef uint8_t[::1] ip_version = out["ip_version"]
    cdef uint32_t[::1] src = out["src"]
    cdef uint32_t[::1] dst = out["dst"]
    cdef uint16_t[::1] ip_hdr_len = out["ip_hdr_len"]
    cdef uint32_t[::1] ip_len = out["ip_len"]
    cdef uint32_t[::1] ip_id = out["ip_id"]
    cdef uint8_t[::1] ttl = out["ttl"]
    cdef uint8_t[::1] ip_proto = out["ip_proto"]
    cdef uint8_t[::1] dont_fragment = out["dont_fragment"]
    cdef uint8_t[::1] more_fragments = out["more_fragments"]
    cdef uint16_t[::1] frag_offset = out["frag_offset"]
    cdef uint16_t[::1] sport = out["sport"]
    cdef uint16_t[::1] dport = out["dport"]
    cdef uint16_t[::1] tcp_flags = out["tcp_flags"]
    cdef uint32_t[::1] seq = out["seq"]
    cdef uint32_t[::1] ack = out["ack"]
    cdef uint8_t[::1] tcp_hdr_len = out["tcp_hdr_len"]
    cdef uint16_t[::1] window = out["window"]
    cdef uint32_t[::1] tcp_len = out["tcp_len"]
    cdef uint16_t[::1] mss = out["mss"]
    cdef uint8_t[::1] wscale = out["wscale"]
    cdef uint32_t[::1] tsval = out["tsval"]
    cdef uint32_t[::1] tsecr = out["tsecr"]
    cdef uint16_t[::1] udp_len = out["udp_len"]
    cdef uint8_t[::1] icmp_type = out["icmp_type"]
    cdef uint8_t[::1] icmp_code = out["icmp_code"]
    cdef uint32_t[::1] payload_offset = out["payload_offset"]
    cdef uint8_t[::1] sack_count = out["sack_count"]
    cdef uint32_t[::1] ip_offset = out["ip_offset"]
    cdef uint32_t[::1] frag_data_offset = out["frag_data_offset"]
    cdef uint8_t[::1] ipv6_nxt = out["ipv6_nxt"]
    cdef uint32_t[::1] eth_src = out["eth_src"]
    cdef uint32_t[::1] eth_dst = out["eth_dst"]
    cdef uint16_t[::1] eth_type = out["eth_type"]
    cdef Columns c
    c.status = &status[0]
    c.present = &present[0]
    c.vlan_id = &vlan_id[0]
    c.vlan_depth = &vlan_depth[0]
    c.encap = &encap[0]
    c.outer_src = &outer_src[0]
    c.outer_dst = &outer_dst[0]
    c.ip_version = &ip_version[0]
    c.src = &src[0]
    c.dst = &dst[0]
    c.ip_hdr_len = &ip_hdr_len[0]
    c.ip_len = &ip_len[0]
    c.ip_id = &ip_id[0]
    c.ttl = &ttl[0]
    c.ip_proto = &ip_proto[0]
    c.dont_fragment = &dont_fragment[0]
    c.more_fragments = &more_fragments[0]
    c.frag_offset = &frag_offset[0]
    c.sport = &sport[0]
    c.dport = &dport[0]
    c.tcp_flags = &tcp_flags[0]
    c.seq = &seq[0]
    c.ack = &ack[0]
    c.tcp_hdr_len = &tcp_hdr_len[0]
    c.window = &window[0]
    c.tcp_len = &tcp_len[0]
    c.mss = &mss[0]
    c.wscale = &wscale[0]
    c.tsval = &tsval[0]
    c.tsecr = &tsecr[0]
    c.udp_len = &udp_len[0]
    c.icmp_type = &icmp_type[0]
    c.icmp_code = &icmp_code[0]
    c.payload_offset = &payload_offset[0]
    c.sack_count = &sack_count[0]
    c.ip_offset = &ip_offset[0]
    c.frag_data_offset = &frag_data_offset[0]
    c.ipv6_nxt = &ipv6_nxt[0]
    c.eth_src = &eth_src[0]
    c.eth_dst = &eth_dst[0]
    c.eth_type = &eth_type[0]
    return c


# What this build of the decoder writes: (array, NumPy dtype name), in order (a test
# holds it equal to columns.PACKET_ARRAYS, which new_packet_arrays follows)
COLUMN_DTYPES = (
    ("status", "uint8"),
    ("present", "uint32"),
    ("vlan_id", "uint16"),
    ("vlan_depth", "uint8"),
    ("encap", "uint8"),
    ("outer_src", "uint32"),
    ("outer_dst", "uint32"),
    ("ip_version", "uint8"),
    ("src", "uint32"),
    ("dst", "uint32"),
    ("ip_hdr_len", "uint16"),
    ("ip_len", "uint32"),
    ("ip_id", "uint32"),
    ("ttl", "uint8"),
    ("ip_proto", "uint8"),
    ("dont_fragment", "uint8"),
    ("more_fragments", "uint8"),
    ("frag_offset", "uint16"),
    ("sport", "uint16"),
    ("dport", "uint16"),
    ("tcp_flags", "uint16"),
    ("seq", "uint32"),
    ("ack", "uint32"),
    ("tcp_hdr_len", "uint8"),
    ("window", "uint16"),
    ("tcp_len", "uint32"),
    ("mss", "uint16"),
    ("wscale", "uint8"),
    ("tsval", "uint32"),
    ("tsecr", "uint32"),
    ("udp_len", "uint16"),
    ("icmp_type", "uint8"),
    ("icmp_code", "uint8"),
    ("payload_offset", "uint32"),
    ("sack_count", "uint8"),
    ("ip_offset", "uint32"),
    ("frag_data_offset", "uint32"),
    ("ipv6_nxt", "uint8"),
    ("eth_src", "uint32"),
    ("eth_dst", "uint32"),
    ("eth_type", "uint16"),
)

# presence bits by name (capture/presence.py)
PRESENCE = {
    "vlan": P_VLAN,
    "ip": P_IP,
    "outer": P_OUTER,
    "tcp": P_TCP,
    "udp": P_UDP,
    "icmp": P_ICMP,
    "mss": P_MSS,
    "wscale": P_WS,
    "sack_perm": P_SACKP,
    "ts": P_TS,
    "payload": P_PAYLOAD,
    "ip_id": P_IPID,
    "tcp_len": P_TCPLEN,
    "sack": P_SACK,
    "tcp_flags": P_FLAGS,
    "seq": P_SEQ,
    "ack": P_ACK,
    "tsecr": P_TSECR,
    "ip_hdr": P_IPHDR,
    "no_ip_len": P_NOIPLEN,
    "eth": P_ETH,
    "eth_type": P_ETHTYPE,
}
