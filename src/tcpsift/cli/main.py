"""`tcpsift` entry point.

Subcommands are imported only when they run, so `tcpsift --help` stays fast (no Polars,
no NumPy at start-up).
"""
from __future__ import annotations

import errno
import gc
import importlib
import os
import sys

import click

from tcpsift.cli.common import EXIT_FAILED

# The commands do no linear algebra. NumPy's OpenBLAS otherwise starts a worker thread
# per core at import, which spins for ~0.1 s of CPU: on two cores, time taken from the
# decoding threads. (Set before any subcommand imports NumPy; a user's setting wins.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# command name -> (module, attribute, one-line help)
COMMANDS = {
    "info": ("tcpsift.cli.info_cmd", "info", "Summarise capture files, like capinfos."),
    "fields": ("tcpsift.cli.fields_cmd", "fields", "Print fields per frame, like tshark -T fields."),
    "conns": ("tcpsift.cli.conns_cmd", "conns", "One row per TCP connection (states, times, verdicts)."),
    "ladder": ("tcpsift.cli.ladder_cmd", "ladder", "The packets of one TCP connection as a ladder."),
    "plot": ("tcpsift.cli.plot_cmd", "plot", "Plot one TCP connection: window, tseq, rtt, throughput, ..."),
    "report": ("tcpsift.cli.report_cmd", "report", "One self-contained HTML report of a capture."),
    "compare": ("tcpsift.cli.compare_cmd", "compare", "Two capture points: loss, delay, clocks; network or endpoint?"),
    "diagnose": ("tcpsift.cli.diagnose_cmd", "diagnose", "What limited each TCP connection: window, loss, think, ..."),
    "sql": ("tcpsift.cli.sql_cmd", "sql", "One SQL statement (DuckDB) over packets, tcp, conns, layers."),
    "cache": ("tcpsift.cli.cache_cmd", "cache", "Show or empty the Parquet cache of capture tables."),
    "export": ("tcpsift.cli.export_cmd", "export", "Write chosen frames (streams, frame ranges) to pcap or pcapng."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OSError as e:
            # past Click, which would end a closed pipe with exit 1
            if broken_pipe(e):
                raise ReaderGone from e
            raise

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tcpsift")
def cli():
    """tcpsift: turn packet captures into answers.

    Exit codes: 0 success; 1 output produced but a file was read only up to a
    fault (warning on stderr); 2 nothing read (not a capture, unsupported, usage error).
    """


# The pipelines' threads hand the GIL to each other often (each kernel call releases
# it); with CPython's default switch interval (5 ms) a thread that comes out of a kernel
# can wait that long for a thread running Python code. 0.5 ms cut the wall time of
# `tcpsift fields` with the TCP analysis by ~10 % on the benchmark captures. The setting
# is process-wide, so the command sets it for itself; the library leaves it alone.
SWITCH_INTERVAL = 0.0005


# what a command ends with when its reader closed the pipe (128 + SIGPIPE, like cat)
EXIT_BROKEN_PIPE = 141


class ReaderGone(Exception):
    """Standard output's reader closed the pipe."""


def broken_pipe(error: OSError) -> bool:
    # Polars raises a plain OSError for EPIPE, with the errno only in its message
    return error.errno == errno.EPIPE or "os error 32" in str(error) or "Broken pipe" in str(error)


def main(argv=None):
    _hold_closed_standard_streams()
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Once running, the commands make few Python objects (the work is in arrays), but
    # importing NumPy and Polars makes hundreds of thousands, which the cyclic
    # collector would walk again and again: it runs rarely here (2-3 % of `tcpsift
    # fields`' time on the benchmark captures).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    sys.exit(run(argv))


def _hold_closed_standard_streams() -> None:
    """A standard stream the command was started without (`>&-`) gets /dev/null, so that
    no file the command opens becomes descriptor 0, 1 or 2 (an `-o` file written by
    `print`, a capture read as standard input). Standard output's /dev/null is opened for
    reading: a write to it fails (EBADF) and ends the command as a full disk does, in one
    line with exit 2, while a command writing only to -o FILE runs; a closed standard
    error stays silent; a closed standard input reads as empty."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        held = os.open(os.devnull, os.O_WRONLY if fd == 2 else os.O_RDONLY)
        if held != fd:
            os.dup2(held, fd)
            os.close(held)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))


def run(argv=None) -> int:
    """Run one command; its exit code. Every command ends the same way on an output
    problem: a reader that went away (`| head`) ends it quietly with 141, as SIGPIPE ends
    `cat` (the shell's 128 + 13); a write that fails (a full disk, /dev/full) is one line
    on stderr and exit 2, never a traceback."""
    try:
        try:
            code = cli.main(args=argv, prog_name="tcpsift", standalone_mode=False)
        except SystemExit as e:             # the commands' own exit codes (common.fail)
            code = e.code
        sys.stdout.flush()
    except click.exceptions.Exit as e:   # --help, --version
        code = e.exit_code
    except click.ClickException as e:    # usage errors: Click's own message, exit 2
        e.show()
        code = e.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        code = 130
    except (OSError, ReaderGone) as e:
        # nothing more can reach standard output; the exit's own flush must not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if isinstance(e, ReaderGone) or broken_pipe(e):
            code = EXIT_BROKEN_PIPE
        else:
            where = e.filename or "standard output"
            click.echo(f"tcpsift: {where}: {e.strerror or str(e).strip()}", err=True)
            code = EXIT_FAILED
    return 0 if code is None else code if isinstance(code, int) else 1


if __name__ == "__main__":
    main()
