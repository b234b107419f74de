"""Conditions on a table's columns, as the commands' `--where` takes them: an SQL boolean
expression (Polars' SQL), e.g. "direction = 'c2s' and window < 500000" or
"client like '2001%'".

A condition may use the columns, literals, operators and functions, including aggregates
over the whole table (`window = min(window)`); it may not be a query: Polars runs a
subquery while it parses the expression, and a subquery can read files
(`read_csv(...)`), so anything with SELECT outside a string literal is refused, and every
name must be one of the table's columns. Functions are those of a list that cannot be
made to build large values from a small condition (no `lpad(x, 2000000000, ...)`, which
aborts the process in Polars). Categorical and Enum columns (addresses, states)
take part as their text: Polars' SQL refuses LIKE and string functions on them and
compares them by code.
"""
from __future__ import annotations

import re

# single-quoted SQL strings ('' is a quote inside), which may hold any word
_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_QUERY = re.compile(r"\bselect\b", re.IGNORECASE)
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")
# what a condition may call (and the keywords a parenthesis may follow); any other name
# before "(" is refused
FUNCTIONS = frozenset("""
    and or not in is between like ilike
    abs ceil ceiling floor round sign sqrt ln log log10 log2 exp power pow mod
    lower upper length char_length octet_length strpos starts_with ends_with left right
    substr substring trim ltrim rtrim reverse concat regexp_like
    coalesce nullif greatest least cast try_cast
    count sum min max avg mean median stddev variance first last
    date date_part extract date_trunc strftime
""".split())


_KEYWORDS = frozenset("and or not in is between like ilike".split())


class ConditionError(ValueError):
    """The condition is not one on the table's columns; the message is one line that
    names the valid columns."""


def where(table, condition: str):
    """The rows of `table` (a Polars DataFrame) where `condition` holds, dtypes kept."""
    import polars as pl

    valid = ", ".join(table.columns)
    unquoted = _SQL_STRING.sub("''", condition)
    if _QUERY.search(unquoted):
        raise ConditionError(f"a condition on the columns, not a query (columns: {valid})")
    refused = sorted({name for name in _CALL.findall(unquoted)
                      if name.lower() not in FUNCTIONS})
    if refused:
        raise ConditionError(f"function {', '.join(refused)} not allowed in a condition "
                             f"(allowed: {', '.join(sorted(FUNCTIONS - _KEYWORDS))})")
    try:
        expr = pl.sql_expr(condition)
        unknown = sorted(set(expr.meta.root_names()) - set(table.columns))
    except Exception as e:  # Polars raises several error types for a bad condition
        raise ConditionError(f"{_first_line(e)} (columns: {valid})") from None
    if unknown:
        raise ConditionError(f"no column {', '.join(unknown)} (columns: {valid})")
    as_text = [pl.col(name).cast(pl.String) for name, dtype in table.schema.items()
               if isinstance(dtype, (pl.Categorical, pl.Enum))]
    try:
        rows = (table.with_columns(as_text).with_row_index("_tcpsift_row")
                .filter(expr)["_tcpsift_row"])
    except Exception as e:
        raise ConditionError(f"{_first_line(e)} (columns: {valid})") from None
    return table[rows]


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
