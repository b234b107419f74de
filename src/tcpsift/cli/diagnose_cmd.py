"""`tcpsift diagnose FILE...`: what limited each TCP connection (docs/diagnose.md)."""
from __future__ import annotations

import json

import click

from tcpsift.cli.common import cache_options, check_output, fail, finish, output_file
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE
from tcpsift.cli.textview import width_option

# connections whose evidence the text view spells out (the longest; --stream: all asked)
EVIDENCE_ROWS = 20


@click.command("diagnose")
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("--stream", "streams", multiple=True, type=click.IntRange(min=0), metavar="N",
              help="Only this TCP connection (tcp.stream); repeat for more.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text",
              show_default=True,
              help="text: a table and the evidence for reading; json: every figure per "
                   "connection (time_ms, shares, counts, evidence, episodes with frames); "
                   "csv: the diagnosis table, every column (docs/schema.md).")
@click.option("-o", "--output", help="Write to this file; it appears only when complete.")
@width_option
@mode_option(("merge", "concat"))
@cache_options
def diagnose(files, streams, fmt, output, width, mode):
    """What limited each TCP connection of FILES, and for how long: the receiver's window
    (zero or full), loss and recovery, the server's or client's think time, the sender
    (nothing outstanding), the handshake or the round trip; as time shares and counts,
    with the frames that show them. - is standard input."""
    check_output(output, files)

    import tcpsift
    from tcpsift.cli.progress import progress
    from tcpsift.diagnose import DiagnoseError
    from tcpsift.diagnose import diagnose as run

    announce(files, mode)
    with progress() as shown:
        shown.step("reading the capture and diagnosing its connections")
        try:
            result = run(list(files), streams=list(streams) or None, mode=mode)
        except (tcpsift.CaptureError, DiagnoseError) as e:
            fail(str(e))
    with output_file(output, files) as out:
        if fmt == "json":
            out.write(json.dumps(result.to_dict(), indent=1) + "\n")
        elif fmt == "csv":
            import polars as pl

            result.connections.with_columns(
                pl.col("evidence_frames").cast(pl.List(pl.String)).list.join(" ")).write_csv(out)
        else:
            _text_view(result, out, width, bool(streams))
    finish(result.warnings, result.complete)


def _text_view(result, out, width, chosen: bool) -> None:
    import polars as pl

    from tcpsift.addresses import endpoint_expr
    from tcpsift.cli import textview as tv

    C = pl.col
    conns = result.connections
    width = tv.terminal_width(out, width)
    V = tv.ViewColumn

    def pct(name):
        return (C(f"{name}_share") * 100).round(1).cast(pl.String)

    view = [
        (V("stream", "stream", True, 100), C("stream").cast(pl.String)),
        (V("endpoints", "client → server", False, 99),
         pl.concat_str(endpoint_expr("client", "client_port"), pl.lit(" → "),
                       endpoint_expr("server", "server_port"))),
        (V("duration", "duration\nms", True, 97), tv.ms_text(C("duration_ns"))),
        (V("limit", "limited by", False, 98),
         pl.concat_str(C("limit"), pl.when(C("limit_side") != "")
                       .then(pl.lit(" (") + C("limit_side") + pl.lit(")")).otherwise(pl.lit("")))),
        (V("zero", "zero\nwin %", True, 90), pct("zero_window")),
        (V("full", "full\nwin %", True, 80), pct("window_full")),
        (V("loss", "loss\n%", True, 89), pct("loss")),
        (V("think", "server\nthink %", True, 88), pct("server_think")),
        (V("cthink", "client\nthink %", True, 70), pct("client_think")),
        (V("sender", "sender\n%", True, 85), pct("sender")),
        (V("rtt", "rtt\n%", True, 84), pct("rtt")),
        (V("handshake", "hand-\nshake %", True, 75), pct("handshake")),
        (V("lost", "lost\nc→s/s→c", True, 86),
         pl.concat_str(C("c2s_lost").cast(pl.String), pl.lit("/"), C("s2c_lost").cast(pl.String))),
    ]
    shown = conns.head(tv.TEXT_ROWS)
    caption = f"{len(conns):,} connections; % of each connection's time" if len(shown) == len(conns) \
        else f"first {len(shown):,} of {len(conns):,} connections (--format json for all)"
    tv.show(shown.select(e.alias(c.name) for c, e in view), [c for c, _ in view], out, width,
            caption)
    explained = conns if chosen else conns.sort("duration_ns", descending=True,
                                                maintain_order=True).head(EVIDENCE_ROWS)
    if not chosen and len(explained) < len(conns):
        out.write(f"\nthe {len(explained)} longest connections (--stream N for others):\n")
    for row in explained.iter_rows(named=True):
        out.write(f"\nstream {row['stream']}: {_endpoint(row, 'client')} → "
                  f"{_endpoint(row, 'server')}\n")
        for sentence in result.evidence(row["stream"]):
            out.write(f"  - {sentence}\n")


def _endpoint(row: dict, side: str) -> str:
    address, port = row[side], row[f"{side}_port"]
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
