"""The rate an account's Twilio concurrency limit allows, from the headers Twilio answers with.

Twilio counts an account's requests in flight (`Twilio-Concurrent-Requests`, this one and any
answered 429 included) and says how long each took inside Twilio (`Twilio-Request-Duration`,
seconds). By Little's law the requests in flight are the rate times their duration, so a limit
of `L` concurrent requests of `W` seconds allows `L / W` calls a second. Calls are paced evenly
(one every `1/rate`), so a request finds at most `L` in flight, itself included, when no
request lasts longer than `L/rate`: the rate is taken against a duration near the longest
(the smoothed mean plus 2.5 times its smoothed deviation, as TCP times its retransmissions), plus
ARRIVAL_SPREAD_SECONDS for calls that reach Twilio a few milliseconds off their slots.

The limit is TWILIO_CONCURRENCY_LIMIT; without it a container learns it from its own answers:
an accepted request never finds more than the limit in flight, so once a 20429 shows there is a
limit, the highest reading on an accepted answer is taken as it, for LEARNED_FOR seconds after
the last 20429 (then the adaptive rate probes above it again).

Pure arithmetic; chalicelib.sending.limiter shares the estimate through the rate-limit table,
and AIMD (chalicelib.core.metering.Aimd) stays the safety net on 429s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

# Smoothing gains (Jacobson's, halved for the mean: durations jitter and one container's
# estimate sets every sender's rate). The first samples are averaged (gain 1/n) so that an
# estimate exists within a handful of answers.
MEAN_GAIN = 1 / 16
DEVIATION_GAIN = 1 / 8
# The duration the rate is taken against: the mean plus this many mean deviations (for durations
# spread evenly, a little over their longest: with 2, the estimate's own noise let one call in
# a hundred find the limit full, in tests/unit/test_concurrency_rate.py's simulation).
DEVIATIONS = 2.5
# Calls reach Twilio up to SLOT_TOLERANCE_SECONDS (5 ms) after their slots, and the header
# is rounded to the millisecond: L requests must fit in their duration and this much more
# (at 0.2 s, 97% of the rate the limit allows).
ARRIVAL_SPREAD_SECONDS = 0.006
# Answers a container needs before its estimate is used or shared.
MIN_SAMPLES = 10
# Durations outside this range are not Twilio's (a broken header): ignored.
MIN_DURATION_SECONDS = 0.001
MAX_DURATION_SECONDS = 60.0
# A learned limit stands this long after the last 20429.
LEARNED_FOR = 300.0
# Sharing: an estimate is written at most once a second for the whole account (the table's
# condition), when it differs from the shared one by more than SHARE_CHANGE, or the shared one
# is older than REFRESH_SECONDS; a shared estimate older than ESTIMATE_TTL no longer applies
# (no sender is sending with a known limit: the adaptive rate alone decides).
SHARE_INTERVAL = 1.0
SHARE_CHANGE = 0.02
REFRESH_SECONDS = 30.0
ESTIMATE_TTL = 120.0

CONCURRENT_HEADER = "Twilio-Concurrent-Requests"
DURATION_HEADER = "Twilio-Request-Duration"


@dataclass(frozen=True)
class Reading:
    """What one answer says: requests in flight on its arrival, and its time inside Twilio."""

    concurrent: int | None
    duration: float | None
    throttled: bool = False

    @classmethod
    def of(cls, headers: Mapping[str, str], throttled: bool = False) -> Reading:
        """The two headers, each None when missing or not a number Twilio would send."""
        return cls(
            _count(_header(headers, CONCURRENT_HEADER)),
            _seconds(_header(headers, DURATION_HEADER)),
            throttled,
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name) or headers.get(name.lower())


def _count(text: str | None) -> int | None:
    # ASCII only: str.isdigit and int() also take other scripts' digits, which Twilio never sends.
    if text is None or not (text.isascii() and text.strip().isdigit()):
        return None
    return int(text.strip())


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None and text.isascii() else math.nan
    except ValueError:
        return None
    return value if MIN_DURATION_SECONDS <= value <= MAX_DURATION_SECONDS else None


@dataclass(frozen=True)
class Durations:
    """Smoothed request durations: the mean and the mean deviation from it, over `samples`."""

    mean: float = 0.0
    deviation: float = 0.0
    samples: int = 0

    def observe(self, seconds: float) -> Durations:
        n = self.samples + 1
        if n == 1:
            # As TCP starts: half the first sample as its deviation, until others say better.
            return Durations(seconds, seconds / 2, 1)
        deviation_gain = max(DEVIATION_GAIN, 1 / n)
        deviation = self.deviation + deviation_gain * (abs(seconds - self.mean) - self.deviation)
        mean = self.mean + max(MEAN_GAIN, 1 / n) * (seconds - self.mean)
        return Durations(mean, deviation, n)

    @property
    def upper(self) -> float:
        """The duration the rate is taken against."""
        return max(MIN_DURATION_SECONDS, self.mean + DEVIATIONS * self.deviation)


def allowed_rate(limit: int, durations: Durations) -> float:
    """The calls per second `limit` concurrent requests of these durations allow, calls
    reaching Twilio a little off their slots."""
    return limit / (durations.upper + ARRIVAL_SPREAD_SECONDS)


@dataclass(frozen=True)
class Capacity:
    """One container's view of the account's concurrency: the durations it has seen, and for a
    limit not configured, the highest reading on an accepted answer and the last 20429."""

    durations: Durations = Durations()
    highest_accepted: int = 0
    throttled_at: float | None = None

    def observe(self, reading: Reading, now: float) -> Capacity:
        if reading.throttled:
            # A 429 is answered at once: its duration says nothing of the requests made.
            return replace(self, throttled_at=now)
        durations = self.durations
        if reading.duration is not None:
            durations = durations.observe(reading.duration)
        highest = max(self.highest_accepted, reading.concurrent or 0)
        return replace(self, durations=durations, highest_accepted=highest)

    def limit(self, configured: int | None, now: float) -> int | None:
        """The limit in force: the configured one, or one learned since a recent 20429."""
        if configured:
            return configured
        if self.throttled_at is None or now - self.throttled_at > LEARNED_FOR:
            return None
        return self.highest_accepted or None

    def rate(self, configured: int | None, now: float) -> float | None:
        """The rate the limit allows; None without a limit or enough answers."""
        limit = self.limit(configured, now)
        if limit is None or self.durations.samples < MIN_SAMPLES:
            return None
        return allowed_rate(limit, self.durations)


@dataclass(frozen=True)
class SharedRate:
    """The estimate every sender of the account uses, as written at `at`."""

    rate: float
    at: float

    def in_force(self, now: float) -> bool:
        return now - self.at <= ESTIMATE_TTL


def should_share(local: float | None, shared: SharedRate | None, now: float) -> bool:
    """Whether a container with the estimate `local` writes it (the table's condition still
    keeps writes a second apart for the whole account)."""
    if local is None:
        return False
    if shared is None or not shared.in_force(now):
        return True
    if now - shared.at < SHARE_INTERVAL:
        return False
    return (
        now - shared.at >= REFRESH_SECONDS or abs(local - shared.rate) > SHARE_CHANGE * shared.rate
    )


def rate_in_force(adaptive: float, shared: SharedRate | None, now: float) -> float:
    """The account's rate: the adaptive rate, never above a shared estimate still in force."""
    if shared is None or not shared.in_force(now):
        return adaptive
    return min(adaptive, shared.rate)
