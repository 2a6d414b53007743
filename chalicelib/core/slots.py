"""The account's schedule as a grid of slots shared out over several items (shards).

Slot `g` of the grid is at `g / ceiling` seconds after the epoch: any two distinct slots are at
least `1/ceiling` apart, a sliding second holds at most `ceil(ceiling)` of them and 100 ms at most
`ceil(ceiling / 10)`, whoever books them. Shard `k` of `n` owns the slots `g = k + n * m`; its
item keeps `tat`, the local index `m` of its next free slot (a decimal: see below). A sender books
a block of calls on one shard with one conditional write that moves `tat` on; distinct shards own
distinct slots, so the limits hold across shards by construction, and each shard item takes only
the writes of the senders that chose it. (One shard needs no grid, and has none: see `slot`.)

Below the ceiling (the adaptive rate cut by Twilio's push-back, or the rate a concurrency limit
allows) only the first k shards that serve the rate at one slot a call are booked, each moving
its `tat` on by `k * ceiling / (n * rate)` per call, and its calls take the slots
`ceil(start + j * step)`: a step of at least one keeps them on distinct slots, and the k shards
together serve `rate` calls a second (one shard up to SHARD_CPS: evenly spaced).

`n` is sized from the ceiling so each shard serves at most SHARD_CPS calls a second (one shard up
to that: one item, as a single schedule). chalicelib.sending.limiter keeps the shards in
DynamoDB; bench/scale_sim.py simulates them with the same arithmetic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

# Calls a second one shard item serves at most: its bookings are then well under DynamoDB's
# 1,000 writes a second per partition even when every call is a booking of its own, and a few
# shards hashed to one partition stay under it too (docs/decisions/sharded-schedule.md).
SHARD_CPS = 200.0
# How many shards a sender compares (those whose next free slot it has seen) before it books.
SHARD_CHOICES = 2
# A shard's `tat` seen longer ago than this (two dispatch ticks) says little of it now.
STALE_SECONDS = 0.2
_MICRO = Decimal("0.000001")


def shard_count(ceiling: float) -> int:
    """Shards for an account's ceiling: each serves at most SHARD_CPS calls a second."""
    return max(1, math.ceil(ceiling / SHARD_CPS - 1e-9))


@dataclass(frozen=True)
class Booking:
    """One booking on a shard: its calls' slots from local index `start`, `step` apart; the
    shard's `tat` is `end` after it."""

    shard: int
    start: Decimal
    step: Decimal
    count: int

    @property
    def end(self) -> Decimal:
        return self.start + self.count * self.step


