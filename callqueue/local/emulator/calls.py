"""The Calls API (2010-04-01): creation with Twilio's test-credential magic numbers; the
emulator's own call outcomes and answering-machine detection; fetch and list, which show where a
call is on its timeline; the status callbacks of the progress events a call asks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from callqueue.local.emulator.core import (
    API_VERSION,
    Form,
    Json,
    _ApiError,
    _first,
    _is_e164,
    _nanp_format,
    _new_sid,
    _outbound_resource,
    _Reply,
    _rfc2822,
)
from callqueue.local.emulator.lists import _Listing
from callqueue.local.emulator.magic_numbers import INVALID_NUMBER, VALID_FROM
from callqueue.local.emulator.store import _AccountStore, _Stage, _Stored

# The emulator's call outcomes by To number (see the package docstring); any other is answered.
CALL_OUTCOMES: Mapping[str, str] = {
    "+15005550081": "busy",
    "+15005550082": "no-answer",
    "+15005550083": "failed",
}
# Answered by a machine, when the call asks for answering-machine detection.
MACHINE_NUMBER = "+15005550084"
# AnsweredBy of a machine by the MachineDetection asked for; a person is always `human`.
_MACHINE_ANSWERS = {"Enable": "machine_start", "DetectMessageEnd": "machine_end_beep"}
_FINAL_STATUSES = frozenset(("completed", "busy", "no-answer", "failed", "canceled"))

# A call's subresources: key in `subresource_uris`, name in the URI.
_SUBRESOURCES = {
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


def _call_resource(account_sid: str, sid: str, now: float, caller: str, to: str) -> Json:
    """The call as its creation answers it (queued, not yet dialled)."""
    fields = {
        "answered_by": None,
        "caller_name": None,
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": caller,
        "from_formatted": _nanp_format(caller[2:]) if caller.startswith("+1") else caller,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": _new_sid("PN"),
        "queue_time": "0",
        "start_time": None,
        "to_formatted": (_nanp_format(to[2:]) if to.startswith("+1") and len(to) == 12 else to),
        "trunk_sid": None,
    }
    return _outbound_resource(account_sid, "Calls", sid, now, "queued", to, _SUBRESOURCES, fields)


class _CallsApi(_AccountStore):
    """The account's Calls operations."""

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
        resource = _call_resource(self.account_sid, sid, now, caller, to)
        stages = self._call_stages(now, CALL_OUTCOMES.get(to, "completed"))
        answered_by = None
        detection = _first(form, "MachineDetection")
        if detection in _MACHINE_ANSWERS and to not in CALL_OUTCOMES:
            answered_by = _MACHINE_ANSWERS[detection] if to == MACHINE_NUMBER else "human"
        self._store(
            self._calls,
            lambda seq: _Stored(seq, now, resource, stages, answered_by=answered_by),
        )
        return _Reply(201, resource, processed=True, sid=sid)

    def _call_stages(self, now: float, outcome: str) -> tuple[_Stage, ...]:
        """queued -> ringing -> in-progress -> completed a step apart; a busy line ends where it
        would have been answered, an unanswered call rings as long as an answered one lasts,
        and a failed one ends without ringing."""
        statuses = {
            "completed": ("queued", "ringing", "in-progress", "completed"),
            "busy": ("queued", "ringing", "busy"),
            "no-answer": ("queued", "ringing", None, "no-answer"),
            "failed": ("queued", "failed"),
        }[outcome]
        return tuple(
            _Stage(now + i * self._step, status)
            for i, status in enumerate(statuses)
            if status is not None
        )

    def call_record(self, sid: str) -> _Stored:
        """A call created here: its callbacks follow its stages."""
        with self._lock:
            return next(c for c in self._calls if c.sid == sid)

    @staticmethod
    def call_view(stored: _Stored, now: float) -> Json:
        """The call at `now`: dialled (start_time) once ringing, ended (end_time) once final;
        an answered call's `duration` (whole seconds from ringing to its end) and `answered_by`
        (with answering-machine detection) once it has them. Twilio leaves `duration` empty for
        busy, failed and unanswered calls."""
        stage = stored.stage_at(now)
        started = stored.reached("ringing", now)
        ended = stage.t if stage.status in _FINAL_STATUSES else None
        answered = stored.reached("in-progress", now)
        return {
            **stored.resource,
            "status": stage.status,
            "date_updated": _rfc2822(stage.t),
            "start_time": None if started is None else _rfc2822(started),
            "end_time": None if ended is None else _rfc2822(ended),
            "duration": (
                str(round(ended - started))
                if stage.status == "completed" and started is not None and ended is not None
                else None
            ),
            "answered_by": None if answered is None else stored.answered_by,
        }

    def fetch_call(self, sid: str, path: str) -> _Reply:
        return _Reply(200, self.call_view(self._find(self._calls, sid, path), self._clock()))

    def list_calls(self, path: str, query: Form) -> _Reply:
        now = self._clock()
        listing = _Listing(query)
        listing.addressed()
        listing.equal("Status", lambda c: c.stage_at(now).status)
        # A queued call has not been dialled: no start_time, so no StartTime filter returns it.
        listing.dates("StartTime", lambda c: c.reached("ringing", now), before_inclusive=False)
        calls = self._newest_first(self._calls)
        return _Reply(
            200, listing.page_2010(path, "calls", calls, lambda c: self.call_view(c, now))
        )


# Each progress event a StatusCallbackEvent may name, by the status that raises it.
_EVENT_OF_STATUS = {"queued": "initiated", "ringing": "ringing", "in-progress": "answered"}


def call_callback_forms(
    stored: _Stored, events: Iterable[str] | None
) -> list[tuple[float, dict[str, str]]]:
    """The status callbacks of a call asking for `events` (None or none: `completed` alone, as
    Twilio sends), each with its time and Twilio's form, built from the call as a fetch at that
    time shows it, so the two always agree."""
    wanted = set(events or ()) or {"completed"}
    forms: list[tuple[float, dict[str, str]]] = []
    for stage in stored.stages:
        event = "completed" if stage.status in _FINAL_STATUSES else _EVENT_OF_STATUS[stage.status]
        if event not in wanted:
            continue
        view = _CallsApi.call_view(stored, stage.t)
        form = {
            "AccountSid": str(view["account_sid"]),
            "ApiVersion": API_VERSION,
            "CallSid": stored.sid,
            "CallStatus": "initiated" if event == "initiated" else stage.status,
            "Called": str(view["to"]),
            "Caller": str(view["from"]),
            "CallbackSource": "call-progress-events",
            "Direction": "outbound-api",
            "From": str(view["from"]),
            "SequenceNumber": str(len(forms)),
            "Timestamp": _rfc2822(stage.t),
            "To": str(view["to"]),
        }
        if view["duration"] is not None:
            form["CallDuration"] = str(view["duration"])
        if view["answered_by"] is not None:
            form["AnsweredBy"] = str(view["answered_by"])
        forms.append((stage.t, form))
    return forms
