"""The shared rate limiter on DynamoDB (moto), with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.limiter import RateLimiter
from tests.tables import create_rate_table

TABLE = "rate"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_table(client, TABLE)
        yield client


def limiter(dynamodb: Any, clock: Clock, rate: float = 200, **kw: Any) -> RateLimiter:
    return RateLimiter(dynamodb, TABLE, rate=rate, clock=clock, **kw)


def test_limiter_gives_each_call_its_own_slot_in_due_order(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    times = limiter(dynamodb, clock).schedule([1000.5 + i * 0.005 for i in range(10)], 2.0)
    assert times == pytest.approx([1000.5 + i * 0.005 for i in range(10)])


def test_limiter_two_senders_share_the_grid_without_overlap(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    a, b = limiter(dynamodb, clock), limiter(dynamodb, clock)
    due = [1000.5 + i * 0.005 for i in range(10)]
    first, second = a.schedule(due, 2.0), b.schedule(due, 2.0)
    slots = [t for t in first + second if t is not None]
    assert len(slots) == 20
    assert len({round(t, 6) for t in slots}) == 20  # no slot handed out twice
    assert sorted(slots) == pytest.approx([1000.5 + i * 0.005 for i in range(20)])


def test_limiter_never_gives_a_slot_already_past(dynamodb: Any) -> None:
    clock = Clock(1000.0123)
    times = limiter(dynamodb, clock).schedule([999.0, 999.5], 2.0)
    assert all(t is not None and t >= clock.now for t in times)
    assert times == pytest.approx([1000.02, 1000.025])


def test_limiter_spills_a_full_bucket_into_the_next(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    times = limiter(dynamodb, clock, rate=20).schedule([1000.5] * 3, 2.0)  # 2 slots a bucket
    assert times == pytest.approx([1000.5, 1000.55, 1000.6])


def test_limiter_leaves_calls_beyond_the_horizon_without_a_slot(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    times = limiter(dynamodb, clock, rate=10).schedule([1000.0] * 30, 2.0)
    granted = [t for t in times if t is not None]
    # 10 a second for 2 s; the slot at `now` itself is already past when it is handed out.
    assert granted == pytest.approx([1000.1 + i * 0.1 for i in range(20)])
    assert times[20:] == [None] * 10
    assert max(granted) <= clock.now + 2.0


def test_limiter_cut_slows_every_sender_once_per_cooldown(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    a, b = limiter(dynamodb, clock), limiter(dynamodb, clock)
    assert a.rate() == 200
    assert a.congested() is True
    assert b.congested() is False  # the same congestion: one cut
    clock.now += 1.5  # b's view of the state is refreshed after state_ttl
    assert b.rate() == pytest.approx(140 + 0.05 * 200 * 1.5)
    assert b.congested() is True
    assert a.rate() == pytest.approx((140 + 15) * 0.7)


def test_limiter_at_a_cut_rate_uses_fewer_slots_of_each_bucket(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock, increase=0.0, decrease=0.5)
    lim.congested()
    times = lim.schedule([1000.5] * 12, 2.0)
    first = [1000.5 + i * 0.005 for i in range(10)]
    assert times == pytest.approx([*first, 1000.6, 1000.605])  # 10 of 20 slots a bucket


def test_limiter_senders_with_different_views_of_the_rate_never_share_a_slot(
    dynamodb: Any,
) -> None:
    clock = Clock(1000.0)
    fast = limiter(dynamodb, clock, increase=0.0)
    assert fast.rate() == 200  # read before the cut, and kept for a second
    slow = limiter(dynamodb, clock, increase=0.0, decrease=0.5)
    slow.congested()
    assert slow.rate() == 100
    slots = slow.schedule([1000.5] * 10, 2.0) + fast.schedule([1000.5] * 20, 2.0)
    granted = [t for t in slots if t is not None]
    assert len({round(t, 6) for t in granted}) == len(granted)
    in_bucket = [t for t in granted if 1000.5 <= t < 1000.6]
    assert len(in_bucket) <= 20


def test_limiter_sender_schedule_counts_segments(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock)
    first = lim.reserve_sender("+15005550006", [1, 3], 1.0, 1000.0, 2.0)
    assert first.starts == pytest.approx((1000.0, 1001.0))
    second = lim.reserve_sender("+15005550006", [1], 1.0, 1000.0, 5.0)
    assert second.starts == pytest.approx((1004.0,))
    busy = lim.reserve_sender("+15005550006", [1], 1.0, 1000.0, 2.0)
    assert busy.starts is None
    assert busy.busy_until == pytest.approx(1005.0)
    other = lim.reserve_sender("+15005550007", [1], 1.0, 1000.0, 2.0)
    assert other.starts == pytest.approx((1000.0,))


def test_limiter_sender_schedule_restarts_after_idle(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock)
    lim.reserve_sender("+15005550006", [1], 1.0, 1000.0, 2.0)
    clock.now = 2000.0
    again = lim.reserve_sender("+15005550006", [1], 1.0, 2000.0, 2.0)
    assert again.starts == pytest.approx((2000.0,))


def test_limiter_tells_each_buckets_slots_as_they_are_taken(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock, rate=100)  # 10 slots a bucket
    told: list[list[tuple[int, float]]] = []

    def granted(slots: list[tuple[int, float]]) -> None:
        told.append(slots)
        clock.now += 0.05  # DynamoDB's answer takes time: the next bucket is asked later

    times = lim.schedule([1000.5] * 25, 2.0, granted)
    assert [len(bucket) for bucket in told] == [10, 10, 5]
    assert [i for bucket in told for i, _ in bucket] == list(range(25))
    assert [t for bucket in told for _, t in bucket] == times


def test_limiter_uses_every_slot_it_takes_even_past_the_horizon(dynamodb: Any) -> None:
    # The horizon ends mid-bucket: the bucket's slots are taken whole, so all are used (a slot
    # the counter handed out and no call used would be lost to the account for good).
    clock = Clock(1000.0)
    a, b = limiter(dynamodb, clock, rate=100), limiter(dynamodb, clock, rate=100)
    first = a.schedule([1000.5] * 10, 0.55)
    second = b.schedule([1000.5] * 10, 2.0)
    assert first == pytest.approx([1000.5 + i * 0.01 for i in range(10)])
    assert second == pytest.approx([1000.6 + i * 0.01 for i in range(10)])