@dataclass(frozen=True)
class Grid:
    """The slots `g / ceiling` (`ceiling` calls a second), shared out over `shards` items."""

    ceiling: float
    shards: int

    @classmethod
    def for_ceiling(cls, ceiling: float, shards: int | None = None) -> Grid:
        if ceiling <= 0:
            raise ValueError("the account's rate must be above 0")
        return cls(ceiling, shards or shard_count(ceiling))

    def _global(self, at: float) -> Decimal:
        return Decimal(at) * Decimal(self.ceiling)

    def first_index(self, shard: int, at: float) -> Decimal:
        """The local index of the shard's first slot at or after `at`."""
        if self.shards == 1:
            return self._global(at).quantize(_MICRO, rounding=ROUND_CEILING)
        g = int(self._global(at).to_integral_value(ROUND_CEILING))
        return Decimal(-((shard - g) // self.shards))

    def last_index(self, shard: int, at: float) -> Decimal:
        """The local index of the shard's last slot at or before `at`."""
        if self.shards == 1:
            return self._global(at).quantize(_MICRO, rounding=ROUND_FLOOR)
        g = int(self._global(at).to_integral_value(ROUND_FLOOR))
        return Decimal((g - shard) // self.shards)

    def slot(self, shard: int, index: Decimal) -> float:
        """The time of the shard's slot at local index `index`: rounded up to a whole one, on
        the grid, when there are several shards; one shard needs no grid (its bookings alone
        keep its calls apart), so its slots are at exactly `index / ceiling`, as a single
        schedule's times."""
        m = index if self.shards == 1 else index.to_integral_value(ROUND_CEILING)
        return float((shard + self.shards * m) / Decimal(self.ceiling))

    def in_use(self, rate: float) -> int:
        """Shards booked at `rate`: the first k that together serve it at one slot a call (all of
        them at the ceiling). Below it, fewer shards each keep their calls evenly apart: the
        rate a concurrency limit allows is then one shard's pace, not k independent phases."""
        needed = math.ceil(rate * self.shards / self.ceiling - 1e-9)
        return min(self.shards, max(1, needed))

    def step(self, rate: float) -> Decimal:
        """Local indexes a call takes at `rate` on each shard in use: `k * ceiling / (shards *
        rate)`, at least one, rounded up to a millionth (so a booking's calls never get closer
        than the ceiling's spacing, and the k shards together serve no more than `rate`)."""
        k = self.in_use(rate)
        ratio = Decimal(k) * Decimal(self.ceiling) / (self.shards * Decimal(max(rate, 1e-9)))
        return max(Decimal(1), ratio.quantize(_MICRO, rounding=ROUND_CEILING))

    def block(self, wanted: int, horizon: float, rate: float) -> int:
        """How many calls one booking takes: those wanted, at most what one shard in use serves
        within `horizon` at `rate` (at one shard, `horizon * rate`), at least one."""
        return min(wanted, max(1, math.ceil(horizon * rate / self.in_use(rate) - 1e-9)))

    def slots(self, booking: Booking) -> list[float]:
        return [
            self.slot(booking.shard, booking.start + j * booking.step) for j in range(booking.count)
        ]

    def next_free(self, shard: int, tat: Decimal | None) -> float:
        """When the shard's next free slot is, from its `tat` (None: never booked)."""
        return float("-inf") if tat is None else self.slot(shard, tat)

    def guess_busy(self, tat: Decimal | None, first: Decimal, age: float) -> bool:
        """Whether a booking should guess the shard busy (`tat` at or after `first`: move it on)
        rather than idle (start it at `first`), from its `tat` as seen `age` seconds ago (None:
        absent then; never seen: an infinite age). A wrong guess costs a second write. One
        shard: as seen. Several: a `tat` not seen within STALE_SECONDS (most are not: senders
        spread over the shards) is guessed busy, as shards are under load, the only time there
        are several."""
        if tat is not None and tat >= first:
            return True
        return self.shards > 1 and age > STALE_SECONDS

    def pick(
        self, known: Mapping[int, Decimal], rng: random.Random, rate: float | None = None
    ) -> int:
        """The shard to book on, among those in use at `rate` (None: the ceiling): of
        SHARD_CHOICES drawn at random, the one whose next free slot (as last seen; unseen: free
        now) is soonest, so bookings spread over the shards and fill the soonest slots first."""
        k = self.in_use(self.ceiling if rate is None else rate)
        if k == 1:
            return 0
        drawn = rng.sample(range(k), min(SHARD_CHOICES, k))
        return min(drawn, key=lambda s: self.next_free(s, known.get(s)))


def book(
    shard: int, tat: Decimal | None, first: Decimal, latest: Decimal, count: int, step: Decimal
) -> Booking | None:
    """What one booking does to a shard whose `tat` is as given: `count` calls from `tat`, or
    from local index `first` when `tat` is earlier (the shard was idle, or the sender's calls are
    not due before); None when `tat` is beyond local index `latest` (booked past the horizon).
    chalicelib.sending.limiter makes the same decision with conditional writes."""
    if tat is not None and tat > latest:
        return None
    start = first if tat is None or tat < first else tat
    return Booking(shard, start, step, count)
