"""The sender: makes each queued row's Twilio call and publishes what came back.

Rows become visible on the queue in the whole second before they are due (SQS delays are whole
seconds); the sender holds each one until its exact time. Each call is first claimed in the call
ledger (chalicelib.sending.ledger), so a row delivered again is never called twice. A row to a
suppressed number ends `suppressed` without a call; the rows of a paused job go back on the queue
untouched, and when the job resumes its rows' times move by the length of the pause. A response
that says Twilio did not process the request (429, 5xx) goes back on the queue with backoff until
the attempts run out, then to the dead-letter queue; the original message is then done with, so
the design does not depend on partial batch responses being switched on for the trigger.

This module is a batch's flow; its steps are beside it: the rows' pacing (pacing), the calls
(dispatcher, calls), the rows in doubt (settlement) and what each attempt came to (recording).
What a sender is built from is in parts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.core import pace
from chalicelib.core.jobs import Job
from chalicelib.core.records import QueuedRow
from chalicelib.sending.calls import Caller
from chalicelib.sending.cancel import end_cancelled
from chalicelib.sending.claims import Claim
from chalicelib.sending.dispatcher import NO_SLOT_RECHECK_SECONDS, Dispatcher
from chalicelib.sending.ledger_writes import LedgerWrites
from chalicelib.sending.pacing import MAX_HOLD_SECONDS, Metered, Pacer
from chalicelib.sending.parts import SenderParts, SenderSettings
from chalicelib.sending.recording import Done, Outcomes, republish_or_wait, without_let_go
from chalicelib.sending.settlement import Settlement
from chalicelib.sending.window_hold import held_for_window

log = logging.getLogger(__name__)

# How often a paused job's queued rows look again at whether it was resumed.
PAUSED_RECHECK_SECONDS = 30.0


@dataclass
class _Batch:
    """A batch's rows as they are sorted out: what to publish, what goes back on the queue (as
    it is, or as its next attempt), what goes to the dead-letter queue, and the errors to raise
    once the rest is done."""

    published: list[dict[str, Any]] = field(default_factory=list)
    later: list[tuple[QueuedRow, float]] = field(default_factory=list)
    retries: list[tuple[QueuedRow, float]] = field(default_factory=list)
    dead: list[tuple[QueuedRow, dict[str, Any]]] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    def take(self, done: Iterable[Done]) -> None:
        for d in done:
            self.published.extend(d.published)
            self.later.extend(d.later)
            self.retries.extend(d.retries)
            self.dead.extend(d.dead)

    def drop(self, refused: set[tuple[str, int]]) -> None:
        """Rows whose claims another delivery took over while this batch ran: the taker
        settles them, so they are neither put back nor published as retrying."""
        self.later = [(r, d) for r, d in self.later if (r.job_id, r.row) not in refused]
        self.retries = [(r, d) for r, d in self.retries if (r.job_id, r.row) not in refused]
        self.published = without_let_go(self.published, refused)


class Sender:
    def __init__(self, parts: SenderParts, settings: SenderSettings) -> None:
        self._parts = parts
        self._ledger = parts.ledger
        self._clock = parts.clock
        # Rows come this long before they are due (and up to a second more: delays are whole
        # seconds); one sooner than that goes back on the queue (chalicelib.core.schedule).
        self._visible_early = settings.visible_early
        self._max_hold = max(MAX_HOLD_SECONDS, settings.visible_early + 1.0)
        self._outcomes = Outcomes(parts, settings)
        self._pacer = Pacer(parts, settings)
        self._settlement = Settlement(parts, settings, self._outcomes, self._pacer)
        caller = Caller(parts, self._outcomes, self._pacer, self._settlement)
        self._dispatcher = Dispatcher(parts, settings, caller, self._outcomes, self._pacer)

    def send_batch(
        self, rows: Iterable[QueuedRow], *, ends_at: float | None = None
    ) -> list[dict[str, Any]]:
        """Returns the envelopes published, as JSON. `ends_at`: when the invocation ends (its
        timeout); the batch's calls stop in time for it to finish before then."""
        batch = _Batch()
        due, cancelled = self._sort_out(list(rows), batch)
        checked_at = self._clock()
        # A first sort only: the rows to numbers already suppressed end here, without taking
        # slots. What decides a call is the dispatcher's consistent read once its slot is booked.
        early = self._parts.suppressed_early or self._parts.suppressed
        suppressed = early({n for _, r in due if (n := r.number) is not None})
        # Rows of one batch may arrive in any order; they are metered and called in due order.
        ordered = sorted(due, key=lambda item: item[0])
        writes = self._ledger.writes()
        # Claimed first (a conditional put a row), then metered: a slot is handed out
        # only for a call about to be made.
        claimed_at = self._clock()
        ready, doubtful = self._claim(ordered, suppressed, writes, batch)
        gateway = self._parts.gateway() if ready or doubtful else None
        # Rows whose earlier call started and never completed: settled by what Twilio holds.
        settled, failures = self._settlement.settle_all(
            doubtful, suppressed, gateway, writes, ends_at
        )
        metered = self._meter(ready, writes, batch)
        called, call_failures = self._dispatcher.dispatch(
            metered, gateway, writes, claimed_at, checked_at, ends_at
        )
        batch.take([*settled, *called])
        batch.failures = [*failures, *call_failures]
        batch.published.extend(end_cancelled(self._ledger, cancelled, batch.later, self._clock))
        self._finish(batch, writes)
        return batch.published

    def _sort_out(
        self, rows: list[QueuedRow], batch: _Batch
    ) -> tuple[list[tuple[float, QueuedRow]], list[QueuedRow]]:
        """The rows due within the hold horizon, with their times (moved on by the time their
        job spent paused, re-timed by its rate changes), and the rows of cancelled jobs (ended
        without a Twilio call). A paused job's rows, and rows due later, go back on the queue."""
        jobs = {job_id: self._parts.jobs(job_id) for job_id in {r.job_id for r in rows}}
        cancelled: list[QueuedRow] = []
        due: list[tuple[float, QueuedRow]] = []
        now = self._clock()
        for row in rows:
            job = jobs[row.job_id]
            if job is not None and job.state == "cancelled":
                cancelled.append(row)
                continue
            if job is not None and job.state == "paused":
                batch.later.append((row, PAUSED_RECHECK_SECONDS))
                continue
            timed = _timed(row, job)
            at = timed.due_at
            held = held_for_window(timed, job, at)
            if held is not None:
                batch.later.append((held, held.due_at - now - self._visible_early))
                continue
            if at - now > self._max_hold:
                batch.later.append((row, at - now - self._visible_early))
            else:
                due.append((at, timed))
        return due, cancelled

    def _claim(
        self,
        ordered: list[tuple[float, QueuedRow]],
        suppressed: set[str],
        writes: LedgerWrites,
        batch: _Batch,
    ) -> tuple[list[tuple[float, QueuedRow]], list[tuple[float, QueuedRow, Claim]]]:
        """Each row's attempt claimed in the call ledger (a conditional put a row): the
        rows to call, and those in doubt (an earlier call started and never recorded). A row
        to a suppressed number ends `suppressed`; one the ledger answers for itself is
        published again or put back to wait (recording.republish_or_wait)."""
        claims = self._ledger.claim_all([(r.job_id, r.row, r.attempt) for _, r in ordered])
        ready: list[tuple[float, QueuedRow]] = []
        doubtful: list[tuple[float, QueuedRow, Claim]] = []
        for (at, row), claim in zip(ordered, claims, strict=True):
            if claim.verdict in ("call", "in_doubt"):
                writes.hold(row.job_id, row.row, claim.held_at)
            if republish_or_wait(claim, row, batch.published, batch.later):
                continue
            if claim.verdict == "in_doubt":
                # The claim taken over may be another attempt's: settled as that attempt (its
                # retry is conditional on it). Settled as this copy's, the retry was refused,
                # the row let go to a taker that was this very delivery, and lost.
                attempt = row.attempt if claim.attempt is None else claim.attempt
                doubtful.append((at, replace(row, attempt=attempt), claim))
            elif row.number in suppressed or self._outcomes.stopped(row.number):
                batch.published.append(self._outcomes.suppressed(at, row, writes))
            else:
                ready.append((at, row))
        return ready, doubtful

    def _meter(
        self, ready: list[tuple[float, QueuedRow]], writes: LedgerWrites, batch: _Batch
    ) -> list[Metered]:
        """The rows to call, on their senders' schedules; those whose sender has no room now
        go back on the queue, their claims given back."""
        unmetered: list[tuple[QueuedRow, float]] = []
        try:
            metered = self._pacer.meter(ready, unmetered)
        except Exception:
            # Senders' schedules could not be reached: no call is made, the claims are given
            # back and the rows come back in a second (the error is not hidden: it is logged).
            log.exception("metering failed; %d rows go back on the queue", len(ready))
            metered, unmetered = [], [(row, NO_SLOT_RECHECK_SECONDS) for _, row in ready]
        writes.retryable_all([(r.job_id, r.row, r.attempt) for r, _ in unmetered])  # open again
        batch.later.extend(unmetered)
        return metered

    def _finish(self, batch: _Batch, writes: LedgerWrites) -> None:
        # Every outcome is in the ledger before anything is put back or published; if that
        # fails, the batch fails whole and its redelivery finds the rows claimed.
        writes.flush()
        if writes.refused:
            # Named, so a row that then never settles can be traced to the batch that let go.
            log.warning(
                "%d rows were settled by another delivery meanwhile: %s",
                len(writes.refused),
                _rows_named(writes.refused),
            )
            batch.drop(writes.refused)
        if batch.later or batch.retries:
            self._parts.queue.retry_later([*batch.later, *batch.retries])
        if batch.dead:
            self._parts.queue.dead_letter(batch.dead)
        self._parts.publisher.publish(batch.published)
        if batch.failures:
            # The other rows' outcomes are recorded and published; this batch fails so SQS
            # delivers it again, and the ledger settles the rows that failed.
            raise batch.failures[0]


