"""The sender: makes each queued row's Twilio call and publishes what came back.

Rows become visible on the queue in the whole second before they are due (SQS delays are whole
seconds); the sender holds each one until its exact time. A response that says Twilio did not
process the request (429, 5xx) goes back on the queue with backoff until the attempts run out,
then to the dead-letter queue; the original message is then done with, so the design does not
depend on partial batch responses being switched on for the trigger.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.outcomes import backoff_seconds, classify
from chalicelib.publisher import ResponsePublisher
from chalicelib.queue import SendQueue
from chalicelib.records import Outcome, QueuedRow, ResponseEnvelope, TwilioResult
from chalicelib.twilio_gateway import TwilioGateway

log = logging.getLogger(__name__)

# A row can arrive up to a second early (delays are rounded down) and a little more when the
# queue is busy; never hold an invocation much longer than that.
MAX_HOLD_SECONDS = 2.0


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
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        # The gateway is a factory so credentials are read on first use, not at import.
        self._gateway = gateway
        self._queue = queue
        self._publisher = publisher
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    def send_batch(self, rows: Iterable[QueuedRow]) -> list[ResponseEnvelope]:
        gateway = self._gateway()
        envelopes: list[ResponseEnvelope] = []
        retries: list[tuple[QueuedRow, float]] = []
        dead: list[tuple[QueuedRow, dict[str, Any]]] = []
        # Rows of one batch may arrive in any order; hold and call them in the order they are due.
        for row in sorted(rows, key=lambda r: r.due_at):
            self._hold_until(row.due_at)
            result = gateway.call(row.request)
            outcome = self._outcome(row, result, retries, dead)
            envelopes.append(
                ResponseEnvelope(
                    job_id=row.job_id,
                    row=row.row,
                    api=row.api,
                    attempt=row.attempt,
                    outcome=outcome,
                    request=row.params,
                    result=result,
                    due_at=row.due_at,
                )
            )
        if retries:
            self._queue.retry_later(retries)
        if dead:
            self._queue.dead_letter(dead)
        self._publisher.publish(envelopes)
        return envelopes

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
        retries.append((row.retry(self._clock() + delay), delay))
        return "retrying"

    def _hold_until(self, due_at: float) -> None:
        wait = due_at - self._clock()
        if wait > 0:
            self._sleep(min(wait, MAX_HOLD_SECONDS))
