"""Two capture points of the same traffic: `tcpsift.compare(a, b)` (docs/compare.md).

Modules: `points` (one capture's TCP packets and their keys), `nat` (address
translations between the points), `matching` (which packet
is which), `clock` (offset and drift between the capture clocks), `stats` (per direction
and connection: lost, duplicated, reordered, delay), `verdict` (network or endpoint, with
evidence), `comparison` (the whole, and its result), `retrans` (where each retransmission's original
went missing), `windows` (window shrinks seen at one point only), `offload` (TSO/GRO
segments matched by byte range), `path` (more than two points in path order).
"""
import sys
import types

from tcpsift.compare.comparison import CompareError, Comparison, compare

__all__ = ["compare", "Comparison", "CompareError"]


class _CallableModule(types.ModuleType):
    # `tcpsift.compare` is this package once it is imported (the import system sets the
    # attribute), so the package itself answers `tcpsift.compare(a, b)`
    def __call__(self, a, b, *more, **options):
        return compare(a, b, *more, **options)


sys.modules[__name__].__class__ = _CallableModule
