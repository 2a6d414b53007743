"""Twilio's message status callbacks: the URL each message asks for, checking a callback's
signature, and what a callback says.

The callback URL names the row it is for (`?job=...&row=...`). Twilio signs the whole URL, query
included, and every form parameter, so a callback whose row, status or error was changed fails
the signature: the row comes from the signed URL, not from a look-up by MessageSid.

Twilio sends a message's statuses in no guaranteed order and may repeat them; each status has a
rank, and a status only replaces one of lower rank (a late `sent` never replaces `delivered`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from chalicelib.errors import CallqueueError

# Statuses of an outbound message, by how far along it is. The final ones share a rank: the first
# to arrive stands. `read` (WhatsApp) only ever follows `delivered`.
STATUS_RANK: Mapping[str, int] = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}


class CallbackRejected(CallqueueError):
    """The callback is not one Twilio signed for this URL, or not for the message its row's call
    created (answered 403)."""


class MalformedCallback(CallqueueError, ValueError):
    """A signed callback that does not say what a status callback says (answered 400)."""


def status_callback_url(base: str, job_id: str, row: int) -> str:
    """The StatusCallback URL of one row's message; `callback_url_of` rebuilds it exactly."""
    query = urlencode([("job", job_id), ("row", str(row))])
    return f"{base}{'&' if '?' in base else '?'}{query}"


def callback_url_of(base: str, query: Mapping[str, str]) -> str:
    """The URL a callback was sent to, from the configured public URL and the query parameters
    the request arrived with (API Gateway passes them parsed, not as the original string)."""
    if not query:
        return base
    if set(query) >= {"job", "row"}:
        ordered = [("job", query["job"]), ("row", query["row"])]
        ordered += sorted((k, v) for k, v in query.items() if k not in ("job", "row"))
    else:
        ordered = sorted(query.items())
    return f"{base}{'&' if '?' in base else '?'}{urlencode(ordered)}"


def check_signature(
    auth_token: str, url: str, form: Mapping[str, str], signature: str | None
) -> None:
    """Raise CallbackRejected unless `signature` is Twilio's signature of `url` and `form`."""
    if not signature:
        raise CallbackRejected("no X-Twilio-Signature")
    if not RequestValidator(auth_token).validate(url, dict(form), signature):
        raise CallbackRejected("X-Twilio-Signature does not match the request")


@dataclass(frozen=True)
class DeliveryStatus:
    job_id: str
    row: int
    sid: str
    status: str
    rank: int
    error_code: int | None
    to: str | None

    @classmethod
    def parse(cls, query: Mapping[str, str], form: Mapping[str, str]) -> DeliveryStatus:
        job_id = query.get("job")
        row = query.get("row")
        sid = form.get("MessageSid")
        status = form.get("MessageStatus")
        if not job_id or not row or not row.isdigit():
            raise MalformedCallback("the callback URL must name a job and a row")
        if not sid or not status:
            raise MalformedCallback("MessageSid and MessageStatus are required")
        if status not in STATUS_RANK:
            raise MalformedCallback(f"unknown MessageStatus {status!r}")
        code = form.get("ErrorCode") or None
        if code is not None and not code.isdigit():
            raise MalformedCallback(f"ErrorCode must be a number, got {code!r}")
        return cls(
            job_id=job_id,
            row=int(row),
            sid=sid,
            status=status,
            rank=STATUS_RANK[status],
            error_code=None if code is None else int(code),
            to=form.get("To") or None,
        )
