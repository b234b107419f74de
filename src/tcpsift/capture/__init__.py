"""The container layer and the Capture object: the only part of tcpsift that opens files."""

__all__ = ["Capture", "read"]


def __getattr__(name):
    # Lazy, so that NumPy-only users of this package (tcpsift info) do not import Polars.
    if name in __all__:
        from tcpsift.capture import capture

        return getattr(capture, name)
    raise AttributeError(name)
