"""`tcpsift compare A B`: the same traffic captured at two points (docs/compare.md)."""
from __future__ import annotations

import json
import sys

import click

from tcpsift.cli.common import EXIT_PARTIAL, cache_options, check_output, fail, output_file
from tcpsift.cli.paths import CAPTURE_FILE
from tcpsift.cli.textview import width_option

CONNECTION_ROWS = 20


@click.command("compare")
@click.argument("captures", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text: the verdict, its evidence and tables for reading; json: every figure "
                   "(clock_offset_s, per_direction, connections, verdict, evidence).")
@click.option("--nat", "nat", multiple=True, metavar="A=B",
              help="Address translation between the points: what a sees as A, b sees as B "
                   "(on a path: the points after the translation); an address (every port) or "
                   "address:port on both sides, [v6]:port for IPv6; repeat for more.")
@click.option("-o", "--output", help="Write to this file; it appears only when complete. A "
                                     "name ending in .html: a report page with plots of the "
                                     "one-way delay and the losses over time.")
@width_option
@cache_options
def compare(captures, fmt, nat, output, width):
    """Compare captures A B [C ...] of the same traffic taken at two points, or at more in
    path order: which packets were lost, duplicated, reordered or delayed between the
    points (per segment of the path), the clock offset between the capture hosts, and
    whether the network or an endpoint is to blame."""
    if len(captures) < 2:
        fail("compare: give two captures (or more, in path order)")
    check_output(output, captures)

    import tcpsift
    from tcpsift.cli.progress import progress
    from tcpsift.compare import CompareError
    from tcpsift.compare import compare as run

    with progress() as shown:
        shown.step(f"reading and matching {len(captures)} captures")
        try:
            result = run(*captures, nat=nat)
        except (tcpsift.CaptureError, CompareError) as e:
            fail(str(e))
    if result.matched == 0 and not result.time_overlap:
        fail(f"{' and '.join(captures)} do not overlap in time and share no packet: not "
             "points of the same traffic")
    for w in result.warnings:
        click.echo(f"tcpsift: warning: {w}", err=True)
    html = output is not None and output.lower().endswith((".html", ".htm"))
    with output_file(output, captures) as out:
        if html:
            from tcpsift.compare.report import report_html

            out.write(report_html(result))
        elif fmt == "json":
            out.write(json.dumps(result.to_dict(), indent=1) + "\n")
        elif len(captures) > 2:
            _path_view(result, out, width)
        else:
            _text_view(result, out, width)
    if not result.complete:
        sys.exit(EXIT_PARTIAL)


def _path_view(result, out, width) -> None:
    import polars as pl

    from tcpsift.cli import textview as tv

    C = pl.col
    width = tv.terminal_width(out, width)
    for name, label in zip(result.points, result.labels):
        out.write(f"{name}: {label}\n")
    out.write(f"\nverdict: {result.verdict}\n")
    for sentence in result.evidence:
        out.write(f"  - {sentence}\n")
    out.write("\n")
    V = tv.ViewColumn
    view = [(V("segment", "segment", False, 100), C("segment")),
            (V("direction", "direction", False, 100), C("direction")),
            (V("upstream", "upstream", False, 90), C("upstream")),
            *[(V(n, heading, True, 80 - i), C(n).cast(pl.String)) for i, (n, heading) in
              enumerate((("sent", "sent\nupstream"), ("matched", "matched"),
                         ("lost_between_points", "lost"), ("duplicated_between_points", "dup"),
                         ("reordered_between_points", "reord"),
                         ("retrans_lost_between_points", "retrans\nafter loss")))],
            *[(V(s, f"{s}\nms", True, 50 - i), C(f"delay_{s}_ms").round(3).cast(pl.String))
              for i, s in enumerate(("min", "median", "p99", "max"))]]
    tv.show(result.per_segment.select(e.alias(c.name) for c, e in view),
            [c for c, _ in view], out, width, "per segment of the path: one-way delay between "
            "its two points, after their clock correction")


