"""`tcpsift compare A B C`: three points in path order, built from a real capture
(samples/sample.pcap) with loss injected on the path's second segment only."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import capreader, capwriter  # noqa: E402
from test_compare import CLIENTS, SAMPLE, cli_compare, ip_source, is_tcp  # noqa: E402

MS = 1_000_000


def three_points(tmp_path: Path) -> tuple[list[Path], int, int]:
    """a at the client's side, b in the middle, c at the server's side, 1 ms apart each way.
    Between b and c, every 7th TCP frame is dropped: a client packet then never reaches c,
    a server packet never reaches b (nor a). Returns the paths and the numbers dropped
    (client to server, server to client)."""
    frames = capreader.read_frames(SAMPLE)
    tcp = [i for i, f in enumerate(frames) if is_tcp(f.data)]
    dropped = set(tcp[3:-1:7])
    from_client = {i for i in dropped if ip_source(frames[i].data) in CLIENTS}
    from_server = dropped - from_client

    def point(name: str, c2s_ns: int, s2c_ns: int, missing: set) -> Path:
        records = [capwriter.Record(f.ts_ns + (c2s_ns if ip_source(f.data) in CLIENTS
                                               else s2c_ns), f.data, f.wire_len)
                   for i, f in enumerate(frames) if is_tcp(f.data) and i not in missing]
        path = tmp_path / f"{name}.pcap"
        path.write_bytes(capwriter.pcap_file(sorted(records, key=lambda r: r.ts_ns), nsec=True))
        return path
    paths = [point("a", 0, 2 * MS, from_server), point("b", MS, MS, from_server),
             point("c", 2 * MS, 0, from_client)]
    return paths, len(from_client), len(from_server)


def test_loss_on_the_second_segment_is_placed_there(tmp_path):
    import tcpsift

    paths, lost_c2s, lost_s2c = three_points(tmp_path)
    assert lost_c2s and lost_s2c
    got = tcpsift.compare(*paths)
    table = {(r["segment"], r["direction"]): r for r in got.per_segment.iter_rows(named=True)}
    assert set(table) == {("a-b", "c2s"), ("a-b", "s2c"), ("b-c", "c2s"), ("b-c", "s2c")}
    for d in ("c2s", "s2c"):
        first = table[("a-b", d)]
        assert first["lost_between_points"] == 0 and first["matched"] == first["sent"]
        assert first["delay_median_ms"] == 1.0
    assert table[("b-c", "c2s")]["lost_between_points"] == lost_c2s
    assert table[("b-c", "s2c")]["lost_between_points"] == lost_s2c
    # the upstream point of each direction follows the path: a, b for c2s; c, b for s2c
    assert [table[(s, "c2s")]["upstream"] for s in ("a-b", "b-c")] == ["a", "b"]
    assert [table[(s, "s2c")]["upstream"] for s in ("a-b", "b-c")] == ["b", "c"]
    assert got.verdict == "network"
    assert got.evidence[0].startswith("network: segment b-c")
    assert "clean: segment a-b" in got.evidence[0] and "segment a-b," not in got.evidence[0]
    assert not got.warnings


def test_cli_three_points_text_and_json(tmp_path):
    paths, lost_c2s, lost_s2c = three_points(tmp_path)
    text = cli_compare(*paths)
    assert text.exit_code == 0, text.output
    assert "verdict: network" in text.stdout
    assert f"b-c: client-to-server: {lost_c2s} of " in text.stdout
    result = cli_compare(*paths, "--format", "json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert list(got["points"]) == ["a", "b", "c"]
    second = got["segments"][1]
    assert (second["from"], second["to"]) == ("b", "c")
    assert second["per_direction"]["c2s"]["lost_between_points"] == lost_c2s
    assert second["per_direction"]["s2c"]["upstream"] == "c"
    assert got["segments"][0]["per_direction"]["c2s"]["lost_between_points"] == 0


def test_points_out_of_path_order_are_warned_about(tmp_path):
    import tcpsift

    (a, b, c), _, _ = three_points(tmp_path)
    got = tcpsift.compare(b, a, c)      # a is not between b and c
    assert any("path order" in w for w in got.warnings)


def test_cli_one_capture_is_one_line_exit_2():
    result = cli_compare(SAMPLE)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tcpsift: ")


@pytest.mark.slow
def test_cli_three_points_report_page_has_each_segments_plots(tmp_path):
    paths, lost_c2s, lost_s2c = three_points(tmp_path)
    out = tmp_path / "path.html"
    result = cli_compare(*paths, "-o", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("<svg") == 4
    assert "Packets lost between a and b over time (0 in all)" in page
    assert f"Packets lost between b and c over time ({lost_c2s + lost_s2c:,} in all)" in page


def _translated(path: Path, nat: dict) -> Path:
    """`path` as a point behind a NAT sees it: the client's addresses rewritten."""
    import ipaddress

    frames = capreader.read_frames(path)
    for f in frames:
        for old, new in nat.items():
            f.data = f.data.replace(ipaddress.ip_address(old).packed,
                                    ipaddress.ip_address(new).packed)
    out = path.with_name(path.stem + "-nat.pcap")
    out.write_bytes(capwriter.pcap_file([capwriter.Record(f.ts_ns, f.data, f.wire_len)
                                         for f in frames], nsec=True))
    return out


@pytest.mark.parametrize("behind", ("b", "c"))
def test_nat_on_a_path_of_three_points(tmp_path, behind):
    # the NAT sits before b (b and c see the translated client) or before c (only c does);
    # the same rules serve either way, and the loss is still placed on b-c
    from test_compare import NAT

    import tcpsift

    (a, b, c), lost_c2s, lost_s2c = three_points(tmp_path)
    if behind == "b":
        b = _translated(b, NAT)
    c = _translated(c, NAT)
    rules = [f"{x}={y}" if ":" not in x else f"[{x}]=[{y}]" for x, y in NAT.items()]
    # without the rules, nothing matches across the translation
    plain = tcpsift.compare(a, b, c).per_segment
    crossing = "a-b" if behind == "b" else "b-c"
    assert plain.filter(plain["segment"] == crossing)["matched"].sum() == 0
    got = tcpsift.compare(a, b, c, nat=rules)
    table = {(r["segment"], r["direction"]): r for r in got.per_segment.iter_rows(named=True)}
    for d in ("c2s", "s2c"):
        assert table[("a-b", d)]["lost_between_points"] == 0
        assert table[("a-b", d)]["matched"] == table[("a-b", d)]["sent"] > 0
    assert table[("b-c", "c2s")]["lost_between_points"] == lost_c2s
    assert table[("b-c", "s2c")]["lost_between_points"] == lost_s2c
    assert got.evidence[0].startswith("network: segment b-c")


def test_cli_nat_on_a_path(tmp_path):
    from test_compare import NAT

    (a, b, c), lost_c2s, _ = three_points(tmp_path)
    rules = [f"{x}={y}" if ":" not in x else f"[{x}]=[{y}]" for x, y in NAT.items()]
    args = [a, _translated(b, NAT), _translated(c, NAT), "--format", "json"]
    for rule in rules:
        args += ["--nat", rule]
    result = cli_compare(*args)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["verdict"] == "network"
