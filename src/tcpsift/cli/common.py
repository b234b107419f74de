"""What every command does the same way: open captures, report problems, exit codes."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import NoReturn

import click

from tcpsift.outputs import StagedFile

EXIT_OK = 0
EXIT_PARTIAL = 1   # output produced, but a file was read only up to a fault
EXIT_FAILED = 2    # nothing read, or a usage error


# what one client is when the connection table counts the connections it had open
# (tcpsift.tcp.connections' client_by); conns and report take it
client_by_option = click.option(
    "--client-by", type=click.Choice(["ip", "mac"]), default="ip", show_default=True,
    help="What one client is when counting the connections it had open at each "
         "connection's end: its IP address, or its Ethernet source address (a host's IPv4 "
         "and IPv6 addresses are then one client).")


def _set_cache(ctx, param, value):
    # the command reads its captures through tcpsift.read's default, which follows
    # TCPSIFT_CACHE (tcpsift.cache.folder): set for the command's run, and put back when
    # it ends (a command run in-process, e.g. by a test, leaves the setting as it was)
    if value is None or value is False:
        return
    from tcpsift.cache.folder import ENVIRONMENT, OFF
    before = os.environ.get(ENVIRONMENT)

    def put_back():
        if before is None:
            os.environ.pop(ENVIRONMENT, None)
        else:
            os.environ[ENVIRONMENT] = before

    os.environ[ENVIRONMENT] = OFF if value is True else value
    ctx.call_on_close(put_back)


def cache_options(command):
    """--cache DIR and --no-cache, for the commands that read a capture's tables."""
    command = click.option(
        "--no-cache", is_flag=True, expose_value=False, callback=_set_cache,
        help="Read the capture itself, not the cache (and keep nothing in it).")(command)
    return click.option(
        "--cache", "cache_dir", metavar="DIR", expose_value=False, callback=_set_cache,
        help="The cache folder (default: $TCPSIFT_CACHE, else ~/.cache/tcpsift): the "
             "capture's tables are kept there as Parquet, and read from there the next "
             "time while the capture is unchanged.")(command)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr, then exit: never a traceback for user error."""
    click.echo(f"tcpsift: {message}", err=True)
    sys.exit(code)


def finish(warnings, complete: bool) -> None:
    """The end every command shares: each warning on one line of stderr, then exit
    EXIT_PARTIAL when a file was read only up to a fault."""
    for w in warnings:
        click.echo(f"tcpsift: warning: {w}", err=True)
    if not complete:
        sys.exit(EXIT_PARTIAL)


def sql_where(table, condition: str, option: str = "--where"):
    """The rows of `table` where the SQL `condition` holds (tcpsift.conditions.where), or
    a one-line error naming the option."""
    from tcpsift.conditions import ConditionError, where

    try:
        return where(table, condition)
    except ConditionError as e:
        fail(f"{option}: {e}")


def check_output(path: str | None, inputs=()) -> None:
    """Fail early (before any reading) when `path` cannot be the output: one of the input
    files (also through a symbolic or hard link), a directory, or in a directory that
    does not exist or cannot be written."""
    if path is None or path == "-":
        return
    for name in inputs:
        if name != "-" and os.path.exists(path) and os.path.exists(name) \
                and os.path.samefile(path, name):
            fail(f"{path}: is the input file {name}; not writing over it")
    if os.path.isdir(path):
        fail(f"{path}: is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        fail(f"{path}: no such directory: {directory}")
    if not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(path)
                                                        and not os.access(path, os.W_OK)):
        fail(f"{path}: cannot write: Permission denied")


@contextmanager
def output_file(path: str | None, inputs=(), binary: bool = False):
    """The file object a command writes its result to: standard output when `path` is
    None or "-"; else `path`, written under a temporary name beside it and renamed only
    once complete, so that a failed or interrupted run leaves nothing half-written (and
    an existing file untouched). A failed write is one line on stderr and exit 2; a
    closed pipe on standard output is left to the entry point (cli.main)."""
    if path is None or path == "-":
        yield sys.stdout.buffer if binary else sys.stdout
        return
    check_output(path, inputs)
    if os.path.exists(path) and not os.path.isfile(path):
        # a device, a FIFO, /dev/stdout: written in place (a rename would replace it)
        try:
            with open(path, "wb" if binary else "w") as fh:
                yield fh
        except OSError as e:
            fail(f"{path}: cannot write: {e.strerror or str(e).strip()}")
        return
    try:
        staged = StagedFile(path)
    except OSError as e:
        fail(f"{path}: cannot write: {e.strerror}")
    try:
        with open(staged.temp, "wb" if binary else "w") as fh:
            yield fh
        staged.commit()
    except BaseException as e:
        staged.discard()
        if isinstance(e, OSError):
            fail(f"{path}: cannot write: {e.strerror or str(e).strip()}")
        raise
