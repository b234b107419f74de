"""What several capture files become: `tcpsift.read(files, mode=...)` and the CLI's
`--mode`. Plain data, so that the CLI can say it without importing NumPy or Polars."""
from __future__ import annotations

MODES = {
    "merge": "by timestamp, like mergecap",
    "concat": "one after the other, in the order given",
    "separate": "one capture per file",
}
DEFAULT_MODE = "merge"


def describe(n_files: int, mode: str) -> str:
    """One line: how `n_files` files were read, e.g. '2 files read as one capture
    (merge: by timestamp, like mergecap)'."""
    captures = f"{n_files} captures" if mode == "separate" else "one capture"
    return f"{n_files} files read as {captures} ({mode}: {MODES[mode]})"
