"""Schedule arithmetic: which chunk a row belongs to and when it is due.

Valid rows are numbered 0, 1, 2, ... in file order (rejected rows take no slot). Row i is due
`i / cps` seconds after the job starts, and chunk k holds the `window * cps` rows due in
[k * window, (k + 1) * window). The state machine releases chunk k at `start + k * window`, so
every row's SQS delay lies in [0, window), which is why a window is at most SQS's 900 s ceiling.

Releasing a chunk and enqueuing its rows takes a moment, so chunks are released `lead` seconds
early (and the job starts `lead` seconds after it is split); a row's delay is then at most
window + lead, which must stay within 900 s, so the lead shrinks as the window nears 900 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.config import MAX_WINDOW_SECONDS, ConfigError

# Enough for an S3 event, an invocation and a chunk's SendMessageBatch calls.
RELEASE_LEAD_SECONDS = 10


@dataclass(frozen=True)
class Schedule:
    cps: int
    window_seconds: int

    def __post_init__(self) -> None:
        if self.cps < 1:
            raise ConfigError(f"CPS must be at least 1, got {self.cps}")
        if not 1 <= self.window_seconds <= MAX_WINDOW_SECONDS:
            raise ConfigError(
                f"window must be 1..{MAX_WINDOW_SECONDS} s, got {self.window_seconds}"
            )

    @property
    def chunk_size(self) -> int:
        return self.window_seconds * self.cps

    def offset(self, index: int) -> float:
        """Seconds after the job's start at which valid row `index` (0-based) is due."""
        return index / self.cps

    def chunk_of(self, index: int) -> int:
        return index // self.chunk_size

    def chunk_count(self, valid_rows: int) -> int:
        return math.ceil(valid_rows / self.chunk_size)

    def chunk_start(self, chunk: int) -> float:
        """Seconds after the job's start at which chunk `chunk`'s first row is due."""
        return float(chunk * self.window_seconds)

    @property
    def lead_seconds(self) -> int:
        return min(RELEASE_LEAD_SECONDS, MAX_WINDOW_SECONDS - self.window_seconds)

    def release_at(self, chunk: int) -> float:
        """Seconds after the job's start at which chunk `chunk` is released (may be negative)."""
        return self.chunk_start(chunk) - self.lead_seconds

    def eta_seconds(self, valid_rows: int) -> float:
        """Seconds from the start until the last row is due (0 for an empty job)."""
        return self.offset(valid_rows - 1) if valid_rows > 0 else 0.0


# A row is made visible on the send queue this much before it is due (and up to a second more,
# as delays are whole seconds): room for the trigger's batching window (1 s by default), which
# can hold a row that long before its batch is handed to the sender, and the sender's claims
# and slots before the call's time. With one second, rows made visible just one second early
# reached the sender after they were due, and at 200 CPS the first seconds of a job made 100
# to 130 calls a second (measured here); with two, 160 to 195.
VISIBLE_EARLY_SECONDS = 2.0


def visible_early_seconds(batching_window: float) -> float:
    """How long before it is due a row is made visible on the send queue, for a sender trigger
    with this batching window (SENDER_BATCHING_WINDOW_SECONDS): VISIBLE_EARLY_SECONDS for the
    default window of one second, a longer window's extra on top (with five seconds, a row can
    wait five in the trigger before its batch is handed over)."""
    return VISIBLE_EARLY_SECONDS + max(0.0, batching_window - 1.0)


def delay_seconds(due_at: float, now: float) -> int:
    """SQS DelaySeconds that makes a message visible no later than `due_at`.

    Rounded down so a message is never late because of the rounding; the sender holds it for the
    remaining fraction of a second.
    """
    return max(0, min(MAX_WINDOW_SECONDS, math.floor(due_at - now)))


def iso_timestamp(epoch: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds, the form a Step Functions Wait accepts."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
