"""`tcpsift fields` prints tshark's TCP analysis fields byte for byte, on every capture of
the corpus (../shared/captures/public and ../shared/lab/captures).

Like test_fields_vs_tshark.py (same harness, same known_differences.toml), for the fields
that need the TCP analysis: tcp.stream, relative seq/ack/nxtseq, scaled windows, relative
times and every tcp.analysis.* field, plus the relative SACK edges. tcpsift's side runs
the `tcpsift fields` command itself (Click's runner, in process), so the CLI's own path
(it reads only the packet columns the fields need) is the one compared. Lab captures are
named "lab/<file>" in known_differences.toml. tshark's output is cached (see harness.py).
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import (
    READ,
    Diff,
    captures,
    compare,
    corpus,
    fail_on_undocumented,
    known_differences,
    tshark_fields,
    tshark_version,
)
from support.tcp_conformance import FIELDS as REFERENCE_FIELDS  # noqa: E402

# the reference's fields (tests/support/tcp_conformance.py), plus those only the CLI prints,
# and the frame and Ethernet fields the classic per-packet script reads with them
TCP_FIELDS = ["frame.number", *REFERENCE_FIELDS, "tcp.time_delta", "tcp.analysis.push_bytes_sent",
              "tcp.options.sack_le", "tcp.options.sack_re", "frame.time_relative",
              "frame.time_delta", "frame.time_delta_displayed", "eth.src", "eth.dst",
              "eth.type", "tcp.flags.str", "tcp.options.wscale.shift"]

LAB = Path(os.environ.get("TCPSIFT_LAB") or corpus().parent.parent / "lab" / "captures")


def _all() -> list[tuple[str, Path]]:
    """(name, root): public captures by their path, lab captures as lab/<path>."""
    out = [(c, corpus()) for c in captures()]
    if LAB.is_dir():
        out += [("lab/" + c, LAB) for c in captures(LAB) if not c.endswith(".json")]
    return out


CAPTURES = _all()
KNOWN = known_differences()

pytestmark = [
    pytest.mark.skipif(tshark_version() is None, reason="tshark is not installed (the oracle)"),
    pytest.mark.skipif(not CAPTURES, reason=f"capture corpus not found at {corpus()}"),
]


def _path(name: str, root: Path) -> Path:
    return root / (name[4:] if name.startswith("lab/") else name)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    if CAPTURES and tshark_version():
        with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            list(pool.map(lambda c: tshark_fields(_path(*c), TCP_FIELDS), CAPTURES))


@pytest.mark.parametrize("tcp_capture,root", CAPTURES or [("<none>", Path("."))],
                         ids=[c for c, _ in CAPTURES] or ["<none>"])
def test_tcp_fields_match_tshark(tcp_capture, root):
    capture = tcp_capture   # (not "capture": conftest.py warms the header-field cache for those)
    from tcpsift.cli.main import cli

    path = _path(capture, root)
    rc, theirs = tshark_fields(path, TCP_FIELDS)
    res = CliRunner().invoke(cli, ["fields", str(path), *[x for f in TCP_FIELDS
                                                          for x in ("-e", f)]])
    if res.exit_code == 2:
        diffs = [Diff(capture, 0, READ, f"tshark exit {rc}", res.output.strip())]
    else:
        _, diffs = compare(capture, theirs, res.stdout_bytes, TCP_FIELDS)
    fail_on_undocumented(capture, diffs, KNOWN)
