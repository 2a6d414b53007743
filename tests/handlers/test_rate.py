"""Changing a job's rate (POST /jobs/{id}/rate): which jobs may change, what the record holds
after it, the release loop restarted at the moved release, the next release at the new rate,
and the rows already queued re-timed by the sender. Clocks are injected; the loop's executions
run in moto's Step Functions, waiting for real times an hour or more ahead."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.api.rate import RateApi
from chalicelib.core.pace import RateChange, changes_of
from chalicelib.core.schedule import iso_timestamp
from chalicelib.release.state_machine import execution_name
from tests.handlers.test_lifecycle import client, executions, job, make_job, waiting_loop
from tests.stack import Stack

__all__ = ["client"]  # the fixture, registered by being here

JOB = "calls-0123456789ab"
JSON = {"Content-Type": "application/json"}
# Now, for the API and the releaser: an hour ahead of the real clock, so that a loop's Wait
# for a time near it waits in moto instead of running a step.
NOW = float(int(time.time()) + 3600)


@pytest.fixture(autouse=True)
def fixed_clock(stack: Stack) -> Iterator[None]:
    """The route's RateApi on the fixed clock (put back before the stack is reset)."""
    api = RateApi(wiring.jobs(), wiring.release_loop(), clock=lambda: NOW)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wiring, "rate_api", lambda: api)
        yield


def set_rate(client: Client, body: Any, job_id: str = JOB) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.http.post(f"/jobs/{job_id}/rate", headers=JSON, body=raw)
    return response.status_code, json.loads(response.body)


