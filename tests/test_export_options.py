"""`tcpsift export` to pcapng keeps the options of the section header, the interface
descriptions and the packets, as tshark and capinfos show them: for the frames exported,
the same comments, interface names and descriptions, packet flags, drop counts, packet
ids, queues and verdicts as the original's, and the same section comments."""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

import tcpsift
from tcpsift.workflow.export import FrameRanges

sys.path.insert(0, str(Path(__file__).parent))
from support import capwriter as cw  # noqa: E402
from test_export import PUBLIC, export, needs_tshark, tshark, tshark_frames  # noqa: E402

pytestmark = needs_tshark
needs_public = pytest.mark.skipif(not PUBLIC.is_dir(), reason="needs ../shared/captures/public")

# what tshark shows of each frame's options (and of its interface)
PACKET_FIELDS = ["frame.comment", "pkt_comment", "frame.interface_name",
                 "frame.interface_description", "frame.packet_flags",
                 "frame.packet_flags_direction", "frame.packet_flags_fcs_length",
                 "frame.packet_flags_crc_error", "frame.drop_count", "frame.packet_id",
                 "frame.interface_queue", "frame.verdict.ebpf_xdp", "frame.verdict.ebpf_tc",
                 "frame.verdict.hw", "frame.time_epoch", "frame.encap_type"]
# capinfos' lines about the section header
SECTION_LINES = ("Capture hardware:", "Capture oper-sys:", "Capture application:",
                 "Capture comment:")


def packet_fields(path: Path, display_filter: str | None = None,
                  fields: list[str] = PACKET_FIELDS) -> str:
    chosen = ["-Y", display_filter] if display_filter else []
    args = ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    return tshark(path, *chosen, *args, *[a for f in fields for a in ("-e", f)])


