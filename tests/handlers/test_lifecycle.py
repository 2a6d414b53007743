"""A job's lifecycle on the moto stack: pause, resume and cancel in every state, the release loop
continuing as new and restarted when it died, and the reconciler completing, flagging and
isolating jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.aws.buckets import chunk_key
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.jobs import Job
from chalicelib.core.schedule import iso_timestamp
from chalicelib.core.slices import Group, groups_json
from chalicelib.release.releaser import STEPS_PER_EXECUTION, LoopState
from chalicelib.release.state_machine import execution_name, generation_of
from downstream import wiring as sinks
from downstream.reconcile import PAUSED_STALLED_AFTER, SPLITTING_STALLED_AFTER
from tests.handlers.test_downstream import envelope
from tests.handlers.test_downstream import make_job as stored_job
from tests.stack import Stack, subscribe_queue

JSON = {"Content-Type": "application/json"}
# Events one loop iteration writes to an execution's history (task 5, choice 2, wait 2) and
# Step Functions' ceiling on a history.
EVENTS_PER_STEP = 9
HISTORY_LIMIT = 25_000


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def make_job(job_id: str = "calls-0123456789ab", state: str = "running", **fields: Any) -> Job:
    """A job stored in the jobs table: 2 rows, created and started now. Given `chunks`, its
    release cursor is one group of that many one-row chunks, `released_chunks` of them out in
    as many releases."""
    now = {"created_at": time.time(), "rows": 2, "valid": 2, "started_at": time.time()}
    if "chunks" in fields:
        chunks, out = fields["chunks"], fields.get("released_chunks", 0)
        group = Group((), chunks, chunks, out)
        now.update(groups=groups_json([group]), chunk_rows=1, releases=out)
    return stored_job(state, job_id=job_id, **{**now, **fields})


def post(client: Client, path: str) -> tuple[int, dict[str, Any]]:
    response = client.http.post(path, headers=JSON, body=b"")
    return response.status_code, json.loads(response.body)


def job(job_id: str = "calls-0123456789ab") -> Job:
    found = wiring.jobs().get(job_id)
    assert found is not None
    return found


def executions(stack: Stack, job_id: str) -> dict[str, dict[str, Any]]:
    """The job's loop executions by name, with their status and input."""
    arn = stack.env["STATE_MACHINE_ARN"]
    found = {}
    for e in stack.sfn.list_executions(stateMachineArn=arn)["executions"]:
        if generation_of(job_id, e["name"]) is not None:
            described = stack.sfn.describe_execution(executionArn=e["executionArn"])
            found[e["name"]] = {
                "status": described["status"],
                "input": json.loads(described["input"]),
                "arn": e["executionArn"],
            }
    return found


def waiting_loop(job_id: str, chunk: int, *, generation: int = 0) -> None:
    """A running loop execution for the job, waiting (an hour) to release `chunk`."""
    state = LoopState(job_id, next_at=iso_timestamp(time.time() + 3600), seq=chunk)
    assert wiring.release_loop().start(
        job_id, {**state.to_json(), "generation": generation}, generation
    )


