#!/usr/bin/env python3
"""`tcpsift fields -Y tcp` against `tshark -Y tcp -T fields`: the filter on the arrays.

    python3 benchmarks/bench_filter.py [--repeat N] [CAPTURE ...]

Default capture: /tmp/tsbench/bulk.pcap (shared/bench/gen_captures.sh). Two field sets,
each with `-Y tcp` (the seed's 12 fields of shared/bench/run_peers.sh, with
tcp.options.wscale.shift; the 18 TCP analysis fields of bench_tcp.py), three ways:

- `tcpsift`: the command (the filter evaluated on the decoder's arrays,
  textstream/select.py, printed by the Cython formatter);
- `table path`: the same command with textstream.fields.fast_path forced to say no, as
  every -Y filter ran before: each chunk's Polars tables, filtered and printed by Polars;
- `no -Y`: the command without the filter (the fast path's own speed and memory; it
  prints the few frames that are not TCP too, so its output is not compared);
- `tshark`: `tshark -r FILE -Y tcp -T fields -e ...`.

Whole processes, start-up included, stdout to /dev/null, the file read before each run
(page cache); round-robin over the ways, --repeat times; medians of wall time, CPU time
(user + system, from /usr/bin/time: the machine may be shared, CPU time is the steadier
figure) and peak RSS. One more run of each way is hashed: the outputs must be equal.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_tcp import TCP_FIELDS, run_hash, tcpsift_cmd, warm  # noqa: E402

SEED_FIELDS = ("frame.number frame.time_epoch ip.src ip.dst tcp.srcport tcp.dstport "
               "tcp.seq_raw tcp.ack_raw tcp.flags tcp.len tcp.window_size_value "
               "tcp.options.wscale.shift").split()
FIELD_SETS = {"seed 12": SEED_FIELDS, "tcp 18": list(TCP_FIELDS)}
FILTER = "tcp"
# the command as it ran before the array filter: every chunk through its tables
TABLE_PATH = ("import sys\n"
              "from tcpsift.textstream import fields\n"
              "fields.fast_path = lambda names, flt=None: (False, None)\n"
              "from tcpsift.cli.main import main\n"
              "sys.argv[0] = 'tcpsift'\n"
              "main()\n")
TIME = "/usr/bin/time"


def commands(path: Path, names: list[str]) -> dict[str, list[str]]:
    ef = [x for n in names for x in ("-e", n)]
    args = ["fields", str(path), "-Y", FILTER, *ef]
    return {"tcpsift": tcpsift_cmd() + args,
            "table path": [sys.executable, "-c", TABLE_PATH, *args],
            "no -Y": tcpsift_cmd() + ["fields", str(path), *ef],
            "tshark": ["tshark", "-r", str(path), "-Y", FILTER, "-T", "fields", *ef]}


def run(cmd: list[str]) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one run."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-filter.") as out:
        t = time.perf_counter()
        subprocess.run([TIME, "-f", "%U %S %M", "-o", out.name, *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       env={**os.environ, "LC_ALL": "C"})
        wall = time.perf_counter() - t
        user, system, rss_kb = out.read().split()[-3:]
    return {"wall": wall, "cpu": float(user) + float(system), "rss": int(rss_kb) / 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", type=Path, default=[Path("/tmp/tsbench/bulk.pcap")])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true")
    args = ap.parse_args(argv)
    for path in args.captures:
        for label, names in FIELD_SETS.items():
            cmds = commands(path, names)
            if args.no_tshark:
                del cmds["tshark"]
            runs = {way: [] for way in cmds}
            for _ in range(args.repeat):
                for way, cmd in cmds.items():
                    warm(path)
                    runs[way].append(run(cmd))
            hashes = {way: run_hash(cmd, 3600) for way, cmd in cmds.items() if way != "no -Y"}
            same = "equal" if len(set(hashes.values())) == 1 else f"DIFFER {hashes}"
            print(f"\n{path.name}, -Y {FILTER}, {label} fields: outputs {same} "
                  f"(median of {args.repeat})")
            print(f"{'way':<12}{'wall s':>8}{'CPU s':>8}{'peak RSS MB':>13}"
                  f"{'tshark/way wall':>17}{'CPU':>7}")
            med = {way: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss")}
                   for way, rs in runs.items()}
            ts = med.get("tshark")
            for way, m in med.items():
                ratio = (f"{ts['wall'] / m['wall']:>16.1f}x{ts['cpu'] / m['cpu']:>6.1f}x"
                         if ts else "")
                print(f"{way:<12}{m['wall']:>8.2f}{m['cpu']:>8.2f}{m['rss']:>13.0f}{ratio}")
            for way, rs in runs.items():
                print(f"  {way} runs (wall/CPU s): "
                      + " ".join(f"{r['wall']:.2f}/{r['cpu']:.2f}" for r in rs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
