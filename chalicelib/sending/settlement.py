"""Settling the rows whose earlier call started and never recorded an outcome, by what Twilio
holds (docs/decisions/settle-by-evidence.md), and the look-ups that ask it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from chalicelib.core.evidence import Evidence
from chalicelib.core.outcomes import backoff_seconds
from chalicelib.core.records import QueuedRow, TwilioResult
from chalicelib.sending.claims import Claim
from chalicelib.sending.ledger_writes import LedgerWrites
from chalicelib.sending.pacing import Pacer
from chalicelib.sending.parts import SenderParts, SenderSettings
from chalicelib.sending.recording import Done, Outcomes, not_processed
from chalicelib.twilio.gateway import LookupFailed, TwilioGateway

log = logging.getLogger(__name__)

# A look-up of a call in doubt: tries, with backoff (each request's read timeout is a setting,
# chalicelib.sending.parts).
LOOKUP_ATTEMPTS = 2
LOOKUP_BACKOFF_SECONDS = 1.0
# A call in doubt whose look-up Twilio did not answer is looked up again on later deliveries,
# this many times in all, before the row ends `unknown`.
MAX_DOUBTS = 3


class Settlement:
    def __init__(
        self, parts: SenderParts, settings: SenderSettings, outcomes: Outcomes, pacer: Pacer
    ) -> None:
        self._parts = parts
        self._settings = settings
        self._outcomes = outcomes
        self._pacer = pacer

    def settle_all(
        self,
        doubtful: Sequence[tuple[float, QueuedRow, Claim]],
        suppressed: set[str],
        gateway: TwilioGateway | None,
        writes: LedgerWrites,
        ends_at: float | None = None,
    ) -> tuple[list[Done], list[Exception]]:
        """Each row in doubt settled, up to `concurrency` at once: what became of the rows, and
        the errors of those whose settling raised (one row's failure must not lose the others'
        outcomes). `ends_at`: when the invocation ends; a look-up starts only with time for it
        and the batch's finish left."""

        def guarded(item: tuple[float, QueuedRow, Claim]) -> Done | Exception:
            at, row, claim = item
            try:
                return self.settle(
                    at, row, claim, row.number in suppressed, gateway, writes, ends_at
                )
            except Exception as error:  # noqa: BLE001 - returned, then raised by send_batch
                return error

        concurrency = self._settings.concurrency
        if concurrency > 1 and len(doubtful) > 1:
            with ThreadPoolExecutor(min(concurrency, len(doubtful))) as pool:
                settled = list(pool.map(guarded, doubtful))
        else:
            settled = [guarded(item) for item in doubtful]
        done = [s for s in settled if not isinstance(s, Exception)]
        return done, [s for s in settled if isinstance(s, Exception)]

    def settle(
        self,
        at: float,
        row: QueuedRow,
        claim: Claim,
        suppressed: bool,
        gateway: TwilioGateway | None,
        writes: LedgerWrites,
        ends_at: float | None = None,
    ) -> Done:
        """A row an earlier delivery started to call and never recorded: evidence decides. A
        status callback bound to the row, or the resource in Twilio's lists: sent. Twilio has
        no such resource, and the look-up can tell: the call never took effect, and the row
        goes on as an attempt Twilio did not process (the next attempt, or, to a number
        suppressed since, `suppressed`). Twilio could not be asked: looked up again on a later
        delivery, MAX_DOUBTS times in all. No evidence either way: `unknown`, never called."""
        done = Done()
        assert gateway is not None  # noqa: S101 - made by send_batch when any row is in doubt
        now = self._parts.clock()
        if claim.callback_sid is not None:
            evidence = Evidence(
                "found", {"sid": claim.callback_sid, "resolved_by": "status callback"}
            )
        elif not self._time_for_look_up(ends_at):
            # Too late in the invocation to ask Twilio: the claim stays (this delivery's), and
            # the row comes back once another may take it over; not a doubt counted against it.
            done.later.append((row, self._parts.ledger.in_doubt_after + 1.0))
            return done
        else:
            evidence = self.look_up(gateway, row, claim.claimed_at, LOOKUP_ATTEMPTS, ends_at)
        if evidence.verdict == "found":
            result = TwilioResult(201, evidence.resource, {}, now, self._parts.clock())
        elif evidence.verdict == "absent":
            if suppressed or self._outcomes.stopped(row.number):
                done.published.append(self._outcomes.suppressed(at, row, writes))
                return done
            why = f"the call started but never completed; {evidence.reason}"
            result = not_processed(self._outcomes.no_call(why))
        elif evidence.failed and row.doubts + 1 < MAX_DOUBTS:
            # Twilio did not answer the look-up: the claim stays, and a later delivery asks
            # again once the in-doubt time has passed.
            done.later.append(
                (replace(row, doubts=row.doubts + 1), self._parts.ledger.in_doubt_after + 1.0)
            )
            return done
        else:
            why = f"the call started but never completed; {evidence.reason}"
            result = self._outcomes.no_call(why)
        self._outcomes.record(row, result, at, done, writes)
        return done

    def _time_for_look_up(self, ends_at: float | None) -> bool:
        """Whether a look-up (its read timeout) and then the batch's finish fit before the
        invocation ends."""
        if ends_at is None:
            return True
        needed = self._settings.lookup_timeout + self._settings.finish_seconds
        return ends_at - self._parts.clock() >= needed

    def look_up(
        self,
        gateway: TwilioGateway,
        row: QueuedRow,
        since: float,
        attempts: int,
        ends_at: float | None = None,
    ) -> Evidence:
        """What Twilio holds of the row's call made at `since`: each request metered on the
        account's schedule like a call, retried with backoff when Twilio cannot answer (while
        the invocation has time for it)."""
        reason = ""
        for attempt in range(1, attempts + 1):
            if attempt > 1 and not self._time_for_look_up(ends_at):
                break
            if attempt > 1:
                self._parts.sleep(
                    backoff_seconds(attempt - 1, base=LOOKUP_BACKOFF_SECONDS, rng=self._parts.rng)
                )
            try:
                return gateway.look_up(
                    row.request,
                    since,
                    hold=self._pacer.lookup_hold(),
                    timeout=self._settings.lookup_timeout,
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