def abort(stack: Stack, arn: str) -> None:
    """Stop an execution once it is waiting (moto's interpreter cannot stop one it has not
    begun evaluating yet)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = stack.sfn.get_execution_history(executionArn=arn)["events"]
        if any(e["type"] == "WaitStateEntered" for e in events):
            break
        time.sleep(0.05)
    stack.sfn.stop_execution(executionArn=arn)
    while stack.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline + 10, f"{arn} still running"
        time.sleep(0.05)


def settle(job_id: str, rows: int) -> None:
    wiring.results().record(
        [
            ResponseEnvelope.from_json({**envelope(r, None, 201), "job_id": job_id})
            for r in range(rows)
        ]
    )


# -- pause, resume, cancel: 409 where the change means nothing ---------------------------------


def test_lifecycle_pause_a_completed_job_is_409_with_a_reason(client: Client) -> None:
    make_job(state="completed")

    status, body = post(client, "/jobs/calls-0123456789ab/pause")

    assert status == 409
    assert "completed" in body["Message"] and "every row has its outcome" in body["Message"]
    assert job().state == "completed"


def test_lifecycle_pause_a_released_job_whose_rows_all_settled_is_409(client: Client) -> None:
    make_job(state="released", responses=2)
    settle("calls-0123456789ab", 2)

    status, body = post(client, "/jobs/calls-0123456789ab/pause")

    assert status == 409 and "completes within a minute" in body["Message"]
    assert job().state == "released"


def test_lifecycle_cancel_a_cancelled_job_is_409(client: Client) -> None:
    make_job(state="cancelled", cancelled_at=5.0)

    status, body = post(client, "/jobs/calls-0123456789ab/cancel")

    assert status == 409 and "already cancelled" in body["Message"]
    assert job().cancelled_at == 5.0


@pytest.mark.parametrize(
    ("state", "action", "words"),
    [
        ("splitting", "pause", "still being split"),
        ("splitting", "cancel", "still being split"),
        ("paused", "pause", "already paused"),
        ("failed", "resume", "failed: no To column"),
        ("completed", "cancel", "completed"),
        ("released", "resume", "every chunk is released"),
    ],
)
def test_lifecycle_meaningless_changes_are_409_and_change_nothing(
    client: Client, state: str, action: str, words: str
) -> None:
    make_job(state=state, error="no To column" if state == "failed" else None, paused_at=1.0)

    status, body = post(client, f"/jobs/calls-0123456789ab/{action}")

    assert status == 409 and words in body["Message"], body
    assert job().state == state


def test_lifecycle_resume_a_running_job_with_a_live_loop_is_409(
    stack: Stack, client: Client
) -> None:
    make_job(chunks=10, released_chunks=3)
    waiting_loop("calls-0123456789ab", 3)

    status, body = post(client, "/jobs/calls-0123456789ab/resume")

    assert status == 409 and "running, not paused" in body["Message"]
    assert set(executions(stack, "calls-0123456789ab")) == {"calls-0123456789ab"}


# -- resume restarts a loop that died --------------------------------------------------------


def test_lifecycle_resume_a_running_job_whose_loop_died_restarts_it_at_the_next_chunk(
    stack: Stack, client: Client
) -> None:
    make_job(chunks=10, released_chunks=4)
    waiting_loop("calls-0123456789ab", 4)
    [dead] = executions(stack, "calls-0123456789ab").values()
    abort(stack, dead["arn"])

    status, body = post(client, "/jobs/calls-0123456789ab/resume")

    assert (status, body["state"], body["loop_restarted"]) == (200, "running", True)
    loops = executions(stack, "calls-0123456789ab")
    assert loops["calls-0123456789ab"]["status"] == "ABORTED"
    restarted = loops[execution_name("calls-0123456789ab", 1)]
    assert restarted["status"] == "RUNNING"
    # From the first chunk not recorded released: chunks 0-3 are never released again.
    assert (restarted["input"]["seq"], restarted["input"]["generation"]) == (4, 1)
    assert restarted["input"]["next_at"] != ""
    assert job().loop_generation == 1
    # A second resume finds the restarted loop alive.
    assert post(client, "/jobs/calls-0123456789ab/resume")[0] == 409


def test_lifecycle_resume_skips_a_generation_whose_execution_ended_unrecorded(
    stack: Stack, client: Client
) -> None:
    # Generation 1 was started (a continue-as-new whose step died before recording it) and
    # died too: its name is taken, so the restart is generation 2.
    make_job(state="paused", paused_at=time.time() - 60, chunks=10, released_chunks=2)
    waiting_loop("calls-0123456789ab", 2, generation=1)
    for e in executions(stack, "calls-0123456789ab").values():
        abort(stack, e["arn"])

    status, body = post(client, "/jobs/calls-0123456789ab/resume")

    assert (status, body["state"], body["loop_restarted"]) == (200, "running", True)
    assert (
        executions(stack, "calls-0123456789ab")[execution_name("calls-0123456789ab", 2)]["status"]
        == "RUNNING"
    )
    assert job().loop_generation == 2 and job().paused_at is None


def test_lifecycle_cancel_with_a_dead_loop_restarts_it_to_end_the_unreleased_rows(
    stack: Stack, client: Client
) -> None:
    make_job(chunks=3, released_chunks=1)

    status, body = post(client, "/jobs/calls-0123456789ab/cancel")

    assert (status, body["state"], body["loop_restarted"]) == (200, "cancelled", True)
    restarted = executions(stack, "calls-0123456789ab")[execution_name("calls-0123456789ab", 1)]
    assert restarted["input"]["seq"] == 1


# -- the loop continues as new before its history fills --------------------------------------


def test_lifecycle_a_6000_chunk_job_continues_as_new_within_the_history_limit(
    stack: Stack,
) -> None:
    job_id = "big-0123456789ab"
    start = time.time()
    make_job(job_id, chunks=6000, started_at=start, released_chunks=2998)
    for chunk in (2998, 2999):
        stack.s3.put_object(
            Bucket=stack.env["HOLDING_BUCKET"], Key=chunk_key(job_id, chunk), Body=b"{}\n"
        )
    state = LoopState(job_id, seq=2998, steps=STEPS_PER_EXECUTION - 2)

    after = wiring.releaser().release(state)
    assert (after.seq, after.steps, after.done) == (2999, STEPS_PER_EXECUTION - 1, False)
    last = wiring.releaser().release(after)

    assert (last.seq, last.done, last.stopped) == (3000, True, "continued")
    loops = executions(stack, job_id)
    following = loops[execution_name(job_id, 1)]
    assert following["status"] == "RUNNING"
    assert following["input"]["seq"] == 3000
    assert (following["input"]["steps"], following["input"]["generation"]) == (0, 1)
    assert following["input"]["next_at"] == last.next_at
    assert job(job_id).loop_generation == 1 and job(job_id).released_chunks == 3000
    # Step Functions retrying that step starts nothing more.
    again = wiring.releaser().release(after)
    assert again.stopped == "continued"
    assert set(executions(stack, job_id)) == {execution_name(job_id, 1)}
    # 6,000 chunks take six executions, each well within its history.
    assert STEPS_PER_EXECUTION * EVENTS_PER_STEP < HISTORY_LIMIT / 2
    assert -(-6000 // STEPS_PER_EXECUTION) == 6


def test_lifecycle_a_paused_loop_continues_as_new_too(stack: Stack) -> None:
    # A day paused is 2,880 looks at 30 s: the same count of steps moves it on.
    job_id = "held-0123456789ab"
    make_job(job_id, state="paused", paused_at=time.time(), chunks=5, released_chunks=2)
    state = LoopState(job_id, seq=2, steps=STEPS_PER_EXECUTION - 1)

    last = wiring.releaser().release(state)

    assert (last.seq, last.stopped) == (2, "continued")
    following = executions(stack, job_id)[execution_name(job_id, 1)]
    assert (following["input"]["seq"], following["input"]["steps"]) == (2, 0)


def test_lifecycle_loop_state_written_before_generations_reads_as_generation_zero() -> None:
    old = {"job_id": "j", "chunk": 1, "chunks": 2, "start": 1.0, "window": 60, "cps": 10}

    assert (LoopState.from_json(old).generation, LoopState.from_json(old).steps) == (0, 0)


def test_lifecycle_execution_names_are_parsed_back_to_their_job_only() -> None:
    assert generation_of("calls-0123456789ab", "calls-0123456789ab") == 0
    assert generation_of("calls-0123456789ab", "calls-0123456789ab-g12") == 12
    # Another job whose name starts with this one's.
    assert generation_of("calls-0123456789ab", "calls-0123456789ab-g1-fedcba987654") is None
    assert generation_of("calls-0123456789ab", "other-0123456789ab-g1") is None


# -- the reconciler --------------------------------------------------------------------------


def test_lifecycle_reconciler_completes_a_paused_job_whose_rows_all_settled(
    stack: Stack,
) -> None:
    make_job(state="paused", paused_at=time.time(), responses=2)
    settle("calls-0123456789ab", 2)

    decided = sinks.reconciler().run()

    assert decided == {"calls-0123456789ab": "completed"}
    assert (job().state, job().outcomes_key) == (
        "completed",
        "jobs/calls-0123456789ab/outcomes.csv",
    )


def test_lifecycle_reconciler_isolates_a_malformed_record_and_a_failing_job(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.dynamodb.put_item(
        TableName=stack.env["JOBS_TABLE"],
        # No bucket, key, etag, rate or creation time: not a job record.
        Item={"job_id": {"S": "broken-1"}, "state": {"S": "running"}, "rows": {"N": "3"}},
    )
    # Rejected rows, but no rejects.csv to merge: its reconciling raises.
    make_job("norejects-1", rows=3, valid=2, rejected=1, responses=2)
    settle("norejects-1", 2)
    make_job("good-1", responses=2)
    settle("good-1", 2)

    decided = sinks.reconciler().run()

    assert decided == {"broken-1": "failed", "norejects-1": "failed", "good-1": "completed"}
    assert job("good-1").state == "completed" and job("norejects-1").state == "running"
    failed = [r for r in caplog.records if r.levelname == "ERROR" and "norejects-1" in r.message]
    assert failed and failed[0].exc_info is not None


def test_lifecycle_reconciler_flags_a_job_splitting_too_long_and_shows_it(
    stack: Stack, client: Client
) -> None:
    alerts = subscribe_queue(stack.sqs, stack.sns, stack.env["ALERT_TOPIC_ARN"], "alerts")
    make_job(
        state="splitting",
        created_at=time.time() - SPLITTING_STALLED_AFTER - 60,
        started_at=None,
        split_attempts=2,
        error="the file is not UTF-8",
    )
    make_job("fresh-0123456789ab", state="splitting", started_at=None)

    decided = sinks.reconciler().run()

    assert decided == {"calls-0123456789ab": "stalled"}
    flagged = job()
    assert flagged.stalled_since is not None and flagged.stalled_reason is not None
    assert "2 failed split attempts" in flagged.stalled_reason
    assert job("fresh-0123456789ab").stalled_since is None
    [alert] = stack.sqs.receive_message(QueueUrl=alerts, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(alert["Body"])["job_id"] == "calls-0123456789ab"
    shown = json.loads(client.http.get("/jobs/calls-0123456789ab").body)["stalled"]
    assert shown == {"since": flagged.stalled_since, "reason": flagged.stalled_reason}
    # Flagged once: the next pass neither flags nor alerts again.
    assert sinks.reconciler().run() == {}
    assert stack.sqs.receive_message(QueueUrl=alerts).get("Messages", []) == []


def test_lifecycle_reconciler_leaves_a_long_split_alone_while_its_parts_go_on(
    stack: Stack,
) -> None:
    # A split that outlasts its Lambda goes on in parts (chalicelib.intake.split_pass): an hour
    # after upload with its last part 5 minutes ago, it is working, not stalled; a part that
    # has not gone on for as long as a split may take is.
    now = time.time()
    make_job(
        state="splitting",
        created_at=now - 3600,
        started_at=None,
        split_progress_at=now - 300,
    )
    make_job(
        "stuck-0123456789ab",
        state="splitting",
        created_at=now - 3600,
        started_at=None,
        split_progress_at=now - SPLITTING_STALLED_AFTER - 60,
    )

    assert sinks.reconciler().run() == {"stuck-0123456789ab": "stalled"}
    assert job().stalled_since is None
    assert "no part done for" in (job("stuck-0123456789ab").stalled_reason or "")


def test_lifecycle_reconciler_leaves_a_job_the_intake_fails_after_three_attempts(
    stack: Stack,
) -> None:
    make_job(
        state="splitting",
        created_at=time.time() - SPLITTING_STALLED_AFTER - 60,
        started_at=None,
        split_attempts=3,
    )

    assert sinks.reconciler().run() == {}
    assert job().stalled_since is None


def test_lifecycle_reconciler_flags_a_forgotten_pause_and_resume_clears_it(
    stack: Stack, client: Client
) -> None:
    make_job(state="paused", paused_at=time.time() - PAUSED_STALLED_AFTER - 60, chunks=3)

    assert sinks.reconciler().run() == {"calls-0123456789ab": "stalled"}
    assert "resume it" in (job().stalled_reason or "")

    status, body = post(client, "/jobs/calls-0123456789ab/resume")
    assert (status, body["state"]) == (200, "running")
    assert (job().stalled_since, job().stalled_reason) == (None, None)


def test_lifecycle_reconciler_flags_a_released_job_long_past_its_last_due_row(
    stack: Stack,
) -> None:
    make_job(state="released", started_at=time.time() - 3600, rows=5, valid=5, responses=3)

    assert sinks.reconciler().run() == {"calls-0123456789ab": "stalled"}
    assert "no outcome yet" in (job().stalled_reason or "")


def test_lifecycle_reconciler_leaves_a_job_waiting_for_its_send_window_and_flags_it_after(
    stack: Stack,
) -> None:
    # Every released row answered, the loop waiting for tomorrow's window: hours without a
    # response are not a stall.
    quiet = time.time() - 4 * 3600
    fields = {"rows": 5, "valid": 5, "responses": 2, "released_rows": 2, "progress": 2}
    # Its own id: a loop another test started for the default job may still be running.
    make_job(
        "window-0123456789ab", progress_at=quiet, next_release_at=time.time() + 6 * 3600, **fields
    )

    assert sinks.reconciler().run() == {}
    waiting = job("window-0123456789ab")
    assert waiting.stalled_at is None and waiting.progress_at is not None
    assert waiting.progress_at > quiet

    # The same quiet with the loop due to have released already is a stall.
    make_job("late-0123456789ab", progress_at=quiet, next_release_at=time.time() - 3600, **fields)
    assert sinks.reconciler().run() == {"late-0123456789ab": "stalled"}
    # And so is a row released and never answered, whatever the loop waits for.
    make_job(
        "lost-0123456789ab",
        progress_at=quiet,
        next_release_at=time.time() + 3600,
        **{**fields, "released_rows": 3},
    )
    assert sinks.reconciler().run() == {"lost-0123456789ab": "stalled"}
