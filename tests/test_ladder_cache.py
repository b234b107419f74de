"""`tcpsift ladder --stream N` from the cache (tcpsift.workflow.ladder.build on a cached
capture: only the stream's rows and the columns the ladder reads, client and server named
without the connection table) says what the uncached run says, byte for byte."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcpsift
from tcpsift.capture import capture as capture_module
from tcpsift.cli.main import cli
from tcpsift.workflow import ladder as L

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED, capture_files  # noqa: E402

# a stream with rows that are ICMP errors quoting its TCP headers (layer rows), a lab
# download, and the repository's sample
QUOTED = SHARED / "captures" / "public" / "encap" / "6in4-tcp.pcap"
CAPTURES = [p for p in (QUOTED, SHARED / "lab" / "captures" / "seed-like.pcap", SAMPLE)
            if p.is_file()]


def _run(args, cache) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["ladder", *map(str, args)], env={"TCPSIFT_CACHE": cache})
    return res.exit_code, res.output


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_cached_ladder_equals_the_uncached_one(path, tmp_path, monkeypatch):
    streams = tcpsift.read(path, cache=False).tcp["stream"].drop_nulls().unique().sort()
    chosen = sorted({streams[0], streams[len(streams) // 2], streams[-1]})
    folder = str(tmp_path / "cache")
    # csv, the text view (header lines: client, server, counts, times), unknown streams
    runs = [*([path, "--stream", s, "--format", "csv"] for s in chosen),
            [path, "--stream", chosen[-1], "--utc"],
            [path, "--stream", streams[-1] + 1, "--format", "csv"], [path, "--stream", -1]]
    uncached = [_run(args, "off") for args in runs]
    first = [_run(args, folder) for args in runs]
    # the second runs read the cache only
    monkeypatch.setattr(capture_module, "_read_capture", None)
    second = [_run(args, folder) for args in runs]
    assert second == first == uncached
    assert [code for code, _ in uncached] == [0] * (len(chosen) + 1) + [2, 2]


def _some(streams: list[int], most: int) -> list[int]:
    """At most `most` of the streams, spread over them (the first and the last too)."""
    step = max(1, -(-len(streams) // most))
    return sorted(set(streams[::step]) | {streams[-1]}) if streams else []


def _check_roles(path: Path, most: int | None) -> None:
    try:
        cap = tcpsift.read(path, cache=False)
    except tcpsift.CaptureError:
        return
    conns = cap.conns
    shown = conns["stream"].to_list()
    wanted = set(shown if most is None else _some(shown, most))
    for row in conns.filter(conns["stream"].is_in(sorted(wanted))).iter_rows(named=True):
        expected = (str(row["client"]), row["client_port"], str(row["server"]),
                    row["server_port"])
        assert L._roles(L._rows(cap, row["stream"])) == expected, (path.name, row["stream"])


def test_roles_are_the_connection_tables():
    """The ladder names client and server as the connection table does (the same rule,
    there in the kernel): a few streams of the lab's captures and of public ones with
    streams that lack a handshake or a side (the slow tier: every stream of every
    corpus capture)."""
    public = SHARED / "captures" / "public" / "tcp"
    for path in dict.fromkeys([*CAPTURES, *capture_files("lab"),
                               public / "many-connections-synscan.pcap",
                               public / "keep-alive-many.pcap"]):
        if path.is_file():
            _check_roles(path, most=8)


@pytest.mark.slow
@pytest.mark.parametrize("path", capture_files("captures/public", "lab"),
                         ids=lambda p: p.name)
def test_roles_are_the_connection_tables_on_every_stream(path):
    _check_roles(path, most=None)


def test_a_cached_ladder_imports_no_numpy(tmp_path):
    """From the cache, `ladder --stream N` is Polars' start-up and little else: no NumPy,
    no compiled kernel, no connection table (issue 19)."""
    import subprocess

    folder = tmp_path / "cache"
    cap = tcpsift.read(SAMPLE, cache=folder)
    assert cap.tcp.height and not cap.warnings      # (the entry holds the TCP table)
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(sorted(m for m in sys.modules if m == 'numpy' or"
            " m.startswith(('tcpsift.decode', 'tcpsift.tcp.')))))\n"
            "from tcpsift.cli.main import main\n"
            "sys.argv = ['tcpsift', *sys.argv[1:]]\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code, "ladder", str(SAMPLE), "--stream", "0",
                          "--format", "csv", "--cache", str(folder)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "[]"
