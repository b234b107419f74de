#!/usr/bin/env python3
"""Measure `tcpsift conns` against `tcptrace -n -l -r` (the classic per-connection report).

    python3 benchmarks/bench_conns.py [--repeat N] [CAPTURE ...]

Default capture: many.pcap in /tmp/tsbench-full or /tmp/tsbench (gen_captures.sh makes it:
1 M packets, 65k connections; never commit captures).

Whole process, start-up included, output to /dev/null, the capture in the page cache (read
again before each run), the tools run round-robin; each figure is the median of --repeat
runs, with the peak RSS of that tool's runs (ru_maxrss of the child). The issue's target:
tcpsift at least 3x faster than tcptrace, in no more memory. Also prints how many
connections each tool reports (tcptrace counts every 4-tuple it saw, tcpsift every
tcp.stream, so they may differ on captures with port reuse).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tcp import captures_or_default, tcpsift_cmd, warm  # noqa: E402


def run_measured(cmd: list[str], timeout: float) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of one run, output discarded."""
    t = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "LC_ALL": "C"}) as p:
        _, _, usage = os.wait4(p.pid, 0)
        p.returncode = 0
    wall = time.perf_counter() - t
    if wall > timeout:
        raise TimeoutError(cmd)
    return wall, usage.ru_maxrss // 1024


def round_robin(path: Path, tools: dict, repeat: int, timeout: float) -> dict[str, float]:
    """Each tool (name -> argv) run `repeat` times, round-robin, the capture read again
    before each run; prints a line per tool (median, peak RSS, every run) and returns
    the medians."""
    runs: dict[str, list] = {k: [] for k in tools}
    for _ in range(repeat):
        for name, argv in tools.items():
            warm(path)
            runs[name].append(run_measured(argv, timeout))
    medians = {}
    for name, measured in runs.items():
        medians[name] = statistics.median(w for w, _ in measured)
        peak = max(m for _, m in measured)
        print(f"{path.name:<14} {name:<16} {medians[name]:>9.2f} {peak:>8}  "
              + " ".join(f"{w:.2f}" for w, _ in measured), flush=True)
    return medians


def connection_counts(path: Path) -> dict:
    tcptrace = subprocess.run(["tcptrace", "-n", "-l", "-r", str(path)], capture_output=True,
                              text=True, check=False).stdout
    found = re.search(r"(\d+) TCP connections traced", tcptrace)
    conns = subprocess.run(tcpsift_cmd() + ["conns", str(path), "--format", "csv"],
                           capture_output=True, text=True, check=False).stdout
    return {"tcptrace": int(found.group(1)) if found else None,
            "tcpsift": max(conns.count("\n") - 1, 0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    caps = captures_or_default(args.captures, ["many.pcap"])
    if not caps:
        return 2
    tools = {"tcpsift conns": lambda p: tcpsift_cmd() + ["conns", str(p), "--format", "csv"]}
    if shutil.which("tcptrace"):
        tools["tcptrace -n -l"] = lambda p: ["tcptrace", "-n", "-l", "-r", str(p)]
    print(f"{'capture':<14} {'tool':<16} {'median s':>9} {'peak MB':>8}  runs")
    for path in caps:
        medians = round_robin(path, {k: cmd(path) for k, cmd in tools.items()}, args.repeat,
                              args.timeout)
        if len(medians) == 2:
            print(f"{path.name:<14} speed-up over tcptrace: "
                  f"{medians['tcptrace -n -l'] / medians['tcpsift conns']:.2f}x")
        print(f"{path.name:<14} connections: {connection_counts(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
