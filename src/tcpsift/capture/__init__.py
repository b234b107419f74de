"""The container layer and the Capture object: the only part of tcpsift that opens files."""
from tcpsift.capture.capture import Capture, read

__all__ = ["Capture", "read"]
