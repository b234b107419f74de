"""The FILE arguments of the commands: capture files (or - for standard input)."""
from __future__ import annotations

import errno
import os

import click

from tcpsift.cli.common import fail


class CaptureFile(click.ParamType):
    """A capture file argument. A directory is refused the way every other file that
    cannot be read as a capture is, in one line before anything is read
    (`tcpsift: PATH: Is a directory`, exit 2), not with Click's usage text; whether
    the file exists and is a capture, the reading says (tcpsift.CaptureError)."""

    name = "file"

    def convert(self, value, param, ctx):
        if value != "-" and os.path.isdir(value):
            fail(f"{value}: {os.strerror(errno.EISDIR)}")
        return value


CAPTURE_FILE = CaptureFile()
