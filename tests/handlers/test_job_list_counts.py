"""GET /jobs lists each ended job's rows by final outcome, stored on the job by the reconciler
(not read from the results per listing), and a running job's responses so far; GET /jobs/{id}
gives the account's rate beside the job's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import wiring
from chalicelib.aws.buckets import rejects_key
from chalicelib.core.jobs import Job, final_counts_record, final_counts_view
from chalicelib.core.records import FINAL_OUTCOMES
from downstream.reconcile import REJECTS_HEADER
from tests.handlers.test_delivery_reports import Clock, reconciler
from tests.handlers.test_downstream import envelope, make_job
from tests.handlers.test_pipeline import sqs_event
from tests.stack import Stack

AUTH = {"x-api-key": "k"}


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def listed(client: Client) -> dict[str, Any]:
    response = client.http.get("/jobs", headers=AUTH)
    assert response.status_code == 200
    (job,) = response.json_body["jobs"]
    return job  # type: ignore[no-any-return]


def responses(client: Client, rows: list[dict[str, Any]]) -> None:
    client.lambda_.invoke("handle_results_batch", sqs_event(rows))
    client.lambda_.invoke("handle_router_batch", sqs_event(rows))


ROWS = [
    envelope(1, None, 201),
    envelope(2, None, 201),
    envelope(3, 21211, 400),
    {**envelope(4, None, 201), "outcome": "suppressed", "status": None},
]


def test_a_running_job_lists_no_counts_but_its_responses_so_far(client: Client) -> None:
    make_job(rows=6, valid=4, rejected=2)
    assert (listed(client)["counts"], listed(client)["responses"]) == (None, 0)

    responses(client, ROWS[:3])
    assert reconciler(Clock(500.0)).run() == {}  # one row has not ended: not complete

    job = listed(client)
    assert job["state"] == "running" and job["counts"] is None and job["responses"] == 3


def test_a_completed_job_lists_its_counts_with_the_splitters_rejects(
    stack: Stack, client: Client
) -> None:
    make_job(rows=6, valid=4, rejected=2)
    rejects = ",".join(REJECTS_HEADER) + "\n5,bad number\n6,bad number\n"
    stack.s3.put_object(
        Bucket=stack.env["REPORTS_BUCKET"], Key=rejects_key("job-1"), Body=rejects.encode()
    )
    responses(client, ROWS)

    assert reconciler(Clock(500.0)).run() == {"job-1": "completed"}

    job = listed(client)
    assert job["state"] == "completed" and job["responses"] == 4
    assert job["counts"] == {
        "rejected": 2,
        "suppressed": 1,
        "sent": 2,
        "failed": 1,
        "unknown": 0,
        "dead_lettered": 0,
    }
    detail = client.http.get("/jobs/job-1", headers=AUTH).json_body
    assert detail["counts"] == job["counts"]  # the list agrees with the job's own page


def test_a_cancelled_job_lists_its_counts_once_its_rows_ended(client: Client) -> None:
    make_job(rows=4, valid=4, rejected=0)
    wiring.jobs().update("job-1", state="cancelled", cancelled_at=1.0)
    responses(client, ROWS[:3])
    reconciler(Clock(500.0)).run()
    assert listed(client)["counts"] is None

    responses(client, ROWS[3:])
    assert reconciler(Clock(560.0)).run() == {"job-1": "completed"}

    job = listed(client)
    assert job["state"] == "cancelled"
    assert job["counts"]["sent"] == 2 and job["counts"]["suppressed"] == 1
    assert sum(job["counts"].values()) == 4


def test_the_job_page_gives_the_accounts_rate_beside_the_jobs(client: Client) -> None:
    make_job()
    rate = client.http.get("/jobs/job-1", headers=AUTH).json_body["rate"]
    assert rate["account_cps"] == wiring.settings().account_cps
    assert rate["target_cps"] == 10 and rate["current_cps"] == 0


OUTCOME_NAMES = st.sampled_from([*FINAL_OUTCOMES, "retrying", "pending"])


@given(st.dictionaries(OUTCOME_NAMES, st.integers(0, 10**9)), st.integers(0, 10**6))
def test_stored_counts_keep_every_final_outcome_and_only_those(
    counts: dict[str, int], rejected: int
) -> None:
    job = Job("j", "b", "k", "e", "completed", 1, 60, 0.0, rejected=rejected)
    assert final_counts_view(job) is None
    view = final_counts_view(replace(job, final_counts=final_counts_record(counts)))
    assert view is not None and list(view) == list(FINAL_OUTCOMES)
    assert view["rejected"] == rejected  # the job's, never the results table's
    assert all(view[o] == counts.get(o, 0) for o in FINAL_OUTCOMES if o != "rejected")
