"""The Parquet cache (tcpsift.cache): a second read of an unchanged capture reads its
tables from the cache; a changed capture, or a damaged entry, is read again; concurrent
runs and a cache folder that cannot be written never fail a read."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import tcpsift
from tcpsift.capture import capture as capture_module
from tcpsift.cli.main import cli
from tcpsift.textstream import fields as textstream_fields

sys.path.insert(0, str(Path(__file__).parent))
from support.corpus import SAMPLE, SHARED  # noqa: E402

LAB_PCAPNG = SHARED / "lab" / "captures" / "client-resets.pcapng"
TABLES = ("packets", "layers", "tcp", "conns")


@pytest.fixture
def capture(tmp_path) -> Path:
    """A capture of our own (the tests change it)."""
    path = tmp_path / "trace.pcap"
    shutil.copyfile(SAMPLE, path)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "cache"


def _fresh(path) -> tcpsift.Capture:
    return tcpsift.read(path, cache=False)


def _same_tables(a, b) -> None:
    for name in TABLES:
        assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.info.to_dict() == b.info.to_dict()


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decoding of a capture fails the test: what is read comes from the cache."""
    def refuse(*args, **kwargs):
        raise AssertionError("the capture was decoded, not read from the cache")
    monkeypatch.setattr(capture_module, "_read_capture", refuse)


def _filled(*args, table: str = "conns", **kwargs):
    """A read that makes `table` and waits until the cache holds it (Capture.warnings
    waits for the tables being written)."""
    cap = tcpsift.read(*args, **kwargs)
    getattr(cap, table)
    assert not [w for w in cap.warnings if w.startswith("cache:")]
    return cap


def _entry(folder: Path) -> Path:
    (entry,) = [p for p in folder.iterdir() if p.is_dir()]
    return entry


def test_second_read_comes_from_the_cache(capture, folder, monkeypatch):
    reference = _fresh(capture)
    first = tcpsift.read(capture, cache=folder)
    _same_tables(first, reference)        # (and every table is stored)
    assert first.warnings == []           # (once written)
    assert sorted(p.name for p in _entry(folder).glob("*.parquet")) == \
        sorted(f"{t}.parquet" for t in TABLES)
    monkeypatch.setattr(capture_module, "_read_capture", None)   # no decoding possible
    second = tcpsift.read(capture, cache=folder)
    _same_tables(second, reference)
    assert second.frame_bytes(3) == reference.frame_bytes(3)
    assert second.payload(3) == reference.payload(3)
    assert second.warnings == reference.warnings == []


def test_columns_are_read_from_the_cache(capture, folder, monkeypatch):
    columns = ["src", "dport", "tcp_flags"]
    reference = tcpsift.read(capture, columns=columns, cache=False)
    first = tcpsift.read(capture, columns=columns, cache=folder)
    assert_frame_equal(first.packets, reference.packets)
    monkeypatch.setattr(capture_module, "_read_capture", None)
    second = tcpsift.read(capture, columns=columns, cache=folder)
    assert_frame_equal(second.packets, reference.packets)


def test_several_files_and_modes(tmp_path, folder):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    shutil.copyfile(SAMPLE, a)
    shutil.copyfile(LAB_PCAPNG if LAB_PCAPNG.exists() else SAMPLE, b)
    for mode in ("merge", "concat"):
        _filled([a, b], mode=mode, cache=folder, table="conns")
        cached = tcpsift.read([a, b], mode=mode, cache=folder)
        _same_tables(cached, tcpsift.read([a, b], mode=mode, cache=False))
    # b alone is file 0; b read second with "separate" is file 1, from the same entry
    _filled(b, cache=folder, table="tcp")
    separate = tcpsift.read([a, b], mode="separate", cache=folder)
    reference = tcpsift.read([a, b], mode="separate", cache=False)
    for got, want in zip(separate, reference):
        _same_tables(got, want)
    assert set(separate[1].packets["file_id"]) == {1}


