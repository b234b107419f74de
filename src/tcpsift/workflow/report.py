"""The HTML report of a capture (`tcpsift report`) and its notebook display.

    html = report_html(capture)                 # the page, as text
    write_report(capture, "report.html")        # written whole or not at all
    capture._repr_html_()                       # Jupyter: summary_html(capture)

The page is one self-contained file (inline CSS, JS and SVG; nothing fetched) that opens
offline and can be mailed: the capture summary, the verdict counts, the slowest
handshakes, the client resets with their open counts, every connection in a table that
sorts, filters and pages in the browser, and, for the connections that matter, the ladder
and the plots. The connection table travels as columnar JSON (addresses and states as a
dictionary plus codes) and the page's script renders one page of rows at a time, so a
capture of 100k connections stays a few MB and opens at once.

Everything from the capture that is text (file names, addresses, histories) is escaped:
HTML through `html.escape`, the JSON so that no `<` ends its script element, and the
script puts data into the page as text (`textContent`), never as markup.
"""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import polars as pl

from tcpsift.addresses import endpoint
from tcpsift.outputs import replaced
from tcpsift.tcp import FLAG_BITS
from tcpsift.workflow import report_assets

C = pl.col

# the connections shown in detail (ladder and plots) besides those asked for
DETAIL_RESETS = 3
DETAIL_ZERO_WINDOWS = 2
# rows of a ladder shown in full; a longer one keeps its start, its end and the rows
# around each verdict, with the number of rows left out in between
LADDER_FULL = 400
LADDER_HEAD, LADDER_TAIL, LADDER_CONTEXT, LADDER_MAX = 80, 40, 2, 900
# plots drawn for a connection shown in detail (when it carried this many packets): the
# time-sequence graph and throughput always, the rest for the reasons they explain; a
# figure takes ~0.1 s to draw, so not all six for every connection
PLOT_MIN_PACKETS = 30
ALWAYS_PLOTTED = ("tseq", "throughput")
PLOTS_FOR = {"data": ("window", "rtt", "inflight"), "handshake": (),
             "retransmissions": ("rtt", "inflight"), "zero window": ("window",), "reset": (),
             "asked": ("window", "rtt", "inflight")}
TOP_LIMIT = 10          # rows of the slowest-handshakes and notebook tables
RESET_ROWS = 20         # client resets listed (the table filters to all of them)


# --- numbers and times as a reader wants them -------------------------------------------

def _int(n) -> str:
    return "–" if n is None else f"{int(n):,}"


def _id(n) -> str:
    """A frame or stream number as Wireshark's Go to packet takes it."""
    return "–" if n is None else str(n)


def _ms(ns) -> str:
    if ns is None:
        return "–"
    return f"{ns / 1e6:,.3f} ms"


def _bytes(n) -> str:
    if n is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{int(n)} B"


def _abs_time(ns) -> str:
    if ns is None:
        return "–"
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc)
    fraction = ns % 1_000_000_000
    # microseconds unless the capture has finer times (a nanosecond pcap)
    fraction = f"{fraction:09d}" if fraction % 1000 else f"{fraction // 1000:06d}"
    return f"{t:%Y-%m-%d %H:%M:%S}.{fraction} UTC"


def _duration(ns) -> str:
    if ns is None:
        return "–"
    s = ns / 1e9
    if s < 1:
        return _ms(ns)
    if s < 120:
        return f"{s:,.3f} s"
    return f"{int(s // 60)} min {s % 60:04.1f} s"


def _file_name(path) -> str:
    return "standard input" if str(path) == "-" else os.path.basename(str(path))



def esc(value) -> str:
    return html.escape(str(value), quote=True)


# --- what the report is made of -----------------------------------------------------------

@dataclass
class Detail:
    """A connection shown in detail, why, and the plots that show it."""
    stream: int
    reasons: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=lambda: list(ALWAYS_PLOTTED))


