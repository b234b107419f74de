import sys
from pathlib import Path

import pytest

# harness.py sits next to the tests; scripts/conformance_report.py imports it too
sys.path.insert(0, str(Path(__file__).parent))

import harness  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _tshark_cache(request):
    """Fill the tshark cache for the selected captures on all cores before the tests run
    (one tshark at a time would take twice as long on a cold cache)."""
    caps = [item.callspec.params["capture"] for item in request.session.items
            if item.fspath.dirname == str(Path(__file__).parent)
            and "capture" in getattr(getattr(item, "callspec", None), "params", {})]
    if caps and harness.tshark_version() and harness.corpus().is_dir():
        harness.warm_cache(sorted(set(caps)))


def pytest_collection_modifyitems(config, items):
    """Every test here runs tshark over the capture corpus: the slow tier (the quick
    tier, `-m 'not slow'`, is what a developer runs after each change)."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.slow)
