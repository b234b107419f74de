"""The container layer and the Capture object: the only part of tcpsift that opens files."""

__all__ = ["Capture", "read", "scan", "ScanReport"]


def __getattr__(name):
    # Lazy, so that NumPy-only users of this package (tcpsift info) do not import Polars.
    if name in ("Capture", "read"):
        from tcpsift.capture import capture

        return getattr(capture, name)
    if name in ("scan", "ScanReport"):
        from tcpsift.capture import lazy

        return getattr(lazy, name)
    raise AttributeError(name)
