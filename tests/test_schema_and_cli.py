"""The schema module is the one source of the column docs; the CLI starts light."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

import tcpsift
from tcpsift import schema

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "sample.pcap"


def test_docs_schema_is_generated_from_the_schema_module():
    assert (ROOT / "docs" / "schema.md").read_text() == schema.markdown(), \
        "docs/schema.md is stale: run python -m tcpsift.schema > docs/schema.md"


def test_tables_have_exactly_the_declared_columns_and_dtypes():
    cap = tcpsift.read(SAMPLE)
    assert dict(cap.packets.schema) == schema.polars_schema()
    assert dict(cap.layers.schema) == schema.polars_schema(schema.LAYER_COLUMNS)


def test_help_imports_neither_polars_nor_numpy():
    code = ("import sys; from tcpsift.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('polars', 'numpy', 'pyarrow', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_info_json_counts_agree_with_the_table(monkeypatch):
    """Small chunks and blocks: the summary is counted while a thread decodes ahead
    (and is helped), over many chunks."""
    from tcpsift.capture import source
    from tcpsift.capture import summary as summary_mod

    monkeypatch.setattr(summary_mod, "CHUNK", 97)
    monkeypatch.setattr(source, "BLOCK_SIZE", 4099)
    out = subprocess.run([sys.executable, "-m", "tcpsift", "info", "--json", str(SAMPLE)],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["counts"] == summary_mod.summarize(str(SAMPLE))["counts"]
    paths = [SAMPLE, *sorted((ROOT.parent / "shared" / "lab" / "captures").glob("*.pcap*"))[:6]]
    for path in paths:
        summary = summary_mod.summarize(str(path))
        cap = tcpsift.read(path)
        pkts = cap.packets
        ip = pl.col("ip_version").is_not_null()
        assert summary["files"][0]["packets"] == len(pkts), path
        assert summary["counts"]["tcp"] == pkts.filter(ip & (pl.col("ip_proto") == 6)).height
        assert summary["counts"]["ipv4"] == pkts.filter(ip & (pl.col("ip_version") == 4)).height
        assert summary["counts"]["ipv6"] == pkts.filter(ip & (pl.col("ip_version") == 6)).height
        assert summary["warnings"] == cap.warnings, path
    assert summary_mod.summarize(str(SAMPLE))["files"][0]["format"] == "pcap"


def test_payload_is_the_tcp_payload_bytes():
    cap = tcpsift.read(SAMPLE)
    row = cap.packets.filter(pl.col("tcp_len") > 0).row(0, named=True)
    payload = cap.payload(row["frame"])
    assert len(payload) == row["tcp_len"]
    frame = cap.frame_bytes(row["frame"])
    assert frame[row["payload_offset"]:row["payload_offset"] + row["tcp_len"]] == payload


def test_column_subset_gives_the_same_values():
    full = tcpsift.read(SAMPLE).packets
    part = tcpsift.read(SAMPLE, columns=["src", "flags", "sack_blocks"])
    assert set(part.packets.columns) >= {"src", "flags", "sack_blocks", "frame"}
    assert part.packets.select(full.columns[:0] + part.packets.columns).equals(
        full.select(part.packets.columns))
    row = part.packets.filter(pl.col("tcp_len") > 0).row(0, named=True)
    assert len(part.payload(row["frame"])) == row["tcp_len"]


def test_chunked_read_equals_one_chunk(monkeypatch):
    """Chunks reuse the decoder's scratch arrays: the table must own its memory."""
    from tcpsift.capture import capture as capmod

    corpus = ROOT.parent / "shared" / "captures" / "public" / "tcp" / "mixed-126-streams.pcap"
    path = corpus if corpus.exists() else SAMPLE
    whole = tcpsift.read(path)
    monkeypatch.setattr(capmod, "CHUNK", 97)
    chunked = tcpsift.read(path)
    assert chunked.packets.equals(whole.packets)
    assert chunked.layers.equals(whole.layers)
    assert chunked.tcp.equals(whole.tcp)
