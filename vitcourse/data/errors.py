"""The errors the data layer raises.  Every message names the file or data set involved
and says how to fix it."""

from __future__ import annotations

from typing import Sequence


class DataError(Exception):
    """Base class: something about the course data sets went wrong."""


class DataFileError(DataError, ValueError):
    """A file in the data folder is there but is not what it must be (truncated, corrupt,
    wrong checksum, wrong format or shape)."""


class DataUnavailableError(DataError, FileNotFoundError):
    """The real data set is not on disk, cannot be downloaded, and the offline stand-in
    is not allowed.  The message carries the placement instructions."""

    def __str__(self) -> str:  # OSError's own __str__ would prefix an errno
        return str(self.args[0]) if self.args else ""


class DownloadError(DataError, OSError):
    """A file could not be downloaded (no network, HTTP error, repeatedly broken transfer,
    or every mirror served bytes with the wrong checksum).

    ``reasons`` holds one short line per failed attempt (e.g. per mirror).
    """

    def __init__(self, message: str, reasons: Sequence[str] = ()):
        super().__init__(message)
        self.reasons = list(reasons) or [message]

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
