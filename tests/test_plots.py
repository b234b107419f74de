"""`tcpsift plot` as a user runs it (in process through Click's runner): every kind drawn
on the lab captures, and the --data series checked against tshark's fields for the same
frames and against the lab's truth files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from tcpsift.cli.main import cli

sys.path.insert(0, str(Path(__file__).parent))
from support import tcp_conformance as tc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT.parent / "shared" / "lab" / "captures"
pytestmark = [pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures"),
              pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")]

KINDS = ("window", "window-ack", "tseq", "rtt", "throughput", "inflight")
CAPTURES = ("seed-like", "loss-retrans", "zero-window")
C = pl.col
MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}
TSHARK_FIELDS = ("frame.number", "tcp.stream", "tcp.srcport", "tcp.flags.ack", "tcp.flags.reset", "tcp.seq",
                 "tcp.ack", "tcp.len", "tcp.window_size", "tcp.analysis.ack_rtt",
                 "tcp.analysis.bytes_in_flight", "tcp.analysis.retransmission",
                 "tcp.analysis.out_of_order")


def truth(name: str) -> dict:
    return json.loads((LAB / f"{name}.truth.json").read_text())


def run(*args):
    return CliRunner().invoke(cli, ["plot", *map(str, args)])


def plot_data(tmp_path: Path, capture: str, stream: int, kind: str, *more) -> pl.DataFrame:
    out, data = tmp_path / f"{kind}.png", tmp_path / f"{kind}.csv"
    result = run(LAB / f"{capture}.pcap", "--stream", stream, kind, "-o", out, "--data", data,
                 *more)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC["png"])
    return pl.read_csv(data, infer_schema_length=None)


def tshark(capture: str, stream: int) -> pl.DataFrame:
    """tshark's fields for the stream's frames (null where tshark prints nothing); tshark's
    output is cached on disk by the conformance tests' helper."""
    text = tc.tshark_fields(LAB / f"{capture}.pcap", list(TSHARK_FIELDS))
    table = pl.read_csv(text, separator="\t", has_header=False, new_columns=list(TSHARK_FIELDS),
                        infer_schema_length=None)
    return table.rename({"frame.number": "frame"}).filter(C("tcp.stream") == stream)


