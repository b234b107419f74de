import sys
from pathlib import Path

# harness.py sits next to the tests; scripts/conformance_report.py imports it too
sys.path.insert(0, str(Path(__file__).parent))
