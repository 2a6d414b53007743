"""The jobs REST API through chalice.test.Client, on the moto stack."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chalice.test import Client

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.core.jobs import Job
from tests.envelopes import published
from tests.handlers.test_pipeline import s3_event, sqs_event
from tests.stack import Stack, subscribe_queue

VALID_FROM = "+15005550006"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def rows(count: int) -> list[dict[str, str]]:
    return [
        {"To": f"+1415555{i:04d}", "From": VALID_FROM, "Body": f"message {i}"} for i in range(count)
    ]


def post(client: Client, path: str, body: Any = None) -> Any:
    raw = b"" if body is None else json.dumps(body).encode()
    return client.http.post(path, headers=JSON, body=raw)


def create_and_split(stack: Stack, client: Client, body: dict[str, Any]) -> str:
    """POST /jobs, then the S3 event the SOURCE bucket would deliver."""
    response = post(client, "/jobs", body)
    assert response.status_code == 202, response.body
    created = json.loads(response.body)
    client.lambda_.invoke(
        "handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], created["key"])
    )
    return str(created["job_id"])


def get_job(client: Client, job_id: str) -> dict[str, Any]:
    response = client.http.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.body
    return dict(json.loads(response.body))


def drain(stack: Stack, url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for m in messages:
            bodies.append(m["Body"])
            stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_api_post_rows_writes_a_source_file_and_returns_the_job_id(
    stack: Stack, client: Client
) -> None:
    body = {"rows": [*rows(3), {"To": "not a number", "From": VALID_FROM, "Body": "x"}], "cps": 5}
    response = post(client, "/jobs", body)

    assert response.status_code == 202
    created = json.loads(response.body)
    assert response.headers["Location"] == f"/jobs/{created['job_id']}"
    stored = stack.s3.get_object(Bucket=stack.env["SOURCE_BUCKET"], Key=created["key"])
    assert stored["Metadata"] == {"cps": "5"}
    assert [json.loads(line) for line in stored["Body"].read().splitlines()] == body["rows"]
    # Not split yet: the job appears once the splitter has read the file.
    assert client.http.get(f"/jobs/{created['job_id']}").status_code == 404

    client.lambda_.invoke(
        "handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], created["key"])
    )

    job = get_job(client, created["job_id"])
    assert (job["state"], job["rows"], job["valid"]) == ("running", 4, 3)
    assert job["counts"] == {
        "rejected": 1,
        "suppressed": 0,
        "sent": 0,
        "failed": 0,
        "unknown": 0,
        "dead_lettered": 0,
    }
    assert job["pending"] == 3
    assert job["rate"] == {
        "target_cps": 5,
        "current_cps": 0.0,
        "account_cps": wiring.settings().account_cps,
    }
    assert 0 <= job["eta_seconds"] <= 15
    rejects = job["links"]["rejects_csv"]
    assert f"jobs/{created['job_id']}/rejects.csv" in urlsplit(rejects).path
    assert "X-Amz-Signature" in parse_qs(urlsplit(rejects).query)
    assert job["links"]["outcomes_csv"] is None


def test_api_the_same_rows_posted_again_are_the_same_job(stack: Stack, client: Client) -> None:
    first = json.loads(post(client, "/jobs", {"rows": rows(2)}).body)
    again = json.loads(post(client, "/jobs", {"rows": rows(2)}).body)
    other = json.loads(post(client, "/jobs", {"rows": rows(2), "name": "second-run"}).body)

    assert first["job_id"] == again["job_id"]
    assert other["job_id"] != first["job_id"]


def test_api_upload_url_signs_the_job_id_the_splitter_then_uses(
    stack: Stack, client: Client
) -> None:
    response = post(client, "/jobs", {"filename": "calls.csv", "window": 60})
    assert response.status_code == 202
    created = json.loads(response.body)
    upload = created["upload"]
    signed = parse_qs(urlsplit(upload["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"x-amz-meta-job-id", "x-amz-meta-window"} <= set(signed)
    assert upload["headers"] == {
        "x-amz-meta-job-id": created["job_id"],
        "x-amz-meta-window": "60",
    }

    # What the client's PUT stores: the object with the signed metadata.
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["To", "From", "Body"])
    writer.writeheader()
    writer.writerows(rows(2))
    metadata = {k.removeprefix("x-amz-meta-"): v for k, v in upload["headers"].items()}
    bucket = stack.env["SOURCE_BUCKET"]
    stack.s3.put_object(
        Bucket=bucket, Key=created["key"], Body=text.getvalue().encode(), Metadata=metadata
    )
    client.lambda_.invoke("handle_source_file", s3_event(bucket, created["key"]))

    job = get_job(client, created["job_id"])
    assert (job["state"], job["valid"], job["window_seconds"]) == ("running", 2, 60)


def test_api_resend_signs_the_resend_metadata_into_the_upload_url(client: Client) -> None:
    response = post(client, "/jobs", {"filename": "calls.csv", "resend": True})
    assert response.status_code == 202
    upload = json.loads(response.body)["upload"]

    signed = parse_qs(urlsplit(upload["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert "x-amz-meta-resend" in signed
    assert upload["headers"]["x-amz-meta-resend"] == "true"
    plain = json.loads(post(client, "/jobs", {"filename": "calls.csv"}).body)["upload"]
    assert "x-amz-meta-resend" not in plain["headers"]


def test_api_resend_of_rows_is_stored_on_the_source_file(stack: Stack, client: Client) -> None:
    created = json.loads(post(client, "/jobs", {"rows": rows(1), "resend": True}).body)
    again = json.loads(post(client, "/jobs", {"rows": rows(1)}).body)

    head = stack.s3.head_object(Bucket=stack.env["SOURCE_BUCKET"], Key=created["key"])
    assert head["Metadata"] == {"resend": "true"}
    assert again["key"] != created["key"]


@pytest.mark.parametrize("resend", ["yes", 1, None])
def test_api_resend_that_is_not_a_boolean_is_400(client: Client, resend: Any) -> None:
    response = post(client, "/jobs", {"filename": "calls.csv", "resend": resend})

    assert response.status_code == 400
    assert "`resend`" in json.loads(response.body)["Message"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b"{}", 400),
        (json.dumps({"rows": rows(1), "filename": "a.csv"}).encode(), 400),
        (json.dumps({"rows": []}).encode(), 400),
        (json.dumps({"rows": ["a string"]}).encode(), 400),
        (json.dumps({"filename": "calls.xlsx"}).encode(), 400),
        (json.dumps({"filename": "../x.csv"}).encode(), 400),
        (json.dumps({"rows": rows(1), "cps": 0}).encode(), 400),
        (json.dumps({"rows": rows(1), "window": 901}).encode(), 400),
        (json.dumps({"rows": rows(1), "cps": "10"}).encode(), 400),
        (json.dumps({"rows": rows(1), "name": "a/b"}).encode(), 400),
    ],
)
def test_api_malformed_create_is_400_json(client: Client, body: bytes, status: int) -> None:
    response = client.http.post("/jobs", headers=JSON, body=body)

    assert response.status_code == status
    error = json.loads(response.body)
    assert error["Code"] == "BadRequestError" and error["Message"]


def test_api_too_many_rows_is_413(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_MAX_ROWS", "3")
    wiring.reset()

    response = post(client, "/jobs", {"rows": rows(4)})

    assert response.status_code == 413
    assert "upload a file" in json.loads(response.body)["Message"]
    assert post(client, "/jobs", {"rows": rows(3)}).status_code == 202


def test_api_unknown_job_is_404_everywhere(client: Client) -> None:
    assert client.http.get("/jobs/nope-000000000000").status_code == 404
    for action in ("cancel", "pause", "resume"):
        response = client.http.post(f"/jobs/nope-000000000000/{action}")
        assert response.status_code == 404
        assert json.loads(response.body)["Code"] == "NotFoundError"


def test_api_lists_recent_jobs_newest_first(stack: Stack, client: Client) -> None:
    older = create_and_split(stack, client, {"rows": rows(1), "name": "older"})
    time.sleep(0.01)
    newer = create_and_split(stack, client, {"rows": rows(1), "name": "newer"})

    listed = json.loads(client.http.get("/jobs").body)["jobs"]
    assert [j["job_id"] for j in listed] == [newer, older]
    one = json.loads(client.http.get("/jobs?limit=1").body)["jobs"]
    assert [j["job_id"] for j in one] == [newer]
    assert client.http.get("/jobs?limit=0").status_code == 400
    assert client.http.get("/jobs?limit=x").status_code == 400


def test_api_pause_resume_cancel_and_invalid_changes_are_409(stack: Stack, client: Client) -> None:
    job_id = create_and_split(stack, client, {"rows": rows(3)})

    assert client.http.post(f"/jobs/{job_id}/resume").status_code == 409
    paused = client.http.post(f"/jobs/{job_id}/pause")
    assert (paused.status_code, json.loads(paused.body)["state"]) == (200, "paused")
    assert get_job(client, job_id)["eta_seconds"] is None
    assert client.http.post(f"/jobs/{job_id}/pause").status_code == 409
    resumed = client.http.post(f"/jobs/{job_id}/resume")
    # The state machine may have released the job's one chunk meanwhile.
    assert json.loads(resumed.body)["state"] in ("running", "released")
    cancelled = client.http.post(f"/jobs/{job_id}/cancel")
    assert json.loads(cancelled.body)["state"] == "cancelled"
    for action in ("cancel", "pause", "resume"):
        response = client.http.post(f"/jobs/{job_id}/{action}")
        assert response.status_code == 409
        assert json.loads(response.body)["Code"] == "ConflictError"


def queued_rows(stack: Stack, bucket: str, key: str, job: Job) -> list[dict[str, Any]]:
    """The send-queue messages of a released chunk's rows, as the enqueuer makes them."""
    assert job.started_at is not None
    queued = []
    for line in stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines():
        row = json.loads(line)
        queued.append(
            {
                "job_id": job.job_id,
                "row": row["row"],
                "api": row["api"],
                "params": row["params"],
                "due_at": job.started_at + row["offset"],
                "job_start": job.started_at,
            }
        )
    return queued


