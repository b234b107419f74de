"""Errors a user can cause (bad input); everything else is a bug."""


class CaptureError(Exception):
    """A file that cannot be read as a capture at all. str() is one line: 'PATH: what'."""

    def __init__(self, path, message):
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")
