"""`tcpsift compare A B -o report.html`: the comparison as one self-contained page.

The verdict and its evidence, the per-direction (or per-segment) table, and for each pair
of points two plots over time: the one-way delay between the points (per time bin, the
least, median and greatest delay of the packets matched exactly, per direction) and the
packets lost between them (per time bin and direction, with the retransmissions whose
original was lost there); then the connections with the most losses, the
retransmissions by where their original went missing and the window shrinks seen at one
point only. Inline CSS and SVG (matplotlib's object API, never pyplot): nothing is
fetched, the page opens offline. The style and the figure embedding are the capture
report's (tcpsift.workflow.report, report_assets).
"""
from __future__ import annotations

import polars as pl

from tcpsift.compare import stats
from tcpsift.compare.verdict import NAMES
from tcpsift.workflow import report_assets
from tcpsift.workflow.report import esc, figure_html

C = pl.col
TIME_BINS = 200
COLORS = {"c2s": "#1f5fbf", "s2c": "#b35c00"}
CONNECTION_ROWS = 50
SHRINK_ROWS = 200
STYLE = """
ul.evidence li { margin:2px 0; }
.verdict { font-size:18px; font-weight:600; margin:10px 0 4px; }
"""


def report_html(result) -> str:
    """The page of a Comparison or a PathComparison (tcpsift.compare.path)."""
    segments = getattr(result, "segments", None) or [result]
    if hasattr(result, "points"):
        points = list(zip(result.points, result.labels))
    else:
        points = [("a", result.a), ("b", result.b)]
    body = [f"<header><h1>tcpsift compare: {esc(' · '.join(label for _, label in points))}"
            "</h1><p class=\"sub\">" + " · ".join(f"{esc(n)}: {esc(label)}" for n, label in points)
            + "</p></header><main>",
            f"<p class=\"verdict\">verdict: {esc(result.verdict)}</p>",
            "<ul class=\"evidence\">" + "".join(f"<li>{esc(e)}</li>" for e in result.evidence)
            + "</ul>"]
    if result.warnings:
        body.append("".join(f"<p class=\"warning\">warning: {esc(w)}</p>"
                            for w in result.warnings))
    for seg in segments:
        names = seg.point_names or {"a": "a", "b": "b"}
        title = f"{names['a']} and {names['b']}"
        body.append(f"<h2>Between {esc(title)}</h2>")
        body.append(_direction_table(seg, names))
        body.append(_plots(seg, names))
        body.append(_connections_table(seg))
        body.append(_shrinks_table(seg, names))
    body.append("</main>")
    title = "tcpsift compare: " + " · ".join(label for _, label in points)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{report_assets.CSS}{STYLE}</style>"
            f"<script>{report_assets.ERROR_HOOK}</script></head>\n<body class=\"tcpsift\">"
            + "".join(body) + "</body></html>\n")


def _cell(value, numeric: bool = False) -> str:
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:,.3f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"<td class=\"n\">{esc(text)}</td>" if numeric else f"<td>{esc(text)}</td>"