def connections_that_matter(conns: pl.DataFrame, extra: Iterable[int] = ()) -> list[Detail]:
    """The largest transfer, the slowest handshake, the most retransmissions, the most zero
    windows, the first client (else server) resets, then the streams asked for; each once,
    with its reasons."""
    picked: dict[int, Detail] = {}

    def add(stream: int, topic: str, reason: str) -> None:
        detail = picked.setdefault(stream, Detail(stream))
        detail.reasons.append(reason)
        detail.kinds += [k for k in PLOTS_FOR[topic] if k not in detail.kinds]

    # (the columns these need only: sorting all of the table's took most of the time)
    counted = conns.select("stream", "syn_to_synack_ns", "ended_by",
                           (C("c2s_payload") + C("s2c_payload")).alias("_data"),
                           _both("retransmission").alias("_rtx"),
                           _both("zero_window").alias("_zw"))
    data = counted.filter(C("_data") > 0).sort("_data", "stream", descending=[True, False])
    if len(data):
        add(data["stream"][0], "data", f"most data ({_bytes(data['_data'][0])})")
    hs = counted.filter(C("syn_to_synack_ns").is_not_null()).sort("syn_to_synack_ns",
                                                                  descending=True)
    if len(hs):
        add(hs["stream"][0], "handshake", f"slowest handshake (SYN-ACK after {_ms(hs['syn_to_synack_ns'][0])})")
    rtx = counted.filter(C("_rtx") > 0).sort("_rtx", "stream", descending=[True, False])
    if len(rtx):
        add(rtx["stream"][0], "retransmissions", f"most retransmissions ({rtx['_rtx'][0]:,})")
    zw = counted.filter(C("_zw") > 0).sort("_zw", "stream", descending=[True, False])
    for stream, n in zw.select("stream", "_zw").head(DETAIL_ZERO_WINDOWS).iter_rows():
        add(stream, "zero window", f"zero window ({n:,} frames)")
    for who in ("client", "server"):
        resets = counted.filter(C("ended_by") == f"rst_{who}").sort("stream")
        for stream in resets["stream"].head(DETAIL_RESETS):
            add(stream, "reset", f"reset by the {who}")
        if len(resets):
            break
    for stream in extra:
        add(int(stream), "asked", "asked for (--stream)")
    return list(picked.values())


def capture_summary(cap) -> dict:
    """Files, packets, bytes, time span and protocol counts (`tcpsift info`'s counts,
    counted over the packet table: a reassembled IP datagram counts once, by its last
    fragment's frame)."""
    pk = cap.packets
    ip = C("ip_version").is_not_null()
    counts = pk.select(
        frames=pl.len(),
        ipv4=(C("ip_version") == 4).sum(),
        ipv6=(C("ip_version") == 6).sum(),
        tcp=(ip & (C("ip_proto") == 6)).sum(),
        udp=C("udp_len").is_not_null().sum(),
        icmp=C("icmp_type").is_not_null().sum(),
        tunnelled=(C("encap").cast(pl.String) != "").sum(),
        vlan_tagged=(C("vlan_depth") > 0).sum(),
        ip_fragments=(ip & (C("more_fragments") | (C("frag_offset") > 0))).sum(),
        captured_bytes=C("cap_len").cast(pl.Int64).sum(),
        wire_bytes=C("len").cast(pl.Int64).sum(),
        first_ns=C("ts_ns").min(),
        last_ns=C("ts_ns").max(),
    ).row(0, named=True)
    return {
        "files": cap.info.files,
        "counts": {k: counts[k] for k in ("frames", "ipv4", "ipv6", "tcp", "udp", "icmp",
                                          "tunnelled", "vlan_tagged", "ip_fragments")},
        "captured_bytes": counts["captured_bytes"] or 0,
        "wire_bytes": counts["wire_bytes"] or 0,
        "first_ns": counts["first_ns"],
        "last_ns": counts["last_ns"],
        "connections": len(cap.conns),
        "warnings": list(cap.warnings),
    }


# --- the connection table as columnar JSON ---------------------------------------------

@dataclass
class Column:
    """A column of the page's connection table. `kind` says how the page formats it: id
    (a number as typed in Wireshark), int, ms, s (a time kept in ms, shown in s), bytes,
    text, word (few distinct values: sent as a dictionary), addr (a word shown with its
    `port` column as an endpoint). Hidden columns are only filter keys."""
    key: str        # the filter key
    label: str
    title: str
    kind: str
    expr: pl.Expr | None = None
    port: str | None = None
    hidden: bool = False


def _both(verdict: str) -> pl.Expr:
    return (C(f"c2s_{verdict}").cast(pl.Int64) + C(f"s2c_{verdict}").cast(pl.Int64))


