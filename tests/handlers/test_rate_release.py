"""After a rate change (POST /jobs/{id}/rate): the next release timed at the new rate, the rows
enqueued with their release and run times, a change racing a release or another change made on
the record as it became, and the loop's other executions stopped. Clocks are injected, as in
tests/handlers/test_rate.py, whose helpers these are."""

from __future__ import annotations

import json
from typing import Any

from chalice.test import Client

from chalicelib import wiring
from chalicelib.aws.buckets import chunk_key
from chalicelib.core.jobs import Job
from chalicelib.core.pace import RateChange, changes_of
from chalicelib.core.records import QueuedRow
from chalicelib.core.slices import Group, groups_json
from chalicelib.release.rate import change_rate
from chalicelib.release.releaser import LoopState, Releaser
from chalicelib.release.state_machine import execution_name
from tests.handlers.test_lifecycle import client, executions, job, waiting_loop
from tests.handlers.test_rate import (
    JOB,
    NOW,
    fixed_clock,
    running_job,
    set_rate,
    status_after_stop,
    until_waiting,
)
from tests.stack import Stack

__all__ = ["client", "fixed_clock"]  # fixtures, registered by being here

# -- the next release, at the new rate ----------------------------------------------------------


def releaser(now: float) -> Releaser:
    s = wiring.settings()
    return Releaser(
        wiring.storage(),
        wiring.jobs(),
        s.holding_bucket,
        s.process_bucket,
        loop=wiring.release_loop(),
        clock=lambda: now,
    )


def test_rate_the_release_after_a_change_times_its_run_at_the_new_rate(
    stack: Stack, client: Client
) -> None:
    # One group of 100 rows in one chunk, a 2-second window: 20 rows a slice at 10 CPS.
    wiring.jobs().create(
        Job(
            job_id=JOB,
            bucket="b",
            key="k",
            etag="e",
            state="running",
            cps=10,
            window_seconds=2,
            created_at=NOW - 60,
            rows=100,
            valid=100,
            chunks=1,
            started_at=NOW + 10,
            groups=groups_json([Group((), 1, 100)]),
            chunk_rows=100,
            next_slot_at=NOW + 10,
            next_release_at=NOW,
        )
    )
    stack.s3.put_object(Bucket=stack.env["HOLDING_BUCKET"], Key=chunk_key(JOB, 0), Body=b"{}\n")
    first = releaser(NOW).release(LoopState(JOB, seq=0))
    # Rows 0-19 due from the start, now + 10, 0.1 s apart.
    assert (job().last_run_at, job().queued_until) == (NOW + 10, NOW + 12)

    # At NOW: they keep the start and end at now + 11.
    assert set_rate(client, {"cps": 20})[0] == 200

    second = releaser(NOW + 1).release(LoopState.resumed(job(), 1))
    assert (first.seq, second.seq) == (1, 2)
    head = stack.s3.head_object(
        Bucket=stack.env["PROCESS_BUCKET"],
        Key=chunk_key(JOB, 0).replace(".jsonl", "-from-000020.jsonl"),
    )["Metadata"]
    assert (head["cps"], head["first"], head["count"]) == ("20", "20", "40")
    assert float(head["at"]) == NOW + 11
    assert float(head["released_at"]) == NOW + 1
    assert (job().last_run_at, job().queued_until) == (NOW + 11, NOW + 13)


def test_rate_queued_rows_carry_their_release_and_run_times(stack: Stack) -> None:
    rows = [
        {"row": i + 1, "api": "messages", "params": {"To": f"+1415555{i:04d}"}, "offset": 0}
        for i in range(3)
    ]
    key = chunk_key(JOB, 0)
    stack.s3.put_object(
        Bucket=stack.env["PROCESS_BUCKET"],
        Key=key,
        Body="\n".join(json.dumps(r) for r in rows).encode(),
        Metadata={
            "job_id": JOB,
            "job_start": repr(NOW - 7200),
            "chunk": "0",
            "first": "1",
            "count": "2",
            "at": repr(NOW - 7000),
            "cps": "4",
            "released_at": repr(NOW - 7010),
        },
    )

    assert wiring.enqueuer().enqueue_chunk(stack.env["PROCESS_BUCKET"], key) == 2

    queued = [
        QueuedRow.from_json(json.loads(m["Body"]))
        for m in stack.sqs.receive_message(QueueUrl=stack.send_queue_url, MaxNumberOfMessages=10)[
            "Messages"
        ]
    ]
    assert sorted((r.row, r.due_at, r.run_at, r.released_at) for r in queued) == [
        (2, NOW - 7000, NOW - 7000, NOW - 7010),
        (3, NOW - 7000 + 0.25, NOW - 7000, NOW - 7010),
    ]


class Racing:
    """The jobs table, with `race` done to the record just before the change's first write."""

    def __init__(self, race: Any) -> None:
        self._store = wiring.jobs()
        self._race = race

    def get(self, job_id: str) -> Job | None:
        return self._store.get(job_id)

    def update_if_at(self, *args: Any, **changes: Any) -> None:
        race, self._race = self._race, None
        if race is not None:
            race(self._store)
        self._store.update_if_at(*args, **changes)


def test_rate_a_change_racing_another_is_made_on_the_record_as_it_became() -> None:
    running_job()
    racing = Racing(lambda store: change_rate(store, JOB, 20, now=NOW - 10))

    changed = change_rate(racing, JOB, 5, now=NOW)  # type: ignore[arg-type]

    assert (changed.old, changed.new, job().cps) == (20, 5, 5)
    assert changes_of(job().rate_changes) == [RateChange(90, 10, 20), RateChange(100, 20, 5)]


def test_rate_a_change_racing_a_release_moves_the_released_run() -> None:
    running_job()

    def release(store: Any) -> None:  # the loop records its next run: NOW + 200 to NOW + 260
        store.record_release(
            JOB,
            4,
            releases=5,
            last_run_at=NOW + 200,
            queued_until=NOW + 260,
            next_slot_at=NOW + 260,
        )

    change_rate(Racing(release), JOB, 20, now=NOW)  # type: ignore[arg-type]

    # The run from NOW + 200 keeps its start and closes up: 60 s of rows in 30.
    assert (job().releases, job().next_slot_at, job().next_release_at) == (5, NOW + 230, NOW + 220)


def test_rate_stop_ends_the_jobs_other_executions_only(stack: Stack) -> None:
    other = "other-0123456789ab"
    waiting_loop(JOB, 4)
    waiting_loop(JOB, 4, generation=2)
    waiting_loop(other, 1)
    for found in [*executions(stack, JOB).values(), *executions(stack, other).values()]:
        until_waiting(stack, found["arn"])

    assert wiring.release_loop().stop(JOB, keep=2) == 1

    loops = executions(stack, JOB)
    assert status_after_stop(stack, loops[JOB]["arn"]) == "ABORTED"
    assert executions(stack, JOB)[execution_name(JOB, 2)]["status"] == "RUNNING"
    assert executions(stack, other)[other]["status"] == "RUNNING"
    assert wiring.release_loop().stop(JOB) == 1
    assert status_after_stop(stack, loops[execution_name(JOB, 2)]["arn"]) == "ABORTED"
    assert not wiring.release_loop().running(JOB)
