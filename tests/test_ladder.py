"""`tcpsift ladder` (tcpsift.workflow.ladder) against tshark and the lab's ground truth.

The command runs in process (Click's runner: standard output is not a terminal, so no
colour) on ../shared/lab/captures; tshark 4.0 and the NAME.truth.json files are the
oracles. The CSV of every stream of every capture is compared with tshark by
tests/conformance/test_ladder_vs_tshark.py (slow tier); here one lab capture.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from support import tcp_conformance as tc  # noqa: E402

LAB = tc.shared() / "lab" / "captures"
pytestmark = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def truth(name: str) -> dict:
    return json.loads((LAB / f"{name}.truth.json").read_text())


def ladder(*args, env=None):
    from tcpsift.cli.main import cli

    return CliRunner().invoke(cli, ["ladder", *map(str, args)], env=env)


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def header(output: str) -> dict:
    """The header lines' facts: stream, client, server, packets, first/last frame and
    absolute time (seconds since the epoch, from a --utc header)."""
    lines = output.splitlines()
    m = re.fullmatch(r"TCP stream (\d+): (\S+) \(client, -->\) <-> (\S+) \(server, <--\)", lines[0])
    counts = re.fullmatch(r"packets: (\d+) in the connection, (\d+) in the capture", lines[1])
    out = {"stream": int(m[1]), "client": m[2], "server": m[3], "packets": int(counts[1]),
           "capture_packets": int(counts[2])}
    for key, line in (("first", lines[2]), ("last", lines[3])):
        f = re.fullmatch(r"(?:first|last): +frame (\d+) at (\S+ \S+)\.(\d{9}) UTC", line)
        whole = datetime.strptime(f[2], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        out[f"{key}_frame"] = int(f[1])
        out[f"{key}_time"] = Decimal(int(whole.timestamp())) + Decimal(f[3]) / 10**9
    return out


def ladder_lines(output: str) -> dict[int, str]:
    """frame -> its line of the text view."""
    return {int(m[1]): line for line in output.splitlines()
            if (m := re.match(r"\s*(?:-->|<--)\[\s*(\d+)\]", line))}


# --- the lab's facts ---------------------------------------------------------------------

def test_seed_like_download_and_its_window_dip():
    """The download connection by its endpoints: stream, frames and times as the truth has
    them; its smallest client window after the read stall, found by one --where."""
    tr = truth("seed-like")
    dl = tr["expected"]["download_connection"]
    cap = dl["from_capture"]
    dip = tr["expected"]["window_dip"]["from_capture"]
    path = LAB / "seed-like.pcap"
    conn = f"{dl['client']} {dl['server']}"

    res = ladder(path, "--conn", conn, "--utc")
    assert res.exit_code == 0, res.output
    h = header(res.stdout)
    assert (h["stream"], h["client"], h["server"]) == (cap["tcp_stream"], dl["client"], dl["server"])
    assert (h["packets"], h["first_frame"], h["last_frame"]) == (
        cap["frames"], cap["first_frame"], cap["last_frame"])
    assert h["capture_packets"] == tr["captures"][0]["from_capture"]["packets"]
    # the truth's times are microseconds as floats
    assert abs(h["first_time"] - Decimal(str(cap["first_time"]))) < Decimal("1e-6")
    assert abs(h["last_time"] - Decimal(str(cap["last_time"]))) < Decimal("1e-6")
    assert len(ladder_lines(res.stdout)) == cap["frames"]

    stall = tr["injected"]["download"]["read_stall"]["start_time"] - cap["first_time"]
    res = ladder(path, "--conn", conn, "--format", "csv", "--where",
                 f"direction = 'c2s' and time_rel_s > {stall} and window <= {dip['min_window']}")
    assert res.exit_code == 0, res.output
    rows = csv_rows(res.stdout)
    assert [(int(r["frame"]), int(r["window"])) for r in rows] == [
        (dip["min_window_frame"], dip["min_window"])]
    assert Decimal(rows[0]["time_rel_s"]) + Decimal(str(cap["first_time"])) == pytest.approx(
        Decimal(str(dip["min_window_time"])), abs=Decimal("1e-6"))


def test_zero_window_episodes():
    """Each episode's first zero-window frame and the frame that reopens the window, as
    the truth defines them (client frames without SYN/FIN/RST), from the ladder's rows."""
    tr = truth("zero-window")
    zw = tr["zero_window_connection"]
    res = ladder(LAB / "zero-window.pcap", "--conn", f"{zw['client']} {zw['server']}",
                 "--format", "csv", "--where",
                 "direction = 'c2s' and not regexp_like(flags, '[SFR]')")
    assert res.exit_code == 0, res.output
    episodes, current = [], None
    for r in csv_rows(res.stdout):
        if int(r["window"]) == 0:
            if current is None:
                current = {"first_zero_frame": int(r["frame"])}
                assert "zero_window" in r["verdicts"].split(";")
        elif current is not None:
            current.update(reopen_frame=int(r["frame"]), reopen_window=int(r["window"]))
            episodes.append(current)
            current = None
    want = [{k: e["from_capture"][k] for k in ("first_zero_frame", "reopen_frame",
                                                "reopen_window")} for e in zw["episodes"]]
    assert episodes == want


def test_frame_selects_its_connection():
    tr = truth("zero-window")
    ep = tr["zero_window_connection"]["episodes"][0]["from_capture"]
    res = ladder(LAB / "zero-window.pcap", "--frame", ep["first_zero_frame"], "--utc")
    assert res.exit_code == 0, res.output
    assert header(res.stdout)["stream"] == tr["zero_window_connection"]["from_capture"]["tcp_stream"]
    line = ladder_lines(res.stdout)[ep["first_zero_frame"]]
    assert line.startswith("-->") and " win=0 " in line and "[Zero window]" in line


