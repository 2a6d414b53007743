"""A job's timing settings (start, send window, daily cap) through POST /jobs, a presigned upload
and a job manifest, as GET /jobs/{id} then shows them; a scheduled job cancelled before its
start; the reconciler leaving a job whose rows wait for their window."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chalice.test import Client

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.intake.manifest import MANIFEST_SUFFIX
from chalicelib.release.state_machine import execution_name
from downstream import wiring as sinks
from tests.envelopes import published
from tests.handlers.test_api import create_and_split, drain, get_job, post, queued_rows, rows
from tests.handlers.test_downstream import make_job
from tests.handlers.test_lifecycle import executions
from tests.handlers.test_pipeline import s3_event, sqs_event
from tests.stack import Stack, subscribe_queue

# Far enough ahead that no test runs into it, within the year a start may be ahead.
LATER = 30 * 86_400


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def process_keys(stack: Stack) -> list[str]:
    listed = stack.s3.list_objects_v2(Bucket=stack.env["PROCESS_BUCKET"])
    return [o["Key"] for o in listed.get("Contents", [])]


def test_timing_every_setting_is_stored_and_shown_on_the_job(stack: Stack, client: Client) -> None:
    start = int(time.time()) + LATER
    body = {
        "rows": rows(3),
        # An offset other than UTC: the job shows the same moment in UTC.
        "start_at": datetime.fromtimestamp(start, UTC).astimezone().isoformat(),
        "send_window": "8:00-21:00",
        "send_days": "Mon-Fri",
        "max_per_day": 500,
    }
    response = post(client, "/jobs", body)
    assert response.status_code == 202, response.body
    created = json.loads(response.body)
    stored = stack.s3.head_object(Bucket=stack.env["SOURCE_BUCKET"], Key=created["key"])
    assert stored["Metadata"] == {
        "start-at": utc(start),
        "send-window": "08:00-21:00",
        "send-days": "mon-fri",
        "max-per-day": "500",
    }
    client.lambda_.invoke(
        "handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], created["key"])
    )

    job = get_job(client, created["job_id"])
    assert job["state"] == "scheduled"
    assert (job["start_at"], job["send_window"], job["send_days"], job["max_per_day"]) == (
        utc(start),
        "08:00-21:00",
        "mon-fri",
        500,
    )
    assert (job["released_rows"], job["waiting_for"]) == (0, "start")
    assert job["next_window"] is not None and epoch(job["next_window"]) >= start
    assert job["next_release_at"] is not None and epoch(job["next_release_at"]) < start
    # Rows wait for their windows: only a plan tells when the last is due.
    assert job["eta_seconds"] is None
    assert process_keys(stack) == []
    [listed] = json.loads(client.http.get("/jobs").body)["jobs"]
    assert (listed["state"], listed["start_at"]) == ("scheduled", utc(start))


def test_timing_a_scheduled_job_without_a_window_counts_its_eta_from_the_start(
    stack: Stack, client: Client
) -> None:
    before = time.time()
    job_id = create_and_split(stack, client, {"rows": rows(4), "cps": 2, "start_at": "in 2h"})
    after = time.time()

    job = get_job(client, job_id)
    assert (job["state"], job["waiting_for"]) == ("scheduled", "start")
    # "in 2h" is resolved when the request is made, to the second.
    assert int(before) + 7200 <= epoch(job["start_at"]) <= after + 7200
    # Until the start, then 4 rows at 2 CPS: the last is due 1.5 s after it.
    assert before + 7200 - 1 <= time.time() + job["eta_seconds"] - 1.5 <= after + 7200 + 1
    assert process_keys(stack) == []


def test_timing_a_retried_request_with_a_relative_start_is_the_same_job(client: Client) -> None:
    body = {"rows": rows(2), "start_at": "in 1h30m"}
    first = json.loads(post(client, "/jobs", body).body)
    again = json.loads(post(client, "/jobs", body).body)
    other = json.loads(post(client, "/jobs", {**body, "start_at": "in 2h"}).body)

    assert first["job_id"] == again["job_id"] != other["job_id"]


def test_timing_a_start_in_the_past_means_now(stack: Stack, client: Client) -> None:
    job_id = create_and_split(stack, client, {"rows": rows(2), "start_at": "2020-01-01T00:00Z"})

    job = get_job(client, job_id)
    assert job["state"] == "running" and job["waiting_for"] is None
    assert job["start_at"] == "2020-01-01T00:00:00Z"
    assert job["eta_seconds"] is not None and job["eta_seconds"] < 60


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("start_at", "2026-12-07T09:00:00"),
        ("start_at", "in 2 fortnights"),
        ("start_at", "tomorrow"),
        ("start_at", f"{datetime.now(UTC).year + 2}-01-01T00:00:00Z"),
        ("start_at", 1_800_000_000),
        ("send_window", "25:00-26:00"),
        ("send_window", "21:00-08:00"),
        ("send_window", "08:00"),
        ("send_window", 8),
        ("send_days", "funday"),
        ("send_days", "mon,,fri"),
        ("max_per_day", 0),
        ("max_per_day", -1),
        ("max_per_day", "ten"),
        ("max_per_day", "10"),
        ("max_per_day", True),
        ("max_per_day", 1.5),
        ("max_per_day", 10**12),
    ],
)
@pytest.mark.parametrize("way", ["rows", "filename"])
def test_timing_a_malformed_setting_is_a_400_naming_it(
    stack: Stack, client: Client, setting: str, value: Any, way: str
) -> None:
    body: dict[str, Any] = {"rows": rows(1)} if way == "rows" else {"filename": "calls.csv"}
    response = post(client, "/jobs", {**body, setting: value})

    assert response.status_code == 400, response.body
    error = json.loads(response.body)
    assert error["Code"] == "BadRequestError"
    assert f"`{setting}`" in error["Message"] and "\n" not in error["Message"]
    assert "Contents" not in stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"])


def test_timing_the_upload_url_signs_the_settings_the_splitter_then_reads(
    stack: Stack, client: Client
) -> None:
    start = int(time.time()) + LATER
    body = {"filename": "calls.csv", "start_at": utc(start), "send_window": "09:00-17:00"}
    created = json.loads(post(client, "/jobs", body).body)
    upload = created["upload"]
    signed = parse_qs(urlsplit(upload["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"x-amz-meta-start-at", "x-amz-meta-send-window", "x-amz-meta-send-days"} <= set(signed)
    assert upload["headers"]["x-amz-meta-start-at"] == utc(start)

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
    assert (job["state"], job["start_at"], job["send_window"]) == (
        "scheduled",
        utc(start),
        "09:00-17:00",
    )
    assert process_keys(stack) == []


def test_timing_a_dropped_file_takes_the_settings_of_its_manifest(
    stack: Stack, client: Client
) -> None:
    start = int(time.time()) + LATER
    bucket, key = stack.env["SOURCE_BUCKET"], "drops/calls.jsonl"
    manifest = {
        "params": {"From": "+15005550006"},
        "start_at": utc(start),
        "send_window": "08:00-21:00",
        "send_days": "sat,sun",
        "max_per_day": 7,
    }
    stack.s3.put_object(Bucket=bucket, Key=key + MANIFEST_SUFFIX, Body=json.dumps(manifest))
    lines = "".join(json.dumps({"To": r["To"], "Body": r["Body"]}) + "\n" for r in rows(3))
    stack.s3.put_object(Bucket=bucket, Key=key, Body=lines.encode())
    client.lambda_.invoke("handle_source_file", s3_event(bucket, key))

    [listed] = json.loads(client.http.get("/jobs").body)["jobs"]
    job = get_job(client, listed["job_id"])
    assert (job["state"], job["valid"]) == ("scheduled", 3)
    assert (job["start_at"], job["send_window"], job["send_days"], job["max_per_day"]) == (
        utc(start),
        "08:00-21:00",
        "sat,sun",
        7,
    )
    assert process_keys(stack) == []


def test_timing_a_scheduled_job_cancelled_before_its_start_sends_nothing(
    stack: Stack, client: Client, emulator: TwilioEmulator
) -> None:
    responses = subscribe_queue(
        stack.sqs, stack.sns, stack.env["RESPONSE_TOPIC_ARN"], "test-responses"
    )
    body = {"rows": rows(4), "cps": 1, "window": 2, "start_at": "in 3h"}
    job_id = create_and_split(stack, client, body)
    assert get_job(client, job_id)["state"] == "scheduled"
    assert process_keys(stack) == []

    cancelled = client.http.post(f"/jobs/{job_id}/cancel")
    assert (cancelled.status_code, json.loads(cancelled.body)["state"]) == (200, "cancelled")
    assert json.loads(cancelled.body)["loop_restarted"] is True
    # The loop waiting for the start (3 hours) is replaced by one that releases now.
    loops = executions(stack, job_id)
    now = loops[execution_name(job_id, 1)]
    assert now["input"]["next_at"] == ""
    assert wait_until_stopped(stack, loops[job_id]["arn"]) in ("ABORTED", "SUCCEEDED")
    # The loop's next step releases every row at once, and stops.
    result = client.lambda_.invoke("release_chunk", {"job_id": job_id}).payload
    assert (result["done"], result["stopped"]) == (True, "cancelled")
    job = wiring.jobs().get(job_id)
    assert job is not None
    queued = [
        row
        for key in process_keys(stack)
        for row in queued_rows(stack, stack.env["PROCESS_BUCKET"], key, job)
    ]
    assert sorted(r["row"] for r in queued) == [1, 2, 3, 4]

    client.lambda_.invoke("handle_send_batch", sqs_event(queued))
    assert emulator.requests == []
    envelopes = published(drain(stack, responses))
    assert {(e["outcome"], e["error"]["code"]) for e in envelopes} == {("failed", "cancelled")}
    assert len(envelopes) == 4
    client.lambda_.invoke("handle_results_batch", sqs_event(envelopes))
    client.lambda_.invoke("handle_router_batch", sqs_event(envelopes))
    client.lambda_.invoke(
        "handle_reconcile",
        client.events.generate_cw_event("aws.events", "Scheduled Event", {}, []),
    )

    final = get_job(client, job_id)
    assert (final["state"], final["counts"]["failed"], final["pending"]) == ("cancelled", 4, 0)
    assert final["waiting_for"] is None and final["next_release_at"] is None
    assert final["links"]["outcomes_csv"] is not None


def test_timing_the_reconciler_leaves_a_job_waiting_for_its_window(stack: Stack) -> None:
    quiet = wiring.settings().stalled_after_seconds + 60
    now = time.time()
    waiting = {
        "started_at": now - 2 * quiet,
        "progress_at": now - quiet,
        "send_window": "08:00-21:00",
        "send_days": "mon-sun",
        "released_rows": 5,
        "responses": 5,
        "progress": 5,
        "next_slot_at": now + 6 * 3600,
        "next_release_at": now + 6 * 3600 - 10,
    }
    make_job(job_id="waits-0123456789ab", **waiting)
    # The same job whose loop should have released by now has stopped.
    make_job(job_id="stuck-0123456789ab", **{**waiting, "next_release_at": now - 60})

    assert sinks.reconciler().run() == {"stuck-0123456789ab": "stalled"}
    held = wiring.jobs().get("waits-0123456789ab")
    assert held is not None and held.stalled_since is None
    assert sinks.reconciler().run() == {}


def test_timing_a_released_job_whose_rows_waited_is_due_by_its_cursor(stack: Stack) -> None:
    now = time.time()
    # Started two days ago; its last rows were released for a window that opened just now.
    make_job(
        job_id="late-0123456789ab",
        state="released",
        started_at=now - 2 * 86_400,
        send_window="08:00-21:00",
        released_rows=10,
        next_slot_at=now,
        responses=5,
    )
    make_job(
        job_id="over-0123456789ab",
        state="released",
        started_at=now - 2 * 86_400,
        released_rows=10,
        next_slot_at=now - 3600,
        responses=5,
    )

    assert sinks.reconciler().run() == {"over-0123456789ab": "stalled"}


def test_timing_a_scheduled_job_paused_and_resumed_before_its_start_keeps_it(
    stack: Stack, client: Client
) -> None:
    job_id = create_and_split(stack, client, {"rows": rows(2), "start_at": "in 3h"})
    start = get_job(client, job_id)["start_at"]

    paused = client.http.post(f"/jobs/{job_id}/pause")
    assert (paused.status_code, json.loads(paused.body)["state"]) == (200, "paused")
    shown = get_job(client, job_id)
    assert (shown["waiting_for"], shown["next_release_at"], shown["eta_seconds"]) == (
        None,
        None,
        None,
    )
    resumed = client.http.post(f"/jobs/{job_id}/resume")
    assert (resumed.status_code, json.loads(resumed.body)["state"]) == (200, "scheduled")
    again = get_job(client, job_id)
    assert (again["start_at"], again["waiting_for"]) == (start, "start")
    assert process_keys(stack) == []


def wait_until_stopped(stack: Stack, arn: str) -> str:
    """The execution's status once it is no longer running (moto shows a stop a moment late)."""
    deadline = time.monotonic() + 10
    while (status := stack.sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still running"
        time.sleep(0.05)
    return status
