"""The capture files a reader is given: one path or several, as a list of strings.
(No NumPy, no decoder: a read served from the cache imports neither.)"""
from __future__ import annotations

import os

_PATH_TYPES = "a path (str, bytes or os.PathLike) or a list of paths"


def _one_path(p) -> str:
    if isinstance(p, (str, bytes, os.PathLike)):
        return os.fsdecode(p)       # (bytes: the file system's encoding, as open() takes them)
    if hasattr(p, "read"):
        name = getattr(p, "name", None)
        hint = f" (this one's name: {name!r})" if isinstance(name, (str, bytes)) else ""
        raise TypeError(f"tcpsift reads capture files by path, not from a file object: "
                        f"pass its path{hint}, or '-' for standard input")
    raise TypeError(f"a capture file is {_PATH_TYPES}, not {type(p).__name__}")


def capture_paths(paths) -> list[str]:
    """One path or several, as a list of strings: each a str, bytes or os.PathLike.
    A file object is refused (iterating it would give its lines as paths)."""
    if isinstance(paths, (str, bytes, os.PathLike)) or hasattr(paths, "read"):
        return [_one_path(paths)]
    try:
        items = list(paths)
    except TypeError:
        raise TypeError(f"a capture file is {_PATH_TYPES}, not {type(paths).__name__}") from None
    if not items:
        raise ValueError("no capture file given")
    return [_one_path(p) for p in items]
