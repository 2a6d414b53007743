"""How a command ends: its exit status, and the error that means bad arguments or an unreadable
file."""

from __future__ import annotations

from pathlib import Path

from chalicelib.errors import CallqueueError

EXIT_OK, EXIT_UNACCOUNTED, EXIT_USAGE = 0, 1, 2


class UsageError(CallqueueError):
    """Bad arguments or an unreadable file: exit 2 with the message."""


def readable(path: Path) -> None:
    """UsageError unless `path` is a file in a format the intake reads (by its name)."""
    from chalicelib.intake.parsing import FileFormatError, detect_format

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        detect_format(path.name)
    except FileFormatError as error:
        raise UsageError(f"{path}: {error}") from None
