"""What every command does the same way: open captures, report problems, exit codes."""
from __future__ import annotations

import sys

import click

EXIT_OK = 0
EXIT_PARTIAL = 1   # output produced, but a file was read only up to a fault
EXIT_FAILED = 2    # nothing read, or a usage error


def fail(message: str, code: int = EXIT_FAILED):
    """One line on stderr, then exit: never a traceback for user error."""
    click.echo(f"tcpsift: {message}", err=True)
    sys.exit(code)


def open_capture(files):
    import tcpsift

    try:
        return tcpsift.read(list(files))
    except tcpsift.CaptureError as e:
        fail(str(e))


def exit_for(cap):
    """Warnings to stderr; exit 1 when a file was read only in part."""
    for w in cap.warnings:
        click.echo(f"tcpsift: warning: {w}", err=True)
    if not cap.complete:
        sys.exit(EXIT_PARTIAL)
