"""What a Twilio response means for its row: final, worth another attempt, or unknowable.

Twilio documents that a 429 was never processed and is always safe to retry; 21611 (the sender's
queue is full) also arrives as HTTP 429. A request that got no response at all may or may not
have been processed, and so may one answered 5xx (Twilio's edge answers 502, 503 or 504 after
the request reached Twilio, and a 500 says nothing of what happened before it): neither is ever
retried blindly (`may_have_taken_effect`; the sender settles them by what Twilio holds), unless
the connection was never made (refused, or timed out connecting), which is as safe as a 429.
A Lookup changes nothing at Twilio, so any of its attempts may be made again.
"""

from __future__ import annotations

import random
from typing import Literal

from chalicelib.core.records import TwilioResult

Verdict = Literal["sent", "failed", "retry", "unknown"]


def classify(result: TwilioResult) -> Verdict:
    if result.status is None:
        return "retry" if result.not_sent else "unknown"
    if 200 <= result.status < 300:
        return "sent"
    if result.status == 429 or result.status >= 500:
        return "retry"
    return "failed"


def may_have_taken_effect(api: str, result: TwilioResult) -> bool:
    """Whether a call's attempt may have created something although its answer does not say so:
    no response (the request was sent), or a 5xx. Not for a Lookup, which creates nothing."""
    if api == "lookup" or result.not_sent:
        return False
    return result.status is None or result.status >= 500


def backoff_seconds(
    attempt: int, *, base: float = 2.0, cap: float = 900.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter before attempt `attempt + 1`.

    Full jitter spreads retries of rows that failed together (a burst of 429s) over the whole
    interval instead of sending them back in a second burst.
    """
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return (rng or random).uniform(0.0, ceiling)
