"""What every command does the same way: open captures, report problems, exit codes."""
from __future__ import annotations

import sys

import click

EXIT_OK = 0
EXIT_PARTIAL = 1   # output produced, but a file was read only up to a fault
EXIT_FAILED = 2    # nothing read, or a usage error


def fail(message: str, code: int = EXIT_FAILED):
    """One line on stderr, then exit: never a traceback for user error."""
    click.echo(f"tcpsift: {message}", err=True)
    sys.exit(code)


def sql_where(table, condition: str, option: str = "--where"):
    """The rows of `table` (a Polars DataFrame) where the SQL `condition` holds, dtypes
    kept. Categorical and Enum columns (addresses, states) take part as their text: Polars'
    SQL refuses LIKE and string functions on them and compares them by code, so
    `client like '2001%'` and `server > '198'` would fail or mislead."""
    import polars as pl

    as_text = [pl.col(name).cast(pl.String) for name, dtype in table.schema.items()
               if isinstance(dtype, (pl.Categorical, pl.Enum))]
    view = table.with_columns(as_text).with_row_index("_tcpsift_row")
    try:
        rows = view.sql(f"SELECT _tcpsift_row FROM self WHERE {condition}")["_tcpsift_row"]
    except Exception as e:  # Polars raises several error types for a bad condition
        fail(f"{option}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
    return table[rows]
