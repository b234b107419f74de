"""`tcpsift ladder`: the packets of one TCP connection, client at the left, server indented."""
from __future__ import annotations

import itertools

import click

from tcpsift.cli.common import cache_options, check_output, fail, finish, output_file
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE

# the text view's lines: client-to-server at the left, server-to-client indented
ARROWS = {"c2s": "-->", "s2c": " " * 8 + "<--"}
STYLES = {"c2s": "cyan", "s2c": "magenta"}
VERDICT_STYLE = "bold red"


@click.command("ladder")
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("--stream", type=int, metavar="N", help="The connection with this tcp.stream.")
@click.option("--conn", metavar='"A:P B:P"', help="The connection between these endpoints "
              "(either order; IPv6 as [ADDRESS]:PORT).")
@click.option("--frame", type=int, metavar="N", help="The connection frame N belongs to.")
@click.option("--where", metavar="EXPR", help="Keep rows where this SQL condition on the "
              "columns holds, e.g. \"direction = 'c2s' and window < 500000\".")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True, help="Output format; csv and json write the columns frame, "
              "direction, time_rel_s, flags, seq, ack, len, window, verdicts.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
@click.option("--utc", is_flag=True, help="Absolute times in UTC (default: local time).")
@mode_option(("merge", "concat"))
@cache_options
def ladder(files, stream, conn, frame, where, fmt, output, utc, mode):
    """The ladder of one TCP connection of FILES: per packet the frame number, the time since
    the connection's first packet, flags, relative seq and ack, payload length, scaled
    window and tshark's tcp.analysis verdicts; client-to-server lines at the left (-->),
    server-to-client lines indented (<--). Choose the connection with exactly one of
    --stream, --conn or --frame. - is standard input."""
    import tcpsift
    from tcpsift.cache import cache_applies
    from tcpsift.cli.progress import progress
    from tcpsift.workflow import ladder as L

    check_output(output, files)
    announce(files, mode)
    try:
        L.check_choice(stream=stream, conn=conn, frame=frame)
        # on a terminal, after a second, a spinner on stderr; gone before the ladder
        with progress() as shown:
            shown.step("reading the capture")
            if stream is not None and not cache_applies(files):
                # without tables: only the stream's frames are kept as they are decoded
                lad, warnings, complete = L.read_ladder(list(files), stream, mode)
            else:
                # only the packet columns the ladder reads are built (or read from
                # the cache, where the first read keeps them all)
                cap = tcpsift.read(list(files), columns=L.PACKET_COLUMNS, mode=mode)
                shown.step("TCP analysis")
                lad = L.build(cap, stream=stream, conn=conn, frame=frame)
                warnings, complete = cap.warnings, cap.complete
        table = L.where(lad.table, where) if where else lad.table
    except (tcpsift.CaptureError, L.LadderError) as e:
        fail(str(e))
    with output_file(output, files) as out:
        if fmt == "csv":
            L.write_csv(table, out)
        elif fmt == "json":
            L.write_json(table, out)
        else:
            _text(out, lad.connection, table, where, utc, output is None)
    finish(warnings, complete)


def _text(out, conn, table, where, utc: bool, to_stdout: bool) -> None:
    from tcpsift.workflow.ladder import header_lines, text_lines

    lines = text_lines(table)
    head = header_lines(conn, table.height if where else None, utc)
    console = None
    if to_stdout:
        from rich.console import Console

        console = Console(file=out, highlight=False, soft_wrap=True, emoji=False,
                          markup=False)
        if not console.is_terminal or console.no_color:
            console = None
    if console is None:
        out.write("\n".join(head) + "\n")
        for direction, main, verdicts in lines.iter_rows():
            out.write(f"{ARROWS[direction]}{main}{verdicts}\n")
        return
    from rich.text import Text

    for h in head:
        console.print(Text(h, style="bold"))
    # one Text per block of lines: printing line by line costs rich a render each
    rows = lines.iter_rows()
    while block_rows := list(itertools.islice(rows, 2000)):
        block = Text()
        for direction, main, verdicts in block_rows:
            block.append(ARROWS[direction] + main, style=STYLES[direction])
            block.append(verdicts + "\n", style=VERDICT_STYLE)
        console.print(block, end="")
