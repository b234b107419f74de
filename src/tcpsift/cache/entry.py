"""One cache entry: a capture's tables as Parquet files in a folder of their own.

    <cache folder>/<entry name>/entry.json       the files' identity, Capture.info,
                                                 the capture's warnings, completeness
                               /packets.parquet  + packets.json (its size, CRC-32, rows)
                               /layers.parquet   + layers.json
                               /tcp.parquet      + tcp.json
                               /conns.parquet    + conns.json

Each table is stored when it is first computed, and each file is written under a
temporary name and renamed into place, so a reader never sees half a file and two
runs filling the same entry at once only replace a table by the same table. A table
is trusted only when its size and CRC-32 are those its record (the .json beside it)
gives for the current files' identity: a truncated, edited or missing file is reported
in one line and rebuilt. No pickle: Parquet and JSON only.

Problems with the cache itself never fail a read: they are reported (`notes`, which
tcpsift.read appends to Capture.warnings) and the capture is read without it.
"""
from __future__ import annotations

import json
import os
import re
import threading
import weakref
import zlib
from pathlib import Path
from typing import Any

from tcpsift.cache.identity import entry_name, file_identity, identity_digest
from tcpsift.outputs import StagedFile, replaced
from tcpsift.schema import SCHEMA_VERSION

META = "entry.json"
PARTS = ("packets", "layers", "tcp", "conns")
# small pages of statistics: a query on a few frames or streams reads a few row groups
ROW_GROUP_ROWS = 1 << 17
_NAME = re.compile(r"[0-9a-f]{32}")


# the entries this process is writing (by folder): a read of the same capture waits for
# them rather than decoding it again
_WRITING: weakref.WeakValueDictionary[Path, CacheEntry] = weakref.WeakValueDictionary()
# one pass over the folder at a time: two at once would each remove entries for the
# same excess (one of them half-removed by the other)
_MAKING_ROOM = threading.Lock()


def is_entry_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


