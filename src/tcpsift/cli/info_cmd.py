"""`tcpsift info`: what capinfos says, plus protocol counts and decode status."""
from __future__ import annotations

import json
import sys

import click

from tcpsift.cli.common import fail, finish
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE


def _time(ns):
    if ns is None:
        return "n/a"
    import datetime as dt

    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc)
    return f"{t:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000:09d} UTC"


def render(summary: dict) -> str:
    lines = []
    for f in summary["files"]:
        n = f["packets"]
        dur = f["duration_ns"]
        comp = f" ({f['compression']}-compressed)" if f["compression"] else ""
        lines += [
            f"File name:           {f['path']}",
            f"File type:           {f['format']}{comp}, {f['byte_order']}"
            + (f", version {f['version']}" if f.get("version") else "")
            + (f", {f['sections']} section(s)" if f.get("sections") else ""),
            "Link types:          " + ", ".join(
                f"{lt['name']} ({lt['linktype']}{'' if lt['decoded'] else ', not decoded'})"
                for lt in f["linktypes"]),
            f"Interfaces:          {len(f['interfaces'])}",
            f"Number of packets:   {n}",
            f"File size:           {f['file_size']} bytes",
            f"Data size:           {f['bytes']} bytes captured, {f['wire_bytes']} bytes on the wire",
            f"First packet time:   {_time(f['first_ns'])}",
            f"Last packet time:    {_time(f['last_ns'])}",
            "Capture duration:    " + (f"{dur / 1e9:.9f} seconds" if dur is not None else "n/a"),
        ]
        if dur:
            lines.append(f"Average packet rate: {n / (dur / 1e9):.2f} packets/s")
        if n:
            lines.append(f"Average packet size: {f['bytes'] / n:.2f} bytes")
        for w in f["warnings"]:
            lines.append(f"Warning:             {w}")
        lines.append("")
    c = summary["counts"]
    lines.append("Protocols:           " + ", ".join(f"{k} {v}" for k, v in c.items()))
    lines.append("Decode status:       " + ", ".join(f"{k} {v}" for k, v in summary["status"].items()))
    return "\n".join(lines) + "\n"


@click.command("info")
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (with "
              "--mode separate, a list of summaries).")
@mode_option()
def info(files, as_json, mode):
    """Summarise capture FILES (read together as one capture unless --mode separate),
    like capinfos; - is standard input."""
    # NumPy only: a summary needs the decoded arrays, not the Polars tables
    import tcpsift
    from tcpsift.capture.files import each_file
    from tcpsift.capture.summary import summarize

    announce(files, mode)
    # the counts do not depend on the order of the frames: merge and concat are alike
    try:
        if mode == "separate":
            summaries, warnings, complete = each_file(list(files), lambda p: summarize([p]))
        else:
            summaries, warnings, complete = [summarize(list(files))], [], True
    except tcpsift.CaptureError as e:
        fail(str(e))
    if as_json:
        out = json.dumps(summaries if mode == "separate" else summaries[0], indent=2,
                         default=str) + "\n"
    else:
        out = "\n".join(render(s) for s in summaries)
    sys.stdout.write(out)
    finish(warnings + [w for s in summaries for w in s["warnings"]],
           complete and all(s["complete"] for s in summaries))