def _text_view(result, out, width) -> None:
    import polars as pl

    from tcpsift.addresses import endpoint_expr
    from tcpsift.cli import textview as tv

    C = pl.col
    width = tv.terminal_width(out, width)
    out.write(f"a: {result.a}\nb: {result.b}\n\nverdict: {result.verdict}\n")
    for sentence in result.evidence:
        out.write(f"  - {sentence}\n")
    out.write("\n")
    V = tv.ViewColumn

    def delay(prefix: str = "") -> list:
        return [(V(f"{prefix}{s}", f"{s}\nms", True, 50 - i),
                 C(f"{prefix}delay_{s}_ms").round(3).cast(pl.String))
                for i, s in enumerate(("min", "median", "p99", "max"))]

    def counts(prefix: str = "") -> list:
        return [(V(f"{prefix}{n}", heading, True, 80 - i), C(f"{prefix}{n}").cast(pl.String))
                for i, (n, heading) in enumerate((
                    ("sent", "sent\nupstream"), ("matched", "matched"),
                    ("lost_between_points", "lost"), ("duplicated_between_points", "dup"),
                    ("reordered_between_points", "reord")))]

    view = [(V("direction", "direction", False, 100), C("direction")),
            (V("upstream", "upstream", False, 90), C("upstream")), *counts(), *delay()]
    tv.show(result.per_direction.select(e.alias(c.name) for c, e in view),
            [c for c, _ in view], out, width, "one-way delay between the points, after the "
            "clock correction")
    out.write("\n")
    view = [(V("direction", "direction", False, 100), C("direction")),
            (V("upstream", "upstream", False, 90), C("upstream")),
            *[(V(n, heading, True, 80 - i), C(n).cast(pl.String)) for i, (n, heading) in
              enumerate((("retransmissions", "retrans\nall"),
                         ("retrans_lost_between_points", "original lost\nbetween"),
                         ("retrans_lost_before_upstream", "original lost\nbefore upstream"),
                         ("retrans_spurious", "spurious"),
                         ("window_shrinks_only_upstream", "window shrinks\nonly upstream"),
                         ("window_shrinks_only_downstream", "window shrinks\nonly downstream")))]]
    tv.show(result.per_direction.select(e.alias(c.name) for c, e in view),
            [c for c, _ in view], out, width, "retransmissions seen upstream, by where their "
            "original went missing; window shrinks seen at one point only")
    conns = result.connections
    if len(conns):
        out.write("\n")
        worst = conns.with_columns(
            _lost=C("c2s_lost_between_points").fill_null(0) + C("s2c_lost_between_points")
            .fill_null(0)).sort("_lost", "conn", descending=[True, False]).head(CONNECTION_ROWS)
        endpoint = pl.concat_str(endpoint_expr("client", "client_port"), pl.lit(" → "),
                                 endpoint_expr("server", "server_port"))
        pair = [(V(f"{n}", f"{heading}\nc→s/s→c", True, 70 - i),
                 pl.concat_str(C(f"c2s_{n}").fill_null(0).cast(pl.String), pl.lit("/"),
                               C(f"s2c_{n}").fill_null(0).cast(pl.String)))
                for i, (n, heading) in enumerate((
                    ("matched", "matched"), ("lost_between_points", "lost"),
                    ("duplicated_between_points", "dup"), ("reordered_between_points", "reord")))]
        medians = [(V(f"{d}_median", f"{d}\nmedian ms", True, 40),
                    C(f"{d}_delay_median_ms").round(3).cast(pl.String)) for d in ("c2s", "s2c")]
        view = [(V("uid_a", "uid at a", False, 30), C("uid_a")),
                (V("endpoints", "client → server", False, 100), endpoint), *pair, *medians]
        caption = (f"{len(worst):,} of {len(conns):,} connections seen at both points, most "
                   "losses first" if len(worst) < len(conns)
                   else f"{len(conns):,} connections seen at both points")
        tv.show(worst.select(e.alias(c.name) for c, e in view), [c for c, _ in view], out,
                width, caption)
    for name, alone in (("a", result.only_at_a), ("b", result.only_at_b)):
        if len(alone):
            out.write(f"\nseen only at {name} (not counted as loss): {len(alone):,} connections"
                      f", {int(alone['packets'].sum()):,} packets\n")
