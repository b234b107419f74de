"""What limited each TCP connection of one capture: `tcpsift.diagnose(capture)`
(docs/diagnose.md).

Modules, one job each: `timeline` (per packet, the state both senders are in after it),
`window` (zero-window episodes, window dips, the full window), `loss` (lost packets,
retransmissions, timeouts, recovery episodes), `exchanges` (server and client think
times), `shares` (each stretch of time to one class), `diagnosis` (the whole, and its
result).
"""
import sys
import types

from tcpsift.diagnose.diagnosis import DiagnoseError, Diagnosis, diagnose

__all__ = ["diagnose", "Diagnosis", "DiagnoseError"]


class _CallableModule(types.ModuleType):
    # `tcpsift.diagnose` is this package once it is imported, so the package itself
    # answers `tcpsift.diagnose(capture)` (as tcpsift.compare does)
    def __call__(self, source, **options):
        return diagnose(source, **options)


sys.modules[__name__].__class__ = _CallableModule
