"""Response envelopes as the sender publishes them, for tests of what records them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import Outcome, TwilioResult
from downstream.messages import envelope_data

ACCOUNT = "AC" + "1" * 32


def message_body(sid: str, to: str, text: str) -> dict[str, Any]:
    """Twilio's answer to a message create, field for field as it comes."""
    uri = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}"
    return {
        "account_sid": ACCOUNT,
        "api_version": "2010-04-01",
        "body": text,
        "date_created": "Sun, 06 Dec 2026 22:00:00 +0000",
        "date_sent": None,
        "date_updated": "Sun, 06 Dec 2026 22:00:00 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+15005550001",
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def envelope(
    job_id: str = "j",
    row: int = 1,
    attempt: int = 1,
    *,
    outcome: Outcome = "sent",
    sid: str | None = "SM" + "0" * 32,
    to: str = "+14155550100",
    text: str = "Your appointment is tomorrow at 10:00. Reply STOP to opt out.",
    error_code: int | None = None,
    recorded: bool = True,
    carried: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An SMS row's envelope: `sent` with Twilio's 201 and body when `sid` is given, else a
    400 with `error_code`."""
    request = {"To": to, "From": "+15005550001", "Body": text}
    headers = {
        "Twilio-Request-Id": "RQ" + "2" * 32,
        "Twilio-Concurrent-Requests": "1",
        "Twilio-Request-Duration": "0.041",
    }
    if sid is not None:
        result = TwilioResult(201, message_body(sid, to, text), headers, 100.0, 100.05)
    else:
        body = {"code": error_code, "message": "invalid", "status": 400}
        result = TwilioResult(
            400, body, headers, 100.0, 100.05, error_code=error_code, error_message="invalid"
        )
    return ResponseEnvelope(
        job_id=job_id,
        row=row,
        api="messages",
        attempt=attempt,
        outcome=outcome,
        request=request,
        result=result,
        due_at=99.9,
        carried=carried or {},
        recorded=recorded,
    ).to_json()


def published(bodies: Iterable[str]) -> list[dict[str, Any]]:
    """The envelopes (their JSON) in the response topic's messages as a raw-delivery subscriber
    receives them: grouped, a JSON array of envelopes a message."""
    return [data for body in bodies for data in envelope_data(body)]
