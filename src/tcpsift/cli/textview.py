"""Terminal tables: a Polars frame of display text drawn as a rich table that fits a width.

    show(cells, columns, out, width=..., caption=...)

`cells` holds one String column per `ViewColumn` (already formatted: milliseconds,
readable times, units). The columns that do not fit the width are left out, lowest
`priority` first, and named in the caption, rather than squeezed into wrapped cells.
Colour only on a terminal; plain text in a pipe, a file or a test.
"""
from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

# Width of the text view when standard output is not a terminal (a pager, a file, a
# test): a wide terminal's; --width / TCPSIFT_WIDTH say otherwise.
PIPE_WIDTH = 160
# rich draws a row cheaply but not for free (~0.1-2 ms a row, by the machine's load):
# the text view shows this many rows unless --limit asks for more.
TEXT_ROWS = 200


@dataclass(frozen=True)
class ViewColumn:
    name: str          # the column of `cells`
    heading: str
    right: bool = False
    priority: int = 0  # higher stays longer when the width is short


def terminal_width(out, width: int | None) -> int:
    """The width to draw at: the option/env value; else the terminal's when `out` is one;
    else PIPE_WIDTH."""
    if width:
        return width
    if hasattr(out, "isatty") and out.isatty():
        return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    return PIPE_WIDTH


def fit(cells, columns: list[ViewColumn], width: int) -> tuple[list[ViewColumn], list[ViewColumn]]:
    """(the columns shown, those left out) so that the table's lines fit `width`: each
    column is its widest cell or heading, plus 3 characters between columns."""
    def widest(c: ViewColumn) -> int:
        cell = (cells[c.name].str.len_chars().max() or 0) if len(cells) else 0
        return max(cell, *(len(line) for line in c.heading.splitlines()))

    need = {c.name: widest(c) for c in columns}
    shown = list(columns)
    left_out = []
    while len(shown) > 1 and sum(need[c.name] for c in shown) + 3 * (len(shown) - 1) > width:
        lowest = min(shown, key=lambda c: c.priority)
        shown.remove(lowest)
        left_out.append(lowest)
    return shown, left_out


def show(cells, columns: list[ViewColumn], out, width: int, caption: str = "",
         styles=None) -> None:
    """Draw `cells` as a rich table on `out`. `styles` (optional) is one rich style per
    row (e.g. red for a reset connection), used only on a terminal."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    shown, left_out = fit(cells, columns, width)
    notes = [caption] if caption else []
    if left_out:
        notes.append("not shown at this width: "
                     + ", ".join(c.heading.replace("\n", " ") for c in left_out)
                     + " (--width N, or --format csv for every column)")
    colour = hasattr(out, "isatty") and out.isatty() and "NO_COLOR" not in os.environ
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  header_style="bold" if colour else "", caption="\n".join(notes) or None,
                  caption_justify="left", caption_style="dim" if colour else "")
    for c in shown:
        table.add_column(c.heading, justify="right" if c.right else "left", no_wrap=True)
    styles = styles if (styles is not None and colour) else [None] * len(cells)
    for row, style in zip(cells.select(c.name for c in shown).iter_rows(), styles):
        table.add_row(*("" if v is None else v for v in row), style=style)
    drawn = io.StringIO()
    Console(file=drawn, width=width, color_system="auto" if colour else None,
            force_terminal=colour, no_color=not colour, highlight=False,
            soft_wrap=False).print(table)
    # rich pads every line to the table's width: no trailing blanks in a file or a pipe
    out.write("\n".join(line.rstrip() for line in drawn.getvalue().splitlines()) + "\n")


# --- cell text (Polars expressions, so that formatting stays vectorised) ----------------

def ms_text(ns):
    """Nanoseconds as milliseconds with 3 decimals (microseconds), e.g. "312.045"."""
    import polars as pl

    us = (ns.abs() + 500) // 1000
    text = pl.concat_str((us // 1000).cast(pl.String), pl.lit("."),
                         (us % 1000).cast(pl.String).str.zfill(3))
    return pl.when(ns < 0).then(pl.lit("-") + text).otherwise(text)


def bytes_text(n):
    """A byte count with an SI prefix, 3 significant digits: "812 B", "45.6 kB", "1.23 MB"."""
    import polars as pl

    n = n.cast(pl.Float64)
    out: Then | ChainedThen = pl.when(n < 1000).then(n.cast(pl.Int64).cast(pl.String) + " B")
    for power, unit in enumerate(("kB", "MB", "GB", "TB", "PB"), start=1):
        scaled = n / 1000 ** power
        digits = (pl.when(scaled < 9.995).then(_decimals(scaled, 2))
                  .when(scaled < 99.95).then(_decimals(scaled, 1)).otherwise(_decimals(scaled, 0)))
        out = out.when((n < 999.5 * 1000 ** power) | (power == 5)).then(digits + " " + unit)
    return out


def _decimals(x, places: int):
    """A non-negative float as text with exactly `places` decimals ("1.20", not "1.2")."""
    import polars as pl

    scaled = (x * 10 ** places).round(0).cast(pl.Int64)
    if places == 0:
        return scaled.cast(pl.String)
    return pl.concat_str((scaled // 10 ** places).cast(pl.String), pl.lit("."),
                         (scaled % 10 ** places).cast(pl.String).str.zfill(places))


def clock_text(ns, first_ns: int | None, utc: bool, with_date: bool):
    """(expression, note): epoch nanoseconds as a wall-clock time to the millisecond,
    "21:21:02.883" (with the date when `with_date`), in UTC or in the local time zone at
    `first_ns` (one offset for the table: a DST change inside a capture is not followed);
    the note says which."""
    import datetime as dt

    import polars as pl

    if utc or first_ns is None:
        offset, zone = dt.timedelta(0), "UTC"
    else:
        local = dt.datetime.fromtimestamp(first_ns / 1e9).astimezone()
        offset = local.utcoffset() or dt.timedelta(0)
        zone = local.strftime("%Z") if not offset else local.strftime("%Z (UTC%z)")
    stamp = pl.from_epoch(ns + offset // dt.timedelta(microseconds=1) * 1000, time_unit="ns")
    pattern = "%Y-%m-%d %H:%M:%S%.3f" if with_date else "%H:%M:%S%.3f"
    return stamp.dt.strftime(pattern), zone


# the option of every command with a text view (conns, sql, compare)
width_option = click.option(
    "--width", type=click.IntRange(min=20), metavar="N", envvar="TCPSIFT_WIDTH",
    help="Width of the text view [default: the terminal's; 160 in a pipe; env TCPSIFT_WIDTH].")
