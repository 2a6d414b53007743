"""The release loop's slices (chalicelib.core.slices): every row released once, in its group's
file order, only while its window is open, never faster than the job's rate, within the day's
cap; a job without windows released exactly as its chunks were before windows existed."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.slices import Caps, Group, Slice, groups_json, groups_of, next_slice


@dataclass(frozen=True)
class Intervals:
    """A window open in [start, end) intervals, sorted and disjoint."""

    spans: tuple[tuple[float, float], ...]

    def is_open(self, at: float) -> bool:
        return any(a <= at < b for a, b in self.spans)

    def next_open(self, at: float) -> float | None:
        for a, b in self.spans:
            if at < b:
                return max(a, at)
        return None

    def closes_at(self, at: float) -> float:
        for a, b in self.spans:
            if a <= at < b:
                return b
        raise AssertionError(f"closed at {at}")


def chunked(rows: int, size: int) -> Group:
    return Group(zones=("Z",), chunks=math.ceil(rows / size), rows=rows)


def drain(
    groups, windows, *, cps, window_seconds, chunk_size, start=1000.0, caps_for=None, limit=10_000
) -> tuple[list[Slice], list[tuple[int, int, int, float]]]:
    """Every slice from `start` until nothing is left: the slices and every row as
    (group, chunk, index in chunk, due)."""
    slices, rows = [], []
    at: float | None = start
    turn = 0
    while at is not None and len(slices) < limit:
        caps = caps_for(at, rows) if caps_for else Caps()
        piece = next_slice(
            at,
            groups,
            windows,
            cps=cps,
            window_seconds=window_seconds,
            chunk_size=chunk_size,
            caps=caps,
            turn=turn,
        )
        slices.append(piece)
        for run in piece.runs:
            for k in range(run.count):
                rows.append((run.group, run.chunk, run.first + k, run.at + k / cps))
        groups = list(piece.groups)
        assert piece.next_at is None or piece.next_at > at or piece.runs, (
            "a slice that does not move on"
        )
        at = piece.next_at
        turn += 1
    return slices, rows


def test_one_open_group_is_released_as_its_chunks_at_start_plus_k_windows() -> None:
    cps, window = 10, 60
    group = Group(zones=(), chunks=4, rows=2_000)
    slices, _ = drain([group], [None], cps=cps, window_seconds=window, chunk_size=cps * window)
    runs = [run for s in slices for run in s.runs]
    assert [(r.chunk, r.first, r.count) for r in runs] == [
        (0, 0, 600),
        (1, 0, 600),
        (2, 0, 600),
        (3, 0, 200),
    ]
    assert [r.at for r in runs] == [1000.0, 1060.0, 1120.0, 1180.0]
    assert slices[-1].next_at is None and slices[-1].waiting == ""


def test_rows_wait_for_their_window_and_the_wait_is_one_slice() -> None:
    group = chunked(50, 100)
    window = Intervals(((5000.0, 5003.0), (9000.0, 99_999.0)))
    first = next_slice(1000.0, [group], [window], cps=10, window_seconds=900, chunk_size=100)
    assert first.runs == () and first.waiting == "closed" and first.next_at == 5000.0
    second = next_slice(5000.0, first.groups, [window], cps=10, window_seconds=900, chunk_size=100)
    # 3 seconds open at 10 CPS: 30 rows, never one at or after the close.
    assert [(r.first, r.count, r.at) for r in second.runs] == [(0, 30, 5000.0)]
    third = next_slice(
        second.next_at, second.groups, [window], cps=10, window_seconds=900, chunk_size=100
    )
    assert third.runs == () and third.next_at == 9000.0


def test_a_group_closing_before_its_next_slot_waits_for_its_next_opening() -> None:
    window = Intervals(((1000.0, 1000.05), (2000.0, 3000.0)))
    piece = next_slice(1000.0, [chunked(5, 10)], [window], cps=1, window_seconds=60, chunk_size=10)
    assert piece.runs == () and piece.next_at == 2000.0


def test_the_days_cap_stops_the_slice_and_the_next_day_goes_on() -> None:
    group = Group(zones=(), chunks=1, rows=100)
    capped = next_slice(
        0.0, [group], [None], cps=10, window_seconds=60, chunk_size=100, caps=Caps(25, 86_400.0)
    )
    assert capped.rows == 25
    none_left = next_slice(
        capped.next_at,
        capped.groups,
        [None],
        cps=10,
        window_seconds=60,
        chunk_size=100,
        caps=Caps(0, 86_400.0),
    )
    assert none_left.runs == () and none_left.waiting == "capped" and none_left.next_at == 86_400.0


def test_a_slice_never_crosses_the_days_end_when_a_cap_applies() -> None:
    group = Group(zones=(), chunks=1, rows=1000)
    piece = next_slice(
        86_390.0,
        [group],
        [None],
        cps=10,
        window_seconds=60,
        chunk_size=1000,
        caps=Caps(500, 86_400.0),
    )
    assert piece.rows == 100 and piece.next_at == pytest.approx(86_400.0)


def test_rows_that_can_never_open_are_said_so() -> None:
    piece = next_slice(
        0.0, [chunked(3, 10)], [Intervals(())], cps=1, window_seconds=60, chunk_size=10
    )
    assert piece.runs == () and piece.next_at is None and piece.waiting == "never"


def test_groups_round_trip_through_json() -> None:
    groups = [Group(("America/New_York",), 2, 150, 20), Group((), 1, 3)]
    assert groups_of(groups_json(groups)) == groups


def test_a_waiting_group_joins_at_its_opening() -> None:
    always, later = Group((), 1, 1000), Group(("Z",), 1, 1000)
    piece = next_slice(
        0.0,
        [always, later],
        [None, Intervals(((30.0, 1e9),))],
        cps=10,
        window_seconds=900,
        chunk_size=1000,
    )
    # The slice ends when the second group opens, so it takes turns from then on: the open
    # groups go first in turn, one slice each while their chunks last.
    assert piece.next_at == pytest.approx(30.0)
    windows = [None, Intervals(((30.0, 1e9),))]
    turns = []
    at, groups = piece.next_at, piece.groups
    for turn in (1, 2, 3):
        step = next_slice(
            at, groups, windows, cps=10, window_seconds=60, chunk_size=1000, turn=turn
        )
        turns.append(step.runs[0].group)
        at, groups = step.next_at, step.groups
    assert turns == [1, 0, 1]


spans = st.lists(st.tuples(st.floats(0, 5000), st.floats(0.5, 2000)), min_size=0, max_size=4).map(
    lambda items: _disjoint(items)  # noqa: PLW0108 - defined below
)


def _disjoint(items: list[tuple[float, float]]) -> Intervals:
    out: list[tuple[float, float]] = []
    for offset, length in sorted(items):
        start = offset + 1000.0
        if out and start <= out[-1][1]:
            continue
        out.append((start, start + length))
    return Intervals(tuple(out))


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 120), min_size=1, max_size=4),
    windows=st.lists(st.one_of(st.none(), spans), min_size=4, max_size=4),
    cps=st.integers(1, 40),
    window_seconds=st.integers(5, 120),
    chunk_size=st.integers(1, 90),
    daily=st.one_of(st.none(), st.integers(1, 200)),
)
def test_every_row_once_in_order_inside_its_window_and_never_faster_than_the_rate(
    sizes, windows, cps, window_seconds, chunk_size, daily
) -> None:
    groups = [Group(("Z",), math.ceil(rows / chunk_size), rows) for rows in sizes]
    windows = windows[: len(groups)]
    day = 700.0

    def caps_for(at: float, released: list) -> Caps:
        if daily is None:
            return Caps()
        today = math.floor(at / day)
        used = sum(1 for *_, due in released if math.floor(due / day) == today)
        return Caps(daily - used, (today + 1) * day)

    slices, rows = drain(
        groups,
        windows,
        cps=cps,
        window_seconds=window_seconds,
        chunk_size=chunk_size,
        caps_for=caps_for,
    )
    final = slices[-1]
    never = final.waiting == "never"
    # Once: no (group, chunk, index) twice; all of them unless some group can never open.
    seen = [(g, c, i) for g, c, i, _ in rows]
    assert len(seen) == len(set(seen))
    if not never:
        assert len(rows) == sum(sizes)
    # In order within each group, and each row inside its group's window.
    for g in range(len(groups)):
        mine = [(c, i, due) for gg, c, i, due in rows if gg == g]
        positions = [c * chunk_size + i for c, i, _ in mine]
        assert positions == list(range(len(mine)))
        if windows[g] is not None:
            assert all(windows[g].is_open(due) for *_, due in mine)
    # Never faster than the rate: sorted times are at least 1/cps apart.
    times = sorted(due for *_, due in rows)
    assert all(b - a >= 1 / cps - 1e-6 for a, b in itertools.pairwise(times))
    if daily is not None:
        per_day: dict[int, int] = {}
        for *_, due in rows:
            per_day[math.floor(due / day + 1e-9)] = per_day.get(math.floor(due / day + 1e-9), 0) + 1
        assert max(per_day.values(), default=0) <= daily
