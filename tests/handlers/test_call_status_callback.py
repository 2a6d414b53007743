"""Calls' status callbacks: the sender asks for every progress event, POST /twilio/status checks,
binds and records them by rank (final status, call_duration, answered_by), and routes their
error codes; against moto, chalice.test.Client and the emulator's signed callbacks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from chalice.test import Client
from twilio.rest import Client as TwilioClient

from callqueue.local.emulator import MACHINE_NUMBER, TwilioEmulator
from chalicelib import wiring
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import CallRequest, ParamValue, QueuedRow, TwilioResult
from chalicelib.twilio.callbacks import status_callback_url
from chalicelib.twilio.gateway import CapturingHttpClient, TwilioGateway
from tests.handlers.test_status_callback import (
    FORM,
    PUBLIC_URL,
    called,
    deliver,
    ledger_item,
    queue_bodies,
    receiver,  # noqa: F401 - a fixture
    result_item,
    signed,
)
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack

JOB = "voice-0123456789ab"
CALL_SID = "CA" + "a" * 32
TO = "+14155550100"


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    monkeypatch.setenv("STATUS_CALLBACK_URL", PUBLIC_URL)
    wiring.reset()
    # Rows 7 and 8 are being called: a callback for them binds its call to the row.
    for row in (7, 8):
        wiring.ledger().claim(JOB, row, 1)
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def call_form(status: str, *, sid: str = CALL_SID, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": status,
        "Direction": "outbound-api",
        "From": "+15005550006",
        "To": TO,
        **extra,
    }


def post(client: Client, form: dict[str, str], **options: Any) -> Any:
    """A callback for this module's job (test_status_callback.deliver's options)."""
    return deliver(client, form, job=JOB, **options)


def item(stack: Stack, row: int = 7) -> dict[str, Any]:
    return result_item(stack, row, job=JOB)


def test_a_signed_completed_call_records_status_duration_and_answerer(
    stack: Stack, client: Client
) -> None:
    answered = call_form("in-progress", AnsweredBy="machine_start")
    completed = call_form("completed", CallDuration="42", AnsweredBy="machine_start")

    assert post(client, answered).status_code == 204
    # Answered is not final: nothing is written until the call ends.
    assert item(stack) == {}
    assert post(client, completed).status_code == 204

    stored = item(stack)
    assert (stored["delivery_status"], stored["delivery_rank"]) == ("completed", "4")
    assert (stored["call_duration"], stored["answered_by"]) == ("42", "machine_start")
    assert "delivery_error_code" not in stored
    # The SID is the row's own (bound by the ledger), not stored again.
    assert ledger_item(stack, JOB, 7)["callback_sid"] == CALL_SID and "delivery_sid" not in stored
    # Once the row's response is recorded, its result reads them back.
    envelope = ResponseEnvelope(
        job_id=JOB,
        row=7,
        api="calls",
        attempt=1,
        outcome="sent",
        request={"To": TO},
        result=TwilioResult(201, {"sid": CALL_SID}, {}, 1.0, 1.1),
        due_at=1.0,
    )
    wiring.results().record([envelope])
    [row] = wiring.results().outcomes(JOB)
    assert (row.api, row.delivery_status, row.call_duration, row.answered_by) == (
        "calls",
        "completed",
        42,
        "machine_start",
    )


@pytest.mark.parametrize(
    "signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "forged"], ids=["missing", "empty", "b64", "x"]
)
def test_an_unsigned_or_forged_call_callback_is_403(
    stack: Stack, client: Client, signature: str | None
) -> None:
    response = post(client, call_form("completed", CallDuration="1"), signature=signature)

    assert response.status_code == 403
    assert json.loads(response.body)["Code"] == "ForbiddenError"
    assert item(stack) == {}


def test_a_call_callback_replayed_with_changed_fields_is_403(stack: Stack, client: Client) -> None:
    form = call_form("completed", CallDuration="5", AnsweredBy="human")
    url = status_callback_url(PUBLIC_URL, JOB, 7)
    signature = signed(url, form)

    changed = [
        {**form, "CallStatus": "busy"},
        {**form, "CallDuration": "5000"},
        {**form, "AnsweredBy": "machine_start"},
        {k: v for k, v in form.items() if k != "AnsweredBy"},
        # The same call presented as a message.
        {**form, "CallSid": "", "MessageSid": CALL_SID, "MessageStatus": "delivered"},
    ]
    answers = [post(client, f, signature=signature).status_code for f in changed]
    answers.append(post(client, form, signature=signature, query=f"job={JOB}&row=8").status_code)

    assert answers == [403] * 6
    assert item(stack) == {} and item(stack, 8) == {}
    assert post(client, form, signature=signature).status_code == 204


def test_late_or_repeated_call_statuses_never_replace_a_later_one(
    stack: Stack, client: Client
) -> None:
    for status in ("initiated", "ringing", "in-progress"):
        assert post(client, call_form(status)).status_code == 204
    assert post(client, call_form("completed", CallDuration="42")).status_code == 204
    for late in ("ringing", "initiated", "queued", "in-progress"):
        assert post(client, call_form(late, AnsweredBy="human")).status_code == 204
    # A final status again (the same or another) changes nothing: the first stands.
    assert post(client, call_form("completed", CallDuration="99")).status_code == 204
    assert post(client, call_form("no-answer", CallDuration="0")).status_code == 204

    stored = item(stack)
    assert (stored["delivery_status"], stored["call_duration"]) == ("completed", "42")
    assert "answered_by" not in stored


def test_a_call_callback_for_another_rows_call_is_403(stack: Stack, client: Client) -> None:
    called(JOB, 4, sid="CA" + "d" * 32, to=TO)

    # Row 4's call is CA-d: CA-a is another row's call, and a call to another number is not it.
    assert post(client, call_form("completed"), row=4).status_code == 403
    other_number = call_form("completed", sid="CA" + "d" * 32, To="+14155550199")
    assert post(client, other_number, row=4).status_code == 403
    assert "delivery_status" not in item(stack, 4)  # its outcome only
    assert post(client, call_form("busy", sid="CA" + "d" * 32), row=4).status_code == 204
    assert item(stack, 4)["delivery_status"] == "busy"
    assert post(client, call_form("completed"), row=9).status_code == 403  # never called
    assert item(stack, 9) == {}


def test_a_call_callback_while_the_row_is_calling_binds_its_call_sid(
    stack: Stack, client: Client
) -> None:
    other = "CA" + "f" * 32

    assert post(client, call_form("ringing")).status_code == 204
    assert ledger_item(stack, JOB, 7)["callback_sid"] == CALL_SID
    assert post(client, call_form("completed", sid=other, CallDuration="3")).status_code == 403
    assert post(client, call_form("completed", CallDuration="3")).status_code == 204
    assert item(stack)["delivery_status"] == "completed"
    assert ledger_item(stack, JOB, 7)["callback_sid"] == CALL_SID


def test_a_call_callback_with_an_error_code_feeds_error_routing_once(
    stack: Stack, client: Client
) -> None:
    failed = call_form("failed", ErrorCode="30006")
    assert post(client, failed).status_code == 204
    assert post(client, failed).status_code == 204  # a repeat is not routed again

    assert item(stack)["delivery_error_code"] == "30006"
    [event] = queue_bodies(stack, stack.env["SUPPRESSION_QUEUE"])
    detail = event["detail"]
    assert (detail["api"], detail["CallStatus"], detail["CallSid"]) == ("calls", "failed", CALL_SID)
    assert (detail["ErrorCode"], detail["number"], detail["row"]) == (30006, TO, 7)
    assert "MessageSid" not in detail
    client.lambda_.invoke(
        "handle_suppression_events",
        {
            "Records": [
                {
                    "messageId": "1",
                    "receiptHandle": "1",
                    "body": json.dumps(event),
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                    "awsRegion": "us-east-1",
                }
            ]
        },
    )
    [entry] = wiring.suppression().list()
    assert (entry.number, entry.source) == (TO, "callback")


@pytest.mark.parametrize(
    "form",
    [
        call_form("answered"),
        call_form("completed", CallDuration="forty"),
        {**call_form("completed"), "MessageSid": "SM" + "a" * 32, "MessageStatus": "sent"},
        {"CallSid": CALL_SID},
    ],
    ids=["event-name", "duration", "both-sids", "no-status"],
)
def test_a_signed_but_malformed_call_callback_is_400(
    stack: Stack, client: Client, form: dict[str, str]
) -> None:
    assert post(client, form).status_code == 400
    assert item(stack) == {}


def voice_rows(url: str, own: str) -> list[QueuedRow]:
    """Answered, busy, machine-answered and unanswered calls, and one with its own callback."""
    now = time.time()
    call = {"From": "+15005550006", "Url": "https://example.com/twiml"}
    amd = {"MachineDetection": "Enable"}
    theirs = {  # pointed at another row of ours, with its own method and events: put right
        "StatusCallback": url + "?job=other&row=1",
        "StatusCallbackMethod": "GET",
        "StatusCallbackEvent": ["completed"],
    }
    params: list[dict[str, ParamValue]] = [
        {"To": TO, **call, **amd},
        {"To": "+15005550081", **call},
        {"To": MACHINE_NUMBER, **call, **amd},
        {"To": "+14155550104", **call, "StatusCallback": own},  # its own, kept as it is
        {"To": "+15005550082", **call, **theirs},
    ]
    return [QueuedRow(JOB, row, "calls", p, now) for row, p in enumerate(params, start=1)]


def posted_to_route(
    received: list[tuple[str, dict[str, str], str]], count: int, project_dir: Path
) -> list[int]:
    """Each callback the emulator sent to /twilio/status, once `count` have come, posted to the
    route as it came; the route's answers."""
    deadline = time.monotonic() + 10
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) == count
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(project_dir)) as test_client:
        return [
            test_client.http.post(
                path, headers={**FORM, "X-Twilio-Signature": signature}, body=urlencode(form)
            ).status_code
            for path, form, signature in received
            if path.startswith("/twilio/status")
        ]


