"""A Twilio API emulator on loopback, for running the whole pipeline on one machine.

It answers the five operations callqueue makes, like Twilio does with test credentials, plus the
look-ups a sender uses to settle a request whose response was lost:

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``; ``GET`` of it (list) and of
  ``.../Messages/{Sid}.json`` (fetch)
- ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json``; ``GET`` of it and of
  ``.../Calls/{Sid}.json``
- ``GET /v2/PhoneNumbers/{PhoneNumber}`` (Lookup v2, optional ``Fields``)
- ``POST /v2/Services/{ServiceSid}/Verifications`` (Verify v2); ``GET`` of
  ``.../Verifications/{Sid}``
- ``POST /v2/Flows/{FlowSid}/Executions`` (Studio v2); ``GET`` of it and of ``.../Executions/{Sid}``

Anything else is 404 with code 20404. Bodies carry every property of the operation's response
schema in Twilio's OpenAPI description; errors are ``{"code", "message", "more_info", "status"}``.
Every response has ``Twilio-Request-Id``, ``Twilio-Concurrent-Requests`` (requests in flight on
arrival, this one included) and ``Twilio-Request-Duration``. The host is ignored: point the SDK's
hosts at `TwilioEmulator.base_url` with `chalicelib.twilio.gateway.CapturingHttpClient`.

Order of checks: route (404) -> Basic auth with the account SID + auth token or an API key SID +
secret (401, 20003), then for 2010-04-01 paths a malformed account SID (404) or another account's
(401, 20003) -> test credentials on a resource they cannot reach (403, 20008) -> account
concurrency limit (429, 20429, not processed) -> injected fault -> latency -> the operation itself.

Test credentials (``test_credentials=True``: the account SID + auth token are the account's test
credentials; an API key never is one) reach only what Twilio's test-credentials page lists: POST
Messages, POST Calls and GET Lookup. Anything else, the look-ups included, is 403 with 20008, and
their messages get no status callbacks. With the default (False) every route answers.

Messages and Calls follow Twilio's test-credential magic numbers. Messages: From +15005550006 is
the one valid sender; +15005550001 -> 21212; +15005550008 -> 21611 with HTTP 429; any other
well-formed number or alphanumeric sender -> 21606; anything malformed -> 21212. To +15005550001
-> 21211, +15005550002 -> 21612, +15005550003 -> 21408, +15005550004 -> 21610, +15005550009 ->
21614, malformed -> 21211. Missing To -> 21604; neither From nor MessagingServiceSid -> 21603;
no Body, MediaUrl or ContentSid -> 21602; Body over 1600 characters -> 21617. A message sent
through MessagingServiceSid alone is ``accepted`` with ``from`` null, otherwise ``queued``;
``num_segments`` counts GSM-7 (160/153) or UCS-2 (70/67) segments of the stored body.
``SmartEncoded=true`` replaces typographic quotes, dashes, the ellipsis and wide or non-breaking
spaces by GSM-7 look-alikes (`smart_encode`); ``trial_account=True`` prefixes every body with
"Sent from your Twilio trial account - ". The stored (rewritten) body is what is answered and
listed. Scheduled messages (``ScheduleType=fixed`` with ``SendAt``, ISO 8601) need a
MessagingServiceSid (35118) and a SendAt more than 5 minutes and at most 35 days ahead (35115);
ScheduleType other than fixed, or one of the two without the other, is 20001. Calls: missing To
-> 21201, missing From -> 21213, none of Url/Twiml/ApplicationSid (or a Url that is not
http(s)) -> 21205; From +15005550006 valid, +15005550001 or malformed -> 21212, any other ->
21210; To +15005550001 or malformed -> 21217, +15005550002 -> 21214, +15005550003 -> 21215,
+15005550004 -> 21216; ``client:`` and ``sip:`` To addresses are accepted. Calls are created
``queued``.

The timeline: every message and call moves on the emulator's clock, one status every
``callback_delay`` seconds (the step), whether or not a StatusCallback was given; fetches and lists
show where it is now (``status``, ``date_updated`` and the times below). A message goes queued (or
accepted) -> sent (``date_sent`` set; null before, as Twilio's is) -> delivered, or undelivered
with ``error_code`` for these To numbers (the emulator's own): +15005550030 -> 30003
(unreachable), +15005550050 -> 30005 (unknown destination), +15005550060 -> 30006 (landline),
+15005550070 -> 30007 (filtered). A scheduled message stays ``scheduled`` (no date_sent) until
its SendAt, then goes queued -> sent -> final a step apart. A call goes queued -> ringing
(``start_time`` set; null while queued) -> in-progress -> completed (``end_time``, ``duration``).
Verifications stay ``pending`` and executions ``active``.

Twilio has no magic numbers for Lookup, Verify and Studio; the emulator decides:

- Lookup: 200 always for a well-routed request. E.164 numbers (or ten-digit North American
  national numbers) with a known calling code are ``valid: true``; +15005550001 is ``valid:
  false`` with ``INVALID_BUT_POSSIBLE``; other invalid input gives ``NOT_A_NUMBER``,
  ``TOO_SHORT``, ``TOO_LONG`` or ``INVALID_COUNTRY_CODE`` and null data packages. Each package in
  ``Fields`` gets a canned object; ``line_type_intelligence.type`` is ``landline`` for
  +15005550009 and ``mobile`` otherwise. An unknown name in Fields -> 400, code 20001.
- Verify: any ``VA`` + 32 hex service exists (otherwise 404, 20404). Missing or invalid To or
  Channel -> 400, 60200 ("Invalid parameter: To"); To must be E.164 for sms/call/whatsapp/sna
  and an email address for email; +15005550001 -> 60200; +15005550009 over sms or whatsapp ->
  60205 (landline). Otherwise 201 with status ``pending``. A fetch takes the verification's SID
  or the To it was sent to (the service's newest for that To); Twilio's OpenAPI documents only
  the SID (see docs/emulator-fidelity.md).
- Studio: any ``FW`` + 32 hex flow exists (otherwise 404, 20404). Missing To or From, or
  Parameters that are not a JSON object -> 400, 20001. Otherwise 201, status ``active``, with
  Parameters as ``context.flow.data`` and To as ``contact_channel_address``.

Lists are newest first, pages with PageSize (default 50, at most 1000) and Twilio-style
PageToken cursors (``PA``/``PB`` + a SID: after or before it in creation order, so a resource
that starts matching between two page requests does not shift the pages). Messages filter on
To, From, DateSent (the UTC day of the date or date-time given), DateSent> and DateSent<
(inclusive bounds; a date alone means midnight UTC); Calls on To, From, Status, StartTime,
StartTime> (on or after) and StartTime< (before); executions on status, DateCreatedFrom (on or
after) and DateCreatedTo (before). Times compare at the whole second the resource shows; a null
time never matches. 2010-04-01 pages carry relative ``*_page_uri``s, v2 pages a ``meta`` with
absolute URLs. Lists include every resource the emulator created, those whose response a fault
dropped too.

Faults (`callqueue.faults.FaultSpec`): ``faults`` apply to the five operations above,
``lookup_faults`` (429, 500, reset and slow only: a read is never processed) to the lists and
fetches; one draw from ``rng`` per request that passed auth and the concurrency limit, and a
second for ``5xx-after`` only (which of 502, 503, 504; the body an edge proxy's HTML page,
without Twilio's headers). ``slow`` answers after ``slow_seconds`` (default 12, beyond the twilio
client's 10 s read timeout), slept with the injected ``sleep``. Every request is logged, to
`TwilioEmulator.requests` and, one JSON object a line, to the optional requests log: ``t``
(arrival), ``method``, ``path`` (percent-decoded), ``params`` (form for POST, query for GET; a
repeated key becomes a list), ``status`` (null if dropped), ``code``, ``fault`` (the kind's
name, e.g. ``5xx-after``), ``processed`` (the request took effect: a message, call, verification
or execution was created or a lookup answered) and ``sid`` (of what was created).

Status callbacks: a message created with a ``StatusCallback`` URL gets one callback per status of
its timeline, each when the clock reaches it, signed with the account's auth token
(``X-Twilio-Signature``), on a background thread; an undelivered one carries ``ErrorCode``.
(Twilio's test credentials send none.) Each callback sent is logged to `TwilioEmulator.callbacks`
with the HTTP status it got (null if the URL could not be reached); at stop, callbacks not yet due
are dropped.

The default credentials below are fixed fakes for local use, not secrets.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import heapq
import hmac
import io
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, cast
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from twilio.request_validator import RequestValidator

from callqueue.faults import FAULT_HEADER, READ_KINDS, FaultKind, FaultSpec
from chalicelib.errors import CallqueueError

DEFAULT_ACCOUNT_SID = "ACfeedfacefeedfacefeedfacefeedface"
DEFAULT_AUTH_TOKEN = "emulator-auth-token-not-a-secret"  # noqa: S105 - a fixed local fake
DEFAULT_API_KEY_SID = "SKfeedfacefeedfacefeedfacefeedface"
DEFAULT_API_KEY_SECRET = "emulator-api-key-secret-not-a-secret"  # noqa: S105 - a fixed local fake


API_VERSION = "2010-04-01"
VALID_FROM = "+15005550006"
INVALID_NUMBER = "+15005550001"
FULL_QUEUE_FROM = "+15005550008"
LANDLINE_NUMBER = "+15005550009"

MAX_BODY_LENGTH = 1600
CALLBACK_POLL_SECONDS = 0.05
DEFAULT_SLOW_SECONDS = 12.0
TRIAL_PREFIX = "Sent from your Twilio trial account - "
# Twilio's message-scheduling page: SendAt more than 5 minutes ahead (older pages said 15; see
# docs/emulator-fidelity.md) and at most 35 days ahead, else error 35115.
SCHEDULE_MIN_AHEAD_SECONDS = 5 * 60
SCHEDULE_MAX_AHEAD_SECONDS = 35 * 86400
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

Json = dict[str, Any]
Form = Mapping[str, Sequence[str]]

_NO_API_KEYS: Mapping[str, str] = MappingProxyType({})

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _sid_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(prefix + r"[0-9a-fA-F]{32}")


_ACCOUNT_SID = _sid_pattern("AC")
_SERVICE_SID = _sid_pattern("VA")
_FLOW_SID = _sid_pattern("FW")
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

# Calling codes the Lookup emulation recognises; a number with any other code is
# INVALID_COUNTRY_CODE.
_CALLING_CODES: Mapping[str, str] = {
    "1": "US", "7": "RU", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE", "33": "FR",
    "34": "ES", "36": "HU", "39": "IT", "40": "RO", "41": "CH", "43": "AT", "44": "GB", "45": "DK",
    "46": "SE", "47": "NO", "48": "PL", "49": "DE", "52": "MX", "54": "AR", "55": "BR", "56": "CL",
    "57": "CO", "60": "MY", "61": "AU", "62": "ID", "63": "PH", "64": "NZ", "65": "SG", "66": "TH",
    "81": "JP", "82": "KR", "84": "VN", "86": "CN", "90": "TR", "91": "IN", "234": "NG",
    "254": "KE", "351": "PT", "353": "IE", "358": "FI", "852": "HK", "971": "AE", "972": "IL",
}  # fmt: skip

LOOKUP_FIELDS = (
    "validation",
    "caller_name",
    "sim_swap",
    "call_forwarding",
    "line_status",
    "line_type_intelligence",
    "identity_match",
    "reassigned_number",
    "sms_pumping_risk",
    "phone_number_quality_score",
    "pre_fill",
)
VERIFY_CHANNELS = ("sms", "call", "email", "whatsapp", "sna")

_ERROR_MESSAGES: Mapping[int, str] = {
    20003: "Authenticate",
    20008: "Resource not accessible with Test Account Credentials",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
}


class _ApiError(CallqueueError):
    """An error answer: Twilio's error body with the given status and code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(status: int, code: int, message: str) -> Json:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _not_found(path: str) -> _ApiError:
    return _ApiError(404, 20404, f"The requested resource {path} was not found")


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Json
    code: int | None = None
    processed: bool = False
    sid: str | None = None
    edge_page: str | None = None
    """An edge proxy's HTML page sent instead of `body`, without Twilio's headers."""

    @classmethod
    def of(cls, error: _ApiError) -> _Reply:
        return cls(error.status, error_body(error.status, error.code, error.message), error.code)