TABLE = [
    Column("stream", "Stream", "tcp.stream (Wireshark filter: tcp.stream eq N)", "id",
           C("stream")),
    Column("client", "Client", "client address and port: sender of the first SYN", "addr",
           C("client"), port="cport"),
    Column("cport", "Client port", "client port", "id", C("client_port"), hidden=True),
    Column("server", "Server", "server address and port", "addr", C("server"), port="sport"),
    Column("sport", "Server port", "server port", "id", C("server_port"), hidden=True),
    Column("first", "Frame", "first frame of the connection (Wireshark: Go to packet)",
           "id", C("first_frame")),
    Column("last", "Last frame", "last frame of the connection", "id", C("last_frame"),
           hidden=True),
    Column("start", "Start (s)", "first packet, seconds after the capture's first packet", "s"),
    Column("dur", "Duration (ms)", "last minus first packet time", "ms", C("duration_ns")),
    Column("hs", "Handshake (ms)", "SYN to SYN-ACK: the server's first SYN-ACK minus the "
           "client's first SYN", "ms", C("syn_to_synack_ns")),
    Column("rtt", "RTT (ms)", "median of tcp.analysis.ack_rtt", "ms",
           C("ack_rtt_median_ns")),
    Column("pkts_c2s", "Pkts →", "packets client to server", "int", C("c2s_packets")),
    Column("pkts_s2c", "Pkts ←", "packets server to client", "int", C("s2c_packets")),
    Column("data_c2s", "Data →", "TCP payload bytes client to server", "bytes",
           C("c2s_payload")),
    Column("data_s2c", "Data ←", "TCP payload bytes server to client", "bytes",
           C("s2c_payload")),
    Column("retx_c2s", "Retx →", "client to server: frames with tcp.analysis.retransmission "
           "(fast and spurious ones included)", "int", C("c2s_retransmission")),
    Column("retx_s2c", "Retx ←", "server to client: frames with tcp.analysis.retransmission "
           "(fast and spurious ones included)", "int", C("s2c_retransmission")),
    Column("retx", "Retx", "frames with tcp.analysis.retransmission, both directions", "int",
           _both("retransmission"), hidden=True),
    Column("dupack", "Dup ACK", "frames with tcp.analysis.duplicate_ack, both directions",
           "int", _both("duplicate_ack")),
    Column("zerowin", "Zero win", "frames with tcp.analysis.zero_window, both directions",
           "int", _both("zero_window")),
    Column("lost", "Lost", "frames with tcp.analysis.lost_segment (previous segment not "
           "captured), both directions", "int", _both("lost_segment"), hidden=True),
    Column("ooo", "Out of order", "frames with tcp.analysis.out_of_order, both directions",
           "int", _both("out_of_order"), hidden=True),
    Column("state", "State", "Zeek conn_state", "word", C("conn_state")),
    Column("history", "History", "Zeek history (client upper case)", "text", C("history")),
    Column("ended", "Ended by", "who ended it: fin_both, fin_client, fin_server, rst_client, "
           "rst_server, open", "word", C("ended_by")),
    Column("open", "Open at end", "other connections of the same client open when this one "
           "ended", "int", C("client_open_at_end")),
]
# the table's filter key for a verdict's count (the verdict table links to it)
VERDICT_FILTERS = {"retransmission": "retx", "duplicate_ack": "dupack",
                   "zero_window": "zerowin", "lost_segment": "lost", "out_of_order": "ooo"}


def _table_exprs(first_ns) -> list[pl.Expr]:
    exprs = []
    for col in TABLE:
        if col.key == "start":
            expr = ((C("first_ts_ns") - (first_ns or 0)) / 1e6).round(3)
        else:
            assert col.expr is not None, col.key      # only "start" is computed here
            expr = (col.expr / 1e6).round(3) if col.kind == "ms" else col.expr
        exprs.append(expr.alias(col.key))
    return exprs


def _filter_keys_html() -> str:
    rows = [[f"<code>{c.key}</code>", esc(c.label), esc(c.title)] for c in TABLE]
    return (f'<details class="keys"><summary>Filter keys</summary>'
            f'{_html_table(["Key", "Column", "Meaning"], rows)}</details>')


def table_json(conns: pl.DataFrame, first_ns) -> str:
    """The connection table for the page's script: {"columns": [...], "rows": n, "data":
    {key: [values] or {"dict": [words], "codes": [...]}}}; times in ms."""
    frame = conns.select(_table_exprs(first_ns))
    data = []
    for col in TABLE:
        values = frame.get_column(col.key)
        if col.kind in ("word", "addr"):
            text = values.cast(pl.String)
            words = text.drop_nulls().unique().sort()
            codes = text.to_frame("w").join(words.to_frame("w").with_row_index("code"),
                                            on="w", how="left", maintain_order="left")
            data.append(pl.struct(pl.lit(words.implode()).alias("dict"),
                                  pl.lit(codes["code"].implode()).alias("codes"))
                        .alias(col.key))
        else:
            data.append(pl.lit(values.implode()).alias(col.key))
    # one row of lists written by Polars: JSON.dumps of 1.7 M Python values took ~0.15 s
    text = pl.select(data).write_ndjson().rstrip("\n")
    columns = [{"key": c.key, "label": c.label, "title": c.title, "kind": c.kind,
                "port": c.port, "hidden": c.hidden} for c in TABLE]
    head = _script_json({"columns": columns, "rows": len(frame)})
    return f'{head[:-1]},"data":{_script_safe(text)}}}'


