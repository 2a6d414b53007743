"""POST /twilio/status through chalice.test.Client: signatures, ordering, error routing; and the
emulator's signed callbacks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import pytest
from chalice.test import Client
from twilio.request_validator import RequestValidator

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import TwilioResult
from chalicelib.twilio.callbacks import status_callback_url
from tests.envelopes import envelope as sent_envelope
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack

PUBLIC_URL = "https://api.example.com/api/twilio/status"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JOB = "calls-0123456789ab"


@pytest.fixture
def client(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    import app as app_module

    monkeypatch.setenv("STATUS_CALLBACK_URL", PUBLIC_URL)
    wiring.reset()
    # Rows 7 and 8 are being called: a callback for them binds its message to the row.
    for row in (7, 8):
        wiring.ledger().claim(JOB, row, 1)
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def callback_form(status: str, *, sid: str = "SM" + "a" * 32, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": "+15005550006",
        "To": "+14155550100",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def signed(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def deliver(
    client: Client,
    form: dict[str, str],
    *,
    row: int = 7,
    signature: str | None = "sign",
    query: str | None = None,
    job: str = JOB,
) -> Any:
    url = status_callback_url(PUBLIC_URL, job, row)
    headers = dict(FORM)
    if signature == "sign":
        headers["X-Twilio-Signature"] = signed(url, form)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    path = "/twilio/status?" + (query if query is not None else url.split("?", 1)[1])
    return client.http.post(path, headers=headers, body=urlencode(form).encode())


# What the call ledger's claim writes on a row's item: the rest is the row's result and delivery.
CLAIM = {"job_id", "row", "attempt", "state", "claimed_at", "expires_at", "callback_sid"}


def result_item(stack: Stack, row: int = 7, job: str = JOB) -> dict[str, Any]:
    """The row's item, empty while it holds only its call's claim (a callback changed nothing)."""
    item = stack.dynamodb.get_item(
        TableName=stack.env["RESULTS_TABLE"],
        Key={"job_id": {"S": job}, "row": {"N": str(row)}},
        ConsistentRead=True,
    ).get("Item", {})
    if set(item) <= CLAIM:
        return {}
    return {k: next(iter(v.values())) for k, v in item.items()}


def queue_bodies(stack: Stack, name: str) -> list[dict[str, Any]]:
    url = stack.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    messages = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_status_callback_signed_by_twilio_is_recorded(stack: Stack, client: Client) -> None:
    response = deliver(client, callback_form("delivered"))

    assert response.status_code == 204
    item = result_item(stack)
    assert (item["delivery_status"], item["delivery_rank"]) == ("delivered", "4")
    assert "delivery_sid" not in item  # the row's own SID: stored once


@pytest.mark.parametrize(
    "signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "forged"], ids=["missing", "empty", "b64", "x"]
)
def test_status_callback_unsigned_or_forged_is_403(
    stack: Stack, client: Client, signature: str | None
) -> None:
    response = deliver(client, callback_form("delivered"), signature=signature)

    assert response.status_code == 403
    assert json.loads(response.body)["Code"] == "ForbiddenError"
    assert result_item(stack) == {}


def test_status_callback_signed_with_another_token_is_403(stack: Stack, client: Client) -> None:
    form = callback_form("delivered")
    url = status_callback_url(PUBLIC_URL, JOB, 7)
    response = deliver(client, form, signature=signed(url, form, token="another-token"))

    assert response.status_code == 403


def test_status_callback_replayed_with_changed_parameters_is_403(
    stack: Stack, client: Client
) -> None:
    form = callback_form("undelivered", ErrorCode="30003")
    url = status_callback_url(PUBLIC_URL, JOB, 7)
    signature = signed(url, form)

    changed_form = deliver(client, {**form, "MessageStatus": "delivered"}, signature=signature)
    dropped_code = deliver(
        client, {k: v for k, v in form.items() if k != "ErrorCode"}, signature=signature
    )
    other_row = deliver(client, form, signature=signature, query=f"job={JOB}&row=8")
    other_job = deliver(client, form, signature=signature, query="job=other-job&row=7")

    assert [r.status_code for r in (changed_form, dropped_code, other_row, other_job)] == [403] * 4
    assert result_item(stack) == {} and result_item(stack, 8) == {}
    assert deliver(client, form, signature=signature).status_code == 204


def test_status_callback_out_of_order_and_repeated_end_in_the_latest_status(
    stack: Stack, client: Client
) -> None:
    for status in ("sent", "delivered", "sent", "queued", "delivered", "undelivered"):
        assert deliver(client, callback_form(status)).status_code == 204

    assert result_item(stack)["delivery_status"] == "delivered"
    assert deliver(client, callback_form("read")).status_code == 204
    assert result_item(stack)["delivery_status"] == "read"


def test_status_callback_and_response_in_either_order_keep_both(
    stack: Stack, client: Client
) -> None:
    envelope = ResponseEnvelope(
        job_id=JOB,
        row=7,
        api="messages",
        attempt=1,
        outcome="sent",
        request={"To": "+14155550100"},
        result=TwilioResult(201, {"sid": "SM" + "a" * 32}, {}, 1.0, 1.1),
        due_at=1.0,
    )
    # The callback arrives before the results sink has recorded the row's response.
    deliver(client, callback_form("sent"))
    assert wiring.results().count_by_outcome(JOB) == {}
    wiring.results().record([envelope])
    deliver(client, callback_form("delivered"))

    item = result_item(stack)
    assert (item["outcome"], item["delivery_status"]) == ("sent", "delivered")
    [row] = wiring.results().outcomes(JOB)
    assert (row.outcome, row.delivery_status) == ("sent", "delivered")


def test_status_callback_delivery_errors_feed_error_routing(stack: Stack, client: Client) -> None:
    landline = callback_form("undelivered", ErrorCode="30006", To="+14155550166")
    filtered = callback_form("undelivered", sid="SM" + "b" * 32, ErrorCode="30007")
    assert deliver(client, landline).status_code == 204
    assert deliver(client, filtered, row=8).status_code == 204
    # A repeat is not routed again.
    assert deliver(client, landline).status_code == 204

    item = result_item(stack)
    assert (item["delivery_status"], item["delivery_error_code"]) == ("undelivered", "30006")
    [suppression] = queue_bodies(stack, stack.env["SUPPRESSION_QUEUE"])
    assert suppression["detail"]["ErrorCode"] == 30006
    assert suppression["detail"]["number"] == "+14155550166"
    [systemic] = queue_bodies(stack, stack.env["SYSTEMIC_QUEUE"])
    assert (systemic["detail"]["ErrorCode"], systemic["detail"]["row"]) == (30007, 8)

    client.lambda_.invoke(
        "handle_suppression_events",
        {
            "Records": [
                {
                    "messageId": "1",
                    "receiptHandle": "1",
                    "body": json.dumps(suppression),
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                    "awsRegion": "us-east-1",
                }
            ]
        },
    )
    assert wiring.suppression().suppressed({"+14155550166"}) == {"+14155550166"}
    [entry] = wiring.suppression().list()
    assert entry.source == "callback"


def test_status_callback_malformed_but_signed_is_400(stack: Stack, client: Client) -> None:
    form = callback_form("exploded")
    assert deliver(client, form).status_code == 400
    url = PUBLIC_URL + "?job=" + JOB
    headers = {**FORM, "X-Twilio-Signature": signed(url, callback_form("sent"))}
    response = client.http.post(
        f"/twilio/status?job={JOB}", headers=headers, body=urlencode(callback_form("sent")).encode()
    )
    assert response.status_code == 400


def test_status_callback_without_a_configured_url_accepts_nothing(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATUS_CALLBACK_URL")
    wiring.reset()

    assert deliver(client, callback_form("delivered")).status_code == 403


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        self.received.append((self.path, form, self.headers.get("X-Twilio-Signature", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], str]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/twilio/status", _Recorder.received
    server.shutdown()
    server.server_close()


def test_sender_asks_for_status_callbacks_and_the_emulator_sends_them_signed(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    emulator: TwilioEmulator,
    receiver: tuple[str, list[tuple[str, dict[str, str], str]]],
) -> None:
    import time

    from chalicelib.core.records import QueuedRow

    url, received = receiver
    own = url.replace("/twilio/status", "/mine")
    monkeypatch.setenv("STATUS_CALLBACK_URL", url)
    wiring.reset()
    now = time.time()
    sender = {"From": "+15005550006", "Body": "hello"}
    rows = [
        QueuedRow(JOB, 1, "messages", {"To": "+14155550100", **sender}, now),
        QueuedRow(JOB, 2, "messages", {"To": "+15005550060", **sender}, now),
        QueuedRow(JOB, 3, "messages", {"To": "+14155550101", **sender, "StatusCallback": own}, now),
    ]
    wiring.sender().send_batch(rows)

    asked = {r["params"]["To"]: r["params"].get("StatusCallback") for r in emulator.requests}
    assert asked == {
        "+14155550100": status_callback_url(url, JOB, 1),
        "+15005550060": status_callback_url(url, JOB, 2),
        "+14155550101": own,  # a row's own callback is kept
    }
    deadline = time.monotonic() + 10
    while len(received) < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    validator = RequestValidator(AUTH_TOKEN)
    statuses: dict[str, list[str]] = {}
    for path, form, signature in received:
        full = url.rsplit("/twilio/status", 1)[0] + path
        assert validator.validate(full, form, signature)
        statuses.setdefault(path, []).append(form["MessageStatus"])
        if form["MessageStatus"] == "undelivered":
            assert form["ErrorCode"] == "30006"
    assert statuses == {
        f"/twilio/status?job={JOB}&row=1": ["queued", "sent", "delivered"],
        f"/twilio/status?job={JOB}&row=2": ["queued", "sent", "undelivered"],
        "/mine": ["queued", "sent", "delivered"],
    }


# -- callbacks bound to their row's message (CallLedger.bind_callback) ------------------------


def ledger_item(stack: Stack, job: str, row: int) -> dict[str, Any]:
    item = stack.dynamodb.get_item(
        TableName=stack.env["RESULTS_TABLE"],
        Key={"job_id": {"S": job}, "row": {"N": str(row)}},
        ConsistentRead=True,
    ).get("Item", {})
    return {k: next(iter(v.values())) for k, v in item.items()}


def called(job: str, row: int, *, sid: str, to: str) -> None:
    """The row's call completed: the ledger holds the message it created."""
    wiring.ledger().claim(job, row, 1)
    # As the sender records it: through LedgerWrites, which stores the To and SID too.
    writes = wiring.ledger().writes()
    writes.completed(job, row, 1, sent_envelope(job, row, sid=sid, to=to))
    writes.flush()


