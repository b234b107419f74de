"""Where the cache lives, and what `tcpsift cache ls|clear` see of it.

The folder is, in this order: the `cache` argument (a path), the environment variable
TCPSIFT_CACHE (a path; "off" turns the cache off), or the platform's user cache folder
(`$XDG_CACHE_HOME/tcpsift`, else `~/.cache/tcpsift`; `~/Library/Caches/tcpsift` on macOS,
`%LOCALAPPDATA%\\tcpsift\\Cache` on Windows). Each entry is a folder of its own
(tcpsift.cache.entry). The folder holds at most TCPSIFT_CACHE_SIZE bytes (default 20
GB): storing a table past that removes the entries used least recently.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENT = "TCPSIFT_CACHE"
OFF = "off"
# the most the folder may hold: past it, the entries used least recently are removed
SIZE_ENVIRONMENT = "TCPSIFT_CACHE_SIZE"
DEFAULT_SIZE = 20 * 10**9
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9,
          "GB": 10**9, "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
          "TIB": 2**40}


def size_limit() -> int:
    """The most bytes the cache folder may hold: TCPSIFT_CACHE_SIZE ("20GB", "500MB",
    "1.5TiB", bytes), else DEFAULT_SIZE. A value that does not parse is the default."""
    text = os.environ.get(SIZE_ENVIRONMENT, "").strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    unit = text[len(number):]
    try:
        return int(float(number) * _UNITS[unit]) if text else DEFAULT_SIZE
    except (ValueError, KeyError):
        return DEFAULT_SIZE


def default_folder() -> Path:
    """The platform's user cache folder for tcpsift."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "tcpsift"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "tcpsift" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tcpsift"


def cache_folder(cache: bool | str | os.PathLike | None = None) -> Path | None:
    """The folder `cache` means (None if the cache is off): a path; False for none; True
    or None for TCPSIFT_CACHE's, else the default folder (None: unless TCPSIFT_CACHE is
    "off")."""
    if cache is False:
        return None
    if cache is not None and cache is not True:
        return Path(os.fspath(cache))
    env = os.environ.get(ENVIRONMENT, "").strip()
    if env.lower() == OFF:
        return None
    return Path(env) if env else default_folder()


def cache_applies(paths, cache: bool | str | os.PathLike | None = None) -> bool:
    """Whether tcpsift.read(paths, cache=cache) uses the cache: it is on, and no path is
    standard input or another stream (read once, they have no identity to key on)."""
    from tcpsift.capture.source import is_stream

    return cache_folder(cache) is not None and not any(map(is_stream, paths))


@dataclass
class EntrySummary:
    """One entry as `tcpsift cache ls` shows it."""
    folder: Path
    files: list[str]        # the capture files it holds the tables of
    capture_bytes: int      # their size
    bytes: int              # the entry's size on disk
    parts: list[str]        # the tables it holds
    used_ns: int            # when it was last written or read (the folder's mtime)


def entries(folder: Path) -> list[EntrySummary]:
    """The entries in `folder`, the most recently used first (nothing if it does not
    exist)."""
    from tcpsift.cache.entry import META, PARTS

    out = []
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    for child in children:
        meta_path = child / META
        if not child.is_dir() or not meta_path.exists():
            continue
        try:
            meta = json.loads(meta_path.read_text())
            files = [f["path"] for f in meta["identity"]]
            capture_bytes = sum(int(f["size"]) for f in meta["identity"])
        except (OSError, ValueError, KeyError, TypeError):
            files, capture_bytes = ["(unreadable entry)"], 0
        size = _bytes(child)
        parts = [p for p in PARTS if (child / f"{p}.parquet").exists()]
        try:
            used = child.stat().st_mtime_ns
        except OSError:
            used = 0
        out.append(EntrySummary(child, files, capture_bytes, size, parts, used))
    return sorted(out, key=lambda e: e.used_ns, reverse=True)


def make_room(folder: Path, keep: Path, limit: int | None = None) -> list[Path]:
    """Remove the entries used least recently until the folder holds at most `limit`
    bytes (size_limit()), never `keep` (the entry being written); the entries removed."""
    limit = size_limit() if limit is None else limit
    found = entries(folder)             # the most recent first
    total = sum(e.bytes for e in found)
    removed = []
    for e in reversed(found):
        if total <= limit:
            break
        if e.folder != keep and _remove(e.folder):
            total -= e.bytes
            removed.append(e.folder)
    return removed


def clear(folder: Path) -> tuple[int, int]:
    """Remove every entry of `folder` (only what looks like one: a folder with the
    entry's metadata file, or a half-written one): (entries removed, bytes freed)."""
    from tcpsift.cache.entry import META, is_entry_name

    removed = freed = 0
    try:
        children = list(folder.iterdir())
    except OSError:
        return 0, 0
    for child in children:
        if not child.is_dir() or not (is_entry_name(child.name) or (child / META).exists()):
            continue
        size = _bytes(child)
        if _remove(child):
            removed += 1
            freed += size
    return removed, freed


def _bytes(entry: Path) -> int:
    """The size of an entry's files (one that vanishes meanwhile counts nothing)."""
    size = 0
    for item in entry.iterdir():
        try:
            size += item.stat().st_size
        except OSError:
            pass
    return size


def _remove(entry: Path) -> bool:
    """Remove an entry's folder; whether it is gone (another run may hold it open)."""
    shutil.rmtree(entry, ignore_errors=True)
    return not entry.exists()