def _script_json(value) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' that could end it."""
    return _script_safe(json.dumps(value, separators=(",", ":"), allow_nan=False))


def _script_safe(text: str) -> str:
    """JSON text with its '<', '>' and '&' (only ever inside strings) as \\u escapes."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- HTML pieces ------------------------------------------------------------------------

def _html_table(headers: list[str], rows: list[list[str]], numeric: Iterable[int] = ()) -> str:
    """A table whose cells are already HTML (callers escape); the `numeric` columns are
    aligned right."""
    numeric = set(numeric)

    def cell(tag, k, text):
        return f'<{tag} class="n">{text}</{tag}>' if k in numeric else f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", k, c) for k, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _stream_link(stream: int, details: set[int]) -> str:
    if stream in details:
        return f'<a href="#stream-{stream}">{stream}</a>'
    return str(stream)


def _files_html(summary: dict) -> str:
    rows = []
    for f in summary["files"]:
        comp = f" ({f['compression']})" if f.get("compression") else ""
        rows.append([esc(_file_name(f["path"])), esc(f"{f['format']}{comp}"),
                     _int(f["packets"]), _bytes(f["file_size"]), esc(_abs_time(f["first_ns"])),
                     esc(_abs_time(f["last_ns"])), _duration(f["duration_ns"])])
    return _html_table(["File", "Format", "Packets", "Size", "First packet", "Last packet",
                        "Duration"], rows, numeric=(2, 3, 6))


PROTOCOL_LABELS = {"ipv4": "IPv4", "ipv6": "IPv6", "tcp": "TCP", "udp": "UDP", "icmp": "ICMP",
                   "tunnelled": "tunnelled", "vlan_tagged": "VLAN-tagged",
                   "ip_fragments": "IP fragments"}


def _summary_html(summary: dict) -> str:
    c = summary["counts"]
    span = (summary["last_ns"] - summary["first_ns"]) if summary["first_ns"] is not None else None
    cards = [("Packets", _int(c["frames"])), ("TCP connections", _int(summary["connections"])),
             ("Time span", _duration(span)), ("Bytes on the wire", _bytes(summary["wire_bytes"]))]
    card_html = "".join(f'<div class="card"><div class="v">{v}</div><div class="k">{k}</div></div>'
                        for k, v in cards)
    protocols = ", ".join(f"{label} {_int(c[k])}" for k, label in PROTOCOL_LABELS.items()
                          if c[k] or k == "tcp")
    parts = [f'<div class="cards">{card_html}</div>', _files_html(summary),
             f'<p class="protocols"><b>Frames by protocol:</b> {esc(protocols)}</p>']
    if len(summary["files"]) > 1 and summary["first_ns"] is not None:
        parts.append(f"<p>From {esc(_abs_time(summary['first_ns']))} to "
                     f"{esc(_abs_time(summary['last_ns']))}.</p>")
    if summary.get("read_as"):
        parts.append(f"<p>{esc(summary['read_as'])}.</p>")
    for w in summary["warnings"]:
        parts.append(f'<p class="warning">Warning: {esc(w)}</p>')
    return "\n".join(parts)


def _verdicts_html(conns: pl.DataFrame) -> str:
    rows = []
    for verdict in FLAG_BITS:
        c2s = cast(int, conns[f"c2s_{verdict}"].sum())
        s2c = cast(int, conns[f"s2c_{verdict}"].sum())
        if not (c2s or s2c):
            continue
        n_conns = conns.filter((C(f"c2s_{verdict}") + C(f"s2c_{verdict}")) > 0).height
        word = VERDICT_FILTERS.get(verdict)
        shown = (f'<a href="#connections" data-filter="{word}>0">{_int(n_conns)}</a>'
                 if word else _int(n_conns))
        rows.append([f"<code>tcp.analysis.{verdict}</code>", _int(c2s), _int(s2c),
                     _int(c2s + s2c), shown])
    if not rows:
        return "<p>No TCP analysis verdicts: no retransmission, duplicate ACK, zero window, " \
               "or any other flag Wireshark sets.</p>"
    return _html_table(["Verdict (Wireshark field)", "Client → server", "Server → client",
                        "Frames", "Connections"], rows, numeric=(1, 2, 3, 4))


def _slowest_html(conns: pl.DataFrame, details: set[int]) -> str:
    hs = conns.select("stream", "client", "client_port", "server", "server_port",
                      "first_frame", "syn_to_synack_ns", "synack_to_ack_ns",
                      "established_frame").filter(C("syn_to_synack_ns").is_not_null()).sort(
        "syn_to_synack_ns", descending=True).head(TOP_LIMIT)
    if hs.is_empty():
        return "<p>No connection with both a SYN and a SYN-ACK.</p>"
    rows = [[_stream_link(r["stream"], details), esc(endpoint(r["client"], r["client_port"])),
             esc(endpoint(r["server"], r["server_port"])), _id(r["first_frame"]),
             _ms(r["syn_to_synack_ns"]), _ms(r["synack_to_ack_ns"]), _id(r["established_frame"])]
            for r in hs.iter_rows(named=True)]
    return _html_table(["Stream", "Client", "Server", "First frame", "SYN → SYN-ACK",
                        "SYN-ACK → ACK", "ACK frame"], rows, numeric=(0, 3, 4, 5, 6))


CLIENT_IDENTITY = {"ip": "the same client address",
                   "mac": "the same client Ethernet address (a host's IPv4 and IPv6 "
                          "addresses are one client)"}


def _resets_html(conns: pl.DataFrame, details: set[int], client_by) -> str:
    resets = conns.filter(C("ended_by") == "rst_client").sort("close_frame")
    if resets.is_empty():
        return "<p>No connection was ended by a RST from its client.</p>"
    rows = [[_stream_link(r["stream"], details), esc(endpoint(r["client"], r["client_port"])),
             esc(endpoint(r["server"], r["server_port"])), _id(r["close_frame"]),
             _int(r["client_open_to_other_servers_at_end"]),
             _int(r["client_open_to_same_server_at_end"]), _int(r["client_open_at_end"])]
            for r in resets.head(RESET_ROWS).iter_rows(named=True)]
    headers = ["Stream", "Client", "Server", "RST frame", "Open to other servers",
               "Open to the same server", "Open in all"]
    more = ""
    if len(resets) > RESET_ROWS:
        more = (f'<p>{_int(len(resets) - RESET_ROWS)} more: <a href="#connections" '
                f'data-filter="ended=rst_client">filter the connection table</a>.</p>')
    identity = CLIENT_IDENTITY.get(client_by, "the same client")
    return (_html_table(headers, rows, numeric=range(3, len(headers))) + more
            + f'<p class="note">Open: the other connections of {esc(identity)} whose '
              "handshake had completed and that had no FIN or RST yet at the RST frame.</p>")


# --- connections in detail -----------------------------------------------------------------

def _ladder_rows_shown(ladder: pl.DataFrame) -> list[int]:
    """Row indices shown: all of a short ladder; else the start, the end and the rows
    around verdicts, at most LADDER_MAX."""
    n = len(ladder)
    if n <= LADDER_FULL:
        return list(range(n))
    keep = set(range(LADDER_HEAD)) | set(range(n - LADDER_TAIL, n))
    flagged = ladder.with_row_index("i").filter(C("verdicts").fill_null("") != "")["i"]
    for i in flagged.to_list():
        keep.update(range(max(i - LADDER_CONTEXT, 0), min(i + LADDER_CONTEXT + 1, n)))
        if len(keep) >= LADDER_MAX:
            break
    return sorted(keep)


def _verdict_class(verdicts: str) -> str:
    if "retransmission" in verdicts or "lost_segment" in verdicts:
        return "v-bad"
    if "zero_window" in verdicts or "window_full" in verdicts:
        return "v-win"
    return "v-warn"


def _verdict_labels(verdicts: str, dup_ack_num) -> str:
    """The ladder's labels: "Retransmission, Dup ACK #2" for tshark's field names."""
    from tcpsift.workflow.ladder import VERDICTS

    labels = []
    for name in verdicts.split(";"):
        label = VERDICTS.get(name, name)
        labels.append(f"{label} #{dup_ack_num}" if name == "duplicate_ack" and dup_ack_num
                      else label)
    return ", ".join(labels)


def _ladder_html(ladder: pl.DataFrame) -> str:
    """The ladder (tcpsift.workflow.ladder's rows) as a table, long ones shortened."""
    shown = _ladder_rows_shown(ladder)
    rows = ladder.to_dicts()
    out, prev = [], -1
    for i in shown:
        if i != prev + 1:
            out.append(f'<tr class="gap"><td colspan="9">… {i - prev - 1:,} packets without '
                       "a verdict left out …</td></tr>")
        prev = i
        r = rows[i]
        c2s = r["direction"] == "c2s"
        verdicts = r["verdicts"] or ""
        cls = ("c2s" if c2s else "s2c") + (f" {_verdict_class(verdicts)}" if verdicts else "")
        arrow = "──▶" if c2s else "◀──"
        labels = _verdict_labels(verdicts, r["dup_ack_num"]) if verdicts else ""
        out.append(
            f'<tr class="{cls}"><td>{r["frame"]}</td><td>{r["time_rel_s"] * 1e3:,.3f}</td>'
            f'<td class="arrow">{arrow}</td><td>{esc(r["flags"] or "")}</td>'
            f'<td>{_int(r["seq"])}</td><td>{_int(r["ack"])}</td><td>{_int(r["len"])}</td>'
            f'<td>{_int(r["window"])}</td><td class="verdicts" title="{esc(verdicts)}">'
            f"{esc(labels)}</td></tr>")
    if prev < len(rows) - 1:
        out.append(f'<tr class="gap"><td colspan="9">… {len(rows) - prev - 1:,} more packets '
                   "…</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("Frame", "Time (ms)", "", "Flags", "Seq", "Ack",
                                             "Len", "Window", "Verdicts (tcp.analysis)"))
    return (f'<div class="ladder-wrap"><table class="ladder"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(out)}</tbody></table></div>')