def test_status_callback_for_another_jobs_row_signed_correctly_is_403_and_changes_nothing(
    stack: Stack, client: Client
) -> None:
    victim = "other-fedcba987654"
    called(victim, 3, sid="SM" + "c" * 32, to="+14155550100")
    before = ledger_item(stack, victim, 3)
    # A row of another job set its StatusCallback to the victim's row: Twilio signs the
    # callback of the attacker's message for that URL, so the signature is good.
    url = status_callback_url(PUBLIC_URL, victim, 3)
    form = callback_form("undelivered", sid="SM" + "e" * 32, ErrorCode="30006")
    headers = {**FORM, "X-Twilio-Signature": signed(url, form)}
    response = client.http.post(
        "/twilio/status?" + url.split("?", 1)[1], headers=headers, body=urlencode(form).encode()
    )

    assert response.status_code == 403
    assert json.loads(response.body)["Code"] == "ForbiddenError"
    # The row's one item (its claim, result and delivery) is as it was.
    assert "delivery_status" not in before
    assert ledger_item(stack, victim, 3) == before
    assert queue_bodies(stack, stack.env["SUPPRESSION_QUEUE"]) == []


def test_status_callback_for_a_row_never_called_is_403(stack: Stack, client: Client) -> None:
    assert deliver(client, callback_form("delivered"), row=9).status_code == 403
    assert result_item(stack, 9) == {} and ledger_item(stack, JOB, 9) == {}


