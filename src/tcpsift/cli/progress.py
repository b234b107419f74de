"""A progress display on stderr for the commands' longer steps.

    with progress() as p:
        p.step("reading capture")
        cap = tcpsift.read(files)
        p.step("drawing connections", total=6)
        ... p.advance()

Nothing shows for work done within about a second (DELAY_S; TCPSIFT_PROGRESS_DELAY
overrides it), and nothing at all when stderr is not a terminal, so pipes, files and the
tests see exactly what they saw before. The display is rich's, cleared when done.
"""
from __future__ import annotations

import os
import sys
import threading

DELAY_S = 1.0


class _Quiet:
    """Shows nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def step(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, description: str, done: int, total: int) -> None:
        pass


class _Shown(_Quiet):
    """One rich task whose description is the current step: a spinner and the elapsed
    time, plus a bar and a count when the step has a total."""

    def __init__(self, delay: float):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        # the count only for steps with a total (rich's own column shows "0/?" otherwise)
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                            BarColumn(), TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task("", total=None, count="")
        self.timer = threading.Timer(delay, self.bar.start)
        self.timer.daemon = True

    def step(self, description, total=None):
        self.update(description, 0, total)

    def advance(self, n=1):
        task = self.bar.tasks[0]
        self.update(task.description, task.completed + n, task.total)

    def update(self, description, done, total):
        self.bar.update(self.task, description=description, total=total, completed=done,
                        count=f"{done}/{total}" if total is not None else "")

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        self.timer.join()
        self.bar.stop()


def progress(stream=None):
    """A context manager giving an object with step(description, total=None), advance(n)
    and update(description, done, total); it shows on `stream` (stderr) only when that is
    a terminal and rich is installed."""
    stream = stream or sys.stderr
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError):
        is_terminal = False
    if not is_terminal:
        return _Quiet()
    try:
        import rich  # noqa: F401
    except ImportError:
        return _Quiet()
    return _Shown(float(os.environ.get("TCPSIFT_PROGRESS_DELAY", DELAY_S)))
