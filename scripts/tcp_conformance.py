#!/usr/bin/env python3
"""Agreement of the pure-Python TCP analysis reference with tshark 4.0, field by field.

    python scripts/tcp_conformance.py [CAPTURE-GLOB...] [--diffs N] [--per-capture]
                                      [--write-expected] [-j JOBS]

Captures are every file of ../shared/captures/public and ../shared/lab/captures
(TCPSIFT_SHARED overrides ../shared), or those matching the globs (relative to it).
Prints, per field, the TCP frames compared, how many are equal and the percentage;
--per-capture adds the mismatch counts per capture, --diffs N the first N differing
cells, and --write-expected records the per-capture mismatch counts as the new baseline
of tests/test_tcp_reference.py (tests/data/tcp_reference_mismatches.json).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import tcp_conformance as tc  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("globs", nargs="*")
    ap.add_argument("--diffs", type=int, default=0)
    ap.add_argument("--per-capture", action="store_true")
    ap.add_argument("--write-expected", action="store_true")
    ap.add_argument("-j", "--jobs", type=int, default=0)
    args = ap.parse_args(argv)

    caps = tc.captures()
    if args.globs:
        caps = [c for c in caps if any(fnmatch.fnmatchcase(c, g) for g in args.globs)]
    if not caps:
        print("no captures found under", tc.shared(), file=sys.stderr)
        return 2
    t0 = time.time()
    tc.warm_cache(caps, jobs=args.jobs or None)
    total = {f: [0, 0] for f in tc.FIELDS}
    total[tc.NOT_DECODED] = [0, 0]
    per_capture = {}
    all_diffs = []
    for cap in caps:
        try:
            counts, diffs = tc.compare(cap)
        except Exception as e:  # an unreadable capture: nothing to compare
            print(f"{cap}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        for f, (c, e) in counts.items():
            total[f][0] += c
            total[f][1] += e
        mism = {f: c - e for f, (c, e) in counts.items() if c != e}
        if mism:
            per_capture[cap] = mism
        all_diffs += diffs

    w = max(len(f) for f in tc.FIELDS)
    print(f"{'field':<{w}}  {'compared':>9}  {'equal':>9}  {'agree %':>8}")
    for f in tc.FIELDS:
        c, e = total[f]
        pct = 100.0 * e / c if c else 100.0
        print(f"{f:<{w}}  {c:>9}  {e:>9}  {pct:>8.3f}")
    print(f"TCP frames tcpsift does not decode as TCP (left out above): {total[tc.NOT_DECODED][0]}")
    print(f"({len(caps)} captures, {time.time() - t0:.1f} s)")
    if args.per_capture:
        for cap, mism in per_capture.items():
            print(f"{cap}: " + ", ".join(f"{f}={n}" for f, n in sorted(mism.items())))
    for d in all_diffs[: args.diffs]:
        print("\t".join(map(str, d)))
    if args.write_expected:
        if args.globs:
            print("--write-expected needs the whole corpus (no globs)", file=sys.stderr)
            return 2
        tc.EXPECTED.parent.mkdir(parents=True, exist_ok=True)
        data = {"tshark": tc.tshark_version(), "captures": {c: per_capture.get(c, {})
                                                            for c in caps}}
        tc.EXPECTED.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print("wrote", tc.EXPECTED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
