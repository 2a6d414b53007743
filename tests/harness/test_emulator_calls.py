"""The emulator's calls: answered, busy, no-answer and failed by the number called, answering-
machine detection, and a signed status callback for each progress event a call asks for, which
agrees with a fetch of the call at that moment."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from callqueue.local.emulator import (
    CALL_OUTCOMES,
    DEFAULT_AUTH_TOKEN,
    MACHINE_NUMBER,
)
from tests.harness.test_emulator import (
    ACCOUNT,
    CALL,
    T0,
    VALID_FROM,
    FakeClock,
    Sdk,
    assert_valid_body,
    emulator_with,
    sdk_for,
    timed_emulator,
)

EVENTS = ["initiated", "ringing", "answered", "completed"]
ANSWERED = "+14155550100"
BUSY, NO_ANSWER, FAILED = "+15005550081", "+15005550082", "+15005550083"
# Each number's callbacks, by the step (seconds here) at which each is due.
TIMELINES = {
    ANSWERED: [(0, "initiated"), (1, "ringing"), (2, "in-progress"), (3, "completed")],
    BUSY: [(0, "initiated"), (1, "ringing"), (2, "busy")],
    NO_ANSWER: [(0, "initiated"), (1, "ringing"), (3, "no-answer")],
    FAILED: [(0, "initiated"), (1, "failed")],
}


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], str]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        with self.lock:
            self.received.append((self.path, form, self.headers.get("X-Twilio-Signature", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def received_forms(count: int) -> list[dict[str, str]]:
    """The callbacks received, once `count` have come (the emulator posts from a thread)."""
    deadline = time.monotonic() + 10
    while len(_Recorder.received) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    with _Recorder.lock:
        return [form for _, form, _ in _Recorder.received]


def at_step(step: float) -> datetime:
    return datetime.fromtimestamp(T0 + step, UTC)


def call(sdk: Sdk, to: str, base: str, **kwargs: Any) -> str:
    return str(
        sdk.client.calls.create(
            to=to,
            from_=VALID_FROM,
            url="https://example.com/twiml",
            status_callback=f"{base}/{to}",
            **kwargs,
        ).sid
    )


def test_the_documented_numbers_are_the_emulators_call_outcomes() -> None:
    assert dict(CALL_OUTCOMES) == {BUSY: "busy", NO_ANSWER: "no-answer", FAILED: "failed"}
    assert MACHINE_NUMBER not in CALL_OUTCOMES


def test_each_outcome_calls_back_every_event_and_agrees_with_a_fetch_at_each_moment(
    receiver: str,
) -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        sids = {to: call(sdk, to, receiver, status_callback_event=EVENTS) for to in TIMELINES}
        for step in range(5):
            clock.now = T0 + step
            due = sum(1 for timeline in TIMELINES.values() for t, _ in timeline if t <= step)
            forms = received_forms(due)
            assert len(forms) == due
            for to, sid in sids.items():
                fetched = sdk.client.calls(sid).fetch()
                assert_valid_body(sdk, CALL, "get")
                latest = [f for f in forms if f["CallSid"] == sid][-1]
                assert_agrees(latest, fetched, to)
        logged = emulator.callbacks

    for to, timeline in TIMELINES.items():
        mine = [form for _, form, _ in _Recorder.received if form["To"] == to]
        assert [f["CallStatus"] for f in mine] == [status for _, status in timeline]
        assert [f["SequenceNumber"] for f in mine] == [str(i) for i in range(len(timeline))]
        assert [f["Timestamp"] for f in mine] == [
            at_step(t).strftime("%a, %d %b %Y %H:%M:%S +0000") for t, _ in timeline
        ]
    validator = RequestValidator(DEFAULT_AUTH_TOKEN)
    for path, form, signature in _Recorder.received:
        assert validator.validate(receiver + path, form, signature)
        assert (form["AccountSid"], form["Direction"]) == (ACCOUNT, "outbound-api")
    assert {entry["http_status"] for entry in logged} == {204}
    assert len(logged) == sum(map(len, TIMELINES.values()))


def assert_agrees(form: dict[str, str], fetched: Any, to: str) -> None:
    """A call's latest callback says what a fetch of it says at the same moment."""
    status = form["CallStatus"]
    statuses = [s for _, s in TIMELINES[to]]
    assert fetched.status == ("queued" if status == "initiated" else status)
    rang = "ringing" in statuses and status != "initiated"
    assert fetched.start_time == (at_step(1) if rang else None)
    final = status in ("completed", "busy", "no-answer", "failed")
    assert fetched.end_time == (at_step(TIMELINES[to][-1][0]) if final else None)
    assert fetched.duration == form.get("CallDuration")
    assert (status == "completed") == ("CallDuration" in form)
    assert fetched.answered_by is None and "AnsweredBy" not in form