def figure_html(fig, salt: str) -> str:
    """A matplotlib Figure as inline SVG (ids made unique by `salt`, text kept as text),
    or as a PNG data URI when that is less than half the size."""
    import matplotlib

    from tcpsift.workflow.plots import UNDATED

    with _laid_out_once(fig), matplotlib.rc_context({"svg.hashsalt": salt,
                                                     "svg.fonttype": "none"}):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata=UNDATED["svg"])
        svg = buf.getvalue()
        svg = svg[svg.index("<svg"):]
        if len(svg) > 300_000:
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=100)
            if png.tell() * 4 / 3 < len(svg) / 2:
                data = base64.b64encode(png.getvalue()).decode()
                return f'<img alt="plot" src="data:image/png;base64,{data}">'
    return svg


@contextlib.contextmanager
def _laid_out_once(fig):
    """The figure's layout (its layout engine, e.g. constrained) computed once, and the
    engine off while it is saved: with an engine, matplotlib's savefig draws the figure
    twice (once without output, to lay it out, then for the file), and again for a second
    format. The engine is given back after."""
    engine = fig.get_layout_engine()
    if engine is None or not fig.axes:     # (savefig lays out only a figure with axes)
        yield
        return
    engine.execute(fig)
    # (None is no engine, unless rcParams name a default one: then saved as matplotlib does)
    fig.set_layout_engine(None)
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


