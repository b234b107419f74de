"""`tcpsift fields`: print Wireshark fields per frame, byte for byte like tshark -T fields."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE


def _fail(msg: str, code: int = 2):
    click.echo(f"tcpsift: {msg}", err=True)
    sys.exit(code)


@click.command("fields")
@click.argument("files", nargs=-1, type=CAPTURE_FILE)
@click.option("-e", "names", multiple=True, metavar="FIELD",
              help="Wireshark field to print (repeatable), e.g. -e ip.src -e tcp.port.")
@click.option("-Y", "display_filter", metavar="FILTER",
              help="Display filter (subset): tcp.port == 80 and not ip.src == 10.0.0.1")
@click.option("--list", "list_fields", is_flag=True, help="List the supported fields and exit.")
@mode_option()
def fields(files, names, display_filter, list_fields, mode):
    """Print FIELDs of every frame of FILE(s), tab-separated, like
    `tshark -r FILE -T fields -e FIELD ...`. Several files are one capture, merged as
    mergecap merges them (--mode concat: one after the other; separate: each file
    printed as a capture of its own, frame numbers from 1); FILE - is standard input
    (e.g. tcpdump -U -w - | tcpsift fields - -e ...)."""
    if files and names and not list_fields:
        from tcpsift.textstream.fields import fast_path

        fast, select = fast_path(list(names), display_filter)
        if fast:        # the fast path: no Polars imported at all
            _stream(list(files), list(names), select, mode=mode)
            return
    # Heavy imports only here, so that `tcpsift --help` stays light.
    from tcpsift.fields import FieldError, field_names, resolve
    from tcpsift.fields.filter import compile_filter

    if list_fields:
        click.echo("\n".join(field_names()))
        return
    if not files:
        _fail("no capture file given")
    if not names:
        _fail("no field given (use -e FIELD; --list shows them)")
    # Check fields and filter before reading anything: a typo must not cost a 1 GB read.
    try:
        for n in names:
            resolve(n)
        flt = compile_filter(display_filter) if display_filter else None
    except FieldError as e:
        _fail(str(e))
    if mode != "separate" and _from_cache(list(files), list(names), flt, mode):
        return
    _stream(list(files), list(names), flt, mode=mode)


def _from_cache(paths: list[str], names: list[str], flt, mode: str) -> bool:
    """The table way from the cache, when it holds the capture's tables (then printed
    and the command ended: True); else False, and nothing read."""
    from tcpsift.capture.capture import cached

    cap = cached(paths, mode)
    if cap is None:
        return False
    from tcpsift.textstream.fields import fields_from_tables

    announce(paths, mode)
    with _output() as out:
        fields_from_tables(cap, names, out, flt)
    _finish(cap.warnings, cap.complete)
    return True


def _stream(paths: list[str], names: list[str], flt=None, mode="merge"):
    """Files printed chunk by chunk, in memory bounded by the chunk
    (tcpsift.textstream.fields), as `mode` says: merged by time as they are read (or
    one after the other when that is their merge order: a ring buffer's files, given
    in order), one after the other, or each on its own."""
    from tcpsift.capture.files import each_file
    from tcpsift.errors import CaptureError
    from tcpsift.textstream.fields import stream_fields

    announce(paths, mode)
    try:
        with _output() as out:
            if mode == "separate":
                runs, warnings, complete = each_file(
                    paths, lambda path: stream_fields([path], names, out, flt))
                for run_warnings, run_complete in runs:
                    warnings += run_warnings
                    complete &= run_complete
            else:
                warnings, complete = stream_fields(paths, names, out, flt, mode)
    except CaptureError as e:
        _fail(str(e))
    _finish(warnings, complete)


def _finish(warnings: list[str], complete: bool):
    from tcpsift.capture.source import BOUND_NOTE
    for w in warnings:
        if not complete or w.endswith(BOUND_NOTE):
            click.echo(f"tcpsift: warning: {w}", err=True)
    if not complete:
        sys.exit(1)


@contextmanager
def _output():
    """stdout as a binary file; a reader that went away (| head) ends the run quietly."""
    out = sys.stdout.buffer
    try:
        yield out
        out.flush()
    except OSError as e:
        # Polars raises a plain OSError for EPIPE. Not an error, and stdout goes to
        # /dev/null so that the exit flush does not fail again. Any other failed write
        # (a full disk, a closed stdout) is the CLI's one line for every command
        # (tcpsift.cli.main.run).
        import errno
        import os
        if e.errno != errno.EPIPE and "Broken pipe" not in str(e):
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