# --- against tshark ----------------------------------------------------------------------

@needs_tshark
def test_csv_and_text_equal_tshark_on_a_lab_capture():
    """Every stream of loss-retrans.pcap: the command's CSV cell by cell against tshark's
    fields (tests/support/ladder_oracle.py), and the text view's [Dup ACK #n] against
    tcp.analysis.duplicate_ack_num."""
    from support import ladder_oracle as oracle

    path = LAB / "loss-retrans.pcap"
    expected = oracle.streams(path)
    assert expected
    dup_acks = 0
    for stream, rows in sorted(expected.items()):
        text = ladder(path, "--stream", stream)
        res = ladder(path, "--stream", stream, "--format", "csv")
        assert res.exit_code == 0 and text.exit_code == 0, res.output + text.output
        client = header_client(text.stdout)
        diffs = oracle.differences(path.name, rows, res.stdout, client)
        assert not diffs, f"stream {stream}: {diffs[:5]}"
        lines = ladder_lines(text.stdout)
        for r in rows:
            shown = re.search(r"\[Dup ACK #(\d+)\]", lines[int(r.frame)])
            assert (shown[1] if shown else "") == r.dup_ack_num, lines[int(r.frame)]
            dup_acks += bool(shown)
    assert dup_acks > 0   # the capture has some: the check above was not vacuous


def header_client(output: str) -> str:
    first = output.splitlines()[0]
    return first.split(": ", 1)[1].split(" (client", 1)[0].replace("[", "").replace("]", "")


@pytest.mark.parametrize("name", ["seed-like.pcap", "loss-retrans.pcap",
                                  "twopoint-lossy-a.pcap"])
@pytest.mark.slow
def test_streamed_ladder_equals_the_table_one(name):
    """read_ladder (what `--stream` runs: no capture tables) gives what build() gives on
    the whole capture, for every stream."""
    import tcpsift
    from tcpsift.workflow import ladder as L

    cap = tcpsift.read(str(LAB / name))
    for stream in range(cap.tcp["stream"].max() + 1):
        whole = L.build(cap, stream=stream)
        streamed, warnings, complete = L.read_ladder(str(LAB / name), stream)
        assert streamed.connection == whole.connection
        assert streamed.table.equals(whole.table)
        assert (warnings, complete) == (cap.warnings, cap.complete)


# --- formats, colour, output file ----------------------------------------------------------

def test_json_has_the_csv_columns_and_rows():
    from tcpsift.workflow.ladder import COLUMNS

    path = LAB / "zero-window.pcap"
    as_csv = csv_rows(ladder(path, "--stream", 1, "--format", "csv").stdout)
    as_json = json.loads(ladder(path, "--stream", 1, "--format", "json").stdout)
    assert list(as_csv[0]) == list(COLUMNS) == list(as_json[0])
    assert len(as_json) == len(as_csv)
    for j, c in zip(as_json, as_csv):
        assert {k: str(v if v is not None else "") for k, v in j.items() if k != "time_rel_s"} == {
            k: v for k, v in c.items() if k != "time_rel_s"}
        assert j["time_rel_s"] == pytest.approx(float(c["time_rel_s"]), abs=1e-9)


def test_colour_only_on_a_terminal():
    path = LAB / "zero-window.pcap"
    plain = ladder(path, "--stream", 0)
    forced = ladder(path, "--stream", 0, env={"FORCE_COLOR": "1", "NO_COLOR": None})
    assert plain.exit_code == forced.exit_code == 0
    assert "\x1b[" not in plain.stdout
    assert "\x1b[" in forced.stdout
    assert re.sub(r"\x1b\[[0-9;]*m", "", forced.stdout) == plain.stdout


def test_output_file(tmp_path):
    path = LAB / "zero-window.pcap"
    out = tmp_path / "ladder.csv"
    res = ladder(path, "--stream", 1, "--format", "csv", "-o", out)
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text() == ladder(path, "--stream", 1, "--format", "csv").stdout
    assert [p.name for p in tmp_path.iterdir()] == ["ladder.csv"]


# --- bad input: one line, exit 2 -----------------------------------------------------------

@pytest.mark.parametrize("args,says", [
    (["--stream", "99"], r"no TCP stream 99 in the capture: its TCP streams are 0-\d+"),
    (["--frame", "999999"], r"no frame 999999: the capture has frames 1-\d+"),
    (["--conn", "192.0.2.99:1 192.0.2.98:2"], r"no TCP connection between 192.0.2.99:1 "
     r"192.0.2.98:2 .*streams are 0-\d+"),
    (["--conn", "192.0.2.99 192.0.2.98:2"], r"expected two endpoints"),
    ([], r"choose the connection with one of --stream N"),
    (["--stream", "0", "--frame", "1"], r"choose the connection with one of"),
    (["--stream", "0", "--where", "windw < 5"], r"--where: no column windw \(columns: frame, "
     r"direction, time_rel_s, flags, seq, ack, len, window, verdicts"),
    (["--stream", "0", "--where", "window <"], r"--where: .*\(columns: frame, "),
    (["--stream", "0", "--where", "frame in (select 1 from read_csv('/nonexistent/x'))"],
     r"--where: a condition on the columns, not a query"),
    (["--stream", "0", "-o", "/nonexistent/dir/out.csv"], r"/nonexistent/dir/out.csv: no such "
     r"directory"),
    (["--stream", "0", "-o", str(LAB / "zero-window.pcap")], r"is the input file"),
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    res = ladder(LAB / "zero-window.pcap", *args)
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcpsift: ") and re.search(says, lines[0]), \
        res.stderr
