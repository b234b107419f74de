"""The library behaves as a guest: importing tcpsift and reading captures leave the
process-wide settings of the program that uses it (a notebook, a Dask worker) as they
were. The CLI may set what it likes for itself, so it is not checked here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED  # noqa: E402

LAB = SHARED / "lab" / "captures"

# Prints the settings a library could change, before and after each step, as JSON.
PROBE = r"""
import gc, json, os, sys, warnings
import numpy, polars   # the dependencies' own import is not tcpsift's doing

def settings():
    return {"switchinterval": sys.getswitchinterval(), "gc_threshold": gc.get_threshold(),
            "gc_enabled": gc.isenabled(), "gc_frozen": gc.get_freeze_count(),
            "environ": dict(os.environ), "warnings": [repr(f) for f in warnings.filters],
            "recursionlimit": sys.getrecursionlimit()}

steps = [("start", settings())]
import tcpsift
steps.append(("import tcpsift", settings()))
paths = sys.argv[1:]
for mode in ("merge", "concat", "separate"):
    caps = tcpsift.read(paths, mode=mode)
    for cap in caps if isinstance(caps, list) else [caps]:
        cap.tcp, cap.conns
    steps.append((f"read(mode={mode!r}) and its analyses", settings()))
print(json.dumps(steps))
"""


def test_import_and_read_leave_process_settings_unchanged():
    pair = [LAB / "twopoint-lossy-a.pcap", LAB / "twopoint-lossy-b.pcap"]
    paths = pair if all(p.exists() for p in pair) else [SAMPLE, SAMPLE]
    out = subprocess.run([sys.executable, "-c", PROBE, *map(str, paths)], check=True,
                         capture_output=True, text=True).stdout
    steps = json.loads(out)
    start = steps[0][1]
    for name, now in steps[1:]:
        changed = {k for k in start if now[k] != start[k]}
        assert not changed, f"{name} changed {sorted(changed)}"


def test_read_in_this_process_leaves_the_switch_interval_alone():
    # a reading thread and the consumer hand work to each other while read() runs: the
    # interval is looked at from inside the pipeline too, not only before and after
    import threading

    import tcpsift

    before = sys.getswitchinterval()
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(sys.getswitchinterval())
            stop.wait(0.0002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        tcpsift.read(SAMPLE)
    finally:
        stop.set()
        watcher.join()
    assert set(seen) <= {before}
    assert sys.getswitchinterval() == before
