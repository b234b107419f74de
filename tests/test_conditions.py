"""--where takes a condition on the table's columns, never a query: the same rule for
every command that has the option (tcpsift.conditions)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE  # noqa: E402

from tcpsift.cli.main import cli  # noqa: E402

SECRET_READS = [
    "stream = (SELECT CAST(column_0 AS INT) FROM read_csv('{secret}', has_header => false))",
    "stream in (select 1)",
    "stream = 1 or exists (SeLeCt * from read_csv('{secret}'))",
]


@pytest.mark.parametrize("condition", SECRET_READS)
@pytest.mark.parametrize("command", [["conns"], ["ladder", "--stream", "0"],
                                     ["export", "-o", "{out}"]])
def test_a_query_is_refused_and_reads_no_file(tmp_path, command, condition):
    secret = tmp_path / "secret.csv"
    secret.write_text("1\n4242\n")
    args = [a.format(out=tmp_path / "out.pcap") for a in command]
    result = CliRunner().invoke(cli, [args[0], str(SAMPLE), *args[1:],
                                      "--where", condition.format(secret=secret)])
    assert result.exit_code == 2
    assert "4242" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a query" in lines[0]
    assert not (tmp_path / "out.pcap").exists()


def test_a_word_select_inside_a_string_is_a_value():
    result = CliRunner().invoke(cli, ["conns", str(SAMPLE), "--format", "csv",
                                      "--where", "history = 'select'"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("stream,")


def test_an_unknown_column_names_the_valid_ones():
    result = CliRunner().invoke(cli, ["conns", str(SAMPLE), "--where", "rtt > 3"])
    assert result.exit_code == 2
    assert "no column rtt" in result.stderr and "client_port" in result.stderr


@pytest.mark.parametrize("condition", ["lpad(client, 2000000000, 'x') = 'a'",
                                       "repeat(client, 1000000000) = 'a'"])
def test_a_function_that_builds_huge_values_is_refused(condition):
    result = CliRunner().invoke(cli, ["conns", str(SAMPLE), "--where", condition])
    assert result.exit_code == 2
    assert result.stderr.startswith("tcpsift: --where: function ") and "not allowed" in result.stderr


def test_the_allowed_functions_work():
    result = CliRunner().invoke(cli, ["conns", str(SAMPLE), "--format", "csv", "--where",
                                      "lower(client) like '192%' and abs(client_port) > 0 "
                                      "and coalesce(history, '') <> ''"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) > 1