def _figures_html(cap, detail: Detail, ladder: pl.DataFrame) -> str:
    if len(ladder) < PLOT_MIN_PACKETS:
        return ""
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # optional: the report is whole without figures
        return '<p class="note">Plots need matplotlib: pip install \'tcpsift[plot]\'.</p>'
    from tcpsift.workflow.plots import connection, figure, series

    conn = connection(cap, detail.stream, rungs=ladder)
    out = []
    for kind in detail.kinds:
        fig = figure(conn, kind, series(conn, kind))
        out.append(f'<figure class="plot">{figure_html(fig, f"s{detail.stream}{kind}")}</figure>')
    return f'<div class="plots">{"".join(out)}</div>'


def _facts_html(r: dict) -> str:
    facts = [
        ("Frames", f"{_id(r['first_frame'])} – {_id(r['last_frame'])}"),
        ("Duration", _duration(r["duration_ns"])),
        ("Handshake", f"SYN → SYN-ACK {_ms(r['syn_to_synack_ns'])}, "
                      f"SYN-ACK → ACK {_ms(r['synack_to_ack_ns'])}"),
        ("Packets", f"{_int(r['c2s_packets'])} → / {_int(r['s2c_packets'])} ←"),
        ("Payload", f"{_bytes(r['c2s_payload'])} → / {_bytes(r['s2c_payload'])} ←"),
        ("Retransmissions", f"{_int(r['c2s_retransmission'])} → / "
                            f"{_int(r['s2c_retransmission'])} ←"),
        ("ACK RTT", f"min {_ms(r['ack_rtt_min_ns'])}, median {_ms(r['ack_rtt_median_ns'])}, "
                    f"max {_ms(r['ack_rtt_max_ns'])}"),
        ("MSS", f"client {_int(r['client_mss'])}, server {_int(r['server_mss'])}"),
        ("Window scale", f"client {_int(r['client_wscale'])}, server {_int(r['server_wscale'])}"),
        ("Smallest window", f"client {_int(r['client_min_window'])} B, "
                            f"server {_int(r['server_min_window'])} B"),
        ("State", f"{r['conn_state']}, history {r['history']}, ended by {r['ended_by']}"),
    ]
    return "<dl class=\"facts\">" + "".join(f"<dt>{k}</dt><dd>{esc(v)}</dd>" for k, v in facts) \
        + "</dl>"


