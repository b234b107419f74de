"""The TCP analysis fed chunk by chunk from decoder arrays (tcpsift.tcp.chunks, for the
streamed output) gives the table path's analysis (Capture.tcp, checked against tshark
by the conformance suite), on every capture of the corpus and the lab."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tcpsift
from tcpsift.capture.reader import SourceWalk
from tcpsift.capture.source import open_source
from tcpsift.decode import _decode
from tcpsift.errors import CaptureError
from tcpsift.tcp import _analysis as K
from tcpsift.tcp import output_table
from tcpsift.tcp.chunks import chunk_inputs
from tcpsift.tcp.chunks import empty_outputs as _empty_outputs

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import capture_files  # noqa: E402

FILES = capture_files("captures/public", "captures/malformed", "lab")


def chunked_analysis(path, chunk: int) -> pl.DataFrame:
    walk = SourceWalk(open_source(path), reassemble=True)
    addrs, layers, sacks = _decode.AddressTable(), _decode.LayerBuffer(), _decode.U32Buffer()
    analyzer = K.Analyzer()
    tables, row = [], 0
    for rec, pkt in walk.chunks(addrs, layers, sacks, 0, chunk):
        n = len(rec["offset"])
        layer_rows, sack_edges = walk.chunk_extras(layers, sacks)
        a = chunk_inputs(rec, pkt, sack_edges, layer_rows, row, len(addrs))
        out = _empty_outputs(n)
        analyzer.feed(n, a, out)
        keys = pl.DataFrame({"frame": np.arange(row + 1, row + n + 1, dtype=np.uint32)})
        tables.append(output_table(out, keys))
        row += n
    return pl.concat(tables)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1 << 16, 5])
def test_chunked_analysis_equals_the_table_path(chunk):
    checked = 0
    for path in FILES:
        try:
            cap = tcpsift.read(path)
        except CaptureError:
            continue
        got = chunked_analysis(path, chunk)
        assert got.equals(cap.tcp), path
        checked += cap.tcp["stream"].is_not_null().sum()
    assert checked > 1000


@pytest.mark.slow
def test_compiled_inputs_equal_the_table_inputs():
    """K.fill_inputs (one compiled pass over decoder arrays) against tcpsift.tcp's
    _inputs (Polars expressions over the packet table), row by row, on every capture;
    addresses are numbered differently by the two (ids, ranks) and are held equal by the
    analysis test above."""
    from tcpsift.tcp.analysis import _inputs

    compared = 0
    for path in FILES:
        try:
            cap = tcpsift.read(path)
        except CaptureError:
            continue
        walk = SourceWalk(open_source(path), reassemble=True)
        addrs, layers, sacks = _decode.AddressTable(), _decode.LayerBuffer(), _decode.U32Buffer()
        want = _inputs(cap.packets, cap.layers)
        row = 0
        for rec, pkt in walk.chunks(addrs, layers, sacks, 0, 1000):
            n = len(rec["offset"])
            layer_rows, sack_edges = walk.chunk_extras(layers, sacks)
            got = chunk_inputs(rec, pkt, sack_edges, layer_rows, row, len(addrs))
            for name in ("rf", "frame", "ts_ns", "sport", "dport", "tflags", "seq", "ack",
                         "window", "hlen", "seglen", "wscale", "sack_n"):
                assert (got[name] == want[name][row:row + n]).all(), (path, name, row)
            row += n
        compared += row
    assert compared > 100_000
