"""The ladder's CSV (`tcpsift ladder --format csv`) equals tshark's fields, stream by
stream: frames, tcp.time_relative, tcp.seq, tcp.ack, tcp.len, tcp.window_size, the flags
and the tcp.analysis verdicts (tests/support/ladder_oracle.py says how each is compared).

tshark runs once per capture for all its streams (cached). This calls the ladder's function
and the command's CSV writer for every TCP stream of every public and lab capture (and,
for the first and last stream, what `--stream` runs, read_ladder: the same ladder), and
compares its dup_ack_num (the text view's [Dup ACK #n]) with
tcp.analysis.duplicate_ack_num; tests/test_ladder.py runs the command itself on one lab
capture (quick tier).
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import (  # noqa: E402
    Diff,
    captures,
    corpus,
    fail_on_undocumented,
    known_differences,
    tshark_version,
)
from support import ladder_oracle as oracle  # noqa: E402

LAB = Path(os.environ.get("TCPSIFT_LAB") or corpus().parent.parent / "lab" / "captures")
# (name as known_differences.toml names it, path): lab captures as lab/<file>
ALL = [(c, corpus() / c) for c in captures()]
if LAB.is_dir():
    ALL += [("lab/" + c, LAB / c) for c in captures(LAB) if not c.endswith(".json")]
KNOWN = known_differences()

pytestmark = pytest.mark.skipif(tshark_version() is None,
                                reason="tshark is not installed (the oracle)")


@pytest.mark.slow
@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_ladder_csv_equals_tshark_for_every_stream(name, path):
    import tcpsift
    from tcpsift.workflow import ladder as L

    try:
        cap = tcpsift.read(str(path))
    except tcpsift.CaptureError:
        pytest.skip("not a capture tcpsift reads")
    expected = oracle.streams(path)
    top = cap.tcp["stream"].max()
    ours = set(range(top + 1)) if top is not None else set()
    diffs = [Diff(name, 0, "tcp.stream", str(s) if s in expected else "", str(s) if s in ours else "")
             for s in sorted(ours ^ set(expected))]
    for stream in sorted(ours & set(expected)):
        lad = L.build(cap, stream=stream)
        out = io.StringIO()
        L.write_csv(lad.table, out)
        c = lad.connection
        diffs += oracle.differences(name, expected[stream], out.getvalue(),
                                    f"{c.client}:{c.client_port}")
        if stream in (0, top):
            # what `--stream` runs, without the capture's tables: the same ladder
            streamed, _, _ = L.read_ladder(str(path), stream)
            assert streamed.connection == lad.connection and streamed.table.equals(lad.table)
        ours = dict(zip(lad.table["frame"], lad.table["dup_ack_num"].cast(str).fill_null("")))
        diffs += [Diff(name, int(r.frame), "tcp.analysis.duplicate_ack_num", r.dup_ack_num,
                       ours.get(int(r.frame), "")) for r in expected[stream]
                  if ours.get(int(r.frame), "") != r.dup_ack_num]
    fail_on_undocumented(name, diffs, KNOWN)