def _article_html(r: dict, why: str, figures: str, ladder: pl.DataFrame) -> str:
    """One connection: its title, why it is shown, its facts, figures and ladder."""
    stream = r["stream"]
    title = (f"Stream {stream}: {endpoint(r['client'], r['client_port'])} → "
             f"{endpoint(r['server'], r['server_port'])}")
    return (f'<article class="conn" id="stream-{stream}"><h3>{esc(title)}</h3>'
            f'<p class="why">{esc(why)}Wireshark: <code>tcp.stream eq {stream}</code></p>'
            f"{_facts_html(r)}{figures}"
            f"<details{' open' if len(ladder) <= 60 else ''}><summary>Ladder: "
            f"{_int(len(ladder))} packets (──▶ client to server, ◀── server to client; seq and "
            f"ack relative, window scaled)</summary>{_ladder_html(ladder)}</details></article>")


def _detail_html(cap, conns: pl.DataFrame, detail: Detail) -> str:
    from tcpsift.workflow.ladder import ladder as ladder_of

    row = conns.filter(C("stream") == detail.stream)
    if row.is_empty():
        return (f'<article class="conn" id="stream-{detail.stream}"><h3>Stream '
                f'{detail.stream}</h3><p class="warning">No TCP stream {detail.stream} in this '
                "capture.</p></article>")
    ladder = ladder_of(cap, stream=detail.stream)
    return _article_html(row.row(0, named=True), "; ".join(detail.reasons) + ". ",
                         _figures_html(cap, detail, ladder), ladder)


class ConnectionView:
    """One TCP connection of a capture (`Capture.conn(stream)`): `row` (its connection-table
    row), `ladder` (tcpsift.workflow.ladder's rows), `plot(kind, ...)` (a matplotlib
    Figure, tcpsift.workflow.plots); Jupyter shows its facts and ladder."""

    def __init__(self, cap, stream: int):
        found = cap.conns.filter(C("stream") == stream)
        if found.is_empty():
            top = cap.conns["stream"].max()
            valid = f"streams are 0-{top}" if top is not None else "it has no TCP stream"
            raise KeyError(f"no TCP stream {stream} in the capture: {valid}")
        self._cap = cap
        self.stream = stream
        self.row = found.row(0, named=True)

    @property
    def ladder(self) -> pl.DataFrame:
        from tcpsift.workflow.ladder import ladder as ladder_of

        return ladder_of(self._cap, stream=self.stream)

    def plot(self, kind: str, **options):
        from tcpsift.workflow.plots import plot

        return plot(self._cap, self.stream, kind, **options)

    def __repr__(self):
        r = self.row
        return (f"<Connection stream {self.stream}: {endpoint(r['client'], r['client_port'])} "
                f"-> {endpoint(r['server'], r['server_port'])}, {r['conn_state']}>")

    def _repr_html_(self):
        return (f'<div class="tcpsift">{report_assets.NOTEBOOK_STYLE}'
                f"{_article_html(self.row, '', '', self.ladder)}</div>")


# --- the page -------------------------------------------------------------------------------

