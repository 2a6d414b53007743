"""Downstream on moto: error routing through EventBridge rules, suppression, pausing a job on
systemic errors and resuming it, the reconciler; and the sender's side of each."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.core.envelope import MalformedEnvelope, ResponseEnvelope
from chalicelib.core.jobs import Job
from chalicelib.release.resume import resume
from chalicelib.sending.publisher import ResponsePublisher
from downstream import wiring as sinks
from downstream.messages import envelopes_of
from downstream.router import event_details
from tests.handlers.test_pipeline import (
    drain,
    drain_responses,
    queued,
    sqs_event,
    subscribe_responses,
)
from tests.stack import Stack, subscribe_queue

VALID_FROM = "+15005550006"


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def envelope(row: int, code: int | None, status: int, **extra: Any) -> dict[str, Any]:
    """A response envelope as the sink queues deliver it (ResponseEnvelope.to_json)."""
    return {
        "job_id": "job-1",
        "row": row,
        "api": extra.pop("api", "messages"),
        "attempt": 1,
        "outcome": "failed" if status >= 300 else "sent",
        "request": {"To": extra.pop("to", f"+1415555{row:04d}"), "From": VALID_FROM},
        "status": status,
        "error": None if code is None else {"code": code, "message": "m", "more_info": None},
        "sid": None,
        "body": extra.pop("body", None),
        "headers": {},
        "timings": {
            "due_at": 1.0,
            "started_at": 1.0,
            "finished_at": 1.0,
            "lag_seconds": 0.0,
            "duration_seconds": 0.0,
        },
    }


def routed(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return event_details(ResponseEnvelope.from_json(message))


def queue_events(stack: Stack, name: str) -> list[dict[str, Any]]:
    url = stack.sqs.get_queue_url(QueueName=stack.env[name])["QueueUrl"]
    return [m for m in drain(stack, url)]


def make_job(state: str = "running", *, job_id: str = "job-1", **fields: Any) -> Job:
    """A job stored in the jobs table: 10 rows at 10 CPS, in one chunk, started at 100.0."""
    job = Job(
        job_id=job_id,
        bucket="b",
        key="k",
        etag="e",
        state=state,  # type: ignore[arg-type]
        cps=10,
        window_seconds=60,
        created_at=fields.pop("created_at", 1.0),
        rows=fields.pop("rows", 10),
        valid=fields.pop("valid", 10),
        chunks=fields.pop("chunks", 1),
        started_at=fields.pop("started_at", 100.0),
        **fields,
    )
    wiring.jobs().create(job)
    return job


def test_router_event_details_classify_errors_and_lookups() -> None:
    assert routed(envelope(1, None, 201)) == []
    [(kind, detail)] = routed(envelope(2, 21610, 400))
    assert (kind, detail["ErrorCode"], detail["Reason"]) == ("TwilioError", 21610, "unsubscribed")
    [(kind, detail)] = routed(envelope(3, 21212, 400))
    assert (kind, detail["ErrorCode"], "Reason" in detail) == ("TwilioError", 21212, False)
    landline = envelope(
        4,
        None,
        200,
        api="lookup",
        body={"valid": True, "line_type_intelligence": {"type": "landline"}},
    )
    landline["request"] = {"PhoneNumber": "+15005550009"}
    [(kind, detail)] = routed(landline)
    assert (kind, detail["number"]) == ("LookupFinding", "+15005550009")


def test_sink_messages_are_envelopes_or_sns_notifications_wrapping_one() -> None:
    published = envelope(1, 21610, 400)
    notification = {"Type": "Notification", "Message": json.dumps(published)}

    assert [e.to_json() for e in envelopes_of([json.dumps(published)])] == [published]
    assert [e.to_json() for e in envelopes_of([json.dumps(notification)])] == [published]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("{not json", "the message is not JSON"),
        (json.dumps({"Type": "Notification", "Message": "{"}), "the message is not JSON"),
        (json.dumps({**envelope(1, None, 201), "row": "1"}), "row is '1', not an integer"),
    ],
)
def test_sink_message_without_an_envelope_raises_malformed_envelope(body: str, match: str) -> None:
    with pytest.raises(MalformedEnvelope, match=match):
        envelopes_of([body])


def test_router_events_reach_the_queue_of_their_rule(stack: Stack, client: Client) -> None:
    envelopes = [envelope(1, 21610, 400), envelope(2, 21212, 400), envelope(3, 21612, 400)]
    client.lambda_.invoke(
        "handle_router_batch",
        sqs_event(envelopes),  # type: ignore[arg-type]
    )

    suppression = queue_events(stack, "SUPPRESSION_QUEUE")
    systemic = queue_events(stack, "SYSTEMIC_QUEUE")
    assert [e["detail"]["ErrorCode"] for e in suppression] == [21610]
    assert [e["detail"]["ErrorCode"] for e in systemic] == [21212]


def test_suppression_events_add_numbers_and_sender_skips_them(stack: Stack, client: Client) -> None:
    observer = subscribe_responses(stack)
    client.lambda_.invoke(
        "handle_router_batch", sqs_event([envelope(1, 21610, 400, to="+14155550100")])
    )
    events = queue_events(stack, "SUPPRESSION_QUEUE")
    client.lambda_.invoke("handle_suppression_events", sqs_event(events))
    assert wiring.suppression().suppressed({"+14155550100", "+14155550101"}) == {"+14155550100"}
    assert [e.source for e in wiring.suppression().list()] == ["send_error"]

    rows = [
        queued(7, {"To": "+14155550100", "From": VALID_FROM, "Body": "again"}),
        queued(8, {"To": "+14155550101", "From": VALID_FROM, "Body": "other"}),
    ]
    client.lambda_.invoke("handle_send_batch", sqs_event(rows))

    outcomes = {e["row"]: (e["outcome"], e["status"]) for e in drain_responses(stack, observer)}
    assert outcomes == {7: ("suppressed", None), 8: ("sent", 201)}


def test_systemic_errors_pause_the_job_once_and_alert(stack: Stack, client: Client) -> None:
    make_job()
    alerts = subscribe_queue(stack.sqs, stack.sns, stack.env["ALERT_TOPIC_ARN"], "alerts")
    bad_from = [envelope(row, 21212, 400) for row in range(1, 8)]
    client.lambda_.invoke("handle_router_batch", sqs_event(bad_from[:5]))
    client.lambda_.invoke("handle_router_batch", sqs_event(bad_from[5:]))
    client.lambda_.invoke(
        "handle_systemic_events", sqs_event(queue_events(stack, "SYSTEMIC_QUEUE"))
    )

    job = wiring.jobs().get("job-1")
    assert job is not None and job.state == "paused" and job.systemic_errors == 7
    [alert] = drain(stack, alerts)
    assert (alert["job_id"], alert["error_codes"]) == ("job-1", {"21212": 7})


def test_systemic_share_is_judged_when_routed_not_when_the_event_arrives(
    stack: Stack, client: Client
) -> None:
    make_job(rows=60, valid=60)
    bad_from = [envelope(row, 21212, 400) for row in range(1, 8)]
    good = [envelope(row, None, 201) for row in range(8, 48)]
    client.lambda_.invoke("handle_router_batch", sqs_event(bad_from))
    # Forty good responses are routed before the systemic handler sees the seven errors.
    for i in range(0, len(good), 10):
        client.lambda_.invoke("handle_router_batch", sqs_event(good[i : i + 10]))
    client.lambda_.invoke(
        "handle_systemic_events", sqs_event(queue_events(stack, "SYSTEMIC_QUEUE"))
    )

    job = wiring.jobs().get("job-1")
    assert job is not None and job.responses == 47
    assert job.state == "paused" and job.systemic_errors == 7


def test_an_early_errors_event_handled_late_is_judged_against_the_latest_count(
    stack: Stack, client: Client
) -> None:
    make_job(rows=60, valid=60)
    client.lambda_.invoke(
        "handle_router_batch", sqs_event([envelope(row, 21212, 400) for row in range(1, 4)])
    )
    good = [envelope(row, None, 201) for row in range(4, 44)]
    for i in range(0, len(good), 10):
        client.lambda_.invoke("handle_router_batch", sqs_event(good[i : i + 10]))
    client.lambda_.invoke(
        "handle_router_batch", sqs_event([envelope(row, 21212, 400) for row in range(44, 48)])
    )
    early, late = [], []
    for event in queue_events(stack, "SYSTEMIC_QUEUE"):
        (early if event["detail"]["row"] < 4 else late).append(event)
    # The later errors' events come first: 7 errors among 47 responses, not among 3.
    client.lambda_.invoke("handle_systemic_events", sqs_event(late))
    client.lambda_.invoke("handle_systemic_events", sqs_event(early))

    job = wiring.jobs().get("job-1")
    assert job is not None and job.systemic_errors == 7 and job.state == "running"


def test_a_few_bad_senders_among_many_good_rows_do_not_pause_the_job(
    stack: Stack, client: Client
) -> None:
    make_job(rows=60, valid=60)
    good = [envelope(row, None, 201) for row in range(1, 21)]
    for i in range(0, len(good), 10):
        client.lambda_.invoke("handle_router_batch", sqs_event(good[i : i + 10]))
    client.lambda_.invoke(
        "handle_router_batch", sqs_event([envelope(row, 21212, 400) for row in range(21, 28)])
    )
    client.lambda_.invoke(
        "handle_systemic_events", sqs_event(queue_events(stack, "SYSTEMIC_QUEUE"))
    )

    job = wiring.jobs().get("job-1")
    assert job is not None and job.systemic_errors == 7 and job.state == "running"


def test_sender_puts_rows_of_a_paused_job_back_without_calling(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_job(state="paused", paused_at=time.time())
    observer = subscribe_responses(stack)

    client.lambda_.invoke(
        "handle_send_batch",
        sqs_event([queued(1, {"To": "+14155550100", "From": VALID_FROM, "Body": "held"})]),
    )

    assert drain_responses(stack, observer) == []
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.send_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


def test_resume_moves_the_jobs_start_by_the_pause(stack: Stack) -> None:
    make_job(state="paused", paused_at=1000.0, started_at=900.0, chunks=3, released_chunks=1)

    start = resume(wiring.jobs(), "job-1", now=1600.0)

    job = wiring.jobs().get("job-1")
    assert start == 1500.0
    assert job is not None and (job.state, job.started_at, job.paused_at) == (
        "running",
        1500.0,
        None,
    )


def test_release_of_a_paused_job_waits_and_releases_nothing(stack: Stack, client: Client) -> None:
    make_job(state="paused", paused_at=time.time())
    state = {"job_id": "job-1", "chunk": 0, "chunks": 1, "start": 100.0, "window": 60, "cps": 10}

    result = client.lambda_.invoke("release_chunk", state).payload

    assert (result["seq"], result["done"]) == (0, False)
    assert stack.s3.list_objects_v2(Bucket=stack.env["PROCESS_BUCKET"]).get("KeyCount") == 0


def test_reconciler_completes_a_settled_job_with_an_outcome_csv(
    stack: Stack, client: Client
) -> None:
    make_job(rows=3, valid=3, rejected=0)
    results = [
        envelope(1, None, 201),
        envelope(2, 21614, 400),
        {**envelope(3, None, 201), "outcome": "suppressed", "status": None},
    ]
    client.lambda_.invoke("handle_results_batch", sqs_event(results))
    sinks.reconciler().run()
    assert wiring.jobs().get("job-1").state == "running"  # type: ignore[union-attr]
    client.lambda_.invoke("handle_router_batch", sqs_event(results))  # counts the responses

    sinks.reconciler().run()

    job = wiring.jobs().get("job-1")
    assert job is not None and job.state == "completed"
    body = stack.s3.get_object(Bucket=stack.env["REPORTS_BUCKET"], Key="jobs/job-1/outcomes.csv")
    rows = list(csv.DictReader(io.StringIO(body["Body"].read().decode())))
    assert [(r["row"], r["outcome"], r["error_code"]) for r in rows] == [
        ("1", "sent", ""),
        ("2", "failed", "21614"),
        ("3", "suppressed", ""),
    ]


def test_archive_sink_writes_one_object_per_partition(stack: Stack, client: Client) -> None:
    batch = [envelope(1, None, 201), envelope(2, None, 201), envelope(3, 21610, 400)]
    client.lambda_.invoke("handle_archive_batch", sqs_event(batch))
    client.lambda_.invoke("handle_archive_batch", sqs_event(batch))  # redelivered

    keys = [
        o["Key"] for o in stack.s3.list_objects_v2(Bucket=stack.env["ARCHIVE_BUCKET"])["Contents"]
    ]
    assert len(keys) == 2
    assert sorted(k.split("/")[2] for k in keys) == ["outcome=failed", "outcome=sent"]
    lines = stack.s3.get_object(Bucket=stack.env["ARCHIVE_BUCKET"], Key=sorted(keys)[1])
    assert [json.loads(line)["row"] for line in lines["Body"].read().splitlines()] == [1, 2]


def test_each_sink_queue_gets_the_envelopes_themselves_with_their_attributes(
    stack: Stack,
) -> None:
    # The template's subscriptions (raw delivery), made through the SNS API in moto, which has
    # no CloudFormation model for them (callqueue.deploy.moto_stack.subscribe_queues).
    envelope = {"job_id": "j1", "row": 3, "outcome": "sent", "api": "messages", "status": 201}
    ResponsePublisher(stack.sns, stack.env["RESPONSE_TOPIC_ARN"]).publish([envelope])

    for name in ("ARCHIVE_QUEUE", "RESULTS_QUEUE", "ROUTER_QUEUE"):
        url = stack.sqs.get_queue_url(QueueName=stack.env[name])["QueueUrl"]
        [message] = stack.sqs.receive_message(
            QueueUrl=url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
        )["Messages"]
        assert json.loads(message["Body"]) == [envelope]  # no SNS wrapper to unwrap
        assert message["MessageAttributes"]["outcome"]["StringValue"] == '["sent"]'
