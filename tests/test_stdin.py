"""`-` reads the capture from standard input, as `tshark -r -` does (`tcpdump -w - |
tcpsift fields - ...`): the same text, summary and connections as from the file, also
when the pipe delivers the bytes in small pieces; a clear error for what it cannot read."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED  # noqa: E402

LAB = SHARED / "lab" / "captures"
CAPTURES = [SAMPLE] + [p for p in (LAB / "client-resets.pcapng", LAB / "loss-retrans.pcap")
                       if p.exists()]
FAST = ["frame.number", "frame.time_epoch", "ip.src", "tcp.srcport", "tcp.stream", "tcp.seq",
        "tcp.analysis.retransmission", "tcp.analysis.ack_rtt"]
TABLE = ["frame.number", "frame.interface_id", "vlan.id", "tcp.options.sack_le", "tcp.stream"]


def _tcpsift(args, data: bytes | None = None, pieces: int = 0):
    """Run `python -m tcpsift args` with `data` on its standard input, written in
    `pieces` small writes with pauses (0: at once). (exit code, stdout, stderr)"""
    proc = subprocess.Popen([sys.executable, "-m", "tcpsift", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def feed():
        try:
            if pieces:
                step = max(1, len(data) // pieces)
                for i in range(0, len(data), step):
                    proc.stdin.write(data[i:i + step])
                    proc.stdin.flush()
                    time.sleep(0.002)
            elif data:
                proc.stdin.write(data)
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    result = {}
    readers = [threading.Thread(target=lambda k=k, f=f: result.__setitem__(k, f.read()))
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    code = proc.wait(timeout=120)
    for r in readers + [writer]:
        r.join()
    return code, result["out"].decode(), result["err"].decode()


def _e(names):
    return [a for n in names for a in ("-e", n)]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
# (the quick tier reads stdin through the fast printer; the table path and -Y in the
# slow tier)
@pytest.mark.parametrize("names,extra", [
    (FAST, []), pytest.param(TABLE, [], marks=pytest.mark.slow),
    pytest.param(FAST, ["-Y", "tcp.len > 0"], marks=pytest.mark.slow)],
    ids=["fast", "table", "filter"])
def test_fields_from_stdin_equal_fields_from_the_file(path, names, extra):
    from_file = _tcpsift(["fields", str(path), *_e(names), *extra])
    assert from_file[0] == 0
    assert _tcpsift(["fields", "-", *_e(names), *extra], path.read_bytes()) == from_file


@pytest.mark.slow
def test_a_pipe_that_delivers_small_pieces():
    data = SAMPLE.read_bytes()
    assert _tcpsift(["fields", "-", *_e(FAST)], data, pieces=300) == \
        _tcpsift(["fields", str(SAMPLE), *_e(FAST)])


@pytest.mark.slow
def test_info_and_conns_from_stdin():
    data = SAMPLE.read_bytes()
    code, out, _ = _tcpsift(["info", "-"], data)
    assert code == 0
    assert f"File size:           {len(data)} bytes" in out
    assert "Number of packets:   174" in out
    assert _tcpsift(["conns", "-"], data) == _tcpsift(["conns", str(SAMPLE)])


def test_stdin_cut_short_keeps_the_packets_before():
    data = SAMPLE.read_bytes()
    code, out, err = _tcpsift(["fields", "-", "-e", "frame.number"], data[:len(data) // 2])
    assert code == 1
    assert err.startswith("tcpsift: warning: -: cut short") and err.count("\n") == 1
    frames = out.split()
    assert frames == [str(i) for i in range(1, len(frames) + 1)] and len(frames) > 10


@pytest.mark.parametrize("data,message", [
    (b"", "empty input: not a pcap or pcapng file"),
    (b"hello, this is not a capture\n" * 3, "not a pcap or pcapng file"),
])
def test_what_stdin_cannot_be(data, message):
    code, out, err = _tcpsift(["fields", "-", "-e", "frame.number"], data)
    assert (code, out) == (2, "")
    assert err == f"tcpsift: -: {message}\n"


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
@pytest.mark.slow
def test_compressed_stdin_reads_like_the_file(kind):
    """zcat-free: gzip or zstd data on standard input is decompressed as it comes."""
    import gzip

    import zstandard
    pack = gzip.compress if kind == "gzip" else zstandard.ZstdCompressor().compress
    data = pack(SAMPLE.read_bytes())
    assert _tcpsift(["fields", "-", *_e(FAST)], data, pieces=50) == \
        _tcpsift(["fields", str(SAMPLE), *_e(FAST)])
    code, out, _ = _tcpsift(["info", "-"], data)
    assert code == 0 and f"File size:           {len(data)} bytes" in out
    assert f"{kind}-compressed" in out
    # cut short: the same as the file cut short (zstd hands out nothing of its first
    # 128 KiB block before its end, so half of this small file holds no capture)
    cut = data[:len(data) // 2]
    code, out, err = _tcpsift(["fields", "-", "-e", "frame.number"], cut)
    expected = (1, "tcpsift: warning: -: compressed stream cut short") if kind == "gzip" else (
        2, "tcpsift: -: zstd data holds no capture (compressed stream cut short")
    assert (code, err[:len(expected[1])]) == expected


def test_stdin_merged_with_a_file():
    other = LAB / "seed-like.pcap"
    if not other.exists():
        pytest.skip("no lab captures")
    names = ["frame.number", "frame.time_epoch", "ip.src", "tcp.stream"]
    assert _tcpsift(["fields", "-", str(other), *_e(names)], SAMPLE.read_bytes()) == \
        _tcpsift(["fields", str(SAMPLE), str(other), *_e(names)])


def test_a_live_capture_is_printed_as_it_comes():
    """tcpdump -w - | tcpsift fields -: when the input pauses, the frames so far are
    printed, not held until 65,536 have come or the input ends."""
    import struct

    data = SAMPLE.read_bytes()
    off = 24
    for _ in range(10):                 # the file header and the first 10 records
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    proc = subprocess.Popen([sys.executable, "-m", "tcpsift", "fields", "-", "-e",
                             "frame.number", "-e", "tcp.stream"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lines: list[str] = []
    got_ten = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line.decode())
            if len(lines) == 10:
                got_ten.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        proc.stdin.write(data[:off])
        proc.stdin.flush()
        assert got_ten.wait(30), f"{len(lines)} lines while the input paused"
        assert len(lines) == 10
        proc.stdin.write(data[off:])
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        reader.join()
    assert proc.returncode == 0
    assert "".join(lines) == _tcpsift(["fields", str(SAMPLE), "-e", "frame.number", "-e",
                                       "tcp.stream"])[1]


def test_the_python_api_reads_stdin_but_keeps_no_frame_bytes():
    code = ("import tcpsift\n"
            "cap = tcpsift.read('-')\n"
            "print(len(cap.packets), cap.info.files[0]['file_size'])\n"
            "try:\n"
            "    cap.frame_bytes(1)\n"
            "except tcpsift.CaptureError as e:\n"
            "    print(e)\n")
    data = SAMPLE.read_bytes()
    run = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    count, message = run.stdout.decode().splitlines()
    assert count == f"174 {len(data)}"
    assert message == "-: frame bytes are not kept from standard input; save the capture " \
                      "to a file first"
