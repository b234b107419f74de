"""`tcpsift report`: one self-contained HTML page about a capture."""
from __future__ import annotations

import os
import threading

import click

from tcpsift.cli.common import cache_options, client_by_option, fail, finish
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE


@click.command("report")
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("-o", "--output", required=True, metavar="FILE.html",
              help="The HTML file to write (replaced whole, or left as it was on failure).")
@click.option("--stream", "streams", type=int, multiple=True, metavar="N",
              help="Show this tcp.stream in detail too (ladder and plots); repeatable.")
@client_by_option
@mode_option(("merge", "concat"))
@cache_options
def report(files, output, streams, client_by, mode):
    """An HTML report of FILES (read as one capture) that opens offline and can be mailed:
    the capture summary, TCP analysis verdict counts, the slowest handshakes, the client
    resets with the connections open then, every connection in a sortable, filterable
    table, and the ladder and plots of the connections that matter (slowest handshake,
    most retransmissions, zero windows, resets). - is standard input."""
    import tcpsift
    from tcpsift.cli.progress import progress
    from tcpsift.workflow.report import write_report

    # before the capture is read: a mistyped path should not cost the reading
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        fail(f"{output}: is a folder: give the HTML file to write")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{output}: cannot write: {folder} is not a writable folder")
    announce(files, mode)
    with progress() as shown:
        shown.step("reading the capture")
        try:
            cap = tcpsift.read(list(files), mode=mode)
        except tcpsift.CaptureError as e:
            fail(str(e))
        shown.step("TCP analysis and connections")
        plotting = _import_matplotlib_meanwhile()
        try:
            conns = cap.conns
            unknown = sorted(set(streams) - set(conns["stream"].to_list()))
            if unknown:
                valid = (f"streams are 0-{conns['stream'].max()}" if len(conns)
                         else "the capture has no TCP connection")
                fail(f"--stream {unknown[0]}: no such TCP stream ({valid})")
            write_report(cap, output, streams, progress=shown.update, client_by=client_by,
                         mode=mode)
        except OSError as e:
            fail(f"{output}: cannot write: {e.strerror or e}")
        except ValueError as e:    # --client-by mac on a capture without Ethernet headers
            fail(f"--client-by {client_by}: {e}")
        finally:        # (no exit while it imports)
            plotting.join()
    finish(cap.warnings, cap.complete)


def _import_matplotlib_meanwhile() -> threading.Thread:
    """Import the matplotlib modules the figures use in a thread, started as the TCP
    analysis begins: the analysis and the connection table keep one core busy and leave
    the other idle, and the import (0.2 s of Python) would otherwise come after them
    (bench_report: 0.15 s of the report's 2 s). Only matplotlib's own modules, none the
    command's thread imports meanwhile; the figures' first `import` waits for it."""
    def run():
        try:
            import matplotlib.backends.backend_agg  # noqa: F401  (constrained layout measures)
            import matplotlib.backends.backend_svg  # noqa: F401
            import matplotlib.figure  # noqa: F401
            import matplotlib.layout_engine  # noqa: F401
            import matplotlib.ticker  # noqa: F401
        except ImportError:
            pass        # (optional: the report says how to install it)

    thread = threading.Thread(target=run, name="tcpsift-import-matplotlib", daemon=True)
    thread.start()
    return thread
