"""--mode on the commands that take several files, and the line that says which mode
was used (only with several files)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SHARED  # noqa: E402

LAB = SHARED / "lab" / "captures"
FIELDS = ["-e", "frame.number", "-e", "ip.src", "-e", "tcp.stream", "-e", "tcp.seq",
          "-e", "tcp.analysis.retransmission", "-e", "tcp.analysis.ack_rtt"]
needs_wireshark = pytest.mark.skipif(
    shutil.which("tshark") is None or shutil.which("mergecap") is None,
    reason="needs tshark and mergecap")


@pytest.fixture
def pair():
    paths = [LAB / f"twopoint-lossy-{point}.pcap" for point in "ab"]
    if not all(p.exists() for p in paths):
        pytest.skip("lab captures not present")
    return [str(p) for p in paths]


def tcpsift(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpsift", *map(str, args)],
                          capture_output=True, text=True)


def tshark(path, *args) -> str:
    return subprocess.run(["tshark", "-r", str(path), "-T", "fields", *args],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
@needs_wireshark
@pytest.mark.parametrize("extra", [[], ["-Y", "tcp.len > 0", "-e", "ip.ttl"]],
                         ids=["streamed", "filtered"])
def test_fields_in_each_mode_print_what_tshark_prints(pair, tmp_path, extra):
    merged, appended = tmp_path / "merged.pcapng", tmp_path / "appended.pcapng"
    subprocess.run(["mergecap", "-w", merged, *pair], check=True)
    subprocess.run(["mergecap", "-a", "-w", appended, *pair], check=True)
    want = {"merge": tshark(merged, *FIELDS, *extra),
            "concat": tshark(appended, *FIELDS, *extra),
            "separate": "".join(tshark(p, *FIELDS, *extra) for p in pair)}
    said = {"merge": "tcpsift: 2 files read as one capture (merge: by timestamp, like "
                     "mergecap)\n",
            "concat": "tcpsift: 2 files read as one capture (concat: one after the other, "
                      "in the order given)\n",
            "separate": "tcpsift: 2 files read as 2 captures (separate: one capture per "
                        "file)\n"}
    for mode in want:
        run = tcpsift("fields", "--mode", mode, *pair, *FIELDS, *extra)
        assert (run.returncode, run.stderr) == (0, said[mode]), mode
        assert run.stdout == want[mode], mode
    # the default is merge
    assert tcpsift("fields", *pair, *FIELDS, *extra).stdout == want["merge"]


def test_one_file_says_nothing_about_modes(pair):
    for command in (["fields", pair[0], *FIELDS], ["info", pair[0]],
                    ["conns", pair[0], "--format", "csv"]):
        run = tcpsift(*command)
        assert (run.returncode, run.stderr) == (0, ""), command


def test_info_separate_summarises_each_file(pair, tmp_path):
    truth = json.loads((LAB / "twopoint-lossy.truth.json").read_text())
    run = tcpsift("info", "--json", "--mode", "separate", *pair)
    assert run.returncode == 0
    summaries = json.loads(run.stdout)
    assert [s["counts"]["frames"] for s in summaries] == [
        c["from_capture"]["packets"] for c in truth["captures"]]
    merged = json.loads(tcpsift("info", "--json", *pair).stdout)
    assert merged["counts"]["frames"] == sum(s["counts"]["frames"] for s in summaries)
    # a file that is not a capture among them: a warning, the others summarised, exit 1
    other = tmp_path / "notes.txt"
    other.write_text("not a capture\n")
    run = tcpsift("info", "--mode", "separate", pair[0], other)
    assert run.returncode == 1
    assert run.stdout.count("File name:") == 1
    assert f"tcpsift: warning: {other}: " in run.stderr


def test_conns_concat_and_an_unknown_mode(pair):
    run = tcpsift("conns", "--mode", "concat", *pair, "--format", "csv")
    assert run.returncode == 0
    assert run.stderr == ("tcpsift: 2 files read as one capture (concat: one after the "
                          "other, in the order given)\n")
    run = tcpsift("info", "--mode", "zip", *pair)
    assert run.returncode == 2 and "Invalid value for '--mode'" in run.stderr
