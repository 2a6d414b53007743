"""Benchmark: the account's schedule at 500, 1,000 and 2,000 CPS on AWS, by simulation.

A discrete-event model (bench/scale_model.py) of the send path as deployed: rows made visible on
the send queue a whole second at a time, 2 to 3 s before they are due (SQS's DelaySeconds in
whole seconds); Lambda's SQS pollers receiving up to 10 messages at a time, in no order, into
batches of up to 100 closed by the 1-s batching window; sender instances up to the trigger's
maximum concurrency (chalicelib.core.capacity), warm ones reused, new ones after a cold start;
each instance booking the rows due in its next 100-ms tick on the account's schedule with the
limiter's own arithmetic and constants, against a rate table whose partitions take 1,000 writes
a second (throttled writes retried as botocore does); a call going at its slot (a few hundred
microseconds late at most, as the sender's tolerance allows, and reaching Twilio within the
lateness budget the slots are spaced for: chalicelib.core.spacing) and taking Twilio's time.

Each rate runs twice: with the account's schedule on one item (today's design: one shard), and
sharded (chalicelib.core.slots). Writes bench/scale_sim.json: the limits held (the most calls in
any second and any 100 ms, the closest two slots), achieved / target, the hottest item's writes a
second (max and p99 over the seconds), throttled writes, slots lost. Deterministic given
SCALE_SEED. Not part of `make test`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import platform
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from callqueue.project import make_importable

make_importable()

from scale_model import PARTITION_WCU, PARTITIONS, Booker, Process, Sim, Table  # noqa: E402

from chalicelib.config import DEFAULT_RATE_HEADROOM, DEFAULT_SLOT_TOLERANCE_SECONDS  # noqa: E402
from chalicelib.core.capacity import sender_concurrency  # noqa: E402
from chalicelib.core.slots import Grid  # noqa: E402
from chalicelib.core.spacing import (  # noqa: E402
    WRITE_JITTER_SECONDS,
    account_rate,
    allowed_lateness,
)
from chalicelib.sending.pacing import DISPATCH_TICK_SECONDS as TICK  # noqa: E402

OUT = Path(__file__).resolve().parent / "scale_sim.json"
SEED = int(os.environ.get("SCALE_SEED", "25"))
SECONDS = int(os.environ.get("SCALE_SECONDS", "20"))
RATES = (500, 1000, 2000)
HEADROOM = float(DEFAULT_RATE_HEADROOM)
TOLERANCE = float(DEFAULT_SLOT_TOLERANCE_SECONDS)
START = 5.0  # the first row's due time: the first batches meet cold instances
BATCH, RECEIVE, WINDOW = 100, 10, 1.0  # the trigger's batch, one ReceiveMessage, its window
RECEIVE_SECONDS = 0.02


@dataclass
class World:
    sim: Sim
    rng: random.Random
    table: Table
    grid: Grid
    concurrency: int
    seconds: int
    pool: list[float] = field(default_factory=list)  # visible rows' due times
    idle: list[Booker] = field(default_factory=list)  # warm instances
    busy: int = 0
    peak: int = 0
    cold: int = 0
    lost: int = 0
    slots: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)


def visibility(world: World, dues: list[float]) -> Process:
    """Each second, the rows due 2 to 3 s later become visible together."""
    second = math.floor(dues[0]) - 2
    while True:
        low = bisect.bisect_left(dues, second + 2)
        high = bisect.bisect_left(dues, second + 3)
        world.pool.extend(dues[low:high])
        if high >= len(dues):
            return
        second += 1
        yield second - world.sim.now


def poller(world: World) -> Process:
    """One of Lambda's pollers: receives up to 10 messages at a time into a batch, hands the
    batch over when it holds 100 or its window has passed, once an instance is free."""
    batch: list[float] = []
    opened = 0.0
    while True:
        yield RECEIVE_SECONDS
        for _ in range(min(RECEIVE, len(world.pool))):
            i = world.rng.randrange(len(world.pool))
            world.pool[i], world.pool[-1] = world.pool[-1], world.pool[i]
            if not batch:
                opened = world.sim.now
            batch.append(world.pool.pop())
        if batch and (len(batch) >= BATCH or world.sim.now - opened >= WINDOW):
            while world.busy >= world.concurrency:
                yield 0.01
            world.busy += 1
            world.peak = max(world.peak, world.busy)
            world.sim.spawn(instance(world, sorted(batch)))
            batch = []


def instance(world: World, pending: list[float]) -> Process:
    """A sender instance with one batch: every tick the rows due within it book their slots
    (RateLimiter.schedule, two ticks' worth at most) and go at them."""
    if world.idle:
        booker = world.idle.pop()
    else:
        world.cold += 1
        booker = Booker(world.sim, world.table, world.grid, random.Random(world.rng.random()))
        yield world.rng.lognormvariate(math.log(0.6), 0.3)  # a cold start
    last = world.sim.now
    while pending:
        now = world.sim.now
        due = bisect.bisect_right(pending, now + TICK)
        if not due:
            yield pending[0] - TICK - now
            continue
        slots = yield from booker.schedule(pending[:due], 2 * TICK)
        answered = world.sim.now
        called = [s for s in slots if s >= answered]
        world.lost += len(slots) - len(called)  # past when the answer came: booked again
        # Each call reaches Twilio within the budget the slots are spaced for: the sender's
        # tolerance and the write's jitter.
        budget = allowed_lateness(world.grid.ceiling, TOLERANCE) + WRITE_JITTER_SECONDS
        world.slots.extend(called)
        world.arrivals.extend(s + world.rng.uniform(0, budget) * 0.999 for s in called)
        missed = [max(answered, d) for d in pending[: len(slots) - len(called)]]
        pending = sorted(missed + pending[len(slots) :])
        last = max([last, *called])
        if len(slots) < due or len(called) < len(slots):
            yield TICK
    # The batch ends once its last call has its answer and the outcomes are published.
    yield max(0.0, last - world.sim.now) + world.rng.lognormvariate(math.log(0.15), 0.5) + 0.1
    world.busy -= 1
    world.idle.append(booker)


def max_in_window(times: list[float], width: float) -> int:
    ordered, best, j = sorted(times), 0, 0
    for i, t in enumerate(ordered):
        while j < len(ordered) and ordered[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] if ordered else 0


def run(cps: int, sharded: bool, seed: int, seconds: int = SECONDS) -> dict[str, object]:
    sim, rng = Sim(), random.Random(seed)
    # The slots' rate as deployed: the headroom and the lateness budget (chalicelib.core.spacing).
    ceiling = account_rate(cps, HEADROOM, TOLERANCE)
    grid = Grid.for_ceiling(ceiling, None if sharded else 1)
    concurrency = sender_concurrency(cps)
    world = World(sim, rng, Table(sim, random.Random(seed + 1)), grid, concurrency, seconds)
    dues = [START + i / cps for i in range(cps * seconds)]
    sim.spawn(visibility(world, dues), math.floor(START) - 2)
    for _ in range(max(5, concurrency // 5)):
        sim.spawn(poller(world), rng.uniform(0, RECEIVE_SECONDS))
    sim.run(until=START + seconds + 60)
    return {
        "cps": cps,
        "design": "sharded grid" if sharded else "one item (before)",
        "shards": grid.shards,
        "sender_concurrency": concurrency,
        **limits(world, cps, ceiling),
        **writes(world.table, seconds),
        "slots_lost": world.lost,
        "instances_peak": world.peak,
        "cold_starts": world.cold,
    }


def limits(world: World, cps: int, ceiling: float) -> dict[str, object]:
    slots = sorted(world.slots)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    seconds = world.seconds
    steady = [t for t in world.arrivals if START + 3 <= t < START + seconds - 3]
    return {
        "calls": len(world.arrivals),
        "rows": cps * seconds,
        "max_in_1s": max_in_window(world.arrivals, 1.0),
        "limit_1s": cps,
        "max_in_100ms": max_in_window(world.arrivals, 0.1),
        "limit_100ms": cps // 10 + 1,
        "closest_slots_ms": round(1000 * min(gaps), 4) if gaps else None,
        "spacing_ms": round(1000 / ceiling, 4),
        "achieved_of_target": round(len(steady) / (seconds - 6) / cps, 3),
    }


def writes(table: Table, seconds: int) -> dict[str, object]:
    """The hottest item's writes in a sliding second (stepped by 100 ms) over the run's rows."""
    starts = range(int(START * 10), int((START + seconds - 1) * 10))
    hottest = [
        max(sum(w.get(t + k, 0) for k in range(10)) for w in table.writes.values()) for t in starts
    ]
    parts = table.by_partition.values()
    partition = [
        max((w.get(s, 0) for w in parts), default=0)
        for s in range(int(START), int(START + seconds))
    ]
    return {
        "hottest_item_writes_per_s_max": max(hottest),
        "hottest_item_writes_per_s_p99": percentile(hottest, 0.99),
        "hottest_item_writes_per_s_p50": percentile(hottest, 0.5),
        "hottest_partition_writes_per_s_max": max(partition),
        "writes": sum(sum(w.values()) for w in table.writes.values()),
        "throttled_writes": table.throttled,
        "bookings_failed": table.failed,
    }


def main() -> None:
    runs = [run(cps, sharded, SEED) for cps in RATES for sharded in (False, True)]
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "note": "a simulation: its figures do not depend on the machine (other work ran on it "
        "at the same time); deterministic given the seed",
        "seed": SEED,
        "seconds": SECONDS,
        "model": {
            "partition_wcu_per_s": PARTITION_WCU,
            "partitions": PARTITIONS,
            "write_latency": "lognormal, median 6 ms; 1% 20-100 ms more",
            "retries": "botocore legacy: 10 attempts, 50 ms doubling",
            "cold_start": "lognormal, median 600 ms",
            "twilio_call": "lognormal, median 150 ms",
            "sqs": "visible per second 2-3 s early; receives of 10, batches of 100, 1-s window",
        },
        "runs": runs,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for r in runs:
        print(
            f"{r['cps']:>5} {r['design']:<18} shards {r['shards']:>2}  "
            f"1s {r['max_in_1s']}/{r['limit_1s']}  100ms {r['max_in_100ms']}/{r['limit_100ms']}  "
            f"achieved {r['achieved_of_target']}  hottest {r['hottest_item_writes_per_s_max']}"
            f" (p99 {r['hottest_item_writes_per_s_p99']})  throttled {r['throttled_writes']}  "
            f"lost {r['slots_lost']}"
        )


if __name__ == "__main__":
    main()
