#!/usr/bin/env python3
"""Measure `tcpsift report` against `tcpsift conns` on the same capture, and the page's size.

    python3 benchmarks/bench_report.py [--repeat N] [CAPTURE ...]

Default capture: many.pcap in /tmp/tsbench-full or /tmp/tsbench (shared/bench/gen_captures.sh
makes it: 1 M packets, 65k connections; never commit captures).

Whole process, start-up included, the capture in the page cache (read again before each
run), the two commands run round-robin; each figure is the median of --repeat runs with
the peak RSS of that command's runs. `conns` writes CSV to /dev/null; `report` writes its
HTML to a temporary folder. The issue's targets: the report within 3x of conns, its HTML
under 20 MB.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conns import round_robin  # noqa: E402
from bench_tcp import captures_or_default, tcpsift_cmd  # noqa: E402

TARGET_RATIO, TARGET_MB = 3.0, 20.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    caps = captures_or_default(args.captures, ["many.pcap"])
    if not caps:
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        tools = {"tcpsift conns": lambda p: tcpsift_cmd() + ["conns", str(p), "--format", "csv"],
                 "tcpsift report": lambda p: tcpsift_cmd() + ["report", str(p), "-o", str(page)]}
        print(f"{'capture':<14} {'command':<16} {'median s':>9} {'peak MB':>8}  runs")
        for path in caps:
            medians = round_robin(path, {k: cmd(path) for k, cmd in tools.items()},
                                  args.repeat, args.timeout)
            ratio = medians["tcpsift report"] / medians["tcpsift conns"]
            size_mb = page.stat().st_size / 1e6 if page.exists() else float("nan")
            print(f"{path.name:<14} report / conns: {ratio:.2f}x (target <= {TARGET_RATIO}x); "
                  f"HTML {size_mb:.1f} MB (target < {TARGET_MB} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
