"""The error bus (EventBridge): what callqueue puts on it, ten entries a request.

The router puts a `TwilioError` or `LookupFinding` event per response that needs acting on, the
status callback route one per failed delivery, the reconciler a `JobCompleted` per job; rules in
.chalice/infrastructure.yaml send each class to its handler.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import Failed, chunked, send_with_retries

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "callqueue"
TWILIO_ERROR = "TwilioError"
LOOKUP_FINDING = "LookupFinding"
JOB_COMPLETED = "JobCompleted"


class EventPublisher:
    """PutEvents on the error bus, ten entries a request, refused entries retried."""

    def __init__(
        self, events: EventBridgeClient, bus: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._events = events
        self._bus = bus
        self._sleep = sleep

    def put(self, details: Sequence[tuple[str, dict[str, Any]]]) -> int:
        for batch in chunked(details):
            entries = [
                {
                    "Id": str(i),
                    "Source": SOURCE,
                    "DetailType": kind,
                    "Detail": json.dumps(detail, separators=(",", ":")),
                    "EventBusName": self._bus,
                }
                for i, (kind, detail) in enumerate(batch)
            ]
            send_with_retries(self._send, entries, what="PutEvents", sleep=self._sleep)
        return len(details)

    def _send(self, entries: list[dict[str, Any]]) -> list[Failed]:
        request = [{k: v for k, v in e.items() if k != "Id"} for e in entries]
        response = self._events.put_events(Entries=request)  # type: ignore[arg-type]
        failed = []
        # PutEvents answers entry by entry, in order, with an ErrorCode where one was refused.
        for entry, result in zip(entries, response.get("Entries", []), strict=False):
            if "ErrorCode" in result:
                code = result["ErrorCode"]
                failed.append(
                    Failed(
                        entry["Id"], code, result.get("ErrorMessage", ""), code != "InternalFailure"
                    )
                )
        return failed
