"""Run one fuzz target of tests/fuzz/targets.py for a while (issue 17).

    python scripts/fuzz.py --target decode --minutes 60 [--out fuzz-out] [--seed N]
    python scripts/fuzz.py --target decode --cpu-minutes 60 (a budget of CPU time)
    python scripts/fuzz.py --target filter --replay fuzz-out/filter-failure-1.txt
    python scripts/fuzz.py --list

Hypothesis with a large max_examples and a time budget: examples per second are printed
every 30 s; a failure is printed with its input saved to OUT/TARGET-failure-N.EXT (and
its parameters beside it, .json), then the run goes on. A crash or a hang ends the
process (the watchdog prints where it hung): the input being run is always in
OUT/TARGET-current.EXT. Exit status: 0 when nothing was found, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis.errors import HypothesisException  # noqa: E402

from tests.fuzz.targets import TARGETS, Input  # noqa: E402


class Budget(Exception):
    """The time is up (raised through Hypothesis, which stops on it)."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=sorted(TARGETS))
    ap.add_argument("--minutes", type=float, default=5.0, help="the budget in wall time")
    ap.add_argument("--cpu-minutes", type=float, default=None,
                    help="the budget in this process's CPU time instead (user + system: "
                         "the same work whatever else the machine runs)")
    ap.add_argument("--out", default="fuzz-out", help="where inputs are saved")
    ap.add_argument("--seed", type=int, default=None, help="Hypothesis's random seed")
    ap.add_argument("--replay", help="run the target on one saved input")
    ap.add_argument("--list", action="store_true", help="list the targets")
    args = ap.parse_args()
    if args.list:
        print("\n".join(sorted(TARGETS)))
        return 0
    if not args.target:
        ap.error("--target is required")
    target = TARGETS[args.target]
    if args.replay:
        path = Path(args.replay)
        side = path.with_suffix(".json")
        params = json.loads(side.read_text()) if side.exists() else {}
        target.run(Input(path.read_bytes(), params))
        print("no failure")
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    current = out / f"{target.name}-current{target.suffix}"
    # (the clock the budget is counted on: CPU time measures the fuzzing done, wall time
    # does not on a machine shared with other jobs)
    clock = time.process_time if args.cpu_minutes is not None else time.monotonic
    deadline = clock() + (args.cpu_minutes if args.cpu_minutes is not None else args.minutes) * 60
    stats = {"examples": 0, "failures": 0, "start": time.monotonic(), "shown": time.monotonic()}
    seen: set[str] = set()

    def save(inp: Input, stem: Path) -> None:
        stem.with_suffix(target.suffix).write_bytes(inp.data)
        stem.with_suffix(".json").write_text(json.dumps(inp.params))

    def report(force=False) -> None:
        now = time.monotonic()
        if force or now - stats["shown"] >= 30:
            stats["shown"] = now
            el = now - stats["start"]
            print(f"{target.name}: {stats['examples']} examples in {el:.0f} s "
                  f"({stats['examples'] / max(el, 1e-9):.1f}/s, CPU {time.process_time():.0f} s), "
                  f"{stats['failures']} failures", flush=True)

    def one(inp: Input) -> None:
        if clock() > deadline:
            raise Budget()
        stats["examples"] += 1
        save(inp, current.with_name(f"{target.name}-current"))
        try:
            target.run(inp)
        except Exception as e:
            # a finding: keep it and go on (Hypothesis would shrink and stop)
            key = f"{type(e).__name__}: {str(e)[:80]}"
            stats["failures"] += 1
            if key not in seen:
                seen.add(key)
                n = len(seen)
                stem = out / f"{target.name}-failure-{n}"
                save(inp, stem)
                print(f"FAILURE {n} ({stem}{target.suffix}): {key}\n"
                      + "".join(traceback.format_exception(e)[-6:]), flush=True)
        report()

    # a fresh random walk per chunk of examples, until the time is up
    round_ = 0
    while clock() < deadline:
        run = settings(max_examples=1_000_000, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck), report_multiple_bugs=False)(
            given(target.strategy)(one))
        if args.seed is not None:
            run = seed(args.seed + round_)(run)
        round_ += 1
        try:
            run()
        except Budget:
            break
        except HypothesisException as e:      # (e.g. the strategy's search space exhausted)
            print(f"hypothesis: {type(e).__name__}: {e}", flush=True)
    report(force=True)
    print(f"{target.name}: done: {stats['examples']} examples, {stats['failures']} failures, "
          f"{len(seen)} distinct, CPU {time.process_time():.0f} s", flush=True)
    return 1 if stats["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
