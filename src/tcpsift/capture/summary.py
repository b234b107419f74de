"""What `tcpsift info` reports: per-file facts and protocol counts, from the decoded
arrays directly (NumPy only: summarising a capture does not build the Polars tables)."""
from __future__ import annotations

import numpy as np

from tcpsift import schema
from tcpsift.capture.files import DecodedFiles, file_info
from tcpsift.decode._decode import PRESENCE


def _counts(pkt: dict) -> dict:
    present = pkt["present"]
    ip = (present & PRESENCE["ip"]) != 0
    version = pkt["ip_version"]
    proto = pkt["ip_proto"]
    return {
        "frames": len(present),
        "ipv4": int(np.count_nonzero(ip & (version == 4))),
        "ipv6": int(np.count_nonzero(ip & (version == 6))),
        "tcp": int(np.count_nonzero(ip & (proto == 6))),
        "udp": int(np.count_nonzero(present & PRESENCE["udp"])),
        "icmp": int(np.count_nonzero(present & PRESENCE["icmp"])),
        "tunnelled": int(np.count_nonzero(pkt["encap"])),
        "vlan_tagged": int(np.count_nonzero(present & PRESENCE["vlan"])),
        "ip_fragments": int(np.count_nonzero(ip & ((pkt["more_fragments"] != 0)
                                                    | (pkt["frag_offset"] > 0)))),
    }


def summarize(decoded: DecodedFiles) -> dict:
    """Per-file facts, counts over all files, decode status, warnings (JSON-ready)."""
    totals: dict = {}
    status = np.zeros(len(schema.DECODE_STATUS), np.int64)
    for res in decoded.results:
        for k, v in _counts(res.packets).items():
            totals[k] = totals.get(k, 0) + v
        status += np.bincount(res.packets["status"], minlength=len(status))[:len(status)]
    return {
        "files": [file_info(r) for r in decoded.results],
        "counts": totals,
        "status": {name: int(n) for name, n in zip(schema.DECODE_STATUS, status) if n},
        "warnings": decoded.warnings,
        "complete": decoded.complete,
    }