def test_an_answered_call_lasts_from_ringing_to_its_end() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        sid = sdk.client.calls.create(to=ANSWERED, from_=VALID_FROM, twiml="<Response/>").sid
        clock.now = T0 + 10
        done = sdk.client.calls(sid).fetch()
        failed_sid = sdk.client.calls.create(to=FAILED, from_=VALID_FROM, twiml="<Response/>").sid
        clock.now = T0 + 20
        failed = sdk.client.calls(failed_sid).fetch()

    assert (done.status, done.duration, done.start_time) == ("completed", "2", at_step(1))
    assert done.end_time == at_step(3)
    # A failed call never rang: no start, an end, and no duration (Twilio leaves it empty).
    assert (failed.status, failed.start_time, failed.duration) == ("failed", None, None)
    assert failed.end_time == at_step(11)


def test_without_events_a_call_calls_back_only_its_end(receiver: str) -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        call(sdk, ANSWERED, receiver)
        call(sdk, BUSY, receiver, status_callback_event=["ringing"])
        clock.now = T0 + 5
        forms = received_forms(2)
        time.sleep(0.15)  # several polls: nothing else is due
        assert len(_Recorder.received) == 2

    assert sorted((f["To"], f["CallStatus"]) for f in forms) == [
        (ANSWERED, "completed"),
        (BUSY, "ringing"),
    ]
    completed = next(f for f in forms if f["To"] == ANSWERED)
    assert completed["CallDuration"] == "2"


@pytest.mark.parametrize(
    ("detection", "to", "answered_by"),
    [
        ("Enable", ANSWERED, "human"),
        ("Enable", MACHINE_NUMBER, "machine_start"),
        ("DetectMessageEnd", ANSWERED, "human"),
        ("DetectMessageEnd", MACHINE_NUMBER, "machine_end_beep"),
        (None, MACHINE_NUMBER, None),
        ("Enable", BUSY, None),
        ("Enable", NO_ANSWER, None),
    ],
)
def test_machine_detection_says_who_answered_once_answered(
    receiver: str, detection: str | None, to: str, answered_by: str | None
) -> None:
    emulator, clock = timed_emulator()
    extra = {} if detection is None else {"machine_detection": detection}
    with emulator:
        sdk = sdk_for(emulator)
        sid = call(sdk, to, receiver, status_callback_event=EVENTS, **extra)
        seen = []
        for step in range(5):
            clock.now = T0 + step
            seen.append(sdk.client.calls(sid).fetch().answered_by)
        expected = len(TIMELINES.get(to, TIMELINES[ANSWERED]))
        forms = received_forms(expected)

    answered = [answered_by if step >= 2 and answered_by else None for step in range(5)]
    assert seen == answered
    assert [f.get("AnsweredBy") for f in forms] == [
        answered_by if f["CallStatus"] in ("in-progress", "completed") else None for f in forms
    ]


def test_test_credentials_calls_get_no_callbacks(receiver: str) -> None:
    clock = FakeClock(T0)
    with emulator_with(clock=clock, callback_delay=1.0, test_credentials=True) as emulator:
        test = sdk_for(emulator, username=ACCOUNT, password=DEFAULT_AUTH_TOKEN)
        call(test, ANSWERED, receiver, status_callback_event=EVENTS)
        clock.now = T0 + 5
        time.sleep(0.15)  # several polls of the callback thread
        sent = emulator.callbacks

    assert sent == [] and _Recorder.received == []


def test_callbacks_log_names_the_call() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        sid = sdk.client.calls.create(
            to=FAILED,
            from_=VALID_FROM,
            twiml="<Response/>",
            status_callback="http://127.0.0.1:9/unreachable",
        ).sid
        clock.now = T0 + 1
        deadline = time.monotonic() + 10
        while not emulator.callbacks and time.monotonic() < deadline:
            time.sleep(0.01)
        logged = emulator.callbacks

    assert logged == [
        {
            "url": "http://127.0.0.1:9/unreachable",
            "CallSid": sid,
            "status": "failed",
            "http_status": None,
        }
    ]