def _first(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _rfc2822(t: float) -> str:
    return format_datetime(datetime.fromtimestamp(t, UTC))


def _iso8601(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_e164(number: str) -> bool:
    return _E164.fullmatch(number) is not None


def segment_count(body: str) -> int:
    """Segments Twilio bills for a text body: GSM-7 160 (153 per part) or UCS-2 70 (67 per part)."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)


def _nanp_format(national: str) -> str:
    return f"({national[:3]}) {national[3:6]}-{national[6:]}"


@dataclass(frozen=True)
class _Stage:
    """A status a resource takes at `t` (emulator clock) on the emulator's own timeline."""

    t: float
    status: str


@dataclass(frozen=True)
class _Stored:
    """A created resource: as it was answered at creation, and the statuses it goes through.
    `seq` orders resources of one kind by creation (list pages are newest first)."""

    seq: int
    created_at: float
    resource: Json
    stages: tuple[_Stage, ...]
    error_code: int | None = None

    @property
    def sid(self) -> str:
        return str(self.resource["sid"])

    def stage_at(self, now: float) -> _Stage:
        current = self.stages[0]
        for stage in self.stages:
            if stage.t <= now:
                current = stage
        return current

    def reached(self, status: str, now: float) -> float | None:
        """When the resource took `status`, if it has by `now`."""
        return next((s.t for s in self.stages if s.status == status and s.t <= now), None)


@dataclass(frozen=True)
class _ParsedNumber:
    raw: str
    e164: str | None
    calling_code: str | None
    country: str | None
    national_format: str | None
    errors: tuple[str, ...]


def parse_number(raw: str) -> _ParsedNumber:
    """Lookup's validation as the emulator does it (see the module docstring)."""
    if raw.startswith("+"):
        digits = raw[1:]
    else:
        # National format: Lookup's default country is North America.
        digits = re.sub(r"[\s().-]", "", raw)
        if digits.isdigit() and len(digits) == 10:
            digits = "1" + digits
    if not digits.isdigit():
        return _ParsedNumber(raw, None, None, None, None, ("NOT_A_NUMBER",))
    code = next((digits[:n] for n in (1, 2, 3) if digits[:n] in _CALLING_CODES), None)
    if code is None or digits.startswith("0"):
        return _ParsedNumber(raw, None, None, None, None, ("INVALID_COUNTRY_CODE",))
    national = digits[len(code) :]
    low, high = (10, 10) if code == "1" else (4, 14 - len(code) + 1)
    if len(national) < low:
        return _ParsedNumber(raw, None, None, None, None, ("TOO_SHORT",))
    if len(national) > high or len(digits) > 15:
        return _ParsedNumber(raw, None, None, None, None, ("TOO_LONG",))
    e164 = "+" + digits
    if e164 == INVALID_NUMBER:
        return _ParsedNumber(raw, None, None, None, None, ("INVALID_BUT_POSSIBLE",))
    national_format = _nanp_format(national) if code == "1" else national
    return _ParsedNumber(raw, e164, code, _CALLING_CODES[code], national_format, ())


class _Account:
    """The emulated account's resources and the operations on them. `step`: seconds between a
    resource's status changes on the emulator's timeline."""

    def __init__(
        self,
        account_sid: str,
        clock: Callable[[], float],
        *,
        step: float = 0.05,
        trial_account: bool = False,
    ) -> None:
        self.account_sid = account_sid
        self._clock = clock
        self._step = step
        self._trial_account = trial_account
        self._lock = threading.Lock()
        self._seq = 0
        self._messages: list[_Stored] = []
        self._calls: list[_Stored] = []
        self._executions: list[_Stored] = []
        self._verifications: list[_Stored] = []

    def _store(self, into: list[_Stored], record: Callable[[int], _Stored]) -> _Stored:
        with self._lock:
            self._seq += 1
            stored = record(self._seq)
            into.append(stored)
        return stored

    def _newest_first(self, records: list[_Stored]) -> list[_Stored]:
        with self._lock:
            return list(reversed(records))

    def _find(self, records: list[_Stored], sid: str, path: str) -> _Stored:
        with self._lock:
            found = next((r for r in records if r.sid == sid), None)
        if found is None:
            raise _not_found(path)
        return found

    # -- Messages -------------------------------------------------------------------------------

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
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        initial = "scheduled" if send_at is not None else "queued" if sender else "accepted"
        resource: Json = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body or "",
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": str(segment_count(body) if body else 1),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": initial,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        code = UNDELIVERED_CODES.get(to)
        release = now if send_at is None else send_at
        stages = [_Stage(now, initial)]
        if send_at is not None:
            stages.append(_Stage(send_at, "queued"))
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
        if stage.status == "undelivered":
            view["error_code"] = stored.error_code
        return view

    def fetch_message(self, sid: str, path: str) -> _Reply:
        stored = self._find(self._messages, sid, path)
        return _Reply(200, self.message_view(stored, self._clock()))

    def list_messages(self, path: str, query: Form) -> _Reply:
        now = self._clock()
        listing = _Listing(query)
        listing.equal("To", lambda m: m.resource["to"])
        listing.equal("From", lambda m: m.resource["from"])
        # A message not yet sent has no date_sent: no DateSent filter returns it, as on Twilio.
        listing.dates("DateSent", lambda m: m.reached("sent", now), before_inclusive=True)
        return _Reply(
            200,
            listing.page_2010(
                path,
                "messages",
                self._newest_first(self._messages),
                lambda m: self.message_view(m, now),
            ),
        )

    # -- Calls ----------------------------------------------------------------------------------

    def create_call(self, form: Form) -> _Reply:
        to = _first(form, "To")
        caller = _first(form, "From")
        url = _first(form, "Url")
        if not to:
            raise _ApiError(400, 21201, "No 'To' number is specified")
        if not caller:
            raise _ApiError(400, 21213, "No 'From' number is specified")
        if not (url or _first(form, "Twiml") or _first(form, "ApplicationSid")):
            raise _ApiError(400, 21205, "Url parameter is required.")
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise _ApiError(400, 21205, f"Url is not a valid URL: {url}")
        if caller != VALID_FROM:
            if caller == INVALID_NUMBER or not _is_e164(caller):
                raise _ApiError(400, 21212, f"The caller ID {caller} is not a valid phone number.")
            raise _ApiError(
                400,
                21210,
                f"The source phone number provided, {caller}, is not yet verified for your "
                f"account. You may only make calls from phone numbers that you've verified or "
                f"purchased from Twilio.",
            )
        endpoint = to.startswith(("client:", "sip:"))
        if to == INVALID_NUMBER or not (endpoint or _is_e164(to)):
            raise _ApiError(400, 21217, f"Phone number {to} is not a valid phone number.")
        errors = {
            "+15005550002": (21214, f"'To' phone number {to} cannot be reached."),
            "+15005550003": (
                21215,
                f"Account not authorized to call {to}. Perhaps you need to enable some "
                f"international permissions.",
            ),
            "+15005550004": (21216, f"Account not allowed to call {to}."),
        }
        if to in errors:
            code, message = errors[to]
            raise _ApiError(400, code, message)
        now = self._clock()
        sid = _new_sid("CA")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}"
        subresources = {
            "notifications": "Notifications",
            "recordings": "Recordings",
            "payments": "Payments",
            "events": "Events",
            "siprec": "Siprec",
            "streams": "Streams",
            "transcriptions": "Transcriptions",
            "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
            "user_defined_messages": "UserDefinedMessages",
        }
        resource: Json = {
            "account_sid": self.account_sid,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": _rfc2822(now),
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": caller,
            "from_formatted": _nanp_format(caller[2:]) if caller.startswith("+1") else caller,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": _new_sid("PN"),
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {k: f"{uri}/{v}.json" for k, v in subresources.items()},
            "to": to,
            "to_formatted": (_nanp_format(to[2:]) if to.startswith("+1") and len(to) == 12 else to),
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }
        stages = tuple(
            _Stage(now + i * self._step, status)
            for i, status in enumerate(("queued", "ringing", "in-progress", "completed"))
        )
        self._store(self._calls, lambda seq: _Stored(seq, now, resource, stages))
        return _Reply(201, resource, processed=True, sid=sid)

    @staticmethod
    def call_view(stored: _Stored, now: float) -> Json:
        """The call at `now`: dialled (start_time) once ringing, ended once completed."""
        stage = stored.stage_at(now)
        started = stored.reached("ringing", now)
        ended = stored.reached("completed", now)
        return {
            **stored.resource,
            "status": stage.status,
            "date_updated": _rfc2822(stage.t),
            "start_time": None if started is None else _rfc2822(started),
            "end_time": None if ended is None else _rfc2822(ended),
            "duration": (None if started is None or ended is None else str(round(ended - started))),
        }

    def fetch_call(self, sid: str, path: str) -> _Reply:
        stored = self._find(self._calls, sid, path)
        return _Reply(200, self.call_view(stored, self._clock()))

    def list_calls(self, path: str, query: Form) -> _Reply:
        now = self._clock()
        listing = _Listing(query)
        listing.equal("To", lambda c: c.resource["to"])
        listing.equal("From", lambda c: c.resource["from"])
        listing.equal("Status", lambda c: c.stage_at(now).status)
        # A queued call has not been dialled: no start_time, so no StartTime filter returns it.
        listing.dates("StartTime", lambda c: c.reached("ringing", now), before_inclusive=False)
        return _Reply(
            200,
            listing.page_2010(
                path, "calls", self._newest_first(self._calls), lambda c: self.call_view(c, now)
            ),
        )

    # -- Lookup ---------------------------------------------------------------------------------

    def fetch_phone_number(self, raw_number: str, query: Form) -> _Reply:
        requested = [f.strip() for f in (_first(query, "Fields") or "").split(",") if f.strip()]
        unknown = [f for f in requested if f not in LOOKUP_FIELDS]
        if unknown:
            raise _ApiError(400, 20001, f"Invalid value for Fields: {', '.join(unknown)}")
        number = parse_number(raw_number)
        shown = number.e164 or number.raw
        body: Json = {
            "calling_country_code": number.calling_code,
            "country_code": number.country,
            "phone_number": shown,
            "national_format": number.national_format,
            "valid": number.e164 is not None,
            "validation_errors": list(number.errors) or None,
            "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{shown}",
        }
        for name in LOOKUP_FIELDS[1:]:
            body[name] = None
        if number.e164 is not None:
            packages = _lookup_packages(number.e164, number.country or "", self._clock())
            for name in requested:
                if name in packages:
                    body[name] = packages[name]
        return _Reply(200, body, processed=True)

    # -- Verify ---------------------------------------------------------------------------------

    def create_verification(self, service_sid: str, form: Form) -> _Reply:
        if not _SERVICE_SID.fullmatch(service_sid):
            raise _not_found(f"/Services/{service_sid}/Verifications")
        to = _first(form, "To")
        channel = _first(form, "Channel")
        if not to:
            raise _ApiError(400, 60200, "Invalid parameter: To")
        if channel not in VERIFY_CHANNELS:
            raise _ApiError(400, 60200, "Invalid parameter: Channel")
        address_ok = _EMAIL.fullmatch(to) if channel == "email" else _is_e164(to)
        if not address_ok or to == INVALID_NUMBER:
            raise _ApiError(400, 60200, "Invalid parameter: To")
        if to == LANDLINE_NUMBER and channel in ("sms", "whatsapp"):
            raise _ApiError(400, 60205, "SMS is not supported by landline phone number")
        now = self._clock()
        sid = _new_sid("VE")
        lookup: Json = {}
        if channel != "email":
            lookup = {
                "carrier": {
                    "error_code": None,
                    "mobile_country_code": "310",
                    "mobile_network_code": "800",
                    "name": "Callqueue Emulator Wireless",
                    "type": "mobile",
                }
            }
        resource: Json = {
            "sid": sid,
            "service_sid": service_sid,
            "account_sid": self.account_sid,
            "to": to,
            "channel": channel,
            "status": "pending",
            "valid": False,
            "lookup": lookup,
            "amount": _first(form, "Amount"),
            "payee": _first(form, "Payee"),
            "send_code_attempts": [
                {"time": _iso8601(now), "channel": channel, "attempt_sid": _new_sid("VL")}
            ],
            "date_created": _iso8601(now),
            "date_updated": _iso8601(now),
            "sna": None,
            "url": f"https://verify.twilio.com/v2/Services/{service_sid}/Verifications/{sid}",
        }
        self._store(
            self._verifications,
            lambda seq: _Stored(seq, now, resource, (_Stage(now, "pending"),)),
        )
        return _Reply(201, resource, processed=True, sid=sid)

    def fetch_verification(self, service_sid: str, sid_or_to: str, path: str) -> _Reply:
        """By SID, or by the To it was sent to (the newest such verification of the service)."""
        if not _SERVICE_SID.fullmatch(service_sid):
            raise _not_found(path)
        for stored in self._newest_first(self._verifications):
            resource = stored.resource
            if resource["service_sid"] == service_sid and sid_or_to in (
                resource["sid"],
                resource["to"],
            ):
                return _Reply(200, resource)
        raise _not_found(path)

    # -- Studio ---------------------------------------------------------------------------------

    def create_execution(self, flow_sid: str, form: Form) -> _Reply:
        if not _FLOW_SID.fullmatch(flow_sid):
            raise _not_found(f"/Flows/{flow_sid}/Executions")
        for name in ("To", "From"):
            if not _first(form, name):
                raise _ApiError(400, 20001, f"Missing required parameter {name} in the post body")
        parameters: Any = {}
        raw_parameters = _first(form, "Parameters")
        if raw_parameters:
            try:
                parameters = json.loads(raw_parameters)
            except ValueError:
                parameters = None
            if not isinstance(parameters, dict):
                raise _ApiError(400, 20001, "Parameters must be a JSON object")
        now = self._clock()
        sid = _new_sid("FN")
        url = f"https://studio.twilio.com/v2/Flows/{flow_sid}/Executions/{sid}"
        resource: Json = {
            "sid": sid,
            "account_sid": self.account_sid,
            "flow_sid": flow_sid,
            "contact_channel_address": _first(form, "To"),
            "contact_sid": _new_sid("FC"),
            "flow_version": 1,
            "context": {"flow": {"data": parameters}},
            "status": "active",
            "date_created": _iso8601(now),
            "date_updated": _iso8601(now),
            "initiated_by": self.account_sid,
            "url": url,
            "links": {"steps": f"{url}/Steps", "execution_context": f"{url}/Context"},
        }
        self._store(
            self._executions, lambda seq: _Stored(seq, now, resource, (_Stage(now, "active"),))
        )
        return _Reply(201, resource, processed=True, sid=sid)

    def fetch_execution(self, flow_sid: str, sid: str, path: str) -> _Reply:
        stored = self._find(self._executions, sid, path)
        if stored.resource["flow_sid"] != flow_sid:
            raise _not_found(path)
        return _Reply(200, stored.resource)

    def list_executions(self, flow_sid: str, path: str, query: Form) -> _Reply:
        if not _FLOW_SID.fullmatch(flow_sid):
            raise _not_found(path)
        listing = _Listing(query)
        listing.equal("FlowSid", lambda e: e.resource["flow_sid"], value=flow_sid)
        listing.equal("status", lambda e: e.resource["status"])
        listing.created_between("DateCreatedFrom", "DateCreatedTo")
        url = f"https://studio.twilio.com/v2/Flows/{flow_sid}/Executions"
        return _Reply(
            200,
            listing.page_v2(
                url, "executions", self._newest_first(self._executions), lambda e: e.resource
            ),
        )


def _lookup_packages(e164: str, country: str, now: float) -> dict[str, Any]:
    landline = e164 == LANDLINE_NUMBER
    carrier = "Callqueue Emulator " + ("Landline" if landline else "Wireless")
    return {
        "caller_name": {
            "caller_name": "EMULATED CALLER",
            "caller_type": "CONSUMER",
            "error_code": None,
        },
        "sim_swap": {
            "last_sim_swap": {
                "last_sim_swap_date": None,
                "swapped_period": "PT48H",
                "swapped_in_period": False,
            },
            "carrier_name": carrier,
            "mobile_country_code": "310",
            "mobile_network_code": "800",
            "error_code": None,
        },
        "call_forwarding": {"call_forwarding_enabled": False, "error_code": None},
        "line_status": {"status": "active", "error_code": None},
        "line_type_intelligence": {
            "mobile_country_code": "310",
            "mobile_network_code": "800",
            "carrier_name": carrier,
            "type": "landline" if landline else "mobile",
            "error_code": None,
        },
        "identity_match": {
            "first_name_match": "no_data_available",
            "last_name_match": "no_data_available",
            "address_lines_match": "no_data_available",
            "city_match": "no_data_available",
            "state_match": "no_data_available",
            "postal_code_match": "no_data_available",
            "address_country_match": "no_data_available",
            "national_id_match": "no_data_available",
            "date_of_birth_match": "no_data_available",
            "summary_score": 0,
            "error_code": None,
            "error_message": None,
        },
        "reassigned_number": {
            "last_verified_date": _iso8601(now)[:10],
            "is_number_reassigned": "no_data_available",
            "error_code": None,
        },
        "sms_pumping_risk": {
            "carrier_risk_category": "low",
            "number_blocked": False,
            "number_blocked_date": None,
            "number_blocked_last_3_months": False,
            "sms_pumping_risk_score": 0,
            "error_code": None,
        },
        "phone_number_quality_score": {
            "carrier_risk_score": 0,
            "carrier_risk_category": "low",
            "quality_score": 100,
            "quality_category": "high",
            "error_code": None,
        },
        "pre_fill": {"country_code": country, "error_code": None},
    }


def _parse_date_param(name: str, value: str) -> float:
    text = value.strip()
    if _DATE.fullmatch(text):
        text += "T00:00:00+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _ApiError(400, 20001, f"Invalid value for {name}: {value}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _int_param(query: Form, name: str, default: int, low: int, high: int) -> int:
    text = _first(query, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _ApiError(400, 20001, f"Invalid value for {name}: {text}")
    return value


class _Listing:
    """One list request: its filters (each also kept for the page URIs) and its page."""

    def __init__(self, query: Form) -> None:
        self._query = query
        self.filters: list[tuple[str, str]] = []
        self._checks: list[Callable[[_Stored], bool]] = []
        self.page_size = _int_param(query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        self.page = _int_param(query, "Page", 0, 0, sys.maxsize)
        self.token = _first(query, "PageToken")

    def equal(
        self, name: str, field_of: Callable[[_Stored], object], *, value: str | None = None
    ) -> None:
        """Keep records whose field equals the query's `name` (or `value`, a path's, unlisted)."""
        wanted = value if value is not None else _first(self._query, name)
        if wanted is None:
            return
        if value is None:
            self.filters.append((name, wanted))
        self._checks.append(lambda record: field_of(record) == wanted)

    def dates(
        self, name: str, when: Callable[[_Stored], float | None], *, before_inclusive: bool
    ) -> None:
        """Twilio's `name`, `name>` (on or after) and `name<` (on or before for DateSent, before
        for StartTime) filters on a nullable time: a record without one never matches. Times
        compare at the whole second the resource shows."""

        def shown(record: _Stored) -> float | None:
            t = when(record)
            return None if t is None else float(math.floor(t))

        on_day = _first(self._query, name)
        if on_day is not None:
            self.filters.append((name, on_day))
            day = datetime.fromtimestamp(_parse_date_param(name, on_day), UTC).date()
            self._checks.append(
                lambda r: (
                    (t := shown(r)) is not None and datetime.fromtimestamp(t, UTC).date() == day
                )
            )
        after = _first(self._query, f"{name}>")
        if after is not None:
            self.filters.append((f"{name}>", after))
            lower = _parse_date_param(f"{name}>", after)
            self._checks.append(lambda r: (t := shown(r)) is not None and t >= lower)
        before = _first(self._query, f"{name}<")
        if before is not None:
            self.filters.append((f"{name}<", before))
            upper = _parse_date_param(f"{name}<", before)
            if before_inclusive:
                self._checks.append(lambda r: (t := shown(r)) is not None and t <= upper)
            else:
                self._checks.append(lambda r: (t := shown(r)) is not None and t < upper)

    def created_between(self, low_name: str, high_name: str) -> None:
        """Studio's DateCreatedFrom (on or after) and DateCreatedTo (before)."""
        low = _first(self._query, low_name)
        if low is not None:
            self.filters.append((low_name, low))
            lower = _parse_date_param(low_name, low)
            self._checks.append(lambda r: math.floor(r.created_at) >= lower)
        high = _first(self._query, high_name)
        if high is not None:
            self.filters.append((high_name, high))
            upper = _parse_date_param(high_name, high)
            self._checks.append(lambda r: math.floor(r.created_at) < upper)

    def _select(self, newest_first: Sequence[_Stored]) -> tuple[list[_Stored], bool, bool]:
        """This page's records and whether pages come before and after it. A PageToken is a
        cursor on the creation order of all records of the kind, not a position among those that
        match: a record that starts matching between two page requests (a message becoming
        sent) neither shifts later pages nor invalidates the cursor."""
        matching = [r for r in newest_first if all(check(r) for check in self._checks)]
        start = 0
        if self.token is not None:
            kind, sid = self.token[:2], self.token[2:]
            seq = next((r.seq for r in newest_first if r.sid == sid), None)
            if kind not in ("PA", "PB") or seq is None:
                raise _ApiError(400, 20001, f"Invalid value for PageToken: {self.token}")
            if kind == "PA":
                start = sum(1 for r in matching if r.seq >= seq)
            else:
                start = max(sum(1 for r in matching if r.seq > seq) - self.page_size, 0)
        items = matching[start : start + self.page_size]
        return items, start > 0, start + len(items) < len(matching)

    def _query_string(self, number: int, page_token: str | None) -> str:
        params = [*self.filters, ("PageSize", str(self.page_size)), ("Page", str(number))]
        if page_token is not None:
            params.append(("PageToken", page_token))
        return urlencode(params)

    def _cursors(
        self, items: list[_Stored], has_previous: bool, has_next: bool
    ) -> tuple[str | None, str | None]:
        previous = self._query_string(self.page - 1, "PB" + items[0].sid) if has_previous else None
        following = self._query_string(self.page + 1, "PA" + items[-1].sid) if has_next else None
        return previous, following

    def page_2010(
        self,
        path: str,
        key: str,
        newest_first: Sequence[_Stored],
        view: Callable[[_Stored], Json],
    ) -> Json:
        """A 2010-04-01 list page: relative ``*_page_uri``s, ``start`` and ``end``."""
        items, has_previous, has_next = self._select(newest_first)
        previous, following = self._cursors(items, has_previous, has_next)
        return {
            "end": self.page * self.page_size + max(len(items), 1) - 1,
            "first_page_uri": f"{path}?{self._query_string(0, None)}",
            key: [view(item) for item in items],
            "next_page_uri": None if following is None else f"{path}?{following}",
            "page": self.page,
            "page_size": self.page_size,
            "previous_page_uri": None if previous is None else f"{path}?{previous}",
            "start": self.page * self.page_size,
            "uri": f"{path}?{self._query_string(self.page, self.token)}",
        }

    def page_v2(
        self,
        url: str,
        key: str,
        newest_first: Sequence[_Stored],
        view: Callable[[_Stored], Json],
    ) -> Json:
        """A v2 list page: absolute URLs under ``meta``."""
        items, has_previous, has_next = self._select(newest_first)
        previous, following = self._cursors(items, has_previous, has_next)
        return {
            key: [view(item) for item in items],
            "meta": {
                "first_page_url": f"{url}?{self._query_string(0, None)}",
                "key": key,
                "next_page_url": None if following is None else f"{url}?{following}",
                "page": self.page,
                "page_size": self.page_size,
                "previous_page_url": None if previous is None else f"{url}?{previous}",
                "url": f"{url}?{self._query_string(self.page, self.token)}",
            },
        }


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


def smart_encode(body: str) -> str:
    """The body with Unicode look-alikes replaced by GSM-7 characters, as SmartEncoded does."""
    return body.translate(_SMART_ENCODING)


class _Faulted(StrEnum):
    """Which fault spec a route draws from."""

    NEVER = "never"
    OPERATION = "operation"
    LOOKUP = "lookup"


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    faulted: _Faulted
    account_scoped: bool
    operation: Callable[[_Account, tuple[str, ...], str, Form], _Reply]
    test_credentials: bool = False
    """Whether Twilio's test credentials may use it (docs/iam/test-credentials)."""


_ACCOUNT_PREFIX = r"/2010-04-01/Accounts/([^/]+)"

_ROUTES = (
    _Route(
        "POST",
        re.compile(_ACCOUNT_PREFIX + r"/Messages\.json"),
        faulted=_Faulted.OPERATION,
        account_scoped=True,
        operation=lambda account, _args, _path, form: account.create_message(form),
        test_credentials=True,
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Messages\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, _args, path, query: account.list_messages(path, query),
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Messages/([^/]+)\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, args, path, _query: account.fetch_message(args[1], path),
    ),
    _Route(
        "POST",
        re.compile(_ACCOUNT_PREFIX + r"/Calls\.json"),
        faulted=_Faulted.OPERATION,
        account_scoped=True,
        operation=lambda account, _args, _path, form: account.create_call(form),
        test_credentials=True,
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Calls\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, _args, path, query: account.list_calls(path, query),
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Calls/([^/]+)\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, args, path, _query: account.fetch_call(args[1], path),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/PhoneNumbers/([^/]+)"),
        faulted=_Faulted.OPERATION,
        account_scoped=False,
        operation=lambda account, args, _path, query: account.fetch_phone_number(args[0], query),
        test_credentials=True,
    ),
    _Route(
        "POST",
        re.compile(r"/v2/Services/([^/]+)/Verifications"),
        faulted=_Faulted.OPERATION,
        account_scoped=False,
        operation=lambda account, args, _path, form: account.create_verification(args[0], form),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/Services/([^/]+)/Verifications/([^/]+)"),
        faulted=_Faulted.LOOKUP,
        account_scoped=False,
        operation=lambda account, args, path, _query: account.fetch_verification(
            args[0], args[1], path
        ),
    ),
    _Route(
        "POST",
        re.compile(r"/v2/Flows/([^/]+)/Executions"),
        faulted=_Faulted.OPERATION,
        account_scoped=False,
        operation=lambda account, args, _path, form: account.create_execution(args[0], form),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/Flows/([^/]+)/Executions"),
        faulted=_Faulted.LOOKUP,
        account_scoped=False,
        operation=lambda account, args, path, query: account.list_executions(args[0], path, query),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/Flows/([^/]+)/Executions/([^/]+)"),
        faulted=_Faulted.LOOKUP,
        account_scoped=False,
        operation=lambda account, args, path, _query: account.fetch_execution(
            args[0], args[1], path
        ),
    ),
)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def _loggable(params: Mapping[str, Sequence[str]]) -> dict[str, str | list[str]]:
    return {k: v[0] if len(v) == 1 else list(v) for k, v in params.items()}


@dataclass
class _Exchange:
    """One request as the emulator decided to answer it."""

    arrival: float
    concurrent: int
    reply: _Reply
    fault: FaultKind | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def dropped(self) -> bool:
        return self.fault in (FaultKind.RESET, FaultKind.LOST_RESPONSE)


EDGE_STATUSES = (502, 503, 504)
_EDGE_REASONS: Mapping[int, str] = {
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}


def _edge_page(status: int) -> str:
    """What a load balancer in front of Twilio answers: its own HTML, not Twilio's JSON error."""
    title = f"{status} {_EDGE_REASONS[status]}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )


# The emulator's delivery failures by To number (see the module docstring).
UNDELIVERED_CODES: Mapping[str, int] = {
    "+15005550030": 30003,
    "+15005550050": 30005,
    "+15005550060": 30006,
    "+15005550070": 30007,
}


class _CallbackSender:
    """Posts signed status callbacks on one thread, each when its message reaches that status on
    the emulator's clock (in the order of those times). At stop, callbacks already due are posted
    and later ones dropped, as a scheduled message's could be days away."""

    def __init__(self, auth_token: str, clock: Callable[[], float]) -> None:
        self._validator = RequestValidator(auth_token)
        self._clock = clock
        self._due: list[tuple[float, int, str, dict[str, str]]] = []
        self._order = 0
        self._stopping = False
        self._wake = threading.Condition()
        self._lock = threading.Lock()
        self._sent: list[Json] = []
        # No proxy from the environment may capture a loopback callback.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._thread: threading.Thread | None = None

    @property
    def sent(self) -> list[Json]:
        with self._lock:
            return list(self._sent)

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="twilio-callbacks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            with self._wake:
                self._stopping = True
                self._wake.notify()
            self._thread.join()
            self._thread = None

    def message_created(self, url: str, message: _Stored) -> None:
        resource = message.resource
        base = {
            "AccountSid": str(resource["account_sid"]),
            "ApiVersion": API_VERSION,
            "From": str(resource["from"] or ""),
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "To": str(resource["to"]),
        }
        with self._wake:
            for stage in message.stages:
                form = {**base, "MessageStatus": stage.status, "SmsStatus": stage.status}
                if stage.status == "undelivered" and message.error_code is not None:
                    form["ErrorCode"] = str(message.error_code)
                self._order += 1
                heapq.heappush(self._due, (stage.t, self._order, url, form))
            self._wake.notify()

    def _next(self) -> tuple[str, dict[str, str]] | None:
        """The next callback once it is due; None once stopping and none is due."""
        with self._wake:
            while True:
                if self._due and self._due[0][0] <= self._clock():
                    _, _, url, form = heapq.heappop(self._due)
                    return url, form
                if self._stopping:
                    return None
                # The clock may be a test's, moved by hand: look again at least every tick.
                wait = CALLBACK_POLL_SECONDS
                if self._due:
                    wait = min(max(self._due[0][0] - self._clock(), 0.0), wait)
                self._wake.wait(wait)

    def _run(self) -> None:
        while (item := self._next()) is not None:
            self._post(*item)

    def _post(self, url: str, form: dict[str, str]) -> None:
        request = urllib.request.Request(  # noqa: S310 - the URL the message asked for
            url,
            data=urlencode(form).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self._validator.compute_signature(url, form),
                "User-Agent": "TwilioProxy/1.1",
            },
            method="POST",
        )
        status: int | None
        try:
            with self._opener.open(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError):
            status = None  # unreachable: logged as such, as Twilio's debugger would show
        with self._lock:
            self._sent.append(
                {
                    "url": url,
                    "MessageSid": form["MessageSid"],
                    "status": form["MessageStatus"],
                    "http_status": status,
                }
            )


class TwilioEmulator:
    """Serves the emulated Twilio API on a background thread; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account_sid: str,
        auth_token: str,
        api_keys: Mapping[str, str] = _NO_API_KEYS,
        latency: float | Callable[[], float] = 0.0,
        concurrency_limit: int | None = None,
        faults: FaultSpec | None = None,
        requests_log: Path | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        callback_delay: float = 0.05,
        lookup_faults: FaultSpec | None = None,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        trial_account: bool = False,
        test_credentials: bool = False,
    ) -> None:
        """`callback_delay`: seconds between a message's (or call's) status changes, and so
        between its status callbacks. `faults` apply to the operations, `lookup_faults` (429,
        500, reset and slow only) to the lists and fetches. `slow_seconds`: how late a ``slow``
        fault answers. `trial_account`: bodies get Twilio's trial prefix. `test_credentials`: the
        account SID and auth token are the account's test credentials (see the module
        docstring)."""
        if not _ACCOUNT_SID.fullmatch(account_sid):
            raise ValueError(f"account SID must be AC followed by 32 hex digits: {account_sid!r}")
        if concurrency_limit is not None and concurrency_limit < 1:
            raise ValueError(f"concurrency limit must be at least 1, got {concurrency_limit}")
        if lookup_faults is not None and not lookup_faults.kinds() <= READ_KINDS:
            unfit = ", ".join(sorted(k.value for k in lookup_faults.kinds() - READ_KINDS))
            raise ValueError(f"look-ups change nothing, so these faults cannot apply: {unfit}")
        if slow_seconds < 0:
            raise ValueError(f"slow_seconds must not be negative, got {slow_seconds}")
        self._host = host
        self._port = port
        self._account = _Account(
            account_sid, clock, step=callback_delay, trial_account=trial_account
        )
        self._lookup_faults = lookup_faults
        self._slow_seconds = slow_seconds
        self._test_credentials = test_credentials
        self._secrets: dict[str, str] = {**api_keys, account_sid: auth_token}
        self._latency = latency
        self._concurrency_limit = concurrency_limit
        self._faults = faults
        self._requests_log = requests_log
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight = 0
        self._requests: list[Json] = []
        self._log_file: IO[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._callbacks = _CallbackSender(auth_token, clock)

    @property
    def account_sid(self) -> str:
        return self._account.account_sid

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return f"http://{self._host}:{self._server.server_address[1]}"

    @property
    def callbacks(self) -> list[Json]:
        """A snapshot of every status callback posted so far, in order."""
        return self._callbacks.sent

    @property
    def requests(self) -> list[Json]:
        """A snapshot of every request logged so far, in the order they finished."""
        with self._lock:
            return list(self._requests)

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        if self._requests_log is not None:
            self._log_file = self._requests_log.open("a", encoding="utf-8")
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="twilio-emulator",
            daemon=True,
        )
        self._thread.start()
        self._callbacks.start()

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        server = self._server
        if server is None:
            return 0
        with server._connections_lock:
            return len(server._connections)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._callbacks.stop()
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join()
        self._server = self._thread = None
        with self._lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> TwilioEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- request handling (called on the server's threads) --------------------------------------

    def _exchange(
        self,
        method: str,
        target: str,
        authorization: str | None,
        body: bytes,
        received_at: float | None = None,
    ) -> _Exchange:
        """Decide the answer to one request and log it; the caller sends it (or drops it).
        `received_at`: when the request's first bytes reached this machine (wall clock), its
        arrival unless the emulator runs on another clock."""
        arrival = (
            received_at if received_at is not None and self._clock is time.time else self._clock()
        )
        with self._lock:
            self._in_flight += 1
            concurrent = self._in_flight
        try:
            parts = urlsplit(target)
            path = unquote(parts.path)
            if method == "POST":
                params = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            else:
                params = parse_qs(parts.query, keep_blank_values=True)
            reply, fault = self._decide(
                method,
                raw_path=parts.path,
                path=path,
                params=params,
                authorization=authorization,
                concurrent=concurrent,
            )
            result = _Exchange(arrival, concurrent, reply, fault)
            if result.fault is FaultKind.CRASH:
                result.extra_headers[FAULT_HEADER] = FaultKind.CRASH.value
            self._log(result, method, path, params)
            callback = _first(params, "StatusCallback")
            credentials = _basic_credentials(authorization)
            if (
                callback
                and reply.processed
                and reply.sid is not None
                and method == "POST"
                and path.endswith("/Messages.json")
                # Twilio sends no status callbacks for test credentials' messages.
                and not (credentials is not None and self._is_test(credentials[0]))
            ):
                self._callbacks.message_created(callback, self._account.message_record(reply.sid))
            return result
        finally:
            # Out of flight before the response goes out, so that a client's next request never
            # overlaps this one.
            with self._lock:
                self._in_flight -= 1

    def _decide(
        self,
        method: str,
        *,
        raw_path: str,
        path: str,
        params: Form,
        authorization: str | None,
        concurrent: int,
    ) -> tuple[_Reply, FaultKind | None]:
        route, args = _match(method, raw_path)
        if route is None:
            return _Reply.of(_not_found(path)), None
        credentials = _basic_credentials(authorization)
        if credentials is None or not self._authenticated(*credentials):
            return self._error(401, 20003), None
        if route.account_scoped:
            if not _ACCOUNT_SID.fullmatch(args[0]):
                return _Reply.of(_not_found(path)), None
            if args[0] != self.account_sid:
                return self._error(401, 20003), None
        if self._is_test(credentials[0]) and not route.test_credentials:
            return self._error(403, 20008), None
        over_limit = self._concurrency_limit is not None and concurrent > self._concurrency_limit
        spec = {_Faulted.OPERATION: self._faults, _Faulted.LOOKUP: self._lookup_faults}.get(
            route.faulted
        )
        fault = None
        if not over_limit and spec is not None:
            with self._lock:
                fault = spec.pick(self._rng.random())
        if over_limit or fault is FaultKind.TOO_MANY_REQUESTS:
            return self._error(429, 20429), fault
        if fault is FaultKind.SERVER_ERROR:
            return self._error(500, 20500), fault
        if fault is FaultKind.RESET:
            return _Reply(0, {}), fault
        delay = self._latency() if callable(self._latency) else self._latency
        if delay > 0:
            self._sleep(delay)
        try:
            reply = route.operation(self._account, args, path, params)
        except _ApiError as error:
            reply = _Reply.of(error)
        if fault is FaultKind.SERVER_ERROR_AFTER:
            # A second draw, only for this kind, so the kinds' draws stay as they were.
            with self._lock:
                draw = self._rng.random()
            status = EDGE_STATUSES[min(int(draw * len(EDGE_STATUSES)), len(EDGE_STATUSES) - 1)]
            reply = _Reply(
                status,
                {},
                processed=reply.processed,
                sid=reply.sid,
                edge_page=_edge_page(status),
            )
        if fault is FaultKind.SLOW:
            self._sleep(self._slow_seconds)
        return reply, fault

    def _is_test(self, username: str) -> bool:
        """Whether a request authenticated as `username` used the account's test credentials
        (an API key never is one)."""
        return self._test_credentials and username == self.account_sid

    def _authenticated(self, username: str, password: str) -> bool:
        secret = self._secrets.get(username)
        return secret is not None and hmac.compare_digest(secret.encode(), password.encode())

    @staticmethod
    def _error(status: int, code: int) -> _Reply:
        return _Reply(status, error_body(status, code, _ERROR_MESSAGES[code]), code)

    def _log(self, result: _Exchange, method: str, path: str, params: Form) -> None:
        reply = result.reply
        entry: Json = {
            "t": result.arrival,
            "method": method,
            "path": path,
            "params": _loggable(params),
            "status": None if result.dropped else reply.status,
            "code": reply.code,
            "fault": result.fault.value if result.fault is not None else None,
            "processed": reply.processed,
            "sid": reply.sid,
        }
        with self._lock:
            self._requests.append(entry)
            if self._log_file is not None:
                self._log_file.write(json.dumps(entry) + "\n")
                self._log_file.flush()

    def _response_headers(self, result: _Exchange) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Twilio-Request-Id": _new_sid("RQ"),
            "Twilio-Concurrent-Requests": str(result.concurrent),
            "Twilio-Request-Duration": f"{max(self._clock() - result.arrival, 0.0):.3f}",
            **(
                {"WWW-Authenticate": 'Basic realm="Twilio API"'}
                if result.reply.status == 401
                else {}
            ),
            **result.extra_headers,
        }


def _match(method: str, raw_path: str) -> tuple[_Route | None, tuple[str, ...]]:
    for route in _ROUTES:
        match = route.pattern.fullmatch(raw_path)
        if match is not None and route.method == method:
            return route, tuple(unquote(group) for group in match.groups())
    return None, ()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of new connections from a parallel sender must not overflow the listen backlog.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: TwilioEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)
        if _SO_TIMESTAMPNS is not None:
            # Set on the listening socket, a connection has it from the start: its first bytes
            # may come before its handler thread runs.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads idling on keep-alive connections so they end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away; nothing to answer
        super().handle_error(request, client_address)


# Linux's socket option for the kernel's receive time of each read's data (not named in the
# socket module of every Python); elsewhere requests are stamped when they are read.
_SO_TIMESTAMPNS: int | None = getattr(
    socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None
)


class _StampedReader(io.RawIOBase):
    """A connection's reads, noting the kernel's receive time of the first data read since
    `received_at` was last cleared: a request is stamped when it reached the machine, not when a
    thread of this process got round to reading it. On a 2-core machine shared with moto and the
    sender, the emulator's threads wait their turn for a core: stamped as they read, a 15 ms wait
    put five requests within 3 ms of each other, where their data had come 5 ms apart."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self.received_at: float | None = None
        self._first = True

    def clear(self) -> None:
        """The next read is a new request's first."""
        self.received_at, self._first = None, True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        read, ancillary, _, _ = self._connection.recvmsg_into([buffer], socket.CMSG_SPACE(16))
        if read and self._first:
            # Only the first read's time is the request's (later reads are later bytes).
            self._first = False
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", data[:16])
                    self.received_at = seconds + nanoseconds / 1e9
        return read


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    _stamps: _StampedReader | None = None

    def setup(self) -> None:
        super().setup()
        if _SO_TIMESTAMPNS is None:
            return
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            return  # not supported here: stamped when read
        self._stamps = _StampedReader(self.connection)
        unstamped, self.rfile = self.rfile, io.BufferedReader(self._stamps)
        unstamped.close()  # the socket is closed for real only once its files are

    def handle_one_request(self) -> None:
        if self._stamps is not None:
            self._stamps.clear()
        super().handle_one_request()

    def version_string(self) -> str:
        return "callqueue-twilio-emulator"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        emulator = cast(_Server, self.server).emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        result = emulator._exchange(
            self.command,
            self.path,
            self.headers.get("Authorization"),
            body,
            self._stamps.received_at if self._stamps is not None else None,
        )
        if result.dropped:
            # RST instead of a response: the client sees a connection error and cannot tell
            # whether the request took effect.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if result.reply.edge_page is not None:
            payload = result.reply.edge_page.encode("utf-8")
            headers = {"Content-Type": "text/html", "Server": "awselb/2.0"}
        else:
            payload = json.dumps(result.reply.body).encode("utf-8")
            headers = emulator._response_headers(result)
        self.send_response(result.reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request line on stderr; the requests log records every request."""


def serve_forever_cli(
    host: str,
    port: int,
    requests_log: Path | None,
    faults: FaultSpec | None,
    *,
    latency: float = 0.0,
    concurrency_limit: int | None = None,
    seed: int | None = None,
) -> None:
    """Run an emulator with the default fake credentials until interrupted (Ctrl-C)."""
    emulator = TwilioEmulator(
        host=host,
        port=port,
        account_sid=DEFAULT_ACCOUNT_SID,
        auth_token=DEFAULT_AUTH_TOKEN,
        api_keys={DEFAULT_API_KEY_SID: DEFAULT_API_KEY_SECRET},
        latency=latency,
        concurrency_limit=concurrency_limit,
        faults=faults,
        requests_log=requests_log,
        rng=random.Random(seed),
    )
    with emulator:
        print(f"Twilio emulator listening on {emulator.base_url}", flush=True)
        print(f"  account SID {DEFAULT_ACCOUNT_SID}, auth token {DEFAULT_AUTH_TOKEN}", flush=True)
        print(f"  API key {DEFAULT_API_KEY_SID}, secret {DEFAULT_API_KEY_SECRET}", flush=True)
        if faults is not None and faults.total:
            print(f"  faults {faults}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