def capinfos(path: Path) -> list[str]:
    return subprocess.run(["capinfos", str(path)], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def section_lines(path: Path) -> list[str]:
    return [line for line in capinfos(path) if line.startswith(SECTION_LINES)]


def interface_lines(path: Path) -> list[str]:
    """capinfos' description of the interfaces, but for the counts of the packets and
    statistics blocks in the file."""
    lines = capinfos(path)
    first = next(i for i, line in enumerate(lines) if line.startswith("Interface #0"))
    return [line for line in lines[first:]
            if "Number of packets" not in line and "Number of stat entries" not in line]


def build(endian: str, comment: str = "section one", hardware: str = "x86 box",
          simple: bool = True) -> bytes:
    """A pcapng file with options on its section header, two interfaces and its packets
    (enhanced, simple if `simple`, and obsolete packet blocks), in byte order `endian`."""
    e = endian
    w = cw.PcapngWriter(e)
    w.section(opts=[(cw.OPT_COMMENT, comment.encode()), (cw.OPT_COMMENT, "deuxième".encode()),
                    (cw.SHB_HARDWARE, hardware.encode()), (cw.SHB_OS, b"Linux 6.1"),
                    (cw.SHB_USERAPPL, b"capwriter 1")])
    w.interface(1, snaplen=65535, name="eth0", opts=[
        (cw.IF_DESCRIPTION, b"uplink port"), (cw.OPT_COMMENT, b"interface comment"),
        (cw.IF_FILTER, b"\x00tcp port 80"), (cw.IF_OS, b"Linux 6.1"),
        (cw.IF_SPEED, struct.pack(e + "Q", 10**9)), (cw.IF_TZONE, struct.pack(e + "i", -3600)),
        (cw.IF_FCSLEN, b"\x04"), (cw.IF_MACADDR, bytes(range(6))),
        (cw.IF_IPV4ADDR, bytes([10, 0, 0, 1, 255, 255, 255, 0])), (cw.IF_HARDWARE, b"nic 2")])
    w.interface(1, snaplen=0, tsresol=9, tsoffset=-5, name="eth1",
                opts=[(cw.IF_DESCRIPTION, b"downlink"), (cw.OPT_COMMENT, b"second")])
    pkt = cw.eth_ipv4_tcp(b"hello")
    t = 1_700_000_000_000_000_000
    w.epb(0, t, pkt, opts=[
        (cw.OPT_COMMENT, b"first packet"),
        (cw.EPB_FLAGS, struct.pack(e + "I", 0x01000001 | 4 << 5)),     # in, FCS 4, CRC error
        (cw.EPB_DROPCOUNT, struct.pack(e + "Q", 7)),
        (cw.EPB_PACKETID, struct.pack(e + "Q", 0x1122334455667788)),
        (cw.EPB_QUEUE, struct.pack(e + "I", 3)), (cw.EPB_HASH, b"\x02\xec\x1d\x87\x97"),
        (cw.EPB_VERDICT, b"\x02" + struct.pack(e + "Q", 2)), (cw.EPB_VERDICT, b"\x00\xaa\xbb"),
        (cw.OPT_CUSTOM_STR, struct.pack(e + "I", 32473) + b"custom text"),
        (cw.OPT_CUSTOM_STR_NOCOPY, struct.pack(e + "I", 32473) + b"not to be copied")])
    w.epb(1, t + 123, pkt + b"!", opts=[(cw.EPB_FLAGS, struct.pack(e + "I", 2)),
                                        (cw.OPT_COMMENT, b"second packet\nof two lines")])
    if simple:
        w.spb(pkt)
    w.pb(1, t + 1000, pkt, opts=[(cw.OPT_COMMENT, b"obsolete block"),
                                 (cw.EPB_FLAGS, struct.pack(e + "I", 1))])
    w.epb(0, t + 2000, pkt)
    w.epb(1, t + 3000, pkt, opts=[(cw.EPB_VERDICT, b"\x01" + struct.pack(e + "Q", 2)),
                                  (cw.OPT_COMMENT, "è".encode() * 3)])
    return w.getvalue()


def test_packet_and_section_options_quick(tmp_path):
    # the quick tier's check: a big-endian capture, some frames
    original = tmp_path / "in.pcapng"
    original.write_bytes(build(">"))
    out = tmp_path / "part.pcapng"
    assert export(original, "-o", out, "--frames", "1,2,4-").exit_code == 0
    assert packet_fields(out) == packet_fields(original, "frame.number != 3")
    assert section_lines(out) == section_lines(original)


@pytest.mark.slow
@pytest.mark.parametrize("endian", ["<", ">"], ids=["little-endian", "big-endian"])
def test_built_capture_keeps_its_options(endian, tmp_path):
    original = tmp_path / "in.pcapng"
    original.write_bytes(build(endian))
    out = tmp_path / "all.pcapng"
    assert export(original, "-o", out, "--frames", "1-").exit_code == 0
    # all frames: tshark's whole view of each frame, and capinfos' of the file
    assert tshark(out, "-V") == tshark(original, "-V")
    assert packet_fields(out) == packet_fields(original)
    assert section_lines(out) == section_lines(original)
    assert interface_lines(out) == interface_lines(original)
    assert "Capture comment:     deuxième" in section_lines(out)
    # some frames: theirs
    part = tmp_path / "part.pcapng"
    assert export(original, "-o", part, "--frames", "2,4,6").exit_code == 0
    assert packet_fields(part) == packet_fields(original, "frame.number in {2,4,6}")
    assert tshark_frames(part) == tshark_frames(original, "frame.number in {2,4,6}")
    assert section_lines(part) == section_lines(original)


def test_both_byte_orders_give_the_same_file(tmp_path):
    # a big-endian section's options are written in the output's byte order: its export
    # is the little-endian one's, byte for byte (and the custom option that is not to be
    # copied into a new file is not)
    outputs = []
    for endian in "<>":
        original = tmp_path / f"in{endian == '>'}.pcapng"
        original.write_bytes(build(endian))
        outputs.append(tmp_path / f"out{endian == '>'}.pcapng")
        assert export(original, "-o", outputs[-1], "--frames", "1-").exit_code == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert b"custom text" in outputs[0].read_bytes()
    assert b"not to be copied" not in outputs[0].read_bytes()


@pytest.mark.slow
def test_library_export_keeps_options(tmp_path):
    original = tmp_path / "in.pcapng"
    original.write_bytes(build(">"))
    out = tmp_path / "part.pcapng"
    assert tcpsift.read(original).export(out, frames=[1, 2, 5]) == 3
    assert packet_fields(out) == packet_fields(original, "frame.number in {1,2,5}")
    assert section_lines(out) == section_lines(original)


@pytest.mark.slow
def test_several_sections(tmp_path):
    # two files (two sections): the output's section has both files' comments; the
    # hardware they disagree on is left out, the OS they agree on kept
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    # (no simple packet blocks: one of the files' would be written with time 0)
    a.write_bytes(build("<", comment="file a", hardware="box a", simple=False))
    b.write_bytes(build(">", comment="file b", hardware="box b", simple=False))
    out = tmp_path / "both.pcapng"
    assert export(a, b, "-o", out, "--frames", "1-").exit_code == 0
    comments = [line for line in section_lines(a) + section_lines(b)
                if line.startswith("Capture comment:")]
    lines = section_lines(out)
    assert sorted(line for line in lines if line.startswith("Capture comment:")) \
        == sorted(set(comments))
    assert not any(line.startswith("Capture hardware:") for line in lines)
    assert [line for line in lines if line.startswith("Capture oper-sys:")] \
        == [line for line in section_lines(a) if line.startswith("Capture oper-sys:")]
    # each frame keeps its own options (the files' frames have the same times: compared
    # as sets of lines)
    assert sorted(packet_fields(out).splitlines()) \
        == sorted(packet_fields(a).splitlines() + packet_fields(b).splitlines())


def test_malformed_options_are_cut(tmp_path):
    # an option that runs past its block: the options before it are kept, and tshark
    # reads the output
    w = cw.PcapngWriter("<")
    w.section()
    w.interface(1, name="eth0")
    pkt = cw.eth_ipv4_tcp(b"x")
    options = w.options([(cw.OPT_COMMENT, b"kept")])[:-4] + struct.pack("<HH", 1, 200)
    body = struct.pack("<IIIII", 0, 0, 1, len(pkt), len(pkt)) + cw._pad4(pkt) + options
    w.block(cw.BT_EPB, body)
    w.epb(0, 2_000_000, pkt, opts=[(cw.OPT_COMMENT, b"next")])
    original = tmp_path / "in.pcapng"
    original.write_bytes(w.getvalue())
    out = tmp_path / "out.pcapng"
    assert export(original, "-o", out, "--frames", "1-").exit_code == 0
    assert tshark(out, "-T", "fields", "-e", "frame.comment").split() == ["kept", "next"]


# public captures with options: (file, frames exported)
PUBLIC_CASES = [
    ("pcapng/generator/le-009-epbs-all-options.pcapng", "1-"),
    ("pcapng/generator/be-009-epbs-all-options.pcapng", "2"),
    ("pcapng/generator/be-008-idbs-all-options.pcapng", "1-"),
    ("pcapng/generator/le-008-idbs-all-options.pcapng", "3-4"),
    ("pcapng/generator/be-007-shb-all-options.pcapng", "1-"),
    # packet comments; frames whose times tcpsift cannot hold
    ("pcapng/le-two-linktypes-eth-sll.pcapng", "1-"),
    ("compressed/mysql-two-linktypes.pcapng.zst", "40-80,100"),
    ("pcapng/generator/be-202-three-sections-mixed-endianness.pcapng", "1-"),
    ("l3l4/icmp-assorted.pcapng", "3-9"),
    ("tcp/port-reuse-multiple-synack.pcapng", "1-"),
]


def frame_filter(frames: str) -> str:
    parts = []
    for part in frames.split(","):
        first, _, last = part.partition("-")
        parts.append(f"{first}..{last or 1 << 30}" if "-" in part else first)
    return f"frame.number in {{{','.join(parts)}}}"


@needs_public
@pytest.mark.slow
@pytest.mark.parametrize("name,frames", [pytest.param(name, frames, id=name.split("/")[-1])
                                         for name, frames in PUBLIC_CASES])
def test_public_captures_keep_their_options(name, frames, tmp_path):
    original = PUBLIC / name
    out = tmp_path / "out.pcapng"
    result = export(original, "-o", out, "--frames", frames)
    assert result.exit_code == 0, result.output
    # (custom blocks, which tshark shows as frames without an interface, are not packets)
    chosen = frame_filter(frames) + " && frame.interface_id"
    fields = PACKET_FIELDS
    if "sections" in name:
        # tshark 4.0 names a later section's interfaces after the first section's
        fields = [f for f in fields if not f.startswith("frame.interface_")]
    assert packet_fields(out, fields=fields) == packet_fields(original, chosen, fields)
    assert tshark_frames(out) == tshark_frames(original, chosen)
    wanted, got = section_lines(original), section_lines(out)
    if not any(line.startswith("Capture application:") for line in wanted):
        # tcpsift names itself where the input names no application
        wanted += [line for line in got if line.startswith("Capture application:")]
    # (a file of several sections: capinfos lists each section's lines; the output has
    # one section, with each comment once)
    assert sorted(got) == sorted(set(wanted))


@needs_public
@pytest.mark.slow
@pytest.mark.parametrize("name", ["pcapng/generator/be-008-idbs-all-options.pcapng",
                                  "pcapng/generator/le-008-idbs-all-options.pcapng"])
def test_public_interface_options(name, tmp_path):
    # every frame: both interfaces, in their order; capinfos describes them alike
    original = PUBLIC / name
    out = tmp_path / "out.pcapng"
    assert export(original, "-o", out, "--frames", "1-").exit_code == 0
    assert interface_lines(out) == interface_lines(original)


def test_frame_lists_with_an_open_end(tmp_path):
    # `--frames 1,2,4-` is ranges, not a set of numbers up to 2^32 (which took all memory),
    # in both the records-only and the library's path
    original = tmp_path / "in.pcapng"
    original.write_bytes(build("<"))
    wanted = len(tshark(original, "-Y", "frame.number != 3", "-T", "fields",
                        "-e", "frame.number").split())
    out = tmp_path / "lib.pcapng"
    ranges = FrameRanges([range(1, 3), range(4, (1 << 32) + 1)])
    assert tcpsift.read(original).export(out, frames=ranges) == wanted
    result = export(original, "-o", tmp_path / "cli.pcapng", "--frames", "1,2,4-")
    assert result.exit_code == 0 and f"{wanted:,} frames written" in result.stderr