@pytest.mark.parametrize("change", ["size", "mtime", "content"])
def test_a_changed_capture_is_read_again(capture, folder, change):
    _filled(capture, cache=folder, table="conns")
    data = bytearray(capture.read_bytes())
    stat = capture.stat()
    if change == "size":        # one frame fewer
        shutil.copyfile(SAMPLE, capture)
        data = data[:-60]
        capture.write_bytes(data)
    elif change == "mtime":
        os.utime(capture, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    else:                       # the first frame's timestamp, same size, same mtime
        data[24] ^= 0x01
        capture.write_bytes(data)
        os.utime(capture, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    got = tcpsift.read(capture, cache=folder)
    _same_tables(got, _fresh(capture))
    assert got.warnings == _fresh(capture).warnings   # replaced quietly
    # and the replaced entry serves the next read
    again = tcpsift.read(capture, cache=folder)
    assert again._tables["packets"] is None
    _same_tables(again, got)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)


@pytest.mark.parametrize("damage", [_truncate, _edit, Path.unlink], ids=["truncated", "edited",
                                                                          "missing"])
@pytest.mark.parametrize("table", TABLES)
def test_a_damaged_table_is_reported_and_rebuilt(capture, folder, damage, table):
    _filled(capture, cache=folder, table="conns")
    damage(_entry(folder) / f"{table}.parquet")
    got = tcpsift.read(capture, cache=folder)
    _same_tables(got, _fresh(capture))
    notes = [w for w in got.warnings if w.startswith("cache:")]
    assert len(notes) == 1 and f"{table}.parquet" in notes[0] and "rebuilt" in notes[0]
    assert "\n" not in notes[0]
    # rebuilt: the next read finds it intact
    again = tcpsift.read(capture, cache=folder)
    _same_tables(again, got)
    assert again.warnings == []


def test_damaged_metadata_is_reported_and_rebuilt(capture, folder):
    _filled(capture, cache=folder, table="conns")
    (_entry(folder) / "entry.json").write_text('{"identity": [')
    got = tcpsift.read(capture, cache=folder)
    _same_tables(got, _fresh(capture))
    assert any("entry.json" in w and "rebuilt" in w for w in got.warnings)
    assert tcpsift.read(capture, cache=folder).warnings == []


def _conns_csv(capture: Path, *options: str, wrapper=()) -> subprocess.CompletedProcess:
    return subprocess.run([*wrapper, sys.executable, "-m", "tcpsift", "conns", str(capture),
                           "--format", "csv", *options], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_two_processes_fill_one_entry_at_once(capture, folder):
    expected = _conns_csv(capture, "--no-cache").stdout
    runs = [subprocess.Popen([sys.executable, "-m", "tcpsift", "conns", str(capture),
                              "--format", "csv", "--cache", str(folder)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert out == expected and err == ""
    entry = _entry(folder)
    assert not [p for p in entry.iterdir() if p.name.startswith(".")]   # nothing half-written
    for table in TABLES:
        record = json.loads((entry / f"{table}.json").read_text())
        data = (entry / f"{table}.parquet").read_bytes()
        assert (len(data), zlib.crc32(data)) == (record["bytes"], record["crc32"])
    assert _conns_csv(capture, "--cache", str(folder)).stdout == expected


@pytest.mark.slow
def test_a_cache_folder_that_cannot_be_written(capture, tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    expected = _conns_csv(capture, "--no-cache").stdout
    wrapper: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # root writes in any folder whatever its mode: the folder is made read-only
        # for the command by a read-only bind mount in a mount namespace of its own
        if not shutil.which("unshare"):
            pytest.skip("needs unshare(1) to make a folder read-only for root")
        wrapper = ("unshare", "--mount", "sh", "-c",
                   'mount --bind -o ro "$0" "$0" || exit 99; exec "$@"', str(folder))
    else:
        folder.chmod(0o555)
    try:
        run = _conns_csv(capture, "--cache", str(folder), wrapper=wrapper)
    finally:
        folder.chmod(0o755)
    if run.returncode == 99:
        pytest.skip(f"no read-only bind mount here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected
    (line,) = run.stderr.splitlines()
    assert line.startswith("tcpsift: warning: cache: cannot write to ")
    assert "working without the cache" in line
    assert not list(folder.iterdir())


def test_cli_cache_options_and_environment(capture, tmp_path):
    runner = CliRunner()
    env_folder, option_folder = tmp_path / "env", tmp_path / "option"
    env = {"TCPSIFT_CACHE": str(env_folder)}
    res = runner.invoke(cli, ["conns", str(capture), "--format", "csv"], env=env)
    assert res.exit_code == 0 and list(env_folder.iterdir())
    res = runner.invoke(cli, ["conns", str(capture), "--cache", str(option_folder)], env=env)
    assert res.exit_code == 0 and list(option_folder.iterdir())
    shutil.rmtree(env_folder)
    res = runner.invoke(cli, ["conns", str(capture), "--no-cache"], env=env)
    assert res.exit_code == 0 and not env_folder.exists()
    # ls: the entry, its tables, its size against the capture's; clear empties it
    res = runner.invoke(cli, ["cache", "ls", "--cache", str(option_folder)])
    assert res.exit_code == 0
    head, line = res.output.splitlines()
    assert head.startswith(f"{option_folder}: 1 entry, ")
    assert str(capture) in line and "[packets,layers,tcp,conns]" in line
    assert f"of {capture.stat().st_size / 1000:,.1f} KB" in line
    res = runner.invoke(cli, ["cache", "clear", "--cache", str(option_folder)])
    assert res.exit_code == 0 and "removed 1 entry" in res.output
    assert not list(option_folder.iterdir())
    res = runner.invoke(cli, ["cache", "ls"], env={"TCPSIFT_CACHE": "off"})
    assert res.exit_code == 2 and "the cache is off" in res.output


COMMANDS = [
    ["conns", "{f}", "--format", "csv"],
    ["conns", "{f}", "--where", "stream = 1"],
    ["ladder", "{f}", "--stream", "0"],
    ["ladder", "{f}", "--frame", "5", "--format", "csv"],
    ["plot", "{f}", "window", "--stream", "0", "-o", "{out}.png"],
    ["report", "{f}", "-o", "{out}.html"],
    ["sql", "SELECT count(*) AS n FROM packets WHERE tcp_flags & 2 = 2", "{f}"],
    ["export", "{f}", "--stream", "1", "-o", "{out}.pcap"],
    ["diagnose", "{f}", "--format", "json"],
    # a filter the streamed way cannot evaluate (TABLE_WAY_FILTER): printed from the
    # cache's tables (which a first fields run does not fill: it streams the capture)
    ["fields", "{f}", "-e", "frame.number", "-e", "ip.flags.df", "-e", "tcp.port",
     "-e", "frame.interface_id", "-e", "frame.time_delta_displayed",
     "-Y", "tcp.window_size_scalefactor == 128 or tcp.analysis.ack_rtt > 0.0001"],
]
TABLE_WAY_FILTER = "tcp.window_size_scalefactor == 128 or tcp.analysis.ack_rtt > 0.0001"


def test_the_fields_case_takes_the_table_way():
    from tcpsift.textstream.fields import fast_path

    # (if it no longer does, pick a filter that does for the test above)
    assert not fast_path(["frame.number"], TABLE_WAY_FILTER)[0]


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_reads_the_cache(capture, folder, tmp_path, monkeypatch, command):
    """Each command's second run reads nothing but the cache, and says the same."""
    runner = CliRunner()
    args = [a.format(f=capture, out=tmp_path / "out") for a in command]

    def run(cache):
        res = runner.invoke(cli, args, env={"TCPSIFT_CACHE": cache})
        assert res.exit_code == 0, res.output
        return res.output, [p.read_bytes() for p in sorted(tmp_path.glob("out.*"))]

    uncached = run("off")
    first = run(str(folder))
    if command[0] == "fields":
        _filled(capture, cache=folder, table="tcp")
    monkeypatch.setattr(capture_module, "_read_capture", None)   # no decoding possible
    monkeypatch.setattr(textstream_fields, "stream_fields", None)
    second = run(str(folder))
    assert second[0] == first[0] == uncached[0]
    if command[0] in ("export", "plot"):    # (a report holds the time it was made)
        assert second[1] == first[1] == uncached[1]


def test_sql_reads_the_cache_files_and_nothing_else(capture, folder):
    from tcpsift.workflow.sql import SqlError

    queries = ["SELECT src, count(*) AS n FROM packets GROUP BY src ORDER BY n DESC, src",
               "SELECT min(time) AS t, max(ts_ns) AS ns FROM packets",
               "SELECT c.uid, count(*) AS n FROM conns c JOIN tcp t USING (stream) "
               "GROUP BY c.uid ORDER BY c.uid",
               "SELECT kind, count(*) AS n FROM layers GROUP BY kind ORDER BY kind"]
    uncached = _fresh(capture)
    cached = tcpsift.read(capture, cache=folder)
    for query in queries:
        assert_frame_equal(cached.sql(query), uncached.sql(query))
    assert cached.cached_file("packets") is not None     # DuckDB read the cache's file
    other = folder.parent / "other.parquet"     # any file but the views' own
    shutil.copyfile(_entry(folder) / "tcp.parquet", other)
    for escape in ("SELECT * FROM read_csv('/etc/passwd')",
                   f"SELECT count(*) FROM packets, read_parquet('{other}')",
                   "COPY (SELECT 1) TO '/tmp/x.csv'", "SET enable_external_access = true"):
        with pytest.raises(SqlError):
            cached.sql(escape + ("; SELECT count(*) FROM packets" if "SET" in escape else ""))


def test_the_least_recently_used_entries_go_past_the_size_limit(tmp_path, folder, monkeypatch):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"t{i}.pcap")
        shutil.copyfile(SAMPLE, paths[-1])
    # (file times tick every few ms: the steps are apart)
    _filled(paths[0], cache=folder)
    one = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    time.sleep(0.05)
    _filled(paths[1], cache=folder)
    time.sleep(0.05)
    _filled(paths[0], cache=folder)         # t0 used again: t1 is now the oldest
    time.sleep(0.05)
    monkeypatch.setenv("TCPSIFT_CACHE_SIZE", str(int(one * 2.5)))
    _filled(paths[2], cache=folder)
    res = CliRunner().invoke(cli, ["cache", "ls", "--cache", str(folder)])
    held = [line.split()[-1] for line in res.output.splitlines()[1:]]
    assert held == [str(paths[2]), str(paths[0])]
    assert f"(at most {one * 2.5 / 1000:,.1f} KB: TCPSIFT_CACHE_SIZE)" in res.output


def test_the_size_limit_is_kept_once_per_batch_of_writes(capture, folder, monkeypatch):
    """The tables stored together (a read's packets and layers, a TCP analysis made
    meanwhile) make one pass over the folder when the last is written, not one each."""
    import threading

    from tcpsift.cache import entry as entry_module
    from tcpsift.cache import folder as folder_module

    calls, release = [], threading.Event()
    write_files = entry_module.CacheEntry._write_files
    make_room = folder_module.make_room

    def held(self, part, table):
        release.wait(10)
        write_files(self, part, table)

    monkeypatch.setattr(entry_module.CacheEntry, "_write_files", held)
    monkeypatch.setattr(folder_module, "make_room",
                        lambda *a, **k: calls.append(make_room(*a, **k)))
    cap = tcpsift.read(capture, cache=folder)
    assert cap.tcp.height
    release.set()
    assert not [w for w in cap.warnings if w.startswith("cache:")]
    assert len(calls) == 1
    assert cap.conns.height     # stored alone: a batch of its own
    assert not cap.warnings
    assert len(calls) == 2
    assert sorted(p.name for p in _entry(folder).glob("*.parquet")) == [
        f"{t}.parquet" for t in sorted(TABLES)]


@pytest.mark.parametrize("text, size", [("5GB", 5 * 10**9), ("500 mb", 5 * 10**8),
                                        ("1.5GiB", int(1.5 * 2**30)), ("12345", 12345),
                                        ("nonsense", 20 * 10**9), ("", 20 * 10**9)])
def test_size_limit_texts(monkeypatch, text, size):
    from tcpsift.cache import size_limit

    monkeypatch.setenv("TCPSIFT_CACHE_SIZE", text)
    assert size_limit() == size


def test_scan_queries_the_cached_table(capture, folder, monkeypatch):
    import polars as pl

    from tcpsift.capture import lazy

    def query(frame):
        return (frame.filter((pl.col("tcp_len") > 0) | pl.col("udp_len").is_not_null())
                .select("frame", "time", "src", "dport").head(40))

    expected = query(tcpsift.scan(capture, cache=False)).collect()
    assert query(tcpsift.scan(capture, cache=folder)).collect().equals(expected)
    assert not folder.exists()          # a scan fills nothing
    _filled(capture, cache=folder)
    monkeypatch.setattr(lazy, "CaptureChunks", None)    # no decoding possible
    report = tcpsift.ScanReport()
    got = query(tcpsift.scan(capture, cache=folder, report=report)).collect()
    assert_frame_equal(got, expected)
    assert report.warnings == [] and report.complete
    batches = list(tcpsift.scan(capture, cache=folder).collect_batches(chunk_size=50))
    assert_frame_equal(pl.concat(batches), _fresh(capture).packets)


def test_a_command_run_in_process_leaves_the_setting_as_it_was(capture, folder):
    before = os.environ.get("TCPSIFT_CACHE")
    for option in (["--cache", str(folder)], ["--no-cache"]):
        res = CliRunner().invoke(cli, ["conns", str(capture), *option])
        assert res.exit_code == 0
        assert os.environ.get("TCPSIFT_CACHE") == before


def test_tables_of_other_code_are_not_read_back(capture, folder, monkeypatch):
    """A changed install (an edited module, a rebuilt kernel) keys other entries."""
    from tcpsift.cache import identity

    _filled(capture, cache=folder)
    monkeypatch.setattr(identity, "code_digest", lambda: "other code")
    again = tcpsift.read(capture, cache=folder)
    assert again._tables["packets"] is not None     # decoded, not read back
    _same_tables(again, _fresh(capture))
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 2
