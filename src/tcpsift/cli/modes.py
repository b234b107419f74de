"""`--mode` for the commands that take several files, and the line that says which
mode was used (only with more than one file: single-file output stays as it is)."""
from __future__ import annotations

import click

from tcpsift.capture.modes import DEFAULT_MODE, MODES, describe


def mode_option(choices=tuple(MODES)):
    """The --mode option (tcpsift.read's modes), limited to `choices`."""
    help_text = "What several FILES become: " + "; ".join(
        f"{m}: {'one capture, files ' if m != 'separate' else ''}{MODES[m]}"
        for m in choices) + "."
    return click.option("--mode", type=click.Choice(list(choices)), default=DEFAULT_MODE,
                        show_default=True, help=help_text)


def announce(files, mode: str) -> None:
    """Say on stderr how several files were read."""
    if len(files) > 1:
        click.echo(f"tcpsift: {describe(len(files), mode)}", err=True)
