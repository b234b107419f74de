#!/usr/bin/env python3
"""Measure what the Parquet cache gives a second look at a capture (issue 19).

    python3 benchmarks/bench_cache.py [--repeat N] [CAPTURE ...]

Default captures: /tmp/tsbench/{bulk,many}.pcap when present (made by
shared/bench/gen_captures.sh; never commit captures).

For each capture, whole processes (start-up included, output to /dev/null, the capture
read into the page cache first), round-robin, --repeat times:
- `tcpsift conns FILE --format csv` with an empty cache folder (the first run, which
  fills it), then again (the second: from the cache), and with --no-cache;
- `tcpsift ladder FILE --stream N --format csv` (N: the capture's largest stream), first
  and second, each with a cache folder of its own, and with --no-cache;
- `tcpsift sql "SELECT count(*) FROM packets WHERE dport = 80" FILE` on the cached
  capture.
Prints each median and peak RSS, the second/first ratios (target: at most 10 %), the sql
time (target: under 0.5 s), the start-up alone (`python -c "import polars"` and
`tcpsift --version`), and the cache entry's size on disk against the capture's.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conns import run_measured  # noqa: E402
from bench_tcp import captures_or_default, tcpsift_cmd, warm  # noqa: E402
from bench_workflow import largest_stream  # noqa: E402

DEFAULT_FILES = ("bulk.pcap", "many.pcap")
SQL = "SELECT count(*) FROM packets WHERE dport = 80"


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(path: Path, repeat: int, timeout: float) -> None:
    stream, frames = largest_stream(path)
    tc = tcpsift_cmd()
    conns = [*tc, "conns", str(path), "--format", "csv"]
    ladder = [*tc, "ladder", str(path), "--stream", str(stream), "--format", "csv"]
    runs: dict[str, list] = {}
    size = 0
    with tempfile.TemporaryDirectory(prefix="tcpsift-bench-cache-") as tmp:
        for _ in range(repeat):
            for name, argv in (("conns", conns), ("ladder", ladder)):
                folder = Path(tmp) / name
                shutil.rmtree(folder, ignore_errors=True)
                cache = ["--cache", str(folder)]
                for label, args in ((f"{name} first", argv + cache),
                                    (f"{name} second", argv + cache),
                                    (f"{name} --no-cache", argv + ["--no-cache"])):
                    warm(path)
                    runs.setdefault(label, []).append(run_measured(args, timeout))
                if name == "conns":
                    size = folder_size(folder)
                    warm(path)
                    runs.setdefault("sql count", []).append(run_measured(
                        [*tc, "sql", SQL, str(path), "--cache", str(folder)], timeout))
    for label, argv in (("python -c 'import polars'",
                         [sys.executable, "-c", "import polars"]),
                        ("tcpsift --version", [*tc, "--version"])):
        runs[label] = [run_measured(argv, timeout) for _ in range(repeat)]
    medians = {}
    print(f"\n{path.name}: {path.stat().st_size / 1e6:,.1f} MB; ladder of stream {stream} "
          f"({frames:,} frames)")
    print(f"{'':<28} {'median s':>9} {'peak MB':>8}  runs")
    for label, measured in runs.items():
        medians[label] = statistics.median(w for w, _ in measured)
        print(f"{label:<28} {medians[label]:>9.3f} {max(m for _, m in measured):>8}  "
              + " ".join(f"{w:.3f}" for w, _ in measured), flush=True)
    for name in ("conns", "ladder"):
        print(f"{name}: second / first = {medians[f'{name} second'] / medians[f'{name} first']:.1%}"
              f" (target <= 10 %); second / --no-cache = "
              f"{medians[f'{name} second'] / medians[f'{name} --no-cache']:.1%}")
    print(f"sql count on the cached capture: {medians['sql count']:.3f} s (target < 0.5 s)")
    print(f"cache entry: {size / 1e6:,.1f} MB on disk, {size / path.stat().st_size:.1%} of "
          f"the capture")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    paths = captures_or_default(args.captures, DEFAULT_FILES)
    if not paths:
        return 1
    for path in paths:
        measure(path, args.repeat, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