def _table(headers: list[str], rows: list[list], numeric_from: int) -> str:
    head = "".join(f"<th class=\"n\">{esc(h)}</th>" if i >= numeric_from else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(_cell(v, i >= numeric_from) for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


DIRECTION_COLUMNS = (
    ("sent", "sent upstream"), ("matched", "matched"), ("lost_between_points", "lost"),
    ("loss_bursts", "loss bursts"), ("duplicated_between_points", "duplicated"),
    ("reordered_between_points", "reordered"), ("matched_by_byte_range", "by byte range"),
    ("delay_min_ms", "delay min ms"), ("delay_median_ms", "median ms"),
    ("delay_p99_ms", "p99 ms"), ("delay_max_ms", "max ms"),
    ("retransmissions", "retransmissions"),
    ("retrans_lost_between_points", "original lost between"),
    ("retrans_lost_before_upstream", "original lost before upstream"),
    ("retrans_spurious", "spurious"),
    ("window_shrinks_only_upstream", "window shrinks only upstream"),
    ("window_shrinks_only_downstream", "only downstream"))


def _direction_table(seg, names: dict) -> str:
    rows = [[NAMES[r["direction"]], names[r["upstream"]],
             *(r.get(c) for c, _ in DIRECTION_COLUMNS)]
            for r in seg.per_direction.iter_rows(named=True)]
    return _table(["direction", "upstream", *(h for _, h in DIRECTION_COLUMNS)], rows, 2)


def _plots(seg, names: dict) -> str:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # optional: the page is whole without its plots
        return '<p class="note">Plots need matplotlib: pip install \'tcpsift[plot]\'.</p>'
    fate = seg.packets
    if fate.is_empty():
        return ""
    start = fate["t_up"].min()
    span = max(fate["t_up"].max() - start, 1)
    binned = fate.with_columns(
        s=(C("t_up") - start) / 1e9,
        bin=((C("t_up") - start) * TIME_BINS // (span + 1)).cast(pl.Int64))
    width_s = span / 1e9 / TIME_BINS
    exact = binned.filter((C("copies") > 0) & ~C("approximate"))
    delays = (exact.group_by("direction", "bin").agg(
        low=C("delay_ns").min() / 1e6, median=C("delay_ns").median() / 1e6,
        high=C("delay_ns").max() / 1e6).sort("bin"))
    losses = binned.filter(C("lost")).group_by("direction", "bin").agg(lost=pl.len())
    resent = seg.retransmissions
    resent = (resent.filter(C("cause") == "lost_between_points")
              .with_columns(bin=((C("t") - start) * TIME_BINS // (span + 1)).cast(pl.Int64))
              .group_by("direction", "bin").agg(resent=pl.len())
              if len(resent) else pl.DataFrame(schema={"direction": pl.String, "bin": pl.Int64,
                                                       "resent": pl.UInt32}))
    out = []
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for d in stats.DIRECTIONS:
        part = delays.filter(C("direction") == d)
        if part.is_empty():
            continue
        up = names[seg.upstream[d]]
        down = names["b" if seg.upstream[d] == "a" else "a"]
        x = (part["bin"].to_numpy() + 0.5) * width_s
        ax.fill_between(x, part["low"].to_numpy(), part["high"].to_numpy(), color=COLORS[d],
                        alpha=0.18, linewidth=0, step="mid")
        ax.plot(x, part["median"].to_numpy(), color=COLORS[d], linewidth=1.2,
                drawstyle="steps-mid", label=f"{NAMES[d]} ({up}→{down}): median, band min–max")
    ax.set_xlabel(f"time since the first packet (s), bins of {width_s * 1e3:,.1f} ms")
    ax.set_ylabel("one-way delay (ms)")
    ax.set_title(f"One-way delay between {names['a']} and {names['b']} (after the clock "
                 "correction; exact matches only)", fontsize=11)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    out.append(figure_html(fig, f"delay{names['a']}{names['b']}"))

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for k, d in enumerate(stats.DIRECTIONS):
        part = losses.filter(C("direction") == d).sort("bin")
        if len(part):
            x = (part["bin"].to_numpy() + 0.25 + 0.5 * k) * width_s
            ax.bar(x, part["lost"].to_numpy(), width=width_s * 0.5, color=COLORS[d],
                   label=f"{NAMES[d]}: lost between the points")
        again = resent.filter(C("direction") == d).sort("bin")
        if len(again):
            ax.plot((again["bin"].to_numpy() + 0.5) * width_s, again["resent"].to_numpy(),
                    linestyle="none", marker="x", color=COLORS[d],
                    label=f"{NAMES[d]}: retransmissions after such a loss")
    total = int(binned["lost"].sum())
    ax.set_title(f"Packets lost between {names['a']} and {names['b']} over time "
                 f"({total:,} in all)", fontsize=11)
    ax.set_xlim(0, span / 1e9)
    ax.set_xlabel("time since the first packet (s)")
    ax.set_ylabel("packets per bin")
    ax.grid(True, color="#dddddd", linewidth=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    out.append(figure_html(fig, f"loss{names['a']}{names['b']}"))
    return "<div class=\"plots\">" + "".join(f'<figure class="plot">{f}</figure>'
                                             for f in out) + "</div>"


def _connections_table(seg) -> str:
    conns = seg.connections
    if conns.is_empty():
        return ""
    worst = conns.with_columns(
        _lost=C("c2s_lost_between_points").fill_null(0) + C("s2c_lost_between_points")
        .fill_null(0)).sort("_lost", "conn", descending=[True, False]).head(CONNECTION_ROWS)
    rows = [[r["uid_a"], f"{r['client']} {r['client_port']}", f"{r['server']} {r['server_port']}",
             *(r[f"{d}_{c}"] for d in stats.DIRECTIONS for c in (
                 "matched", "lost_between_points", "retransmissions", "delay_median_ms"))]
            for r in worst.iter_rows(named=True)]
    headers = ["uid", "client", "server",
               *(f"{d} {h}" for d in stats.DIRECTIONS
                 for h in ("matched", "lost", "retransmissions", "median ms"))]
    caption = (f"{len(worst):,} of {len(conns):,} connections, most losses first"
               if len(worst) < len(conns) else f"{len(conns):,} connections seen at both points")
    return f"<h3>Connections</h3><p class=\"note\">{esc(caption)}</p>" + _table(headers, rows, 3)


def _shrinks_table(seg, names: dict) -> str:
    shrinks = seg.window_shrinks
    if shrinks is None or shrinks.is_empty():
        return ""
    rows = [[NAMES[r["direction"]], names[r["point"]], r["frame"], r["previous_window"],
             r["window"], r["other_frame"]] for r in shrinks.head(SHRINK_ROWS).iter_rows(named=True)]
    return ("<h3>Window shrinks seen at one point only</h3>"
            + _table(["direction", "seen at", "frame", "window before", "window",
                      "frame at the other point"], rows, 2))
