"""Run a command under a memory limit and a time limit, and say what it took.

`run_bounded` starts the command (or a bash pipeline) in a process group of its own
with its address space limited (RLIMIT_AS, set by bash's ulimit), kills the group when
the time runs out, and reports the exit code, output, elapsed time and the peak resident memory of the command and its
children (from wait4).
"""
from __future__ import annotations

import os
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
    # The command runs as the child of a small Python process (_MEASURED), which sets
    # the limits, waits for it and reports its wait status and ru_maxrss on a pipe:
    # a child forked from this (large) test process, or from a process exec'd from
    # one, would count in ru_maxrss the pages it shared with it until exec.
    argv = ["bash", "-c", command] if isinstance(command, str) else list(map(str, command))
    report_r, report_w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", _MEASURED, str(report_w), str(memory_mb << 20),
         str(open_files or 0), *argv],
        stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=cwd, start_new_session=True, pass_fds=(report_w,))
    os.close(report_w)
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
    proc.wait()
    elapsed = time.perf_counter() - start
    timer.cancel()
    with os.fdopen(report_r, "rb") as fh:
        report = fh.read().split()
    if not timed_out.is_set():
        try:        # what the command left behind (a pipeline's other processes)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for r in readers:
        r.join()
    if len(report) == 2:
        code, peak_kb = os.waitstatus_to_exitcode(int(report[0])), int(report[1])
    else:           # the measuring process itself was killed (out of time)
        code, peak_kb = proc.returncode, 0
    return Outcome(code, streams["out"].decode(errors="replace"),
                   streams["err"].decode(errors="replace"), elapsed, peak_kb / 1024,
                   timed_out.is_set())


_MEASURED = """
import os, resource, signal, sys
report, limit, open_files, argv = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
pid = os.fork()
if pid == 0:
    os.close(report)
    # as subprocess's restore_signals does: Python ignores SIGPIPE, a command must not
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if open_files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(report, f"{status} {usage.ru_maxrss}".encode())
"""
