"""`tcpsift conns`: the connection table, one line per TCP connection."""
from __future__ import annotations

import io
import re

import click

from tcpsift.cli.common import cache_options, check_output, client_by_option, fail, finish, output_file, sql_where
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE
from tcpsift.cli.textview import width_option


def _valid_columns() -> list[str]:
    from tcpsift.schema import CONN_COLUMNS

    return [c.name for c in CONN_COLUMNS]


@click.command("conns")
# a directory or a missing file: a one-line error, not Click's usage text (cli/paths.py)
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json", "parquet"]),
              default="text", show_default=True,
              help="text: a table for reading (milliseconds, readable times); csv, json and "
                   "parquet: every column, exact integers (nanoseconds).")
@click.option("-o", "--output",
              help="Write to this file (required for parquet); it appears only when complete.")
@click.option("--where", metavar="EXPR", help="Keep rows where this SQL condition holds, e.g. "
              "\"syn_to_synack_ns > 300e6\" or \"ended_by = 'rst_client'\".")
@click.option("--sort", "sort_by", metavar="COL",
              help="Sort by this column (any column of docs/schema.md's connection table).")
@click.option("--desc", is_flag=True, help="Sort in descending order.")
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help="Keep the first N rows (after --where and --sort). The text view shows "
                   "200 rows unless this asks for more.")
@width_option
@click.option("--utc", is_flag=True, help="Times of the text view in UTC, not local time.")
@client_by_option
@mode_option(("merge", "concat"))
@cache_options
def conns(files, fmt, output, where, sort_by, desc, limit, width, utc, client_by, mode):
    """One row per TCP connection of FILES: roles, handshake times, per-direction counts and
    tcp.analysis verdicts, Zeek conn_state and history (columns: docs/schema.md); - is
    standard input."""
    if sort_by is not None and sort_by not in _valid_columns():
        fail(f"--sort: unknown column {sort_by!r}; valid: {', '.join(_valid_columns())}")
    if desc and sort_by is None:
        fail("--desc needs --sort COL")
    if fmt == "parquet" and not output:
        fail("--format parquet needs -o FILE")
    check_output(output, files)

    import tcpsift
    from tcpsift.cache import cache_applies
    from tcpsift.cli.progress import progress

    # from the cache: only the connection table is read; without it, the capture is
    # decoded and analysed chunk by chunk, no table held (tcpsift.tcp.connections)
    cached = cache_applies(files)
    announce(files, mode)
    # on a terminal, after a second, a spinner on stderr; gone before the table is written
    with progress() as shown:
        shown.step("reading the capture")
        try:
            if not cached:
                from tcpsift.tcp.connections import read_connections
                table, warnings, complete = read_connections(list(files), mode, client_by)
            else:
                cap = tcpsift.read(list(files), mode=mode)
        except tcpsift.CaptureError as e:
            fail(str(e))
        shown.step("TCP analysis and connections")
        try:
            if cached and client_by == "ip":
                table = cap.conns
            elif cached:
                from tcpsift.tcp.connections import connections
                table = connections(cap, client_by=client_by)
        except ValueError as e:
            fail(f"--client-by {client_by}: {e}")
    total = len(table)
    if where:
        table = sql_where(table, where)
    if sort_by is not None:
        # nulls (e.g. no SYN-ACK seen) last in either order: they are not extremes
        table = table.sort(sort_by, descending=desc, nulls_last=True, maintain_order=True)
    if limit is not None:
        table = table.head(limit)
    with output_file(output, files, binary=fmt == "parquet") as out:
        if fmt == "parquet":
            # through memory: Polars reports a failed write to a file object as a
            # format error, Python's own write as the OSError it is
            encoded = io.BytesIO()
            table.write_parquet(encoded)
            out.write(encoded.getbuffer())
        elif fmt == "csv":
            table.write_csv(out)
        elif fmt == "json":
            out.write(table.write_json() + "\n")
        else:
            asked = set(re.findall(r"\w+", where or "")) | {sort_by}
            if client_by == "mac":
                asked.add("client_open_to_other_servers_at_end")
            _text_view(table, total, out, width, utc, sort_by, limit, asked)
    if cached:
        warnings, complete = cap.warnings, cap.complete
    finish(warnings, complete)


