"""The sharded grid of the account's slots: shard counts, grid indexes, and bookings by many
senders, in any order, keeping the account's three limits."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.slots import SHARD_CPS, Grid, book, shard_count
from tests.unit.test_metering import max_in_window

LEAD = 0.005
EXPIRE_AFTER = 300.0


@pytest.mark.parametrize(
    ("ceiling", "shards"),
    [(1, 1), (198, 1), (SHARD_CPS, 1), (SHARD_CPS + 0.01, 2), (495, 3), (990, 5), (1980, 10)],
)
def test_shard_count_keeps_each_shard_within_its_share(ceiling: float, shards: int) -> None:
    assert shard_count(ceiling) == shards
    assert ceiling / shards <= SHARD_CPS


def test_a_grid_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="above 0"):
        Grid.for_ceiling(0)


@given(
    ceiling=st.floats(1, 2500),
    at=st.floats(1_700_000_000, 1_900_000_000),
    shard_pick=st.integers(0, 100),
)
def test_first_and_last_index_bracket_a_time_on_the_shards_own_slots(
    ceiling: float, at: float, shard_pick: int
) -> None:
    grid = Grid.for_ceiling(ceiling)
    shard = shard_pick % grid.shards
    first, last = grid.first_index(shard, at), grid.last_index(shard, at)
    spacing = grid.shards / ceiling
    assert grid.slot(shard, first) >= at - 1e-6
    assert grid.slot(shard, last) <= at + 1e-6
    assert grid.slot(shard, first) - grid.slot(shard, last) <= spacing + 1e-6
    if grid.shards > 1:  # on the grid: a whole index of the shard's own residue
        g = round(grid.slot(shard, first) * ceiling)
        assert g % grid.shards == shard


@given(ceiling=st.floats(1, 2500), rate=st.floats(0.5, 3000))
def test_a_step_is_at_least_one_slot_and_serves_the_rate(ceiling: float, rate: float) -> None:
    grid = Grid.for_ceiling(ceiling)
    step = grid.step(rate)
    assert step >= 1
    if rate <= ceiling:
        # The k shards in use at `rate` each take a call every k * ceiling / (n * rate) slots of
        # their own (ceiling / rate when all are in use, or there is one).
        k = grid.in_use(rate)
        expected = k * ceiling / (grid.shards * rate)
        assert float(step) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_one_shard_books_as_a_single_schedule_without_a_grid() -> None:
    grid = Grid.for_ceiling(200)
    first = grid.first_index(0, 1000.0123 + LEAD)
    booking = book(0, None, first, first + 400, 2, grid.step(200))
    assert booking is not None
    assert grid.slots(booking) == pytest.approx([1000.0173, 1000.0223])


def test_a_shard_booked_past_the_horizon_books_nothing() -> None:
    grid = Grid.for_ceiling(1980)
    first = grid.first_index(3, 1000.0)
    assert book(3, first + 50, first, first + 49, 5, Decimal(1)) is None
    assert book(3, first + 49, first, first + 49, 5, Decimal(1)) is not None


def test_pick_prefers_the_shard_free_soonest_and_an_unseen_one_first() -> None:
    grid = Grid.for_ceiling(1000)  # 5 shards
    known = {k: Decimal(10_000 + k) for k in range(5)}
    picks = {grid.pick(known, random.Random(seed)) for seed in range(50)}
    assert 4 not in picks  # the latest shard loses every comparison it is in
    del known[2]
    assert all(
        grid.pick(known, random.Random(seed)) == 2
        for seed in range(50)
        if 2 in random.Random(seed).sample(range(5), 2)
    )


# One booking: (sender, seconds passing first, calls wanted, the sender's view of the rate as a
# share of the ceiling, whether the shards' items expired (TTL) first).
STEP = st.tuples(
    st.integers(0, 7),
    st.one_of(st.floats(0.0, 0.3), st.just(EXPIRE_AFTER + 1.0)),
    st.integers(1, 60),
    st.floats(0.05, 1.0),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    cps=st.sampled_from([10, 150, 200, 201, 500, 1000, 2000]),
    steps=st.lists(STEP, min_size=1, max_size=60),
    skews=st.lists(st.floats(-LEAD, LEAD), min_size=8, max_size=8),
    seed=st.integers(0, 2**32),
)
def test_any_interleaving_of_bookings_keeps_the_accounts_three_limits(
    cps: int,
    steps: list[tuple[int, float, int, float, bool]],
    skews: list[float],
    seed: int,
) -> None:
    # Each booking is one atomic write on the shard it picked (DynamoDB's conditional write):
    # whatever order they land in, each sender's view of the rate, its clock (skewed by up to
    # the lead), and items expired by TTL (only once their slots are past), the account's slots
    # are distinct, at least 1/ceiling apart, at most CPS in any second and CPS/10 + 1 in any
    # 100 ms, and none is before its sender's own now plus the lead.
    ceiling = cps * 0.99
    grid = Grid.for_ceiling(ceiling)
    rng = random.Random(seed)
    items: dict[int, Decimal] = {}
    known: list[dict[int, Decimal]] = [{} for _ in skews]
    now, slots = 1_796_000_000.0, []
    for sender, wait, wanted, share, expired in steps:
        now += wait
        if expired and wait > EXPIRE_AFTER:
            items.clear()  # TTL: every item's time ended at least EXPIRE_AFTER ago
        own = now + skews[sender] + LEAD
        rate = ceiling * share
        shard = grid.pick(known[sender], rng)
        first = grid.first_index(shard, own)
        count = grid.block(wanted, 0.2, rate)
        last = grid.last_index(shard, own + 0.2)
        booking = book(shard, items.get(shard), first, last, count, grid.step(rate))
        if booking is None:
            known[sender][shard] = items[shard]
            continue
        items[shard] = known[sender][shard] = booking.end
        booked = grid.slots(booking)
        assert min(booked) >= own - 1e-6
        slots.extend(booked)
    ordered = sorted(slots)
    assert all(b - a >= 1 / ceiling - 1e-6 for a, b in itertools.pairwise(ordered))
    assert max_in_window(slots, 1.0) <= cps
    assert max_in_window(slots, 0.1) <= cps // 10 + 1


def test_one_shard_guesses_busy_only_from_what_it_saw() -> None:
    grid = Grid.for_ceiling(100)
    assert grid.guess_busy(Decimal(10), Decimal(10), float("inf")) is True
    assert grid.guess_busy(Decimal(9), Decimal(10), float("inf")) is False
    assert grid.guess_busy(None, Decimal(10), float("inf")) is False


def test_several_shards_guess_busy_unless_seen_idle_a_moment_ago() -> None:
    grid = Grid.for_ceiling(1000)
    assert grid.guess_busy(None, Decimal(10), float("inf")) is True  # never seen
    assert grid.guess_busy(None, Decimal(10), 0.01) is False  # just seen absent
    assert grid.guess_busy(Decimal(9), Decimal(10), 0.01) is False  # just seen idle
    assert grid.guess_busy(Decimal(9), Decimal(10), 0.5) is True  # seen idle long ago


@given(
    ceiling=st.floats(1.0, 3000.0),
    share=st.floats(0.001, 1.0),
)
def test_below_the_ceiling_the_shards_in_use_serve_the_rate_and_no_more(
    ceiling: float, share: float
) -> None:
    grid = Grid.for_ceiling(ceiling)
    rate = max(1.0, ceiling * share)
    k = grid.in_use(rate)
    assert 1 <= k <= grid.shards
    served = k * (ceiling / grid.shards) / float(grid.step(rate))
    assert served <= rate * (1 + 1e-6)
    # The fewest shards that serve it: one fewer could not, at one slot a call.
    assert (k - 1) * ceiling / grid.shards < rate * (1 + 1e-6)
    if rate <= ceiling / grid.shards:
        assert k == 1


@given(share=st.floats(0.001, 1.0), seed=st.integers(0, 2**16))
def test_bookings_pick_only_the_shards_in_use(share: float, seed: int) -> None:
    grid = Grid.for_ceiling(1980.0)
    rate = max(1.0, 1980.0 * share)
    rng = random.Random(seed)
    picked = {grid.pick({}, rng, rate) for _ in range(50)}
    assert picked <= set(range(grid.in_use(rate)))


def test_a_rate_a_concurrency_limit_allows_is_paced_evenly_on_a_sharded_grid() -> None:
    # 8 concurrent requests of 0.2 s on an account of 2,000 CPS (10 shards): 38 calls a second,
    # all on one shard, each at least a grid step less than 1/rate after the one before (the
    # slots round up to whole ones), never two within a few ms as ten shards' phases would.
    grid = Grid.for_ceiling(1980.0)
    rate = 38.0
    step = grid.step(rate)
    tat, times = None, []
    for at in (100.0, 100.1, 100.2, 100.3, 105.0, 105.05):
        first = grid.first_index(0, at)
        booking = book(0, tat, first, first + 10_000, 3, step)
        assert booking is not None
        tat = booking.end
        times.extend(grid.slots(booking))
    gaps = [b - a for a, b in itertools.pairwise(sorted(times))]
    assert min(gaps) >= 1 / rate - grid.shards / 1980.0
    assert {grid.pick({}, random.Random(s), rate) for s in range(20)} == {0}
