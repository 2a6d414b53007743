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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chalicelib.aws.event_bus import LOOKUP_FINDING, TWILIO_ERROR, EventPublisher
from chalicelib.sending.cancel import CANCELLED
from chalicelib.sending.suppression import number_of, suppression_reason


def event_details(envelope: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(detail-type, detail) of each event one response envelope gives rise to."""
    found: list[tuple[str, dict[str, Any]]] = []
    status = envelope.get("status")
    error = envelope.get("error") or {}
    base = {
        "job_id": envelope["job_id"],
        "row": envelope["row"],
        "api": envelope.get("api"),
        "attempt": envelope.get("attempt"),
        "outcome": envelope.get("outcome"),
        "number": number_of(envelope),
    }
    reason = suppression_reason(envelope)
    if reason is not None:
        base["Reason"] = reason[0]
    # Suppressed and cancelled rows were never sent: Twilio made no error.
    never_sent = envelope.get("outcome") == "suppressed" or error.get("code") == CANCELLED
    if not never_sent and (status is None or status >= 300):
        found.append((TWILIO_ERROR, {**base, "ErrorCode": error.get("code"), "HttpStatus": status}))
    if envelope.get("api") == "lookup" and status is not None and status < 300 and reason:
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

    def route(self, envelopes: Sequence[Mapping[str, Any]]) -> int:
        per_job = Counter(str(e["job_id"]) for e in envelopes)
        seen = {job_id: self._count(job_id, n) for job_id, n in per_job.items()}
        details = [d for envelope in envelopes for d in event_details(envelope)]
        for kind, detail in details:
            # Each error carries its job's responses so far, counted here as it is routed: the
            # systemic handler judges the share against the highest such count, not against the
            # job's count when the event reaches it, which good responses may have passed.
            if kind == TWILIO_ERROR and seen.get(str(detail["job_id"])) is not None:
                detail["responses"] = seen[str(detail["job_id"])]
        return self._publisher.put(details) if details else 0
