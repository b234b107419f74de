"""tcpsift: turn packet captures into answers.

    import tcpsift, polars as pl
    cap = tcpsift.read("trace.pcapng")
    cap.packets.filter(pl.col("src") == "192.168.1.137")
"""
from tcpsift.errors import CaptureError

__all__ = ["read", "Capture", "CaptureError"]


def __getattr__(name):
    # Lazy: `import tcpsift` (and so the CLI's start-up) does not import Polars or NumPy.
    if name in ("read", "Capture"):
        from tcpsift import capture

        return getattr(capture, name)
    raise AttributeError(name)
