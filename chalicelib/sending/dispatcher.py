"""The dispatcher: a batch's claimed rows called at account slots taken just in time, with
their outcomes published while the batch goes on calling.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.jobs import HELD
from chalicelib.core.records import QueuedRow
from chalicelib.sending.calls import Caller
from chalicelib.sending.ledger_writes import LedgerWrites
from chalicelib.sending.pacing import DISPATCH_TICK_SECONDS, Metered, Pacer
from chalicelib.sending.parts import SenderParts, SenderSettings
from chalicelib.sending.publisher import ResponsePublisher
from chalicelib.sending.recording import Done, Outcomes, without_let_go
from chalicelib.twilio.gateway import TwilioGateway

log = logging.getLogger(__name__)

# A row the account has no slot for within the hold horizon looks again this much later.
NO_SLOT_RECHECK_SECONDS = 1.0
# How often a batch looks at its jobs' states again while it calls.
JOB_RECHECK_SECONDS = 1.0
# While a batch calls, its outcomes are published once this many are ready, or this often.
EARLY_PUBLISH_COUNT = 10
EARLY_PUBLISH_SECONDS = 0.5
# A number's suppression read answers for its calls with slots up to this long after the read
# (the rows of a tick take slots up to two ticks ahead): a later slot reads it again.
FRESH_READ_SECONDS = 2 * DISPATCH_TICK_SECONDS
# A read answers for a call starting at most this long after it (and the slot's tolerance): the
# rows read at a booking are due within the next tick and their slots up to two ticks after
# that. A call held up longer (its thread starved, its slot booked far ahead) is slotted and
# read again, so no call goes on an older look however the machine runs.
READ_ANSWERS_SECONDS = FRESH_READ_SECONDS + 2 * DISPATCH_TICK_SECONDS


@dataclass
class _Run:
    """One batch's dispatch as it goes: the rows still to call, the calls in flight, what became
    of the rows, and the errors to raise once the rest is done."""

    gateway: TwilioGateway | None
    writes: LedgerWrites
    claimed_at: float
    deadline: float
    checked_at: float
    pending: list[Metered]
    running: dict[Future[Done], Metered] = field(default_factory=dict)
    done: list[Done] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    # Numbers the suppression table said were not suppressed, with when they were read; and
    # those it said were (they stay so for the rest of the batch).
    read_at: dict[str, float] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)

    def give_back(self, items: list[Metered], delay: float) -> None:
        # Open to come back.
        self.writes.retryable_all([(r.job_id, r.row, r.attempt) for _, _, r in items])
        self.done.append(Done(later=[(row, delay) for _, _, row in items]))


class Dispatcher:
    def __init__(
        self,
        parts: SenderParts,
        settings: SenderSettings,
        caller: Caller,
        outcomes: Outcomes,
        pacer: Pacer,
    ) -> None:
        self._parts = parts
        self._concurrency = settings.concurrency
        self._finish = settings.finish_seconds
        self._caller = caller
        self._outcomes = outcomes
        self._pacer = pacer

    def dispatch(
        self,
        rows: list[Metered],
        gateway: TwilioGateway | None,
        writes: LedgerWrites,
        claimed_at: float,
        checked_at: float,
        ends_at: float | None = None,
    ) -> tuple[list[Done], list[Exception]]:
        """Call each claimed row at an account slot taken just in time.

        `rows` are (not before, due, row), in order. Every tick the rows due within the next tick
        take their slots together (one conditional write books them; chalicelib.sending.limiter) and
        go to the pool, where each call waits for its own slot, so a slow response never makes the
        next call late. Taking slots a tick ahead, not for the whole batch at once, means a slot is
        seldom missed; a call whose thread still ran late for its slot takes a slot in a later tick.
        Rows without a slot before the call deadline (half the in-doubt time after the claim, and
        `finish_seconds` before the invocation `ends_at`) go back on the queue, their claims
        given back. Once its slot is booked, and before its call,
        each row's number is read from the suppression list (strongly consistent), unless it
        was read for a slot at most FRESH_READ_SECONDS earlier: a number another sender's
        response stopped a moment ago is not called, and a row that waits ticks for a slot, or
        misses one, is not read at every tick. A batch's rows span seconds, so the jobs' states
        are looked at again every second (`checked_at`: the last look): the rows of a job paused
        or cancelled since go back on the queue."""
        deadline = claimed_at + self._parts.ledger.call_deadline
        if ends_at is not None:
            deadline = min(deadline, ends_at - self._finish)
        run = _Run(gateway, writes, claimed_at, deadline, checked_at, list(rows))
        with (
            ThreadPoolExecutor(max(1, min(self._concurrency, len(rows)))) as pool,
            ThreadPoolExecutor(1) as publishing,
        ):
            early = EarlyPublisher(writes, self._parts.publisher, self._parts.clock, publishing)
            while run.pending or run.running:
                now = self._parts.clock()
                self._recheck_jobs(run, now)
                if run.pending and now >= run.deadline:
                    run.give_back(run.pending, NO_SLOT_RECHECK_SECONDS)
                    run.pending = []
                if not self._start_due(run, now, pool):
                    continue
                if not run.running:
                    wake = _wake(run, now)
                    if run.pending and wake > 0:
                        self._parts.sleep(wake)
                    continue
                self._collect(run, now)
                early.offer(run.done)
            early.finish(run.done)
        return run.done, run.failures

    def _recheck_jobs(self, run: _Run, now: float) -> None:
        """Once a second: the rows of jobs paused or cancelled since the batch began go back,
        and their next delivery finds the job's state (wait while paused, or end)."""
        if not run.pending or now - run.checked_at < JOB_RECHECK_SECONDS:
            return
        run.checked_at = now
        stopped = self._stopped_jobs({r.job_id for _, _, r in run.pending})
        if stopped:
            run.give_back([i for i in run.pending if i[2].job_id in stopped], 1.0)
            run.pending = [i for i in run.pending if i[2].job_id not in stopped]

    def _start_due(self, run: _Run, now: float, pool: ThreadPoolExecutor) -> bool:
        """The rows due within the next tick take their slots, and each call goes to the pool
        as soon as its slot is booked; those the account had no slot for wait for the next
        tick. False when the rate limiter could not be reached (the rows without a slot are
        not called and come back in a second; the error is logged whole)."""
        ahead = now + DISPATCH_TICK_SECONDS
        group = [item for item in run.pending if item[0] <= ahead]
        if not group:
            return True
        run.pending = run.pending[len(group) :]
        group = self._drop_stopped(group, run)
        if not group:
            return True
        slotted: set[int] = set()

        def call(granted: list[tuple[int, float]]) -> None:
            stopped = self._suppressed_rows(run, [(group[i][2], slot) for i, slot in granted])
            if stopped is None:
                return  # not read: their slots go unused, the rows try again next tick
            for i, slot in granted:
                slotted.add(i)
                _, at, row = group[i]
                if row.number in stopped:
                    run.done.append(
                        Done(published=[self._outcomes.suppressed(at, row, run.writes)])
                    )
                    continue
                read = run.read_at.get(row.number or "", math.inf)
                read_by = read + READ_ANSWERS_SECONDS + self._pacer.tolerance()
                future = pool.submit(
                    self._caller.call,
                    slot,
                    at,
                    row,
                    run.gateway,
                    run.writes,
                    run.claimed_at,
                    read_by,
                )
                run.running[future] = group[i]

        try:
            self._pacer.slots([nb for nb, _, _ in group], call)
        except Exception:
            lost = [item for i, item in enumerate(group) if i not in slotted]
            log.exception("metering failed; %d rows go back on the queue", len(lost))
            run.give_back(lost, NO_SLOT_RECHECK_SECONDS)
            return False
        unslotted = [
            (ahead + DISPATCH_TICK_SECONDS, at, row)
            for i, (_, at, row) in enumerate(group)
            if i not in slotted
        ]
        run.pending = sorted(unslotted + run.pending, key=_dispatch_order)
        return True

    def _collect(self, run: _Run, now: float) -> None:
        """Until the next rows are due, or a call ends: the calls that ended, done; a call
        that missed its slot goes back among the rows to slot, in due order."""
        finished, _ = wait(list(run.running), timeout=_wake(run, now), return_when=FIRST_COMPLETED)
        for future in finished:
            item = run.running.pop(future)
            error = future.exception()
            if error is not None:
                run.failures.append(error)  # type: ignore[arg-type]
            elif (result := future.result()).missed:
                run.pending.append(item)
            else:
                run.done.append(result)
        run.pending.sort(key=_dispatch_order)

    def _drop_stopped(self, pending: list[Metered], run: _Run) -> list[Metered]:
        """The rows still to call, less those to numbers this batch already knows are suppressed
        (a read, or a response of this container): they end `suppressed` without a slot."""
        keep = []
        for item in pending:
            _, at, row = item
            if row.number in run.stopped or self._outcomes.stopped(row.number):
                run.done.append(Done(published=[self._outcomes.suppressed(at, row, run.writes)]))
            else:
                keep.append(item)
        return keep

    def _suppressed_rows(
        self, run: _Run, slotted: list[tuple[QueuedRow, float]]
    ) -> set[str] | None:
        """Which numbers of rows given slots must not be called: those not read for a slot
        within FRESH_READ_SECONDS are read (each distinct number once, 100 to a request), and
        the batch's own knowledge added. None when the list could not be read: no row may be
        called on an older look (the error is logged)."""
        stale = {
            number
            for row, slot in slotted
            if (number := row.number) is not None
            and number not in run.stopped
            and slot - run.read_at.get(number, -math.inf) > FRESH_READ_SECONDS
        }
        if stale:
            # The read answers for the table as it was when asked, not when it answered.
            asked = self._parts.clock()
            try:
                found = self._parts.suppressed(stale)
            except Exception:
                log.exception("could not read the suppression list; the rows wait a tick")
                return None
            run.stopped |= found
            run.read_at.update((number, asked) for number in stale - found)
        numbers = {n for row, _ in slotted if (n := row.number) is not None}
        return {n for n in numbers if n in run.stopped or self._outcomes.stopped(n)}

    def _stopped_jobs(self, job_ids: set[str]) -> set[str]:
        """Those of `job_ids` now paused or cancelled; none when the jobs cannot be read (the
        next look is in a second; the error is logged)."""
        try:
            return {
                job_id
                for job_id in job_ids
                if (job := self._parts.jobs(job_id)) is not None and job.state in HELD
            }
        except Exception:
            log.exception("could not look at the jobs' state again")
            return set()


