# Generated from src/tcpsift/decode/columns.py by `python -m tcpsift.decode.columns`;
# do not edit by hand (a test fails when this file is stale).

# --- presence bits (the `present` column; PRESENCE names them) ---
DEF P_VLAN = 1 << 0     # a VLAN tag
DEF P_IP = 1 << 1       # an IP header (addresses and the rest)
DEF P_OUTER = 1 << 2    # an outer IP header (tunnelled)
DEF P_TCP = 1 << 3      # a TCP header (ports)
DEF P_UDP = 1 << 4      # a UDP header
DEF P_ICMP = 1 << 5     # an ICMP or ICMPv6 header
DEF P_MSS = 1 << 6      # TCP MSS option
DEF P_WS = 1 << 7       # TCP window scale option
DEF P_SACKP = 1 << 8    # TCP SACK-permitted option
DEF P_TS = 1 << 9       # TCP timestamps option (tsval)
DEF P_PAYLOAD = 1 << 10 # payload_offset
DEF P_IPID = 1 << 11    # IPv4 identification or IPv6 fragment identification
DEF P_TCPLEN = 1 << 12  # TCP payload length
DEF P_SACK = 1 << 13    # TCP SACK option
DEF P_FLAGS = 1 << 14   # TCP header long enough for offset/flags/window
DEF P_SEQ = 1 << 15     # TCP sequence number
DEF P_ACK = 1 << 16     # TCP acknowledgment number
DEF P_TSECR = 1 << 17   # TCP timestamps option's TSecr
DEF P_IPHDR = 1 << 18   # IP version and lengths only (a bogus header stopped decoding)
DEF P_NOIPLEN = 1 << 19 # ... and not even the total length (bogus header length)
DEF P_ETH = 1 << 20     # an Ethernet header (its MAC addresses)
DEF P_ETHTYPE = 1 << 21 # ... with a type field (not an 802.3 length)

# --- status values: index into schema.DECODE_STATUS ---
DEF ST_OK = 0           # 'ok'
DEF ST_TRUNC = 1        # 'truncated'
DEF ST_MALFORMED = 2    # 'malformed'
DEF ST_UNSUPPORTED = 3  # 'unsupported'

# --- encapsulation codes: index into schema.ENCAPSULATIONS ---
DEF E_NONE = 0          # ''
DEF E_MPLS = 1          # 'mpls'
DEF E_GRE = 2           # 'gre'
DEF E_ERSPAN1 = 3       # 'erspan1'
DEF E_ERSPAN2 = 4       # 'erspan2'
DEF E_ERSPAN3 = 5       # 'erspan3'
DEF E_VXLAN = 6         # 'vxlan'
DEF E_GENEVE = 7        # 'geneve'
DEF E_GTPU = 8          # 'gtpu'
DEF E_IPIP = 9          # 'ipip'
DEF E_6IN4 = 10         # '6in4'
DEF E_4IN6 = 11         # '4in6'
DEF E_6IN6 = 12         # '6in6'
DEF E_PPPOE = 13        # 'pppoe'

# --- layer kinds: index into schema.LAYER_KINDS ---
DEF K_VLAN = 0          # 'vlan'
DEF K_IPV4 = 1          # 'ipv4'
DEF K_IPV6 = 2          # 'ipv6'
DEF K_TCP = 3           # 'tcp'
DEF K_UDP = 4           # 'udp'
DEF K_ICMP = 5          # 'icmp'
DEF K_ICMPV6 = 6        # 'icmpv6'
DEF K_ETH = 7           # 'eth'
