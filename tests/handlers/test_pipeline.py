"""The pipeline's handlers through chalice.test.Client, on moto, against the Twilio emulator."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from callqueue.local.emulator import TwilioEmulator
from callqueue.local.faults import FaultSpec
from chalicelib import wiring
from chalicelib.intake.splitter import job_id_for
from chalicelib.sending.pacing import DISPATCH_TICK_SECONDS
from tests.envelopes import published
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack, subscribe_queue

VALID_FROM = "+15005550006"


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    # An empty project dir: the stage's environment comes from the moto stack, not config.json.
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "awsRegion": "us-east-1",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
            }
        ]
    }


def sqs_event(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Unlike chalice's generate_sqs_event, every record gets its own message id."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": str(uuid.uuid4()),
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:send",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def csv_file(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["To", "From", "Body"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def messages(count: int, start: int = 0) -> list[dict[str, str]]:
    return [
        {"To": f"+1415555{i:04d}", "From": VALID_FROM, "Body": f"message {i}"}
        for i in range(start, start + count)
    ]


def upload(stack: Stack, key: str, body: bytes, **metadata: str) -> str:
    bucket = stack.env["SOURCE_BUCKET"]
    response = stack.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    return job_id_for(bucket, key, response["ETag"].strip('"'))


def job_item(stack: Stack, job_id: str) -> dict[str, Any]:
    item = stack.dynamodb.get_item(TableName=stack.env["JOBS_TABLE"], Key={"job_id": {"S": job_id}})
    return {k: next(iter(v.values())) for k, v in item["Item"].items()}


def chunk_rows(stack: Stack, bucket: str, key: str) -> list[dict[str, Any]]:
    body = stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def wait_for_execution(stack: Stack, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    arn = stack.env["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:") + f":{job_id}"
    deadline = time.monotonic() + timeout
    while True:
        execution = stack.sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return dict(execution)
        time.sleep(0.2)


def test_splitter_cuts_file_into_chunks_and_records_job(stack: Stack, client: Client) -> None:
    rows = messages(25)
    rows[3]["To"] = "555-not-a-number"
    rows[10]["Body"] = ""
    job_id = upload(stack, "campaign.csv", csv_file(rows), cps="4", window="3")

    client.lambda_.invoke(
        "handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], "campaign.csv")
    )

    job = job_item(stack, job_id)
    assert (job["rows"], job["valid"], job["rejected"], job["chunks"]) == ("25", "23", "2", "2")
    assert (job["cps"], job["window_seconds"]) == ("4", "3")
    holding = stack.env["HOLDING_BUCKET"]
    first = chunk_rows(stack, holding, f"jobs/{job_id}/chunk-00000.jsonl")
    second = chunk_rows(stack, holding, f"jobs/{job_id}/chunk-00001.jsonl")
    assert len(first) == 12 and len(second) == 11
    # Record numbers are the file's; offsets count valid rows only, at 1/CPS apart.
    assert [r["row"] for r in first[:5]] == [1, 2, 3, 5, 6]
    assert [r["offset"] for r in first[:5]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert second[0]["offset"] == 3.0
    rejects = stack.s3.get_object(
        Bucket=stack.env["REPORTS_BUCKET"], Key=f"jobs/{job_id}/rejects.csv"
    )
    report = list(csv.reader(io.StringIO(rejects["Body"].read().decode())))
    assert report[0] == ["row", "reason"]
    assert [r[0] for r in report[1:]] == ["4", "11"]


@pytest.mark.parametrize("region", ["", "US"])
def test_splitter_reads_national_numbers_in_the_default_region_only(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch, region: str
) -> None:
    monkeypatch.setenv("DEFAULT_REGION", region)
    wiring.reset()
    rows = [
        {"To": "(415) 555-0100", "From": VALID_FROM, "Body": "national"},
        {"To": "+1 415 555 0101", "From": "500 555 0006", "Body": "spaced, national From"},
        {"To": "+1 555 123 4567", "From": VALID_FROM, "Body": "no such number"},
    ]
    job_id = upload(stack, "national.csv", csv_file(rows))

    client.lambda_.invoke(
        "handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], "national.csv")
    )

    rejects = stack.s3.get_object(
        Bucket=stack.env["REPORTS_BUCKET"], Key=f"jobs/{job_id}/rejects.csv"
    )
    report = list(csv.reader(io.StringIO(rejects["Body"].read().decode())))
    job = job_item(stack, job_id)
    no_such_number = (
        "'+1 555 123 4567' is not a valid phone number (not in a range of numbers +1 assigns)"
    )
    if region:
        assert (job["valid"], job["rejected"]) == ("2", "1")
        sent = chunk_rows(stack, stack.env["HOLDING_BUCKET"], f"jobs/{job_id}/chunk-00000.jsonl")
        assert [(r["params"]["To"], r["params"]["From"]) for r in sent] == [
            ("+14155550100", VALID_FROM),
            ("+14155550101", VALID_FROM),
        ]
        assert report[1:] == [["3", f"To: {no_such_number}"]]
    else:
        no_code = "no country code: add + and the country code, or set DEFAULT_REGION"
        assert (job["valid"], job["rejected"]) == ("0", "3")
        assert report[1:] == [
            ["1", f"To: '(415) 555-0100' is not a valid phone number ({no_code})"],
            [
                "2",
                "From: '500 555 0006' is not a valid phone number, short code or alphanumeric "
                f"sender ID ({no_code})",
            ],
            ["3", f"To: {no_such_number}"],
        ]


def test_splitter_delivery_of_same_upload_again_starts_no_second_job(
    stack: Stack, client: Client
) -> None:
    job_id = upload(stack, "once.csv", csv_file(messages(3)))
    event = s3_event(stack.env["SOURCE_BUCKET"], "once.csv")
    client.lambda_.invoke("handle_source_file", event)
    client.lambda_.invoke("handle_source_file", event)

    executions = stack.sfn.list_executions(stateMachineArn=stack.env["STATE_MACHINE_ARN"])
    assert [e["name"] for e in executions["executions"]] == [job_id]


def test_splitter_unreadable_file_fails_job_with_reason(stack: Stack, client: Client) -> None:
    job_id = upload(stack, "empty.csv", b"")
    client.lambda_.invoke("handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], "empty.csv"))

    job = job_item(stack, job_id)
    assert job["state"] == "failed"
    assert "empty" in job["error"]
    executions = stack.sfn.list_executions(stateMachineArn=stack.env["STATE_MACHINE_ARN"])
    assert executions["executions"] == []


def test_release_loop_releases_every_chunk_at_its_time(stack: Stack, client: Client) -> None:
    job_id = upload(stack, "three.csv", csv_file(messages(5)), cps="2", window="1")
    client.lambda_.invoke("handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], "three.csv"))

    execution = wait_for_execution(stack, job_id)

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert (output["seq"], output["done"]) == (3, True)
    listed = stack.s3.list_objects_v2(Bucket=stack.env["PROCESS_BUCKET"])["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        f"jobs/{job_id}/chunk-0000{i}.jsonl" for i in range(3)
    ]
    history = stack.sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    waits = [e for e in history if e["type"] == "WaitStateEntered"]
    assert len(waits) == 2
    job = job_item(stack, job_id)
    assert (job["released_chunks"], job["state"]) == ("3", "released")


def test_release_stops_for_a_cancelled_job(stack: Stack, client: Client) -> None:
    job_id = upload(stack, "stop.csv", csv_file(messages(2)))
    client.lambda_.invoke("handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], "stop.csv"))
    wait_for_execution(stack, job_id)
    wiring.jobs().update(job_id, state="cancelled")

    state = {"job_id": job_id, "chunk": 1, "chunks": 5, "start": time.time(), "window": 1, "cps": 1}
    result = client.lambda_.invoke("release_chunk", state).payload

    assert (result["done"], result["stopped"]) == (True, "cancelled")
    keys = [
        o["Key"] for o in stack.s3.list_objects_v2(Bucket=stack.env["PROCESS_BUCKET"])["Contents"]
    ]
    assert f"jobs/{job_id}/chunk-00001.jsonl" not in keys


def put_chunk(stack: Stack, key: str, rows: list[dict[str, Any]], start: float) -> None:
    stack.s3.put_object(
        Bucket=stack.env["PROCESS_BUCKET"],
        Key=key,
        Body="\n".join(json.dumps(r) for r in rows).encode(),
        Metadata={"job_id": "job-1", "job_start": repr(start), "chunk": "0"},
    )


def chunk_of(count: int) -> list[dict[str, Any]]:
    return [
        {
            "row": i + 1,
            "api": "messages",
            "params": {"To": f"+1415555{i:04d}", "From": VALID_FROM, "Body": f"m{i}"},
            "offset": i / 10,
        }
        for i in range(count)
    ]


def queue_counts(stack: Stack) -> tuple[int, int]:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.send_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


def test_enqueuer_queues_every_row_delayed_until_due(stack: Stack, client: Client) -> None:
    put_chunk(stack, "jobs/job-1/chunk-00000.jsonl", chunk_of(35), start=time.time() + 120)

    client.lambda_.invoke(
        "handle_released_chunk",
        s3_event(stack.env["PROCESS_BUCKET"], "jobs/job-1/chunk-00000.jsonl"),
    )

    assert queue_counts(stack) == (0, 35)


def test_enqueuer_queues_rows_already_due_without_delay(stack: Stack, client: Client) -> None:
    put_chunk(stack, "jobs/job-1/chunk-00000.jsonl", chunk_of(12), start=time.time() - 60)

    client.lambda_.invoke(
        "handle_released_chunk",
        s3_event(stack.env["PROCESS_BUCKET"], "jobs/job-1/chunk-00000.jsonl"),
    )

    received = []
    while batch := stack.sqs.receive_message(
        QueueUrl=stack.send_queue_url, MaxNumberOfMessages=10
    ).get("Messages"):
        received.extend(json.loads(m["Body"]) for m in batch)
    assert sorted(r["row"] for r in received) == list(range(1, 13))
    assert all(r["job_id"] == "job-1" and r["attempt"] == 1 for r in received)


def subscribe_responses(stack: Stack) -> str:
    return subscribe_queue(stack.sqs, stack.sns, stack.env["RESPONSE_TOPIC_ARN"], "observer")


def drain(stack: Stack, url: str) -> list[dict[str, Any]]:
    """Every message's body, as JSON, taken off the queue."""
    return [json.loads(body) for body in drain_bodies(stack, url)]


