"""Run a command under a memory limit and a time limit, and say what it took.

`run_bounded` starts the command (or a bash pipeline) in a process group of its own
with RLIMIT_AS set, kills the group when the time runs out, and reports the exit
code, output, elapsed time and the peak resident memory of the command and its
children (from wait4).
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass


@dataclass
class Outcome:
    code: int           # exit code (negative: killed by that signal)
    out: str
    err: str
    seconds: float
    peak_mb: float      # the largest resident set of the command or a child
    timed_out: bool

    def describe(self) -> str:
        return (f"exit {self.code} after {self.seconds:.2f} s, peak {self.peak_mb:.0f} MB"
                + (" (killed: out of time)" if self.timed_out else "")
                + f"; stderr: {self.err.strip()[-500:]!r}")


def tcpsift_args(*args) -> list[str]:
    return [sys.executable, "-m", "tcpsift", *map(str, args)]


def run_bounded(command, *, seconds: float, memory_mb: int, stdin=None,
                cwd=None, open_files: int | None = None) -> Outcome:
    """`command`: an argument list, or a string run by bash (a pipeline). `stdin`: a
    file object or None (no input). `open_files`: RLIMIT_NOFILE too (`ulimit -n`)."""
    limit = memory_mb << 20

    def in_child():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    shell = isinstance(command, str)
    proc = subprocess.Popen(["bash", "-c", command] if shell else command,
                            stdin=stdin if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            preexec_fn=in_child)
    streams: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: streams.__setitem__(k, f.read()))
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    timed_out = threading.Event()

    def kill():
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(seconds, kill)
    start = time.perf_counter()
    timer.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    timer.cancel()
    if not timed_out.is_set():
        try:        # what the command left behind (a pipeline's other processes)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    return Outcome(proc.returncode, streams["out"].decode(errors="replace"),
                   streams["err"].decode(errors="replace"), elapsed,
                   usage.ru_maxrss / 1024, timed_out.is_set())
