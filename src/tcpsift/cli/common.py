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
