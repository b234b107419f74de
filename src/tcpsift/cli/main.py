"""`tcpsift` entry point.

Subcommands are imported only when they run, so `tcpsift --help` stays fast (no Polars,
no NumPy at start-up).
"""
from __future__ import annotations

import gc
import importlib
import os
import sys

import click

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
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

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


def main(argv=None):
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Once running, the commands make few Python objects (the work is in arrays), but
    # importing NumPy and Polars makes hundreds of thousands, which the cyclic
    # collector would walk again and again: it runs rarely here (2-3 % of `tcpsift
    # fields`' time on the benchmark captures).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        cli.main(args=argv, prog_name="tcpsift", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
