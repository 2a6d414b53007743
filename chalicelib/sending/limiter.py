"""The account's send rate, shared by every job and every sender, kept in DynamoDB.

The arithmetic is chalicelib.core.metering's; this module keeps its state in the rate-limit table
with conditional writes, so any number of concurrent senders (and jobs) together stay within
the account's calls per second:

- `account#next#<ceiling>#<n>#<k>`: shard k of the account's grid of slots (chalicelib.core.slots):
  its next free slot (`tat`, a local index). A sender books a block of calls on one shard with one
  conditional UpdateItem that moves it on; never a slot already past. One shard up to
  SHARD_CPS calls a second; more shards keep every item's writes a second in the hundreds.
- `account#aimd`: the adaptive rate (last cut and when), and beside it the rate the account's
  concurrency limit allows (chalicelib.core.concurrency_rate: `conc_rate`, written at `conc_at`,
  at most once a second for the account). Read at most once a second a container.
- `sender#<From>`: the sender's virtual schedule (its next free time), moved on per message by
  its segments over its messages-per-second.

Items expire (TTL) a few minutes after their time has passed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.core.concurrency_rate import (
    SHARE_INTERVAL,
    Capacity,
    Reading,
    SharedRate,
    rate_in_force,
    should_share,
)
from chalicelib.core.metering import Aimd, Reservation, gcra_starts
from chalicelib.core.slots import Booking, Grid

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

# A slot handed out must still be ahead when the sender gets to it: this much beyond twice the
# time DynamoDB takes to hand it out.
LEAD_SECONDS = 0.005
LATENCY_WEIGHT = 0.2
# At most this much of the lead for DynamoDB's time: one slow answer makes a sender book ahead
# at once, and the account's time it skips is lost to every sender (one dispatch tick).
MAX_LATENCY_LEAD = 0.1
EXPIRE_AFTER_SECONDS = 300
ACCOUNT_KEY = "account#next"
AIMD_KEY = "account#aimd"


def _shared_in(item: dict[str, Any]) -> SharedRate | None:
    """The concurrency estimate kept on the adaptive rate's item, if one was written."""
    if "conc_rate" not in item or "conc_at" not in item:
        return None
    return SharedRate(float(item["conc_rate"]["N"]), float(item["conc_at"]["N"]))


def _n(value: float | int) -> dict[str, str]:
    # Microsecond precision: DynamoDB numbers are decimal, and repr(float) can be long.
    return {"N": str(Decimal(value).quantize(Decimal("0.000001")))}


