"""The shared rate limiter on DynamoDB (moto), with an injected clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.sending.limiter import LEAD_SECONDS, MAX_LATENCY_LEAD, RateLimiter
from tests.tables import create_rate_table
from tests.unit.test_slots import max_in_window

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


def test_limiter_two_senders_share_the_schedule_without_overlap(dynamodb: Any) -> None:
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
    # From now plus the lead (5 ms, and DynamoDB's time, none here), 1/rate apart.
    assert times == pytest.approx([1000.0173, 1000.0223])


def test_limiter_spaces_calls_due_together_one_over_the_rate_apart(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    times = limiter(dynamodb, clock, rate=20).schedule([1000.5] * 3, 2.0)
    assert times == pytest.approx([1000.5, 1000.55, 1000.6])


def test_limiter_leaves_calls_beyond_the_horizon_without_a_slot(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock, rate=10)
    times = lim.schedule([1000.0] * 30, 2.0)
    granted = [t for t in times if t is not None]
    # 10 a second for 2 s, from now plus the lead; the rest are asked for again later.
    assert granted == pytest.approx([1000.005 + i * 0.1 for i in range(20)])
    assert times[20:] == [None] * 10
    # The account is booked 2 s ahead: nothing more within the horizon, until time passes.
    assert lim.schedule([1000.0] * 10, 1.0) == [None] * 10
    clock.now += 1.5
    assert lim.schedule([1000.0], 1.0) == pytest.approx([1002.005])


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


def test_limiter_at_a_cut_rate_spaces_slots_wider(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock, increase=0.0, decrease=0.5)
    lim.congested()
    times = lim.schedule([1000.5] * 12, 2.0)
    assert times == pytest.approx([1000.5 + i * 0.01 for i in range(12)])  # 100 a second


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
    in_100ms = [t for t in granted if 1000.5 <= t < 1000.6]
    assert len(in_100ms) <= 20


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


def test_limiter_tells_the_slots_as_soon_as_they_are_booked(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock, rate=100)
    told: list[list[tuple[int, float]]] = []
    times = lim.schedule([1000.5 + i * 0.01 for i in range(25)][::-1], 0.2, told.append)
    # Two ticks' worth at most (20 of the 25), the earliest due first.
    assert [[i for i, _ in slots] for slots in told] == [list(range(24, 4, -1))]
    assert [t for slots in told for _, t in slots] == [times[i] for i in range(24, 4, -1)]
    assert times[:5] == [None] * 5


def test_limiter_gives_every_call_of_a_booking_its_slot_even_past_the_horizon(
    dynamodb: Any,
) -> None:
    # The horizon bounds where a booking may start; its slots are all given out (one booked and
    # given to no call would be lost to the account for good).
    clock = Clock(1000.0)
    a, b = limiter(dynamodb, clock, rate=100), limiter(dynamodb, clock, rate=100)
    first = a.schedule([1000.5] * 10, 0.55)
    second = b.schedule([1000.5] * 10, 2.0)
    assert first == pytest.approx([1000.5 + i * 0.01 for i in range(10)])
    assert second == pytest.approx([1000.6 + i * 0.01 for i in range(10)])


def test_limiter_after_an_idle_spell_books_from_now_not_from_the_old_schedule(
    dynamodb: Any,
) -> None:
    clock = Clock(1000.0)
    a, b = limiter(dynamodb, clock), limiter(dynamodb, clock)
    assert a.schedule([1000.5] * 10, 2.0) == pytest.approx([1000.5 + i * 0.005 for i in range(10)])
    clock.now = 1010.0  # the account's schedule ended at 1000.55: that time is past
    assert b.schedule([1009.0, 1009.1], 2.0) == pytest.approx([1010.005, 1010.01])
    assert a.schedule([1010.0], 2.0) == pytest.approx([1010.015])


def test_limiter_books_with_one_request_while_the_account_is_busy(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    lim = limiter(dynamodb, clock)
    requests: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.UpdateItem", lambda **kw: requests.append("UpdateItem")
    )
    lim.schedule([1000.0] * 10, 0.2)
    assert len(requests) == 1
    for _ in range(5):
        clock.now += 0.02
        lim.schedule([clock.now] * 4, 0.2)
    assert len(requests) == 1 + 5
    other = limiter(dynamodb, clock)  # has not seen the account: guesses "idle", is told not
    assert other.schedule([clock.now], 0.2) != [None]
    assert len(requests) == 1 + 5 + 2


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 2),  # which sender
            st.floats(0.0, 0.3),  # time passing before it asks
            st.integers(1, 30),  # how many calls it asks slots for
            st.booleans(),  # whether Twilio pushed back first (the sender cuts the rate)
        ),
        min_size=1,
        max_size=25,
    )
)
def test_no_two_slots_of_the_account_are_closer_than_one_over_its_rate(
    steps: list[tuple[int, float, int, bool]],
) -> None:
    # Senders with different views of the adaptive rate, asking at random moments: consecutive
    # slots of the whole account are never closer than 1/ceiling, to the microsecond (so a
    # sliding second holds at most `ceiling` calls), none is handed out twice, and none is
    # earlier than the moment it was asked for plus the lead. Epoch-scale times, as deployed;
    # every DynamoDB request takes 20 ms of the clock.
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_table(client, TABLE)
        clock = Clock(1_796_000_000.0)

        def answer_takes_time(**_: Any) -> None:
            clock.now += 0.02

        client.meta.events.register("before-call.dynamodb.*", answer_takes_time)
        senders = [limiter(client, clock, rate=50, cooldown=0.0) for _ in range(3)]
        slots: list[float] = []
        for which, wait, count, congested in steps:
            clock.now += wait
            if congested:
                senders[which].congested()
            asked = clock.now
            booked = [t for t in senders[which].schedule([asked] * count, 0.2) if t]
            assert all(t >= asked + LEAD_SECONDS - 1e-6 for t in booked)
            slots.extend(booked)
    ordered = sorted(slots)
    assert all(b - a >= 1 / 50 - 1e-6 for a, b in itertools.pairwise(ordered))


def test_one_slow_answer_costs_the_account_at_most_the_capped_lead(dynamodb: Any) -> None:
    # A sender whose answer came slow books ahead by twice that, at most MAX_LATENCY_LEAD: the
    # account's time it skips (which no other sender can use) is bounded.
    clock = Clock(1000.0)
    slow, fast = limiter(dynamodb, clock), limiter(dynamodb, clock)

    def slow_answer(**_: Any) -> None:
        clock.now += 0.5

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", slow_answer)
    slow.schedule([clock.now], 0.2)
    dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", slow_answer)
    clock.now += 1.0  # the account is idle again
    fast_slot = fast.schedule([clock.now], 0.2)[0]
    assert fast_slot == pytest.approx(clock.now + LEAD_SECONDS)
    slow_slot = slow.schedule([clock.now], 0.2)[0]
    assert slow_slot == pytest.approx(clock.now + LEAD_SECONDS + MAX_LATENCY_LEAD)


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 5), st.floats(0.0, 0.05), st.integers(1, 80), st.booleans()),
        min_size=1,
        max_size=30,
    ),
    seed=st.integers(0, 2**32),
)
def test_senders_booking_a_sharded_schedule_keep_the_accounts_limits(
    steps: list[tuple[int, float, int, bool]], seed: int
) -> None:
    # At 1,000 CPS (990 with the headroom: five shards) six senders with their own views of the
    # rate book on whichever shards they pick, through DynamoDB's conditional writes: the slots
    # are distinct, 1/ceiling apart, and within 1,000 in any second and 101 in any 100 ms.
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_table(client, TABLE)
        clock = Clock(1_796_000_000.0)
        rng = random.Random(seed)
        senders = [
            limiter(client, clock, rate=990, cooldown=0.0, rng=random.Random(rng.random()))
            for _ in range(6)
        ]
        assert senders[0].grid.shards == 5
        slots: list[float] = []
        for which, wait, count, congested in steps:
            clock.now += wait
            if congested:
                senders[which].congested()
            slots.extend(t for t in senders[which].schedule([clock.now] * count, 0.2) if t)
    ordered = sorted(slots)
    assert all(b - a >= 1 / 990 - 1e-6 for a, b in itertools.pairwise(ordered))
    assert max_in_window(slots, 1.0) <= 1000
    assert max_in_window(slots, 0.1) <= 101


def test_a_sender_new_to_a_busy_sharded_schedule_books_with_one_request(dynamodb: Any) -> None:
    clock = Clock(1000.0)
    keys: set[str] = set()
    while len(keys) < 5:  # every shard of the 1,000-CPS schedule booked ahead
        limiter(dynamodb, clock, rate=990).schedule([clock.now] * 40, 0.2)
        keys = {i["pk"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]}
    requests: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.UpdateItem", lambda **kw: requests.append("UpdateItem")
    )
    # Booked ahead, not beyond a 2-s horizon: it books, moving a shard on, with one write.
    assert None not in limiter(dynamodb, clock, rate=990).schedule([clock.now] * 10, 2.0)
    assert requests == ["UpdateItem"]
