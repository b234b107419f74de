#!/usr/bin/env python3
"""Measure tcpsift.scan() with a projection and a time filter against tcpsift.read().

    python3 benchmarks/bench_scan.py [--repeat N] [CAPTURE ...]   (default: /tmp/tsbench/
                                                                  bulk.pcap and many.pcap)

The query: 3 columns (frame, src, tcp_len) of the frames in the middle 10 % of the
capture's time span. Each way of answering it runs in a fresh Python process (the
capture in the page cache, round-robin over the ways, --repeat times; medians):

  read          tcpsift.read(FILE).packets, then filter and select
  read-columns  tcpsift.read(FILE, columns=the 3).packets, then filter and select
  scan          tcpsift.scan(FILE).filter(...).select(...).collect()
  scan-all      tcpsift.scan(FILE).collect(): the whole table, for its cost against read

Seconds are the child's own clock around the query (import excluded); peak RSS is
the child's maxrss after it. The rows of every way are checked equal to read()'s.
The time span itself comes from a scan of ts_ns alone (no decoding), timed too.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the read itself, run after run, not the Parquet cache (bench_cache.py measures that)
os.environ["TCPSIFT_CACHE"] = "off"

DEFAULT = [Path("/tmp/tsbench/bulk.pcap"), Path("/tmp/tsbench/many.pcap")]
COLUMNS = ["frame", "src", "tcp_len"]
WAYS = ("read", "read-columns", "scan", "scan-all")

CHILD = f"""
import json, resource, sys, time
import polars as pl
import tcpsift
way, path, lo, hi, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
columns = {COLUMNS!r}
window = (pl.col("ts_ns") >= lo) & (pl.col("ts_ns") < hi)
start = time.perf_counter()
if way == "read":
    rows = tcpsift.read(path).packets.filter(window).select(columns)
elif way == "read-columns":
    rows = tcpsift.read(path, columns=columns + ["ts_ns"]).packets.filter(window).select(columns)
elif way == "scan":
    rows = tcpsift.scan(path).filter(window).select(columns).collect()
else:
    rows = tcpsift.scan(path).collect()
seconds = time.perf_counter() - start
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if way == "scan-all":
    rows = rows.filter(window).select(columns)
rows.with_columns(pl.col("src").cast(pl.String)).write_ipc(out)
print(json.dumps({{"seconds": seconds, "rss_mb": rss_kb / 1024, "rows": rows.height}}))
"""


def warm(path: Path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def time_span(path: Path) -> tuple[int, int, float]:
    """The capture's first and last time, from a scan of ts_ns alone (timed)."""
    import polars as pl

    import tcpsift

    start = time.perf_counter()
    first, last = tcpsift.scan(str(path)).select(
        pl.col("ts_ns").min().alias("first"), pl.col("ts_ns").max().alias("last")).collect().row(0)
    return first, last, time.perf_counter() - start


def run(way: str, path: Path, lo: int, hi: int, out: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, way, str(path), str(lo), str(hi), str(out)],
                       capture_output=True, text=True, check=False)
    if r.returncode:
        raise SystemExit(f"{way} on {path} failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import polars as pl

    print(f"# bench_scan: {os.cpu_count()} CPUs, repeat {args.repeat}, "
          f"query: {', '.join(COLUMNS)} of the middle 10 % of the time span")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.captures:
            warm(path)
            first, last, span_s = time_span(path)
            lo, hi = first + (last - first) * 45 // 100, first + (last - first) * 55 // 100
            runs: dict[str, list[dict]] = {w: [] for w in WAYS}
            for k in range(args.repeat):
                for way in WAYS:
                    warm(path)
                    runs[way].append(run(way, path, lo, hi, Path(tmp) / f"{way}-{k}.arrow"))
            truth = pl.read_ipc(Path(tmp) / "read-0.arrow")
            for way in WAYS:
                for k in range(args.repeat):
                    if not pl.read_ipc(Path(tmp) / f"{way}-{k}.arrow").equals(truth):
                        raise SystemExit(f"{way} run {k} on {path}: rows differ from read()'s")
            size_mb = path.stat().st_size / 1e6
            print(f"\n{path.name} ({size_mb:.0f} MB; time span from a scan of ts_ns alone: "
                  f"{span_s:.2f} s); {truth.height} rows, equal in every run")
            print(f"{'way':<14}{'seconds':>9}{'peak RSS MB':>13}   (median of {args.repeat}; "
                  f"min s)")
            base = statistics.median(r["seconds"] for r in runs["read"])
            for way in WAYS:
                s = statistics.median(r["seconds"] for r in runs[way])
                rss = statistics.median(r["rss_mb"] for r in runs[way])
                lo_s = min(r["seconds"] for r in runs[way])
                print(f"{way:<14}{s:>9.3f}{rss:>13.0f}   ({lo_s:.3f}; {base / s:.1f}x read)")


if __name__ == "__main__":
    main()
