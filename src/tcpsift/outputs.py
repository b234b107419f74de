"""Files written whole or not at all: a result goes to a new file beside its target and
replaces the target only once it is complete, so that a failed or interrupted run leaves
nothing half-written and an existing file untouched.

The new file is created with os.open(..., 0o666), so it gets the mode a plain open()
gives under the process's umask, which is read by no one and changed by no one here (a
library must not touch process-wide settings; mkstemp would make it private)."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager


class StagedFile:
    """A new file `temp` beside `path`; commit() renames it over `path`, discard() removes
    it (after a commit, nothing to do)."""

    def __init__(self, path: str):
        self.path = path
        folder, name = os.path.split(os.path.abspath(path))
        while True:
            temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.part")
            try:
                os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                continue
        self.temp = temp

    def commit(self) -> None:
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass


@contextmanager
def replaced(path: str, binary: bool = True, encoding: str | None = None):
    """A file object to write `path`'s new content to; `path` is replaced when the block
    ends without an exception, else left as it was."""
    staged = StagedFile(path)
    try:
        with open(staged.temp, "wb" if binary else "w", encoding=encoding) as fh:
            yield fh
        staged.commit()
    finally:
        staged.discard()
