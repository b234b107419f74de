"""tcpsift.read(files, mode=...): several files merged by time (mergecap), one after the
other (mergecap -a), or each a capture of its own: what the two capture points of the
lab pairs (one connection seen at both ends of a router) need."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import tcpsift

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SHARED  # noqa: E402

C = pl.col
LAB = SHARED / "lab" / "captures"
PAIRS = ["lossy", "offset", "clean-slow-server"]
# what tshark's filter tcp.analysis.retransmission matches: the retransmission, fast
# retransmission and spurious retransmission bits of the analysis column
RETRANSMISSION = 0x1 | 0x400 | 0x4000
needs_wireshark = pytest.mark.skipif(
    shutil.which("tshark") is None or shutil.which("mergecap") is None,
    reason="needs tshark and mergecap")


def _pair(name: str) -> tuple[list[Path], dict]:
    paths = [LAB / f"twopoint-{name}-{point}.pcap" for point in "ab"]
    if not all(p.exists() for p in paths):
        pytest.skip("lab captures not present")
    return paths, json.loads((LAB / f"twopoint-{name}.truth.json").read_text())


def _endpoint(text: str) -> tuple[str, int]:
    address, port = text.rsplit(":", 1)
    return address.strip("[]"), int(port)


def _stream_of(cap, client: str, server: str) -> int | None:
    (caddr, cport), (saddr, sport) = _endpoint(client), _endpoint(server)
    rows = cap.packets.join(cap.tcp, on=["frame", "file_id"]).filter(
        (C("src") == caddr) & (C("sport") == cport) & (C("dst") == saddr)
        & (C("dport") == sport))
    streams = rows["stream"].unique().to_list()
    assert len(streams) <= 1, (client, streams)
    return streams[0] if streams else None


def _tshark_count(path, display_filter: str) -> int:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True)
    return len(out.stdout.splitlines())


@pytest.mark.parametrize("name", PAIRS)
def test_separate_reads_each_capture_point_on_its_own(name):
    paths, truth = _pair(name)
    caps = tcpsift.read(paths, mode="separate")
    assert isinstance(caps, list) and len(caps) == 2
    for file_id, (cap, point) in enumerate(zip(caps, truth["captures"])):
        assert cap.packets.height == point["from_capture"]["packets"]
        assert cap.packets["file_id"].unique().to_list() == [file_id]
        assert cap.tcp["file_id"].unique().to_list() == [file_id]
        assert cap.info.files[0]["path"] == str(paths[file_id])
        # frames of the capture's own file: frame bytes come from it
        assert cap.frame_bytes(1) == tcpsift.read(paths[file_id]).frame_bytes(1)
    # tshark's tcp.stream of each connection, in each file alone
    flows = truth["injected"]["flows_in_both"] + truth["injected"]["flows_only_in_b"]
    for flow in flows:
        for cap, point in zip(caps, "ab"):
            want = flow["from_capture"][f"tcp_stream_{point}"]
            assert _stream_of(cap, flow["client"], flow["server"]) == want, (flow, point)


@needs_wireshark
@pytest.mark.slow
def test_points_merged_look_retransmitted_and_separate_ones_do_not():
    """Merged, the second sighting of every segment is a retransmission; each capture
    read separately has tshark's own count for that file."""
    paths, _ = _pair("lossy")
    merged = tcpsift.read(paths)
    separate = tcpsift.read(paths, mode="separate")

    def retransmissions(cap) -> int:
        return cap.tcp.filter((C("analysis") & RETRANSMISSION) != 0).height

    for cap, path in zip(separate, paths):
        assert retransmissions(cap) == _tshark_count(path, "tcp.analysis.retransmission")
    assert retransmissions(merged) > 10 * sum(retransmissions(c) for c in separate)


@needs_wireshark
def test_concat_is_mergecap_append(tmp_path):
    """concat numbers the frames of b after a's, as `mergecap -a` does, and analyses
    them as tshark analyses that file: stream numbers and verdicts."""
    paths, _ = _pair("lossy")
    appended = tmp_path / "appended.pcapng"
    subprocess.run(["mergecap", "-a", "-w", str(appended), *map(str, paths)], check=True)
    out = subprocess.run(["tshark", "-r", str(appended), "-Y", "tcp", "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.seq",
                          "-e", "tcp.analysis.retransmission"],
                         capture_output=True, text=True, check=True).stdout
    truth = [(int(f), int(s), int(q), r != "") for f, s, q, r in
             (line.split("\t") for line in out.splitlines())]
    cap = tcpsift.read(paths, mode="concat")
    alone = [tcpsift.read(p).packets.height for p in paths]
    assert cap.packets["file_id"].to_list() == [0] * alone[0] + [1] * alone[1]
    assert cap.packets["file_frame"].to_list() == [*range(1, alone[0] + 1),
                                                   *range(1, alone[1] + 1)]
    got = cap.tcp.filter(C("stream").is_not_null()).select(
        "frame", "stream", "rel_seq", ((C("analysis") & RETRANSMISSION) != 0)).rows()
    assert got == truth
    # (merged by time instead, the two points' frames interleave)
    assert not tcpsift.read(paths).packets["file_id"].equals(cap.packets["file_id"])


def test_an_unknown_mode_is_refused():
    paths, _ = _pair("lossy")
    with pytest.raises(ValueError, match="mode must be one of merge, concat, separate"):
        tcpsift.read(paths, mode="interleave")
