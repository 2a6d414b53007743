"""The rate an account's concurrency limit allows (chalicelib.core.concurrency_rate): the
estimate, its smoothing, when it is shared, and a simulated sender against the emulator's
concurrency rule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.concurrency_rate import (
    ARRIVAL_SPREAD_SECONDS,
    ESTIMATE_TTL,
    LEARNED_FOR,
    MIN_SAMPLES,
    REFRESH_SECONDS,
    Capacity,
    Durations,
    Reading,
    SharedRate,
    allowed_rate,
    rate_in_force,
    should_share,
)
from chalicelib.core.metering import Aimd
from chalicelib.core.records import TwilioResult
from tests.concurrency_model import simulate

limits = st.integers(min_value=1, max_value=1000)
# Twilio's answers take tenths of a second; at 0.06 s the spread still leaves 90%.
durations = st.floats(min_value=0.06, max_value=10.0)
jitters = st.floats(min_value=0.0, max_value=0.3)


def smoothed(samples: list[float]) -> Durations:
    d = Durations()
    for s in samples:
        d = d.observe(s)
    return d


def headers(concurrent: object, duration: object) -> dict[str, str]:
    return {"Twilio-Concurrent-Requests": str(concurrent), "Twilio-Request-Duration": str(duration)}


# -- reading the headers -------------------------------------------------------------------


def test_reading_takes_both_headers_in_twilios_units() -> None:
    assert Reading.of(headers(8, "0.111")) == Reading(8, 0.111)
    lower = {"twilio-concurrent-requests": "3", "twilio-request-duration": "0.2"}
    assert Reading.of(lower, throttled=True) == Reading(3, 0.2, True)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "-1",
        "nan",
        "inf",
        "-0.2",
        "0",
        "1e309",
        "61",
        "0.0001",
        "1,2",
        " ",
        "\u0660.\u0662",
    ],
)
def test_reading_ignores_a_duration_that_is_not_what_twilio_sends(value: str) -> None:
    assert Reading.of(headers(3, value)) == Reading(3, None)


@pytest.mark.parametrize("value", ["", "abc", "-1", "1.5", "nan", "1e3", "+3", "\u0663", " "])
def test_reading_ignores_a_count_that_is_not_what_twilio_sends(value: str) -> None:
    assert Reading.of(headers(value, "0.2")) == Reading(None, 0.2)


def test_reading_without_headers_has_neither() -> None:
    assert Reading.of({}) == Reading(None, None)


# -- the estimate --------------------------------------------------------------------------


@given(limits, durations)
def test_constant_durations_give_the_margin_of_limit_over_duration(limit: int, d: float) -> None:
    estimate = allowed_rate(limit, smoothed([d] * 60))
    assert estimate <= limit / d
    assert estimate >= 0.9 * limit / d
    assert estimate == pytest.approx(limit / (d + ARRIVAL_SPREAD_SECONDS), rel=0.01)


@settings(max_examples=60)
@given(limits, durations, jitters, st.integers(0, 2**32 - 1))
def test_jittered_durations_settle_between_the_longest_and_the_mean(
    limit: int, d: float, jitter: float, seed: int
) -> None:
    """Never above what the mean allows (the limit's rate); on average at least 90% of what
    the longest (and the calls' spread) allows (paced calls of that length never find more
    than the limit in flight), and at least 90% of what the mean allows when durations vary
    by 5% or less (from 0.2 s: shorter, the calls' spread of a few milliseconds counts for
    more)."""
    rng = random.Random(seed)
    estimate, rates = Durations(), []
    for i in range(800):
        estimate = estimate.observe(d * (1 + rng.uniform(-jitter, jitter)))
        if i >= 200:
            rates.append(allowed_rate(limit, estimate))
    average = sum(rates) / len(rates)
    assert max(rates) <= limit / d
    longest = d * (1 + jitter) + ARRIVAL_SPREAD_SECONDS  # the calls' spread included
    assert min(rates) >= 0.8 * limit / longest
    assert average >= 0.9 * limit / longest
    if jitter <= 0.05 and d >= 0.2:
        assert average >= 0.9 * limit / d


@given(limits, durations, st.floats(min_value=0.25, max_value=4.0))
def test_the_estimate_follows_a_change_of_duration(limit: int, d: float, factor: float) -> None:
    estimate = smoothed([d] * 100 + [d * factor] * 100)
    assert allowed_rate(limit, estimate) == pytest.approx(
        limit / (d * factor + ARRIVAL_SPREAD_SECONDS), rel=0.05
    )


def test_the_estimate_is_cautious_until_durations_agree() -> None:
    first = smoothed([0.2])
    assert first.deviation == pytest.approx(0.1)  # half the first sample
    assert first.upper > 0.4
    assert smoothed([0.2] * 40).upper == pytest.approx(0.2, rel=0.01)


# -- the limit: configured or learned ------------------------------------------------------


def test_no_rate_until_enough_answers() -> None:
    capacity = Capacity()
    for i in range(MIN_SAMPLES - 1):
        capacity = capacity.observe(Reading(3, 0.2), i)
    assert capacity.rate(8, 10.0) is None
    assert capacity.observe(Reading(3, 0.2), 10).rate(8, 10.0) is not None


def test_a_refusal_says_nothing_of_the_durations() -> None:
    capacity = Capacity().observe(Reading(9, 0.001, throttled=True), 5.0)
    assert capacity.durations.samples == 0
    assert capacity.throttled_at == 5.0


def test_without_a_configured_limit_it_is_learned_from_a_20429() -> None:
    capacity = Capacity()
    for i in range(20):
        capacity = capacity.observe(Reading(1 + i % 6, 0.2), float(i))
    # No 20429 yet: nothing says there is a limit, and the adaptive rate alone decides.
    assert capacity.rate(None, 20.0) is None
    capacity = capacity.observe(Reading(7, 0.001, throttled=True), 21.0)
    assert capacity.limit(None, 21.0) == 6  # the highest reading of an accepted answer
    assert capacity.rate(None, 21.0) == pytest.approx(6 / (0.2 + ARRIVAL_SPREAD_SECONDS), rel=0.05)
    # A configured limit wins; a learned one lapses, so the adaptive rate probes above it.
    assert capacity.limit(8, 21.0) == 8
    assert capacity.limit(None, 21.0 + LEARNED_FOR + 1) is None


def test_a_refusal_never_raises_the_learned_limit() -> None:
    capacity = Capacity().observe(Reading(4, 0.2), 0.0)
    capacity = capacity.observe(Reading(40, 0.001, throttled=True), 1.0)
    assert capacity.limit(None, 1.0) == 4


# -- sharing -------------------------------------------------------------------------------


def test_an_estimate_is_shared_when_new_changed_or_old() -> None:
    shared = SharedRate(38.0, 100.0)
    assert should_share(None, None, 100.0) is False
    assert should_share(38.0, None, 100.0) is True
    assert should_share(30.0, shared, 100.5) is False  # within a second of the last write
    assert should_share(38.5, shared, 102.0) is False  # within 2%
    assert should_share(39.0, shared, 102.0) is True
    assert should_share(38.0, shared, 100.0 + REFRESH_SECONDS) is True
    assert should_share(38.0, shared, 100.0 + ESTIMATE_TTL + 1) is True


@given(st.floats(1, 1000), st.floats(1, 1000), st.floats(0, 2 * ESTIMATE_TTL))
def test_the_rate_in_force_never_exceeds_a_shared_estimate(
    adaptive: float, shared: float, age: float
) -> None:
    rate = rate_in_force(adaptive, SharedRate(shared, 0.0), age)
    assert rate <= adaptive
    assert rate == (min(adaptive, shared) if age <= ESTIMATE_TTL else adaptive)


# -- a sender against the emulator's concurrency rule --------------------------------------


class Account:
    """One sender's view, as chalicelib.sending.limiter keeps it, without the table."""

    def __init__(self, limit: int | None, ceiling: float) -> None:
        self.limit, self.ceiling, self.now = limit, ceiling, 0.0
        self.capacity, self.aimd = Capacity(), Aimd(ceiling)
        self.shared: SharedRate | None = None

    def rate(self, now: float) -> float:
        return rate_in_force(self.aimd.effective(now, self.ceiling, 0.05), self.shared, now)

    def answered(self, result: TwilioResult) -> None:
        throttled = result.error_code == 20429
        self.capacity = self.capacity.observe(Reading.of(result.headers, throttled), self.now)
        local = self.capacity.rate(self.limit, self.now)
        if should_share(local, self.shared, self.now):
            self.shared = SharedRate(local, self.now) if local is not None else None
        cut_at = self.aimd.cut_at
        if throttled and (cut_at is None or cut_at < self.now - 1.0):
            ceiling = rate_in_force(self.ceiling, self.shared, self.now)
            self.aimd = self.aimd.cut(self.now, ceiling, 0.05, 0.7, 1.0)

    def tick(self, now: float) -> None:
        self.now = now


@settings(max_examples=15, deadline=None)
@given(
    st.integers(2, 20),
    st.floats(0.2, 1.0),
    st.floats(0.0, 0.05),
    st.sampled_from([8, None]),
    st.integers(0, 2**32 - 1),
)
def test_a_sender_settles_at_what_the_limit_allows_and_429s_stop(
    limit: int, d: float, jitter: float, configured: int | None, seed: int
) -> None:
    """From a target well above the limit's rate: after 10 s at least 90% of limit / duration
    gets through and under 1% of calls are refused; with the limit configured or learned.
    (Requests of 0.2 s or more, as Twilio's: shorter, the calls' spread of a few milliseconds
    costs more than 10%.)"""
    rng = random.Random(seed)
    allows = limit / d
    # Long enough for 1,500 calls after the first 10 s: 1% is then 15 calls, not a fraction.
    seconds = 10.0 + 1500 / allows
    account = Account(limit if configured else None, ceiling=2.5 * allows)
    run = simulate(
        limit,
        seconds,
        account.rate,
        account.answered,
        lambda _: d * (1 + rng.uniform(-jitter, jitter)),
        account.tick,
        late=lambda: rng.uniform(0, 0.005),  # SLOT_TOLERANCE_SECONDS
    )
    achieved = run.accepted_rate(1010.0, 1000.0 + seconds)
    assert 0.9 * allows <= achieved <= allows
    assert run.refused_share(1010.0) < 0.01


def test_a_longer_duration_costs_a_few_429s_then_the_rate_follows() -> None:
    rng = random.Random(7)
    account = Account(8, ceiling=100.0)
    run = simulate(
        8,
        60.0,
        account.rate,
        account.answered,
        lambda at: (0.2 if at < 1030 else 0.4) * (1 + rng.uniform(-0.05, 0.05)),
        account.tick,
        late=lambda: rng.uniform(0, 0.005),
    )
    assert run.accepted_rate(1010.0, 1030.0) >= 0.9 * 40
    assert run.accepted_rate(1035.0, 1060.0) >= 0.9 * 20
    # The change is paid for in its first seconds (the rate was set for shorter requests),
    # then the 429s are as rare as before it.
    change = [t for t, refused in run.after(1030.0) if refused and t < 1033.0]
    assert 0 < len(change) <= 20
    assert run.refused_share(1033.0) < 0.01
    assert run.refused_share(1010.0) < 0.01
