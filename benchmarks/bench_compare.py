#!/usr/bin/env python3
"""Measure `tcpsift.compare` against `tcpsift.read` of the same two captures.

    python3 benchmarks/bench_compare.py [--repeat N] [A [B]]

Default: A = /tmp/tsbench/many.pcap (shared/bench/gen_captures.sh: 1 M packets, 65k
connections), B = A through editcap: 3 frames in every 4999 deleted (editcap takes at
most 512 selections) and the times shifted by +3600.25 s (made once, beside A, as
A-b.pcap; never commit captures).

Each run is a fresh process (nothing cached between them), the files in the page cache;
the two kinds of run alternate, each figure is the median of --repeat runs with its peak
RSS, and the ratio is given of the medians and of the fastest runs, and of the median CPU
times (user + system: on a machine shared with other jobs, the least disturbed figure). `read` is
`tcpsift.read([A, B], mode="separate")` (every column, what the Capture of each file
costs); `compare` is `tcpsift.compare(A, B)` end to end (it reads the columns it needs,
matches, fits the clock, follows every packet, judges). The issue's target: compare in
at most 3x the time of read (of decoding: both kinds run with TCPSIFT_CACHE=off, the
Parquet cache of decoded tables left out).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tcp import compile_package  # noqa: E402

DEFAULT_A = Path("/tmp/tsbench/many.pcap")
DELETE_EVERY = 4999
DELETE_RUN = 3
SHIFT_S = "3600.25"

RUNS = {
    "read": "import tcpsift, sys; tcpsift.read(sys.argv[1:3], mode='separate')",
    "compare": "import tcpsift, sys; r = tcpsift.compare(sys.argv[1], sys.argv[2]); "
               "print(r.verdict, r.matched, r.clock.offset_ns / 1e9, file=sys.stderr)",
}


def make_b(a: Path) -> Path:
    b = a.with_name(a.stem + "-b.pcap")
    if b.exists():
        return b
    shifted = b.with_suffix(".shifted.pcap")
    subprocess.run(["editcap", "-t", SHIFT_S, str(a), str(shifted)], check=True)
    count = int(subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(a)], capture_output=True,
                               text=True, check=True).stdout.split()[-1])
    frames = [f"{n}-{n + DELETE_RUN - 1}"
              for n in range(DELETE_EVERY, count - DELETE_RUN, DELETE_EVERY)]
    subprocess.run(["editcap", str(shifted), str(b), *frames], check=True)
    shifted.unlink()
    return b


def run(kind: str, a: Path, b: Path) -> tuple[float, int, str, float]:
    t = time.perf_counter()
    with subprocess.Popen([sys.executable, "-c", RUNS[kind], str(a), str(b)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "TCPSIFT_CACHE": "off"}) as p:
        _, _, usage = os.wait4(p.pid, 0)
        said = p.stderr.read().strip()
    return (time.perf_counter() - t, usage.ru_maxrss // 1024, said,
            usage.ru_utime + usage.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", nargs="?", type=Path, default=DEFAULT_A)
    ap.add_argument("b", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    b = args.b or make_b(args.a)
    compile_package()
    for path in (args.a, b):
        path.read_bytes()      # into the page cache
    figures: dict[str, list] = {kind: [] for kind in RUNS}
    cpu: dict[str, list] = {kind: [] for kind in RUNS}
    said = ""
    for _ in range(args.repeat):
        for kind in RUNS:
            wall, rss, out, used = run(kind, args.a, b)
            figures[kind].append((wall, rss))
            cpu[kind].append(used)
            said = out if kind == "compare" else said
    median = {k: statistics.median(w for w, _ in v) for k, v in figures.items()}
    best = {k: min(w for w, _ in v) for k, v in figures.items()}
    for kind, runs in figures.items():
        print(f"{kind:8} {median[kind]:6.2f} s  peak RSS {max(r for _, r in runs):6,} MB  "
              f"(runs: {', '.join(f'{w:.2f}' for w, _ in runs)})")
    # on a machine shared with other jobs the fastest runs are the least disturbed
    print(f"compare / read: {median['compare'] / median['read']:.2f}x median, "
          f"{best['compare'] / best['read']:.2f}x fastest  (target <= 3x)")
    # CPU time (user + system, every thread): what other jobs on the machine disturb least
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"CPU time: read {median_cpu['read']:.2f} s, compare {median_cpu['compare']:.2f} s: "
          f"{median_cpu['compare'] / median_cpu['read']:.2f}x median")
    print(f"compare said: {said}")


if __name__ == "__main__":
    main()