class RateLimiter:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        rate: float,
        increase: float = 0.05,
        decrease: float = 0.7,
        cooldown: float = 1.0,
        state_ttl: float = 1.0,
        clock: Callable[[], float] = time.time,
        shards: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`rate`: the account's calls per second (the ceiling). After a cut the rate grows back
        by `increase` of it per second; a cut multiplies by `decrease`, at most once per
        `cooldown` seconds however many senders see the same congestion. `shards`: the
        schedule's items (None: sized from the rate); `rng` chooses among them."""
        self._db = dynamodb
        self._table = table
        self.ceiling = rate
        self._increase = increase
        self._decrease = decrease
        self._cooldown = cooldown
        self._state_ttl = state_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self.grid = Grid.for_ceiling(rate, shards)
        self._rng = rng or random.Random()
        # Each shard's next free slot (its `tat`) when last seen.
        self._tats: dict[int, Decimal] = {}
        self._seen_at: dict[int, float] = {}
        self._aimd = Aimd(rate)
        self._aimd_read_at = float("-inf")
        # This container's answers, and the account's shared estimate of what its concurrency
        # limit allows (read with the adaptive rate).
        self._capacity = Capacity()
        self._shared: SharedRate | None = None
        # How long booking takes (up at once, down slowly): slots are booked that far ahead.
        self._latency = 0.0

    # -- the account's slots ---------------------------------------------------------------

    def schedule(
        self,
        due: Sequence[float],
        horizon: float,
        granted: Callable[[list[tuple[int, float]]], None] | None = None,
    ) -> list[float | None]:
        """A slot time for each call due at `due[i]`, in the order they are due; None for calls
        without one this time (the sender asks again at its next tick).

        One conditional write books a block of calls on one shard of the account's grid
        (chalicelib.core.slots): up to what the shard serves in `horizon` at the rate, from its
        next free slot, or from the first call's due time if that is later (nor earlier than the
        first slot this sender can still use: now, plus twice the time DynamoDB takes to answer,
        at most MAX_LATENCY_LEAD); none when the shard is booked beyond `horizon` after that. A
        call may go before it is due by as much as the calls before it in `due` are spread (the
        sender asks for the calls due within its next tick). `granted`, if given, is told the
        slots, `(i, slot)`, as soon as they are booked.

        A booking that starts later than the shard's next free slot leaves the slots between
        unused, for good: its sender's rows were not due before, or its answers come slower than
        the other senders' (their slots would be past for it). The cap on the lead bounds what
        one slow answer can cost the account."""
        times: list[float | None] = [None] * len(due)
        if not due:
            return times
        rate = self.rate()  # may read DynamoDB: before the clock is read for the booking
        now = self._clock()
        # Slots are booked far enough ahead that the answer arrives before the first of them.
        earliest = now + LEAD_SECONDS + min(2 * self._latency, MAX_LATENCY_LEAD)
        order = sorted(range(len(due)), key=lambda i: due[i])
        count = self.grid.block(len(order), horizon, rate)
        not_before = max(earliest, due[order[0]])
        asked = self._clock()
        booking = self._book(count, rate, not_before, earliest + horizon)
        took = self._clock() - asked
        with self._lock:
            # Up at once, down slowly: a slot booked for a time already past is lost.
            self._latency = max(took, self._latency + LATENCY_WEIGHT * (took - self._latency))
        if booking is None:
            return times
        taken = list(zip(order[:count], self.grid.slots(booking), strict=True))
        for i, slot in taken:
            times[i] = slot
        if granted is not None:
            granted(taken)
        return times

    def _book(self, count: int, rate: float, not_before: float, latest: float) -> Booking | None:
        """Book `count` calls on a shard (chalicelib.core.slots.book): its `tat` moved on by
        `count` steps at `rate`, from `tat`, or from `not_before`'s slot when `tat` is earlier
        (the shard was idle meanwhile, or this sender's rows are not due before). None when
        `tat` is beyond `latest`, or (only if the item vanished meanwhile, by TTL) after three
        tries.

        One request in the usual case: whether `tat` is ahead of `not_before` is guessed from
        its last value seen (each answer, booked or refused, carries it), and the other form of
        the write is tried only when the guess was wrong. `tat` only grows, so a second try
        books or finds the shard booked beyond `latest`."""
        grid = self.grid
        with self._lock:
            shard = grid.pick(self._tats, self._rng, rate)
        key = self._shard_key(shard)
        step = grid.step(rate)
        span = count * step
        first = grid.first_index(shard, not_before)
        last = grid.last_index(shard, latest)
        exp = _n(int(latest) + EXPIRE_AFTER_SECONDS)
        for _ in range(3):
            # A refused try took a round trip: the slots start no sooner than now plus the lead.
            first = max(first, grid.first_index(shard, self._clock() + LEAD_SECONDS))
            tat = self._tats.get(shard)
            if tat is not None and tat > last:
                return None  # booked beyond the horizon
            age = self._clock() - self._seen_at.get(shard, float("-inf"))
            if grid.guess_busy(tat, first, age):
                landed, item = self._update_if(
                    key,
                    "SET tat = tat + :d, expires_at = :exp",
                    "tat >= :nb AND tat <= :latest",
                    {":d": {"N": str(span)}, ":nb": {"N": str(first)}, ":latest": {"N": str(last)}},
                    exp,
                )
                self._seen(shard, item)
                if landed:
                    return Booking(shard, self._tats[shard] - span, step, count)
                continue
            booking = Booking(shard, first, step, count)
            landed, item = self._update_if(
                key,
                "SET tat = :end, expires_at = :exp",
                "attribute_not_exists(tat) OR tat < :nb",
                {":end": {"N": str(booking.end)}, ":nb": {"N": str(first)}},
                exp,
            )
            self._seen(shard, {"tat": {"N": str(booking.end)}} if landed else item)
            if landed:
                return booking
        return None  # the item vanished between tries: this sender asks again next tick

    def _seen(self, shard: int, item: dict[str, Any]) -> None:
        """The shard's `tat` as a write's answer has it (none: the item is gone)."""
        self._seen_at[shard] = self._clock()
        if "tat" in item:
            self._tats[shard] = Decimal(item["tat"]["N"])
        else:
            self._tats.pop(shard, None)

    def _shard_key(self, shard: int) -> str:
        # The grid (rate and shard count) is in the key: a local index means a time only on the
        # grid it was booked on.
        return f"{ACCOUNT_KEY}#{self.grid.ceiling!r}#{self.grid.shards}#{shard}"

    # -- the adaptive rate -----------------------------------------------------------------

    def rate(self, now: float | None = None) -> float:
        """The account's rate now, as the last cut left it and time has grown it back, never
        above what its concurrency limit allows (when known)."""
        now = self._clock() if now is None else now
        with self._lock:
            if now - self._aimd_read_at >= self._state_ttl:
                self._aimd, self._shared = self._read_state()
                self._aimd_read_at = now
            aimd, shared = self._aimd, self._shared
        return rate_in_force(aimd.effective(now, self.ceiling, self._increase), shared, now)

    def congested(self) -> bool:
        """Twilio pushed back (429, or concurrency near the limit): cut the rate in force,
        unless another sender cut it within the cool-down. True if this call cut it."""
        now = self._clock()
        with self._lock:
            current, shared = self._aimd, self._shared
        ceiling = rate_in_force(self.ceiling, shared, now)
        cut = current.cut(now, ceiling, self._increase, self._decrease, floor=1.0)
        landed, _ = self._update_if(
            AIMD_KEY,
            "SET rate = :r, cut_at = :t",
            "attribute_not_exists(cut_at) OR cut_at < :since",
            {":r": _n(cut.rate), ":t": _n(now), ":since": _n(now - self._cooldown)},
        )
        if not landed:
            with self._lock:
                self._aimd, self._shared = self._read_state()
                self._aimd_read_at = now
            return False
        with self._lock:
            self._aimd, self._aimd_read_at = cut, now
        log.info("rate cut to %.1f calls/s after Twilio pushed back", cut.rate)
        return True

    def _read_state(self) -> tuple[Aimd, SharedRate | None]:
        item = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": AIMD_KEY}}, ConsistentRead=True
        ).get("Item")
        return self._aimd_in(item or {}), _shared_in(item or {})

    def _aimd_in(self, item: dict[str, Any]) -> Aimd:
        if "cut_at" not in item:
            return Aimd(self.ceiling)
        return Aimd(float(item["rate"]["N"]), float(item["cut_at"]["N"]))

    # -- the rate the account's concurrency limit allows -----------------------------------

    def observe(self, reading: Reading, limit: int | None) -> None:
        """An answer's concurrency and duration (`limit`: the configured concurrency limit, or
        None to learn it): when this container's estimate of the rate the limit allows is new,
        it is written for every sender, at most once a second for the account."""
        now = self._clock()
        with self._lock:
            self._capacity = self._capacity.observe(reading, now)
            local = self._capacity.rate(limit, now)
            if local is None or not should_share(local, self._shared, now):
                return
            # Until the write's answer, the other threads take this one as shared.
            self._shared = SharedRate(local, now)
        landed, item = self._update_if(
            AIMD_KEY,
            "SET conc_rate = :r, conc_at = :t",
            "attribute_not_exists(conc_at) OR conc_at <= :since",
            {":r": _n(local), ":t": _n(now), ":since": _n(now - SHARE_INTERVAL)},
        )
        if not landed:
            # Another sender shared its estimate within the second: that one stands.
            with self._lock:
                self._shared = _shared_in(item)
            return
        log.info("rate the concurrency limit allows: %.1f calls/s", local)

    def concurrency_rate(self) -> float | None:
        """The shared estimate of what the concurrency limit allows, if one is in force."""
        now = self._clock()
        with self._lock:
            shared = self._shared
        return shared.rate if shared is not None and shared.in_force(now) else None

    # -- senders' own limits ---------------------------------------------------------------

    def reserve_sender(
        self, sender: str, costs: Sequence[float], mps: float, not_before: float, horizon: float
    ) -> Reservation:
        """Start times for messages from `sender` costing `costs` segments, on its own schedule;
        none taken when its next free time is beyond now + `horizon`."""
        now = self._clock()
        key = f"sender#{sender}"
        duration = sum(costs) / mps
        expires = _n(int(max(now, not_before) + duration) + EXPIRE_AFTER_SECONDS)
        for _ in range(3):
            idle, _ = self._update_if(
                key,
                "SET tat = :end, expires_at = :exp",
                "attribute_not_exists(tat) OR tat <= :nb",
                {":end": _n(not_before + duration), ":nb": _n(not_before)},
                expires,
            )
            if idle:
                return Reservation(tuple(gcra_starts(not_before, not_before, list(costs), mps)), 0)
            booked, item = self._update_if(
                key,
                "SET tat = tat + :d, expires_at = :exp",
                "tat > :nb AND tat <= :latest",
                {":d": _n(duration), ":nb": _n(not_before), ":latest": _n(now + horizon)},
                expires,
            )
            if booked:
                start = float(item["tat"]["N"]) - duration
                return Reservation(tuple(gcra_starts(start, start, list(costs), mps)), 0)
            tat = self._sender_tat(key)
            if tat is not None and tat > not_before:
                return Reservation(None, tat)
            # Its schedule fell behind `not_before` in between: start afresh.
        raise RuntimeError(f"could not reserve {sender}'s schedule")  # pragma: no cover

    def _sender_tat(self, key: str) -> float | None:
        item = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item")
        return float(item["tat"]["N"]) if item and "tat" in item else None

    # -- the table's conditional writes ------------------------------------------------------

    def _update_if(
        self,
        key: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        expires: dict[str, str] | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """One conditional UpdateItem of the item `key` (its expiry set too, when given):
        whether it landed, and the item's attributes: those it updated when it landed, the item
        as it was when refused (empty if there was none)."""
        if expires is not None:
            values = {**values, ":exp": expires}
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._db.exceptions.ConditionalCheckFailedException as error:
            # ALL_OLD puts the item in the error's answer, which botocore's types do not name.
            old: dict[str, Any] = getattr(error, "response", {}).get("Item") or {}
            return False, old
        return True, response.get("Attributes") or {}
