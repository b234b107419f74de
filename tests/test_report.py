"""`tcpsift report`, the notebook display and the progress display, on the lab captures
(../shared/lab/captures): the page is opened in a headless Chromium and its connection
table held to tshark's conversation count, its summary and client resets to the lab's
truth files; it must refer to nothing outside itself and escape what comes from a file."""
from __future__ import annotations

import datetime as dt
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcpsift
from tcpsift.cli.main import cli

sys.path.insert(0, str(Path(__file__).parent))
from support import tcp_conformance as tc  # noqa: E402

LAB = tc.shared() / "lab" / "captures"
pytestmark = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (CI installs "
                                    "Debian's chromium)")


def truth(name: str) -> dict:
    return json.loads((LAB / f"{name}.truth.json").read_text())


def tshark_conversations(path: Path) -> int:
    """tshark's TCP conversation count (`-z conv,tcp`)."""
    out = subprocess.run(["tshark", "-r", str(path), "-q", "-z", "conv,tcp"], check=True,
                         capture_output=True, text=True).stdout
    return sum("<->" in line for line in out.splitlines())


def make_report(*args):
    return CliRunner().invoke(cli, ["report", *map(str, args)])


class Page(HTMLParser):
    """Every element's tag and attributes; the text of each table's cells, by the table's id,
    else by its section's."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.section = self.table = None
        self.cells: dict[str, list[list[str]]] = {}
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "section":
            self.section = attrs.get("id")
        elif tag == "table":
            self.table = attrs.get("id") or self.section
        elif tag == "tr":
            self.cells.setdefault(self.table, []).append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells[self.table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def attributes(self, tag=None, **match) -> list[dict]:
        return [a for t, a in self.elements if (tag is None or t == tag)
                and all(a.get(k) == v for k, v in match.items())]


# a capture file name is text from outside: the page must show it, not run it
HOSTILE_NAME = '<img src=x onerror="alert(1)">&<script>x.pcapng'


@pytest.fixture(scope="module")
def client_resets_report(tmp_path_factory) -> tuple[Path, str]:
    """The report of client-resets.pcapng, copied under HOSTILE_NAME, its client counted by
    Ethernet address as the lab's truth counts it (one host, an IPv4 and an IPv6 address)."""
    folder = tmp_path_factory.mktemp("report")
    capture = folder / HOSTILE_NAME
    shutil.copy(LAB / "client-resets.pcapng", capture)
    out = folder / "client-resets.html"
    result = make_report(capture, "-o", out, "--client-by", "mac")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""      # not a terminal: no progress display, no warning
    return out, out.read_text()


@pytest.mark.slow
def test_report_refers_to_nothing_outside_the_file(client_resets_report):
    _, text = client_resets_report
    page = Page(text)
    for tag, attrs in page.elements:
        assert tag not in ("link", "iframe", "object", "embed", "base", "frame")
        for name in ("src", "href", "xlink:href", "action", "formaction", "poster", "data"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value)
    assert "@import" not in text
    assert "url(" not in text.replace("url(#", "").replace("url(data:", "")


def test_report_summary_and_client_resets_equal_the_lab_truth(client_resets_report):
    _, text = client_resets_report
    tr = truth("client-resets")
    facts = tr["captures"][0]["from_capture"]
    assert f"{facts['packets']:,}" in text
    first = dt.datetime.fromtimestamp(facts["first_time"], dt.timezone.utc)
    assert first.strftime("%Y-%m-%d %H:%M:%S.%f UTC") in text
    # the client resets table: stream, client, server, RST frame, open counts
    rows = Page(text).cells["resets"]
    header, body = rows[0], rows[1:]
    by_stream = {int(r[0]): dict(zip(header, r)) for r in body}
    expected = tr["expected"]["resets"]
    assert sorted(by_stream) == sorted(r["from_capture"]["tcp_stream"] for r in expected)
    for r in expected:
        fc = r["from_capture"]
        row = by_stream[fc["tcp_stream"]]
        assert int(row["RST frame"]) == fc["rst_frame"]
        assert int(row["Open to other servers"]) == fc["open_to_other_servers"]
        assert int(row["Open to the same server"]) == fc["open_to_same_server"]


def test_report_escapes_file_names(client_resets_report):
    _, text = client_resets_report
    page = Page(text)
    assert not any("onerror" in attrs for _, attrs in page.elements)
    assert not page.attributes("img", src="x")
    # the page's own scripts only: the error hook, the table data, the table code
    assert len(page.attributes("script")) == 3
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&lt;script&gt;x.pcapng" in text


