"""A call whose outcome is not known is settled by what Twilio holds, never by absence of
evidence (chalicelib.sending.settlement, chalicelib.core.evidence), for every message kind and
every fault the emulator can make of a call or of its look-up: each row is created at most once
at Twilio, and ends in one outcome (or waits, in doubt, to be settled later)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from chalice.test import Client
from twilio.rest import Client as TwilioClient

from callqueue.local.emulator import TwilioEmulator
from callqueue.local.faults import FaultSpec
from chalicelib import wiring
from chalicelib.sending.settlement import MAX_DOUBTS
from chalicelib.twilio.gateway import CapturingHttpClient
from tests.handlers.test_pipeline import drain_responses, queued, sqs_event, subscribe_responses
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack

VALID_FROM = "+15005550006"
SERVICE = "MG" + "a" * 32
CONTENT = "HX" + "b" * 32
VERIFY = "VA" + "c" * 32
FLOW = "FW" + "d" * 32
TO = "+14155550100"


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    # An empty project dir: the stage's environment comes from the moto stack, not config.json.
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def twilio_with(monkeypatch: pytest.MonkeyPatch, **options: Any) -> TwilioEmulator:
    emulator = TwilioEmulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **options)
    emulator.start()
    monkeypatch.setenv("TWILIO_BASE_URL", emulator.base_url)
    wiring.reset()
    return emulator


def creates(emulator: TwilioEmulator) -> Counter[str]:
    """Resources Twilio created, by the To of the request that created them."""
    return Counter(
        str(r["params"].get("To"))
        for r in emulator.requests
        if r["method"] == "POST" and r["processed"]
    )


def requeued(stack: Stack, wait: int = 3) -> list[dict[str, Any]]:
    """The rows the sender put back on the send queue (waiting up to `wait` s for delays)."""
    found: list[dict[str, Any]] = []
    deadline = time.time() + wait
    while time.time() < deadline:
        batch = stack.sqs.receive_message(
            QueueUrl=stack.send_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for m in batch:
            found.append(json.loads(m["Body"]))
            stack.sqs.delete_message(
                QueueUrl=stack.send_queue_url, ReceiptHandle=m["ReceiptHandle"]
            )
        if found:
            return found
    return found


KINDS = [
    pytest.param("messages", {"From": VALID_FROM, "Body": "plain"}, id="plain"),
    pytest.param(
        "messages",
        {"From": VALID_FROM, "MediaUrl": ["https://example.com/a.png"]},
        id="media-only",
    ),
    pytest.param("messages", {"From": VALID_FROM, "ContentSid": CONTENT}, id="content-template"),
    pytest.param("messages", {"MessagingServiceSid": SERVICE, "Body": "via a service"}, id="mss"),
    pytest.param(
        "messages",
        {
            "From": VALID_FROM,
            "Body": "Don\u2019t \u2014 \u201cquoted\u201d",
            "SmartEncoded": "true",
        },
        id="smart-encoded",
    ),
    pytest.param("calls", {"From": VALID_FROM, "Url": "https://example.com/t"}, id="call"),
    pytest.param("verify", {"VerifyServiceSid": VERIFY, "Channel": "sms"}, id="verify"),
    pytest.param("studio", {"FlowSid": FLOW, "From": VALID_FROM}, id="studio"),
]


@pytest.mark.parametrize("fault", ["lost-response", "5xx-after", "slow"])
@pytest.mark.parametrize(("api", "params"), KINDS)
def test_settlement_a_call_that_took_effect_is_found_and_never_made_again(
    stack: Stack,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    api: str,
    params: dict[str, Any],
) -> None:
    observer = subscribe_responses(stack)
    monkeypatch.setenv("TWILIO_TIMEOUT_SECONDS", "0.5")
    emulator = twilio_with(
        monkeypatch, faults=FaultSpec.parse(f"{fault}=1"), slow_seconds=1.0, trial_account=True
    )
    try:
        row = queued(1, {"To": TO, **params}, api)
        client.lambda_.invoke("handle_send_batch", sqs_event([row]))
        client.lambda_.invoke("handle_send_batch", sqs_event([row]))  # SQS delivered it again
    finally:
        emulator.stop()

    first, again = drain_responses(stack, observer)
    assert first["outcome"] == "sent" and again == first
    assert first["body"]["resolved_by"] in ("twilio list", "verify fetch")
    assert creates(emulator) == Counter({TO: 1})


@pytest.mark.parametrize(("api", "params"), KINDS)
def test_settlement_a_call_dropped_before_twilio_took_it_waits_then_goes_as_a_new_attempt(
    stack: Stack,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    params: dict[str, Any],
) -> None:
    observer = subscribe_responses(stack)
    monkeypatch.setenv("IN_DOUBT_AFTER_SECONDS", "0")
    emulator = twilio_with(monkeypatch, faults=FaultSpec.parse("reset=1"))
    try:
        row = queued(1, {"To": TO, **params}, api)
        client.lambda_.invoke("handle_send_batch", sqs_event([row]))
        # Nothing published: the request may still have been in flight at Twilio.
        assert drain_responses(stack, observer) == []
        [waiting] = requeued(stack)
        assert (waiting["attempt"], waiting["row"]) == (1, 1)
        client.lambda_.invoke("handle_send_batch", sqs_event([waiting]))
    finally:
        emulator.stop()

    [settled] = drain_responses(stack, observer)
    assert settled["outcome"] == "retrying"
    assert "never completed" in settled["error"]["message"]
    [next_attempt] = requeued(stack, wait=5)
    assert next_attempt["attempt"] == 2
    assert creates(emulator) == Counter()


def test_settlement_two_messages_either_of_which_could_be_the_rows_end_it_unknown(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = subscribe_responses(stack)
    monkeypatch.setenv("IN_DOUBT_AFTER_SECONDS", "0")
    emulator = twilio_with(monkeypatch, faults=FaultSpec.parse("lost-response=1"))
    try:
        # Another media message to the same number, created at the same moment by someone else.
        http = CapturingHttpClient(emulator.base_url, timeout=5)
        other = TwilioClient(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
        media = ["https://example.com/a.png"]
        row = queued(1, {"To": TO, "From": VALID_FROM, "MediaUrl": media})
        with pytest.raises(requests.ConnectionError):  # the fault drops every response
            other.messages.create(to=TO, from_=VALID_FROM, media_url=media)
        client.lambda_.invoke("handle_send_batch", sqs_event([row]))
        [waiting] = requeued(stack)
        client.lambda_.invoke("handle_send_batch", sqs_event([waiting]))
    finally:
        emulator.stop()

    [envelope] = drain_responses(stack, observer)
    assert envelope["outcome"] == "unknown"
    assert "cannot be told" in envelope["error"]["message"]
    assert creates(emulator) == Counter({TO: 2})  # the other one, and this row's: once


@pytest.mark.parametrize("lookup_fault", ["429=1", "500=1", "reset=1", "slow=1"])
def test_settlement_a_look_up_twilio_cannot_answer_never_fails_the_batch_and_ends_unknown(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch, lookup_fault: str
) -> None:
    observer = subscribe_responses(stack)
    monkeypatch.setenv("IN_DOUBT_AFTER_SECONDS", "0")
    monkeypatch.setenv("TWILIO_TIMEOUT_SECONDS", "0.4")
    emulator = twilio_with(
        monkeypatch,
        faults=FaultSpec.parse("lost-response=1"),
        lookup_faults=FaultSpec.parse(lookup_fault),
        slow_seconds=1.0,
    )
    try:
        row = queued(1, {"To": TO, "From": VALID_FROM, "Body": "x"})
        deliveries = 0
        pending = [row]
        while pending and deliveries < 6:
            client.lambda_.invoke("handle_send_batch", sqs_event(pending))  # never raises
            deliveries += 1
            pending = requeued(stack)
    finally:
        emulator.stop()

    [envelope] = drain_responses(stack, observer)
    assert envelope["outcome"] == "unknown"
    assert "could not be asked" in envelope["error"]["message"]
    # Twilio's answer is named, however the SDK raised it (a list page that is not a 200 comes
    # as a bare TwilioException): an expected failure, not a defect.
    expected = {"429=1": "got HTTP 429", "500=1": "got HTTP 500"}.get(lookup_fault, "no answer")
    assert expected in envelope["error"]["message"]
    assert deliveries == 1 + MAX_DOUBTS  # the call, then a look on each later delivery
    assert creates(emulator) == Counter({TO: 1})


def test_settlement_a_status_callback_bound_to_the_row_settles_it_without_a_look_up(
    stack: Stack, client: Client, emulator: TwilioEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = subscribe_responses(stack)
    monkeypatch.setenv("IN_DOUBT_AFTER_SECONDS", "0")
    wiring.reset()
    ledger = wiring.ledger()
    assert ledger.claim("job-1", 1, 1).verdict == "call"  # an invocation that died mid-call
    sid = "SM" + "e" * 32
    assert ledger.bind_callback("job-1", 1, sid, TO) == "bound"  # Twilio said "queued"

    client.lambda_.invoke(
        "handle_send_batch", sqs_event([queued(1, {"To": TO, "From": VALID_FROM, "Body": "x"})])
    )

    [envelope] = drain_responses(stack, observer)
    assert (envelope["outcome"], envelope["sid"]) == ("sent", sid)
    assert envelope["body"]["resolved_by"] == "status callback"
    assert emulator.requests == []
    # The row's SID is now its own: another SID for it is refused.
    assert ledger.bind_callback("job-1", 1, "SM" + "f" * 32, TO) == "mismatch"
    assert ledger.bind_callback("job-1", 1, sid, TO) == "bound"


def test_settlement_a_scheduled_message_without_date_sent_is_found(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = subscribe_responses(stack)
    emulator = twilio_with(monkeypatch, faults=FaultSpec.parse("lost-response=1"))
    send_at = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        params = {
            "To": TO,
            "MessagingServiceSid": SERVICE,
            "Body": "later",
            "SendAt": send_at,
            "ScheduleType": "fixed",
        }
        client.lambda_.invoke("handle_send_batch", sqs_event([queued(1, params)]))
    finally:
        emulator.stop()

    [envelope] = drain_responses(stack, observer)
    assert envelope["outcome"] == "sent"
    assert creates(emulator) == Counter({TO: 1})


def test_settlement_a_stop_stops_the_next_row_to_the_number_in_the_same_batch(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    observer = subscribe_responses(stack)
    stop = "+15005550004"  # 21610: the recipient replied STOP
    first = queued(1, {"To": stop, "From": VALID_FROM, "Body": "one"})
    second = {**queued(2, {"To": stop, "From": VALID_FROM, "Body": "two"}), "due_at": time.time()}

    client.lambda_.invoke("handle_send_batch", sqs_event([first, second]))

    # Whichever went first (a call that misses its slot takes a later one), the other is not
    # called: its hold runs after the first one's response was received.
    outcomes = sorted(e["outcome"] for e in drain_responses(stack, observer))
    assert outcomes == ["failed", "suppressed"]
    assert len(emulator.requests) == 1
    # In the list at once, without the router: another sender's next row to it is not called.
    assert wiring.suppression().suppressed({stop}) == {stop}


def test_settlement_look_ups_are_metered_on_the_accounts_rate(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCOUNT_CPS", "4")
    emulator = twilio_with(monkeypatch, faults=FaultSpec.parse("lost-response=1"))
    try:
        rows = [
            queued(i, {"To": f"+1415555{i:04d}", "From": VALID_FROM, "Body": f"m{i}"})
            for i in range(1, 7)
        ]
        client.lambda_.invoke("handle_send_batch", sqs_event(rows))
    finally:
        emulator.stop()

    times = sorted(r["t"] for r in emulator.requests)
    assert len(times) == 12  # a call and a look-up a row
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 4
