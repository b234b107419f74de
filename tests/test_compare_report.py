"""`tcpsift compare A B -o report.html`: one self-contained page with the plots."""
from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_compare import LAB, cli_compare, needs_lab  # noqa: E402


@needs_lab
@pytest.mark.slow
def test_html_report_is_self_contained_with_the_truths_losses(tmp_path):
    out = tmp_path / "report.html"
    result = cli_compare(LAB / "twopoint-lossy-a.pcap", LAB / "twopoint-lossy-b.pcap", "-o", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # nothing fetched: no external script, style, image or frame
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page
    # two plots, inline SVG: the delay and the losses over time
    assert page.count("<svg") == 2
    assert "One-way delay between a and b" in page
    truth = json.loads((LAB / "twopoint-lossy.truth.json").read_text())["expected"]
    lost = sum(d["lost_between_points"] for d in truth["per_direction"].values())
    assert f"Packets lost between a and b over time ({lost:,} in all)" in page
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert f"verdict: {truth['verdict']}" in text
    for d, facts in truth["per_direction"].items():
        name = {"c2s": "client-to-server", "s2c": "server-to-client"}[d]
        assert f"{name}: {facts['lost_between_points']} of " in text


@needs_lab
@pytest.mark.slow
def test_html_report_draws_with_matplotlibs_object_api_only(tmp_path):
    out = tmp_path / "report.html"
    code = ("import sys; from tcpsift.cli.main import cli; "
            "sys.argv = ['tcpsift', 'compare', *sys.argv[1:]]\n"
            "try:\n    cli()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
            "assert 'matplotlib' in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(LAB / "twopoint-offset-a.pcap"),
                    str(LAB / "twopoint-offset-b.pcap"), "-o", str(out)], check=True)
    assert out.read_text().count("<svg") == 2
