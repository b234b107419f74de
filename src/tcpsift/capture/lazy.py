"""`tcpsift.scan()`: the packet table as a Polars LazyFrame (a Polars IO source).

Polars hands the source what the query needs: the columns (only those are built;
when all of them come from the record walk, tcpsift.capture.table.RECORD_COLUMNS,
nothing is decoded), a predicate (applied to each chunk's table; its conditions on
`ts_ns` and `frame` also rule out whole blocks of frames from their records, before
they are decoded), a row limit and a batch size (the chunk size). The chunks are
tcpsift.capture.chunks', the same as read()'s, so the rows are read()'s rows.

Warnings (a file damaged part-way: its frames before the fault are kept, as read()
keeps them) cannot travel with a LazyFrame. They go to a ScanReport when one is
given, else to the `tcpsift` logger (logging.WARNING), which prints nothing unless
the application configures logging (a library's logger has only a NullHandler); never
to Python's warnings machinery, whose filters are the whole process's.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from polars.exceptions import PanicException
from polars.io.plugins import register_io_source

from tcpsift import schema
from tcpsift.capture.chunks import MODES, CaptureChunks
from tcpsift.capture.paths import capture_paths
from tcpsift.capture.table import RECORD_COLUMNS

log = logging.getLogger("tcpsift")
log.addHandler(logging.NullHandler())

# Frames per batch when Polars gives no batch size (read()'s chunk).
CHUNK = 1 << 18


@dataclass
class ScanReport:
    """What the collections of a scan met: one line per problem (Capture.warnings' lines,
    each once however often the scan is collected), and whether every file was read to
    its end without a fault (False once one was not)."""
    warnings: list[str] = field(default_factory=list)
    complete: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def add(self, warnings: Iterable[str], complete: bool):
        with self._lock:
            self.warnings.extend(w for w in dict.fromkeys(warnings) if w not in self.warnings)
            self.complete &= complete


# The columns whose values a block's records give before it is decoded: column -> the
# record value it shows (`time` is ts_ns as a Datetime), with the range of the values.
RECORD_STATISTICS = {"ts_ns": "ts_ns", "time": "ts_ns", "frame": "frame"}
VALUE_RANGES = {"ts_ns": (int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)),
                "frame": (1, int(np.iinfo(np.uint32).max))}
VALUE_TYPES = {"ts_ns": pl.Int64, "frame": pl.UInt32}
# Points of a range a search tests at once (one Polars evaluation per step)
PROBES = 1024


def _conjuncts(predicate: pl.Expr) -> list[pl.Expr]:
    """The terms of a predicate's top-level `&` chain (the predicate itself if it is not
    one, or if Polars cannot show its structure)."""
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:       # an expression Polars cannot serialise (a Python function)
        return [predicate]
    if tree.get("BinaryExpr", {}).get("op") == "And":
        return [c for term in predicate.meta.pop() for c in _conjuncts(term)]
    return [predicate]


def _search(holds, lo: int, hi: int, greatest: bool) -> int | None:
    """The greatest (or least) t in [lo, hi] for which holds(array of t) is True, where
    it holds up to (or from) some point: PROBES points of the range left at a time.
    Only a point where it was seen to hold is returned."""
    best = None
    while lo <= hi:
        points = sorted({lo + (hi - lo) * i // PROBES for i in range(PROBES + 1)})
        held = np.flatnonzero(holds(points))
        if not len(held):
            break
        j = int(held[-1] if greatest else held[0])
        best = points[j]
        if greatest and j + 1 < len(points):
            lo, hi = points[j] + 1, points[j + 1] - 1
        elif not greatest and j > 0:
            lo, hi = points[j - 1] + 1, points[j] - 1
        else:
            break
    return best


class _Range:
    """What a predicate's conditions on one record column (alone) rule out: every value
    up to `below` and from `above` (None: no such bound), and null values if
    `nulls_out`. Polars rewrites the conditions into tests on a block's statistics
    (min, max, null count) that hold when no row of the block can pass (its tests for
    skipping Parquet row groups); each bound is a range on which such a test was seen to
    hold, so it is sound even if the test is not monotone."""

    def __init__(self, name: str, terms: list[pl.Expr], dtype):
        self.below: int | None = None
        self.above: int | None = None
        self.nulls_out = False
        # Polars' own rewriting is unstable API: if it is missing or fails (a panic is
        # a BaseException), nothing is ruled out
        try:
            self._search(name, terms, dtype)
        except (Exception, PanicException):
            self.below = self.above = None
            self.nulls_out = False

    def _search(self, name: str, terms: list[pl.Expr], dtype):
        tests = [t for t in (term._skip_batch_predicate({name: dtype}) for term in terms)
                 if t is not None]
        if not tests:
            return
        rule_out = pl.any_horizontal(tests).fill_null(False)
        value = RECORD_STATISTICS[name]

        def holds(mins, maxs, nulls=0):
            stats = pl.DataFrame([
                pl.Series(f"{name}_min", mins, VALUE_TYPES[value]).cast(dtype),
                pl.Series(f"{name}_max", maxs, VALUE_TYPES[value]).cast(dtype),
                pl.Series(f"{name}_nc", [nulls] * len(mins), pl.UInt32),
                pl.Series("len", [1] * len(mins), pl.UInt32)])
            return stats.select(rule_out).to_series().to_numpy()

        lo, hi = VALUE_RANGES[value]
        self.below = _search(lambda ts: holds([lo] * len(ts), ts), lo, hi, greatest=True)
        self.above = _search(lambda ts: holds(ts, [hi] * len(ts)), lo, hi, greatest=False)
        self.nulls_out = bool(holds([None], [None], nulls=1)[0])

    def rules_out(self, least: int | None, greatest: int | None, nulls: bool) -> bool:
        """Whether no row of a block whose values lie in [least, greatest] (None: the
        block has no value), with or without nulls, is wanted."""
        if nulls and not self.nulls_out:
            return False
        if least is None or greatest is None:       # (both are)
            return True
        return (self.below is not None and greatest <= self.below) or \
            (self.above is not None and least >= self.above)


class RecordBounds:
    """A RecordFilter (tcpsift.capture.reader) from a Polars predicate: the frames its
    conditions on one record column alone (RECORD_STATISTICS) rule out (each _Range),
    and with `rows`, the frames from that row on. The walk does not decode what it rules
    out."""

    def __init__(self, ts: list[_Range], frames: _Range | None, rows: int | None):
        self._ts = ts
        self._frames = frames
        self._end = rows
        if frames is not None and frames.above is not None:
            self._end = min(rows, frames.above - 1) if rows is not None else \
                frames.above - 1

    @classmethod
    def of(cls, predicate: pl.Expr | None, rows: int | None = None) -> RecordBounds | None:
        """The bounds of `predicate` and of a limit of `rows` frames, or None when there
        are none."""
        terms: dict[str, list[pl.Expr]] = {name: [] for name in RECORD_STATISTICS}
        for term in [] if predicate is None else _conjuncts(predicate):
            roots = set(term.meta.root_names())
            if len(roots) == 1 and next(iter(roots)) in terms:
                terms[next(iter(roots))].append(term)
        types = schema.polars_schema()
        ranges = {name: _Range(name, terms[name], types[name])
                  for name in RECORD_STATISTICS if terms[name]}
        ts = [r for name, r in ranges.items() if RECORD_STATISTICS[name] == "ts_ns"]
        frames = ranges.get("frame")
        if not ts and frames is None and rows is None:
            return None
        return cls(ts, frames, rows)

    def skips(self, ts_ns: np.ndarray, has_ts: np.ndarray, first_row: int) -> bool:
        frames = self._frames
        if frames is not None and frames.rules_out(first_row + 1, first_row + len(ts_ns),
                                                   False):
            return True
        if not self._ts:
            return False
        timed = ts_ns if has_ts.all() else ts_ns[has_ts]
        least, greatest = (int(timed.min()), int(timed.max())) if len(timed) else (None, None)
        return any(r.rules_out(least, greatest, len(timed) < len(ts_ns)) for r in self._ts)

    def ends(self, row: int) -> bool:
        return self._end is not None and row >= self._end


def _cached_batches(paths: list[str], mode: str, cache, report: ScanReport | None,
                    with_columns, predicate: pl.Expr | None, n_rows: int | None,
                    batch_size: int | None) -> Iterator[pl.DataFrame] | None:
    """The IO source's rows from the cache's Parquet file of the packet table (Polars'
    own pushdown: the columns and row groups the query needs), when the capture's entry
    holds it (decided as the frame is collected: the files may have changed since the
    scan); else None."""
    from tcpsift.capture.capture import cached

    cap = cached(paths, mode, cache)
    if cap is None:
        return None
    frame = _query(cap.scan("packets"), predicate, with_columns)
    if n_rows is not None:
        frame = frame.head(n_rows)
    _tell(report, cap.warnings, cap.complete)
    return frame.collect_batches(chunk_size=batch_size or CHUNK)


def _query(frame, predicate: pl.Expr | None, with_columns):
    """A table's (DataFrame or LazyFrame) rows `predicate` keeps, of `with_columns`."""
    if predicate is not None:
        frame = frame.filter(predicate)
    return frame.select(with_columns) if with_columns is not None else frame