# Rows a log line names, at most.
NAMED_ROWS = 10


def _rows_named(rows: set[tuple[str, int]]) -> str:
    """`job row, ...` for up to NAMED_ROWS rows, in order, and how many more."""
    ordered = sorted(rows)
    named = ", ".join(f"{job} {row}" for job, row in ordered[:NAMED_ROWS])
    more = len(ordered) - NAMED_ROWS
    return named + (f" and {more} more" if more > 0 else "")


def _timed(row: QueuedRow, job: Job | None) -> QueuedRow:
    """The row as due now: moved on by the time its job spent paused, then re-timed by the
    job's rate changes since its release (chalicelib.core.pace). Its times are then measured
    from the job's current start, with every change applied, so a row put back on the queue
    as it is is never moved twice."""
    shift = _pause_shift(row, job)
    moved = replace(row, due_at=row.due_at + shift, job_start=row.job_start + shift)
    if job is None or not job.rate_changes or not row.released_at or not row.job_start:
        return moved
    # The job's changes are on its clock (seconds after its start), as the row's times are
    # once measured from the start it now has.
    start = moved.job_start
    released = row.released_at + shift - start
    changes = pace.changes_of(job.rate_changes)
    run_at = row.run_at + shift - start if row.run_at else -math.inf
    stretch = job.send_window is None
    due = start + pace.retimed(
        moved.due_at - start, released, changes, run_at=run_at, stretch=stretch
    )
    return replace(moved, due_at=due, released_at=start + pace.applied_through(released, changes))


def _pause_shift(row: QueuedRow, job: Job | None) -> float:
    """How much later than planned the row is now due: the time its job spent paused."""
    if job is None or job.started_at is None or not row.job_start:
        return 0.0
    return max(0.0, job.started_at - row.job_start)