class CacheEntry:
    """The entry of `paths` read in `mode` in the cache folder `folder`.

    `meta` is the entry's metadata when the entry holds tables of the files as they are
    now (None: new or stale). `notes` collects one line per problem met."""

    def __init__(self, folder: Path, paths: list[str], mode: str, notes: list[str]):
        self.dir = Path(folder) / entry_name(paths, mode)
        writing = _WRITING.get(self.dir)
        if writing is not None:     # an earlier read of this process is still writing it
            writing.flush()
        self.identity = [file_identity(p) for p in paths]
        self.key = identity_digest(self.identity)
        self.notes = notes
        self.writable = True
        self._rows: dict[str, int] = {}     # checked parts -> their number of rows
        self._pending: dict[str, threading.Thread] = {}     # parts being written
        self._writers = 0       # writes under way (the last one keeps the size limit)
        self._lock = threading.Lock()
        self.meta = self._read_meta()

    # -- metadata -------------------------------------------------------------------

    def _read_meta(self) -> dict | None:
        path = self.dir / META
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as e:
            self._note(f"cannot read {path} ({e.strerror}); the capture is read again")
            return None
        try:
            meta = json.loads(text)
            same = meta["identity"] == self.identity and meta["schema"] == SCHEMA_VERSION
        except (ValueError, KeyError, TypeError):
            self._note(f"{path} is damaged; the entry is rebuilt")
            self._drop()
            return None
        if not same:        # the capture changed since: replaced quietly
            self._drop()
            return None
        return meta

    def store_meta(self, info: dict, warnings: list[str], complete: bool) -> None:
        """Start the entry (after a read of the files): what Capture gives besides its
        tables."""
        meta = {"schema": SCHEMA_VERSION, "identity": self.identity, "info": info,
                "warnings": list(warnings), "complete": complete}
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with replaced(str(self.dir / META), binary=False, encoding="utf-8") as fh:
                json.dump(meta, fh)
        except OSError as e:
            self._unwritable(e)
            return
        self.meta = meta

    # -- tables ---------------------------------------------------------------------

    def load(self, part: str, columns=None):
        """The table `part` (only `columns`, if given) as a Polars DataFrame, or None when
        the entry does not hold it (never computed, or found damaged: then reported and
        removed, to be rebuilt)."""
        import polars as pl

        path = self.path(part)
        if path is None:
            return None
        try:
            table = pl.read_parquet(path, columns=list(columns) if columns else None)
        except Exception as e:   # noqa: BLE001 (any reader error means: not trusted)
            return self._damaged(part, f"cannot be read ({' '.join(str(e).split())[:120]})")
        if len(table) != self._rows.get(part):
            return self._damaged(part, "has other rows than stored")
        return table

    def path(self, part: str) -> Path | None:
        """The Parquet file of `part` once checked: its record is of the current files,
        and its size and CRC-32 are the record's (once per entry object: a reader of its
        own, DuckDB, then reads only what it needs); None when the entry does not hold it
        (a damaged part is reported and removed)."""
        self._wait(part)
        if part in self._rows:
            return self.dir / f"{part}.parquet"
        if self.meta is None:
            return None
        record_path, data_path = self.dir / f"{part}.json", self.dir / f"{part}.parquet"
        try:
            record = json.loads(record_path.read_text())
            if record.get("identity") != self.key:
                return None     # written for other contents of the files: not ours
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError):
            return self._damaged(part, "its record is damaged")
        try:
            size, crc = _size_and_crc(data_path)
        except FileNotFoundError:
            return self._damaged(part, "is missing")
        except OSError as e:
            return self._damaged(part, f"cannot be read ({e.strerror})")
        if size != record.get("bytes"):
            return self._damaged(part, f"has {size:,} bytes, not the {record.get('bytes')} "
                                 "stored")
        if crc != record.get("crc32"):
            return self._damaged(part, "was changed (its checksum differs)")
        self._rows[part] = record.get("rows")
        self._touch()
        return data_path

    def store(self, part: str, table) -> None:
        """Keep `table` as the entry's `part` (nothing when the entry cannot be written).
        The file is written by a thread of the entry's while the caller goes on (Polars
        writes without the GIL: on two cores the TCP analysis runs meanwhile); flush()
        waits for it, and path() for the part it is asked for."""
        if self.meta is None or not self.writable:
            return
        self._wait(part)                # (the same part stored again: one after the other)
        # a thread per table, which ends with its write: none is left behind idle
        writer = threading.Thread(target=self._write, args=(part, table),
                                  name=f"tcpsift-cache-{part}")
        self._pending[part] = writer
        with self._lock:
            self._writers += 1
        _WRITING[self.dir] = self
        writer.start()

    def flush(self) -> None:
        """Wait until every table stored so far is written (its problems in `notes`)."""
        for part in list(self._pending):
            self._wait(part)

    def _wait(self, part: str) -> None:
        writer = self._pending.pop(part, None)
        if writer is not None:
            writer.join()

    def _write(self, part: str, table) -> None:
        """Write `part` (in its thread): any failure is a note, never an exception. The
        last of the writes under way then brings the folder back within its size limit
        (the entries used least recently go): once for the tables a read stores together,
        not after each (it lists every entry of the folder)."""
        from tcpsift.cache.folder import make_room

        self._guarded(self._write_files, part, table)
        with self._lock:
            self._writers -= 1
            last = self._writers == 0
        if last:
            with _MAKING_ROOM:
                self._guarded(make_room, self.dir.parent, keep=self.dir)

    def _guarded(self, work, *args, **kwargs) -> None:
        """work(*args, **kwargs) in a writing thread: a failure is a note."""
        try:
            work(*args, **kwargs)
        except OSError as e:
            self._unwritable(e)
        except Exception as e:   # noqa: BLE001 (a thread's exception would be a traceback)
            self._unwritable(OSError(f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"))

    def _write_files(self, part: str, table) -> None:
        staged = StagedFile(str(self.dir / f"{part}.parquet"))
        try:
            table.write_parquet(staged.temp, compression="zstd", compression_level=1,
                                statistics=True, row_group_size=ROW_GROUP_ROWS)
            size, crc = _size_and_crc(Path(staged.temp))
            staged.commit()
        finally:
            staged.discard()
        record = {"identity": self.key, "bytes": size, "crc32": crc, "rows": len(table)}
        with replaced(str(self.dir / f"{part}.json"), binary=False, encoding="utf-8") as fh:
            json.dump(record, fh)
        self._rows[part] = len(table)

    # -- problems -------------------------------------------------------------------

    def _note(self, line: str) -> None:
        self.notes.append(f"cache: {line}")

    def _damaged(self, part: str, why: str) -> Any:
        """Report and remove a damaged part; None (what a reader of it returns)."""
        self._note(f"{self.dir / (part + '.parquet')} {why}; rebuilt")
        self._rows.pop(part, None)
        for suffix in (".json", ".parquet"):
            try:
                (self.dir / f"{part}{suffix}").unlink()
            except OSError:
                pass
        return None

    def _unwritable(self, error: OSError) -> None:
        if self.writable:
            where = error.filename or self.dir
            self._note(f"cannot write to {where} ({error.strerror or error}); "
                       "working without the cache")
        self.writable = False

    def _drop(self) -> None:
        """Remove the entry's files (stale or damaged metadata)."""
        try:
            children = list(self.dir.iterdir())
        except OSError:
            return
        for child in children:
            try:
                child.unlink()
            except OSError:
                pass

    def _touch(self) -> None:
        """Mark the entry used now (`tcpsift cache ls` lists the most recent first)."""
        try:
            os.utime(self.dir)
        except OSError:
            pass


# the blocks a table file is checked in (one buffer, reused)
_CRC_BLOCK = 1 << 18


def _size_and_crc(path: Path) -> tuple[int, int]:
    """The file's size and CRC-32, read in blocks into one buffer: on this kind of VM
    a quarter faster than through a memory map, whose every page costs a fault (the
    two tables a ladder reads from a 1 M-packet capture: 19 ms, not 25)."""
    buf = bytearray(_CRC_BLOCK)
    view = memoryview(buf)
    size = crc = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            crc = zlib.crc32(view[:n], crc)
            size += n
    return size, crc


def open_entry(folder: Path | None, paths: list[str], mode: str,
               notes: list[str]) -> CacheEntry | None:
    """The entry of `paths`, or None when they cannot have one: no cache folder, standard
    input or another stream (read once: its contents have no identity), a file that
    cannot be read (reading it reports why)."""
    from tcpsift.cache.folder import cache_applies

    if folder is None or not cache_applies(paths, folder):
        return None
    try:
        return CacheEntry(folder, paths, mode, notes)
    except OSError:
        return None
