"""`tcpsift sql`: one SQL statement over a capture's tables (DuckDB)."""
from __future__ import annotations

import io
import os

import click

from tcpsift.cli.common import cache_options, check_output, fail, finish, output_file
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE
from tcpsift.cli.textview import width_option
from tcpsift.workflow.sql import MEMORY_LIMIT


@click.command("sql")
@click.argument("query")
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json", "parquet"]),
              default="text", show_default=True,
              help="text: a table for reading (the first 200 rows); csv, json, parquet: every row.")
@click.option("-o", "--output",
              help="Write to this file (required for parquet); it appears only when complete.")
@click.option("--memory-limit", default=MEMORY_LIMIT, show_default=True, metavar="SIZE",
              help="DuckDB's memory limit for the statement's work (the tables are not counted).")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="DuckDB's threads [default: one per core].")
@width_option
@mode_option(("merge", "concat"))
@cache_options
def sql(query, files, fmt, output, memory_limit, threads, width, mode):
    """Run the SQL statement QUERY (DuckDB) over the views packets, tcp, conns and layers
    of FILES, e.g. "SELECT src, count(*) FROM packets GROUP BY src". Addresses and
    states are text; packets.time is a timestamp. The statement reads nothing else (no
    files, no COPY, no ATTACH, no extensions)."""
    if fmt == "parquet" and not output:
        fail("--format parquet needs -o FILE")
    if os.path.isfile(query) and not all(f == "-" or os.path.exists(f) for f in files):
        # (`tcpsift sql capture.pcap "SELECT ..."`: the order of sqlite3 or duckdb's own
        # command, database first)
        fail(f"{query}: a file where the statement goes: the statement comes first, "
             f"then the capture files (tcpsift sql QUERY FILES...)")
    check_output(output, files)
    try:
        import duckdb  # noqa: F401  (only to say early that it is missing)
    except ImportError:
        from tcpsift.workflow.sql import INSTALL_HINT
        fail(INSTALL_HINT)

    import tcpsift
    from tcpsift.cli.progress import progress
    from tcpsift.workflow import sql as sq

    announce(files, mode)
    with progress() as shown:
        shown.step("reading the capture")
        try:
            cap = tcpsift.read(list(files), mode=mode, columns=sq.packet_columns(query))
        except tcpsift.CaptureError as e:
            fail(str(e))
        shown.step("running the statement")
        try:
            table = sq.sql(cap, query, memory_limit=memory_limit, threads=threads)
        except sq.SqlError as e:
            fail(str(e))
    with output_file(output, files, binary=fmt == "parquet") as out:
        if fmt == "parquet":
            encoded = io.BytesIO()      # (as conns: a failed write is Python's OSError)
            table.write_parquet(encoded)
            out.write(encoded.getbuffer())
        elif fmt == "csv":
            _as_text(table, table.columns).write_csv(out)
        elif fmt == "json":
            out.write(table.write_json() + "\n")
        else:
            _text_view(table, out, width)
    finish(cap.warnings, cap.complete)


def _as_text(table, columns):
    """`columns` of `table`, where CSV and the text view have no form for them, as text:
    lists as [a, b], structs as JSON."""
    import polars as pl

    def text(name, dtype):
        if isinstance(dtype, (pl.List, pl.Array)):
            items = pl.col(name).cast(pl.List(dtype.inner)).list.eval(pl.element().cast(pl.String))
            return (pl.lit("[") + items.list.join(", ") + pl.lit("]")).alias(name)
        return pl.col(name).struct.json_encode().alias(name)

    return table.with_columns(text(c, table.schema[c]) for c in columns
                              if table.schema[c].is_nested())


def _text_view(table, out, width) -> None:
    import polars as pl

    from tcpsift.cli import textview as tv

    rows = len(table)
    shown = table.head(tv.TEXT_ROWS)
    # the statement's columns in its order; the first ones stay when the width is short
    columns = [tv.ViewColumn(f"c{i}", name, table.schema[name].is_numeric(), -i)
               for i, name in enumerate(table.columns)]
    cells = _as_text(shown, table.columns).select(
        pl.col(name).cast(pl.String).alias(f"c{i}") for i, name in enumerate(table.columns))
    caption = f"{rows:,} row{'s' if rows != 1 else ''}"
    if len(shown) < rows:
        caption = f"first {len(shown):,} of {caption} (LIMIT, or --format csv for all)"
    # (the caption on a line of its own: rich would wrap it to a narrow table's width)
    tv.show(cells, columns, out, tv.terminal_width(out, width))
    out.write(caption + "\n")
