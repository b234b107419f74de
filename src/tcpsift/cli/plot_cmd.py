"""`tcpsift plot`: a picture of one TCP connection (tcpsift.workflow.plots), and with
--data the plotted series as CSV."""
from __future__ import annotations

import os

import click

from tcpsift.cli.common import cache_options, fail, finish
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE
from tcpsift.outputs import StagedFile

FORMATS = ("png", "svg", "pdf")


def _staged(path: str) -> StagedFile:
    """A new file beside `path` that replaces it only when everything is written."""
    try:
        return StagedFile(path)
    except OSError as e:
        fail(f"{path}: cannot write here ({e.strerror or e})")


@click.command("plot")
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.argument("kind")
@click.option("--stream", type=int, metavar="N", help="The connection: its tcp.stream number "
              "(tcpsift conns lists them).")
@click.option("-o", "--output", metavar="OUT.{png,svg,pdf}",
              help="The picture; the format follows the extension.")
@click.option("--direction", metavar="c2s|s2c", help="The data flow to study: client to "
              "server or server to client (default: the one that carried more payload).")
@click.option("--data", "data_path", metavar="OUT.csv",
              help="Also write the plotted series as CSV (frame numbers included).")
@click.option("--average", type=float, metavar="SECONDS",
              help="throughput: moving-average period (default: a twentieth of the "
              "connection, at least four round trips, 1 ms to 1 s).")
@click.option("--start", type=float, metavar="SECONDS",
              help="Draw from this time on (seconds since the connection's first packet).")
@click.option("--end", type=float, metavar="SECONDS", help="Draw up to this time.")
@mode_option(("merge", "concat"))
@cache_options
def plot(files, kind, stream, output, direction, data_path, average, start, end, mode):
    """Draw KIND for one TCP connection of FILES: window (receive window over time),
    window-ack (window and ACK number), tseq (time-sequence graph, tcptrace's marks), rtt
    (ACK round-trip times), throughput (throughput and goodput), inflight (bytes in flight
    against the receive window)."""
    from tcpsift.workflow import plots

    if kind not in plots.KINDS:
        fail(f"unknown plot kind {kind!r}: one of {', '.join(plots.KINDS)}")
    if stream is None:
        fail("--stream N is required: the connection's tcp.stream number "
             "(tcpsift conns FILE lists them)")
    if not output:
        fail(f"-o OUT is required, with one of the extensions {', '.join(FORMATS)}")
    fmt = os.path.splitext(output)[1].lower().lstrip(".")
    if fmt not in FORMATS:
        fail(f"{output}: unknown picture format {fmt or '(no extension)'!r}: "
             f"use .{', .'.join(FORMATS)}")
    if direction is not None and direction not in plots.DIRECTIONS:
        fail(f"unknown direction {direction!r}: use c2s or s2c")
    if average is not None and not average > 0:
        fail(f"--average {average}: must be a positive number of seconds")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail(plots.INSTALL_HINT)

    import tcpsift
    from tcpsift.cli.progress import progress

    announce(files, mode)
    staged = [_staged(output)] + ([_staged(data_path)] if data_path else [])
    try:
        # on a terminal, after a second, a spinner on stderr; gone before the warnings
        with progress() as shown:
            shown.step("reading the capture")
            try:
                cap = tcpsift.read(list(files), mode=mode)
                shown.step("TCP analysis")
                conn = plots.connection(cap, stream, direction)
            except (tcpsift.CaptureError, plots.PlotError) as e:
                fail(str(e))
            shown.step("drawing")
            series = plots.series(conn, kind, average, start, end)
            fig = plots.figure(conn, kind, series)
        fig.savefig(staged[0].temp, format=fmt, dpi=100, metadata=plots.UNDATED[fmt])
        if data_path:
            # times and RTTs in seconds to the nanosecond, as tshark prints them
            series.write_csv(staged[1].temp, float_precision=9)
        for s in staged:
            s.commit()
    finally:
        for s in staged:
            s.discard()
    finish(cap.warnings, cap.complete)