def _title(summary: dict) -> str:
    names = [_file_name(f["path"]) for f in summary["files"]]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def report_html(cap, streams: Iterable[int] = (),
                progress: Callable[[str, int, int], None] | None = None,
                client_by="ip", mode: str | None = None) -> str:
    """The whole report page of `cap` as HTML text. `streams` adds connections to the
    detailed ones; `progress(what, done, total)` is told as each detailed one is drawn;
    `client_by` is what one client is when counting its open connections ("ip", "mac":
    see tcpsift.tcp.connections); `mode`, how several files were read (tcpsift.read's),
    is said under the files."""
    from importlib.metadata import version

    if client_by == "ip":
        conns = cap.conns
    else:
        from tcpsift.tcp.connections import connections

        conns = connections(cap, client_by=client_by)
    summary = capture_summary(cap)
    if mode and len(summary["files"]) > 1:
        from tcpsift.capture.modes import describe

        summary["read_as"] = (f"{describe(len(summary['files']), mode)}; frame numbers are "
                              "those of the files joined the same way (mergecap, or "
                              "mergecap -a for concat)")
    details = connections_that_matter(conns, streams)
    detail_streams = {d.stream for d in details}
    detail_parts = []
    for i, d in enumerate(details):
        if progress:
            progress("drawing connections", i, len(details))
        detail_parts.append(_detail_html(cap, conns, d))
    if progress:
        progress("drawing connections", len(details), len(details))
    toc = "".join(f'<li><a href="#stream-{d.stream}">Stream {d.stream}</a>: '
                  f'{esc("; ".join(d.reasons))}</li>' for d in details) \
        or "<li>None: no TCP connection carried data, was reset or had a handshake.</li>"
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = _title(summary)
    body = f"""
<header><h1>TCP report: {esc(title)}</h1>
<p class="sub">Made by tcpsift {esc(version("tcpsift"))} on {generated}. Frame numbers are
Wireshark's (Go to packet, Ctrl-G); a stream opens with the display filter
<code>tcp.stream eq N</code>. Times in ms unless marked.</p>
<nav><a href="#summary">Capture</a> <a href="#verdicts">Verdicts</a>
<a href="#handshakes">Slowest handshakes</a> <a href="#resets">Client resets</a>
<a href="#connections">Connections</a> <a href="#details">Connections in detail</a></nav>
</header>
<main>
<section id="summary"><h2>Capture</h2>{_summary_html(summary)}</section>
<section id="verdicts"><h2>TCP analysis verdicts</h2>{_verdicts_html(conns)}</section>
<section id="handshakes"><h2>Slowest handshakes</h2>{_slowest_html(conns, detail_streams)}</section>
<section id="resets"><h2>Client resets</h2>{_resets_html(conns, detail_streams, client_by)}</section>
<section id="connections"><h2>Connections</h2>
<div class="controls"><input id="filter" type="search" size="40"
 placeholder="filter: 192.0.2.11  443  state=RSTO  hs>300  retx>0"
 aria-label="filter the connections">
<span id="count" data-rows="0" data-total="0"></span>
<span class="pager"><button id="prev" type="button">◀</button> <span id="page"></span>
<button id="next" type="button">▶</button>
<select id="pagesize" aria-label="rows per page"><option>25</option><option selected>50</option>
<option>100</option><option>500</option></select></span></div>
<p class="note">Words match addresses, ports, state, history and who ended it;
<code>key=value</code>, <code>key!=value</code>, <code>key&gt;n</code>, <code>key&lt;n</code>
test a column (times in ms, start in s); click a heading to sort. A link can open the table
filtered: <code>report.html#filter=retx%3E0&amp;sort=-dur</code>.</p>
{_filter_keys_html()}
<noscript><p class="warning">The connection table is drawn by the page's script: allow
scripts for this file to see it (everything else on the page is static).</p></noscript>
<div class="table-wrap"><table id="conns"><thead></thead><tbody></tbody></table></div>
</section>
<section id="details"><h2>Connections in detail</h2><ul>{toc}</ul>{"".join(detail_parts)}</section>
</main>
<script type="application/json" id="conn-data">{table_json(conns, summary["first_ns"])}</script>
"""
    return report_assets.page(f"TCP report: {title}", body)


def write_report(cap, path, streams: Iterable[int] = (), progress=None, client_by="ip",
                 mode: str | None = None) -> None:
    """Write the report page of `cap` to `path`, whole or not at all (a temporary file in the
    same folder, renamed over `path`)."""
    text = report_html(cap, streams, progress, client_by, mode)
    write_atomically(path, text)


def write_atomically(path, text: str) -> None:
    """`text` into `path`, whole or not at all (tcpsift.outputs)."""
    with replaced(path, binary=False, encoding="utf-8") as out:
        out.write(text)


# --- the notebook ----------------------------------------------------------------------------

def summary_html(cap, top: int = TOP_LIMIT) -> str:
    """What a Capture shows in Jupyter: the summary and the connections that carried the
    most data (a fragment, styled inline: notebooks strip <style> from some outputs)."""
    summary = capture_summary(cap)
    conns = cap.conns
    biggest = (conns.with_columns((C("c2s_payload") + C("s2c_payload")).alias("_data"))
               .sort("_data", descending=True).head(top))
    rows = [[str(r["stream"]), esc(endpoint(r["client"], r["client_port"])),
             esc(endpoint(r["server"], r["server_port"])), _id(r["first_frame"]),
             _duration(r["duration_ns"]), _ms(r["syn_to_synack_ns"]),
             _bytes(r["c2s_payload"]), _bytes(r["s2c_payload"]),
             _int((r["c2s_retransmission"] or 0) + (r["s2c_retransmission"] or 0)),
             esc(r["conn_state"]), esc(r["ended_by"])]
            for r in biggest.iter_rows(named=True)]
    table = _html_table(["Stream", "Client", "Server", "First frame", "Duration", "SYN→SYN-ACK",
                         "Data →", "Data ←", "Retx", "State", "Ended by"], rows,
                        numeric=range(3, 9))
    return (f'<div class="tcpsift">{report_assets.NOTEBOOK_STYLE}'
            f"<b>Capture</b> {esc(_title(summary))}"
            f"{_summary_html(summary)}"
            f"<p><b>Top {len(rows)} connections by data</b> of {_int(len(conns))}</p>{table}"
            f"</div>")
