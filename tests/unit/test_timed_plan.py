"""The timed plan (chalicelib.intake.timed_plan): the release loop's slices on a simulated clock.
Every row is planned once or counted as never, each zone's first row is due inside its window,
no group goes faster than the job's rate, a job without windows or caps ends as its chunks do,
caps push rows to later days, and the simulation takes a step per slice, not per row."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.schedule import Schedule
from chalicelib.core.slices import next_slice
from chalicelib.core.windows import SendWindow
from chalicelib.intake import timed_plan as module
from chalicelib.intake.timed_plan import NO_WINDOW, timed_plan, zone_label
from chalicelib.intake.zoning import openings


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_without_window_or_cap_the_job_ends_as_its_chunks_do() -> None:
    timeline = timed_plan({(): 2_000}, start=1_000.0, cps=10, window_seconds=60)
    (only,) = timeline.by_zone
    assert (only.label, only.rows, only.first, only.last) == (NO_WINDOW, 2_000, 1_000.0, 1_199.9)
    assert (timeline.finish, timeline.waits, timeline.never) == (1_199.9, 0, 0)


@settings(deadline=None)
@given(rows=st.integers(1, 5_000), cps=st.integers(1, 100), window=st.integers(1, 900))
def test_without_window_or_cap_the_eta_is_the_schedules(rows: int, cps: int, window: int) -> None:
    timeline = timed_plan({(): rows}, start=0.0, cps=cps, window_seconds=window)
    assert timeline.eta_seconds == pytest.approx(Schedule(cps, window).eta_seconds(rows))
    assert timeline.rows == rows and timeline.waits == 0


def test_an_empty_plan_finishes_at_its_start() -> None:
    timeline = timed_plan({}, start=5.0, cps=1, window_seconds=1)
    assert (timeline.finish, timeline.by_zone, timeline.never) == (5.0, (), 0)


def test_zones_that_open_together_only_between_two_dst_changes() -> None:
    # 09:00-14:00 in both New York and London. US clocks go forward on 2026-03-08, the UK's on
    # 2026-03-29. In between, New York is UTC-4 (09:00-14:00 EDT = 13:00-18:00Z) and London UTC+0
    # (09:00-14:00Z): both open 13:00-14:00Z. Before and after, they share no minute.
    both = ("America/New_York", "Europe/London")
    window = SendWindow.parse("09:00-14:00")
    march = timed_plan(
        {both: 5}, start=utc("2026-03-10T06:00:00"), cps=1, window_seconds=60, window=window
    )
    assert march.by_zone[0].first == utc("2026-03-10T13:00:00")
    assert march.by_zone[0].label == "America/New_York, Europe/London"
    # From 1 April nothing opens within the 14 days next_slice looks ahead: never, not a hang.
    # London alone is open at 12:00Z (13:00 BST), so its rows go.
    april = timed_plan(
        {both: 5, ("Europe/London",): 3},
        start=utc("2026-04-01T12:00:00"),
        cps=1,
        window_seconds=60,
        window=window,
    )
    assert april.never == 5 and april.rows == 3
    assert [(z.label, z.rows, z.never) for z in april.by_zone] == [
        ("Europe/London", 3, 0),
        ("America/New_York, Europe/London", 0, 5),
    ]
    assert april.by_zone[1].first is None
    assert april.finish == utc("2026-04-01T12:00:02")
    assert april.to_json()["by_zone"][1] == {  # type: ignore[index]
        "zone": "America/New_York, Europe/London",
        "rows": 0,
        "first": None,
        "last": None,
    }


def test_labels_name_one_zone_a_few_or_the_ends_of_many() -> None:
    many = tuple(f"America/Zone{i:02d}" for i in range(42))
    assert zone_label(()) == NO_WINDOW
    assert zone_label(("Asia/Tokyo",)) == "Asia/Tokyo"
    assert zone_label(many) == "America/Zone00 ... America/Zone41 (42 zones)"


def test_groups_that_read_the_same_are_one_entry() -> None:
    # Two sets of five zones with the same ends and count: one line, their rows added.
    a = ("America/Chicago", "America/Denver", "America/Los_Angeles", "America/New_York", "UTC")
    b = ("America/Chicago", "America/Halifax", "America/Los_Angeles", "America/New_York", "UTC")
    a, b = tuple(sorted(a)), tuple(sorted(b))
    assert zone_label(a) == zone_label(b)
    timeline = timed_plan({a: 2, b: 3}, start=0.0, cps=1, window_seconds=10)
    assert [(z.rows, z.first, z.last) for z in timeline.by_zone] == [(5, 0.0, 4.0)]


@pytest.mark.parametrize(
    ("rows", "zone", "last"),
    [
        # 10 a day from 12:00Z on 6 March: 10 rows that day, the 11th at the next UTC midnight.
        (10, "UTC", "2026-03-06T12:00:09"),
        (11, "UTC", "2026-03-07T00:00:00"),
        (20, "UTC", "2026-03-07T00:00:09"),
        (25, "UTC", "2026-03-08T00:00:04"),
        # Days of New York: midnight EST is 05:00Z (the clocks change at 02:00 on 8 March).
        (25, "America/New_York", "2026-03-08T05:00:04"),
    ],
)
def test_max_per_day_pushes_the_rest_to_the_next_days_midnight(
    rows: int, zone: str, last: str
) -> None:
    timeline = timed_plan(
        {(): rows},
        start=utc("2026-03-06T12:00:00"),
        cps=1,
        window_seconds=60,
        max_per_day=10,
        account_zone=zone,
    )
    assert timeline.finish == utc(last)
    assert timeline.waits == math.ceil(rows / 10) - 1


def test_the_account_limit_and_the_jobs_cap_the_lower_wins() -> None:
    start = utc("2026-03-06T12:00:00")
    job = timed_plan(
        {(): 25}, start=start, cps=1, window_seconds=60, max_per_day=20, daily_limit=10
    )
    account = timed_plan({(): 25}, start=start, cps=1, window_seconds=60, max_per_day=10)
    assert job.finish == account.finish == utc("2026-03-08T00:00:04")


def test_a_long_plan_takes_a_step_per_slice_not_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return next_slice(*args, **kwargs)

    monkeypatch.setattr(module, "next_slice", counted)
    groups = {("America/New_York",): 60_000, ("Europe/London",): 30_000, ("Asia/Tokyo",): 10_000}
    timeline = timed_plan(
        groups,
        start=utc("2026-03-06T12:00:00"),
        cps=10,
        window_seconds=60,
        window=SendWindow.parse("09:00-12:00", "mon-fri"),
        max_per_day=40_000,
    )
    assert timeline.rows == 100_000 and timeline.finish > utc("2026-03-09T00:00:00")
    # 100,000 rows at 600 a slice: about 170 slices, and a few waits a day.
    assert len(calls) < 400


ZONE_SETS = [
    (),
    ("Europe/London",),
    ("America/New_York",),
    ("America/Los_Angeles",),
    ("Australia/Sydney",),
    ("Asia/Tokyo",),
    ("America/New_York", "Europe/London"),
    ("America/Chicago", "America/New_York"),
]


@st.composite
def windows(draw: st.DrawFn) -> SendWindow | None:
    if draw(st.booleans()):
        return None
    start = draw(st.integers(0, 23 * 60))
    end = draw(st.integers(start + 1, 24 * 60))
    hours = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    days = draw(st.sampled_from([None, "mon-fri", "sat,sun", "wed"]))
    return SendWindow.parse(hours, days)


@settings(max_examples=150, deadline=None)
@given(
    groups=st.dictionaries(st.sampled_from(ZONE_SETS), st.integers(0, 3_000), max_size=5),
    window=windows(),
    cps=st.integers(1, 20),
    window_seconds=st.integers(1, 300),
    max_per_day=st.one_of(st.none(), st.integers(1, 5_000)),
    start=st.floats(utc("2026-01-01T00:00:00"), utc("2026-12-31T00:00:00")),
)
def test_every_row_is_planned_once_inside_its_window_at_the_jobs_rate(
    groups: dict[tuple[str, ...], int],
    window: SendWindow | None,
    cps: int,
    window_seconds: int,
    max_per_day: int | None,
    start: float,
) -> None:
    timeline = timed_plan(
        groups,
        start=start,
        cps=cps,
        window_seconds=window_seconds,
        window=window,
        max_per_day=max_per_day,
    )
    total = sum(groups.values())
    assert timeline.rows == total - timeline.never
    assert sum(z.rows + z.never for z in timeline.by_zone) == total
    firsts = [z.first for z in timeline.by_zone if z.first is not None]
    assert firsts == sorted(firsts)
    for zone in timeline.by_zone:
        if zone.first is None or zone.last is None:
            assert zone.rows == 0
            continue
        assert start <= zone.first <= zone.last <= timeline.finish
        # Never faster than the job's rate.
        assert zone.last - zone.first >= (zone.rows - 1) / cps - 1e-6
        if window is not None and zone.zones:
            assert openings(window, zone.zones).is_open(zone.first)
    assert timeline.eta_seconds == timeline.finish - timeline.start >= 0
    if max_per_day is not None and timeline.rows:
        # A day takes at most max_per_day rows: the plan spans at least that many UTC days.
        days = int(timeline.finish // 86_400) - int(start // 86_400) + 1
        assert days >= math.ceil(timeline.rows / max_per_day)
