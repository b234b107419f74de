"""`tcpsift export`: some frames of a capture back to a pcap or pcapng file."""
from __future__ import annotations

import os
import re

import click

from tcpsift.cli.common import cache_options, check_output, fail, finish, output_file, sql_where
from tcpsift.cli.modes import announce, mode_option
from tcpsift.cli.paths import CAPTURE_FILE


def _numbers(values, option: str) -> set[int]:
    """`--stream 3 --stream 5,8`: the numbers given."""
    try:
        return {int(n) for value in values for n in value.split(",") if n.strip()}
    except ValueError:
        fail(f"{option}: not a list of numbers: {' '.join(values)}")


def _frame_ranges(text: str):
    """`--frames 10-20,35,40-`: a range of frame numbers, or several (FrameRanges: an
    open end is not made a set of four billion numbers)."""
    ranges = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:(-)\s*(\d*))?\s*", part)
        if m is None:
            fail(f"--frames: {part.strip()!r} is not N, A-B or A- (frame numbers from 1)")
        first = int(m[1])
        last = first if m[2] is None else int(m[3]) if m[3] else 1 << 32
        if last < first:
            fail(f"--frames: {part.strip()!r} ends before it starts")
        ranges.append(range(first, last + 1))
    if len(ranges) == 1:
        return ranges[0]
    from tcpsift.workflow.export import FrameRanges
    return FrameRanges(ranges)


@click.command("export")
@click.argument("files", nargs=-1, required=True, type=CAPTURE_FILE)
@click.option("-o", "--output", required=True, metavar="OUT",
              help="The file to write (OUT.pcap or OUT.pcapng; - for standard output); it "
                   "appears only when complete.")
@click.option("--stream", "streams", multiple=True, metavar="N",
              help="The frames of TCP stream N (tcp.stream); repeat it or give N,M,...")
@click.option("--where", metavar="EXPR",
              help="The frames of the connections where this SQL condition on the connection "
                   "table holds, e.g. \"ended_by = 'rst_client'\" (columns: docs/schema.md).")
@click.option("--frames", "frame_text", metavar="A-B",
              help="Frames A to B (frame.number); also N, A- and lists: 1-10,25,40-.")
@click.option("--format", "fmt", type=click.Choice(["pcap", "pcapng"]),
              help="Output format [default: from OUT's suffix: .pcap and .cap are pcap, anything "
                   "else pcapng]. pcap holds one link type.")
@mode_option(("merge", "concat"))
@cache_options
def export(files, output, streams, where, frame_text, fmt, mode):
    """Write the frames of FILES that --stream, --where and --frames select (every one
    given must hold) to OUT, byte for byte, with their timestamps, link types and
    interfaces, in capture order: the needle found here, for Wireshark."""
    if not (streams or where or frame_text):
        fail("say which frames: --stream N, --where EXPR or --frames A-B")
    if "-" in files:
        fail("-: frame bytes are not kept from standard input; save the capture to a file "
             "and export from it")
    wanted_streams = _numbers(streams, "--stream") if streams else None
    frames = _frame_ranges(frame_text) if frame_text else None
    check_output(output, files)

    import tcpsift
    from tcpsift.cli.progress import progress
    from tcpsift.workflow import export as ex

    announce(files, mode)
    with progress() as shown:
        shown.step("reading the capture")
        try:
            if streams or where:
                files_read, rows, warnings, complete = _by_stream(
                    files, mode, wanted_streams, where, frames, shown)
            else:   # frame numbers only: their records, not the capture's tables
                assert frames is not None   # (one of the three is given)
                files_read, rows, warnings, complete = ex.read_frames(list(files), frames, mode)
        except tcpsift.CaptureError as e:
            fail(str(e))
        shown.step("writing the frames")
        try:
            writer = ex.Writer(files_read, rows, fmt or ex.format_for(output))
            with output_file(output, files, binary=True) as out:
                writer.write(out)
        except ex.ExportError as e:
            fail(str(e))
    left_out = f" ({writer.skipped} custom blocks left out)" if writer.skipped else ""
    where_to = "standard output" if output == "-" else os.fspath(output)
    click.echo(f"tcpsift: {writer.count:,} frames written to {where_to}{left_out}", err=True)
    finish(warnings, complete)


def _by_stream(files, mode, wanted_streams, where, frames, shown):
    """The capture read and analysed: (files read, the rows of the frames of the streams
    wanted among `frames`, warnings, complete)."""
    import tcpsift
    from tcpsift.tcp import INPUT_COLUMNS
    from tcpsift.workflow import export as ex

    columns = set(ex.COLUMNS) | set(INPUT_COLUMNS)
    if where:
        from tcpsift.tcp.connections import PACKET_COLUMNS
        columns |= set(PACKET_COLUMNS)
    cap = tcpsift.read(list(files), mode=mode, columns=columns)
    if where:
        shown.step("TCP analysis and connections")
        chosen = set(sql_where(cap.conns, where)["stream"].to_list())
        wanted_streams = chosen if wanted_streams is None else wanted_streams & chosen
    return cap._files, ex.selection(cap, wanted_streams, frames), cap.warnings, cap.complete