def _tell(report: ScanReport | None, warnings: list[str], complete: bool) -> None:
    """What a collection met: to `report`, else to the `tcpsift` logger."""
    if report is not None:
        report.add(warnings, complete)
    else:
        for line in warnings:
            log.warning("%s", line)


def _batches(paths: list[str], mode: str, report: ScanReport | None, with_columns,
             predicate: pl.Expr | None, n_rows: int | None,
             batch_size: int | None, cache=None) -> Iterator[pl.DataFrame]:
    """The IO source: the packet table's rows that `predicate` keeps, at most `n_rows`,
    of `with_columns` (all if None), one DataFrame per chunk of about `batch_size`
    frames read (from the cache, when it holds the table)."""
    if n_rows is not None and n_rows <= 0:
        return
    from_cache = _cached_batches(paths, mode, cache, report, with_columns, predicate, n_rows,
                                 batch_size)
    if from_cache is not None:
        yield from from_cache
        return
    # (`frame`, an array in every chunk, gives a table of constant columns its height)
    columns = set(schema.PACKET_COLUMN_NAMES if with_columns is None else with_columns)
    columns.add("frame")
    if predicate is not None:
        columns |= set(predicate.meta.root_names())
    # without a predicate, the first n_rows frames are the rows: no more are read
    limit = n_rows if predicate is None else None
    size = min(batch_size or CHUNK, limit or CHUNK)
    chunks = CaptureChunks(paths, mode, chunk=size, decode=not columns <= RECORD_COLUMNS,
                           wanted=RecordBounds.of(predicate, limit))
    left = n_rows
    try:
        for chunk in chunks:
            table = _query(chunk.table(columns), predicate, with_columns)
            if left is not None:
                table = table.head(left)
                left -= table.height
            yield table
            if left == 0:
                return
    finally:
        _tell(report, chunks.warnings, chunks.complete)