def test_status_callback_to_another_number_than_the_rows_call_is_403(
    stack: Stack, client: Client
) -> None:
    called(JOB, 5, sid="SM" + "a" * 32, to="+14155550199")

    before = ledger_item(stack, JOB, 5)
    assert deliver(client, callback_form("delivered"), row=5).status_code == 403
    assert ledger_item(stack, JOB, 5) == before and "delivery_status" not in before


def test_status_callback_while_the_row_is_calling_binds_its_sid_and_refuses_another(
    stack: Stack, client: Client
) -> None:
    first, second = "SM" + "a" * 32, "SM" + "f" * 32

    assert deliver(client, callback_form("sent", sid=first)).status_code == 204
    assert ledger_item(stack, JOB, 7)["callback_sid"] == first
    assert deliver(client, callback_form("delivered", sid=second)).status_code == 403
    assert deliver(client, callback_form("delivered", sid=first)).status_code == 204

    item = result_item(stack)
    assert item["delivery_status"] == "delivered"
    assert ledger_item(stack, JOB, 7)["callback_sid"] == first


def test_status_callback_for_the_rows_own_completed_call_is_accepted(
    stack: Stack, client: Client
) -> None:
    called(JOB, 4, sid="SM" + "d" * 32, to="+14155550100")

    assert (
        deliver(client, callback_form("delivered", sid="SM" + "d" * 32), row=4).status_code == 204
    )
    assert deliver(client, callback_form("read", sid="SM" + "a" * 32), row=4).status_code == 403
    assert result_item(stack, 4)["delivery_status"] == "delivered"
