"""Twilio's status callbacks, of messages and of calls: the URL each asks for, checking a
callback's signature, and what a callback says.

The callback URL names the row it is for (`?job=...&row=...`). Twilio signs the whole URL, query
included, and every form parameter, so a callback whose row, status or error was changed fails
the signature: the row comes from the signed URL, not from a look-up by MessageSid.

Twilio sends a message's (or call's) statuses in no guaranteed order and may repeat them; each
status has a rank, and a status only replaces one of lower rank (a late `sent` never replaces
`delivered`, a late `ringing` never replaces `completed`). A message's callback names its
MessageSid and MessageStatus, a call's its CallSid and CallStatus, with the call's CallDuration
(seconds) and, when answering-machine detection was asked for, AnsweredBy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
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

# Statuses of an outbound call, as its progress events report them: `initiated` (the event's own
# name) is dialling begun, `in-progress` answered. The final ones share a rank, as for messages.
CALL_STATUS_RANK: Mapping[str, int] = {
    "queued": 1,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "failed": 4,
    "canceled": 4,
}

# The progress events each call asks for (Twilio sends only `completed` when none is named).
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")

# AnsweredBy is Twilio's word (human, machine_start, machine_end_beep, fax, unknown, ...); a
# value it adds later is kept, but only in this shape, since it is stored as sent.
_ANSWERED_BY = re.compile(r"[a-z_]{1,40}")


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
    """What one status callback says of its row's message or call (`api`)."""

    job_id: str
    row: int
    sid: str
    status: str
    rank: int
    error_code: int | None
    to: str | None
    api: str = "messages"
    # A call's CallDuration (seconds) and AnsweredBy, when the callback gives them.
    duration: int | None = None
    answered_by: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str], form: Mapping[str, str]) -> DeliveryStatus:
        job_id = query.get("job")
        row = query.get("row")
        if not job_id or not row or not (row.isascii() and row.isdigit()):
            raise MalformedCallback("the callback URL must name a job and a row")
        message, call = form.get("MessageSid"), form.get("CallSid")
        if message and call:
            raise MalformedCallback("a callback names a MessageSid or a CallSid, not both")
        if not message and not call:
            raise MalformedCallback(
                "MessageSid and MessageStatus (or CallSid and CallStatus) are required"
            )
        kind = _CALL if call else _MESSAGE
        sid, status = form.get(kind.sid), form.get(kind.status)
        if not sid or not status:
            raise MalformedCallback(f"{kind.sid} and {kind.status} are required")
        if status not in kind.ranks:
            raise MalformedCallback(f"unknown {kind.status} {status!r}")
        return cls(
            job_id=job_id,
            row=int(row),
            sid=sid,
            status=status,
            rank=kind.ranks[status],
            error_code=_number(form, "ErrorCode"),
            to=form.get("To") or None,
            api=kind.api,
            duration=_number(form, "CallDuration") if call else None,
            answered_by=_answered_by(form) if call else None,
        )


@dataclass(frozen=True)
class _Kind:
    api: str
    sid: str
    status: str
    ranks: Mapping[str, int]


_MESSAGE: Final = _Kind("messages", "MessageSid", "MessageStatus", STATUS_RANK)
_CALL: Final = _Kind("calls", "CallSid", "CallStatus", CALL_STATUS_RANK)


def _number(form: Mapping[str, str], name: str) -> int | None:
    """A whole number the form may give (an error code, a duration); absent or empty: None."""
    text = form.get(name) or None
    if text is None:
        return None
    # isdigit() admits digits of other scripts ("²") that int() refuses.
    if not (text.isascii() and text.isdigit()):
        raise MalformedCallback(f"{name} must be a whole number, got {text!r}")
    return int(text)


def _answered_by(form: Mapping[str, str]) -> str | None:
    value = form.get("AnsweredBy") or None
    if value is not None and not _ANSWERED_BY.fullmatch(value):
        raise MalformedCallback(f"unknown AnsweredBy {value!r}")
    return value
