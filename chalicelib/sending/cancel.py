"""Ending the rows of a cancelled job without calling Twilio.

A cancelled row still needs exactly one final outcome, so it ends `failed` with the error code
`cancelled` (not a Twilio code: Twilio never saw the row). The row's attempt is claimed in the
call ledger first, as any call is, so a row whose call already completed is published with its
real outcome, not as cancelled, and a redelivered cancelled row is published the same way again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import QueuedRow, TwilioResult
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.recording import republish_or_wait

CANCELLED = "cancelled"
CANCELLED_MESSAGE = "the job was cancelled before this row was called"


def cancelled_envelope(row: QueuedRow, now: float) -> dict[str, Any]:
    """A row of a cancelled job that was never called: `failed`, with the error code
    `cancelled` (not Twilio's) and a message saying why."""
    no_call = TwilioResult(None, None, {}, now, now, error_message=CANCELLED_MESSAGE)
    return ResponseEnvelope(
        job_id=row.job_id,
        row=row.row,
        api=row.api,
        attempt=row.attempt,
        outcome="failed",
        request=row.params,
        carried=row.carried,
        result=no_call,
        due_at=row.due_at,
        error_name=CANCELLED,
        # end_cancelled records it on the row's item before it is published.
        recorded=True,
    ).to_json()


def end_cancelled(
    ledger: CallLedger,
    rows: Sequence[QueuedRow],
    later: list[tuple[QueuedRow, float]],
    clock: Callable[[], float],
) -> list[dict[str, Any]]:
    """The envelopes to publish for rows of cancelled jobs; rows whose earlier call may still be
    in flight are appended to `later`."""
    published: list[dict[str, Any]] = []
    for row in rows:
        claim = ledger.claim(row.job_id, row.row, row.attempt)
        if republish_or_wait(claim, row, published, later):
            continue  # "stale" too: a later attempt of this row is on the queue and ends it
        envelope = cancelled_envelope(row, clock())
        if claim.verdict == "in_doubt":
            # A call was started and never recorded: it may have reached Twilio, so the row
            # cannot honestly be called cancelled.
            envelope.update(outcome="unknown", error=None)
        ledger.completed(row.job_id, row.row, row.attempt, envelope)
        published.append(envelope)
    return published
