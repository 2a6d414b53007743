"""The sender: makes each queued row's Twilio call and publishes what came back.

Rows become visible on the queue in the whole second before they are due (SQS delays are whole
seconds); the sender holds each one until its exact time. Each call is first claimed in the call
ledger (chalicelib.sending.ledger), so a row delivered again is never called twice. A row to a
suppressed number ends `suppressed` without a call; the rows of a paused job go back on the queue
untouched, and when the job resumes its rows' times move by the length of the pause. A response
that says Twilio did not process the request (429, 5xx) goes back on the queue with backoff until
the attempts run out, then to the dead-letter queue; the original message is then done with, so
the design does not depend on partial batch responses being switched on for the trigger.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from chalicelib.aws.send_queue import SendQueue
from chalicelib.core.evidence import Evidence
from chalicelib.core.jobs import HELD, Job
from chalicelib.core.metering import SenderLimits
from chalicelib.core.outcomes import backoff_seconds, classify, may_have_taken_effect
from chalicelib.core.records import Outcome, QueuedRow, ResponseEnvelope, TwilioResult
from chalicelib.core.schedule import VISIBLE_EARLY_SECONDS
from chalicelib.core.segments import message_cost
from chalicelib.sending.cancel import end_cancelled
from chalicelib.sending.ledger import CallLedger, Claim, LedgerWrites
from chalicelib.sending.limiter import RateLimiter
from chalicelib.sending.publisher import ResponsePublisher
from chalicelib.twilio.gateway import LookupFailed, NumberSuppressed, SlotMissed, TwilioGateway

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# A row is made visible two to three seconds before it is due (chalicelib.core.schedule; more with a
# longer batching window); a row due later than this (or than its lead and a second, where that
# is longer) goes back on the queue instead of holding the batch.
MAX_HOLD_SECONDS = 3.0
# How often a paused job's queued rows look again at whether it was resumed.
PAUSED_RECHECK_SECONDS = 30.0
# Before looking up a call whose response was lost: time for Twilio's list to show it.
RESOLVE_DELAY_SECONDS = 1.0
# A look-up of a call in doubt: tries (with backoff), and each request's read timeout (by
# default 1.5 times a call's: a slow Twilio answers both late), within the sender's 60 s: two
# tries of 15 s before the batch's calls.
LOOKUP_ATTEMPTS = 2
LOOKUP_TIMEOUT_SECONDS = 15.0
LOOKUP_BACKOFF_SECONDS = 1.0
# How often a look-up waits for the account to have a slot for it (one tick each).
LOOKUP_SLOT_TRIES = 20
# A call in doubt whose look-up Twilio did not answer is looked up again on later deliveries,
# this many times in all, before the row ends `unknown`.
MAX_DOUBTS = 3
# A row the account has no slot for within the hold horizon looks again this much later.
NO_SLOT_RECHECK_SECONDS = 1.0
# A metered call later than this for its slot is not made (it would bunch with the calls in the
# slots after it): it takes a fresh slot.
LATE_TOLERANCE_SECONDS = 0.1
# Account slots are taken this long before the calls' times (chalicelib.sending.sender._dispatch).
DISPATCH_TICK_SECONDS = 0.1
# How often a batch looks at its jobs' states again while it calls.
JOB_RECHECK_SECONDS = 1.0
# While a batch calls, its outcomes are published once this many are ready, or this often.
EARLY_PUBLISH_COUNT = 10
EARLY_PUBLISH_SECONDS = 0.5
# SQS's delay ceiling.
MAX_DELAY_SECONDS = 900.0
# Twilio's code for too many concurrent requests (with HTTP 429).
TOO_MANY_REQUESTS = 20429
# A concurrency reading at this share of the account's limit slows the senders before Twilio
# has to refuse anything.
CONCURRENCY_HEADROOM = 0.8


@dataclass
class _Done:
    """What became of one row's call: what to publish, and what goes back on the queue."""

    published: list[dict[str, Any]] = field(default_factory=list)
    later: list[tuple[QueuedRow, float]] = field(default_factory=list)
    retries: list[tuple[QueuedRow, float]] = field(default_factory=list)
    dead: list[tuple[QueuedRow, dict[str, Any]]] = field(default_factory=list)
    # The call was not made: its slot had passed when its thread got to it.
    missed: bool = False