def port(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def assert_column_equal(ours: pl.DataFrame, column: str, theirs: pl.DataFrame, field: str):
    """Our column equals tshark's field, frame by frame, over the frames of `ours`."""
    joined = ours.select("frame", column).join(theirs.select("frame", field), on="frame",
                                               how="left")
    assert len(joined) == len(ours)
    different = joined.filter(C(column).ne_missing(C(field)))
    assert different.is_empty(), different.head(5)



# --- every kind drawn ------------------------------------------------------------------

# Every kind is drawn to PNG by the series tests below (through the command); these add
# the other formats, and the slow test every kind in every format and direction.
@pytest.mark.parametrize("kind, capture, fmt", [
    ("window-ack", "zero-window", "svg"), ("tseq", "loss-retrans", "pdf")])
@pytest.mark.slow
def test_each_format_written(tmp_path, kind, capture, fmt):
    out = tmp_path / f"plot.{fmt}"
    result = run(LAB / f"{capture}.pcap", "--stream", 0, kind, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC[fmt])
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    # the mode any new file gets, not the temporary file's private one
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.slow
@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_every_format_both_directions(tmp_path, capture, kind):
    for fmt in MAGIC:
        for direction in ("c2s", "s2c"):
            out = tmp_path / f"{direction}.{fmt}"
            result = run(LAB / f"{capture}.pcap", "--stream", 1, kind, "-o", out,
                         "--direction", direction)
            assert result.exit_code == 0, result.output
            assert out.read_bytes().startswith(MAGIC[fmt])


@pytest.mark.slow
def test_every_kind_draws_a_stream_whose_row_has_no_segment_length():
    # 6in4-tcp.pcap's stream 0 is one frame whose TCP length tshark cannot tell
    path = ROOT.parent / "shared" / "captures" / "public" / "encap" / "6in4-tcp.pcap"
    if not path.exists():
        pytest.skip("needs ../shared/captures/public")
    import io

    import tcpsift
    from tcpsift.workflow import plots

    cap = tcpsift.read(str(path))
    for kind in KINDS:
        plots.plot(cap, 0, kind).savefig(io.BytesIO(), format="svg")


# --- the series against tshark and the lab's truth ----------------------------------------

def test_window_series_is_the_clients_window_and_finds_the_dip(tmp_path):
    download = truth("seed-like")["expected"]["download_connection"]
    stream = download["from_capture"]["tcp_stream"]
    data = plot_data(tmp_path, "seed-like", stream, "window")
    assert data.columns == ["frame", "time_rel_s", "window"]
    theirs = tshark("seed-like", stream)
    client = theirs.filter((C("tcp.srcport") == port(download["client"]))
                           & (C("tcp.flags.reset") == 0))
    # the data flows to the client, so the window drawn is the one the client advertised
    assert data["frame"].to_list() == client["frame"].to_list()
    assert_column_equal(data, "window", theirs, "tcp.window_size")
    dip = truth("seed-like")["expected"]["window_dip"]["from_capture"]
    # the dip: the smallest window once the window had grown to its size before the stall
    grown = data.filter((C("window") >= dip["window_before_stall"]).cum_max())
    lowest = grown.filter(C("window") == C("window").min())
    assert lowest["frame"].to_list() == [dip["min_window_frame"]]
    assert lowest["window"][0] == dip["min_window"]


def test_zero_window_episodes_are_zeros_in_the_window_series(tmp_path):
    zw = truth("zero-window")["zero_window_connection"]
    data = plot_data(tmp_path, "zero-window", zw["from_capture"]["tcp_stream"], "window-ack")
    window = dict(zip(data["frame"], data["window"]))
    for episode in zw["episodes"]:
        ep = episode["from_capture"]
        zeros = data.filter(C("frame").is_between(ep["first_zero_frame"], ep["reopen_frame"],
                                                  closed="left") & (C("window") == 0))
        assert zeros["frame"][0] == ep["first_zero_frame"]
        assert len(zeros) == ep["frames"]
        assert window[ep["reopen_frame"]] == ep["reopen_window"]
    theirs = tshark("zero-window", zw["from_capture"]["tcp_stream"])
    assert_column_equal(data, "window", theirs, "tcp.window_size")
    assert_column_equal(data, "ack", theirs, "tcp.ack")


def test_tseq_series_equals_tshark_and_marks_every_lost_segment(tmp_path):
    download = truth("loss-retrans")["injected"]["connections"][0]
    data = plot_data(tmp_path, "loss-retrans", 0, "tseq")
    theirs = tshark("loss-retrans", 0)
    assert data["frame"].to_list() == theirs["frame"].to_list()
    for column, field in (("seq", "tcp.seq"), ("ack", "tcp.ack"), ("len", "tcp.len"),
                          ("window", "tcp.window_size")):
        assert_column_equal(data, column, theirs, field)
    # the R and O marks are tshark's verdicts
    for verdict in ("retransmission", "out_of_order"):
        marked = data.filter(C("verdicts").str.contains(verdict))["frame"].to_list()
        assert marked == theirs.filter(C(f"tcp.analysis.{verdict}") == 1)["frame"].to_list()
    # every segment the router dropped before the capture point arrives later marked R or
    # O, except the tail: its retransmission is the first copy the client sees
    sent = data.filter(C("direction") == download["data_direction"])
    dropped = [d for d in download["dropped"] if d["transmission"] == "original"]
    for drop in dropped[:-1]:
        copies = sent.filter(C("seq") == drop["rel_seq"] + 1)
        assert copies["verdicts"].str.contains("retransmission|out_of_order").any(), drop


@pytest.mark.parametrize("capture, stream, name, direction, receiver", [
    ("loss-retrans", 1, "upload", "c2s", "server"),
    ("seed-like", 0, "download", "s2c", "client")])
def test_rtt_series_equals_tsharks_ack_rtt(tmp_path, capture, stream, name, direction,
                                           receiver):
    tr = truth(capture)
    conn = (next(c for c in tr["injected"]["connections"] if c["name"] == name)
            if capture == "loss-retrans" else tr["injected"][name])
    data = plot_data(tmp_path, capture, stream, "rtt", "--direction", direction)
    theirs = tshark(capture, stream)
    # every ACK RTT tshark gives the receiver's frames, and only those
    expected = theirs.filter(C("tcp.analysis.ack_rtt").is_not_null()
                             & (C("tcp.srcport") == port(conn[receiver])))
    assert len(data) > 10
    assert data["frame"].to_list() == expected["frame"].to_list()
    gap = (data["ack_rtt_s"] - expected["tcp.analysis.ack_rtt"]).abs().max()
    assert gap < 1e-12


def test_inflight_series_equals_tsharks_bytes_in_flight(tmp_path):
    data = plot_data(tmp_path, "loss-retrans", 1, "inflight")
    theirs = tshark("loss-retrans", 1)
    sent = data.filter(C("direction") == "c2s")   # the upload: data client to server
    assert sent["bytes_in_flight"].drop_nulls().len() > 100
    assert_column_equal(sent, "bytes_in_flight", theirs, "tcp.analysis.bytes_in_flight")
    assert_column_equal(data.filter(C("direction") == "s2c"), "window", theirs,
                        "tcp.window_size")


def test_throughput_totals_equal_tsharks_bytes(tmp_path):
    data = plot_data(tmp_path, "loss-retrans", 0, "throughput", "--average", 0.05)
    theirs = tshark("loss-retrans", 0)
    sent = data.filter(C("direction") == "s2c")
    assert sent["len"].sum() == theirs.filter(C("tcp.srcport") == 80)["tcp.len"].sum()
    # goodput counts what the cumulative ACK covered: tshark's last ACK minus its first
    acks = theirs.filter((C("tcp.srcport") != 80) & (C("tcp.flags.ack") == 1))["tcp.ack"]
    assert data["acked_bytes"].sum() == acks.max() - acks[0]
    assert data["average_s"].unique().to_list() == [0.05]
    # the rate is the bytes of the trailing 50 ms: at most the link could carry
    assert sent["throughput_bit_s"].max() > 0


# --- the ladder ---------------------------------------------------------------------------

@pytest.mark.slow
def test_series_equal_the_ladders_columns(tmp_path):
    ladder = pytest.importorskip("tcpsift.workflow.ladder")
    import tcpsift

    cap = tcpsift.read(str(LAB / "loss-retrans.pcap"))
    rungs = ladder.ladder(cap, stream=0)
    for kind, columns in (("tseq", ["direction", "flags", "seq", "ack", "len", "window",
                                    "verdicts"]),
                          ("window-ack", ["window", "ack"])):
        data = plot_data(tmp_path, "loss-retrans", 0, kind)
        joined = data.join(rungs, on="frame", how="left", suffix="_ladder")
        for column in columns:
            differ = joined.filter(C(column).ne_missing(C(f"{column}_ladder")))
            assert differ.is_empty(), (kind, column, differ.head(3))
        # --data writes times to the nanosecond
        gap = (joined["time_rel_s"] - joined["time_rel_s_ladder"]).abs().max()
        assert gap <= 5e-10


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--stream", 99, "window"], "streams are 0-2"),
    (["--stream", 0, "windows"], "one of window, window-ack, tseq"),
    (["--stream", 0, "window", "--direction", "up"], "use c2s or s2c"),
    (["window"], "--stream N is required"),
])
def test_bad_request_is_one_line_and_leaves_nothing(tmp_path, args, says):
    result = run(LAB / "loss-retrans.pcap", *args, "-o", tmp_path / "x.png",
                 "--data", tmp_path / "x.csv")
    assert result.exit_code == 2
    assert says in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_output_is_one_line(tmp_path):
    cap = LAB / "loss-retrans.pcap"
    result = run(cap, "--stream", 0, "window", "-o", tmp_path / "x.gif")
    assert result.exit_code == 2 and "use .png, .svg, .pdf" in result.stderr
    result = run(cap, "--stream", 0, "window", "-o", tmp_path / "missing" / "x.png")
    assert result.exit_code == 2 and "cannot write here" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib fails
    result = run(LAB / "loss-retrans.pcap", "--stream", 0, "window", "-o", tmp_path / "x.png")
    assert result.exit_code == 2
    assert result.stderr.strip() == "tcpsift: plots need matplotlib: pip install 'tcpsift[plot]'"


# --- a guest in the caller's matplotlib ------------------------------------------------------

PROBE = """
import sys
from tcpsift.cli.main import run
run(["--help"])
print("matplotlib" in sys.modules, "polars" in sys.modules)
import tcpsift
from tcpsift.workflow import plots
fig = plots.plot(tcpsift.read(sys.argv[1]), 0, "tseq")
import matplotlib
from matplotlib.figure import Figure
print(isinstance(fig, Figure), "matplotlib.pyplot" in sys.modules, matplotlib.get_backend(),
      fig._repr_png_().startswith(b"\\x89PNG"))
"""


@pytest.mark.slow
def test_help_imports_no_matplotlib_and_the_library_uses_no_pyplot():
    out = subprocess.run([sys.executable, "-c", PROBE, str(LAB / "zero-window.pcap")],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": "svg"}).stdout.splitlines()
    # a Figure, and one a notebook shows as a picture without pyplot
    assert out[-2:] == ["False False", "True False svg True"]
