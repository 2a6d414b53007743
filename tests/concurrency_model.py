"""A model of the Twilio emulator's concurrency limit on a simulated clock, and a sender that
calls evenly at a rate it is told, for tests of the rate the limit allows.

The rule is the emulator's (callqueue/local/emulator/answer.py): a request finds in flight every
request that arrived before it and is not yet answered, itself included; over the limit it is
answered at once with 429 / 20429, and counts in flight only that long. Every answer carries
`Twilio-Concurrent-Requests` and `Twilio-Request-Duration` (seconds, three decimals).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.core.records import TwilioResult

# How long a 429 takes to answer.
REFUSAL_SECONDS = 0.001


@dataclass
class Concurrency:
    limit: int
    _ends: list[float] = field(default_factory=list)

    def arrive(self, at: float, duration: float) -> tuple[int, bool, float]:
        """(requests in flight on arrival, refused, when it is answered)."""
        while self._ends and self._ends[0] <= at:
            heapq.heappop(self._ends)
        concurrent = len(self._ends) + 1
        refused = concurrent > self.limit
        end = at + (REFUSAL_SECONDS if refused else duration)
        heapq.heappush(self._ends, end)
        return concurrent, refused, end


def answer(n: int, started: float, end: float, concurrent: int, refused: bool) -> TwilioResult:
    """The answer to the `n`th call (its number in `Twilio-Request-Id`)."""
    headers = {
        "Twilio-Request-Id": f"RQ{n:032x}",
        "Twilio-Concurrent-Requests": str(concurrent),
        "Twilio-Request-Duration": f"{end - started:.3f}",
    }
    if refused:
        return TwilioResult(429, None, headers, started, end, error_code=20429)
    return TwilioResult(201, {"sid": "SM1"}, headers, started, end)


@dataclass
class Run:
    calls: list[tuple[float, bool]] = field(default_factory=list)  # (arrival, refused)

    def after(self, since: float) -> list[tuple[float, bool]]:
        return [c for c in self.calls if c[0] >= since]

    def accepted_rate(self, since: float, until: float) -> float:
        return sum(1 for t, refused in self.after(since) if not refused and t < until) / (
            until - since
        )

    def refused_share(self, since: float) -> float:
        later = self.after(since)
        return sum(1 for _, refused in later if refused) / max(1, len(later))


def call_number(result: TwilioResult) -> int:
    return int(result.headers["Twilio-Request-Id"][2:], 16)


def simulate(
    limit: int,
    seconds: float,
    rate_at: Callable[[float], float],
    answered: Callable[[TwilioResult], None],
    duration: Callable[[float], float],
    clock: Callable[[float], None],
    late: Callable[[], float] = lambda: 0.0,
    start: float = 1000.0,
) -> Run:
    """Calls made one every 1/rate from `start` for `seconds`, each arriving `late()` after its
    slot and lasting `duration(at)`; each answer told to `answered` at its time (`clock(t)`
    sets the injected clock before each event)."""
    model, run = Concurrency(limit), Run()
    pending: list[tuple[float, int, TwilioResult]] = []
    seq = itertools.count()
    slot = start
    while slot < start + seconds:
        while pending and pending[0][0] <= slot:
            end, _, result = heapq.heappop(pending)
            clock(end)
            answered(result)
        clock(slot)
        at = slot + late()
        concurrent, refused, end = model.arrive(at, duration(at))
        n = next(seq)
        heapq.heappush(pending, (end, n, answer(n, at, end, concurrent, refused)))
        run.calls.append((at, refused))
        slot += 1.0 / rate_at(slot)
    return run