def test_table_data_cannot_end_its_script_element():
    import polars as pl

    from tcpsift.workflow.report import table_json

    conns = tcpsift.read(LAB / "client-resets.pcapng").conns
    hostile = "</script><script>alert(1)</script><!--"
    text = table_json(conns.with_columns(pl.lit(hostile).alias("history")), 0)
    assert "<" not in text and ">" not in text
    assert json.loads(text)["data"]["history"][0] == hostile


def test_table_data_is_the_connection_table_column_by_column():
    """The JSON Polars writes holds each column's values as Python's json would."""
    from tcpsift.workflow.report import TABLE, _table_exprs, table_json

    cap = tcpsift.read(LAB / "client-resets.pcapng")
    first = cap.packets["ts_ns"].min()
    data = json.loads(table_json(cap.conns, first))["data"]
    frame = cap.conns.select(_table_exprs(first))
    assert list(data) == [c.key for c in TABLE]
    for col in TABLE:
        values = frame[col.key].cast(str).to_list() if col.kind in ("word", "addr") \
            else frame[col.key].to_list()
        got = data[col.key]
        if col.kind in ("word", "addr"):
            assert got["dict"] == sorted(set(v for v in values if v is not None))
            got = [None if c is None else got["dict"][c] for c in got["codes"]]
        assert got == values, col.key


def test_figure_is_laid_out_once_and_keeps_its_layout_engine():
    """figure_html draws a constrained-layout figure once (matplotlib's savefig draws it a
    second time to lay it out), laid out as savefig lays it out, and gives the engine back."""
    pytest.importorskip("matplotlib")
    import io

    from matplotlib.figure import Figure

    from tcpsift.workflow.report import figure_html

    def make():
        fig = Figure(figsize=(10, 6), layout="constrained")
        ax = fig.add_subplot()
        line, = ax.plot([0, 1, 2], [0, 1000, 250000], label="data")
        ax.set_ylabel("bytes")
        ax.set_title("a subtitle\nof two lines", fontsize=9)
        fig.suptitle("A title", fontsize=13)
        fig.legend(handles=[line], loc="outside lower center")
        return fig

    reference = make()
    reference.savefig(io.StringIO(), format="svg")
    fig = make()
    engine = fig.get_layout_engine()
    draws = []
    draw = fig.draw
    fig.draw = lambda renderer: (draws.append(renderer), draw(renderer))  # type: ignore
    assert figure_html(fig, "t").startswith("<svg")
    assert len(draws) == 1
    assert fig.get_layout_engine() is engine
    # (the layout measured with Agg at the figure's dpi, savefig's with the SVG renderer)
    assert fig.axes[0].get_position().bounds == pytest.approx(
        reference.axes[0].get_position().bounds, abs=0.01)


def test_report_bad_output_is_one_line_exit_2_and_writes_nothing(tmp_path):
    capture = LAB / "client-resets.pcapng"
    for output in (tmp_path / "missing" / "r.html", tmp_path):
        result = make_report(capture, "-o", output)
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("tcpsift: ")
    assert list(tmp_path.iterdir()) == []
    result = make_report(capture, "-o", tmp_path / "r.html", "--stream", 99999)
    assert result.exit_code == 2 and "streams are 0-23" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_file_is_replaced_whole_or_not_at_all(tmp_path):
    from tcpsift.workflow.report import write_atomically

    out = tmp_path / "r.html"
    out.write_text("the previous report")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(out, "<html>" + "x" * 100_000 + "\ud800")   # fails mid-write
    assert out.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_notebook_display_shows_the_summary_numbers():
    tr = truth("seed-like")
    cap = tcpsift.read(LAB / "seed-like.pcap")
    shown = cap._repr_html_()
    facts = tr["captures"][0]["from_capture"]
    conversations = tshark_conversations(LAB / "seed-like.pcap")
    assert f'<div class="v">{facts["packets"]:,}</div><div class="k">Packets</div>' in shown
    assert (f'<div class="v">{conversations}</div><div class="k">TCP connections</div>'
            in shown)
    span = facts["last_time"] - facts["first_time"]
    assert f'<div class="v">{span:,.3f} s</div>' in shown
    # the connection display: its ladder's first frame is the connection's first frame
    view = cap.conn(0)
    assert view.ladder["frame"][0] == view.row["first_frame"]
    assert f"Stream 0: {view.row['client']}" in view._repr_html_()


