#!/usr/bin/env python3
"""Measure tcpsift's decoding against its peers, in the same run, on the same files.

    python3 benchmarks/bench_decode.py [options] [CAPTURE ...]
    python3 benchmarks/bench_decode.py --synthetic 1000000      # no capture at hand

Every tool runs as a whole process (start-up included), with the capture in
the page cache (read twice before the runs and once more before each run),
round-robin over the tools (tool A, tool B, ..., then again), and each figure is the median of
--repeat runs.  Wall seconds come from the parent's clock around spawn and
wait; peak RSS is the child's maxrss (/usr/bin/time %M).  MB = 10^6
bytes of the capture file; packets/s counts every frame of the file.

Tools (--peers picks a subset, in this order by default):
  cat             cat FILE > /dev/null: the physical limit (page cache read)
  tcpsift-read    python3 -c: import tcpsift, then time tcpsift.read(FILE).packets
                  only (the row's seconds are that in-process time, its peak RSS
                  the process's after it; the import time, the whole process and
                  a second read in the same process are in the note)
  tcpsift-fields  tcpsift fields FILE -e F ... > /dev/null
  tshark-fields   tshark -r FILE -T fields -e F ... > /dev/null   (the same fields)
  tcpsift-info    tcpsift info FILE > /dev/null
  capinfos        capinfos FILE       (computes SHA256/RIPEMD160/SHA1 of the file)
  capinfos-stats  capinfos -c -d -u -z -x -y FILE   (statistics only, no hashes)
  libpcap         libpcap_count FILE  (C loop over pcap_next_ex; from setup_peers.sh)
  dpkt            python dpkt_loop.py FILE  (shared/bench/peers)
  scapy           python scapy_loop.py SLICE, SLICE = the first --scapy-packets
                  packets of FILE (editcap -r), as run_peers.sh does
Once per run, not per file: `tcpsift --help` start-up, next to `python3 -c pass`.

A tool that is not installed (tshark, capinfos, libpcap_count, dpkt or scapy
in the peers' venv, tcpsift itself) gets a "missing" row; a run that fails
gets its exit status and the last line of its stderr in the note.  The peers'
venv and libpcap_count come from shared/bench/setup_peers.sh (run it once;
default location $TSB_ENV or ~/.cache/tsbench); --no-setup-peers keeps this
script from calling it.

With no CAPTURE, --synthetic N (default 1,000,000 packets) writes a synthetic
Ethernet/IPv4/IPv6/TCP pcap with this script's own writer into --workdir and
deletes it afterwards (--keep keeps it).  Real captures give the figures that
count: make them with shared/bench/gen_captures.sh.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# the read itself, run after run, not the Parquet cache (bench_cache.py measures that)
os.environ["TCPSIFT_CACHE"] = "off"

REPO = Path(__file__).resolve().parent.parent
SEED_FIELDS = ("frame.number frame.time_epoch frame.len ip.src ip.dst tcp.srcport tcp.dstport "
               "tcp.seq_raw tcp.ack_raw tcp.flags tcp.len tcp.window_size_value").split()
ALL_TOOLS = ("cat", "tcpsift-read", "tcpsift-fields", "tshark-fields", "tcpsift-info",
             "capinfos", "capinfos-stats", "libpcap", "dpkt", "scapy")


def find_bench_dir() -> Path | None:
    for cand in (os.environ.get("TSB_BENCH"), REPO.parent / "shared" / "bench",
                 Path("/work/shared/bench")):
        if cand and (Path(cand) / "peers" / "dpkt_loop.py").exists():
            return Path(cand)
    return None


# --------------------------------------------------------------------------- synthetic capture
def write_synthetic(path: Path, n_packets: int, seed: int = 1) -> dict:
    """A classic microsecond pcap of n_packets Ethernet frames: TCP over IPv4 (75 %) and
    IPv6 (25 %), 64 connections in flight at a time, each a handshake, data, FIN exchange.
    97 % are one real HTTP/1.1 request and response on port 80 or 8080 (body 100-1400 B for
    two thirds of them, 1.4-16 kB for the rest), 2.5 % iperf3-like bulk streams on port 5201
    (0.5-5 MB of a repeating digit pattern), 0.5 % refused (SYN, RST/ACK on port 81).
    Segments carry at most 1448 bytes; the receiver ACKs every second segment.  Payload
    bytes are real HTTP messages or a digit pattern, never random bytes (they would wake
    tshark's heuristic dissectors); checksums are left 0 (tshark does not check them)."""
    rng = random.Random(seed)
    eth = struct.Struct("!6s6sH")
    ip4 = struct.Struct("!BBHHHBBH4s4s")
    ip6 = struct.Struct("!IHBB16s16s")
    tcp_ts = struct.Struct("!HHIIBBHHHBBBBII")      # 32-byte header: NOP NOP TS
    tcp_syn = struct.Struct("!HHIIBBHHHBBHBBBBIIBBBB")  # 40 bytes: MSS SACKOK TS NOP WS
    rec = struct.Struct("<IIII")
    pattern = b"0123456789" * 160
    body = pattern * 10
    mac_c, mac_s = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")

    def addr4(net: str, host: int) -> bytes:
        a = bytes(int(x) for x in net.split("."))
        return a + bytes([host])

    clients4 = [addr4("192.0.2", 10 + i) for i in range(8)]
    servers4 = [addr4("198.51.100", 10 + i) for i in range(4)]
    clients6 = [bytes.fromhex("20010db8000100000000000000000010")[:15] + bytes([0x10 + i])
                for i in range(4)]
    servers6 = [bytes.fromhex("20010db8000200000000000000000010")[:15] + bytes([0x10 + i])
                for i in range(2)]

    def connection(kind: str, size: int):
        """Yields (from_client, flags, payload bytes) for one connection."""
        yield True, 0x02, b""
        if kind == "refused":
            yield False, 0x14, b""
            return
        yield False, 0x12, b""
        yield True, 0x10, b""
        if kind == "http":      # one real HTTP/1.1 exchange, the server closes
            yield True, 0x18, (b"GET /obj/%d HTTP/1.1\r\nHost: example.test\r\n"
                               b"User-Agent: tcpsift-bench/1\r\nAccept: */*\r\n\r\n" % size)
            stream = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size) + body[:size]
        else:                   # bulk: an iperf3-like stream of a repeating pattern
            yield True, 0x18, pattern[:37]
            stream = None
        sent, segs = 0, 0
        total = len(stream) if stream is not None else size
        while sent < total:
            n = min(1448, total - sent)
            chunk = stream[sent:sent + n] if stream is not None else pattern[sent % 10:sent % 10 + n]
            sent += n
            segs += 1
            yield False, 0x18 if sent == total else 0x10, chunk
            if segs % 2 == 0 or sent == total:
                yield True, 0x10, b""
        yield False, 0x11, b""
        yield True, 0x11, b""
        yield False, 0x10, b""

    t_us = 1_700_000_000 * 1_000_000
    active: list = []
    next_cid = 0
    total_bytes = 24
    counts = {"packets": 0, "ipv6": 0, "connections": 0, "payload_bytes": 0}
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        out = []
        written = 0
        while written < n_packets:
            while len(active) < 64:
                v6 = rng.random() < 0.25
                if v6:
                    c, s = rng.choice(clients6), rng.choice(servers6)
                else:
                    c, s = rng.choice(clients4), rng.choice(servers4)
                r = rng.random()
                if r < 0.005:
                    kind, size, sport = "refused", 0, 81
                elif r < 0.035:
                    kind, size, sport = "bulk", rng.randint(500_000, 5_000_000), 5201
                else:
                    kind, sport = "http", 80 if next_cid % 3 else 8080
                    size = rng.randint(100, 1_400) if r < 0.70 else rng.randint(1_400, 16_000)
                st = {"gen": connection(kind, size), "v6": v6, "c": c, "s": s,
                      "cport": 20000 + next_cid % 40000, "sport": sport,
                      "cseq": rng.getrandbits(32), "sseq": rng.getrandbits(32),
                      "ts": rng.getrandbits(31)}
                active.append(st)
                next_cid += 1
                counts["connections"] += 1
            i = rng.randrange(len(active))
            st = active[i]
            step = next(st["gen"], None)
            if step is None:
                active[i] = active[-1]
                active.pop()
                continue
            from_c, flags, payload = step
            plen = len(payload)
            if from_c:
                src, dst, sp, dp, seq, ack = st["c"], st["s"], st["cport"], st["sport"], st["cseq"], st["sseq"]
            else:
                src, dst, sp, dp, seq, ack = st["s"], st["c"], st["sport"], st["cport"], st["sseq"], st["cseq"]
            ackf = flags & 0x10
            tsv = (st["ts"] + written) & 0xFFFFFFFF
            if flags & 0x02:
                tcp = tcp_syn.pack(sp, dp, seq, ack if ackf else 0, 10 << 4, flags, 64240, 0, 0,
                                   2, 4, 1460, 4, 2, 8, 10, tsv, tsv - 7 if ackf else 0,
                                   1, 3, 3, 10)
            else:
                tcp = tcp_ts.pack(sp, dp, seq, ack, 8 << 4, flags, 501, 0, 0, 1, 1, 8, 10,
                                  tsv, tsv - 3)
            if st["v6"]:
                ip = ip6.pack(0x60000000, len(tcp) + plen, 6, 64, src, dst)
                l2 = eth.pack(mac_s if from_c else mac_c, mac_c if from_c else mac_s, 0x86DD)
                counts["ipv6"] += 1
            else:
                ip = ip4.pack(0x45, 0, 20 + len(tcp) + plen, written & 0xFFFF, 0x4000, 64, 6, 0,
                              src, dst)
                l2 = eth.pack(mac_s if from_c else mac_c, mac_c if from_c else mac_s, 0x0800)
            frame_len = len(l2) + len(ip) + len(tcp) + plen
            t_us += rng.choice((3, 5, 8, 12, 20, 45))
            out.append(rec.pack(t_us // 1_000_000, t_us % 1_000_000, frame_len, frame_len))
            out.append(l2)
            out.append(ip)
            out.append(tcp)
            out.append(payload)
            total_bytes += 16 + frame_len
            seq_adv = plen + (1 if flags & 0x03 else 0)
            if from_c:
                st["cseq"] = (st["cseq"] + seq_adv) & 0xFFFFFFFF
            else:
                st["sseq"] = (st["sseq"] + seq_adv) & 0xFFFFFFFF
            counts["payload_bytes"] += plen
            written += 1
            if len(out) >= 50_000:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    counts["packets"] = written
    counts["bytes"] = total_bytes
    return counts


# --------------------------------------------------------------------------- running things
@dataclass
class Run:
    seconds: float
    rss_kb: int
    ok: bool
    status: str = "ok"
    inner: dict = field(default_factory=dict)


TIME = shutil.which("time", path="/usr/bin:/bin")


def run_once(cmd: list[str], timeout: float, parse_stdout=None) -> Run:
    """Spawn cmd (stdout to /dev/null unless parse_stdout) and wait for it: wall time from
    this process's clock, peak RSS from /usr/bin/time's %M (the child's own maxrss; wait4's
    ru_maxrss would count the forked copy of this Python process instead)."""
    stdout = subprocess.PIPE if parse_stdout else subprocess.DEVNULL
    errf = tempfile.TemporaryFile()
    rssf = tempfile.NamedTemporaryFile(prefix="tcpsift-bench-rss.", delete=False)
    rssf.close()
    full = [TIME, "-f", "%M", "-o", rssf.name, *cmd] if TIME else cmd
    t0 = time.perf_counter()
    try:
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=stdout, stderr=errf,
                             start_new_session=True)
    except OSError as e:
        os.unlink(rssf.name)
        return Run(0.0, 0, False, f"cannot start: {e}")
    timer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
    timer.start()
    out = p.stdout.read() if parse_stdout else b""
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    timer.cancel()
    p.returncode = rc = os.waitstatus_to_exitcode(status)
    rss = ru.ru_maxrss
    try:
        lines = Path(rssf.name).read_text().split()
        if TIME and lines and lines[-1].isdigit():
            rss = int(lines[-1])
    finally:
        os.unlink(rssf.name)
    if rc != 0:
        errf.seek(0)
        lines = [ln for ln in errf.read().decode(errors="replace").splitlines()
                 if ln.strip() and "Running as user" not in ln
                 and not ln.startswith("Command exited with non-zero status")]
        why = "timeout" if t1 - t0 >= timeout else f"rc={rc}"
        return Run(t1 - t0, rss, False, f"{why}: {lines[-1][:120] if lines else ''}")
    r = Run(t1 - t0, rss, True)
    if parse_stdout:
        try:
            r.inner = parse_stdout(out.decode())
        except Exception as e:  # noqa: BLE001 - report, do not crash
            return Run(t1 - t0, rss, False, f"bad output: {e}")
    return r


# The second read in the same process (the first table freed) finds its memory mapped
# already: the difference is what the first write to the table's fresh pages costs.
READ_SNIPPET = r"""
import gc, resource, sys, time
t0 = time.perf_counter()
import polars
from tcpsift import read    # the package loads its modules on first use: import them here
t1 = time.perf_counter()
cap = read(sys.argv[1])
n = cap.packets.height
t2 = time.perf_counter()
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
del cap
gc.collect()
t3 = time.perf_counter()
read(sys.argv[1]).packets.height
t4 = time.perf_counter()
print(f"{t1 - t0:.6f} {t2 - t1:.6f} {n} {t4 - t3:.6f} {peak_kb}")
"""


def parse_read(text: str) -> dict:
    imp, dec, n, again, peak_kb = text.split()
    return {"import_s": float(imp), "decode_s": float(dec), "rows": int(n),
            "again_s": float(again), "peak_kb": int(peak_kb)}


@dataclass
class Tool:
    name: str
    cmd: list[str] | None           # None: missing
    why_missing: str = ""
    parse: object = None
    file_kind: str = "full"         # "full" or "slice" (scapy)
    note: str = ""


class Env:
    def __init__(self, args):
        self.args = args
        self.bench = find_bench_dir() if not args.bench_dir else Path(args.bench_dir)
        self.tsb_env = Path(args.tsb_env or os.environ.get("TSB_ENV")
                            or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tsbench")
        if self.bench and not args.no_setup_peers and (self.bench / "setup_peers.sh").exists():
            r = subprocess.run(["bash", str(self.bench / "setup_peers.sh")], capture_output=True,
                               text=True, env={**os.environ, "TSB_ENV": str(self.tsb_env)})
            if r.returncode != 0:
                print(f"# setup_peers.sh failed ({r.stderr.strip().splitlines()[-1:]}); "
                      "using what is there", file=sys.stderr)
        self.peer_py = self.tsb_env / "venv" / "bin" / "python"
        self.tcpsift = self._tcpsift_cmd()
        self.py = args.python or sys.executable

    def _tcpsift_cmd(self) -> list[str] | None:
        # the console script next to this interpreter first: a pyenv shim on PATH would add
        # its own start-up (a bash script and `pyenv exec`) to every run
        exe = Path(sys.executable).parent / "tcpsift"
        if exe.exists():
            return [str(exe)]
        exe = shutil.which("tcpsift")
        if exe:
            return [exe]
        r = subprocess.run([sys.executable, "-c", "import tcpsift.cli.main"], capture_output=True)
        return [sys.executable, "-m", "tcpsift"] if r.returncode == 0 else None

    def peer_module_ok(self, module: str) -> bool:
        if not self.peer_py.exists():
            return False
        return subprocess.run([str(self.peer_py), "-c", f"import {module}"],
                              capture_output=True).returncode == 0

    def tools(self, names: list[str], fields: list[str]) -> list[Tool]:
        out = []
        efields = [a for f in fields for a in ("-e", f)]
        for name in names:
            t = Tool(name, None)
            if name == "cat":
                t.cmd = ["cat", "{f}"]
                t.note = "physical limit (page cache read)"
            elif name in ("tcpsift-read", "tcpsift-fields", "tcpsift-info"):
                if self.tcpsift is None:
                    t.why_missing = "tcpsift not installed (pip install -e .)"
                elif name == "tcpsift-read":
                    t.cmd = [self.py, "-c", READ_SNIPPET, "{f}"]
                    t.parse = parse_read
                elif name == "tcpsift-fields":
                    t.cmd = [*self.tcpsift, "fields", "{f}", *efields]
                else:
                    t.cmd = [*self.tcpsift, "info", "{f}"]
            elif name == "tshark-fields":
                if shutil.which("tshark"):
                    t.cmd = ["tshark", "-r", "{f}", "-T", "fields", *efields]
                else:
                    t.why_missing = "tshark not installed (apt-get install tshark)"
            elif name in ("capinfos", "capinfos-stats"):
                if shutil.which("capinfos"):
                    t.cmd = ["capinfos", "{f}"] if name == "capinfos" else \
                        ["capinfos", "-c", "-d", "-u", "-z", "-x", "-y", "{f}"]
                    t.note = "SHA256+RIPEMD160+SHA1 of the file" if name == "capinfos" else \
                        "statistics only, no hashes"
                else:
                    t.why_missing = "capinfos not installed (apt-get install wireshark-common)"
            elif name == "libpcap":
                exe = self.tsb_env / "libpcap_count"
                if exe.exists():
                    t.cmd = [str(exe), "{f}"]
                else:
                    t.why_missing = f"{exe} missing (shared/bench/setup_peers.sh --apt)"
            elif name in ("dpkt", "scapy"):
                script = self.bench / "peers" / f"{name}_loop.py" if self.bench else None
                if script is None or not script.exists():
                    t.why_missing = "shared/bench/peers not found (--bench-dir)"
                elif not self.peer_module_ok(name):
                    t.why_missing = f"{name} not in {self.peer_py} (shared/bench/setup_peers.sh)"
                else:
                    t.cmd = [str(self.peer_py), str(script), "{f}"]
                    if name == "scapy":
                        t.file_kind = "slice"
            else:
                raise SystemExit(f"unknown tool: {name} (known: {', '.join(ALL_TOOLS)})")
            out.append(t)
        return out


def count_packets(path: Path) -> int | None:
    if shutil.which("capinfos"):
        r = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.startswith("Number of packets"):
                return int(line.split(":", 1)[1])
    # classic pcap without capinfos: walk the record headers
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24 or head[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1",
                                               b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            return None
        endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        n = 0
        while True:
            h = f.read(16)
            if len(h) < 16:
                return n
            f.seek(struct.unpack(endian + "IIII", h)[2], 1)
            n += 1


def make_slice(path: Path, n: int, workdir: Path) -> Path | None:
    out = workdir / f"first-{n}-{path.name}"
    if shutil.which("editcap"):
        r = subprocess.run(["editcap", "-r", str(path), str(out), f"1-{n}"], capture_output=True)
        return out if r.returncode == 0 else None
    with open(path, "rb") as f, open(out, "wb") as g:   # classic pcap only
        head = f.read(24)
        if head[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            return None
        g.write(head)
        for _ in range(n):
            h = f.read(16)
            if len(h) < 16:
                break
            g.write(h + f.read(struct.unpack("<IIII", h)[2]))
    return out


def warm(path: Path, times: int = 2) -> None:
    for _ in range(times):
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 22):
                pass


def median(xs):
    return statistics.median(xs) if xs else None


def measure(tools: list[Tool], files: dict[str, Path], repeat: int, timeout: float) -> dict:
    runs: dict[str, list[Run]] = {t.name: [] for t in tools}
    for _ in range(repeat):
        for t in tools:
            if t.cmd is None:
                continue
            f = files.get(t.file_kind)
            if f is None:
                continue
            cmd = [str(f) if a == "{f}" else a for a in t.cmd]
            # read it again just before each run: this VM trims its page cache (a few MB
            # every 10 s while idle, more while tshark runs), and a run that meets pages
            # gone reads them from disk (a 0.5 s run then took 1.1 s)
            warm(f, times=1)
            runs[t.name].append(run_once(cmd, timeout, t.parse))
    return runs


def summarize(t: Tool, rs: list[Run], packets: int, nbytes: int) -> dict:
    row = {"tool": t.name, "packets": packets, "bytes": nbytes, "seconds": None,
           "rss_mb": None, "note": t.note, "status": "ok", "runs": [r.seconds for r in rs]}
    if t.cmd is None:
        row.update(status="missing", note=t.why_missing)
        return row
    good = [r for r in rs if r.ok]
    bad = [r.status for r in rs if not r.ok]
    if bad:
        row["note"] = "; ".join(filter(None, [row["note"], f"{len(bad)}/{len(rs)} failed: {bad[0]}"]))
    if not good:
        row["status"] = "failed" if rs else "skipped"
        return row
    secs = median([r.seconds for r in good])
    if t.name == "tcpsift-read":
        whole = secs
        secs = median([r.inner["decode_s"] for r in good])
        imp = median([r.inner["import_s"] for r in good])
        rows = good[0].inner["rows"]
        runs = " ".join(f"{r.inner['decode_s']:.2f}" for r in good)
        again = median([r.inner["again_s"] for r in good])
        row["note"] = (f"tcpsift.read(FILE).packets in process (runs: {runs}); a second "
                       f"read in the same process {again:.3f} s ({packets / again:,.0f} "
                       f"packets/s); import {imp:.2f} s, whole process {whole:.2f} s; "
                       f"{rows} rows")
        if rows != packets:
            row["note"] += f" (MISMATCH: file has {packets} packets)"
    row["seconds"] = secs
    row["rss_mb"] = median([r.inner["peak_kb"] if t.name == "tcpsift-read" else r.rss_kb
                            for r in good]) / 1024
    row["spread"] = (max(r.seconds for r in good) - min(r.seconds for r in good)) / min(
        r.seconds for r in good) if len(good) > 1 and min(r.seconds for r in good) > 0 else 0.0
    return row


def fmt_row(r: dict) -> str:
    if r["seconds"] is None:
        return f"| {r['tool']} | {r['packets']} | - | - | - | - | {r['status']}: {r['note']} |"
    s = r["seconds"]
    return (f"| {r['tool']} | {r['packets']} | {s:.3f} | {r['packets'] / s:,.0f} | "
            f"{r['bytes'] / 1e6 / s:,.1f} | {r['rss_mb']:.0f} | {r['note']} |")


def ratios(rows: dict) -> list[str]:
    def pps(name):
        r = rows.get(name)
        return r["packets"] / r["seconds"] if r and r["seconds"] else None

    def mbs(name):
        r = rows.get(name)
        return r["bytes"] / 1e6 / r["seconds"] if r and r["seconds"] else None

    out = []

    def faster(a, b, label, rate=pps):
        ra, rb = rate(a), rate(b)
        if ra and rb:
            x = ra / rb
            verdict = f"{x:.1f}x" if x >= 1 else f"{x:.2f}x, i.e. {1 / x:.1f}x slower"
            unit = "packets/s" if rate is pps else "MB/s"
            out.append(f"- {label}: **{verdict}** ({a} {ra:,.0f} vs {b} {rb:,.0f} {unit})")
        else:
            missing = [n for n, v in ((a, ra), (b, rb)) if not v]
            out.append(f"- {label}: n/a ({', '.join(missing)} not measured)")

    faster("tcpsift-fields", "tshark-fields", "tcpsift fields vs tshark -T fields (same fields), speed")
    a, b = rows.get("tcpsift-fields"), rows.get("tshark-fields")
    if a and b and a["rss_mb"] and b["rss_mb"]:
        out.append(f"- tcpsift fields vs tshark, peak RSS: {a['rss_mb']:.0f} MB vs "
                   f"{b['rss_mb']:.0f} MB ({a['rss_mb'] / b['rss_mb']:.2f}x)")
    faster("tcpsift-read", "dpkt", "tcpsift.read (in process) vs the dpkt loop")
    faster("tcpsift-fields", "dpkt", "tcpsift fields (whole process, text out) vs the dpkt loop")
    faster("tcpsift-read", "scapy", "tcpsift.read vs the scapy loop (scapy on its slice), packets/s")
    faster("tcpsift-info", "capinfos", "tcpsift info vs capinfos (with hashes)")
    faster("tcpsift-info", "capinfos-stats", "tcpsift info vs capinfos -c -d -u -z -x -y (no hashes)")
    for name in ("tcpsift-read", "tcpsift-fields", "tcpsift-info"):
        m, c = mbs(name), mbs("cat")
        if m and c:
            out.append(f"- {name} MB/s as % of cat: **{100 * m / c:.1f} %** "
                       f"({m:,.1f} of {c:,.1f} MB/s)")
        m, c = pps(name), pps("libpcap")
        if m and c and name == "tcpsift-read":
            out.append(f"- {name} packets/s as % of libpcap_count: **{100 * m / c:.1f} %**")
    if pps("tcpsift-read"):
        out.append(f"- tcpsift.read: **{pps('tcpsift-read'):,.0f} packets/s**, "
                   f"{mbs('tcpsift-read'):,.1f} MB/s")
    return out


def startup(env: Env, repeat: int, timeout: float) -> list[str]:
    cases = [("python3 -c pass", [env.py, "-c", "pass"])]
    if env.tcpsift:
        cases.append(("tcpsift --help", [*env.tcpsift, "--help"]))
        cases.append(("python3 -c 'import tcpsift, polars'",
                      [env.py, "-c", "import tcpsift, polars"]))
    if shutil.which("tshark"):
        cases.append(("tshark --version", ["tshark", "--version"]))
    res = {name: [] for name, _ in cases}
    for _ in range(repeat):
        for name, cmd in cases:
            res[name].append(run_once(cmd, timeout))
    lines = ["| command | seconds | peak RSS MB | note |", "|---|---:|---:|---|"]
    for name, _ in cases:
        good = [r for r in res[name] if r.ok]
        if not good:
            lines.append(f"| `{name}` | - | - | failed: {res[name][0].status} |")
            continue
        lines.append(f"| `{name}` | {median([r.seconds for r in good]):.3f} | "
                     f"{median([r.rss_kb for r in good]) / 1024:.0f} | |")
    if not env.tcpsift:
        lines.append("| `tcpsift --help` | - | - | missing: tcpsift not installed |")
    return lines


def machine_line() -> str:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in open("/proc/meminfo")
                   if line.startswith("MemTotal")) / 1048576
    except OSError:
        mem = 0
    return f"{os.cpu_count()} CPUs ({model}), {mem:.1f} GiB RAM, {platform.platform()}"


FIRST_TOUCH_SNIPPET = r"""
import mmap, time
size = 256 << 20
buf = mmap.mmap(-1, size)
view = memoryview(buf)
t0 = time.perf_counter()
for offset in range(0, size, 1 << 20):       # one byte per 4 KiB page, 256 at a time
    view[offset:offset + (1 << 20):4096] = bytes(256)
print(time.perf_counter() - t0)
"""


def first_touch_us() -> float:
    """Microseconds per 4 KiB page of the first write to fresh anonymous memory, in a
    new process: what every page of a table costs before anything is written in it (on
    a VM with lazily backed guest memory, several times what it costs on bare metal, and
    varying from run to run)."""
    try:
        r = subprocess.run([sys.executable, "-c", FIRST_TOUCH_SNIPPET], capture_output=True,
                           text=True, timeout=60)
        return float(r.stdout) / ((256 << 20) // 4096) * 1e6
    except (OSError, ValueError, subprocess.SubprocessError):
        return -1.0


def cpu_busy() -> float:
    def snap():
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(v) - v[3] - v[4], v[3] + v[4]
    try:
        b0, i0 = snap()
        time.sleep(1)
        b1, i1 = snap()
        return 100.0 * (b1 - b0) / max(1, (b1 - b0) + (i1 - i0))
    except OSError:
        return -1


def versions(env: Env) -> str:
    parts = []
    if shutil.which("tshark"):
        parts.append(subprocess.run(["tshark", "--version"], capture_output=True,
                                    text=True).stdout.split("\n", 1)[0].replace("TShark (Wireshark) ", "tshark "))
    r = subprocess.run([env.py, "-c", "import tcpsift, polars, sys, importlib.metadata as m; "
                        "print('tcpsift', m.version('tcpsift'), 'polars', polars.__version__, "
                        "'python', sys.version.split()[0])"], capture_output=True, text=True)
    head = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip()
    if head:
        parts.append(f"tcpsift tree {head}")
    parts.append(r.stdout.strip() or "tcpsift not importable")
    if env.peer_py.exists():
        r = subprocess.run([str(env.peer_py), "-c", "import dpkt, scapy; print('dpkt', "
                            "dpkt.__version__, 'scapy', scapy.VERSION)"], capture_output=True,
                           text=True)
        parts.append(r.stdout.strip() or "dpkt/scapy missing")
    return "; ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("captures", nargs="*", type=Path)
    ap.add_argument("--synthetic", type=int, metavar="N", default=None,
                    help="also (or, with no CAPTURE, instead) measure a synthetic capture of N "
                         "packets (default without CAPTURE: 1000000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool (median; default 3)")
    ap.add_argument("--peers", default=",".join(ALL_TOOLS),
                    help="comma-separated tools to run (default: all): " + ",".join(ALL_TOOLS))
    ap.add_argument("--fields", default=" ".join(SEED_FIELDS),
                    help="space-separated fields for tcpsift fields / tshark -T fields")
    ap.add_argument("--scapy-packets", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the synthetic capture and slices go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work dir (synthetic capture, scapy slice)")
    ap.add_argument("--no-startup", action="store_true", help="skip the start-up table")
    ap.add_argument("--bench-dir", help="shared/bench (default: ../shared/bench beside the repo)")
    ap.add_argument("--tsb-env", help="the peers' env from setup_peers.sh (default: $TSB_ENV "
                                      "or ~/.cache/tsbench)")
    ap.add_argument("--no-setup-peers", action="store_true",
                    help="do not call shared/bench/setup_peers.sh")
    ap.add_argument("--python", help="python for the tcpsift-read row (default: this one)")
    ap.add_argument("--json", type=Path, help="also write every row (and every run) as JSON")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    fields = args.fields.split()
    work = Path(tempfile.mkdtemp(prefix="tcpsift-bench.", dir=args.workdir))
    env = Env(args)
    report: dict = {"machine": machine_line(), "versions": versions(env), "captures": []}
    try:
        caps = list(args.captures)
        if args.synthetic or not caps:
            n = args.synthetic or 1_000_000
            path = work / f"synthetic-{n}.pcap"
            t0 = time.perf_counter()
            info = write_synthetic(path, n)
            print(f"# synthetic capture {path}: {info['packets']} packets, "
                  f"{info['bytes'] / 1e6:.1f} MB, {info['connections']} connections, "
                  f"{100 * info['ipv6'] / max(1, info['packets']):.0f} % IPv6, "
                  f"written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            caps.append(path)
        tools = env.tools(names, fields)
        busy = cpu_busy()
        print(f"# bench_decode.py: {report['machine']}; CPUs {busy:.0f}% busy before the runs")
        print(f"# versions: {report['versions']}")
        print(f"# method: whole process, file in page cache, median of {args.repeat} runs "
              "(round-robin over the tools), wall seconds; MB = 10^6 bytes of the file")
        print(f"# fields: {' '.join(fields)}")
        touches = sorted(first_touch_us() for _ in range(3))
        print(f"# memory: the first write to a fresh 4 KiB page costs "
              f"{', '.join(f'{t:.2f}' for t in touches)} us (three new processes; "
              f"tcpsift.read's table is ~110 bytes a packet, each of its pages written once)")
        if busy > 10:
            print(f"# WARNING: CPUs {busy:.0f}% busy; figures will be noisy", file=sys.stderr)
        print()
        for cap in caps:
            if not cap.is_file():
                print(f"cannot read {cap}", file=sys.stderr)
                return 2
            packets = count_packets(cap)
            if packets is None:
                print(f"{cap}: not a capture this script can count (install capinfos)",
                      file=sys.stderr)
                return 2
            nbytes = cap.stat().st_size
            files = {"full": cap}
            spackets, sbytes = packets, nbytes
            if "scapy" in names:
                if packets > args.scapy_packets > 0:
                    sl = make_slice(cap, args.scapy_packets, work)
                    if sl:
                        files["slice"] = sl
                        spackets, sbytes = count_packets(sl), sl.stat().st_size
                else:
                    files["slice"] = cap
            for f in set(files.values()):
                warm(f)
            runs = measure(tools, files, args.repeat, args.timeout)
            rows = {}
            for t in tools:
                if t.file_kind == "slice":
                    row = summarize(t, runs[t.name], spackets, sbytes)
                    if t.cmd and "slice" not in files:
                        row.update(status="skipped", note="could not cut the slice (editcap)")
                    elif t.cmd and files.get("slice") != cap:
                        row["note"] = ("; ".join(filter(None, [f"first {spackets} packets only "
                                                               "(editcap -r)", row["note"]])))
                else:
                    row = summarize(t, runs[t.name], packets, nbytes)
                rows[t.name] = row
            print(f"## {cap.name}: {packets:,} packets, {nbytes / 1e6:,.1f} MB")
            print()
            print("| tool | packets | seconds | packets/s | MB/s | peak RSS MB | note |")
            print("|---|---:|---:|---:|---:|---:|---|")
            for t in tools:
                print(fmt_row(rows[t.name]))
            print()
            print("Ratios (higher = tcpsift faster):")
            print()
            for line in ratios(rows):
                print(line)
            spreads = [f"{r['tool']} {100 * r['spread']:.0f} %" for r in rows.values()
                       if r.get("spread") is not None and r["seconds"]]
            if spreads:
                print()
                print("Run-to-run spread (max-min over min): " + ", ".join(spreads))
            print()
            report["captures"].append({"file": str(cap), "packets": packets, "bytes": nbytes,
                                       "rows": list(rows.values())})
            sys.stdout.flush()
        if not args.no_startup:
            print("## start-up")
            print()
            for line in startup(env, max(args.repeat, 5), args.timeout):
                print(line)
            print()
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    finally:
        if args.keep:
            print(f"# kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
