"""The error router: turns responses that need acting on into events on the error bus.

Each non-2xx response becomes a `TwilioError` event (detail: ErrorCode, HttpStatus, job, row,
number); a Lookup that says a number is invalid or a landline becomes a `LookupFinding`. Rules on
the bus (.chalice/infrastructure.yaml) send each class of error to its handler: suppression,
systemic (pause the job); every other code is recorded by the results sink and is final.
Retryable answers (429, 5xx) are already put back on the send queue by the sender; their events
are routed too, so a rule can watch them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.aws.event_bus import LOOKUP_FINDING, TWILIO_ERROR, EventPublisher
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.sending.cancel import CANCELLED
from chalicelib.sending.suppression import suppression_reason


def event_details(envelope: ResponseEnvelope) -> list[tuple[str, dict[str, Any]]]:
    """(detail-type, detail) of each event one response envelope gives rise to."""
    found: list[tuple[str, dict[str, Any]]] = []
    status = envelope.result.status
    code = None if envelope.error is None else envelope.error.code
    base: dict[str, Any] = {
        "job_id": envelope.job_id,
        "row": envelope.row,
        "api": envelope.api,
        "attempt": envelope.attempt,
        "outcome": envelope.outcome,
        "number": envelope.number,
    }
    # The sender's own rule, which reads an envelope as published.
    reason = suppression_reason(envelope.to_json())
    if reason is not None:
        base["Reason"] = reason[0]
    # Suppressed and cancelled rows were never sent: Twilio made no error.
    never_sent = envelope.outcome == "suppressed" or code == CANCELLED
    if not never_sent and (status is None or status >= 300):
        found.append((TWILIO_ERROR, {**base, "ErrorCode": code, "HttpStatus": status}))
    if envelope.api == "lookup" and status is not None and status < 300 and reason:
        found.append((LOOKUP_FINDING, base))
    return found


class ErrorRouter:
    def __init__(
        self,
        publisher: EventPublisher,
        count_responses: Callable[[str, int], int | None] = lambda job_id, n: None,
    ) -> None:
        self._publisher = publisher
        # Every response is counted on its job, so the systemic handler can tell a wrong
        # setting (most responses fail) from a few bad rows.
        self._count = count_responses

    def route(self, envelopes: Sequence[ResponseEnvelope]) -> int:
        per_job = Counter(e.job_id for e in envelopes)
        seen = {job_id: self._count(job_id, n) for job_id, n in per_job.items()}
        details: list[tuple[str, dict[str, Any]]] = []
        for envelope in envelopes:
            for kind, detail in event_details(envelope):
                # Each error carries its job's responses so far, counted here as it is routed:
                # the systemic handler judges the share against the highest such count, not
                # against the job's count when the event reaches it, which good responses may
                # have passed.
                if kind == TWILIO_ERROR and seen[envelope.job_id] is not None:
                    detail["responses"] = seen[envelope.job_id]
                details.append((kind, detail))
        return self._publisher.put(details) if details else 0
