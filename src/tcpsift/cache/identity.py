"""What makes a cache entry the entry of a capture: the files' identity.

An entry's name comes from the files' real paths, how several files are read (the
mode), the schema version, tcpsift's version and a digest of its code as installed
(code_digest): the same files read the same way by the same tcpsift always find the
same entry, and tables made by other code (a changed or rebuilt install) are never
read back. The identity stored in the entry (each
file's size, modification time and a digest of its first and last 64 KiB) says whether
the files are still what the tables were made from; when they changed, the entry is
stale and replaced.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from tcpsift.schema import SCHEMA_VERSION

# bytes digested at each end of a file: a capture that changed in place (rewritten,
# appended to, truncated) differs there; a full digest of a 100 GB capture would cost
# as much as reading it
END_BYTES = 1 << 16


@functools.cache
def code_digest() -> str:
    """A digest of tcpsift's own code as installed (each module's and compiled kernel's
    path, size and modification time): tables made by other code, an editable install
    changed since, a rebuilt kernel, are in other entries. Stat calls only (~1 ms)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".so", ".pyd"):
            st = path.stat()
            digest.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()


def tcpsift_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tcpsift")
    except PackageNotFoundError:    # (run from a source tree)
        return "0+unknown"


def file_identity(path: str) -> dict:
    """The file's real path, size, modification time (ns) and the digest of its ends.
    Raises OSError when it cannot be read."""
    real = os.path.realpath(path)
    with open(real, "rb") as fh:
        st = os.fstat(fh.fileno())
        digest = hashlib.blake2b(str(st.st_size).encode(), digest_size=16)
        digest.update(os.pread(fh.fileno(), END_BYTES, 0))
        if st.st_size > END_BYTES:
            tail = max(END_BYTES, st.st_size - END_BYTES)
            digest.update(os.pread(fh.fileno(), st.st_size - tail, tail))
    return {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "digest": digest.hexdigest()}


def entry_name(paths: list[str], mode: str) -> str:
    """The name of the entry of `paths` read in `mode` (the mode of one file is moot)."""
    key = {"paths": [os.path.realpath(p) for p in paths],
           "mode": mode if len(paths) > 1 else None,
           "schema": SCHEMA_VERSION, "tcpsift": tcpsift_version(), "code": code_digest()}
    return hashlib.blake2b(json.dumps(key, sort_keys=True).encode(),
                           digest_size=16).hexdigest()


def identity_digest(identity: list[dict]) -> str:
    """One text for a list of file identities (a part's tables belong to it)."""
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(),
                           digest_size=16).hexdigest()
