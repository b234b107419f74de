"""tshark's side of the ladder tests: one tshark run per capture (all streams at once,
cached by tests/conformance/harness.py), split by tcp.stream as
`tshark -Y "tcp.stream == N"` would select the frames, and compared cell by cell with the
ladder's CSV (`tcpsift ladder --format csv`).

Compared per row: frame (frame.number), time_rel_s (tcp.time_relative), seq, ack, len,
window (tcp.seq, tcp.ack, tcp.len, tcp.window_size) as text; flags: the flags tcp.flags.str
marks, by position, in the ladder's letters (tshark spells ACK and AE both "A"), in any
order, the three reserved bits left out; verdicts: the tcp.analysis.* fields tshark prints,
as a set; direction: the c2s rows are those whose sender (the innermost ip.src or ipv6.src,
and tcp.srcport) is the client the ladder names, the s2c rows the others.

Differences come as harness.Diff (field: the tshark field compared, "ladder.direction" for
the direction, "tcp.stream" for a frame that only one side puts in the stream), so that
known_differences.toml covers them as it covers `tcpsift fields`.
"""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
import harness  # noqa: E402
from harness import Diff  # noqa: E402

VERDICT_NAMES = ("retransmission", "fast_retransmission", "spurious_retransmission",
                 "out_of_order", "lost_segment", "ack_lost_segment", "zero_window",
                 "zero_window_probe", "zero_window_probe_ack", "window_full", "window_update",
                 "keep_alive", "keep_alive_ack", "reused_ports", "duplicate_ack")
VALUES = {"time_rel_s": "tcp.time_relative", "seq": "tcp.seq", "ack": "tcp.ack",
          "len": "tcp.len", "window": "tcp.window_size"}
# tcp.flags.str: 12 characters, bit 11 first; the ladder's letter of each bit it shows
FLAG_POSITIONS = {3: "N", 4: "C", 5: "E", 6: "U", 7: "A", 8: "P", 9: "R", 10: "S", 11: "F"}
FIELDS = ["frame.number", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", *VALUES.values(),
          "tcp.flags.str", "tcp.analysis.duplicate_ack_num",
          *(f"tcp.analysis.{v}" for v in VERDICT_NAMES)]


@dataclass(frozen=True)
class Row:
    frame: str
    senders: frozenset      # "address:port" of the innermost IPv4 and IPv6 source
    values: dict            # ladder column -> tshark's text
    flags: frozenset
    verdicts: frozenset
    dup_ack_num: str


def streams(path: Path) -> dict[int, list[Row]]:
    """{tcp.stream: its frames' rows, in frame order} from one tshark run."""
    rc, out = harness.tshark_fields(path, FIELDS)
    assert rc == 0, f"tshark failed on {path}"
    by_stream: dict[int, list[Row]] = {}
    for line in out.decode().splitlines():
        cells = dict(zip(FIELDS, line.split("\t")))
        if not cells.get("tcp.stream"):
            continue
        # repeated headers are comma-joined outermost first: the last is the innermost
        port = cells["tcp.srcport"].split(",")[-1]
        senders = frozenset(f"{ip.split(',')[-1]}:{port}"
                            for ip in (cells["ip.src"], cells["ipv6.src"]) if ip)
        marks = cells["tcp.flags.str"]
        row = Row(cells["frame.number"], senders, {col: cells[f] for col, f in VALUES.items()},
                  frozenset(letter for i, letter in FLAG_POSITIONS.items()
                            if len(marks) == 12 and marks[i] != "\u00b7"),
                  frozenset(v for v in VERDICT_NAMES if cells[f"tcp.analysis.{v}"]),
                  cells["tcp.analysis.duplicate_ack_num"])
        # a frame with two TCP headers (a tunnel) belongs to both streams, as -Y selects it
        for s in {int(x) for x in cells["tcp.stream"].split(",")}:
            by_stream.setdefault(s, []).append(row)
    return by_stream


def differences(capture: str, expected: list[Row], ladder_csv: str, client: str) -> list[Diff]:
    """What differs between tshark's rows of a stream and the ladder's CSV of it (whose
    header names `client` as "address:port"); [] when they agree."""
    got = {int(r["frame"]): r for r in csv.DictReader(io.StringIO(ladder_csv))}
    want = {int(r.frame): r for r in expected}
    diffs = [Diff(capture, f, "tcp.stream", "in the stream" if f in want else "",
                  "in the stream" if f in got else "") for f in sorted(set(got) ^ set(want))]
    for f in sorted(set(got) & set(want)):
        w, h = want[f], got[f]
        for col, text in w.values.items():
            if h[col] != text:
                diffs.append(Diff(capture, f, VALUES[col], text, h[col]))
        if frozenset(h["flags"]) != w.flags:
            diffs.append(Diff(capture, f, "tcp.flags.str", "".join(sorted(w.flags)), h["flags"]))
        verdicts = frozenset(v for v in h["verdicts"].split(";") if v)
        if verdicts != w.verdicts:
            diffs.append(Diff(capture, f, "tcp.analysis.flags", ";".join(sorted(w.verdicts)),
                              ";".join(sorted(verdicts))))
        if (client in w.senders) != (h["direction"] == "c2s"):
            diffs.append(Diff(capture, f, "ladder.direction",
                              f"sent by {'/'.join(sorted(w.senders))}", f"{h['direction']} "
                              f"(client {client})"))
    return diffs
