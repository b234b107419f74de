"""Compare the reference decoder with tshark 4.0 on capture files (a development check).

    python tests/support/ref_vs_tshark.py FILE... [--max N]

Prints one line per disagreement: file, frame, column, reference value, tshark value.
tshark runs with IP reassembly off; frames whose innermost header tshark shows inside an
ICMP error are skipped for the IP/transport columns (tshark lists quoted headers last),
and fragments for the transport columns (the reference, like tshark with reassembly on,
shows no transport header in any fragment).
"""
from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from support.capreader import read_frames  # noqa: E402
from support.reference_decode import decode  # noqa: E402

FIELDS = [
    "frame.number", "vlan.id", "ieee8021ad.id", "ip.version", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "ip.hdr_len", "ip.len", "ip.id", "ip.ttl", "ip.proto", "ip.flags.df", "ip.flags.mf",
    "ip.frag_offset", "ipv6.plen", "ipv6.hlim", "ipv6.nxt", "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more", "ipv6.fraghdr.ident", "tcp.srcport", "tcp.dstport", "tcp.flags",
    "tcp.seq_raw", "tcp.ack_raw", "tcp.hdr_len", "tcp.window_size_value", "tcp.len",
    "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
    "tcp.options.sack_le", "tcp.options.sack_re", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr", "udp.srcport", "udp.dstport", "udp.length", "icmp.type",
    "icmp.code", "icmpv6.type", "icmpv6.code", "_ws.malformed", "_ws.short",
]
PREFS = ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
         "-o", "tcp.analyze_sequence_numbers:FALSE"]


def tshark_rows(path):
    cmd = ["tshark", "-n", "-r", str(path), *PREFS, "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,", "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    rows = []
    for line in out.splitlines():
        vals = line.split("\t")
        rows.append({f: (v.split(",") if v else []) for f, v in zip(FIELDS, vals)})
    return rows


def _int(s):
    return int(s, 0) if s.startswith("0x") else int(s)


def expected(row, ref):
    """tshark's values mapped to our columns, for the innermost (last) header."""
    def last(f, conv=_int):
        v = row[f]
        return conv(v[-1]) if v else None

    def lastbool(f):
        v = row[f]
        return None if not v else v[-1] in ("1", "True")

    vl = row["ieee8021ad.id"] or row["vlan.id"]
    e = {"vlan_id": _int(vl[0]) if vl else None}
    v = ref["ip_version"]
    if v == 4:
        e.update(src=last("ip.src", str), dst=last("ip.dst", str), ip_hdr_len=last("ip.hdr_len"),
                 ip_len=last("ip.len"), ip_id=last("ip.id"), ttl=last("ip.ttl"),
                 ip_proto=last("ip.proto"), dont_fragment=lastbool("ip.flags.df"),
                 more_fragments=lastbool("ip.flags.mf"), frag_offset=last("ip.frag_offset"))
    elif v == 6:
        plen = last("ipv6.plen")
        e.update(src=last("ipv6.src", str), dst=last("ipv6.dst", str), ttl=last("ipv6.hlim"),
                 ip_len=None if plen is None else 40 + plen)
        if row["ipv6.fraghdr.ident"]:
            e.update(ip_id=last("ipv6.fraghdr.ident"), frag_offset=last("ipv6.fraghdr.offset"),
                     more_fragments=lastbool("ipv6.fraghdr.more"))
    if row["tcp.srcport"]:
        sle, sre = row["tcp.options.sack_le"], row["tcp.options.sack_re"]
        e.update(sport=last("tcp.srcport"), dport=last("tcp.dstport"),
                 tcp_flags=last("tcp.flags"), seq=last("tcp.seq_raw"), ack=last("tcp.ack_raw"),
                 tcp_hdr_len=last("tcp.hdr_len"), window=last("tcp.window_size_value"),
                 tcp_len=last("tcp.len"), mss=last("tcp.options.mss_val"),
                 wscale=last("tcp.options.wscale.shift"),
                 sack_perm=bool(row["tcp.options.sack_perm"]),
                 sack_blocks=[int(x) for p in zip(sle, sre) for x in p] or None,
                 tsval=last("tcp.options.timestamp.tsval"),
                 tsecr=last("tcp.options.timestamp.tsecr"))
    elif row["udp.srcport"] and not (ref["encap"] in ("vxlan", "gtpu", "geneve", "mpls")
                                      and ref["sport"] is None):
        e.update(sport=last("udp.srcport"), dport=last("udp.dstport"), udp_len=last("udp.length"))
    if row["icmp.type"]:
        e.update(icmp_type=_int(row["icmp.type"][0]), icmp_code=_int(row["icmp.code"][0]))
    elif row["icmpv6.type"]:
        e.update(icmp_type=_int(row["icmpv6.type"][0]), icmp_code=_int(row["icmpv6.code"][0]))
    return e


TRANSPORT = {"sport", "dport", "tcp_flags", "seq", "ack", "tcp_hdr_len", "window", "tcp_len",
             "mss", "wscale", "sack_perm", "sack_blocks", "tsval", "tsecr", "udp_len",
             "icmp_type", "icmp_code"}
ICMP_ERRORS = {(4, 3), (4, 4), (4, 5), (4, 11), (4, 12), (6, 1), (6, 2), (6, 3), (6, 4)}


def compare(path, limit=None):
    frames = read_frames(path)
    rows = tshark_rows(path)
    diffs = []
    for i, (fr, row) in enumerate(zip(frames, rows)):
        if limit and i >= limit:
            break
        ref = decode(fr.data, fr.linktype, fr.wire_len)
        if ref["status"] == "unsupported":
            continue
        exp = expected(row, ref)
        quoted = (ref["icmp_type"] is not None
                  and (ref["ip_version"], ref["icmp_type"]) in ICMP_ERRORS)
        fragment = bool(ref["more_fragments"] or ref["frag_offset"])
        for k, v in exp.items():
            if quoted and k not in ("icmp_type", "icmp_code", "vlan_id"):
                continue
            if fragment and k in TRANSPORT:   # the reference shows none in fragments
                continue
            if ref[k] != v:
                diffs.append((str(path), i + 1, k, ref[k], v, ref["status"]))
    if len(frames) != len(rows):
        diffs.append((str(path), 0, "frame count", len(frames), len(rows), ""))
    return diffs


if __name__ == "__main__":
    args = sys.argv[1:]
    limit = None
    if "--max" in args:
        i = args.index("--max")
        limit = int(args[i + 1])
        del args[i:i + 2]
    for p in args:
        for d in compare(p, limit):
            print("\t".join(map(str, d)))