def until_waiting(stack: Stack, arn: str) -> None:
    """Until the execution waits in its Wait state: moto's interpreter cannot stop one it has
    not begun evaluating (as tests/handlers/test_lifecycle.py's abort)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = stack.sfn.get_execution_history(executionArn=arn)["events"]
        if any(e["type"] == "WaitStateEntered" for e in events):
            return
        time.sleep(0.05)
    raise AssertionError(f"{arn} never waited")


def status_after_stop(stack: Stack, arn: str) -> str:
    """The execution's status once moto has acted on a stop (its interpreter stops a waiting
    execution a moment later, where Step Functions answers StopExecution once stopped)."""
    deadline = time.monotonic() + 10
    while (status := stack.sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return str(status)


def running_job(**fields: Any) -> None:
    """A job at 10 CPS started 100 s ago, 4 of its 10 chunks out, the run released last due
    from 60 s ago until 200 s from now, its loop to release next 10 s before that."""
    values: dict[str, Any] = {
        "started_at": NOW - 100,
        "chunks": 10,
        "released_chunks": 4,
        "next_slot_at": NOW + 200,
        "last_run_at": NOW - 60,
        "queued_until": NOW + 200,
        "next_release_at": NOW + 190,
    }
    make_job(**{**values, **fields})


# -- who may change -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("released", "every row released"),
        ("completed", "completed"),
        ("splitting", "still being split"),
        ("cancelled", "was cancelled"),
        ("failed", "failed: no To column"),
    ],
)
def test_rate_of_a_job_with_nothing_left_to_release_is_409(
    client: Client, state: str, words: str
) -> None:
    running_job(state=state, error="no To column" if state == "failed" else None)

    status, body = set_rate(client, {"cps": 20})

    assert status == 409 and words in body["Message"], body
    assert (job().cps, job().rate_changes) == (10, None)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"cps": 0}, "got 0"),
        ({"cps": -3}, "got -3"),
        ({"cps": 2.5}, "got 2.5"),
        ({"cps": "20"}, 'got "20"'),
        ({"cps": True}, "got true"),
        ({"cps": None}, "got null"),
        ({"rate": 20}, "with `cps`"),
        ([20], "with `cps`"),
        (b"cps=20", "must be JSON"),
        (b"", "with `cps`"),
    ],
)
def test_rate_a_bad_cps_is_400_naming_it(client: Client, body: Any, words: str) -> None:
    running_job()

    status, answer = set_rate(client, body)

    assert status == 400 and words in answer["Message"], answer
    assert job().cps == 10


def test_rate_of_no_such_job_is_404(client: Client) -> None:
    assert set_rate(client, {"cps": 5}, "nope-0123456789ab")[0] == 404


# -- what changes -------------------------------------------------------------------------------


def test_rate_of_a_running_job_moves_its_next_release_and_restarts_its_loop(
    stack: Stack, client: Client
) -> None:
    running_job()
    waiting_loop(JOB, 4)
    [waiting] = executions(stack, JOB).values()
    until_waiting(stack, waiting["arn"])

    status, body = set_rate(client, {"cps": 20})

    assert status == 200
    assert (body["state"], body["previous_cps"], body["cps"]) == ("running", 10, 20)
    assert body["loop_restarted"] is True
    stored = job()
    # The rows queued until now + 200 at 10 CPS end at now + 100 at 20: the next slice follows.
    assert (stored.cps, stored.next_slot_at, stored.next_release_at) == (20, NOW + 100, NOW + 90)
    assert body["next_release_at"] == NOW + 90
    # On the job's clock: 100 s after its start, its rows ending 200 s after it.
    [change] = changes_of(stored.rate_changes)
    assert (change, change.until) == (RateChange(100.0, 10, 20), 200.0)
    assert (stored.last_run_at, stored.queued_until) == (NOW - 60, NOW + 100)
    assert status_after_stop(stack, waiting["arn"]) == "ABORTED"
    loops = executions(stack, JOB)
    restarted = loops[execution_name(JOB, 1)]
    assert restarted["status"] == "RUNNING"
    assert restarted["input"]["next_at"] == iso_timestamp(NOW + 90)
    assert (restarted["input"]["seq"], restarted["input"]["generation"]) == (4, 1)
    assert stored.loop_generation == 1


def test_rate_slower_moves_the_next_release_later(stack: Stack, client: Client) -> None:
    running_job()
    waiting_loop(JOB, 4)
    until_waiting(stack, executions(stack, JOB)[JOB]["arn"])

    status, body = set_rate(client, {"cps": 4})

    assert (status, body["loop_restarted"]) == (200, True)
    assert (job().next_slot_at, job().next_release_at) == (NOW + 500, NOW + 490)
    assert status_after_stop(stack, executions(stack, JOB)[JOB]["arn"]) == "ABORTED"
    restarted = executions(stack, JOB)[execution_name(JOB, 1)]
    assert restarted["input"]["next_at"] == iso_timestamp(NOW + 490)


def test_rate_changes_compose_and_those_whose_rows_are_all_due_are_dropped(
    client: Client,
) -> None:
    # The first change's rows were all due 1,000 s ago; the second's are still queued.
    running_job(rate_changes=json.dumps([[-2000.0, 5, 10, -1000.0], [50.0, 5, 10, 400.0]]))

    assert set_rate(client, {"cps": 20})[0] == 200

    assert changes_of(job().rate_changes) == [RateChange(50.0, 5, 10), RateChange(100.0, 10, 20)]


def test_rate_of_a_paused_job_is_placed_at_its_pause_and_its_loop_left_alone(
    stack: Stack, client: Client
) -> None:
    running_job(state="paused", paused_at=NOW - 40)
    waiting_loop(JOB, 4)

    status, body = set_rate(client, {"cps": 20})

    assert (status, body["state"], body["loop_restarted"]) == (200, "paused", False)
    # The job's clock stopped 60 s after its start: the rows end at (pause) + 120 s.
    assert changes_of(job().rate_changes) == [RateChange(60.0, 10, 20)]
    assert (job().next_slot_at, job().next_release_at) == (NOW + 80, NOW + 70)
    assert {e["status"] for e in executions(stack, JOB).values()} == {"RUNNING"}
    assert len(executions(stack, JOB)) == 1


def test_rate_of_a_scheduled_job_keeps_its_start(stack: Stack, client: Client) -> None:
    running_job(
        state="scheduled",
        started_at=NOW + 3600,
        released_chunks=0,
        next_slot_at=NOW + 3600,
        queued_until=None,
        next_release_at=NOW + 3590,
    )

    status, body = set_rate(client, {"cps": 50})

    assert (status, body["state"], body["cps"], body["loop_restarted"]) == (
        200,
        "scheduled",
        50,
        False,
    )
    assert (job().next_slot_at, job().next_release_at) == (NOW + 3600, NOW + 3590)
    assert executions(stack, JOB) == {}


def test_rate_waiting_for_a_window_keeps_the_opening(client: Client) -> None:
    # The rows out end in 20 s; the next slice waits for a window opening in two hours.
    running_job(next_slot_at=NOW + 7200, queued_until=NOW + 20, next_release_at=NOW + 7190)

    assert set_rate(client, {"cps": 2})[0] == 200

    assert (job().next_slot_at, job().next_release_at) == (NOW + 7200, NOW + 7190)


def test_rate_slower_leaves_a_windowed_jobs_queued_rows_and_next_slice(client: Client) -> None:
    # Stretched, its runs could pass their windows' closing: they keep their times.
    running_job(send_window="08:00-21:00")

    assert set_rate(client, {"cps": 4})[0] == 200

    assert (job().cps, job().next_slot_at, job().next_release_at) == (4, NOW + 200, NOW + 190)
    # Faster, they move (within their runs).
    assert set_rate(client, {"cps": 8})[0] == 200
    assert job().next_slot_at == NOW + 100


def test_rate_unchanged_records_nothing_and_restarts_nothing(stack: Stack, client: Client) -> None:
    running_job()
    waiting_loop(JOB, 4)

    status, body = set_rate(client, {"cps": 10})

    assert (status, body["previous_cps"], body["cps"], body["loop_restarted"]) == (
        200,
        10,
        10,
        False,
    )
    assert (job().rate_changes, job().next_release_at) == (None, NOW + 190)
    assert len(executions(stack, JOB)) == 1
