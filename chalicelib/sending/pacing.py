"""The sender's side of the account's rate: a batch's messages put on their senders' own
schedules, account slots taken a tick at a time, a call or look-up held until its slot, and
Twilio's push-back slowing every sender.

The shared state is chalicelib.sending.limiter's; without a limiter each row goes at its own time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from chalicelib.core.concurrency_rate import Reading
from chalicelib.core.records import QueuedRow, TwilioResult
from chalicelib.core.segments import message_cost
from chalicelib.core.spacing import WRITE_JITTER_SECONDS, allowed_lateness, quiet_until
from chalicelib.sending.parts import SenderParts, SenderSettings
from chalicelib.twilio.gateway import LookupFailed

# (not before, due, row): a row metered on its sender's schedule, still to take an account slot.
Metered = tuple[float, float, QueuedRow]

# A row is made visible two to three seconds before it is due (chalicelib.core.schedule; more with a
# longer batching window); a row due later than this (or than its lead and a second, where that
# is longer) goes back on the queue instead of holding the batch.
MAX_HOLD_SECONDS = 3.0
# SQS's delay ceiling.
MAX_DELAY_SECONDS = 900.0
# Account slots are taken this long before the calls' times (chalicelib.sending.dispatcher).
DISPATCH_TICK_SECONDS = 0.1
# How often a look-up waits for the account to have a slot for it (one tick each).
LOOKUP_SLOT_TRIES = 20
# Twilio's code for too many concurrent requests (with HTTP 429).
TOO_MANY_REQUESTS = 20429
# Until the rate the concurrency limit allows is known, a reading at this share of the limit
# slows the senders before Twilio has to refuse anything.
CONCURRENCY_HEADROOM = 0.8


class Pacer:
    def __init__(self, parts: SenderParts, settings: SenderSettings) -> None:
        self._limiter = parts.limiter
        self._clock = parts.clock
        self._sleep = parts.sleep
        self._senders = settings.senders
        self._settings = settings
        # After a call written later than its budget, this process's calls go no earlier than
        # this (chalicelib.core.spacing.quiet_until).
        self._quiet_until = 0.0
        self._lock = threading.Lock()

    def meter(
        self, rows: list[tuple[float, QueuedRow]], later: list[tuple[QueuedRow, float]]
    ) -> list[Metered]:
        """(not before, due, row) for the rows their sender can send within the hold horizon,
        on its own schedule when per-sender limits are on; the others go to `later`, to come
        back when their sender has room. The account's slots are taken later, just before each
        call (chalicelib.sending.dispatcher)."""
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

    def slots(
        self, not_before: list[float], granted: Callable[[list[tuple[int, float]]], None]
    ) -> None:
        """Account slots for calls due at `not_before`, up to two ticks' worth: `granted` is
        told them as soon as they are booked."""
        if self._limiter is None:
            granted(list(enumerate(not_before)))
            return
        # Slots before the quiet time would only be missed (quiet()), and wasted.
        quiet = self._quiet_until
        self._limiter.schedule(
            [max(t, quiet) for t in not_before], 2 * DISPATCH_TICK_SECONDS, granted
        )

    def lookup_hold(self) -> Callable[[], None]:
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
            self.hold_until(slot[0])

        return hold

    def hold_until(self, due_at: float) -> None:
        # A sleep may end early; a metered call must not go before its slot.
        for _ in range(3):
            wait = due_at - self._clock()
            if wait <= 0:
                return
            self._sleep(min(wait, MAX_HOLD_SECONDS))

    def tolerance(self) -> float:
        """How late a call may start for its slot: SLOT_TOLERANCE_SECONDS (within the rate
        headroom's budget, whatever the rate: one slot is a second at 1 CPS), and never more
        than one slot's spacing at the account's full rate, so a late call adds at most one to
        any window's calls (at 200 CPS, 100 ms hold at most 20 slots: 21 calls with one late)."""
        if self._limiter is None:
            return float("inf")
        return allowed_lateness(self._limiter.ceiling, self._settings.late_tolerance)

    def budget(self) -> float:
        """How late after its slot a call may reach Twilio: the account's slots are spaced for
        it (chalicelib.core.spacing.account_rate): the tolerance and the write's own jitter."""
        return self.tolerance() + WRITE_JITTER_SECONDS

    def wrote(self, slot: float, written_at: float) -> None:
        """A call for `slot` was written at `written_at`: later than the budget, it may reach
        Twilio in a 100 ms that its neighbours' slots already fill, so this process's next calls
        go later, not closer: none before a short window past the write."""
        until = quiet_until(slot, written_at, self.budget())
        if until is None:
            return
        with self._lock:
            self._quiet_until = max(self._quiet_until, until)

    def quiet(self, slot: float) -> bool:
        """Whether a call at `slot` must not go: it is before the quiet time of a late write."""
        return slot < self._quiet_until

    def feedback(self, result: TwilioResult) -> None:
        """Twilio's answers set the account's rate for every sender: the rate its concurrency
        limit allows (chalicelib.core.concurrency_rate), and a cut on a 429, or on a reading of its
        concurrent requests near the limit while that rate is not yet known."""
        if self._limiter is None:
            return
        # A 429 with another code (21611: this sender's queue is full) is about one sender,
        # not the account: its row backs off alone.
        throttled = result.error_code == TOO_MANY_REQUESTS or (
            result.status == 429 and result.error_code is None
        )
        reading = Reading.of(result.headers, throttled)
        limit = self._settings.concurrency_limit
        self._limiter.observe(reading, limit)
        if throttled:
            self._limiter.congested()
            return
        near = limit is not None and (reading.concurrent or 0) >= limit * CONCURRENCY_HEADROOM
        if near and self._limiter.concurrency_rate() is None:
            self._limiter.congested()