def scan(paths: str | os.PathLike | Iterable[str | os.PathLike], mode: str = "merge",
         report: ScanReport | None = None,
         cache: bool | str | os.PathLike | None = None) -> pl.LazyFrame:
    """The packet table of one capture file, or of several read as one capture, as a
    Polars LazyFrame: `scan(path).collect()` equals `read(path).packets`, and a query
    reads what it needs (only the columns it uses; with a condition on `ts_ns`, `time`
    or `frame`, the frames outside it are not decoded; with a frame range, or a row
    limit and no filter, the files are read up to there). `collect_batches()` gives
    one DataFrame per chunk of Polars' batch size.

    `mode` for several files: "merge" (mergecap's order, as read()) or "concat" (one
    after the other as given, frame numbers going on); for read()'s "separate", scan
    each file. Files are opened when the frame is collected: CaptureError is raised
    then. A file damaged part-way keeps every
    packet before the fault; the warning goes to `report` (a ScanReport) if given, else
    to the `tcpsift` logger.

    When the cache (`cache`, as tcpsift.read takes it) holds the capture's packet table,
    the query runs on its Parquet file instead (the same rows); a scan does not fill the
    cache (it reads only what a query needs: there is no whole table to keep)."""
    paths = capture_paths(paths)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")

    def source(with_columns, predicate, n_rows, batch_size):
        return _batches(paths, mode, report, with_columns, predicate, n_rows, batch_size,
                        cache)

    detail = paths[0] if len(paths) == 1 else f"{len(paths)} files, {mode}"
    return register_io_source(source, schema=schema.polars_schema(), explain_name="tcpsift",
                              explain_detail=detail)
