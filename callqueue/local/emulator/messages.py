"""The Messages API (2010-04-01): creation with Twilio's test-credential magic numbers,
scheduling, SmartEncoded, the trial prefix and segment counts; the emulator's own delivery
failures; fetch and list, which show where a message is on its timeline."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from callqueue.local.emulator.core import (
    Form,
    Json,
    _ApiError,
    _first,
    _is_e164,
    _new_sid,
    _outbound_resource,
    _Reply,
    _rfc2822,
    _sid_pattern,
)
from callqueue.local.emulator.lists import _Listing, _parse_date_param
from callqueue.local.emulator.magic_numbers import INVALID_NUMBER, LANDLINE_NUMBER, VALID_FROM
from callqueue.local.emulator.store import _AccountStore, _Stage, _Stored

FULL_QUEUE_FROM = "+15005550008"

MAX_BODY_LENGTH = 1600
TRIAL_PREFIX = "Sent from your Twilio trial account - "
# Twilio's message-scheduling page: SendAt more than 5 minutes ahead (older pages said 15; see
# docs/emulator-fidelity.md) and at most 35 days ahead, else error 35115.
SCHEDULE_MIN_AHEAD_SECONDS = 5 * 60
SCHEDULE_MAX_AHEAD_SECONDS = 35 * 86400

_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_MESSAGING_SERVICE_SID = _sid_pattern("MG")

# GSM 03.38: characters of the default alphabet cost one septet, those of the extension table two.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

# SmartEncoded: Unicode characters with a GSM-7 look-alike, so a body stays in GSM-7 (160
# characters a segment) instead of UCS-2 (70). Twilio's table is longer; these are the characters
# word processors put into text (typographic quotes, dashes, ellipsis, wide and non-breaking
# spaces).
_SMART_ENCODING: Mapping[int, str] = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u202f": " ",
        "\u200b": "",
    }
)  # fmt: skip

# The emulator's delivery failures by To number (see the package docstring).
UNDELIVERED_CODES: Mapping[str, int] = {
    "+15005550030": 30003,
    "+15005550050": 30005,
    "+15005550060": 30006,
    "+15005550070": 30007,
}
# A message to this number fails after it is queued (30008, unknown error: Twilio could not send
# it), with no `sent` stage.
FAILED_CODES: Mapping[str, int] = {
    "+15005550080": 30008,
}


def segment_count(body: str) -> int:
    """Segments Twilio bills for a text body: GSM-7 160 (153 per part) or UCS-2 70 (67 per part)."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)


def smart_encode(body: str) -> str:
    """The body with Unicode look-alikes replaced by GSM-7 characters, as SmartEncoded does."""
    return body.translate(_SMART_ENCODING)


def _schedule(form: Form, service: str | None, now: float) -> float | None:
    """When a scheduled message is to be sent (None: not scheduled), checked as Twilio does."""
    schedule_type = _first(form, "ScheduleType")
    send_at_text = _first(form, "SendAt")
    if schedule_type is None and send_at_text is None:
        return None
    if schedule_type != "fixed":
        raise _ApiError(400, 20001, f"Invalid value for ScheduleType: {schedule_type}")
    if not send_at_text:
        raise _ApiError(400, 20001, "SendAt is required when ScheduleType is fixed")
    if not service:
        raise _ApiError(400, 35118, "MessagingServiceSid is required to schedule a message.")
    send_at = _parse_date_param("SendAt", send_at_text)
    ahead = send_at - now
    if not SCHEDULE_MIN_AHEAD_SECONDS < ahead <= SCHEDULE_MAX_AHEAD_SECONDS:
        raise _ApiError(
            400,
            35115,
            "SendAt time must be more than 5 minutes and at most 35 days in the future.",
        )
    return send_at


# A message's subresources: key in `subresource_uris`, name in the URI.
_SUBRESOURCES = {"media": "Media", "feedback": "Feedback"}


def _message_resource(
    account_sid: str,
    sid: str,
    now: float,
    *,
    to: str,
    sender: str | None,
    service: str | None,
    body: str | None,
    media: list[str],
    initial: str,
) -> Json:
    """The message as its creation answers it."""
    fields = {
        "body": body or "",
        "date_sent": None,
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": str(len(media)),
        "num_segments": str(segment_count(body) if body else 1),
    }
    return _outbound_resource(account_sid, "Messages", sid, now, initial, to, _SUBRESOURCES, fields)


