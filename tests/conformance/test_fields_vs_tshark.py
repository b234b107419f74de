"""`tcpsift fields` prints what `tshark -T fields` prints, on every capture of the corpus.

Every differing cell must be listed in known_differences.toml (and explained in
docs/conformance.md); anything else fails. Differences listed there as decoder bugs
(kind = "decoder") make the capture xfail until the decoder is fixed. tshark output is
cached (see harness.py), so only the first run pays for tshark.
"""
from __future__ import annotations

import pytest
from harness import captures, corpus, covering, fail_on_undocumented, known_differences, run, tshark_version

KNOWN = known_differences()
CAPTURES = captures()

pytestmark = [
    pytest.mark.skipif(tshark_version() is None, reason="tshark is not installed (the oracle)"),
    pytest.mark.skipif(not CAPTURES, reason=f"capture corpus not found at {corpus()} "
                                            "(set TCPSIFT_CORPUS)"),
]


def test_tshark_is_the_reference_version():
    assert "4.0." in tshark_version(), f"expected tshark 4.0.x, found {tshark_version()}"


@pytest.mark.parametrize("capture", CAPTURES or ["<none>"])
def test_fields_match_tshark(capture):
    _, diffs = run(capture)
    # the frame count and readability are never "known" differences
    fail_on_undocumented(capture, diffs, KNOWN)
    bugs = {covering(d, KNOWN).reason for d in diffs if covering(d, KNOWN).kind == "decoder"}
    if bugs:
        pytest.xfail("decoder bug (notes/fields-conformance.md): " + " | ".join(sorted(bugs)))