def _text_view(table, total: int, out, width, utc: bool, sort_by, limit,
               asked: set[str]) -> None:
    """`asked`: the columns the command's options are about (--where, --sort, ...)."""
    from dataclasses import replace

    import polars as pl

    from tcpsift.addresses import endpoint_expr
    from tcpsift.cli import textview as tv

    C = pl.col
    rows = len(table)
    shown = table if limit is not None else table.head(tv.TEXT_ROWS)
    first_ns = shown["first_ts_ns"].min() if len(shown) else None
    days = shown.select(pl.from_epoch("first_ts_ns", time_unit="ns").dt.date().n_unique()).item() \
        if len(shown) else 1
    start, zone = tv.clock_text(C("first_ts_ns"), first_ns, utc, with_date=days > 1)

    def pair_of(first, second, fmt=lambda e: e.cast(pl.String)):
        return pl.concat_str(fmt(C(first)), pl.lit("/"), fmt(C(second)))

    def pair(stat, fmt=lambda e: e.cast(pl.String)):
        return pair_of(f"c2s_{stat}", f"s2c_{stat}", fmt)

    V = tv.ViewColumn
    view = [  # in the order shown; priority: which stay when the width is short
        (V("stream", "stream", True, 100), C("stream").cast(pl.String)),
        (V("client", "client", False, 99), endpoint_expr("client", "client_port")),
        (V("server", "server", False, 98), endpoint_expr("server", "server_port")),
        (V("start", f"start\n({'UTC' if utc else 'local'})", False, 60), start),
        (V("duration", "duration\nms", True, 95), tv.ms_text(C("duration_ns"))),
        (V("handshake", "SYN→SYN-ACK\nms", True, 94), tv.ms_text(C("syn_to_synack_ns"))),
        (V("packets", "packets\nc→s/s→c", True, 80), pair("packets")),
        (V("payload", "payload\nc→s/s→c", True, 70), pair("payload", tv.bytes_text)),
        (V("retrans", "retrans\nc→s/s→c", True, 85), pair("retransmission")),
        (V("state", "state", False, 93), C("conn_state").cast(pl.String)),
        (V("ended", "ended\nby", False, 92), C("ended_by").cast(pl.String)),
        (V("open", "open at end\nother/same srv", True, 90),
         pair_of("client_open_to_other_servers_at_end", "client_open_to_same_server_at_end")),
        (V("frame", "first\nframe", True, 40), C("first_frame").cast(pl.String)),
        (V("history", "history", False, 30), C("history")),
    ]
    if sort_by is not None and not any(sort_by in expr.meta.root_names() for _, expr in view):
        # show what the rows are sorted by, right after the stream
        heading, value = sort_by, C(sort_by).cast(pl.String)
        if sort_by.endswith("_ts_ns"):    # a time, not a duration
            heading = sort_by[:-6] + "\ntime"
            value = tv.clock_text(C(sort_by), first_ns, utc, with_date=days > 1)[0]
        elif sort_by.endswith("_ns"):
            heading, value = sort_by[:-3] + "\nms", tv.ms_text(C(sort_by))
        view.insert(1, (V("_sorted", heading, True, 97), value))
    # what the command asked about stays when the width is short
    view = [(replace(col, priority=col.priority + 100) if asked & set(expr.meta.root_names())
             else col, expr) for col, expr in view]
    cells = shown.select(expr.alias(col.name) for col, expr in view)
    styles = ["red" if e.startswith("rst") else None for e in shown["ended_by"].cast(pl.String)]
    what = f"{rows:,} of {total:,} connections" if rows != total else f"{total:,} connections"
    if len(shown) < rows:
        what = f"first {len(shown):,} of {what} (--limit N for more; --format csv for all)"
    caption = f"{what}; times in ms; start: {zone}" if rows else what
    tv.show(cells, [col for col, _ in view], out, tv.terminal_width(out, width), caption,
            styles)
