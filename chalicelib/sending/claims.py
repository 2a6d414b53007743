"""What the call ledger (chalicelib.sending.ledger) answers: a claim's verdict for a row's
delivery, and what a signed status callback is to the row's call, judged from the row's item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["call", "done", "wait", "in_doubt", "stale"]
# What a signed status callback for a row is to the row's call: the message it created (or may
# have: the call's response is not in yet), another message, or a row the ledger never claimed.
Binding = Literal["bound", "mismatch", "unknown_row"]
# (job, row, attempt)
Attempt = tuple[str, int, int]


@dataclass(frozen=True)
class Claim:
    verdict: Verdict
    # For "done": the envelope published when the call completed.
    envelope: dict[str, Any] | None = None
    # For "wait": seconds until the earlier call can no longer be in flight.
    wait_seconds: float = 0.0
    # For "in_doubt": the SID a signed status callback bound to the row (evidence that the
    # earlier call created that message), if one came.
    callback_sid: str | None = None
    # For "in_doubt": when the earlier call was claimed (it started no sooner).
    claimed_at: float = 0.0
    # For "in_doubt": the attempt the claim taken over was made for, which this delivery
    # settles, whatever attempt its own copy of the row carries (a put-back cut short by the
    # invocation's end leaves copies of two attempts on the queue).
    attempt: int | None = None
    # For "call" and "in_doubt": the claim time this delivery wrote (its claim, or its take-over
    # of one in doubt). A retry is recorded only while the row's claim is still this one.
    held_at: float = 0.0


def binding_of(item: dict[str, Any] | None, sid: str, to: str | None) -> Binding | None:
    """What a callback for `sid` (to `to`) is to the row's item; None while the row's call is in
    flight with no SID bound yet (the callback's may be)."""
    if item is None or "state" not in item:  # no item, or one the ledger never claimed
        return "unknown_row"
    known_to = item.get("to", {}).get("S")
    if to is not None and known_to is not None and to != known_to:
        return "mismatch"
    own = item.get("sid", {}).get("S") or item.get("callback_sid", {}).get("S")
    if own is not None:
        return "bound" if own == sid else "mismatch"
    return None
