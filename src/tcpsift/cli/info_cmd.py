"""`tcpsift info`: what capinfos says, plus protocol counts and decode status."""
from __future__ import annotations

import json
import sys

import click

from tcpsift.cli.common import exit_for, open_capture


def _time(ns):
    if ns is None:
        return "n/a"
    import datetime as dt

    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc)
    return f"{t:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000:09d} UTC"


def summarise(cap) -> dict:
    """Per-file facts and per-capture counts, as plain data (the --json output)."""
    import polars as pl

    p = cap.packets
    counts = p.select(
        pl.len().alias("frames"),
        (pl.col("ip_version") == 4).sum().alias("ipv4"),
        (pl.col("ip_version") == 6).sum().alias("ipv6"),
        (pl.col("ip_proto") == 6).sum().alias("tcp"),
        pl.col("udp_len").is_not_null().sum().alias("udp"),
        pl.col("icmp_type").is_not_null().sum().alias("icmp"),
        (pl.col("encap") != "").sum().alias("tunnelled"),
        pl.col("vlan_id").is_not_null().sum().alias("vlan_tagged"),
        pl.col("more_fragments").or_(pl.col("frag_offset") > 0).sum().alias("ip_fragments"),
    ).row(0, named=True)
    status = dict(p.group_by("status").len().sort("status").iter_rows())
    files = []
    for f in cap.info.files:
        f = {k: v for k, v in f.items() if k != "interfaces"} | {
            "interfaces": [{k: v for k, v in i.items()} for i in f["interfaces"]]}
        files.append(f)
    return {"files": files, "counts": counts, "status": {str(k): v for k, v in status.items()},
            "warnings": cap.warnings, "complete": cap.complete}


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
            f"Capture duration:    " + (f"{dur / 1e9:.9f} seconds" if dur is not None else "n/a"),
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
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(files, as_json):
    """Summarise capture FILES (read together as one capture), like capinfos."""
    cap = open_capture(files)
    summary = summarise(cap)
    out = json.dumps(summary, indent=2, default=str) + "\n" if as_json else render(summary)
    sys.stdout.write(out)
    exit_for(cap)
