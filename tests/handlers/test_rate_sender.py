"""The sender re-times rows released before a rate change (chalicelib.core.pace), on an injected
clock: faster, they are called at the new spacing and none before its run began; slower, later
and put back on the queue as they were (so never moved twice); a job with a send window keeps
its rows' times when it slows down. The ledger and limiter are moto's; Twilio, the queue and
the topic are tests/handlers/test_dispatch.py's recorders."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.core.jobs import Job
from chalicelib.core.records import QueuedRow
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.limiter import RateLimiter
from chalicelib.sending.pacing import DISPATCH_TICK_SECONDS
from chalicelib.sending.parts import SenderParts, SenderSettings
from chalicelib.sending.sender import Sender
from tests.handlers.test_dispatch import T0, Clock, Recorder, Twilio, dynamodb

__all__ = ["dynamodb"]  # the fixture, registered by being here

# The job started 100 s before T0; its rows were released 5 s before T0, a run of ten at
# 10 CPS from T0 + 1. The rate changes at T0 (100 s on the job's clock).
START = T0 - 100


def job(old: int, new: int, **fields: Any) -> Job:
    return Job(
        job_id="job",
        bucket="b",
        key="k",
        etag="e",
        state="running",
        cps=new,
        window_seconds=60,
        created_at=START,
        started_at=START,
        rate_changes=json.dumps([[100.0, old, new]]),
        **fields,
    )


def rows(count: int = 10) -> list[QueuedRow]:
    return [
        QueuedRow(
            "job",
            k + 1,
            "messages",
            {"To": f"+1415555{k:04d}", "Body": "x"},
            due_at=T0 + 1 + k / 10,
            job_start=START,
            released_at=T0 - 5,
            run_at=T0 + 1,
        )
        for k in range(count)
    ]


def send(dynamodb: Any, the_job: Job, batch: list[QueuedRow]) -> tuple[Twilio, Recorder]:
    clock = Clock()
    twilio = Twilio(clock, 0.0)
    recorder = Recorder()
    parts = SenderParts(
        lambda: twilio,  # type: ignore[arg-type,return-value]
        recorder,  # type: ignore[arg-type]
        recorder,  # type: ignore[arg-type]
        CallLedger(dynamodb, "ledger", in_doubt_after=30.0, clock=clock),
        jobs=lambda _: the_job,
        limiter=RateLimiter(dynamodb, "rate", rate=1000, clock=clock),
        clock=clock,
        sleep=clock.sleep,
    )
    settings = SenderSettings(max_attempts=3, concurrency=1, late_tolerance=0.1, visible_early=2.0)
    Sender(parts, settings).send_batch(batch)
    return twilio, recorder


def on_time(twilio: Twilio, due: dict[int, float]) -> None:
    """Each row was called at its time, as the dispatcher calls: slots are taken for the rows
    due within the next tick, so a call may go up to a tick early, never before its run's
    start (asserted by the callers) and never late."""
    assert sorted(row for _, row in twilio.calls) == sorted(due)
    for at, row in twilio.calls:
        assert due[row] - DISPATCH_TICK_SECONDS - 1e-6 <= at <= due[row] + 0.01, (row, at)


def test_faster_rows_go_at_the_new_spacing_from_their_runs_start(dynamodb: Any) -> None:
    twilio, recorder = send(dynamodb, job(10, 20), rows())

    on_time(twilio, {k + 1: T0 + 1 + k / 20 for k in range(10)})
    # The run began after the change: its first row keeps its time (a start, an opening).
    assert min(at for at, _ in twilio.calls) >= T0 + 1
    assert recorder.later == []


def test_slower_rows_go_later_and_those_past_the_hold_go_back_unchanged(dynamodb: Any) -> None:
    twilio, recorder = send(dynamodb, job(10, 5), rows())

    # Row k is now due at T0 + 2 + k / 5: rows 1-6 within the sender's 3-second hold.
    on_time(twilio, {k + 1: T0 + 2 + k / 5 for k in range(6)})
    back = {r.row: (r, delay) for r, delay in recorder.later}
    assert sorted(back) == [7, 8, 9, 10]
    for k, (row, delay) in enumerate(back[n] for n in (7, 8, 9, 10)):
        # As released: re-timed again from the same times when it comes back.
        assert row == rows()[6 + k]
        assert delay == pytest.approx((6 + k) / 5, abs=1e-6)  # due less visible_early


def test_a_windowed_job_slowing_down_keeps_its_rows_times(dynamodb: Any) -> None:
    twilio, recorder = send(dynamodb, job(10, 5, send_window="08:00-21:00"), rows())

    on_time(twilio, {k + 1: T0 + 1 + k / 10 for k in range(10)})
    assert recorder.later == []


@pytest.mark.parametrize("kind", ["released after the change", "a retry"])
def test_rows_released_after_the_change_or_retried_are_not_retimed(
    dynamodb: Any, kind: str
) -> None:
    if kind == "a retry":  # its time is its backoff's
        batch = [r.retry(r.due_at, r.job_start) for r in rows(5)]
    else:
        batch = [replace(r, released_at=T0 + 0.5) for r in rows(5)]

    twilio, _ = send(dynamodb, job(10, 20), batch)

    on_time(twilio, {k + 1: T0 + 1 + k / 10 for k in range(5)})


@pytest.mark.parametrize(("new", "due"), [(20, T0 + 45), (5, T0 + 80)])
def test_a_change_made_while_paused_counts_from_the_pause(
    dynamodb: Any, new: int, due: float
) -> None:
    # Released at T0 - 15 to be due at T0 + 20, its run from T0 + 10; paused at T0 - 10 (90 s
    # on the job's clock), the rate changed then, resumed 30 s later: the row, due at T0 + 50
    # unchanged, is re-timed from the job's clock at its pause, now T0 + 20.
    row = replace(rows(1)[0], due_at=T0 + 20, run_at=T0 + 10, released_at=T0 - 15)
    resumed = replace(
        job(10, new), started_at=START + 30, rate_changes=json.dumps([[90.0, 10, new]])
    )

    twilio, recorder = send(dynamodb, resumed, [row])

    # Faster, from its run's start (T0 + 40): 10 s to go become 5; slower, from the change:
    # 30 s become 60. Past the sender's hold, it goes back as it was, visible 2 s early.
    assert twilio.calls == []
    assert recorder.later == [(row, pytest.approx(due - T0 - 2.0))]
