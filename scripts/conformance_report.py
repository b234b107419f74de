"""Agreement of `tcpsift fields` with tshark 4.0.17 over the whole capture corpus.

    python scripts/conformance_report.py [--jobs N] [--diffs N] [--markdown]

Prints per field: lines compared, lines equal, %; then per capture with differences: how
many cells differ, how many of those are documented in
tests/conformance/known_differences.toml, and the fields. `--diffs N` also prints the first
N undocumented differences per capture. tshark output is cached (tests/conformance/harness.py).
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "conformance"))
import harness  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="captures compared in parallel")
    ap.add_argument("--diffs", type=int, default=0, help="undocumented diffs shown per capture")
    ap.add_argument("--markdown", action="store_true", help="markdown tables (for docs)")
    args = ap.parse_args(argv)
    if harness.tshark_version() is None:
        sys.exit("conformance_report: tshark is not installed")
    caps = harness.captures()
    if not caps:
        sys.exit(f"conformance_report: no captures under {harness.corpus()}")
    known = harness.known_differences()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(harness.run, caps, chunksize=4))

    totals = {f: [0, 0] for f in harness.FIELDS}
    per_capture = []
    for cap, (counts, diffs) in zip(caps, results):
        for f, (n, eq) in counts.items():
            totals[f][0] += n
            totals[f][1] += eq
        if diffs:
            bad = harness.undocumented(diffs, known)
            per_capture.append((cap, diffs, bad))

    md = args.markdown
    print(f"tshark: {harness.tshark_version()}; {len(caps)} captures\n")
    print("| field | lines compared | lines equal | % |\n| --- | ---: | ---: | ---: |" if md
          else f"{'field':32} {'compared':>9} {'equal':>9} {'%':>8}")
    for f, (n, eq) in totals.items():
        pct = f"{100 * eq / n:.3f}" if n else "-"
        print(f"| `{f}` | {n} | {eq} | {pct} |" if md else f"{f:32} {n:9} {eq:9} {pct:>8}")
    print()
    print("| capture | cells differing | documented | kind | fields |\n"
          "| --- | ---: | ---: | --- | --- |" if md
          else f"{'capture with differences':58} {'cells':>6} {'docd':>6}  kind: fields")
    for cap, diffs, bad in per_capture:
        fields = ", ".join(sorted({d.field for d in diffs}))
        kinds = ", ".join(sorted({k.kind for d in diffs if (k := harness.covering(d, known))}))
        if md:
            print(f"| `{cap}` | {len(diffs)} | {len(diffs) - len(bad)} | {kinds} | {fields} |")
        else:
            print(f"{cap:58} {len(diffs):6} {len(diffs) - len(bad):6}  {kinds}: {fields}")
        for d in bad[:args.diffs]:
            print(f"    frame {d.frame} {d.field}: tshark {d.tshark!r} tcpsift {d.ours!r}")
    used = {k for k in known for _, diffs, _ in per_capture if any(k.covers(d) for d in diffs)}
    for k in known:
        if k not in used:
            print(f"\nunused known difference: {k.capture} {k.field}", file=sys.stderr)
    undocumented = sum(len(b) for _, _, b in per_capture)
    print(f"\n{undocumented} undocumented differing cells")
    return 1 if undocumented else 0


if __name__ == "__main__":
    sys.exit(main())
