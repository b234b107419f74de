#!/usr/bin/env python3
"""Measure tcpsift's TCP analysis: against tshark, and against tcpsift's own decoding.

    python3 benchmarks/bench_tcp.py [options] [CAPTURE ...]

Default captures: {bulk,many,headers}.pcap in /tmp/tsbench-full or /tmp/tsbench when present (made by
shared/bench/gen_captures.sh; never commit captures).

Two tables:

1. Whole process, start-up included, output to /dev/null, the capture in the page cache
   (read again before each run):
     tcpsift fields FILE -e F ...          (F = the TCP analysis fields, --fields)
     tshark -r FILE -T fields -e F ...     (the same fields; tshark 4.0 default preferences)
   Each figure is the median of --repeat runs, the tools run round-robin. With --check
   (default), one more run of each is hashed: "same" says whether the two outputs are
   byte-identical.
2. In process: tcpsift.read(FILE) (decode: the packet and layer tables) against
   Capture.tcp (the TCP analysis on top of it); median of --repeat, and the analysis
   time as a percentage of the decode time (target: at most 50 %).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# where shared/bench/gen_captures.sh's captures are looked for, in this order
SEARCHED = (Path("/tmp/tsbench-full"), Path("/tmp/tsbench"))
DEFAULT_FILES = ("bulk.pcap", "many.pcap", "headers.pcap")
TCP_FIELDS = ("frame.number tcp.stream tcp.seq tcp.ack tcp.nxtseq tcp.len tcp.window_size "
              "tcp.time_relative tcp.analysis.retransmission tcp.analysis.fast_retransmission "
              "tcp.analysis.out_of_order tcp.analysis.lost_segment tcp.analysis.duplicate_ack "
              "tcp.analysis.zero_window tcp.analysis.acks_frame tcp.analysis.ack_rtt "
              "tcp.analysis.initial_rtt tcp.analysis.bytes_in_flight").split()


# The benchmarks measure tcpsift reading and analysing captures, run after run: not the
# Parquet cache, which would serve every run but the first (bench_cache.py measures it,
# with a folder of its own). Every benchmark script imports this module.
os.environ["TCPSIFT_CACHE"] = "off"


def compile_package() -> None:
    """tcpsift's modules compiled to bytecode, as pip compiles an installed package: with
    PYTHONDONTWRITEBYTECODE set (some shells set it), every run of an editable install
    would compile them again, 0.03-0.05 s that no installed copy pays. (Only written where
    missing or stale; __pycache__ is not committed.)"""
    import compileall

    package = Path(__file__).resolve().parents[1] / "src" / "tcpsift"
    if package.is_dir():
        compileall.compile_dir(str(package), quiet=1)


def tcpsift_cmd() -> list[str]:
    compile_package()
    # the console script next to this interpreter first: a pyenv shim on PATH would add
    # its own start-up (a bash script and `pyenv exec`) to every run
    exe = Path(sys.executable).parent / "tcpsift"
    if exe.exists():
        return [str(exe)]
    exe = shutil.which("tcpsift")
    return [exe] if exe else [sys.executable, "-m", "tcpsift"]


def captures_or_default(given: list[Path], names) -> list[Path]:
    """The captures given, else each of `names` from the first folder of SEARCHED that
    has it; none found: a line on stderr and []."""
    if given:
        return given
    found = [next(d / n for d in SEARCHED if (d / n).exists())
             for n in names if any((d / n).exists() for d in SEARCHED)]
    if not found:
        print(f"no capture given and no {' or '.join(names)} in "
              f"{' or '.join(map(str, SEARCHED))} (make them with "
              "shared/bench/gen_captures.sh)", file=sys.stderr)
    return found


def run_wall(cmd: list[str], timeout: float) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   timeout=timeout, env={**os.environ, "LC_ALL": "C"})
    return time.perf_counter() - t


def run_hash(cmd: list[str], timeout: float) -> str:
    h = hashlib.sha256()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env={**os.environ, "LC_ALL": "C"}) as p:
        for block in iter(lambda: p.stdout.read(1 << 20), b""):
            h.update(block)
        p.wait(timeout=timeout)
    return h.hexdigest()


def warm(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def whole_process(path: Path, fields: list[str], repeat: int, timeout: float,
                  check: bool, tshark: bool = True) -> dict:
    ef = [x for f in fields for x in ("-e", f)]
    tools = {"tcpsift fields": tcpsift_cmd() + ["fields", str(path), *ef]}
    if tshark and shutil.which("tshark"):
        tools["tshark -T fields"] = ["tshark", "-r", str(path), "-T", "fields", *ef]
    times = {k: [] for k in tools}
    for _ in range(repeat):
        for k, cmd in tools.items():
            warm(path)      # (this VM trims its page cache: see bench_decode.measure)
            times[k].append(run_wall(cmd, timeout))
    out = {k: statistics.median(v) for k, v in times.items()}
    out["runs"] = times
    if check and len(tools) == 2:
        hashes = {k: run_hash(cmd, timeout) for k, cmd in tools.items()}
        out["same"] = len(set(hashes.values())) == 1
    return out


def in_process(path: Path, repeat: int) -> dict:
    """Each repeat in a fresh interpreter, so that neither run warms the other's caches."""
    code = (
        "import sys, time, json\n"
        "import tcpsift, tcpsift.tcp\n"
        "t = time.perf_counter(); cap = tcpsift.read(sys.argv[1]); d = time.perf_counter() - t\n"
        "t = time.perf_counter(); tcp = cap.tcp; a = time.perf_counter() - t\n"
        "print(json.dumps({'decode': d, 'analysis': a, 'frames': cap.packets.height,\n"
        "                  'streams': int((tcp['stream'].max() or -1) + 1)}))\n")
    runs = []
    for _ in range(repeat):
        p = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                           text=True, check=True)
        runs.append(json.loads(p.stdout))
    return {"decode": statistics.median(r["decode"] for r in runs),
            "analysis": statistics.median(r["analysis"] for r in runs),
            "frames": runs[0]["frames"], "streams": runs[0]["streams"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fields", default=" ".join(TCP_FIELDS))
    ap.add_argument("--no-check", action="store_true",
                    help="skip the extra runs that compare the two outputs")
    ap.add_argument("--no-tshark", action="store_true", help="do not run tshark")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    caps = captures_or_default(args.captures, DEFAULT_FILES)
    if not caps:
        return 2
    fields = args.fields.split()
    result = {}
    print(f"fields ({len(fields)}): {' '.join(fields)}")
    print(f"{'capture':<16} {'frames':>9} {'streams':>8} {'decode s':>9} {'analysis s':>10} "
          f"{'analysis/decode':>15}", end="")
    print(f" {'tcpsift fields s':>16} {'tshark s':>9} {'speed-up':>8} {'same':>5}")
    for path in caps:
        warm(path)
        ip = in_process(path, args.repeat)
        row = {"in_process": ip}
        line = (f"{path.name:<16} {ip['frames']:>9} {ip['streams']:>8} {ip['decode']:>9.3f} "
                f"{ip['analysis']:>10.3f} {ip['analysis'] / ip['decode']:>14.0%}")
        wp = whole_process(path, fields, args.repeat, args.timeout, not args.no_check,
                           not args.no_tshark)
        row["whole_process"] = wp
        ts = wp.get("tshark -T fields")
        line += f" {wp['tcpsift fields']:>16.2f}"
        line += (f" {ts:>9.2f} {ts / wp['tcpsift fields']:>7.1f}x" if ts else
                 f" {'-':>9} {'':>8}")
        line += f" {('yes' if wp['same'] else 'NO') if 'same' in wp else '':>5}"
        print(line, flush=True)
        for k, v in wp["runs"].items():
            print(f"{'':<16} {k} runs: {' '.join(f'{x:.2f}' for x in v)}", flush=True)
        result[str(path)] = row
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