@dataclass(frozen=True)
class SendPolicy:
    max_attempts: int
    backoff_base: float = 2.0
    backoff_cap: float = 900.0


class Sender:
    def __init__(
        self,
        gateway: Callable[[], TwilioGateway],
        queue: SendQueue,
        publisher: ResponsePublisher,
        policy: SendPolicy,
        ledger: CallLedger,
        *,
        jobs: Callable[[str], Job | None] = lambda _: None,
        suppressed: Callable[[set[str]], set[str]] = lambda _: set(),
        stops: Callable[[dict[str, Any]], str | None] = lambda _: None,
        suppress: Callable[[dict[str, Any]], object] = lambda _: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
        senders: SenderLimits | None = None,
        concurrency: int = 1,
        concurrency_limit: int | None = None,
        late_tolerance: float = LATE_TOLERANCE_SECONDS,
        visible_early: float = VISIBLE_EARLY_SECONDS,
        lookup_timeout: float = LOOKUP_TIMEOUT_SECONDS,
    ) -> None:
        """`limiter` meters every call on the account's shared rate (None: each row goes at its
        own time); `senders` adds per-sender limits; `concurrency` is how many of a batch's
        calls may be in flight at once; `concurrency_limit` the account's Twilio concurrency
        limit, whose nearness slows the rate. `suppressed` reads the suppression list;
        `stops` says which number an outcome says must never be called again (STOP, landline,
        invalid), if any, and `suppress` adds it to the list."""
        # The gateway is a factory so credentials are read on first use, not at import.
        self._gateway = gateway
        self._queue = queue
        self._publisher = publisher
        self._policy = policy
        self._ledger = ledger
        self._jobs = jobs
        self._suppressed = suppressed
        self._stops = stops
        self._suppress = suppress
        # Numbers this container's own responses suppressed: checked right before every call,
        # so a repeat is never called once the response that stops it was received here.
        self._stopped: set[str] = set()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._limiter = limiter
        self._senders = senders or SenderLimits()
        self._concurrency = concurrency
        self._concurrency_limit = concurrency_limit
        self._late_tolerance = late_tolerance
        self._lookup_timeout = lookup_timeout
        # Rows come this long before they are due (and up to a second more: delays are whole
        # seconds); one sooner than that goes back on the queue (chalicelib.core.schedule).
        self._visible_early = visible_early
        self._max_hold = max(MAX_HOLD_SECONDS, visible_early + 1.0)

    def send_batch(self, rows: Iterable[QueuedRow]) -> list[dict[str, Any]]:
        """Returns the envelopes published, as JSON."""
        batch = list(rows)
        jobs = {job_id: self._jobs(job_id) for job_id in {r.job_id for r in batch}}
        later: list[tuple[QueuedRow, float]] = []
        cancelled: list[QueuedRow] = []
        due: list[tuple[float, QueuedRow]] = []
        now = self._clock()
        for row in batch:
            job = jobs[row.job_id]
            if job is not None and job.state == "cancelled":
                cancelled.append(row)  # ended below, without a Twilio call
                continue
            if job is not None and job.state == "paused":
                later.append((row, PAUSED_RECHECK_SECONDS))
                continue
            shift = _pause_shift(row, job)
            at = row.due_at + shift
            if at - now > self._max_hold:
                later.append((row, at - now - self._visible_early))
            else:
                # From here on the row's times are measured from the job's current start.
                due.append((at, replace(row, due_at=at, job_start=row.job_start + shift)))
        checked_at = self._clock()
        suppressed = self._suppressed({n for _, r in due if (n := r.number) is not None})
        published: list[dict[str, Any]] = []
        # Rows of one batch may arrive in any order; they are metered and called in due order.
        ordered = sorted(due, key=lambda item: item[0])
        writes = self._ledger.writes(sleep=self._sleep)
        # Claimed first (one transaction for the batch), then metered: a slot is handed out
        # only for a call about to be made.
        claimed_at = self._clock()
        claims = self._ledger.claim_all([(r.job_id, r.row, r.attempt) for _, r in ordered])
        ready: list[tuple[float, QueuedRow]] = []
        doubtful: list[tuple[float, QueuedRow, Claim]] = []
        for (at, row), claim in zip(ordered, claims, strict=True):
            if claim.verdict in ("call", "in_doubt"):
                writes.hold(row.job_id, row.row, claim.held_at)
            if claim.verdict == "done":
                assert claim.envelope is not None  # noqa: S101 - stored with "done"
                published.append(claim.envelope)
            elif claim.verdict == "wait":
                later.append((row, claim.wait_seconds + 1.0))
            elif claim.verdict == "in_doubt":
                doubtful.append((at, row, claim))
            elif claim.verdict == "call":
                if row.number in suppressed or row.number in self._stopped:
                    published.append(self._suppressed_envelope(at, row, writes))
                else:
                    ready.append((at, row))
            # "stale": a later attempt of this row is on the queue
        gateway = self._gateway() if ready or doubtful else None
        # Rows whose earlier call started and never completed: settled by what Twilio holds.
        settled, failures = self._each(
            lambda d: self._settle(d[0], d[1], d[2], d[1].number in suppressed, gateway, writes),
            doubtful,
        )
        done = list(settled.values())
        unmetered: list[tuple[QueuedRow, float]] = []
        try:
            slots = self._meter(ready, unmetered)
        except Exception:
            # Senders' schedules could not be reached: no call is made, the claims are given
            # back and the rows come back in a second (the error is not hidden: it is logged).
            log.exception("metering failed; %d rows go back on the queue", len(ready))
            slots, unmetered = [], [(row, NO_SLOT_RECHECK_SECONDS) for _, row in ready]
        for row, delay in unmetered:
            writes.retryable(row.job_id, row.row, row.attempt)  # open to come back
            later.append((row, delay))
        calls, call_failures = self._dispatch(slots, gateway, writes, claimed_at, checked_at)
        done += calls
        failures += call_failures
        retries: list[tuple[QueuedRow, float]] = []
        dead: list[tuple[QueuedRow, dict[str, Any]]] = []
        for d in done:
            published.extend(d.published)
            later.extend(d.later)
            retries.extend(d.retries)
            dead.extend(d.dead)
        published.extend(end_cancelled(self._ledger, cancelled, later, self._clock))
        # Every outcome is in the ledger before anything is put back or published; if that
        # fails, the batch fails whole and its redelivery finds the rows claimed.
        writes.flush()
        if writes.refused:
            # Their claims were taken over while this batch ran: the taker settles them.
            log.warning("%d rows were settled by another delivery meanwhile", len(writes.refused))
            later = [(r, d) for r, d in later if (r.job_id, r.row) not in writes.refused]
            retries = [(r, d) for r, d in retries if (r.job_id, r.row) not in writes.refused]
            published = [
                e
                for e in published
                if e.get("outcome") != "retrying"
                or (e.get("job_id"), e.get("row")) not in writes.refused
            ]
        if later or retries:
            self._queue.retry_later([*later, *retries])
        if dead:
            self._queue.dead_letter(dead)
        self._publisher.publish(published)
        if failures:
            # The other rows' outcomes are recorded and published; this batch fails so SQS
            # delivers it again, and the ledger settles the rows that failed.
            raise failures[0]
        return published

    def _meter(
        self, rows: list[tuple[float, QueuedRow]], later: list[tuple[QueuedRow, float]]
    ) -> list[tuple[float, float, QueuedRow]]:
        """(not before, due, row) for the rows their sender can send within the hold horizon,
        on its own schedule when per-sender limits are on; the others go to `later`, to come
        back when their sender has room. The account's slots are taken later, just before each
        call (see `_dispatch`)."""
        if self._limiter is None or not rows:
            return [(at, at, row) for at, row in rows]
        now = self._clock()
        not_before = [at for at, _ in rows]
        by_sender: dict[str, list[int]] = {}
        for i, (_, row) in enumerate(rows):
            sender = row.params.get("From")
            if row.api == "messages" and isinstance(sender, str) and self._senders.mps(sender):
                by_sender.setdefault(sender, []).append(i)
        waiting: set[int] = set()
        for sender, group in by_sender.items():
            mps = self._senders.mps(sender)
            assert mps is not None  # noqa: S101 - grouped above only with a limit
            costs = [float(message_cost(rows[i][1].params)) for i in group]
            indexes = group
            # Reserve only what the sender can send within the horizon; the rest go back on
            # the queue without holding its schedule.
            fit = 1
            while fit < len(costs) and sum(costs[: fit + 1]) / mps <= MAX_HOLD_SECONDS:
                fit += 1
            if fit < len(indexes):
                delay = min(MAX_DELAY_SECONDS, max(1.0, sum(costs[:fit]) / mps))
                waiting.update(indexes[fit:])
                later.extend((rows[i][1], delay) for i in indexes[fit:])
                indexes, costs = indexes[:fit], costs[:fit]
            first = min(not_before[i] for i in indexes)
            reservation = self._limiter.reserve_sender(
                sender, costs, mps, max(first, now), MAX_HOLD_SECONDS
            )
            if reservation.starts is None:
                waiting.update(indexes)
                delay = min(MAX_DELAY_SECONDS, max(1.0, reservation.busy_until - now))
                later.extend((rows[i][1], delay) for i in indexes)
                continue
            for i, start in zip(indexes, reservation.starts, strict=True):
                not_before[i] = max(not_before[i], start)
        metered = [(not_before[i], at, row) for i, (at, row) in enumerate(rows) if i not in waiting]
        return sorted(metered, key=lambda item: item[0])

    def _each(
        self, work: Callable[[Any], _T], items: Sequence[Any]
    ) -> tuple[dict[int, _T], list[Exception]]:
        """`work` on each item, up to `concurrency` at once: the results by item index, and the
        errors of the items that raised (one row's failure must not lose the others' results)."""

        def guarded(item: Any) -> _T | Exception:
            try:
                return work(item)
            except Exception as error:  # noqa: BLE001 - returned, then raised by send_batch
                return error

        if self._concurrency > 1 and len(items) > 1:
            with ThreadPoolExecutor(min(self._concurrency, len(items))) as pool:
                outcomes = list(pool.map(guarded, items))
        else:
            outcomes = [guarded(item) for item in items]
        results = {i: o for i, o in enumerate(outcomes) if not isinstance(o, Exception)}
        return results, [o for o in outcomes if isinstance(o, Exception)]

    def _suppressed_envelope(
        self, at: float, row: QueuedRow, writes: LedgerWrites
    ) -> dict[str, Any]:
        """A claimed row to a suppressed number ends `suppressed` without a call. (A row whose
        earlier delivery already called keeps that call's outcome: the ledger said "done".)"""
        envelope = self._envelope(row, "suppressed", self._no_call(), at).to_json()
        writes.completed(row.job_id, row.row, row.attempt, envelope)
        return envelope

    def _settle(
        self,
        at: float,
        row: QueuedRow,
        claim: Claim,
        suppressed: bool,
        gateway: TwilioGateway | None,
        writes: LedgerWrites,
    ) -> _Done:
        """A row an earlier delivery started to call and never recorded: evidence decides. A
        status callback bound to the row, or the resource in Twilio's lists: sent. Twilio has
        no such resource, and the look-up can tell: the call never took effect, and the row
        goes on as an attempt Twilio did not process (the next attempt, or, to a number
        suppressed since, `suppressed`). Twilio could not be asked: looked up again on a later
        delivery, MAX_DOUBTS times in all. No evidence either way: `unknown`, never called."""
        done = _Done()
        assert gateway is not None  # noqa: S101 - made by send_batch when any row is in doubt
        now = self._clock()
        if claim.callback_sid is not None:
            evidence = Evidence(
                "found", {"sid": claim.callback_sid, "resolved_by": "status callback"}
            )
        else:
            evidence = self._look_up(gateway, row, claim.claimed_at, LOOKUP_ATTEMPTS)
        if evidence.verdict == "found":
            result = TwilioResult(201, evidence.resource, {}, now, self._clock())
        elif evidence.verdict == "absent":
            if suppressed or row.number in self._stopped:
                done.published.append(self._suppressed_envelope(at, row, writes))
                return done
            why = f"the call started but never completed; {evidence.reason}"
            result = _not_processed(self._no_call(why))
        elif evidence.failed and row.doubts + 1 < MAX_DOUBTS:
            # Twilio did not answer the look-up: the claim stays, and a later delivery asks
            # again once the in-doubt time has passed.
            done.later.append(
                (replace(row, doubts=row.doubts + 1), self._ledger.in_doubt_after + 1.0)
            )
            return done
        else:
            result = self._no_call(f"the call started but never completed; {evidence.reason}")
        self._record(row, result, at, done, writes)
        return done

    def _record(
        self, row: QueuedRow, result: TwilioResult, at: float, done: _Done, writes: LedgerWrites
    ) -> None:
        """The attempt's outcome, in the ledger (buffered) and to publish; a number the
        response says must never be called again is suppressed at once, here and in the list."""
        outcome = self._outcome(row, result, done.retries, done.dead)
        envelope = self._envelope(row, outcome, result, at).to_json()
        if outcome == "retrying":
            writes.retryable(row.job_id, row.row, row.attempt)
        else:
            writes.completed(row.job_id, row.row, row.attempt, envelope)
        done.published.append(envelope)
        number = self._stops(envelope)
        if number is None:
            return
        self._stopped.add(number)
        try:
            self._suppress(envelope)
        except Exception:
            # This container stops calling it either way, and the router suppresses it from
            # the published outcome a moment later.
            log.exception("could not add %s to the suppression list; the router will", number)

    def _look_up(
        self, gateway: TwilioGateway, row: QueuedRow, since: float, attempts: int
    ) -> Evidence:
        """What Twilio holds of the row's call made at `since`: each request metered on the
        account's schedule like a call, retried with backoff when Twilio cannot answer."""
        reason = ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._sleep(
                    backoff_seconds(attempt - 1, base=LOOKUP_BACKOFF_SECONDS, rng=self._rng)
                )
            try:
                return gateway.look_up(
                    row.request, since, hold=self._lookup_hold(), timeout=self._lookup_timeout
                )
            except Exception as error:
                # LookupFailed (Twilio did not answer) is expected; anything else is a defect,
                # logged whole, and the row stays in doubt all the same.
                reason = str(error) or type(error).__name__
                if not isinstance(error, LookupFailed):
                    log.exception("job %s row %d: look-up failed", row.job_id, row.row)
                    continue
                log.warning(
                    "job %s row %d: look-up %d of %d failed: %s",
                    row.job_id,
                    row.row,
                    attempt,
                    attempts,
                    error,
                )
        return Evidence(
            "unknown",
            reason=f"Twilio could not be asked whether it took effect ({reason})",
            failed=True,
        )

    def _lookup_hold(self) -> Callable[[], None]:
        """A hold for one look-up request: an account slot is booked on its first run and
        waited for (the gateway runs a hold twice: as the request is built, and at its first
        write). Look-ups count against the account's rate as calls do."""
        slot: list[float] = []

        def hold() -> None:
            if self._limiter is None:
                return
            if not slot:
                for _ in range(LOOKUP_SLOT_TRIES):
                    [granted] = self._limiter.schedule([self._clock()], 2 * DISPATCH_TICK_SECONDS)
                    if granted is not None:
                        slot.append(granted)
                        break
                    self._sleep(DISPATCH_TICK_SECONDS)
                else:
                    raise LookupFailed("the account had no slot for the look-up")
            self._hold_until(slot[0])

        return hold

    def _call_row(
        self,
        slot: float,
        at: float,
        row: QueuedRow,
        gateway: TwilioGateway | None,
        writes: LedgerWrites,
        claimed_at: float,
    ) -> _Done:
        """One claimed row: called at its slot, its outcome recorded."""
        done = _Done()
        assert gateway is not None  # noqa: S101 - made by send_batch when any row is due

        def hold() -> None:
            # Run by the gateway once the SDK has built the request, just before it is sent.
            self._hold_until(slot)
            if self._clock() - slot > self._tolerance():
                raise SlotMissed
            if row.number is not None and row.number in self._stopped:
                raise NumberSuppressed

        try:
            result = gateway.call(row.request, hold=hold)
        except SlotMissed:
            # This thread ran too late for the slot (a late call would bunch with the calls in
            # the slots after it): nothing was sent, and the dispatcher takes another slot.
            done.missed = True
            return done
        except NumberSuppressed:
            # A response this container received since the row was checked stopped its number.
            done.published.append(self._suppressed_envelope(at, row, writes))
            return done
        if may_have_taken_effect(row.api, result):
            # No answer, or an answer that does not say whether it took effect (a 5xx):
            # what Twilio holds decides, and only what it holds. Found: sent. Otherwise the
            # claim stays and the row waits out the in-doubt time, when the call can no longer
            # be in flight; a later delivery settles it (_settle).
            evidence = Evidence("unknown", reason="no time left to look it up")
            if self._clock() < claimed_at + self._ledger.call_deadline:
                self._sleep(RESOLVE_DELAY_SECONDS)
                evidence = self._look_up(gateway, row, result.started_at, 1)
            if evidence.verdict != "found":
                wait = claimed_at + self._ledger.in_doubt_after - self._clock()
                done.later.append((row, max(1.0, wait + 1.0)))
                return done
            result = TwilioResult(201, evidence.resource, {}, result.started_at, self._clock())
        elif classify(result) == "unknown":
            # A Lookup has no effect to find: asking again is safe.
            result = _not_processed(result)
        self._record(row, result, at, done, writes)
        try:
            self._feedback(result)
        except Exception:
            # Slowing the account is advice to the other senders; this row's outcome is
            # recorded either way, and the next 429 tries again.
            log.exception("could not slow the account's rate after Twilio pushed back")
        return done

    def _feedback(self, result: TwilioResult) -> None:
        """Twilio's push-back slows every sender of the account: a 429, or a reading of its
        concurrent requests near the account's concurrency limit."""
        if self._limiter is None:
            return
        # A 429 with another code (21611: this sender's queue is full) is about one sender,
        # not the account: its row backs off alone.
        if result.error_code == TOO_MANY_REQUESTS or (
            result.status == 429 and result.error_code is None
        ):
            self._limiter.congested()
            return
        if self._concurrency_limit:
            reading = result.headers.get("Twilio-Concurrent-Requests") or result.headers.get(
                "twilio-concurrent-requests"
            )
            near = self._concurrency_limit * CONCURRENCY_HEADROOM
            if reading and reading.isdigit() and int(reading) >= near:
                self._limiter.congested()

    def _no_call(self, why: str | None = None) -> TwilioResult:
        now = self._clock()
        return TwilioResult(None, None, {}, now, now, network_error=why)

    @staticmethod
    def _envelope(
        row: QueuedRow, outcome: Outcome, result: TwilioResult, due_at: float
    ) -> ResponseEnvelope:
        return ResponseEnvelope(
            job_id=row.job_id,
            row=row.row,
            api=row.api,
            attempt=row.attempt,
            outcome=outcome,
            request=row.params,
            result=result,
            due_at=due_at,
        )

    def _outcome(
        self,
        row: QueuedRow,
        result: TwilioResult,
        retries: list[tuple[QueuedRow, float]],
        dead: list[tuple[QueuedRow, dict[str, Any]]],
    ) -> Outcome:
        verdict = classify(result)
        if verdict != "retry":
            return verdict
        if row.attempt >= self._policy.max_attempts:
            dead.append((row, {"status": result.status, "code": result.error_code}))
            return "dead_lettered"
        delay = backoff_seconds(
            row.attempt,
            base=self._policy.backoff_base,
            cap=self._policy.backoff_cap,
            rng=self._rng,
        )
        retries.append((row.retry(self._clock() + delay, row.job_start), delay))
        return "retrying"

    def _tolerance(self) -> float:
        """How late a call may start for its slot: SLOT_TOLERANCE_SECONDS (within the rate
        headroom's budget, whatever the rate: one slot is a second at 1 CPS), and never more
        than one slot's spacing at the account's full rate, so a late call adds at most one to
        any window's calls (at 200 CPS, 100 ms hold at most 20 slots: 21 calls with one late)."""
        if self._limiter is None:
            return float("inf")
        return min(self._late_tolerance, 1.0 / self._limiter.ceiling)

    def _dispatch(
        self,
        rows: list[tuple[float, float, QueuedRow]],
        gateway: TwilioGateway | None,
        writes: LedgerWrites,
        claimed_at: float,
        checked_at: float,
    ) -> tuple[list[_Done], list[Exception]]:
        """Call each claimed row at an account slot taken just in time.

        `rows` are (not before, due, row), in order. Every tick the rows due within the next tick
        take their slots together (one conditional write books them; chalicelib.sending.limiter) and
        go to the pool, where each call waits for its own slot, so a slow response never makes the
        next call late. Taking slots a tick ahead, not for the whole batch at once, means a slot is
        seldom missed; a call whose thread still ran late for its slot takes a slot in a later tick.
        Rows without a slot before the call deadline (half the in-doubt time after the claim) go
        back on the queue, their claims given back. A batch's rows span seconds, so the suppression
        list is looked at again every second (`checked_at`: the last look): a number that failed
        with a STOP a moment ago is not called again; and so
        are the jobs' states: the rows of a job paused or cancelled since go back on the queue."""
        done: list[_Done] = []
        failures: list[Exception] = []
        pending = list(rows)
        deadline = claimed_at + self._ledger.call_deadline

        def give_back(items: list[tuple[float, float, QueuedRow]], delay: float) -> None:
            back = _Done()
            for _, _, row in items:
                writes.retryable(row.job_id, row.row, row.attempt)  # open to come back
                back.later.append((row, delay))
            done.append(back)

        with (
            ThreadPoolExecutor(max(1, min(self._concurrency, len(rows)))) as pool,
            ThreadPoolExecutor(1) as publishing,
        ):
            early = _EarlyPublisher(writes, self._publisher, self._clock, publishing)
            running: dict[Future[_Done], tuple[float, float, QueuedRow]] = {}
            while pending or running:
                now = self._clock()
                if pending and now - checked_at >= JOB_RECHECK_SECONDS:
                    checked_at = now
                    stopped = self._stopped_jobs({r.job_id for _, _, r in pending})
                    if stopped:
                        # Paused or cancelled since the batch began: the rows go back, and their
                        # next delivery finds the job's state (wait while paused, or end).
                        give_back([i for i in pending if i[2].job_id in stopped], 1.0)
                        pending = [i for i in pending if i[2].job_id not in stopped]
                if pending and now >= deadline:
                    give_back(pending, NO_SLOT_RECHECK_SECONDS)
                    pending = []
                ahead = now + DISPATCH_TICK_SECONDS
                group = [item for item in pending if item[0] <= ahead]
                if group:
                    pending = pending[len(group) :]
                    # The suppression list, read for these rows just before their slots: a
                    # number another sender's response stopped a moment ago is not called.
                    group = self._drop_suppressed(group, writes, done)
                if group:
                    slotted: set[int] = set()

                    def call(
                        granted: list[tuple[int, float]],
                        group: list[tuple[float, float, QueuedRow]] = group,
                        slotted: set[int] = slotted,
                    ) -> None:
                        # The calls go to the pool as soon as their slots are booked.
                        for i, slot in granted:
                            slotted.add(i)
                            item = group[i]
                            future = pool.submit(
                                self._call_row, slot, item[1], item[2], gateway, writes, claimed_at
                            )
                            running[future] = item

                    try:
                        self._slots([nb for nb, _, _ in group], call)
                    except Exception:
                        # The rate limiter could not be reached: the rows without a slot are not
                        # called and come back in a second (the error is logged whole).
                        lost = [item for i, item in enumerate(group) if i not in slotted]
                        log.exception("metering failed; %d rows go back on the queue", len(lost))
                        give_back(lost, NO_SLOT_RECHECK_SECONDS)
                        continue
                    # The rest found the account booked for now: the next tick.
                    unslotted = [
                        (ahead + DISPATCH_TICK_SECONDS, item[1], item[2])
                        for i, item in enumerate(group)
                        if i not in slotted
                    ]
                    pending = sorted(unslotted + pending, key=_dispatch_order)
                # Until the next rows are due, or a call ends.
                wake = DISPATCH_TICK_SECONDS
                if pending:
                    wake = min(wake, max(0.0, pending[0][0] - DISPATCH_TICK_SECONDS - now))
                if not running:
                    if pending and wake > 0:
                        self._sleep(wake)
                    continue
                finished, _ = wait(list(running), timeout=wake, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        failures.append(error)  # type: ignore[arg-type]
                    elif (result := future.result()).missed:
                        pending.append(item)  # slotted again, in due order
                    else:
                        done.append(result)
                pending.sort(key=_dispatch_order)
                early.offer(done)
            early.finish(done)
        return done, failures

    def _drop_suppressed(
        self,
        pending: list[tuple[float, float, QueuedRow]],
        writes: LedgerWrites,
        done: list[_Done],
    ) -> list[tuple[float, float, QueuedRow]]:
        """The rows still to call, less those to numbers suppressed since the batch began
        (they end `suppressed`, their claims settled)."""
        try:
            stopped = self._suppressed({n for _, _, r in pending if (n := r.number) is not None})
        except Exception:
            # The batch's first look stands; the next one is in a second (the error is logged).
            log.exception("could not look at the suppression list again")
            return pending
        keep = []
        for item in pending:
            if item[2].number in stopped or item[2].number in self._stopped:
                done.append(_Done(published=[self._suppressed_envelope(item[1], item[2], writes)]))
            else:
                keep.append(item)
        return keep

    def _stopped_jobs(self, job_ids: set[str]) -> set[str]:
        """Those of `job_ids` now paused or cancelled; none when the jobs cannot be read (the
        next look is in a second; the error is logged)."""
        try:
            return {
                job_id
                for job_id in job_ids
                if (job := self._jobs(job_id)) is not None and job.state in HELD
            }
        except Exception:
            log.exception("could not look at the jobs' state again")
            return set()

    def _slots(
        self, not_before: list[float], granted: Callable[[list[tuple[int, float]]], None]
    ) -> None:
        """Account slots for calls due at `not_before`, up to two ticks' worth: `granted` is
        told them as soon as they are booked."""
        if self._limiter is None:
            granted(list(enumerate(not_before)))
            return
        self._limiter.schedule(not_before, 2 * DISPATCH_TICK_SECONDS, granted)

    def _hold_until(self, due_at: float) -> None:
        # A sleep may end early; a metered call must not go before its slot.
        for _ in range(3):
            wait = due_at - self._clock()
            if wait <= 0:
                return
            self._sleep(min(wait, MAX_HOLD_SECONDS))


class _EarlyPublisher:
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

    def offer(self, done: list[_Done]) -> None:
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

    def finish(self, done: list[_Done]) -> None:
        """Wait for the publish in progress; its outcomes, if it failed, go back to `done`."""
        if self._running is not None:
            wait([self._running])
            self._collect(done)

    def _collect(self, done: list[_Done]) -> None:
        assert self._running is not None  # noqa: S101 - called only with a publish started
        failed, self._running = self._running.result(), None
        if failed:
            done.append(_Done(published=failed))

    def _publish(self, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The envelopes not published: all of them if this failed, else none."""
        try:
            self._writes.flush()
            self._publisher.publish(envelopes)
        except Exception:
            log.exception("publishing a batch's first outcomes failed; retried at its end")
            return envelopes
        return []


def _dispatch_order(item: tuple[float, float, QueuedRow]) -> tuple[float, float, str, int]:
    not_before, due, row = item
    return (not_before, due, row.job_id, row.row)


def _not_processed(result: TwilioResult) -> TwilioResult:
    """A request Twilio's records show never took effect: as safe to retry as a 429."""
    return replace(result, not_sent=True)


def _pause_shift(row: QueuedRow, job: Job | None) -> float:
    """How much later than planned the row is now due: the time its job spent paused."""
    if job is None or job.started_at is None or not row.job_start:
        return 0.0
    return max(0.0, job.started_at - row.job_start)