def test_sender_asks_calls_for_progress_callbacks_and_the_route_records_the_emulators(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    emulator: TwilioEmulator,
    receiver: tuple[str, list[tuple[str, dict[str, str], str]]],  # noqa: F811
    tmp_path: Path,
) -> None:
    url, received = receiver
    own = url.replace("/twilio/status", "/mine")
    monkeypatch.setenv("STATUS_CALLBACK_URL", url)
    wiring.reset()
    rows = voice_rows(url, own)
    wiring.sender().send_batch(rows)

    asked = {r["params"]["To"]: r["params"] for r in emulator.requests}
    events = ["initiated", "ringing", "answered", "completed"]
    for row in (1, 2, 3, 5):
        params = asked[rows[row - 1].params["To"]]
        assert params["StatusCallback"] == status_callback_url(url, JOB, row)
        assert (params["StatusCallbackMethod"], params["StatusCallbackEvent"]) == ("POST", events)
    assert asked[TO]["MachineDetection"] == "Enable"
    mine = asked["+14155550104"]
    assert mine["StatusCallback"] == own
    assert "StatusCallbackEvent" not in mine and "StatusCallbackMethod" not in mine

    # 4 + 3 + 4 + 3 progress events to the route, and the row's own `completed`.
    assert posted_to_route(received, 15, tmp_path) == [204] * 14
    final = {r: item(stack, r) for r in (1, 2, 3, 5)}
    assert {r: i["delivery_status"] for r, i in final.items()} == {
        1: "completed",
        2: "busy",
        3: "completed",
        5: "no-answer",
    }
    assert (final[1]["answered_by"], final[3]["answered_by"]) == ("human", "machine_start")
    assert final[1]["call_duration"] == final[3]["call_duration"]
    assert "call_duration" not in final[2] and "answered_by" not in final[2]
    assert "delivery_status" not in item(stack, 4)  # its outcome only


def test_the_gateway_asks_calls_for_progress_callbacks_only_when_it_has_a_url(
    emulator: TwilioEmulator,
) -> None:
    http = CapturingHttpClient(emulator.base_url, timeout=10)
    client = TwilioClient(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    params: dict[str, ParamValue] = {
        "To": TO,
        "From": "+15005550006",
        "Twiml": "<Response/>",
        "MachineDetection": "DetectMessageEnd",
    }
    row = CallRequest("calls", params, job_id=JOB, row=3)
    unnamed = CallRequest("calls", params)

    TwilioGateway(client, http).call(row)
    TwilioGateway(client, http, status_callback=lambda: PUBLIC_URL).call(unnamed)
    TwilioGateway(client, http, status_callback=lambda: PUBLIC_URL).call(row)

    plain, no_row, asked = (r["params"] for r in emulator.requests)
    assert plain == no_row == {k: str(v) for k, v in params.items()}
    assert asked == {
        **plain,
        "StatusCallback": status_callback_url(PUBLIC_URL, JOB, 3),
        "StatusCallbackMethod": "POST",
        "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
    }
