"""`tcpsift conns` as a user runs it (in process through Click's runner, fixed width, no
colour), checked against tshark and the lab's truth files."""
from __future__ import annotations

import csv
import io
import json
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
    over_ipv6 = tshark_streams(path, "ipv6 && tcp")
    rows = csv_rows(path, "--where", "client like '2001%'")
    assert {int(r["stream"]) for r in rows} == over_ipv6 != set()
    # comparisons are by text too, not by the order addresses were first seen
    rows = csv_rows(path, "--where", "server >= '2001' and server < '2002'")
    assert {int(r["stream"]) for r in rows} == over_ipv6


@needs_lab
def test_where_treats_states_as_text():
    path = LAB / "client-resets.pcapng"
    truth_ = truth("client-resets")
    resets = {r["from_capture"]["tcp_stream"] for r in truth_["expected"]["resets"]}
    rows = csv_rows(path, "--where", "upper(ended_by) like 'RST_C%'")
    assert {int(r["stream"]) for r in rows} == resets


def test_bad_where_is_one_line():
    result = conns(SAMPLE, "--where", "nonsense >")
    assert result.exit_code == 2
    assert result.stderr.startswith("tcpsift: --where: ") and result.stderr.count("\n") == 1


def truth(name: str) -> dict:
    return json.loads((LAB / f"{name}.truth.json").read_text())


def text_lines(*args, width: int) -> list[str]:
    result = conns(*args, "--width", width)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    return lines


@needs_lab
def test_first_slow_synack_in_the_text_view_in_milliseconds():
    first = truth("slow-synack")["expected"]["first_connection_over_threshold"]["from_capture"]
    lines = text_lines(LAB / "slow-synack.pcap", "--where", "syn_to_synack_ns > 300e6",
                       "--sort", "syn_ts_ns", "--limit", "1", width=200)
    heading = next(i for i, line in enumerate(lines) if line.startswith("stream"))
    row = lines[heading + 2].split()
    assert row[0] == str(first["tcp_stream"])
    assert f"{first['syn_to_syn_ack_ms']:.3f}" in row   # 3 decimals: the truth's precision
    assert lines[heading - 1].split()[0] == "syn"   # the sort column (a time), after the stream


@needs_lab
def test_sort_desc_limit_finds_the_slow_synacks():
    expected = truth("slow-synack")["expected"]
    slowest = csv_rows(LAB / "slow-synack.pcap", "--sort", "syn_to_synack_ns", "--desc",
                       "--limit", len(expected["connections_over_threshold"]))
    ms = [int(r["syn_to_synack_ns"]) / 1e6 for r in slowest]
    assert ms == sorted(ms, reverse=True) and min(ms) > expected["threshold_ms"]
    assert expected["first_connection_over_threshold"]["from_capture"]["tcp_stream"] in \
        {int(r["stream"]) for r in slowest}


def test_unknown_sort_column_lists_the_valid_ones():
    result = conns(SAMPLE, "--sort", "rtt")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("tcpsift: --sort: unknown column 'rtt'; valid: stream, uid, client,")
    assert "syn_to_synack_ns" in result.stderr
    result = conns(SAMPLE, "--desc")
    assert result.exit_code == 2 and result.stderr == "tcpsift: --desc needs --sort COL\n"


def test_text_view_fits_the_width_and_says_what_it_left_out():
    wide = text_lines(SAMPLE, width=400)
    assert not any("not shown" in line for line in wide)
    narrow = text_lines(SAMPLE, width=80)
    assert any(line.startswith("not shown at this width: history") for line in narrow)
    # every connection still has its row
    rule = next(i for i, line in enumerate(narrow) if line.startswith("───"))
    caption = next(i for i, line in enumerate(narrow) if "connections" in line)
    assert caption - rule - 1 == len(csv_rows(SAMPLE))


def test_text_view_width_from_the_environment():
    result = CliRunner().invoke(cli, ["conns", str(SAMPLE)], env={"TCPSIFT_WIDTH": "70"})
    assert result.exit_code == 0 and max(map(len, result.stdout.splitlines())) <= 70


def test_data_formats_keep_exact_nanoseconds(tmp_path):
    import polars as pl

    rows = csv_rows(SAMPLE)
    out = tmp_path / "c.parquet"
    assert conns(SAMPLE, "--format", "parquet", "-o", out).exit_code == 0
    table = pl.read_parquet(out)
    assert table["syn_to_synack_ns"].dtype == pl.Int64
    assert [str(v) if v is not None else "" for v in table["syn_to_synack_ns"]] == \
        [r["syn_to_synack_ns"] for r in rows]
    as_json = json.loads(conns(SAMPLE, "--format", "json").stdout)
    assert [r["duration_ns"] for r in as_json] == [int(r["duration_ns"]) for r in rows]


def client_resets(*args) -> dict[int, dict]:
    rows = csv_rows(LAB / "client-resets.pcapng", "--where", "ended_by = 'rst_client'", *args)
    return {int(r["stream"]): r for r in rows}


def open_counts(row: dict) -> tuple[int, int]:
    return (int(row["client_open_to_other_servers_at_end"]),
            int(row["client_open_to_same_server_at_end"]))


@needs_lab
def test_client_resets_by_mac_equal_the_truth_exactly():
    """Question 2: the connections the client ended with a RST, and how many others it had
    open at the RST frame, to other servers and to the same server."""
    expected = truth("client-resets")["expected"]["resets"]
    resets = client_resets("--client-by", "mac")
    assert sorted(resets) == sorted(r["from_capture"]["tcp_stream"] for r in expected)
    for r in expected:
        fc = r["from_capture"]
        row = resets[fc["tcp_stream"]]
        assert int(row["close_frame"]) == fc["rst_frame"]
        assert open_counts(row) == (fc["open_to_other_servers"], fc["open_to_same_server"])


@needs_lab
def test_client_resets_by_ip_count_the_address_family_of_the_reset():
    """By address, the lab client's IPv4 and IPv6 addresses are two clients: each reset
    counts the open connections of its own address family only (the truth's connections
    of that IP version); the same server address implies the same family."""
    tr = truth("client-resets")
    version = {c["id"]: c["ip_version"] for c in tr["injected"]["connections"]}
    resets = client_resets()   # --client-by ip is the default
    assert sorted(resets) == sorted(r["from_capture"]["tcp_stream"] for r in tr["expected"]["resets"])
    for r in tr["expected"]["resets"]:
        family = [c for c in r["open_to_other_servers_ids"] if version[c] == version[r["connection"]]]
        assert open_counts(resets[r["from_capture"]["tcp_stream"]]) == \
            (len(family), r["from_capture"]["open_to_same_server"])


def test_a_directory_or_missing_file_is_one_line(tmp_path):
    for path in (tmp_path, tmp_path / "missing.pcap"):
        result = conns(path)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"tcpsift: {path}: ") and result.stderr.count("\n") == 1
    result = conns(SAMPLE, "-o", tmp_path)
    assert result.exit_code == 2 and result.stderr == f"tcpsift: {tmp_path}: is a directory\n"
