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
+15005550070 -> 30007 (filtered); a message to +15005550080 goes queued -> failed with 30008
(never sent, no ``date_sent``). A scheduled message stays ``scheduled`` (no date_sent) until
its SendAt, then goes queued -> sent -> final a step apart. A call goes queued -> ringing
(``start_time`` set; null while queued) -> in-progress -> completed (``end_time``, ``duration``:
whole seconds from ringing to the end), or by these To numbers (the emulator's own):
+15005550081 queued -> ringing -> busy, +15005550082 queued -> ringing -> (two steps) no-answer,
+15005550083 queued -> failed; these end with ``end_time`` and a null ``duration``. With
``MachineDetection`` (Enable or DetectMessageEnd) an answered call's ``answered_by`` is ``human``
from in-progress on, or for To +15005550084 ``machine_start`` (Enable) or ``machine_end_beep``
(DetectMessageEnd).
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

Faults (`callqueue.local.faults.FaultSpec`): ``faults`` apply to the five operations above,
``lookup_faults`` (429, 500, reset and slow only: a read is never processed) to the lists and
fetches; one draw from ``rng`` per request that passed auth and the concurrency limit, and a
second for ``5xx-after`` only (which of 502, 503, 504; the body an edge proxy's HTML page,
without Twilio's headers). ``slow`` answers after ``slow_seconds`` (default 12, beyond the twilio
client's 10 s read timeout), slept with the injected ``sleep``. Every request is logged, to
`TwilioEmulator.requests` and, one JSON object a line, to the optional requests log: ``t``
(arrival), ``method``, ``path`` (percent-decoded), ``params`` (form for POST, query for GET; a
repeated key becomes a list), ``status`` (null if dropped), ``code``, ``fault`` (the kind's
name, e.g. ``5xx-after``), ``processed`` (the request took effect: a message, call, verification
or execution was created or a lookup answered), ``sid`` (of what was created), ``concurrent``
and ``duration`` (what its Twilio-Concurrent-Requests and Twilio-Request-Duration said).

Status callbacks: a message created with a ``StatusCallback`` URL gets one callback per status of
its timeline, each when the clock reaches it, signed with the account's auth token
(``X-Twilio-Signature``), on a background thread; an undelivered one carries ``ErrorCode``.
A call created with a ``StatusCallback`` gets one for each ``StatusCallbackEvent`` it asked for
(none: ``completed`` alone) that its timeline reaches: ``initiated`` (CallStatus initiated, at
creation), ``ringing``, ``answered`` (in-progress), ``completed`` (the final status, with
``CallDuration`` when the call has a duration); AnsweredBy when the call has one; always POSTed,
whatever StatusCallbackMethod says. Each callback's form is built from the call as a fetch at
that moment shows it. (Twilio's test credentials send none.) Each callback sent is logged to
`TwilioEmulator.callbacks` with the HTTP status it got (null if the URL could not be reached); at
stop, callbacks not yet due are dropped.

Incoming messages: `TwilioEmulator.reply(from_number, to_number, body)` posts a recipient's reply
at once to the ``inbound_url`` the emulator was given (the account's incoming-message webhook),
with Twilio's form (From, To, Body, AccountSid, MessageSid, ...) and signed as callbacks are.

The default credentials (``DEFAULT_*``) are fixed fakes for local use, not secrets.

The package's modules, each importing only modules listed before it: `core` (shared types,
errors and helpers), `store` (resources, their timelines and the account's store), `lists`
(paging and filters), one module per API (`messages`, `calls`, `lookup`, `verify`, `studio`),
`account` (the account with every API's operations), `routes`, `callbacks` (status callbacks),
`inbound` (replies to the incoming-message webhook), `answer` (how one request is answered and
logged), `transport` (the HTTP server and handler) and `server` (`TwilioEmulator` itself).
"""

from __future__ import annotations

from callqueue.local.emulator.answer import EDGE_STATUSES
from callqueue.local.emulator.callbacks import CALLBACK_POLL_SECONDS
from callqueue.local.emulator.calls import CALL_OUTCOMES, MACHINE_NUMBER
from callqueue.local.emulator.core import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_API_KEY_SECRET,
    DEFAULT_API_KEY_SID,
    DEFAULT_AUTH_TOKEN,
    Form,
    Json,
    error_body,
)
from callqueue.local.emulator.lists import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from callqueue.local.emulator.lookup import LOOKUP_FIELDS, parse_number
from callqueue.local.emulator.magic_numbers import INVALID_NUMBER, LANDLINE_NUMBER, VALID_FROM
from callqueue.local.emulator.messages import (
    FAILED_CODES,
    FULL_QUEUE_FROM,
    MAX_BODY_LENGTH,
    SCHEDULE_MAX_AHEAD_SECONDS,
    SCHEDULE_MIN_AHEAD_SECONDS,
    TRIAL_PREFIX,
    UNDELIVERED_CODES,
    segment_count,
    smart_encode,
)
from callqueue.local.emulator.server import DEFAULT_SLOW_SECONDS, TwilioEmulator, serve_forever_cli
from callqueue.local.emulator.verify import VERIFY_CHANNELS
from callqueue.local.faults import FAULT_HEADER

__all__ = [
    "API_VERSION",
    "CALLBACK_POLL_SECONDS",
    "CALL_OUTCOMES",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_API_KEY_SECRET",
    "DEFAULT_API_KEY_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_SLOW_SECONDS",
    "EDGE_STATUSES",
    "FAILED_CODES",
    "FAULT_HEADER",
    "FULL_QUEUE_FROM",
    "INVALID_NUMBER",
    "LANDLINE_NUMBER",
    "LOOKUP_FIELDS",
    "MACHINE_NUMBER",
    "MAX_BODY_LENGTH",
    "MAX_PAGE_SIZE",
    "SCHEDULE_MAX_AHEAD_SECONDS",
    "SCHEDULE_MIN_AHEAD_SECONDS",
    "TRIAL_PREFIX",
    "UNDELIVERED_CODES",
    "VALID_FROM",
    "VERIFY_CHANNELS",
    "Form",
    "Json",
    "TwilioEmulator",
    "error_body",
    "parse_number",
    "segment_count",
    "serve_forever_cli",
    "smart_encode",
]
