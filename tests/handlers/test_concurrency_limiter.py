"""The rate an account's concurrency limit allows, shared through the rate-limit table (moto):
two senders' limiters and pacers against the emulator's concurrency rule, on a simulated clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.core.concurrency_rate import ESTIMATE_TTL, SHARE_INTERVAL, Reading
from chalicelib.core.records import TwilioResult
from chalicelib.sending.limiter import AIMD_KEY, RateLimiter
from chalicelib.sending.pacing import Pacer
from chalicelib.sending.parts import SenderSettings
from tests.concurrency_model import Run, call_number, simulate
from tests.tables import create_rate_table

TABLE = "rate"
# The scenario: 8 concurrent requests of 0.2 s allow 40 calls a second.
LIMIT, DURATION = 8, 0.2
ALLOWS = LIMIT / DURATION


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        self.now = now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Counting:
    """The DynamoDB client, keeping the times of the concurrency estimate's writes that landed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions
        self.estimates: list[float] = []

    def update_item(self, **kw: Any) -> Any:
        answer = self._client.update_item(**kw)
        if "conc_rate" in kw["UpdateExpression"]:
            self.estimates.append(float(kw["ExpressionAttributeValues"][":t"]["N"]))
        return answer

    def get_item(self, **kw: Any) -> Any:
        return self._client.get_item(**kw)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_table(client, TABLE)
        yield Counting(client)


def make_limiter(db: Any, clock: Clock, rate: float = 99.0) -> RateLimiter:
    return RateLimiter(db, TABLE, rate=rate, clock=clock)


def pacer(limiter: RateLimiter, clock: Clock, limit: int | None) -> Pacer:
    parts = SimpleNamespace(limiter=limiter, clock=clock, sleep=clock.sleep)
    return Pacer(parts, SenderSettings(max_attempts=3, concurrency_limit=limit))  # type: ignore[arg-type]


def two_senders(db: Any, limit: int | None, seconds: float = 60.0) -> tuple[Run, list[RateLimiter]]:
    """Two senders of one account take turns, each at the account's rate as it sees it (a
    target of 99 calls a second), against the limit with 0.2 s requests (1% jitter) reaching
    Twilio up to 5 ms after their slots; each sender is told its own calls' answers."""
    clock, rng = Clock(), random.Random(25)
    limiters = [make_limiter(db, clock), make_limiter(db, clock)]
    pacers = [pacer(limiters[0], clock, limit), pacer(limiters[1], clock, limit)]
    calls = iter(range(1, 10**9))

    def rate_at(_: float) -> float:
        return limiters[next(calls) % 2].rate()  # the next call's sender

    def answered(result: TwilioResult) -> None:
        pacers[call_number(result) % 2].feedback(result)

    run = simulate(
        LIMIT,
        seconds,
        rate_at,
        answered,
        lambda _: DURATION * (1 + rng.uniform(-0.01, 0.01)),
        clock.set,
        late=lambda: rng.uniform(0, 0.005),
    )
    return run, limiters


@pytest.mark.parametrize("configured", [LIMIT, None], ids=["configured", "learned"])
def test_senders_settle_at_what_the_concurrency_limit_allows(
    dynamodb: Counting, configured: int | None
) -> None:
    """At least 90% of limit / duration gets through after the first 10 s, under 1% refused,
    with TWILIO_CONCURRENCY_LIMIT set or learned from the 20429s."""
    run, limiters = two_senders(dynamodb, configured)
    achieved = run.accepted_rate(1010.0, 1060.0)
    assert 0.9 * ALLOWS <= achieved <= ALLOWS
    assert run.refused_share(1010.0) < 0.01
    # Both senders use the one estimate, written at most once a second for the account.
    assert limiters[0].concurrency_rate() == limiters[1].concurrency_rate()
    writes = dynamodb.estimates
    assert writes and all(b - a >= SHARE_INTERVAL for a, b in itertools.pairwise(writes))


def test_without_the_estimate_the_adaptive_rate_saws_below_the_limit(dynamodb: Counting) -> None:
    """The check above can fail: with the limiter told no durations, as before, the readings
    near the limit keep cutting the rate well under what the limit allows."""
    clock = Clock()
    limiter = make_limiter(dynamodb, clock)
    limiter.observe = lambda reading, limit: None  # type: ignore[method-assign]
    p = pacer(limiter, clock, LIMIT)
    run = simulate(LIMIT, 40.0, lambda _: limiter.rate(), p.feedback, lambda _: DURATION, clock.set)
    assert run.accepted_rate(1010.0, 1040.0) < 0.9 * ALLOWS


def test_a_cut_applies_to_the_rate_in_force(dynamodb: Counting) -> None:
    clock = Clock()
    limiter = make_limiter(dynamodb, clock)
    for _ in range(20):
        limiter.observe(Reading(5, 0.2), LIMIT)
    allowed = limiter.concurrency_rate()
    assert allowed is not None and limiter.rate() == pytest.approx(allowed)
    assert limiter.congested() is True
    assert limiter.rate() == pytest.approx(0.7 * allowed)  # not 0.7 of the configured 99


def test_another_sender_reads_the_estimate_with_the_adaptive_rate(dynamodb: Counting) -> None:
    clock = Clock()
    writer, reader = make_limiter(dynamodb, clock), make_limiter(dynamodb, clock)
    assert reader.rate() == 99.0
    for _ in range(20):
        writer.observe(Reading(5, 0.2), LIMIT)
    clock.now += 1.0  # the reader reads the table at most once a second
    assert reader.rate() == pytest.approx(writer.concurrency_rate())
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": AIMD_KEY}})["Item"]
    assert float(item["conc_rate"]["N"]) == pytest.approx(reader.rate(), abs=1e-5)
    # An estimate no sender has renewed stops applying: the adaptive rate alone decides.
    clock.now += ESTIMATE_TTL + 1.0
    assert reader.rate() == 99.0


def test_no_estimate_without_a_limit_or_a_20429(dynamodb: Counting) -> None:
    clock = Clock()
    limiter = make_limiter(dynamodb, clock)
    for _ in range(50):
        limiter.observe(Reading(3, 0.2), None)
    assert limiter.concurrency_rate() is None
    assert limiter.rate() == 99.0
    assert dynamodb.estimates == []
