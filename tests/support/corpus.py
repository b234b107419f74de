"""The capture files of the shared corpus that a test walks (beside the clone, or
$TCPSIFT_SHARED), with the repository's sample when none is there."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TCPSIFT_SHARED", REPO.parent / "shared"))
SAMPLE = REPO / "samples" / "sample.pcap"
NOT_CAPTURES = (".md", ".tsv", ".json", ".txt", ".py", ".sh")


def capture_files(*dirs: str) -> list[Path]:
    """Every capture under SHARED/dir for each dir (e.g. "captures/public", "lab"),
    sorted; [SAMPLE] when there is none."""
    found = sorted(p for d in dirs if (SHARED / d).is_dir() for p in (SHARED / d).rglob("*")
                   if p.is_file() and p.suffix not in NOT_CAPTURES)
    return found or [SAMPLE]
