"""`tcpsift sql` and `Capture.sql`: one SQL statement over a capture, run by DuckDB.

The views `packets`, `tcp`, `conns` and `layers` are the capture's tables: the cache's
Parquet files when the capture is cached (tcpsift.cache; DuckDB then reads only the
columns and row groups a statement needs), else handed to DuckDB as Arrow (no copy of
the columns). Address, state and other dictionary-encoded
columns are text in the views (`WHERE src = '192.0.2.10'`), `packets.time` is a
timestamp. A table is built and registered only when the statement names it: a query
on `packets` does not run the TCP analysis.

The statement may read only those views: external access (files, COPY, ATTACH,
extensions, Python variables) is turned off once they are registered (but for the
cache's files of the views, DuckDB's allowed_paths), and the
configuration is then locked, with a memory limit and a number of threads, so the
statement cannot turn it on again.
"""
from __future__ import annotations

import os
import re

VIEWS = ("packets", "tcp", "conns", "layers")
MEMORY_LIMIT = "2GB"
INSTALL_HINT = "SQL needs DuckDB: pip install 'tcpsift[sql]' (or pip install duckdb)"


class SqlError(ValueError):
    """A statement DuckDB refused, or DuckDB missing: DuckDB's message in one line."""


def views_named(query: str) -> list[str]:
    """The views a statement names (a view it does not name, it cannot read)."""
    words = {w.lower() for w in re.findall(r"\w+", query)}
    return [v for v in VIEWS if v in words]


def packet_columns(query: str) -> set[str] | None:
    """The packet-table columns a statement can read (None: every one): the columns it
    names, plus those the TCP analysis and the connection table are built from when it
    names them. `*` (but count(*)) and DuckDB's COLUMNS(...) may read any column."""
    from tcpsift import schema

    star = re.sub(r"\bcount\s*\(\s*\*\s*\)", "", query, flags=re.IGNORECASE)
    if "*" in star or re.search(r"\bcolumns\s*\(", query, re.IGNORECASE):
        return None
    words = set(re.findall(r"\w+", query.lower()))
    columns = words & set(schema.PACKET_COLUMN_NAMES)
    if words & {"tcp", "conns"}:
        from tcpsift.tcp import INPUT_COLUMNS
        columns |= set(INPUT_COLUMNS)
    if "conns" in words:
        from tcpsift.tcp.connections import PACKET_COLUMNS
        columns |= set(PACKET_COLUMNS)
    return columns


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise SqlError(INSTALL_HINT) from None
    return duckdb


def connect(cap, query: str = " ".join(VIEWS), memory_limit: str | None = None,
            threads: int | None = None):
    """A DuckDB connection holding the views `query` names (all by default), locked to
    them (see the module's docstring), with DuckDB's `memory_limit` (default
    MEMORY_LIMIT) and `threads` (default: one per core)."""
    import polars as pl

    duckdb = _duckdb()
    con = duckdb.connect(":memory:")
    allowed = []
    for name in views_named(query):
        cached = cap.cached_file(name) if hasattr(cap, "cached_file") else None
        if cached is not None:
            # DuckDB reads the cache's Parquet file itself: only the columns and row
            # groups the statement needs (dictionary columns are text there already)
            allowed.append(str(cached))
            file_id = cap._first_file_id
            replace = f" REPLACE (CAST({file_id} AS USMALLINT) AS file_id)" \
                if file_id and name != "conns" else ""
            con.execute(f'CREATE VIEW "{name}" AS SELECT *{replace} FROM '
                        f"read_parquet({_quoted(str(cached))})")
            continue
        table = getattr(cap, name)
        as_text = [f'CAST("{column}" AS VARCHAR) AS "{column}"'
                   for column, dtype in table.schema.items()
                   if isinstance(dtype, (pl.Categorical, pl.Enum))]
        con.register(f"_{name}", table.to_arrow())
        replace = f" REPLACE ({', '.join(as_text)})" if as_text else ""
        con.execute(f'CREATE VIEW "{name}" AS SELECT *{replace} FROM "_{name}"')
    settings = [("allowed_paths", "[" + ", ".join(map(_quoted, allowed)) + "]")] \
        if allowed else []
    for setting, value in (*settings, ("memory_limit", f"'{memory_limit or MEMORY_LIMIT}'"),
                           ("threads", str(threads or os.cpu_count() or 1)),
                           ("python_enable_replacements", "false"),
                           ("autoinstall_known_extensions", "false"),
                           ("autoload_known_extensions", "false"),
                           ("allow_community_extensions", "false"),
                           ("enable_external_access", "false"),
                           ("lock_configuration", "true")):
        try:
            con.execute(f"SET {setting} = {value}")
        except duckdb.Error as e:
            raise SqlError(f"{setting}: {_one_line(e)}") from None
    return con


def sql(cap, query: str, memory_limit: str | None = None, threads: int | None = None):
    """The result of one SQL statement (or several: the last one's) over the capture's
    views, as a Polars DataFrame (empty when the statement returns no rows, e.g. SET).
    Raises SqlError with DuckDB's message in one line."""
    import polars as pl

    duckdb = _duckdb()
    con = connect(cap, query, memory_limit, threads)
    try:
        result = con.sql(query)
        return pl.DataFrame() if result is None else result.pl()
    except duckdb.Error as e:
        raise SqlError(_one_line(e)) from None
    finally:
        con.close()


def _quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _one_line(error: Exception) -> str:
    """DuckDB's message without the query it quotes (which spans lines)."""
    text = str(error).strip()
    return " ".join(text.split("\n\n")[0].split()) or type(error).__name__
