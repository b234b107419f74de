"""`tcpsift fields`: print Wireshark fields per frame, byte for byte like tshark -T fields."""
from __future__ import annotations

import sys

import click


def _fail(msg: str, code: int = 2):
    click.echo(f"tcpsift: {msg}", err=True)
    sys.exit(code)


@click.command("fields")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-e", "names", multiple=True, metavar="FIELD",
              help="Wireshark field to print (repeatable), e.g. -e ip.src -e tcp.port.")
@click.option("-Y", "display_filter", metavar="FILTER",
              help="Display filter (subset): tcp.port == 80 and not ip.src == 10.0.0.1")
@click.option("--list", "list_fields", is_flag=True, help="List the supported fields and exit.")
def fields(files, names, display_filter, list_fields):
    """Print FIELDs of every frame of FILE(s), tab-separated, like
    `tshark -r FILE -T fields -e FIELD ...` (several files are merged by time)."""
    # Heavy imports only here, so that `tcpsift --help` stays light.
    from tcpsift.fields import FieldError, field_names, packet_columns, resolve, write
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

    import tcpsift

    try:
        # without a filter, only the columns the fields read are built
        columns = None if flt is not None else packet_columns(list(names))
        cap = tcpsift.read(list(files) if len(files) > 1 else files[0], columns=columns)
    except tcpsift.CaptureError as e:
        _fail(str(e))

    mask = flt(cap) if flt is not None else None
    out = sys.stdout.buffer
    try:
        write(cap, list(names), out, mask)
        out.flush()
    except OSError as e:
        # Polars raises a plain OSError for EPIPE. The reader went away (| head): not an
        # error, and stdout goes to /dev/null so that the exit flush does not fail again.
        import errno
        import os
        if e.errno != errno.EPIPE and "Broken pipe" not in str(e):
            _fail(f"writing output: {e}")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if not cap.complete:
        for w in cap.warnings:
            click.echo(f"tcpsift: {w}", err=True)
        sys.exit(1)
