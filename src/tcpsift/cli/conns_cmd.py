"""`tcpsift conns`: the connection table, one line per TCP connection."""
from __future__ import annotations

import sys

import click

from tcpsift.cli.common import EXIT_PARTIAL, fail, sql_where
from tcpsift.cli.modes import announce, mode_option

# what the text view shows; --format csv/json/parquet write every column
SUMMARY = ("stream", "client", "client_port", "server", "server_port", "first_frame",
           "duration_ns", "syn_to_synack_ns", "c2s_packets", "s2c_packets", "c2s_payload",
           "s2c_payload", "c2s_retransmission", "s2c_retransmission", "conn_state", "history",
           "ended_by", "client_open_at_end")


@click.command("conns")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json", "parquet"]),
              default="text", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write to this file (required for parquet).")
@click.option("--where", metavar="EXPR", help="Keep rows where this SQL condition holds, e.g. "
              "\"syn_to_synack_ns > 300e6\" or \"ended_by = 'rst_client'\".")
@mode_option(("merge", "concat"))
def conns(files, fmt, output, where, mode):
    """One row per TCP connection of FILES: roles, handshake times, per-direction counts and
    tcp.analysis verdicts, Zeek conn_state and history (columns: docs/schema.md); - is
    standard input."""
    import polars as pl

    import tcpsift

    announce(files, mode)
    try:
        cap = tcpsift.read(list(files), mode=mode)
    except tcpsift.CaptureError as e:
        fail(str(e))
    table = cap.conns
    if where:
        table = sql_where(table, where)
    if fmt == "parquet":
        if not output:
            fail("--format parquet needs -o FILE")
        table.write_parquet(output)
    else:
        out = open(output, "w") if output else sys.stdout
        if fmt == "csv":
            table.write_csv(out)
        elif fmt == "json":
            out.write(table.write_json() + "\n")
        else:
            with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=400,
                           tbl_hide_dataframe_shape=True, tbl_formatting="ASCII_MARKDOWN",
                           tbl_hide_column_data_types=True):
                out.write(str(table.select(SUMMARY)) + "\n")
        if output:
            out.close()
    for w in cap.warnings:
        click.echo(f"tcpsift: warning: {w}", err=True)
    if not cap.complete:
        sys.exit(EXIT_PARTIAL)
