"""The parts of the scale simulation (bench/scale_sim.py) that stand for DynamoDB and for the
limiter: a discrete-event loop of generator processes, the rate table with its per-partition
write limit and boto3's retries, and a sender's booking on the account's schedule.

The booking follows chalicelib.sending.limiter.RateLimiter.schedule step for step, with the same
arithmetic (chalicelib.core.slots) and constants; only the DynamoDB request is simulated.
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chalicelib.core.slots import Booking, Grid, book
from chalicelib.sending.limiter import (
    LATENCY_WEIGHT,
    LEAD_SECONDS,
    MAX_LATENCY_LEAD,
)

# A process yields how long it waits; the loop resumes it then.
Process = Generator[float, None, Any]
# DynamoDB's limit per partition, in write units a second (a booking is one unit).
PARTITION_WCU = 1000
# A fresh on-demand table's partitions (DynamoDB splits hot ones later; not modelled).
PARTITIONS = 4
# botocore's legacy retry mode for DynamoDB (Lambda's default): 10 attempts, 50 ms doubling.
MAX_ATTEMPTS = 10
RETRY_BASE = 0.05


class Sim:
    """Generator processes on one clock, in time order (ties in the order they were put)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Process]] = []
        self._seq = 0

    def spawn(self, process: Process, delay: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, process))

    def run(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            self.now, _, process = heapq.heappop(self._queue)
            try:
                wait = next(process)
            except StopIteration:
                continue
            self.spawn(process, max(0.0, wait))


@dataclass
class Table:
    """The rate table: items' `tat`, writes counted per item and tenth of a second, each
    partition limited to PARTITION_WCU writes in any sliding second (a throttled write costs
    nothing and is retried)."""

    sim: Sim
    rng: random.Random
    items: dict[str, Decimal] = field(default_factory=dict)
    writes: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    by_partition: dict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    throttled: int = 0
    failed: int = 0
    _recent: dict[int, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def latency(self) -> float:
        """A write's round trip: lognormal around 6 ms, and one in a hundred 20-100 ms slower."""
        base = self.rng.lognormvariate(-5.1, 0.35)
        return base + (self.rng.uniform(0.02, 0.1) if self.rng.random() < 0.01 else 0.0)

    def write(
        self, key: str, decide: Callable[[Decimal | None], Decimal | None]
    ) -> Generator[float, None, tuple[bool, Decimal | None] | None]:
        """One conditional UpdateItem: `decide(tat)` gives the new `tat`, or None if the
        condition fails. (landed, the item's `tat` after); None when every attempt was
        throttled (the sender's booking fails; its rows wait for a later tick)."""
        partition = zlib.crc32(key.encode()) % PARTITIONS
        for attempt in range(MAX_ATTEMPTS):
            trip = self.latency()
            yield trip / 2
            second = int(self.sim.now)
            recent = self._recent[partition]
            while recent and recent[0] <= self.sim.now - 1.0:
                recent.popleft()
            if len(recent) < PARTITION_WCU:
                recent.append(self.sim.now)
                used = self.by_partition[partition]
                used[second] = used.get(second, 0) + 1
                tenth = int(self.sim.now * 10)
                self.writes[key][tenth] = self.writes[key].get(tenth, 0) + 1
                current = self.items.get(key)
                new = decide(current)
                if new is not None:
                    self.items[key] = new
                yield trip / 2
                return (new is not None, new if new is not None else current)
            self.throttled += 1
            yield trip / 2 + RETRY_BASE * 2**attempt
        self.failed += 1
        return None


class Booker:
    """One sender instance's limiter: RateLimiter.schedule and _book on the simulated table."""

    def __init__(self, sim: Sim, table: Table, grid: Grid, rng: random.Random) -> None:
        self._sim, self._table, self.grid, self._rng = sim, table, grid, rng
        self._tats: dict[int, Decimal] = {}
        self._seen_at: dict[int, float] = {}
        self._latency = 0.0

    def schedule(self, due: list[float], horizon: float) -> Generator[float, None, list[float]]:
        """Slots for the earliest of `due` (sorted), as RateLimiter.schedule gives them."""
        rate = self.grid.ceiling  # the adaptive rate is not modelled: no push-back from Twilio
        now = self._sim.now
        earliest = now + LEAD_SECONDS + min(2 * self._latency, MAX_LATENCY_LEAD)
        count = self.grid.block(len(due), horizon, rate)
        booking = yield from self._book(count, rate, max(earliest, due[0]), earliest + horizon)
        took = self._sim.now - now
        self._latency = max(took, self._latency + LATENCY_WEIGHT * (took - self._latency))
        return [] if booking is None else self.grid.slots(booking)

    def _book(
        self, count: int, rate: float, not_before: float, latest: float
    ) -> Generator[float, None, Booking | None]:
        grid = self.grid
        shard = grid.pick(self._tats, self._rng, rate)
        key = f"account#next#{grid.ceiling!r}#{grid.shards}#{shard}"
        step = grid.step(rate)
        first = grid.first_index(shard, not_before)
        last = grid.last_index(shard, latest)
        for _ in range(3):
            first = max(first, grid.first_index(shard, self._sim.now + LEAD_SECONDS))
            tat = self._tats.get(shard)
            if book(shard, tat, first, last, count, step) is None:
                return None  # booked beyond the horizon
            age = self._sim.now - self._seen_at.get(shard, float("-inf"))
            busy = grid.guess_busy(tat, first, age)
            answer = yield from self._table.write(
                key, _decide(busy, shard, first, last, count, step)
            )
            if answer is None:
                return None
            landed, seen = answer
            self._seen_at[shard] = self._sim.now
            if seen is None:
                self._tats.pop(shard, None)
            else:
                self._tats[shard] = seen
            if landed and seen is not None:
                return Booking(shard, seen - count * step, step, count)
        return None


def _decide(
    busy: bool, shard: int, first: Decimal, last: Decimal, count: int, step: Decimal
) -> Callable[[Decimal | None], Decimal | None]:
    """RateLimiter._book's two conditional writes as DynamoDB evaluates them: the new `tat`
    (chalicelib.core.slots.book's), or None when the condition fails."""

    def extend(tat: Decimal | None) -> Decimal | None:  # "tat >= :nb AND tat <= :latest"
        if tat is None or tat < first:
            return None
        booking = book(shard, tat, first, last, count, step)
        return None if booking is None else booking.end

    def restart(tat: Decimal | None) -> Decimal | None:  # "not exists OR tat < :nb"
        if tat is not None and tat >= first:
            return None
        booking = book(shard, None, first, last, count, step)
        return None if booking is None else booking.end

    return extend if busy else restart
