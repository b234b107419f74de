"""`tcpsift conns` as a user runs it (in process through Click's runner, fixed width, no
colour), checked against tshark and the lab's truth files."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpsift.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT.parent / "shared" / "lab" / "captures"
SAMPLE = ROOT / "samples" / "sample.pcap"
needs_lab = pytest.mark.skipif(not LAB.is_dir(), reason="needs ../shared/lab/captures")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def conns(*args, width: int = 100):
    result = CliRunner().invoke(cli, ["conns", *map(str, args)], env={"COLUMNS": str(width)})
    return result


def csv_rows(*args) -> list[dict]:
    result = conns(*args, "--format", "csv")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def tshark_streams(path: Path, display_filter: str) -> set[int]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields",
                          "-e", "tcp.stream"], capture_output=True, text=True, check=True).stdout
    return {int(s) for s in out.split()}


@needs_lab
@needs_tshark
def test_where_treats_addresses_as_text():
    path = LAB / "client-resets.pcapng"
    rows = csv_rows(path, "--where", "client like '2001%'")
    assert {int(r["stream"]) for r in rows} == tshark_streams(path, "ipv6 && tcp") != set()
    # comparisons are by text too, not by the order addresses were first seen
    rows = csv_rows(path, "--where", "server >= '2001' and server < '2002'")
    assert {int(r["stream"]) for r in rows} == tshark_streams(path, "ipv6 && tcp")


@needs_lab
def test_where_treats_states_as_text():
    path = LAB / "client-resets.pcapng"
    truth = __import__("json").loads((LAB / "client-resets.truth.json").read_text())
    resets = {r["from_capture"]["tcp_stream"] for r in truth["expected"]["resets"]}
    rows = csv_rows(path, "--where", "upper(ended_by) like 'RST_C%'")
    assert {int(r["stream"]) for r in rows} == resets


def test_bad_where_is_one_line():
    result = conns(SAMPLE, "--where", "nonsense >")
    assert result.exit_code == 2
    assert result.stderr.startswith("tcpsift: --where: ") and result.stderr.count("\n") == 1
