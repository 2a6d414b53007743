"""How a command ends: its exit status, the error that means bad arguments or an unreadable
file, and the signals that stop it (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

from chalicelib.errors import CallqueueError

EXIT_OK, EXIT_UNACCOUNTED, EXIT_USAGE = 0, 1, 2
# A shell's status for a process a signal ended: 128 + the signal's number.
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class UsageError(CallqueueError):
    """Bad arguments, an unreadable file or a missing environment: exit 2 with the message."""


def readable(path: Path) -> None:
    """UsageError unless `path` is a file in a format the intake reads (by its name)."""
    from chalicelib.intake.parsing import FileFormatError, detect_format

    if path.is_dir():
        raise UsageError(f"{path}: is a directory; name the files in it")
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file")
    try:
        detect_format(path.name)
    except FileFormatError as error:
        raise UsageError(f"{path}: {error}") from None


class StopSignals:
    """SIGINT and SIGTERM both unwind the command as KeyboardInterrupt, so every `with` and
    `finally` on the way stops what it started (the local runtime's processes); later signals
    are ignored while that happens, so a second Ctrl-C cannot cut the clean-up short and leave
    processes behind. `exit_status` says which signal came."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._before: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._before[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    @property
    def reason(self) -> str:
        return "terminated (SIGTERM)" if self.received == signal.SIGTERM else "interrupted"

    @property
    def exit_status(self) -> int:
        return EXIT_TERMINATED if self.received == signal.SIGTERM else EXIT_INTERRUPTED
