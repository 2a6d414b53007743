"""The suppression handler: numbers the error bus's suppression rules matched go on the
suppression list (chalicelib.sending.suppression), so no later row of any job calls them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.sending.suppression import SuppressionList


def source_of(detail: Mapping[str, Any]) -> str:
    """A status callback's event (chalicelib.api.status.delivery_event) carries the message's
    or call's status; the router's events of a send's response do not."""
    return "callback" if detail.get("MessageStatus") or detail.get("CallStatus") else "send_error"


def suppress(suppressions: SuppressionList, events: Sequence[Mapping[str, Any]]) -> int:
    """Apply the events the suppression rules matched: each event's number is never called again
    (the reason was decided when the event was made). Returns numbers newly suppressed."""
    added = 0
    for event in events:
        detail = event["detail"]
        if detail.get("number") and detail.get("Reason"):
            added += suppressions.add(
                str(detail["number"]),
                str(detail["Reason"]),
                error_code=detail.get("ErrorCode"),
                job_id=detail.get("job_id"),
                source=source_of(detail),
            )
    return added
