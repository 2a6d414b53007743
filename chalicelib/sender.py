"""The sender: makes each queued row's Twilio call and publishes what came back.

Rows become visible on the queue in the whole second before they are due (SQS delays are whole
seconds); the sender holds each one until its exact time. Each call is first claimed in the call
ledger (chalicelib.idempotency), so a row delivered again is never called twice. A row to a
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.idempotency import CallLedger
from chalicelib.jobs import Job
from chalicelib.outcomes import backoff_seconds, classify
from chalicelib.publisher import ResponsePublisher
from chalicelib.queue import SendQueue
from chalicelib.records import Outcome, QueuedRow, ResponseEnvelope, TwilioResult
from chalicelib.twilio_gateway import TwilioGateway

log = logging.getLogger(__name__)

# A row can arrive up to a second early (delays are rounded down) and a little more when the
# queue is busy; a row due later than this goes back on the queue instead of holding the batch.
MAX_HOLD_SECONDS = 2.0
# How often a paused job's queued rows look again at whether it was resumed.
PAUSED_RECHECK_SECONDS = 30.0
# Before looking up a message whose response was lost.
RESOLVE_DELAY_SECONDS = 1.0


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
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        # The gateway is a factory so credentials are read on first use, not at import.
        self._gateway = gateway
        self._queue = queue
        self._publisher = publisher
        self._policy = policy
        self._ledger = ledger
        self._jobs = jobs
        self._suppressed = suppressed
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    def send_batch(self, rows: Iterable[QueuedRow]) -> list[dict[str, Any]]:
        """Returns the envelopes published, as JSON."""
        batch = list(rows)
        jobs = {job_id: self._jobs(job_id) for job_id in {r.job_id for r in batch}}
        later: list[tuple[QueuedRow, float]] = []
        due: list[tuple[float, QueuedRow]] = []
        now = self._clock()
        for row in batch:
            job = jobs[row.job_id]
            if job is not None and job.state == "paused":
                later.append((row, PAUSED_RECHECK_SECONDS))
                continue
            shift = _pause_shift(row, job)
            at = row.due_at + shift
            if at - now > MAX_HOLD_SECONDS:
                later.append((row, at - now))
            else:
                # From here on the row's times are measured from the job's current start.
                due.append((at, replace(row, due_at=at, job_start=row.job_start + shift)))
        suppressed = self._suppressed({n for _, r in due if (n := r.number) is not None})
        published: list[dict[str, Any]] = []
        retries: list[tuple[QueuedRow, float]] = []
        dead: list[tuple[QueuedRow, dict[str, Any]]] = []
        gateway = self._gateway() if due else None
        # Rows of one batch may arrive in any order; hold and call them in the order they are due.
        for at, row in sorted(due, key=lambda item: item[0]):
            if row.number in suppressed:
                published.append(self._envelope(row, "suppressed", self._no_call(), at).to_json())
                continue
            claim = self._ledger.claim(row.job_id, row.row, row.attempt)
            if claim.verdict == "done":
                assert claim.envelope is not None  # noqa: S101 - stored with "done"
                published.append(claim.envelope)
                continue
            if claim.verdict == "wait":
                later.append((row, claim.wait_seconds + 1.0))
                continue
            if claim.verdict == "stale":
                continue  # a later attempt of this row is on the queue
            assert gateway is not None  # noqa: S101 - made above when any row is due
            if claim.verdict == "in_doubt":
                # An earlier delivery started this call and never recorded its outcome.
                found = self._resolve(gateway, row, "the call started but never completed")
                if found is not None:
                    outcome = self._outcome(row, found, retries, dead)
                    envelope = self._envelope(row, outcome, found, at).to_json()
                    self._ledger.completed(row.job_id, row.row, row.attempt, envelope)
                    published.append(envelope)
                    continue
                # Twilio has no such message: the call never took effect, so make it now.
            self._hold_until(at)
            result = gateway.call(row.request)
            if classify(result) == "unknown":
                # Sent, and no response: what Twilio holds decides, where it can be looked up.
                result = self._resolve(gateway, row, result.network_error) or _not_processed(result)
            outcome = self._outcome(row, result, retries, dead)
            envelope = self._envelope(row, outcome, result, at).to_json()
            if outcome == "retrying":
                self._ledger.retryable(row.job_id, row.row, row.attempt)
            else:
                self._ledger.completed(row.job_id, row.row, row.attempt, envelope)
            published.append(envelope)
        if later or retries:
            self._queue.retry_later([*later, *retries])
        if dead:
            self._queue.dead_letter(dead)
        self._publisher.publish(published)
        return published

    def _resolve(
        self, gateway: TwilioGateway, row: QueuedRow, why: str | None
    ) -> TwilioResult | None:
        """A call whose outcome is not known: for a message, Twilio's message list says whether
        it was created (then it was sent) or not (None: it was not processed). Other calls cannot
        be looked up; their outcome stays unknown."""
        now = self._clock()
        if row.api != "messages":
            return TwilioResult(None, None, {}, now, now, network_error=why)
        # Give a message that was being created when the connection dropped time to appear.
        self._sleep(RESOLVE_DELAY_SECONDS)
        message = gateway.find_message(row.params, since=row.due_at)
        if message is None:
            return None
        body = {**message, "resolved_by": "message list"}
        return TwilioResult(201, body, {}, now, self._clock())

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

    def _hold_until(self, due_at: float) -> None:
        wait = due_at - self._clock()
        if wait > 0:
            self._sleep(min(wait, MAX_HOLD_SECONDS))


def _not_processed(result: TwilioResult) -> TwilioResult:
    """A request Twilio's records show never took effect: as safe to retry as a 429."""
    return replace(result, not_sent=True)


def _pause_shift(row: QueuedRow, job: Job | None) -> float:
    """How much later than planned the row is now due: the time its job spent paused."""
    if job is None or job.started_at is None or not row.job_start:
        return 0.0
    return max(0.0, job.started_at - row.job_start)
