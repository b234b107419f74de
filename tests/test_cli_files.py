"""The FILE arguments of every command that reads captures: a directory is the one-line
error of any file that cannot be read (`tcpsift: PATH: ...`, exit 2), not Click's usage
text, and nothing is written."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tcpsift.cli.main import COMMANDS, cli

# each command that reads captures, with the other arguments it needs to start
# ({captures}: where the capture arguments go; the start when not named)
ARGS = {
    "fields": ["-e", "frame.number"],
    "info": [],
    "conns": [],
    "ladder": ["--stream", "0"],
    "report": ["-o", "{out}/report.html"],
    "plot": ["window", "--stream", "0", "-o", "{out}/plot.png"],
    # the second point: the first, a directory, is refused before it is read
    "compare": [str(Path(__file__).resolve().parents[1] / "samples" / "sample.pcap")],
    "export": ["--frames", "1-2", "-o", "{out}/needle.pcap"],
    "sql": ["SELECT count(*) FROM packets", "{captures}"],
    "diagnose": [],
}
# the commands that read no capture
NO_CAPTURE = {"cache"}


def _command_line(command: str, captures: str, out) -> list[str]:
    args = [a.format(out=out, captures=captures) for a in ARGS[command]]
    return [command, *args] if "{captures}" in ARGS[command] else [command, captures, *args]


def test_every_capture_command_is_covered():
    assert set(ARGS) == set(COMMANDS) - NO_CAPTURE


@pytest.mark.parametrize("command", sorted(ARGS))
def test_a_directory_is_a_one_line_error(tmp_path, command):
    folder = tmp_path / "captures"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    res = CliRunner().invoke(cli, _command_line(command, str(folder), out))
    assert res.exit_code == 2, res.output
    assert res.stderr == f"tcpsift: {folder}: Is a directory\n"
    assert res.stdout == ""
    assert not list(out.iterdir())
