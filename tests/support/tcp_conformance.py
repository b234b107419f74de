"""Compare the pure-Python TCP analysis reference with tshark 4.0's tcp.analysis.

Used by tests/test_tcp_reference.py and scripts/tcp_conformance.py.

tshark runs with its default preferences (sequence analysis, relative sequence numbers,
timestamps and bytes in flight on; window scaling "not known"), once per capture with
every field of `FIELDS`; its output is cached under the temp dir, keyed by the file's
path, mtime and size, the field list and the tshark version.

Only frames that carry exactly one TCP header (tcp.srcport has one value) are compared:
TCP headers quoted inside ICMP errors or tunnelled twice are not analysed the same way.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The fields compared. tcp.srcport only tells which frames carry TCP (not compared).
FIELDS = [
    "tcp.stream", "tcp.seq", "tcp.ack", "tcp.nxtseq", "tcp.len", "tcp.window_size",
    "tcp.window_size_scalefactor", "tcp.time_relative",
    "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order",
    "tcp.analysis.lost_segment", "tcp.analysis.ack_lost_segment",
    "tcp.analysis.duplicate_ack", "tcp.analysis.duplicate_ack_num",
    "tcp.analysis.duplicate_ack_frame", "tcp.analysis.zero_window",
    "tcp.analysis.zero_window_probe", "tcp.analysis.zero_window_probe_ack",
    "tcp.analysis.window_full", "tcp.analysis.window_update", "tcp.analysis.keep_alive",
    "tcp.analysis.keep_alive_ack", "tcp.analysis.reused_ports", "tcp.analysis.ack_rtt",
    "tcp.analysis.acks_frame", "tcp.analysis.initial_rtt", "tcp.analysis.bytes_in_flight",
]
TSHARK_FIELDS = ["frame.number", "tcp.srcport", *FIELDS]

# Which fields must agree exactly everywhere, which are verdicts (>= 99.9 %).
# pseudo-field: TCP frames of tshark that tcpsift's packet table does not decode as TCP
NOT_DECODED = "<not decoded as TCP by tcpsift>"

EXACT = ["tcp.stream", "tcp.seq", "tcp.ack", "tcp.nxtseq", "tcp.len", "tcp.window_size",
         "tcp.window_size_scalefactor"]


def shared() -> Path:
    return Path(os.environ.get("TCPSIFT_SHARED") or REPO.parent / "shared")


def captures() -> list[str]:
    """Every capture of the public corpus and of the lab, relative to `shared()`."""
    root = shared()
    out = []
    for sub in ("captures/public", "lab/captures"):
        d = root / sub
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if (p.is_file() and p.name != "MANIFEST.tsv" and not p.name.endswith(".md")
                    and not p.name.endswith(".json")):
                out.append(str(p.relative_to(root)))
    return out


# --- tshark, cached --------------------------------------------------------------------

def _env():
    return {**os.environ, "LC_ALL": "C"}


@functools.cache
def tshark_version() -> str | None:
    exe = shutil.which("tshark")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, env=_env()).stdout
    return out.splitlines()[0] if out else "unknown"


def _cache_dir() -> Path:
    d = Path(tempfile.gettempdir()) / "tcpsift-tshark-tcp-cache"
    d.mkdir(exist_ok=True)
    return d


def tshark_fields(path: Path, fields=TSHARK_FIELDS) -> bytes:
    """stdout of `tshark -r path -T fields -e ...` (default preferences), cached."""
    st = path.stat()
    key = "\0".join([str(path.resolve()), str(st.st_mtime_ns), str(st.st_size),
                     ",".join(fields), tshark_version() or ""])
    out_file = _cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".out")
    if out_file.exists():
        return out_file.read_bytes()
    cmd = ["tshark", "-r", str(path), "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, env=_env(), timeout=900)
    tmp = out_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(proc.stdout)
    tmp.replace(out_file)
    return proc.stdout


def warm_cache(caps: list[str], jobs: int | None = None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    root = shared()
    with ThreadPoolExecutor(jobs or os.cpu_count() or 2) as pool:
        list(pool.map(lambda c: tshark_fields(root / c), caps))


def tshark_rows(path: Path) -> dict[int, list[str]]:
    """{frame: [value of each of FIELDS]} for frames with exactly one TCP header."""
    out = {}
    n = len(TSHARK_FIELDS)
    for line in tshark_fields(path).decode("utf-8", "replace").splitlines():
        v = line.split("\t")
        v += [""] * (n - len(v))
        if not v[1] or "," in v[1]:
            continue
        out[int(v[0])] = v[2:]
    return out


# --- the reference, formatted ----------------------------------------------------------

def reference_rows(path: Path) -> dict[int, list[str]]:
    import tcpsift
    from support.tcp_reference import analyze, tshark_text

    cap = tcpsift.read(str(path))
    res = analyze(cap.packets, cap.layers)
    return tshark_text(cap.packets, res, FIELDS, cap.layers)


def compare(capture: str) -> tuple[dict, list[tuple]]:
    """Per-field [compared, equal] over the TCP frames tshark and we both see, and the diffs
    (capture, frame, field, tshark, ours)."""
    path = shared() / capture
    theirs = tshark_rows(path)
    ours = reference_rows(path)
    counts = {f: [0, 0] for f in FIELDS}
    counts[NOT_DECODED] = [0, 0]
    diffs = []
    for frame, tv in theirs.items():
        ov = ours.get(frame)
        if ov is None:
            if not tv[0]:
                # no tcp.stream: a TCP header tshark could not look up (8 bytes quoted in
                # an ICMP error), shown with its raw seq only; nothing to analyse
                continue
            # tcpsift's packet table has no TCP header here (e.g. a link type the decoder
            # does not support): one NOT_DECODED count, not a mismatch of every field
            counts.setdefault(NOT_DECODED, [0, 0])[0] += 1
            diffs.append((capture, frame, NOT_DECODED, tv[0], ""))
            continue
        for f, a, b in zip(FIELDS, tv, ov):
            counts[f][0] += 1
            if a == b:
                counts[f][1] += 1
            else:
                diffs.append((capture, frame, f, a, b))
    return counts, diffs


EXPECTED = REPO / "tests" / "data" / "tcp_reference_mismatches.json"


def load_expected() -> dict:
    if EXPECTED.exists():
        return json.loads(EXPECTED.read_text())
    return {}
