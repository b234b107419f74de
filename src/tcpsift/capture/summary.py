"""What `tcpsift info` reports: per-file facts and protocol counts.

The files are walked and decoded by tcpsift.capture.chunks (the loop read() and scan()
use), in small chunks written into the same few arrays, so the work stays in the CPU
cache and memory stays flat whatever the file size; no Polars table is built. A thread
decodes chunk k+1 while this one counts chunk k and helps it (reads blocks ahead,
decodes part of blocks of small frames). Counts are per
frame as decoded: an IP fragment counts by its own headers (reassembly, which
`tcpsift.read` does, is not needed for a summary).
"""
from __future__ import annotations

import numpy as np

from tcpsift import schema
from tcpsift.capture.chunks import CaptureChunks
from tcpsift.capture.paths import capture_paths
from tcpsift.decode._decode import PRESENCE

CHUNK = 1 << 16
COUNTS = ("frames", "ipv4", "ipv6", "tcp", "udp", "icmp", "tunnelled", "vlan_tagged",
          "ip_fragments")


def _add_counts(totals: dict, pkt: dict) -> None:
    present = pkt["present"]
    ip = (present & PRESENCE["ip"]) != 0
    version = pkt["ip_version"]
    counts: dict[str, int | np.integer] = {
        "frames": len(present),
        "ipv4": np.count_nonzero(ip & (version == 4)),
        "ipv6": np.count_nonzero(ip & (version == 6)),
        "tcp": np.count_nonzero(ip & (pkt["ip_proto"] == 6)),
        "udp": np.count_nonzero(present & PRESENCE["udp"]),
        "icmp": np.count_nonzero(present & PRESENCE["icmp"]),
        "tunnelled": np.count_nonzero(pkt["encap"]),
        "vlan_tagged": np.count_nonzero(present & PRESENCE["vlan"]),
        "ip_fragments": np.count_nonzero(ip & ((pkt["more_fragments"] != 0)
                                                | (pkt["frag_offset"] > 0))),
    }
    for k, v in counts.items():
        totals[k] += int(v)


def summarize(paths) -> dict:
    """Per-file facts, counts over all files, decode status, warnings (JSON-ready).

    Raises CaptureError like `tcpsift.read` (a single file, or every file, unreadable)."""
    totals = dict.fromkeys(COUNTS, 0)
    status = np.zeros(len(schema.DECODE_STATUS), np.int64)
    # the files one after the other (totals do not depend on the order), in three sets
    # of arrays used in turn (one counted, one waiting, one being decoded), no tables
    chunks = CaptureChunks(capture_paths(paths), "concat", CHUNK, tables=False, reuse=3,
                           reassemble=False)
    for chunk in chunks:
        _add_counts(totals, chunk.pkt)
        status[:] += np.bincount(chunk.pkt["status"], minlength=len(status))[:len(status)]
    return {
        "files": [f.info for f in chunks.files],
        "counts": totals,
        "status": {name: int(n) for name, n in zip(schema.DECODE_STATUS, status) if n},
        "warnings": chunks.warnings,
        "complete": chunks.complete,
    }
