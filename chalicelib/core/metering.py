"""Metering arithmetic: per-sender limits, the adaptive rate, and the account's schedule.

Pure functions and frozen records, no AWS; chalicelib.sending.limiter keeps the shared state in
DynamoDB and the sender applies it.

The account limit is one schedule that every sender of every job books its calls on: the account's
next free time. A sender books k calls at once, `1/rate` apart at its view of the (adaptive) rate,
from that time (or later, never in the past), and moves it on by `k/rate`
(chalicelib.sending.limiter, one conditional write). Bookings never overlap, and each starts at or
after the end of the one before it, so any two calls of the account are at least `1/ceiling` apart:
a sliding second holds at most `ceiling` calls, and 100 ms at most `ceiling/10 + 1`, whatever views
of the rate the senders hold. Two jobs sharing the account are served in the order their senders
ask.

A sender's own limit (Twilio queues a sender's messages beyond its messages-per-second, and
meters them by segment) is a virtual schedule per `From` (GCRA): the sender's next free time
moves on by `segments / mps` per message.

The adaptive rate is AIMD: a 429 (or a concurrency reading near the account's limit) cuts the
rate by `decrease`; it then grows back by `increase` of the configured rate per second, never
above it, nor above the rate the account's concurrency limit allows
(chalicelib.core.concurrency_rate).
"""

from __future__ import annotations

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
