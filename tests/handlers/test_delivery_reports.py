"""Delivery statuses after a job completes, on moto: GET /jobs/{id} counts them as they come, and
the reconciler writes the finished job's outcomes.csv again with them until none is pending or
the job is old."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from chalice.test import Client

from chalicelib import wiring
from downstream import wiring as sinks
from downstream.reconciler import DELIVERY_WATCH_SECONDS, Reconciler
from tests.handlers.test_downstream import envelope, make_job
from tests.handlers.test_pipeline import sqs_event
from tests.stack import Stack


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reconciler(clock: Clock) -> Reconciler:
    return sinks.build_reconciler(clock)


def outcomes_csv(stack: Stack) -> dict[str, dict[str, str]]:
    body = stack.s3.get_object(Bucket=stack.env["REPORTS_BUCKET"], Key="jobs/job-1/outcomes.csv")
    rows = csv.DictReader(io.StringIO(body["Body"].read().decode(), newline=""))
    return {r["row"]: r for r in rows}


def deliver(row: int, status: str, rank: int, code: int | None = None) -> bool:
    return wiring.results().record_delivery("job-1", row, status=status, rank=rank, error_code=code)


def settled_job(client: Client, apis: list[str]) -> None:
    """Job job-1 with one sent row per API in `apis` and one failed row, all recorded."""
    make_job(rows=len(apis) + 1, valid=len(apis) + 1, rejected=0)
    results = [envelope(i, None, 201, api=api) for i, api in enumerate(apis, 1)]
    results.append(envelope(len(apis) + 1, 21211, 400))
    client.lambda_.invoke("handle_results_batch", sqs_event(results))
    client.lambda_.invoke("handle_router_batch", sqs_event(results))


def test_outcomes_csv_is_written_again_as_statuses_come_until_none_is_pending(
    stack: Stack, client: Client
) -> None:
    settled_job(client, ["messages", "messages", "messages", "lookup"])
    deliver(1, "delivered", 4)
    clock = Clock(10_000.0)

    assert reconciler(clock).run() == {"job-1": "completed"}
    job = wiring.jobs().get("job-1")
    assert job is not None and job.delivery_pending == 2
    assert job.delivery_check_at == 10_060.0
    first = outcomes_csv(stack)
    assert first["1"]["delivery_status"] == "delivered"
    assert first["2"]["delivery_status"] == "" and first["4"]["delivery_status"] == ""

    deliver(2, "undelivered", 4, 30003)
    clock.now = 10_030.0
    assert reconciler(clock).run() == {}  # not due yet
    assert outcomes_csv(stack)["2"]["delivery_status"] == ""

    clock.now = 10_060.0
    assert reconciler(clock).run() == {"job-1": "delivery"}
    second = outcomes_csv(stack)
    assert (second["2"]["delivery_status"], second["2"]["delivery_error_code"]) == (
        "undelivered",
        "30003",
    )
    job = wiring.jobs().get("job-1")
    assert job is not None and job.delivery_pending == 1 and job.delivery_check_at == 10_120.0

    deliver(3, "sent", 3)  # not final: still pending
    deliver(3, "failed", 4, 30008)
    clock.now = 10_120.0
    assert reconciler(clock).run() == {"job-1": "delivery"}
    job = wiring.jobs().get("job-1")
    assert job is not None and job.delivery_pending == 0 and job.delivery_check_at is None
    assert outcomes_csv(stack)["3"]["delivery_status"] == "failed"
    clock.now = 99_999_999.0
    assert reconciler(clock).run() == {}


def test_a_job_whose_statuses_never_come_is_watched_for_72_hours_only(
    stack: Stack, client: Client
) -> None:
    settled_job(client, ["messages"])
    clock = Clock(0.0)
    reconciler(clock).run()
    rewrites = 0
    while (job := wiring.jobs().get("job-1")) is not None and job.delivery_check_at is not None:
        clock.now = job.delivery_check_at
        assert reconciler(clock).run() == {"job-1": "delivery"}
        rewrites += 1

    assert clock.now <= DELIVERY_WATCH_SECONDS * 2
    assert 10 <= rewrites <= 14
    assert job is not None and job.delivery_pending == 1


def test_get_job_counts_delivery_statuses_live(stack: Stack, client: Client) -> None:
    settled_job(client, ["messages", "messages", "calls", "calls"])
    deliver(1, "read", 5)
    wiring.results().record_delivery("job-1", 3, status="no-answer", rank=4, error_code=None)

    response = client.http.get("/jobs/job-1", headers={"x-api-key": "k"})

    assert response.status_code == 200, response.body
    delivery = response.json_body["delivery"]
    assert delivery["messages"] == {
        "delivered": 1,
        "undelivered": 0,
        "failed": 0,
        "canceled": 0,
        "pending": 1,
        "read": 1,
    }
    assert delivery["calls"]["no-answer"] == 1 and delivery["calls"]["pending"] == 1


def test_a_cancelled_job_is_watched_too(stack: Stack, client: Client) -> None:
    settled_job(client, ["messages"])
    job = wiring.jobs().get("job-1")
    assert job is not None
    wiring.jobs().update("job-1", state="cancelled", cancelled_at=1.0)
    clock = Clock(500.0)

    assert reconciler(clock).run() == {"job-1": "completed"}
    after = wiring.jobs().get("job-1")
    assert after is not None and after.state == "cancelled"
    assert replace(after, delivery_check_at=None).delivery_pending == 1
    assert after.delivery_check_at == 560.0
