"""Metering arithmetic: the account's time-slot grid, per-sender limits, and the adaptive rate.

Pure functions and frozen records, no AWS; chalicelib.limiter keeps the shared state in
DynamoDB and the sender applies it.

The account limit is a grid of call slots: time is cut into buckets `width` seconds long, each
with `cap` slots spaced `width / cap` apart, so consecutive slots are exactly 1/rate apart and
any window one bucket long holds at most `cap` calls. Every call of every job takes one slot;
senders take slots through a counter per bucket (the positions handed out), so two jobs sharing
the account are served in the order their rows come due, and neither can take the other's.

A sender's own limit (Twilio queues a sender's messages beyond its messages-per-second, and
meters them by segment) is a virtual schedule per `From` (GCRA): the sender's next free time
moves on by `segments / mps` per message.

The adaptive rate is AIMD: a 429 (or a concurrency reading near the account's limit) cuts the
rate by `decrease`; it then grows back by `increase` of the configured rate per second, never
above it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Twilio's default messages-per-second by kind of sender (US): long codes 1, toll-free 3,
# short codes 100. Used for senders that have no explicit limit when per-sender limits are on.
DEFAULT_SENDER_MPS = {"long_code": 1.0, "toll_free": 3.0, "short_code": 100.0}
_TOLL_FREE = re.compile(r"^\+1(800|833|844|855|866|877|888)\d{7}$")
_SHORT_CODE = re.compile(r"^\d{5,6}$")
# Twilio keeps up to 10 hours of a sender's messages queued; beyond that it rejects them (30001).
SENDER_QUEUE_SECONDS = 10 * 3600


@dataclass(frozen=True)
class Grid:
    """The account's slot grid at its configured rate: buckets of `cap` slots, `1/rate` apart.

    The grid never changes with the adaptive rate (every sender must cut time the same way, and
    a sender's view of the rate can be a moment old): a slower rate uses only the first slots of
    each bucket, so no view of the rate can put more than `cap` calls in a bucket, nor two calls
    in one slot.
    """

    rate: float

    @property
    def cap(self) -> int:
        # About 100 ms a bucket: the scale the bursts are measured on.
        return max(1, math.ceil(self.rate / 10))

    @property
    def width(self) -> float:
        return self.cap / self.rate

    def bucket(self, at: float) -> int:
        return math.floor(at / self.width)

    def start(self, bucket: int) -> float:
        return bucket * self.width

    def usable(self, rate: float) -> int:
        """Slots of a bucket used at `rate` (the adaptive rate; at most the grid's)."""
        return max(1, min(self.cap, math.floor(self.cap * rate / self.rate + 1e-9)))

    def slot_time(self, bucket: int, counter: int) -> float:
        """When the bucket's `counter`-th slot is. A counter is a slot: senders whose views of
        the adaptive rate differ (so `usable` differs) still never share one."""
        return self.start(bucket) + counter / self.rate

    def first_counter(self, bucket: int, not_before: float, usable: int) -> int:
        """The first counter of `bucket` whose slot is at or after `not_before` (`usable` when
        none is)."""
        offset = not_before - self.start(bucket)
        if offset <= 0:
            return 0
        return min(usable, math.ceil(offset * self.rate - 1e-9))


@dataclass(frozen=True)
class Aimd:
    """The account's adaptive rate: `rate` as last cut at `cut_at` (None: never cut)."""

    rate: float
    cut_at: float | None = None

    def effective(self, now: float, ceiling: float, increase: float) -> float:
        """The rate now: the cut rate plus `increase * ceiling` per second since the cut."""
        if self.cut_at is None:
            return ceiling
        grown = self.rate + increase * ceiling * max(0.0, now - self.cut_at)
        return min(ceiling, grown)

    def cut(
        self, now: float, ceiling: float, increase: float, decrease: float, floor: float
    ) -> Aimd:
        return Aimd(max(floor, self.effective(now, ceiling, increase) * decrease), now)


@dataclass(frozen=True)
class SenderLimits:
    """Messages per second per `From`, counted in segments; off unless configured."""

    enabled: bool = False
    overrides: Mapping[str, float] | None = None

    @classmethod
    def parse(cls, spec: str) -> SenderLimits:
        """`""` (off), `"auto"` (Twilio's defaults by kind of number), or `"auto,+1555...=10"`
        / `"+1555...=10"` with explicit limits (other senders then use the defaults)."""
        spec = spec.strip()
        if not spec or spec == "off":
            return cls()
        overrides: dict[str, float] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part or part == "auto":
                continue
            sender, sep, value = part.rpartition("=")
            try:
                mps = float(value)
            except ValueError:
                mps = -1.0
            if not sep or not sender or mps <= 0:
                raise ValueError(f"sender limit {part!r} is not SENDER=MPS with MPS > 0")
            overrides[sender.strip()] = mps
        return cls(True, overrides)

    def mps(self, sender: str | None) -> float | None:
        """The sender's limit, or None when it has none (off, no From, a messaging service)."""
        if not self.enabled or not sender:
            return None
        if self.overrides and sender in self.overrides:
            return self.overrides[sender]
        kind = sender_kind(sender)
        return DEFAULT_SENDER_MPS[kind] if kind else None


def sender_kind(sender: str) -> str | None:
    if _SHORT_CODE.match(sender):
        return "short_code"
    if _TOLL_FREE.match(sender):
        return "toll_free"
    if sender.startswith("+"):
        return "long_code"
    return None  # a messaging service, alphanumeric sender or channel address


@dataclass(frozen=True)
class Reservation:
    """What the sender's virtual schedule gave: `starts` per message, or None when the next free
    time is beyond the horizon (then `busy_until` says when to come back)."""

    starts: tuple[float, ...] | None
    busy_until: float


def gcra_starts(tat: float, not_before: float, costs: list[float], mps: float) -> list[float]:
    """Start times of messages costing `costs` segments each, from the schedule's `tat`."""
    at = max(tat, not_before)
    starts = []
    for cost in costs:
        starts.append(at)
        at += cost / mps
    return starts