def test_api_cancelled_job_ends_every_row_failed_cancelled_without_calling_twilio(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    responses = subscribe_queue(
        stack.sqs, stack.sns, stack.env["RESPONSE_TOPIC_ARN"], "test-responses"
    )
    # 3 chunks of 2 rows (1 CPS, 2-second windows).
    job_id = create_and_split(stack, client, {"rows": rows(6), "cps": 1, "window": 2})
    assert client.http.post(f"/jobs/{job_id}/cancel").status_code == 200
    job = wiring.jobs().get(job_id)
    assert job is not None and job.started_at is not None

    # The release loop's next step releases what is left at once, and stops.
    loop = {"job_id": job_id, "chunk": 0, "chunks": 3, "start": job.started_at}
    result = client.lambda_.invoke("release_chunk", {**loop, "window": 2, "cps": 1}).payload
    assert (result["done"], result["stopped"]) == (True, "cancelled")
    process = stack.env["PROCESS_BUCKET"]
    keys = sorted(o["Key"] for o in stack.s3.list_objects_v2(Bucket=process)["Contents"])
    assert keys == [f"jobs/{job_id}/chunk-0000{i}.jsonl" for i in range(3)]

    # The sender ends each released row without a Twilio call.
    queued = [row for key in keys for row in queued_rows(stack, process, key, job)]
    client.lambda_.invoke("handle_send_batch", sqs_event(queued))
    assert emulator.requests == []

    envelopes = published(drain(stack, responses))
    assert len(envelopes) == 6
    for envelope in envelopes:
        assert envelope["outcome"] == "failed"
        assert envelope["error"]["code"] == "cancelled"
    client.lambda_.invoke("handle_results_batch", sqs_event(envelopes))
    client.lambda_.invoke("handle_router_batch", sqs_event(envelopes))
    client.lambda_.invoke(
        "handle_reconcile",
        client.events.generate_cw_event("aws.events", "Scheduled Event", {}, []),
    )

    final = get_job(client, job_id)
    assert final["state"] == "cancelled"
    assert final["counts"]["failed"] == 6 and final["pending"] == 0
    assert final["eta_seconds"] is None
    outcomes = (
        stack.s3.get_object(Bucket=stack.env["REPORTS_BUCKET"], Key=f"jobs/{job_id}/outcomes.csv")[
            "Body"
        ]
        .read()
        .decode()
    )
    table = list(csv.DictReader(io.StringIO(outcomes)))
    assert {(r["outcome"], r["error_code"]) for r in table} == {("failed", "cancelled")}
    assert final["links"]["outcomes_csv"] is not None
