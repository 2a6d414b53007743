"""Rate changes of a running job (chalicelib.core.pace): rows released at the old rate keep their
order and take the new rate's spacing after the change, rows due before it or released after it
are left alone, changes compose, the record keeps only the changes that can still matter, and
the next slice follows the re-timed rows without skipping a window's opening."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from chalicelib.core.pace import (
    KEPT_AFTER_SECONDS,
    ROWS_AHEAD_SECONDS,
    RateChange,
    applied_through,
    changes_json,
    changes_of,
    next_slot,
    queued_end,
    retimed,
    with_change,
)
from chalicelib.core.records import QueuedRow

rates = st.integers(min_value=1, max_value=500)
times = st.floats(min_value=0, max_value=2000, allow_nan=False)


def run(first: float, count: int, cps: int) -> list[float]:
    """A run's rows' times, as the release step lays them out."""
    return [first + k / cps for k in range(count)]


def test_retimed_by_hand() -> None:
    # 10 CPS -> 20 CPS at t=100: a row due at 110 is now 5 s after the change.
    change = RateChange(100.0, 10, 20)
    assert retimed(110.0, 50.0, [change]) == 105.0
    # Slower: 20 -> 5 at 100, a row due at 102 goes to 108.
    assert retimed(102.0, 50.0, [RateChange(100.0, 20, 5)]) == 108.0
    # Due at the change itself: untouched.
    assert retimed(100.0, 50.0, [change]) == 100.0


@given(
    released=st.floats(min_value=0, max_value=100),
    first=st.floats(min_value=100, max_value=1000),
    count=st.integers(min_value=2, max_value=200),
    old=rates,
    new=rates,
    at=times,
)
def test_rows_keep_their_order_and_take_the_new_spacing_after_the_change(
    released: float, first: float, count: int, old: int, new: int, at: float
) -> None:
    assume(at > released)
    before = run(first, count, old)
    after = [retimed(due, released, [RateChange(at, old, new)]) for due in before]
    assert after == sorted(after)
    for (a, b), (x, y) in zip(pairwise(before), pairwise(after), strict=True):
        if a >= at:  # both due after the change: spaced at the new rate
            assert y - x == pytest.approx((b - a) * old / new)
            assert y - x >= 1 / new - 1e-9
        elif b <= at:  # both due before it: as they were
            assert (x, y) == (a, b)
        else:  # the change falls between them: the later one comes no sooner than the change
            assert x == a and at <= y <= max(b, at + (b - at) * old / new) + 1e-9
    # No row is moved to before the change, and none due before it moves.
    assert all(t2 >= min(t1, at) - 1e-9 for t1, t2 in zip(before, after, strict=True))


@given(due=times, released=times, at=times, old=rates, new=rates)
def test_rows_due_before_the_change_or_released_after_it_are_untouched(
    due: float, released: float, at: float, old: int, new: int
) -> None:
    change = RateChange(at, old, new)
    if due <= at or released >= at:
        assert retimed(due, released, [change]) == due
    else:
        assert retimed(due, released, [change]) != due or old == new


@given(due=st.floats(min_value=500, max_value=2000), a=rates, b=rates, c=rates)
def test_two_changes_compose(due: float, a: int, b: int, c: int) -> None:
    first, second = RateChange(100.0, a, b), RateChange(200.0, b, c)
    through_first = retimed(due, 0.0, [first])
    assert retimed(due, 0.0, [first, second]) == pytest.approx(
        retimed(through_first, 0.0, [second])
    )
    # Released between the two: only the second applies.
    assert retimed(due, 150.0, [first, second]) == retimed(due, 150.0, [second])
    # Back to the first rate: a row due after both keeps its place relative to the first
    # change scaled by a/b over (100, 200] and b/a after that.
    if a == c:
        assert retimed(due, 0.0, [first, second]) >= 100.0


@given(due=st.floats(min_value=300, max_value=2000), old=rates, new=rates)
def test_a_change_older_than_the_release_is_ignored(due: float, old: int, new: int) -> None:
    assert retimed(due, 250.0, [RateChange(200.0, old, new)]) == due


@given(
    released=st.floats(min_value=0, max_value=99),
    due=st.floats(min_value=100, max_value=2000),
    old=rates,
    new=rates,
)
def test_a_row_retimed_once_is_not_moved_again(
    released: float, due: float, old: int, new: int
) -> None:
    changes = [RateChange(100.0, old, new)]
    once = retimed(due, released, changes)
    assert retimed(once, applied_through(released, changes), changes) == once


def test_changes_round_trip_and_are_dropped_once_their_rows_are_due() -> None:
    changes = [RateChange(1.5, 10, 20, 500.0), RateChange(30.0, 20, 5, 800.0)]
    read = changes_of(changes_json(changes))
    assert read == changes and [c.until for c in read] == [500.0, 800.0]
    assert changes_of(None) == []
    # Written without its last row's time: at most a window plus the lead after it.
    assert changes_of("[[1.5,10,20]]")[0].until == 1.5 + ROWS_AHEAD_SECONDS == 911.5
    text = changes_json(changes)
    # At 600: the first change's rows were all due by 500 (over a minute ago): dropped.
    assert json.loads(with_change(text, RateChange(600.0, 5, 8, 600.0))) == [
        [30.0, 20, 5, 800.0],
        [600.0, 5, 8, 600.0],
    ]
    # Slower, the second's rows spread out again: they now end at 600 + 200 * 5.
    assert json.loads(with_change(text, RateChange(600.0, 5, 1, 600.0)))[0] == [30.0, 20, 5, 1600.0]
    # ... unless the job has a send window (its queued rows keep their times when it slows).
    assert json.loads(with_change(text, RateChange(600.0, 5, 1), stretch=False))[0][3] == 800.0
    # A minute's grace for a row delivered late.
    assert len(changes_of(with_change(text, RateChange(860.0, 5, 8)))) == 2
    assert len(changes_of(with_change(text, RateChange(860.1, 5, 8)))) == 1


@given(
    first=st.floats(min_value=0, max_value=900),
    rows=st.integers(min_value=1, max_value=500),
    cps=rates,
    steps=st.lists(st.tuples(st.floats(min_value=1, max_value=2000), rates), max_size=6),
    stretch=st.booleans(),
)
# Slower twice, then a change when the first change's rows would all be due but for the second.
@example(first=0.0, rows=501, cps=50, steps=[(5.0, 5), (45.0, 1), (70.0, 5)], stretch=True)
def test_the_record_follows_the_last_row_and_keeps_every_change_it_needs(
    first: float,
    rows: int,
    cps: int,
    steps: list[tuple[float, int]],
    stretch: bool,
) -> None:
    # A run released at 0, its first row at `first`, and rate changes made one after another,
    # as the API makes them. The record's end of the run is where the sender times its last
    # row, and while that row may still be queued the changes kept time it as all of them do.
    original = first + (rows - 1) / cps
    end, at = original, 0.0
    text: str | None = None
    applied: list[RateChange] = []
    for gap, new in steps:
        at += gap
        end = queued_end((first, end), RateChange(at, cps, new), stretch=stretch)
        applied.append(RateChange(at, cps, new, end))
        text = with_change(text, applied[-1], stretch=stretch)
        cps = new
        timed = retimed(original, 0.0, applied, run_at=first, stretch=stretch)
        assert timed == pytest.approx(end)
        if timed >= at - KEPT_AFTER_SECONDS:
            kept = changes_of(text)
            assert retimed(original, 0.0, kept, run_at=first, stretch=stretch) == pytest.approx(
                timed
            )


def test_next_slot_follows_the_retimed_rows() -> None:
    # The last run, from 150 to 200 at 10 CPS; at 100 the rate doubles: it ends at 175, as
    # it keeps its start (it may be a window's opening).
    assert next_slot(200.0, (150.0, 200.0), RateChange(100.0, 10, 20)) == 175.0
    # Begun before the change: compressed from the change on.
    assert next_slot(200.0, (50.0, 200.0), RateChange(100.0, 10, 20)) == 150.0
    # Halved: stretched from the change, it ends at 300, and the next slice starts there.
    assert next_slot(200.0, (150.0, 200.0), RateChange(100.0, 10, 5)) == 300.0
    # ... unless the job has a send window: its queued rows keep their times.
    assert next_slot(200.0, (150.0, 200.0), RateChange(100.0, 10, 5), stretch=False) == 200.0
    # Nothing released yet (a scheduled job): its start stands.
    assert next_slot(5000.0, None, RateChange(100.0, 10, 5)) == 5000.0


def test_a_slice_waiting_for_a_window_keeps_its_opening() -> None:
    # Rows end at 120; the next slice waits for a window opening at 4000.
    assert next_slot(4000.0, (110.0, 120.0), RateChange(100.0, 10, 20)) == 4000.0
    assert next_slot(4000.0, (110.0, 120.0), RateChange(100.0, 10, 1)) == 4000.0
    # Much slower: the re-timed rows end after the opening, and the slice follows them.
    assert next_slot(150.0, (110.0, 120.0), RateChange(100.0, 10, 1)) == 300.0


@given(slot=times, run=times, length=times, at=times, old=rates, new=rates, stretch=st.booleans())
def test_the_next_slot_never_overlaps_the_retimed_rows(
    slot: float, run: float, length: float, at: float, old: int, new: int, stretch: bool
) -> None:
    until = run + length
    assume(until <= slot)
    change = RateChange(at, old, new)
    moved = next_slot(slot, (run, until), change, stretch=stretch)
    last = retimed(until, at - 1, [change], run_at=run, stretch=stretch)
    assert moved >= last - 1e-9
    if slot > until:  # a wait: never later than the opening unless the rows run past it
        assert moved == max(slot, last)
    else:
        assert moved == last


@given(
    run_at=times,
    offset=st.floats(min_value=0, max_value=900),
    at=times,
    old=rates,
    new=rates,
    stretch=st.booleans(),
)
def test_no_row_moves_before_its_run_began_or_past_its_window(
    run_at: float, offset: float, at: float, old: int, new: int, stretch: bool
) -> None:
    due = run_at + offset
    moved = retimed(due, -1.0, [RateChange(at, old, new)], run_at=run_at, stretch=stretch)
    assert moved >= min(due, run_at) - 1e-9
    if new < old:  # slower: only later, and not at all for a job with a send window
        assert moved >= due - 1e-9
        if not stretch:
            assert moved == due
    if new > old:  # faster: no later, and within the run as it was
        assert run_at - 1e-9 <= moved <= due + 1e-9


def test_queued_row_carries_its_release_time_and_old_messages_read() -> None:
    row = QueuedRow("j", 1, "messages", {"To": "+14155550100"}, 5.0, released_at=2.5, run_at=4.0)
    assert QueuedRow.from_json(json.loads(json.dumps(row.to_json()))) == row
    old = {k: v for k, v in row.to_json().items() if k not in ("released_at", "run_at")}
    assert (QueuedRow.from_json(old).released_at, QueuedRow.from_json(old).run_at) == (0.0, 0.0)
    # A retry's time is its backoff's: never re-timed by the rate.
    assert row.retry(9.0, 1.0).released_at == 0.0
