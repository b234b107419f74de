"""Compare `tcpsift fields` with `tshark -T fields` (tshark 4.0.17 is the oracle).

Used by tests/conformance/test_fields_vs_tshark.py and scripts/conformance_report.py.
tshark runs as-is (default preferences: IP reassembly and TCP analysis on), once per
capture with all fields, and its output is cached under the temp dir keyed by the file
(path, mtime, size), the field list and the tshark version.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# What the conformance test compares: the header fields. The fields that need the TCP
# analysis (tcp.stream, tcp.seq, tcp.analysis.*, the relative SACK edges tcp.options.sack_le/
# sack_re) are compared by test_tcp_fields_vs_tshark.py.
FIELDS = [
    "frame.number", "frame.time_epoch", "frame.time_relative", "frame.time_delta",
    "frame.time_delta_displayed", "frame.len", "frame.cap_len", "frame.interface_id",
    "eth.src", "eth.dst", "eth.type", "vlan.id", "ieee8021ad.id", "ip.version", "ip.src",
    "ip.dst", "ip.hdr_len", "ip.len", "ip.id", "ip.ttl",
    "ip.proto", "ip.flags.df", "ip.flags.mf", "ip.frag_offset", "ipv6.src", "ipv6.dst",
    "ipv6.hlim", "ipv6.plen", "ipv6.nxt", "tcp.srcport", "tcp.dstport", "tcp.port",
    "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.flags.str", "tcp.hdr_len", "tcp.len",
    "tcp.window_size_value", "tcp.options.mss_val", "tcp.options.wscale.shift",
    "tcp.options.sack_perm", "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr",
    "udp.srcport", "udp.dstport", "udp.port", "udp.length", "icmp.type", "icmp.code",
    "icmpv6.type", "icmpv6.code",
]
LINES = "<lines>"   # pseudo-field: the frame counts differ
READ = "<read>"     # pseudo-field: tcpsift could not read the file


def corpus() -> Path:
    return Path(os.environ.get("TCPSIFT_CORPUS") or REPO.parent / "shared/captures/public")


def captures(root: Path | None = None) -> list[str]:
    """Every capture of the corpus, as a path relative to it."""
    root = root or corpus()
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != "MANIFEST.tsv" and not p.name.endswith(".md"))


# --- tshark, cached ---------------------------------------------------------------------

@functools.cache
def tshark_version() -> str | None:
    exe = shutil.which("tshark")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                         env=_env()).stdout
    return out.splitlines()[0] if out else "unknown"


def _env():
    return {**os.environ, "LC_ALL": "C"}


def _cache_dir() -> Path:
    d = Path(tempfile.gettempdir()) / "tcpsift-tshark-cache"
    d.mkdir(exist_ok=True)
    return d


def tshark_fields(path: Path, fields=FIELDS, display_filter: str = "") -> tuple[int, bytes]:
    """(exit status, stdout) of `tshark -r path [-Y filter] -T fields -e ...`, cached."""
    st = path.stat()
    key = "\0".join([str(path.resolve()), str(st.st_mtime_ns), str(st.st_size),
                     ",".join(fields), display_filter, tshark_version() or ""])
    base = _cache_dir() / hashlib.sha256(key.encode()).hexdigest()[:32]
    out_file, rc_file = base.with_suffix(".out"), base.with_suffix(".rc")
    if rc_file.exists() and out_file.exists():
        return int(rc_file.read_text()), out_file.read_bytes()
    cmd = ["tshark", "-r", str(path), "-T", "fields"]
    if display_filter:
        cmd += ["-Y", display_filter]
    for f in fields:
        cmd += ["-e", f]
    # stderr is noise here ("Running as user root", LDAP tree-depth warnings)
    proc = subprocess.run(cmd, capture_output=True, env=_env(), timeout=600)
    # write then rename, so that a killed run never leaves half an output in the cache
    tmp = out_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(proc.stdout)
    tmp.replace(out_file)
    rc_file.write_text(str(proc.returncode))
    return proc.returncode, proc.stdout


# --- tcpsift ---------------------------------------------------------------------------

def tcpsift_fields(path: Path, fields=FIELDS, display_filter: str = "") -> bytes:
    """What `tcpsift fields path [-Y filter] -e ...` prints (in-process: same code, no start-up)."""
    import tcpsift
    from tcpsift.fields import render
    from tcpsift.fields.filter import compile_filter

    cap = tcpsift.read(str(path))
    mask = compile_filter(display_filter)(cap) if display_filter else None
    return render(cap, list(fields), mask)


# --- comparing --------------------------------------------------------------------------

@dataclass(frozen=True)
class Diff:
    capture: str
    frame: int          # 1-based line number (= frame number without a filter)
    field: str
    tshark: str
    ours: str


def compare(capture: str, theirs: bytes, ours: bytes, fields=FIELDS) -> tuple[dict, list[Diff]]:
    """Per-field counts {field: [compared, equal]} and the differing cells."""
    a = theirs.decode("utf-8", "replace").splitlines()
    b = ours.decode("utf-8", "replace").splitlines()
    counts = {f: [0, 0] for f in fields}
    diffs = []
    if len(a) != len(b):
        diffs.append(Diff(capture, min(len(a), len(b)) + 1, LINES, str(len(a)), str(len(b))))
    for n, (la, lb) in enumerate(zip(a, b), 1):
        if la == lb:
            for f in fields:
                counts[f][0] += 1
                counts[f][1] += 1
            continue
        va, vb = la.split("\t"), lb.split("\t")
        va += [""] * (len(fields) - len(va))
        vb += [""] * (len(fields) - len(vb))
        for f, x, y in zip(fields, va, vb):
            counts[f][0] += 1
            if x == y:
                counts[f][1] += 1
            else:
                diffs.append(Diff(capture, n, f, x, y))
    return counts, diffs


def run(capture: str, root: Path | None = None, fields=FIELDS) -> tuple[dict, list[Diff]]:
    """Compare one capture of the corpus; a file tcpsift cannot read is one READ diff."""
    import tcpsift

    path = (root or corpus()) / capture
    rc, theirs = tshark_fields(path, fields)
    try:
        ours = tcpsift_fields(path, fields)
    except tcpsift.CaptureError as e:
        return {f: [0, 0] for f in fields}, [Diff(capture, 0, READ, f"tshark exit {rc}", str(e))]
    return compare(capture, theirs, ours, fields)


# --- known differences ------------------------------------------------------------------

@dataclass(frozen=True)
class Known:
    capture: str            # glob over the corpus path, e.g. "l3l4/ipv6-*" or "*"
    field: str              # field name or glob ("tcp.*")
    reason: str
    kind: str = "tshark"    # tshark: tshark-specific behaviour; schema: not in tcpsift's
                            # tables; decoder: a tcpsift decoder bug, to be fixed
    frames: tuple[int, ...] = ()   # empty: every frame
    tshark: str = ""        # regex tshark's value must match (fully); empty: any value

    def covers(self, d: Diff) -> bool:
        return (fnmatch.fnmatchcase(d.capture, self.capture)
                and fnmatch.fnmatchcase(d.field, self.field)
                and (not self.frames or d.frame in self.frames)
                and (not self.tshark or re.fullmatch(self.tshark, d.tshark) is not None))


def known_differences(path: Path = HERE / "known_differences.toml") -> list[Known]:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    out = []
    for k in data.get("difference", []):
        if k.get("kind", "tshark") not in KINDS:
            raise ValueError(f"{path}: kind must be one of {KINDS}: {k}")
        out.append(Known(k["capture"], k["field"], " ".join(k["reason"].split()),
                         k.get("kind", "tshark"), tuple(k.get("frames", ())),
                         k.get("tshark", "")))
    return out


KINDS = ("tshark", "schema", "decoder")


def undocumented(diffs: list[Diff], known: list[Known]) -> list[Diff]:
    return [d for d in diffs if not any(k.covers(d) for k in known)]


def fail_on_undocumented(capture: str, diffs: list[Diff], known: list[Known]) -> None:
    """Fail the test on a frame-count or read difference, or on any difference that
    known_differences.toml does not cover (the first 25 shown)."""
    import pytest

    assert not [d for d in diffs if d.field in (LINES, READ)], diffs[:3]
    bad = undocumented(diffs, known)
    if bad:
        shown = "\n".join(f"  frame {d.frame} {d.field}: tshark {d.tshark!r} tcpsift {d.ours!r}"
                          for d in bad[:25])
        fields = sorted({d.field for d in bad})
        pytest.fail(f"{len(bad)} undocumented difference(s) in {capture} "
                    f"(fields: {', '.join(fields)}):\n{shown}", pytrace=False)


def covering(d: Diff, known: list[Known]) -> Known | None:
    return next((k for k in known if k.covers(d)), None)


def warm_cache(caps: list[str], root: Path | None = None, jobs: int | None = None) -> None:
    """Run tshark for several captures in parallel (threads: the work is in subprocesses)."""
    from concurrent.futures import ThreadPoolExecutor

    root = root or corpus()
    with ThreadPoolExecutor(jobs or os.cpu_count() or 2) as pool:
        list(pool.map(lambda c: tshark_fields(root / c), caps))