class EarlyPublisher:
    """Publishes a batch's outcomes while the batch goes on calling: once EARLY_PUBLISH_COUNT
    are ready, or every EARLY_PUBLISH_SECONDS. A batch spans seconds, and the sinks act on what
    they see (a STOP suppresses the number for the rows after it).

    The work (the ledger written first, then the topic, as at the batch's end) runs on a thread
    of its own, one publish at a time: the dispatcher, which takes the account's slots, must not
    wait on it. Outcomes whose publish failed go back to the batch, whose end publishes them
    again and fails if it cannot (the error is logged here)."""

    def __init__(
        self,
        writes: LedgerWrites,
        publisher: ResponsePublisher,
        clock: Callable[[], float],
        executor: ThreadPoolExecutor,
    ) -> None:
        self._writes = writes
        self._publisher = publisher
        self._clock = clock
        self._executor = executor
        self._since = clock()
        self._running: Future[list[dict[str, Any]]] | None = None

    def offer(self, done: list[Done]) -> None:
        """Hand the outcomes ready in `done` to the publishing thread, if it is time and it is
        free. Called by the dispatcher only (it alone changes `done`)."""
        if self._running is not None:
            if not self._running.done():
                return
            self._collect(done)
        ready = [d for d in done if d.published]
        count = sum(len(d.published) for d in ready)
        now = self._clock()
        waited = now - self._since
        if count < EARLY_PUBLISH_COUNT and (count == 0 or waited < EARLY_PUBLISH_SECONDS):
            return
        envelopes = [e for d in ready for e in d.published]
        for d in ready:
            d.published = []
        self._since = now
        self._running = self._executor.submit(self._publish, envelopes)

    def finish(self, done: list[Done]) -> None:
        """Wait for the publish in progress; its outcomes, if it failed, go back to `done`."""
        if self._running is not None:
            wait([self._running])
            self._collect(done)

    def _collect(self, done: list[Done]) -> None:
        assert self._running is not None  # noqa: S101 - called only with a publish started
        failed, self._running = self._running.result(), None
        if failed:
            done.append(Done(published=failed))

    def _publish(self, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The envelopes not published: all of them if this failed, else none."""
        try:
            self._writes.flush()
            # As the batch's end does (sender._Batch.drop).
            self._publisher.publish(without_let_go(envelopes, self._writes.refused))
        except Exception:
            log.exception("publishing a batch's first outcomes failed; retried at its end")
            return envelopes
        return []


def _wake(run: _Run, now: float) -> float:
    """How long the dispatcher may wait: until the next rows are due, a tick at most."""
    wake = DISPATCH_TICK_SECONDS
    if run.pending:
        wake = min(wake, max(0.0, run.pending[0][0] - DISPATCH_TICK_SECONDS - now))
    return wake


def _dispatch_order(item: Metered) -> tuple[float, float, str, int]:
    not_before, due, row = item
    return (not_before, due, row.job_id, row.row)
