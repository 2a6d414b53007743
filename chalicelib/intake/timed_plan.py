"""When a planned job's rows go: the release loop run on a simulated clock.

The release step (chalicelib.release.releaser) asks chalicelib.core.slices.next_slice for each
slice of the job's rows; the plan asks it the same questions from the job's start, its clock
jumping to each slice's end (or to the opening or new day it waits for), so the plan's times are
the loop's own. A slice covers up to `window_seconds` of rows and a wait is one step, so a plan
takes about rows / chunk size + waits steps, never one per row.

The daily caps are the job's max_per_day and the account's daily limit as if the job were the
account's only one: other jobs sending the same day would push its rows later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from chalicelib.core.slices import Caps, Group, Slice, Window, next_slice
from chalicelib.core.windows import SendWindow
from chalicelib.errors import CallqueueError
from chalicelib.intake.timing import utc_text
from chalicelib.intake.zoning import openings, zones_text

NO_WINDOW = "no window"


class PlanStuck(CallqueueError):
    """next_slice answered a wait that does not move the clock: a defect, not the user's."""


@dataclass(frozen=True)
class ZoneTimes:
    """The rows of one set of zones (merged when two sets read the same): how many go, when
    the first and the last are due (None when none can go)."""

    label: str
    zones: tuple[str, ...]
    rows: int
    first: float | None
    last: float | None
    never: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "zone": self.label,
            "rows": self.rows,
            "first": None if self.first is None else utc_text(self.first),
            "last": None if self.last is None else utc_text(self.last),
        }


@dataclass(frozen=True)
class Timeline:
    """The job from its start to its last row's due time, waits for windows and caps included."""

    start: float
    finish: float
    # Slices in which nothing could go: the loop waited for a window to open or a day to begin.
    waits: int
    # Rows whose windows never open again (next_slice's "never").
    never: int
    by_zone: tuple[ZoneTimes, ...]

    @property
    def eta_seconds(self) -> float:
        return self.finish - self.start

    @property
    def rows(self) -> int:
        return sum(zone.rows for zone in self.by_zone)

    def to_json(self) -> dict[str, object]:
        return {
            "start": utc_text(self.start),
            "finish": utc_text(self.finish),
            "eta_seconds": round(self.eta_seconds, 3),
            "waits": self.waits,
            "by_zone": [zone.to_json() for zone in self.by_zone],
            "never": self.never,
        }


def zone_label(zones: tuple[str, ...]) -> str:
    return zones_text(zones) if zones else NO_WINDOW


def timed_plan(
    groups: Mapping[tuple[str, ...], int],
    *,
    start: float,
    cps: int,
    window_seconds: int,
    window: SendWindow | None = None,
    max_per_day: int | None = None,
    daily_limit: int | None = None,
    account_zone: str = "UTC",
) -> Timeline:
    """`groups`: valid rows per set of possible zones, in the splitter's order (Plan.groups);
    `start`: when the first row may be due; `max_per_day` and `daily_limit` count days of
    `account_zone` (an IANA zone) from its midnight."""
    size = window_seconds * cps
    pending = [
        Group(zones, math.ceil(rows / size), rows) for zones, rows in groups.items() if rows > 0
    ]
    windows: list[Window | None] = [
        None if window is None or not g.zones else openings(window, g.zones) for g in pending
    ]
    days = _Days(ZoneInfo(account_zone), max_per_day, daily_limit)
    clock = _Clock(start, len(pending), cps)
    while True:
        caps, day = days.caps(clock.at)
        piece = next_slice(
            clock.at,
            pending,
            windows,
            cps=cps,
            window_seconds=window_seconds,
            chunk_size=size,
            caps=caps,
            turn=clock.turn,
        )
        days.count(day, piece.rows)
        pending = list(piece.groups)
        if not clock.advance(piece):
            break
    zones = [
        ZoneTimes(zone_label(g.zones), g.zones, g.taken, clock.first[i], clock.last[i], g.remaining)
        for i, g in enumerate(pending)
    ]
    merged = _by_label(zones)
    ends = [z.last for z in merged if z.last is not None]
    return Timeline(
        start=start,
        finish=max(ends, default=start),
        waits=clock.waits,
        never=sum(g.remaining for g in pending),
        by_zone=merged,
    )


class _Clock:
    """The simulated clock: where the loop is, and each group's first and last rows' times."""

    def __init__(self, start: float, groups: int, cps: int) -> None:
        self.at = start
        self.turn = 0
        self.waits = 0
        self.first: list[float | None] = [None] * groups
        self.last: list[float | None] = [None] * groups
        self._cps = cps

    def advance(self, piece: Slice) -> bool:
        """Take the slice's runs and move to the next; False when there is none."""
        self.turn += 1
        for run in piece.runs:
            if self.first[run.group] is None:
                self.first[run.group] = run.at
            self.last[run.group] = run.at + (run.count - 1) / self._cps
        if piece.next_at is None:
            return False
        if not piece.runs:
            if piece.next_at <= self.at:
                raise PlanStuck(
                    f"the release loop would wait at {utc_text(self.at)} without moving on"
                )
            self.waits += 1
        self.at = piece.next_at
        return True


def _by_label(zones: list[ZoneTimes]) -> tuple[ZoneTimes, ...]:
    """One entry per label, sorted by first due (those that never go last)."""
    merged: dict[str, ZoneTimes] = {}
    for zone in zones:
        seen = merged.get(zone.label)
        if seen is None:
            merged[zone.label] = zone
            continue
        merged[zone.label] = replace(
            seen,
            rows=seen.rows + zone.rows,
            first=_least(seen.first, zone.first),
            last=max((t for t in (seen.last, zone.last) if t is not None), default=None),
            never=seen.never + zone.never,
        )
    return tuple(sorted(merged.values(), key=lambda z: (z.first is None, z.first or 0.0, z.label)))


def _least(a: float | None, b: float | None) -> float | None:
    return min((t for t in (a, b) if t is not None), default=None)


class _Days:
    """Rows counted per day of the account's zone, for the caps (as the release step's)."""

    def __init__(self, zone: ZoneInfo, max_per_day: int | None, daily_limit: int | None) -> None:
        self._zone = zone
        limits = [n for n in (max_per_day, daily_limit) if n]
        self._limit = min(limits) if limits else None
        self._used: dict[str, int] = {}

    def caps(self, at: float) -> tuple[Caps, str]:
        if self._limit is None:
            return Caps(), ""
        local = datetime.fromtimestamp(at, self._zone)
        day = local.date().isoformat()
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
        ends = midnight.replace(tzinfo=self._zone).timestamp()
        left = max(0, self._limit - self._used.get(day, 0))
        return Caps(left_today=left, day_ends=ends), day

    def count(self, day: str, rows: int) -> None:
        if day:
            self._used[day] = self._used.get(day, 0) + rows
