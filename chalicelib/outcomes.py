"""What a Twilio response means for its row: final, worth another attempt, or unknowable.

Twilio documents that a 429 was never processed and is always safe to retry; 21611 (the sender's
queue is full) also arrives as HTTP 429. A 5xx is treated the same way. A request that got no
response at all may or may not have been processed, so it is never retried blindly: its outcome
is unknown, unless the connection was never made (refused, or timed out connecting), which is
as safe to retry as a 429.
"""

from __future__ import annotations

import random
from typing import Literal

from chalicelib.records import TwilioResult

Verdict = Literal["sent", "failed", "retry", "unknown"]


def classify(result: TwilioResult) -> Verdict:
    if result.status is None:
        return "retry" if result.not_sent else "unknown"
    if 200 <= result.status < 300:
        return "sent"
    if result.status == 429 or result.status >= 500:
        return "retry"
    return "failed"


def backoff_seconds(
    attempt: int, *, base: float = 2.0, cap: float = 900.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter before attempt `attempt + 1`.

    Full jitter spreads retries of rows that failed together (a burst of 429s) over the whole
    interval instead of sending them back in a second burst.
    """
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return (rng or random).uniform(0.0, ceiling)
