#!/usr/bin/env python3
"""Measure the engineer's workflow commands against the tshark commands they replace.

    python3 benchmarks/bench_workflow.py [options] [CAPTURE ...]

Default captures: /tmp/tsbench/{bulk,many}.pcap when present (made by
shared/bench/gen_captures.sh; never commit captures).

`tcpsift ladder FILE --stream N --format csv` against
`tshark -r FILE -Y "tcp.stream == N" -T fields` with the same columns (frame.number,
tcp.time_relative, tcp.seq, tcp.ack, tcp.len, tcp.window_size, the flags, the
tcp.analysis verdicts and the sender, for the direction). N is --stream, or by default
the capture's largest stream (the most rows to print). Whole process, start-up included,
output to /dev/null, the capture read into the page cache before every run; each figure
is the median of --repeat runs, the tools run round-robin. With --check (default), one
more run of each is kept and compared: "same" says whether both list the same frames
with the same time, seq, ack, len and window.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tcp import captures_or_default, run_wall, tcpsift_cmd, warm  # noqa: E402

DEFAULT_FILES = ("bulk.pcap", "many.pcap")
VERDICTS = ("retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order",
            "lost_segment", "ack_lost_segment", "zero_window", "zero_window_probe",
            "zero_window_probe_ack", "window_full", "window_update", "keep_alive",
            "keep_alive_ack", "reused_ports", "duplicate_ack")
# the ladder's columns as tshark fields; the first six are compared by --check
TSHARK_FIELDS = ["frame.number", "tcp.time_relative", "tcp.seq", "tcp.ack", "tcp.len",
                 "tcp.window_size", "tcp.flags", "ip.src", "ipv6.src", "tcp.srcport",
                 *(f"tcp.analysis.{v}" for v in VERDICTS)]
COMPARED = ("frame", "time_rel_s", "seq", "ack", "len", "window")


def largest_stream(path: Path) -> tuple[int, int]:
    """(stream, its frames) of the capture's largest TCP stream, by tcpsift (untimed)."""
    code = ("import sys, json, tcpsift\n"
            "s = tcpsift.read(sys.argv[1]).tcp['stream'].drop_nulls().value_counts(sort=True)\n"
            "print(json.dumps(s.row(0)))\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout
    stream, frames = json.loads(out)
    return stream, frames


def commands(path: Path, stream: int) -> dict[str, list[str]]:
    tools = {"tcpsift ladder": tcpsift_cmd() + ["ladder", str(path), "--stream", str(stream),
                                                "--format", "csv"]}
    if shutil.which("tshark"):
        tools["tshark -Y -T fields"] = ["tshark", "-r", str(path), "-Y", f"tcp.stream == {stream}",
                                        "-T", "fields",
                                        *[x for f in TSHARK_FIELDS for x in ("-e", f)]]
    return tools


def difference(ladder_csv: str, tshark_text: str) -> str | None:
    """None when both outputs list the same rows (COMPARED columns), else what differs."""
    ours = [tuple(r[c] for c in COMPARED) for r in csv.DictReader(io.StringIO(ladder_csv))]
    theirs = [tuple(line.split("\t")[:len(COMPARED)]) for line in tshark_text.splitlines()]
    if ours == theirs:
        return None
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                 min(len(ours), len(theirs)))
    return (f"{len(ours)} rows against tshark's {len(theirs)}; first difference at row "
            f"{first}: {ours[first] if first < len(ours) else None} against "
            f"{theirs[first] if first < len(theirs) else None}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", type=Path)
    ap.add_argument("--stream", type=int, help="the stream to show (default: the largest)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-check", action="store_true",
                    help="skip the extra runs that compare the two outputs")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    caps = captures_or_default(args.captures, DEFAULT_FILES)
    if not caps:
        return 2
    result = {}
    print(f"{'capture':<12} {'stream':>7} {'rows':>7} {'tcpsift ladder s':>16} "
          f"{'tshark s':>9} {'speed-up':>8} {'same':>5}")
    for path in caps:
        if args.stream is not None:
            stream, rows = args.stream, None
        else:
            stream, rows = largest_stream(path)
        tools = commands(path, stream)
        times = {k: [] for k in tools}
        for _ in range(args.repeat):
            for k, cmd in tools.items():
                warm(path)      # (this VM trims its page cache: see bench_decode.measure)
                times[k].append(run_wall(cmd, args.timeout))
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"stream": stream, "rows": rows, "median_s": med, "runs": times}
        ts = med.get("tshark -Y -T fields")
        if not args.no_check and ts is not None:
            env = {**os.environ, "LC_ALL": "C"}
            runs = {k: subprocess.run(cmd, capture_output=True, text=True, env=env,
                                      timeout=args.timeout) for k, cmd in tools.items()}
            diff = difference(runs["tcpsift ladder"].stdout, runs["tshark -Y -T fields"].stdout)
            row["same"] = diff is None
            if diff is not None:
                codes = ", ".join(f"{k} exit {r.returncode}" for k, r in runs.items())
                print(f"{path.name}: the outputs differ ({codes}): {diff}", file=sys.stderr)
        line = (f"{path.name:<12} {stream:>7} {rows if rows is not None else '':>7} "
                f"{med['tcpsift ladder']:>16.2f}")
        line += f" {ts:>9.2f} {ts / med['tcpsift ladder']:>7.1f}x" if ts else f" {'-':>9} {'':>8}"
        line += f" {('yes' if row['same'] else 'NO') if 'same' in row else '':>5}"
        print(line, flush=True)
        for k, v in times.items():
            print(f"{'':<12} {k} runs: {' '.join(f'{x:.2f}' for x in v)}", flush=True)
        result[str(path)] = row
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
