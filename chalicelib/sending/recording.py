"""What a row's attempt came to: its outcome classified (a retry with backoff, the dead-letter
queue), recorded in the call ledger's buffer and published, and its number suppressed at once
when the response says it must never be called again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.outcomes import backoff_seconds, classify
from chalicelib.core.records import Outcome, QueuedRow, TwilioResult
from chalicelib.sending.claims import Claim
from chalicelib.sending.ledger_writes import LedgerWrites
from chalicelib.sending.parts import SenderParts, SenderSettings

log = logging.getLogger(__name__)


@dataclass
class Done:
    """What became of one row's call: what to publish, and what goes back on the queue."""

    published: list[dict[str, Any]] = field(default_factory=list)
    later: list[tuple[QueuedRow, float]] = field(default_factory=list)
    retries: list[tuple[QueuedRow, float]] = field(default_factory=list)
    dead: list[tuple[QueuedRow, dict[str, Any]]] = field(default_factory=list)
    # The call was not made: its slot had passed when its thread got to it.
    missed: bool = False


def republish_or_wait(
    claim: Claim,
    row: QueuedRow,
    published: list[dict[str, Any]],
    later: list[tuple[QueuedRow, float]],
) -> bool:
    """Whether the ledger's verdict leaves nothing for this delivery to do: "done" publishes the
    stored envelope again, "wait" puts the row back until the earlier call can no longer be in
    flight, and "stale" drops it (a later attempt of the row is on the queue)."""
    if claim.verdict == "done":
        assert claim.envelope is not None  # noqa: S101 - stored with "done"
        published.append(claim.envelope)
    elif claim.verdict == "wait":
        later.append((row, claim.wait_seconds + 1.0))
    return claim.verdict in ("done", "wait", "stale")


def without_let_go(
    envelopes: list[dict[str, Any]], let_go: set[tuple[str, int]]
) -> list[dict[str, Any]]:
    """The envelopes but the "retrying" ones of rows let go to the delivery that took their
    claims over: the taker publishes those rows' outcomes."""
    return [
        e
        for e in envelopes
        if e.get("outcome") != "retrying" or (e.get("job_id"), e.get("row")) not in let_go
    ]


def not_processed(result: TwilioResult) -> TwilioResult:
    """A request Twilio's records show never took effect: as safe to retry as a 429."""
    return replace(result, not_sent=True)


class Outcomes:
    def __init__(self, parts: SenderParts, settings: SenderSettings) -> None:
        self._parts = parts
        self._clock = parts.clock
        self._settings = settings
        # Numbers this container's own responses suppressed: checked right before every call,
        # so a repeat is never called once the response that stops it was received here.
        self._stopped: set[str] = set()

    def stopped(self, number: str | None) -> bool:
        """Whether a response this container received says never to call `number` again."""
        return number is not None and number in self._stopped

    def record(
        self, row: QueuedRow, result: TwilioResult, at: float, done: Done, writes: LedgerWrites
    ) -> None:
        """The attempt's outcome, in the ledger (buffered) and to publish; a number the
        response says must never be called again is suppressed at once, here and in the list."""
        outcome = self._outcome(row, result, done)
        # Either write records the row's result (the retry's at once, the outcome's flushed
        # before it is published); a retry refused is not published.
        envelope = _envelope(row, outcome, result, at, recorded=True).to_json()
        if outcome == "retrying":
            writes.retryable(row.job_id, row.row, row.attempt, envelope)
        else:
            writes.completed(row.job_id, row.row, row.attempt, envelope)
        done.published.append(envelope)
        number = self._parts.stops(envelope)
        if number is None:
            return
        self._stopped.add(number)
        try:
            self._parts.suppress(envelope)
        except Exception:
            # This container stops calling it either way, and the router suppresses it from
            # the published outcome a moment later.
            log.exception("could not add %s to the suppression list; the router will", number)

    def suppressed(self, at: float, row: QueuedRow, writes: LedgerWrites) -> dict[str, Any]:
        """A claimed row to a suppressed number ends `suppressed` without a call. (A row whose
        earlier delivery already called keeps that call's outcome: the ledger said "done".)"""
        envelope = _envelope(row, "suppressed", self.no_call(), at, recorded=True).to_json()
        writes.completed(row.job_id, row.row, row.attempt, envelope)
        return envelope

    def no_call(self, why: str | None = None) -> TwilioResult:
        now = self._clock()
        return TwilioResult(None, None, {}, now, now, network_error=why)

    def _outcome(self, row: QueuedRow, result: TwilioResult, done: Done) -> Outcome:
        verdict = classify(result)
        if verdict != "retry":
            return verdict
        if row.attempt >= self._settings.max_attempts:
            done.dead.append((row, {"status": result.status, "code": result.error_code}))
            return "dead_lettered"
        settings = self._settings
        delay = backoff_seconds(
            row.attempt, base=settings.backoff_base, cap=settings.backoff_cap, rng=self._parts.rng
        )
        done.retries.append((row.retry(self._clock() + delay, row.job_start), delay))
        return "retrying"


def _envelope(
    row: QueuedRow, outcome: Outcome, result: TwilioResult, due_at: float, *, recorded: bool
) -> ResponseEnvelope:
    return ResponseEnvelope(
        job_id=row.job_id,
        row=row.row,
        api=row.api,
        attempt=row.attempt,
        outcome=outcome,
        request=row.params,
        carried=row.carried,
        result=result,
        due_at=due_at,
        recorded=recorded,
    )