def test_report_without_matplotlib_has_everything_but_the_figures(monkeypatch):
    """Also: the zero-window capture's verdict count and its connection in detail are the
    lab's truth."""
    from tcpsift.workflow.report import report_html

    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib fails
    text = report_html(tcpsift.read(LAB / "zero-window.pcap"))
    assert "Plots need matplotlib" in text and "<svg" not in text
    zero = truth("zero-window")["zero_window_connection"]["from_capture"]
    rows = Page(text).cells["verdicts"]
    counts = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert int(counts["tcp.analysis.zero_window"]["Frames"]) == zero["zero_window_frames_tshark"]
    detail = f'id="stream-{zero["tcp_stream"]}"'
    assert detail in text
    assert f"zero window ({zero['zero_window_frames_tshark']} frames)" in text.split(detail)[1]


def _dump_dom(page: Path, fragment: str = "") -> str:
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox",
                           "--dump-dom", page.as_uri() + fragment], capture_output=True,
                          text=True, timeout=120, check=True).stdout


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("name", ["client-resets.pcapng", "seed-like.pcap"])
def test_report_opens_in_a_browser_with_every_connection(tmp_path, name):
    out = tmp_path / "report.html"
    result = make_report(LAB / name, "-o", out)
    assert result.exit_code == 0, result.output
    dom = Page(_dump_dom(out))
    root = dom.attributes("html")[0]
    assert root.get("data-errors") == "0", root.get("data-last-error")
    assert root.get("data-ready") == "1"
    count = dom.attributes(id="count")[0]
    conversations = tshark_conversations(LAB / name)
    assert int(count["data-all"]) == int(count["data-total"]) == conversations
    rendered = dom.cells["conns"][1:]      # the first row is the heading
    assert len(rendered) == int(count["data-rows"]) == min(conversations, 50)


@pytest.mark.slow
@needs_chromium
def test_report_table_filters_and_sorts_in_the_browser(tmp_path):
    """Opened as report.html#filter=hs>300&sort=start, the table holds the lab's slow
    SYN-ACKs, the first one first."""
    exp = truth("slow-synack")["expected"]
    out = tmp_path / "report.html"
    assert make_report(LAB / "slow-synack.pcap", "-o", out).exit_code == 0
    threshold = exp["threshold_ms"]
    dom = Page(_dump_dom(out, f"#filter=hs%3E{threshold}&sort=start"))
    assert dom.attributes("html")[0].get("data-errors") == "0"
    count = dom.attributes(id="count")[0]
    assert int(count["data-total"]) == len(exp["connections_over_threshold"])
    heading, first = dom.cells["conns"][:2]
    row = dict(zip(heading, first))
    fc = exp["first_connection_over_threshold"]["from_capture"]
    assert int(row["Stream"]) == fc["tcp_stream"]
    assert int(row["Frame"]) == fc["syn_frame"]
    assert float(row["Handshake (ms)"]) == pytest.approx(fc["syn_to_syn_ack_ms"], abs=0.001)


@pytest.mark.slow
def test_progress_shows_on_a_terminal_only(tmp_path):
    """On a terminal the report shows its steps on stderr (the display's delay set to 0);
    CliRunner, not a terminal, saw nothing (client_resets_report)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "TCPSIFT_PROGRESS_DELAY": "0", "TERM": "xterm", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "tcpsift", "report",
                             str(LAB / "client-resets.pcapng"), "-o", str(tmp_path / "r.html")],
                            stderr=terminal, stdout=subprocess.DEVNULL, env=env)
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:     # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=60) == 0
    os.close(controller)
    assert b"reading the capture" in shown or b"connections" in shown


@pytest.mark.slow
def test_the_same_capture_makes_the_same_page(tmp_path):
    """Week after week the same capture gives the same page, byte for byte, but for the
    line that says when it was made (the figures carry no date)."""
    pages = []
    for name in ("first.html", "second.html"):
        result = make_report(LAB / "zero-window.pcap", "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
        text = (tmp_path / name).read_text()
        assert "<svg" in text and "dc:date" not in text
        made = re.compile(r"Made by tcpsift \S+ on \d{4}-\d\d-\d\d \d\d:\d\d UTC")
        assert len(made.findall(text)) == 1
        pages.append(made.sub("", text))
    assert pages[0] == pages[1]