def drain_responses(stack: Stack, url: str) -> list[dict[str, Any]]:
    """Every envelope in the messages of a queue subscribed to the response topic."""
    return published(drain_bodies(stack, url))


def drain_bodies(stack: Stack, url: str) -> list[str]:
    bodies = []
    while batch := stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        bodies.extend(m["Body"] for m in batch)
        stack.sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )
    return bodies


def queued(
    row: int, params: dict[str, str], api: str = "messages", attempt: int = 1
) -> dict[str, Any]:
    return {
        "job_id": "job-1",
        "row": row,
        "api": api,
        "params": params,
        "due_at": time.time() - 1,
        "attempt": attempt,
    }


def test_sender_calls_twilio_once_per_row_and_publishes_each_response(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    observer = subscribe_responses(stack)
    rows = [
        queued(1, {"To": "+14155550100", "From": VALID_FROM, "Body": "hello"}),
        queued(2, {"To": "+15005550004", "From": VALID_FROM, "Body": "to a STOP"}),
        queued(3, {"To": "+15005550009", "From": VALID_FROM, "Body": "to a landline"}),
        queued(4, {"To": "+14155550101", "From": "+15005550001", "Body": "bad from"}),
        queued(
            5, {"To": "+14155550102", "From": VALID_FROM, "Url": "https://example.com/t"}, "calls"
        ),
    ]

    client.lambda_.invoke("handle_send_batch", sqs_event(rows))

    envelopes = {e["row"]: e for e in drain_responses(stack, observer)}
    assert {r: (e["outcome"], e["status"]) for r, e in envelopes.items()} == {
        1: ("sent", 201),
        2: ("failed", 400),
        3: ("failed", 400),
        4: ("failed", 400),
        5: ("sent", 201),
    }
    assert envelopes[2]["error"]["code"] == 21610
    assert envelopes[3]["error"]["code"] == 21614
    assert envelopes[4]["error"]["code"] == 21212
    assert envelopes[1]["sid"].startswith("SM") and envelopes[5]["sid"].startswith("CA")
    for envelope in envelopes.values():
        assert envelope["headers"]["Twilio-Request-Id"].startswith("RQ")
        assert "Twilio-Concurrent-Requests" in envelope["headers"]
        assert "Twilio-Request-Duration" in envelope["headers"]
    posted = [r for r in emulator.requests if r["method"] == "POST"]
    assert sorted(r["params"]["Body"] for r in posted if "Body" in r["params"]) == sorted(
        ["hello", "to a STOP", "to a landline", "bad from"]
    )
    assert len(posted) == 5


def test_sender_puts_a_full_queue_back_with_backoff_then_dead_letters(
    stack: Stack, client: Client
) -> None:
    observer = subscribe_responses(stack)
    full_queue = {"To": "+14155550100", "From": "+15005550008", "Body": "queue full"}

    client.lambda_.invoke("handle_send_batch", sqs_event([queued(1, full_queue, attempt=1)]))
    client.lambda_.invoke("handle_send_batch", sqs_event([queued(2, full_queue, attempt=5)]))

    outcomes = {
        e["row"]: (e["outcome"], e["error"]["code"]) for e in drain_responses(stack, observer)
    }
    assert outcomes == {1: ("retrying", 21611), 2: ("dead_lettered", 21611)}
    assert queue_counts(stack)[0] + queue_counts(stack)[1] == 1
    dead = stack.sqs.receive_message(QueueUrl=stack.dlq_url)["Messages"]
    body = json.loads(dead[0]["Body"])
    assert (body["row"], body["attempt"], body["last_error"]["code"]) == (2, 5, 21611)


@pytest.mark.parametrize(
    ("fault", "api", "params", "outcome", "status"),
    [
        # Processed, then the connection dropped: Twilio's message list shows it was sent.
        ("lost-response", "messages", {"Body": "x"}, "sent", 201),
        # And a call's, Twilio's call list.
        ("lost-response", "calls", {"Url": "https://example.com/t"}, "sent", 201),
        # Dropped before processing: the list has no such message, but the request may still be
        # in flight at Twilio, so the row waits out the in-doubt time (no outcome yet).
        ("reset", "messages", {"Body": "x"}, None, None),
    ],
)
def test_sender_settles_a_dropped_response_by_what_twilio_holds(
    stack: Stack,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    api: str,
    params: dict[str, str],
    outcome: str | None,
    status: int | None,
) -> None:
    observer = subscribe_responses(stack)
    with TwilioEmulator(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, faults=FaultSpec.parse(f"{fault}=1")
    ) as dropping:
        monkeypatch.setenv("TWILIO_BASE_URL", dropping.base_url)
        wiring.reset()
        row = queued(1, {"To": "+14155550100", "From": VALID_FROM, **params}, api)
        client.lambda_.invoke("handle_send_batch", sqs_event([row]))
        calls = [r for r in dropping.requests if r["method"] == "POST"]

    published = drain_responses(stack, observer)
    assert [(e["outcome"], e["status"]) for e in published] == (
        [(outcome, status)] if outcome else []
    )
    assert len(calls) == 1
    assert sum(queue_counts(stack)) == (0 if outcome else 1)


def test_sender_retries_a_connection_that_was_never_made(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = subscribe_responses(stack)
    monkeypatch.setenv("TWILIO_BASE_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    wiring.reset()

    client.lambda_.invoke(
        "handle_send_batch",
        sqs_event([queued(1, {"To": "+14155550100", "From": VALID_FROM, "Body": "x"})]),
    )

    [envelope] = drain_responses(stack, observer)
    assert (envelope["outcome"], envelope["status"]) == ("retrying", None)
    assert sum(queue_counts(stack)) == 1


def test_sender_never_logs_the_twilio_secret(
    stack: Stack, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.stack import AUTH_TOKEN

    caplog.set_level("INFO")
    caplog.set_level("DEBUG", logger="chalicelib")
    caplog.set_level("DEBUG", logger="twilio")
    client.lambda_.invoke(
        "handle_send_batch",
        sqs_event([queued(1, {"To": "+14155550100", "From": VALID_FROM, "Body": "x"})]),
    )
    assert AUTH_TOKEN not in caplog.text


def test_sender_never_calls_a_redelivered_row_again(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    observer = subscribe_responses(stack)
    row = queued(1, {"To": "+14155550100", "From": VALID_FROM, "Body": "once"})

    client.lambda_.invoke("handle_send_batch", sqs_event([row]))
    client.lambda_.invoke("handle_send_batch", sqs_event([row]))  # SQS delivered it again

    first, again = drain_responses(stack, observer)
    assert first == again and first["outcome"] == "sent"
    assert len([r for r in emulator.requests if r["method"] == "POST"]) == 1


def test_sender_calls_the_next_attempt_of_a_row_twilio_did_not_process(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    full = {"To": "+14155550100", "From": "+15005550008", "Body": "queue full"}

    client.lambda_.invoke("handle_send_batch", sqs_event([queued(1, full, attempt=1)]))
    client.lambda_.invoke("handle_send_batch", sqs_event([queued(1, full, attempt=1)]))
    client.lambda_.invoke("handle_send_batch", sqs_event([queued(1, full, attempt=2)]))

    # Attempt 1 twice (its answer, 429, means it was not processed), then attempt 2.
    assert len([r for r in emulator.requests if r["method"] == "POST"]) == 3


def test_sender_holds_a_row_whose_call_may_still_be_in_flight(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    observer = subscribe_responses(stack)
    assert wiring.ledger().claim("job-1", 1, 1).verdict == "call"  # another one is calling

    client.lambda_.invoke(
        "handle_send_batch",
        sqs_event([queued(1, {"To": "+14155550100", "From": VALID_FROM, "Body": "x"})]),
    )

    assert drain_responses(stack, observer) == []
    assert emulator.requests == []
    assert queue_counts(stack) == (0, 1)


@pytest.mark.parametrize(
    ("api", "params", "outcome", "calls"),
    [
        # No such message in Twilio's list: the call never took effect, so the row goes on as
        # an attempt Twilio did not process (its next attempt is queued, with backoff).
        ("messages", {"Body": "x"}, "retrying", 1),
        ("calls", {"Url": "https://example.com/t"}, "retrying", 1),
    ],
)
def test_sender_settles_a_call_that_never_completed(
    stack: Stack,
    client: Client,
    emulator: TwilioEmulator,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    params: dict[str, str],
    outcome: str,
    calls: int,
) -> None:
    observer = subscribe_responses(stack)
    monkeypatch.setenv("IN_DOUBT_AFTER_SECONDS", "0")
    wiring.reset()
    wiring.ledger().claim("job-1", 1, 1)  # an invocation that died mid-call

    row = queued(1, {"To": "+14155550100", "From": VALID_FROM, **params}, api)
    client.lambda_.invoke("handle_send_batch", sqs_event([row]))
    client.lambda_.invoke("handle_send_batch", sqs_event([row]))  # delivered again

    settled, again = drain_responses(stack, observer)
    assert settled["outcome"] == outcome
    # An attempt Twilio did not process may be made again: the redelivery calls, once.
    assert again["outcome"] == "sent"
    assert len([r for r in emulator.requests if r["method"] == "POST"]) == calls


def test_sender_slows_every_sender_of_the_account_after_a_429(
    stack: Stack, client: Client, emulator: TwilioEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One request at a time, each taking 0.3 s: a batch's concurrent calls get 20429.
    monkeypatch.setattr(emulator, "_concurrency_limit", 1)
    monkeypatch.setattr(emulator, "_latency", 0.3)
    observer = subscribe_responses(stack)
    rows = [
        queued(i, {"To": f"+1415555{i:04d}", "From": VALID_FROM, "Body": f"m{i}"})
        for i in range(1, 7)
    ]

    client.lambda_.invoke("handle_send_batch", sqs_event(rows))

    refused = [r for r in emulator.requests if r["status"] == 429]
    assert refused and all(r["code"] == 20429 for r in refused)
    state = stack.dynamodb.get_item(
        TableName=stack.env["RATE_LIMIT_TABLE"], Key={"pk": {"S": "account#aimd"}}
    )["Item"]
    assert float(state["rate"]["N"]) < wiring.settings().account_cps
    outcomes = {e["row"]: e["outcome"] for e in drain_responses(stack, observer)}
    retrying = sorted(row for row, outcome in outcomes.items() if outcome == "retrying")
    assert retrying == sorted(int(r["params"]["Body"][1:]) for r in refused)
    assert len(outcomes) == 6


def test_sender_keeps_a_sender_to_its_messages_per_second(
    stack: Stack, client: Client, emulator: TwilioEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDER_LIMITS", f"{VALID_FROM}=2")
    wiring.reset()
    observer = subscribe_responses(stack)
    rows = [
        queued(i, {"To": f"+1415555{i:04d}", "From": VALID_FROM, "Body": f"m{i}"})
        for i in range(1, 9)
    ]

    client.lambda_.invoke("handle_send_batch", sqs_event(rows))

    # Two a second for the 3-second horizon: six now, on the sender's schedule half a second
    # apart (its next free time moved on by 6 x 0.5 s); two put back on the queue.
    sent = sorted(r["t"] for r in emulator.requests if r["method"] == "POST")
    assert len(sent) == 6
    schedule = stack.dynamodb.get_item(
        TableName=stack.env["RATE_LIMIT_TABLE"], Key={"pk": {"S": f"sender#{VALID_FROM}"}}
    )["Item"]
    first_start = float(schedule["tat"]["N"]) - 3.0
    # A call may go before its time by as much as the rows booked with it are spread: at most
    # one dispatch tick (docs/design.md: metering).
    early = DISPATCH_TICK_SECONDS + 0.01
    assert all(t >= first_start + 0.5 * i - early for i, t in enumerate(sent))
    assert {e["row"] for e in drain_responses(stack, observer)} == {1, 2, 3, 4, 5, 6}
    assert sum(queue_counts(stack)) == 2


def test_sender_keeps_the_outcome_of_a_row_called_before_its_number_was_suppressed(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    observer = subscribe_responses(stack)
    row = queued(1, {"To": "+15005550004", "From": VALID_FROM, "Body": "to a STOP"})
    client.lambda_.invoke("handle_send_batch", sqs_event([row]))
    # The failure suppresses the number; then SQS delivers the same message again.
    wiring.suppression().add("+15005550004", "STOP", error_code=21610)
    client.lambda_.invoke("handle_send_batch", sqs_event([row]))

    first, again = drain_responses(stack, observer)
    assert (first["outcome"], first["error"]["code"]) == ("failed", 21610)
    assert again == first
    assert len([r for r in emulator.requests if r["method"] == "POST"]) == 1
