"""`tcpsift cache ls|clear`: what the Parquet cache holds (tcpsift.cache), and emptying it."""
from __future__ import annotations

import click

from tcpsift.cli.common import cache_options, fail


def _folder():
    from tcpsift.cache import cache_folder

    folder = cache_folder()
    if folder is None:
        fail("the cache is off (TCPSIFT_CACHE=off or --no-cache)")
    return folder


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError


@click.group("cache")
def cache():
    """The Parquet cache of capture tables: where it is, what it holds, emptying it. Its
    folder: --cache DIR, else $TCPSIFT_CACHE, else the user's cache folder
    (~/.cache/tcpsift)."""


@cache.command("ls")
@cache_options
def ls():
    """One line per cached capture: its files, the tables held, the entry's size on disk
    against the capture's, when last used; most recent first. The cache holds at most
    TCPSIFT_CACHE_SIZE bytes (default 20 GB; e.g. 5GB, 500MB): past it, the entries used
    least recently are removed."""
    import datetime

    from tcpsift.cache import entries, size_limit

    folder = _folder()
    found = entries(folder)
    total = sum(e.bytes for e in found)
    click.echo(f"{folder}: {len(found)} entr{'y' if len(found) == 1 else 'ies'}, {_size(total)} "
               f"(at most {_size(size_limit())}: TCPSIFT_CACHE_SIZE)")
    for e in found:
        used = datetime.datetime.fromtimestamp(e.used_ns / 1e9).strftime("%Y-%m-%d %H:%M")
        share = f" ({e.bytes / e.capture_bytes:.0%} of {_size(e.capture_bytes)})" \
            if e.capture_bytes else ""
        click.echo(f"{e.folder.name[:12]}  {used}  {_size(e.bytes)}{share}  "
                   f"[{','.join(e.parts) or 'no tables'}]  {' '.join(e.files)}")


@cache.command("clear")
@cache_options
def clear():
    """Remove every entry (the next read of each capture decodes it again)."""
    from tcpsift.cache import clear as clear_folder

    folder = _folder()
    removed, freed = clear_folder(folder)
    click.echo(f"{folder}: removed {removed} entr{'y' if removed == 1 else 'ies'}, "
               f"{_size(freed)} freed")
