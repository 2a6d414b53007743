"""One claimed row's Twilio call, made at its account slot, and what its answer means: an answer
that may have taken effect without saying so is settled by what Twilio holds, or waits for a
later delivery to settle it; every other answer is the row's outcome.
"""

from __future__ import annotations

import logging

from chalicelib.core.evidence import Evidence
from chalicelib.core.outcomes import classify, may_have_taken_effect
from chalicelib.core.records import QueuedRow, TwilioResult
from chalicelib.sending.ledger_writes import LedgerWrites
from chalicelib.sending.pacing import Pacer
from chalicelib.sending.parts import SenderParts
from chalicelib.sending.recording import Done, Outcomes, not_processed
from chalicelib.sending.settlement import Settlement
from chalicelib.twilio.gateway import NumberSuppressed, SlotMissed, TwilioGateway

log = logging.getLogger(__name__)

# Before looking up a call whose response was lost: time for Twilio's list to show it.
RESOLVE_DELAY_SECONDS = 1.0


class Caller:
    def __init__(
        self, parts: SenderParts, outcomes: Outcomes, pacer: Pacer, settlement: Settlement
    ) -> None:
        self._parts = parts
        self._outcomes = outcomes
        self._pacer = pacer
        self._settlement = settlement

    def call(
        self,
        slot: float,
        at: float,
        row: QueuedRow,
        gateway: TwilioGateway | None,
        writes: LedgerWrites,
        claimed_at: float,
        read_by: float = float("inf"),
    ) -> Done:
        """One claimed row: called at its slot, its outcome recorded. `read_by`: the latest the
        call may start on its number's suppression read (chalicelib.sending.dispatcher); a
        call held up past it takes another slot, for which the number is read again."""
        done = Done()
        assert gateway is not None  # noqa: S101 - made by send_batch when any row is due

        def hold() -> None:
            # Run by the gateway once the SDK has built the request, just before it is sent.
            self._pacer.hold_until(slot)
            now = self._parts.clock()
            if now - slot > self._pacer.tolerance() or now > read_by or self._pacer.quiet(slot):
                raise SlotMissed
            if self._outcomes.stopped(row.number):
                raise NumberSuppressed

        try:
            result = gateway.call(
                row.request, hold=hold, written=lambda at: self._pacer.wrote(slot, at)
            )
        except SlotMissed:
            # This thread ran too late for the slot (a late call would bunch with the calls in
            # the slots after it), or a call of this process was written too late a moment ago
            # (Pacer.wrote): nothing was sent, and the dispatcher takes another slot.
            done.missed = True
            return done
        except NumberSuppressed:
            # A response this container received since the row was checked stopped its number.
            done.published.append(self._outcomes.suppressed(at, row, writes))
            return done
        if may_have_taken_effect(row.api, result):
            found = self._resolve(gateway, row, result, claimed_at)
            if found is None:
                wait = claimed_at + self._parts.ledger.in_doubt_after - self._parts.clock()
                done.later.append((row, max(1.0, wait + 1.0)))
                return done
            result = found
        elif classify(result) == "unknown":
            # A Lookup has no effect to find: asking again is safe.
            result = not_processed(result)
        self._outcomes.record(row, result, at, done, writes)
        try:
            self._pacer.feedback(result)
        except Exception:
            # Slowing the account is advice to the other senders; this row's outcome is
            # recorded either way, and the next 429 tries again.
            log.exception("could not slow the account's rate after Twilio pushed back")
        return done

    def _resolve(
        self, gateway: TwilioGateway, row: QueuedRow, result: TwilioResult, claimed_at: float
    ) -> TwilioResult | None:
        """No answer, or an answer that does not say whether it took effect (a 5xx): what
        Twilio holds decides, and only what it holds. Found: sent. Otherwise (None) the claim
        stays and the row waits out the in-doubt time, when the call can no longer be in
        flight; a later delivery settles it (chalicelib.sending.settlement)."""
        evidence = Evidence("unknown", reason="no time left to look it up")
        if self._parts.clock() < claimed_at + self._parts.ledger.call_deadline:
            self._parts.sleep(RESOLVE_DELAY_SECONDS)
            evidence = self._settlement.look_up(gateway, row, result.started_at, 1)
        if evidence.verdict != "found":
            return None
        return TwilioResult(201, evidence.resource, {}, result.started_at, self._parts.clock())