class _MessagesApi(_AccountStore):
    """The account's Messages operations."""

    def create_message(self, form: Form) -> _Reply:
        to = _first(form, "To")
        sender = _first(form, "From")
        service = _first(form, "MessagingServiceSid")
        body = _first(form, "Body")
        media = list(form.get("MediaUrl", ()))
        if not to:
            raise _ApiError(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            raise _ApiError(400, 21603, "A 'From' phone number is required.")
        if service and not _MESSAGING_SERVICE_SID.fullmatch(service):
            raise _ApiError(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        if not body and not media and not _first(form, "ContentSid"):
            raise _ApiError(400, 21602, "Message body is required.")
        if body and len(body) > MAX_BODY_LENGTH:
            raise _ApiError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        now = self._clock()
        send_at = _schedule(form, service, now)
        if sender:
            self._check_message_from(sender)
        self._check_message_to(to, sender or service or "")
        if body and _first(form, "SmartEncoded") in ("true", "True"):
            body = smart_encode(body)
        if body and self._trial_account:
            body = TRIAL_PREFIX + body
        sid = _new_sid("MM" if media else "SM")
        initial = "scheduled" if send_at is not None else "queued" if sender else "accepted"
        resource = _message_resource(
            self.account_sid,
            sid,
            now,
            to=to,
            sender=sender,
            service=service,
            body=body,
            media=media,
            initial=initial,
        )
        code = UNDELIVERED_CODES.get(to) or FAILED_CODES.get(to)
        release = now if send_at is None else send_at
        stages = [_Stage(now, initial)]
        if send_at is not None:
            stages.append(_Stage(send_at, "queued"))
        if to in FAILED_CODES:
            stages.append(_Stage(release + self._step, "failed"))
        else:
            stages += [
                _Stage(release + self._step, "sent"),
                _Stage(release + 2 * self._step, "delivered" if code is None else "undelivered"),
            ]
        self._store(self._messages, lambda seq: _Stored(seq, now, resource, tuple(stages), code))
        return _Reply(201, resource, processed=True, sid=sid)

    def message_record(self, sid: str) -> _Stored:
        """A message created here: its callbacks follow its stages."""
        with self._lock:
            return next(m for m in self._messages if m.sid == sid)

    @staticmethod
    def _check_message_from(sender: str) -> None:
        if sender == VALID_FROM:
            return
        if sender == FULL_QUEUE_FROM:
            raise _ApiError(429, 21611, "SMS queue is full.")
        if sender != INVALID_NUMBER and (
            _is_e164(sender) or _ALPHANUMERIC_SENDER.fullmatch(sender)
        ):
            raise _ApiError(
                400,
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone number "
                f"or short code for your account.",
            )
        raise _ApiError(
            400,
            21212,
            f"The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric "
            f"sender ID.",
        )

    @staticmethod
    def _check_message_to(to: str, sender: str) -> None:
        address = to.split(":", 1)[1] if ":" in to else to
        if to == INVALID_NUMBER or not _is_e164(address):
            raise _ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        errors = {
            "+15005550002": (
                21612,
                f"The 'To' phone number: {to}, is not currently reachable using the 'From' "
                f"phone number: {sender} via SMS.",
            ),
            "+15005550003": (
                21408,
                f"Permission to send an SMS has not been enabled for the region indicated by "
                f"the 'To' number: {to}.",
            ),
            "+15005550004": (21610, "The message From/To pair violates a blacklist rule."),
            LANDLINE_NUMBER: (21614, f"To number: {to}, is not a mobile number"),
        }
        if to in errors:
            code, message = errors[to]
            raise _ApiError(400, code, message)

    def message_view(self, stored: _Stored, now: float) -> Json:
        """The message as a fetch or list at `now` shows it: where it is on its timeline."""
        stage = stored.stage_at(now)
        sent = stored.reached("sent", now)
        view = {
            **stored.resource,
            "status": stage.status,
            "date_sent": None if sent is None else _rfc2822(sent),
            "date_updated": _rfc2822(stage.t),
        }
        if stage.status in ("undelivered", "failed"):
            view["error_code"] = stored.error_code
        return view

    def fetch_message(self, sid: str, path: str) -> _Reply:
        stored = self._find(self._messages, sid, path)
        return _Reply(200, self.message_view(stored, self._clock()))

    def list_messages(self, path: str, query: Form) -> _Reply:
        now = self._clock()
        listing = _Listing(query)
        listing.addressed()
        # A message not yet sent has no date_sent: no DateSent filter returns it, as on Twilio.
        listing.dates("DateSent", lambda m: m.reached("sent", now), before_inclusive=True)
        messages = self._newest_first(self._messages)
        page = listing.page_2010(path, "messages", messages, lambda m: self.message_view(m, now))
        return _Reply(200, page)
