"""`tcpsift export` and `Capture.export` against tshark: for the frames exported, tshark
prints the same bytes (`-x`), times and lengths from the exported file as from the
original (which frames: tshark's own filter on the original)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcpsift
from tcpsift.cli.main import cli

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED  # noqa: E402

LAB = SHARED / "lab" / "captures"
PUBLIC = SHARED / "captures" / "public"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
pytestmark = needs_tshark

HEX_LINE = re.compile(r"[0-9a-f]{4,}  ")


def tshark(path: Path, *args: str) -> str:
    return subprocess.run(["tshark", "-r", str(path), *args], capture_output=True, text=True,
                          check=True).stdout


# tshark's summary line, one per frame: the fields compared
COLUMNS = 'gui.column.format:"t","%Cus:frame.time_epoch","l","%Cus:frame.len","c","%Cus:frame.cap_len"'
DATA_SOURCE = re.compile(r".+ \(\d+ bytes\):$")


def tshark_frames(path: Path, display_filter: str | None = None) -> list[tuple]:
    """("frame.time_epoch frame.len frame.cap_len", hex dump of the frame's own bytes) of
    each frame tshark shows (with `display_filter`, those it matches), in order."""
    chosen = ["-Y", display_filter] if display_filter else []
    frames, own = [], False
    for line in tshark(path, *chosen, "-P", "-x", "-o", COLUMNS).splitlines():
        if not line.strip():
            continue
        if HEX_LINE.match(line):
            if own:
                frames[-1][1].append(line)
        elif DATA_SOURCE.match(line):      # several data sources: the frame's is first
            own = line.startswith("Frame (")
        else:
            frames.append((line.rstrip(), []))
            own = True
    return [(summary, "\n".join(dump)) for summary, dump in frames]


def in_set(numbers) -> str:
    return "{" + ",".join(str(n) for n in sorted(numbers)) + "}"


def export(*args) -> object:
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def tcp_streams(path: Path) -> list[int]:
    return sorted({int(s) for s in tshark(path, "-Y", "tcp", "-T", "fields", "-e",
                                          "tcp.stream").split()})


def check_export(original: Path, out: Path, args: list, display_filter: str | None,
                 truth: Path | None = None):
    """Export `original` (and the other files in `args`) to `out`; tshark shows the frames
    of `truth` (default: `original`) that `display_filter` matches the same."""
    result = export(original, "-o", out, *args)
    assert result.exit_code == 0, result.output
    wanted = tshark_frames(truth or original, display_filter)
    assert wanted, "the case selects no frame"
    assert tshark_frames(out) == wanted
    return result


LAB_FILES = sorted(p for p in LAB.glob("*.pcap*")) if LAB.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("path", LAB_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_lab_streams_and_frames(path, fmt, tmp_path):
    streams = tcp_streams(path)
    chosen = [streams[0], streams[len(streams) // 2], streams[-1]]
    check_export(path, tmp_path / f"streams.{fmt}", ["--stream", ",".join(map(str, chosen))],
                 f"tcp.stream in {in_set(chosen)}")
    check_export(path, tmp_path / f"frames.{fmt}", ["--frames", "100-350"],
                 "frame.number >= 100 && frame.number <= 350")


# public captures: pcap and pcapng, both byte orders, microseconds, nanoseconds, 2^-8 s,
# time offsets, several link types and interfaces, simple packet blocks, custom blocks,
# several sections, pcap 2.1, gzip and zstd
PUBLIC_CASES = [
    ("pcap/be-nsec-ethernet.pcap", ["pcap"]),
    ("pcap/le-nsec-sll-tcp-handshake.pcap", ["pcap", "pcapng"]),
    ("pcap/be-nsec-ethernet.pcap", ["pcapng"]),
    ("pcap/be-usec-v2.1-ethernet-nfsv3.pcap", ["pcap", "pcapng"]),
    ("pcap/le-usec-ethernet-http-fin.pcap", ["pcap", "pcapng"]),
    ("pcapng/le-tsresol-pow2-8.pcapng", ["pcap", "pcapng"]),
    ("pcapng/be-tsresol-pow2-8.pcapng", ["pcapng"]),
    ("pcapng/le-two-interfaces-tsresol-ns-and-us.pcapng", ["pcap", "pcapng"]),
    ("pcapng/le-two-linktypes-eth-sll.pcapng", ["pcapng"]),
    ("pcapng/le-eleven-interfaces-macos.pcapng", ["pcapng"]),
    ("pcapng/le-126-idbs-nrb-ldap.pcapng", ["pcapng"]),
    ("pcapng/be-obsolete-packet-blocks-rawip.pcap", ["pcap", "pcapng"]),
    ("pcapng/generator/le-011-spb-epb-mix.pcapng", ["pcapng"]),
    ("pcapng/generator/be-018-custom-blocks-among-packets.pcapng", ["pcapng"]),
    ("derived/pcapng-if-tsoffset.pcapng", ["pcap", "pcapng"]),
    ("derived/null-be-file-be-af.pcap", ["pcap"]),
    ("linktypes/raw-101-ipv6-http.pcap", ["pcap"]),
    ("linktypes/sll2-tcp.pcap", ["pcapng"]),
    ("snaplen/snaplen-varied-per-idb.pcapng", ["pcap", "pcapng"]),
    ("compressed/http-head.pcapng.gz", ["pcapng"]),
    ("compressed/mysql-two-linktypes.pcapng.zst", ["pcapng"]),
    ("compressed/http-chunked-no-fname.pcap.gz", ["pcap"]),
]


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="needs ../shared/captures/public")
@pytest.mark.parametrize("name,formats", [
    # one case in the quick tier; tshark takes ~0.5 s a file
    pytest.param(name, formats, id=f"{name}-{'+'.join(formats)}", marks=() if i == 0 else pytest.mark.slow)
    for i, (name, formats) in enumerate(PUBLIC_CASES)])
def test_public_all_frames(name, formats, tmp_path):
    path = PUBLIC / name
    for fmt in formats:
        # custom blocks are not packets: tshark shows them as frames without an interface
        check_export(path, tmp_path / f"all.{fmt}", ["--frames", "1-"],
                     "frame.interface_id" if "custom" in name else None)


@pytest.mark.slow
@pytest.mark.skipif(not PUBLIC.is_dir(), reason="needs ../shared/captures/public")
def test_several_sections(tmp_path):
    # packets name their interface within their section; frames 2-6 hold two sections'
    # interfaces and a simple packet block (which belongs to the output's first interface)
    path = PUBLIC / "pcapng/generator/le-202-three-sections-mixed-endianness.pcapng"
    check_export(path, tmp_path / "part.pcapng", ["--frames", "2-6"],
                 "frame.number >= 2 && frame.number <= 6")


@pytest.mark.slow
@pytest.mark.skipif(not PUBLIC.is_dir(), reason="needs ../shared/captures/public")
@pytest.mark.parametrize("name", ["pcapng/le-eleven-interfaces-macos.pcapng",
                                  "pcapng/le-two-interfaces-tsresol-ns-and-us.pcapng"])
def test_interfaces_keep_their_facts(name, tmp_path):
    # (tshark 4.0 names a later section's interfaces after the first section's: these
    # files have one section)
    path = PUBLIC / name
    facts = ["-T", "fields", "-e", "frame.interface_name", "-e", "frame.encap_type"]
    odd = "frame.number in {1,3,5,7,9,11,13,15,17,19,21,23,25}"
    assert export(path, "-o", tmp_path / "odd.pcapng", "--frames",
                  "1,3,5,7,9,11,13,15,17,19,21,23,25").exit_code == 0
    assert tshark(tmp_path / "odd.pcapng", *facts) == tshark(path, "-Y", odd, *facts)


@pytest.mark.slow
@pytest.mark.skipif(not PUBLIC.is_dir(), reason="needs ../shared/captures/public")
def test_streams_of_a_compressed_capture(tmp_path):
    path = PUBLIC / "compressed/echo-500-connections.pcap.gz"
    check_export(path, tmp_path / "two.pcap", ["--stream", "7", "--stream", "499"],
                 "tcp.stream in {7,499}")


@pytest.mark.slow
@pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
def test_where_on_connections(tmp_path):
    path = LAB / "client-resets.pcapng"
    reset_streams = {int(s) for s in tshark(path, "-Y", "tcp.flags.reset == 1", "-T", "fields",
                                            "-e", "tcp.stream").split()}
    check_export(path, tmp_path / "resets.pcapng", ["--where", "conn_state like 'RST%'"],
                 f"tcp.stream in {in_set(reset_streams)}")


@pytest.mark.slow
@pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
def test_library_export_of_two_files_merged(tmp_path):
    a, b = LAB / "twopoint-offset-a.pcap", LAB / "twopoint-offset-b.pcap"
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(a), str(b)], check=True)
    cap = tcpsift.read([a, b])
    written = cap.export(tmp_path / "part.pcapng", streams=[2], frames=range(1, 2001))
    wanted = tshark_frames(merged, "tcp.stream == 2 && frame.number <= 2000")
    assert written == len(wanted)
    assert tshark_frames(tmp_path / "part.pcapng") == wanted
    # the command, frame numbers only (records read, no tables built)
    check_export(a, tmp_path / "frames.pcapng", [b, "--frames", "500-900,1200"],
                 "frame.number in {500..900, 1200}", truth=merged)


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="needs ../shared/captures/public")
def test_pcap_refuses_several_link_types(tmp_path):
    path = PUBLIC / "pcapng/le-two-linktypes-eth-sll.pcapng"
    result = export(path, "-o", tmp_path / "out.pcap", "--frames", "1-")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and ".pcapng" in result.stderr
    assert not list(tmp_path.iterdir())


def test_refuses_to_write_over_an_input(tmp_path):
    original = LAB / "slow-synack.pcap" if LAB.is_dir() else SAMPLE
    copy = tmp_path / "input.pcap"
    shutil.copyfile(original, copy)
    link = tmp_path / "link.pcap"
    link.symlink_to(copy)
    before = copy.read_bytes()
    for target in (copy, link):
        result = export(copy, "-o", target, "--frames", "1-10")
        assert result.exit_code == 2
        assert result.stderr.startswith("tcpsift: ") and result.stderr.count("\n") == 1
    with pytest.raises(ValueError, match="not writing over it"):
        tcpsift.read(copy).export(link, frames=range(1, 11))
    assert copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.pcap", "link.pcap"]
