#!/usr/bin/env python3
"""The sans-I/O TCP analyzer (tcpsift.tcp.Analyzer) over a capture fed in batches: its
state's size over capture time, with eviction (default settings, and others given) and
without (grace=None, what Wireshark keeps).

    python3 benchmarks/bench_analyzer.py [--batch 65536] [--every 4] [--grace S ...]
                                         [--source scan|read] [CAPTURE]

Default capture: /tmp/tsbench/many.pcap (1 M packets, 65k connections, ~64 open at
once). Batches come from `tcpsift.scan(...).collect_batches()` (the analysis' input
columns only) or from slices of `tcpsift.read(...).packets`. For each setting it prints
a line every --every batches: capture seconds, frames, streams so far, conversations
held, unacknowledged segments, tombstones, addresses and the bytes the state has
allocated; then the peak, the connections open at once (first to last packet, at most),
the time spent in feed(), and how many rows' stream numbers and verdicts differ from
those without eviction (which are one call's over the whole capture: tests).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import polars as pl

import tcpsift
from tcpsift.tcp import INPUT_COLUMNS, Analyzer

# the read itself, run after run, not the Parquet cache (bench_cache.py measures that)
os.environ["TCPSIFT_CACHE"] = "off"


def batches(path: Path, source: str, size: int):
    if source == "read":
        packets = tcpsift.read(path, columns=[*INPUT_COLUMNS]).packets
        for start in range(0, packets.height, size):
            yield packets.slice(start, size)
        return
    lf = tcpsift.scan(path).select(*INPUT_COLUMNS, "file_id")
    yield from lf.collect_batches(chunk_size=size)


def open_at_once(rows: pl.DataFrame) -> int:
    """Connections between their first and last packet at the same moment, at most."""
    span = rows.drop_nulls("stream").group_by("stream").agg(
        first=pl.col("frame").min(), last=pl.col("frame").max())
    events = pl.concat([span.select(frame="first", d=pl.lit(1)),
                        span.select(frame=pl.col("last") + 1, d=pl.lit(-1))])
    return int(events.sort("frame", "d").select(pl.col("d").cum_sum().max()).item())


def run(path: Path, source: str, size: int, every: int, grace, remember) -> pl.DataFrame:
    kw = {} if grace == "default" else {"grace": grace, "remember": remember}
    an = Analyzer(**kw)
    label = "defaults" if grace == "default" else f"grace={grace} remember={remember}"
    print(f"\n== {label}")
    print(f"{'capture s':>9} {'frames':>9} {'streams':>8} {'convs':>7} {'segments':>9} "
          f"{'tombs':>7} {'addrs':>6} {'state MB':>9}")
    rows, peak, spent, t0, frames = [], 0, 0.0, None, 0
    for k, batch in enumerate(batches(path, source, size)):
        start = time.perf_counter()
        out = an.feed(batch)
        spent += time.perf_counter() - start
        rows.append(out.select("frame", "stream", "analysis"))
        frames += batch.height
        ts = batch["ts_ns"]
        t0 = ts[0] if t0 is None else t0
        s = an.sizes()
        peak = max(peak, s["bytes"])
        an.ended()
        if k % every == 0:
            print(f"{(ts[-1] - t0) / 1e9:9.2f} {frames:9d} {an.streams:8d} "
                  f"{s['conversations']:7d} {s['segments']:9d} {s['tombstones']:7d} "
                  f"{s['addresses']:6d} {s['bytes'] / 1e6:9.2f}")
    s = an.sizes()
    print(f"{'end':>9} {frames:9d} {an.streams:8d} {s['conversations']:7d} "
          f"{s['segments']:9d} {s['tombstones']:7d} {s['addresses']:6d} "
          f"{s['bytes'] / 1e6:9.2f}")
    print(f"peak state {peak / 1e6:.2f} MB; feed() {spent:.2f} s; late packets "
          f"{an.late_packets}")
    return pl.concat(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?", default="/tmp/tsbench/many.pcap", type=Path)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--source", choices=("scan", "read"), default="scan")
    ap.add_argument("--windows", type=float, nargs=2, action="append",
                    metavar=("GRACE", "REMEMBER"),
                    help="settings to run besides the defaults and no eviction "
                         "(default: 0.1 1)")
    args = ap.parse_args()
    settings = [("default", None), *map(tuple, args.windows or [(0.1, 1.0)]), (None, None)]
    results = [run(args.capture, args.source, args.batch, args.every, g, r)
               for g, r in settings]
    whole = results[-1]                         # grace=None: one call's rows, by test
    print(f"\nconnections open at once (first to last packet): {open_at_once(whole)}; "
          f"streams {whole['stream'].max() + 1}")
    for (g, r), got in zip(settings, results):
        differ = got.join(whole, on="frame", suffix="_whole").filter(
            pl.col("stream").ne_missing(pl.col("stream_whole"))
            | pl.col("analysis").ne_missing(pl.col("analysis_whole")))
        name = "defaults" if g == "default" else f"grace={g} remember={r}"
        print(f"{name}: stream numbers equal to no eviction: "
              f"{got['stream'].equals(whole['stream'])}; rows whose stream or verdicts "
              f"differ: {differ.height}")


if __name__ == "__main__":
    main()
