"""Send windows: when a row may be sent, from its recipient's local time.

A `SendWindow` is local hours on local days (08:00-21:00 on mon-fri). A number may lie in several
time zones (`zones_of_number`); `Openings` gives the instants at which the window is open in all
of them at once, as sorted UTC intervals, so a row waits for the most restrictive of its zones.

Local time comes from zoneinfo, so daylight saving is the zone database's, never a fixed offset.
The open set is exactly {t : every zone's wall clock at t is on an allowed day and in [start, end)}:
on a day the clocks go back, a window covering the repeated hour is open in both of its passes;
on a day they go forward, wall times in the skipped hour never occur, so a window starting inside
the gap opens when the clocks land after it (and one lying wholly inside the gap stays shut).
"""

from __future__ import annotations

import datetime
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones

from chalicelib.config import ConfigError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NUMBERS = {name: i for names in (DAY_NAMES, _FULL_NAMES) for i, name in enumerate(names)}
ALL_DAYS = frozenset(range(7))
# datetime.time has no 24:00: a window ending at midnight ends at time.max.
END_OF_DAY = datetime.time.max

# How far next_open looks ahead: a row whose zones share no window within it is refused, not held.
HORIZON_SECONDS = 14 * 86_400
# `never_opens` looks at a year from here (a Monday), so both daylight-saving states are seen and
# the answer does not depend on when it is asked.
NEVER_OPENS_REFERENCE = datetime.datetime(2026, 1, 5, tzinfo=datetime.UTC).timestamp()
NEVER_OPENS_SPAN_DAYS = 371

_DAY = 86_400
# Offsets are probed this far apart and transitions found by bisection; no zone changes its offset
# twice within six hours.
_PROBE_SECONDS = 6 * 3_600
# 1970-01-01, day 0 of the epoch, was a Thursday.
_EPOCH_WEEKDAY = 3
_HOURS = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*")
# Names that ZoneInfo loads but that are no place: the machine's own zone, and "unknown".
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})

Interval = tuple[float, float]


class BadSchedule(ConfigError):
    """A send window, day list or time zone that cannot be read; the message names the text."""


@dataclass(frozen=True)
class SendWindow:
    """Local hours and days on which rows may be sent, e.g. 08:00-21:00 on mon-fri."""

    start: datetime.time
    # Later than start: a window crossing midnight is refused. END_OF_DAY stands for 24:00.
    end: datetime.time
    # 0=Monday..6=Sunday.
    days: frozenset[int] = field(default=ALL_DAYS)

    def __post_init__(self) -> None:
        # A set given for days would make the frozen window unhashable.
        object.__setattr__(self, "days", frozenset(self.days))
        whole = [
            t.second == t.microsecond == 0 and t.tzinfo is None for t in (self.start, self.end)
        ]
        if not whole[0] or not (whole[1] or self.end == END_OF_DAY) or self.end <= self.start:
            raise BadSchedule(
                f"send window {self.start}-{self.end}: the end must be a whole minute later "
                "than the start on the same day"
            )
        if not self.days or not self.days <= ALL_DAYS:
            raise BadSchedule(
                f"send days {sorted(self.days)}: days must be some of 0 (mon)..6 (sun)"
            )

    @property
    def start_seconds(self) -> int:
        return self.start.hour * 3_600 + self.start.minute * 60

    @property
    def end_seconds(self) -> int:
        """Seconds after local midnight at which the window shuts (86,400 for 24:00)."""
        if self.end == END_OF_DAY:
            return _DAY
        return self.end.hour * 3_600 + self.end.minute * 60

    @classmethod
    def parse(cls, hours: str | None, days: str | None = None) -> SendWindow | None:
        """The window of `--send-window HOURS --send-days DAYS`; None when neither is given.

        hours: 'HH:MM-HH:MM' ('8:00' and an end of '24:00' allowed); days: a comma list of mon..sun
        or monday..sunday and ranges ('mon-fri', 'fri-mon' wraps), any case. Days alone mean
        00:00-24:00 on those days, hours alone every day.
        """
        if hours is None and days is None:
            return None
        start, end = (datetime.time(0), END_OF_DAY) if hours is None else _parse_hours(hours)
        return cls(start, end, ALL_DAYS if days is None else _parse_days(days))

    def spec(self) -> tuple[str, str]:
        """(hours, days) in canonical text, e.g. ('08:00-21:00', 'mon,wed-fri').

        parse(*spec()) == self.
        """
        end = "24:00" if self.end == END_OF_DAY else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}", _days_text(self.days)


def _parse_hours(text: str) -> tuple[datetime.time, datetime.time]:
    bad = BadSchedule(
        f"send window {text!r}: hours must be HH:MM-HH:MM between 00:00 and 24:00 "
        "(e.g. 08:00-21:00)"
    )
    found = _HOURS.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise bad
    sh, sm, eh, em = (int(g) for g in found.groups())
    if sm > 59 or em > 59 or sh > 23 or eh > 24 or (eh == 24 and em):
        raise bad
    start = datetime.time(sh, sm)
    end = END_OF_DAY if eh == 24 else datetime.time(eh, em)
    if end < start:
        raise BadSchedule(
            f"send window {text!r} crosses midnight, which is not supported: "
            "the end must be later than the start on the same day"
        )
    if end == start:
        raise BadSchedule(f"send window {text!r} is empty: the end must be later than the start")
    return start, end


def _parse_days(text: str) -> frozenset[int]:
    if not isinstance(text, str) or not text.strip():
        raise BadSchedule(f"send days {text!r}: give days such as mon-fri or sat,sun")
    days: set[int] = set()
    for item in text.split(","):
        if not item.strip():
            raise BadSchedule(f"send days {text!r}: an empty item between commas")
        ends = [_day_number(text, part) for part in item.split("-")]
        if len(ends) > 2:
            raise BadSchedule(f"send days {text!r}: {item.strip()!r} is not a day or a range")
        first, last = ends[0], ends[-1]
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(days)


def _day_number(text: str, name: str) -> int:
    number = _DAY_NUMBERS.get(name.strip().lower())
    if number is None:
        raise BadSchedule(
            f"send days {text!r}: {name.strip()!r} is not a day (mon..sun or monday..sunday, "
            "ranges like mon-fri)"
        )
    return number


def _days_text(days: frozenset[int]) -> str:
    """Runs of three or more days as ranges (mon-fri), shorter ones listed (sat,sun)."""
    parts: list[str] = []
    run: list[int] = []
    for day in [*range(7), 7]:
        if day in days:
            run.append(day)
            continue
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in run)
        run = []
    return ",".join(parts)


def zones_of_number(e164: str) -> tuple[str, ...]:
    """IANA zones a number may be in, sorted: its own, else its country's (a number outside the
    ranges libphonenumber maps, such as a test range, is somewhere in its country); () when
    phonenumbers knows none or cannot parse it."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = _known(phone_timezones.time_zones_for_number(number))
    if not zones:
        # time_zones_for_number answers Unknown for a number that is not valid (a test or
        # drama range); the country's zones are libphonenumber's own fallback for numbers it
        # cannot place, kept in this module-private function of its timezone module.
        country = phone_timezones._country_level_time_zones_for_number(number)
        zones = _known(country)
    return zones


def _known(zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({z for z in zones if z != phone_timezones.UNKNOWN_TIMEZONE}))


@cache
def _known_zones() -> frozenset[str]:
    # Clear with _known_zones.cache_clear() after changing zoneinfo's search path.
    return frozenset(available_timezones()) - _NOT_ZONES


def check_zone(name: str) -> str:
    """`name` stripped, when it is an IANA time zone; BadSchedule naming it otherwise."""
    key = name.strip() if isinstance(name, str) else ""
    if key in _known_zones():
        try:
            ZoneInfo(key)
            return key
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise BadSchedule(f"time zone {name!r} is not an IANA time zone (e.g. America/New_York)")


class Openings:
    """When `window` is open in every one of `zones` at once (the intersection of their windows).

    Computed per UTC day on demand and kept, so asking about many rows of one zone set is cheap;
    build one instance per zone set and reuse it.
    """

    def __init__(self, window: SendWindow, zones: tuple[str, ...]) -> None:
        if not zones:
            raise ValueError(
                "Openings needs at least one time zone; a row without one has no window"
            )
        self.window = window
        self.zones = tuple(sorted({check_zone(z) for z in zones}))
        self._infos = [ZoneInfo(z) for z in self.zones]
        self._days: dict[int, list[tuple[int, int]]] = {}

    def is_open(self, at: float) -> bool:
        return self._containing(at) is not None

    def next_open(self, at: float) -> float | None:
        """`at` when open, else the next opening; None when nothing opens within HORIZON_SECONDS."""
        if self.is_open(at):
            return at
        limit = at + HORIZON_SECONDS
        day = int(at // _DAY)
        while day * _DAY < limit:
            for start, end in self._day(day):
                if end > at:
                    return float(start) if start < limit else None
            day += 1
        return None

    def closes_at(self, at: float) -> float:
        """When the open interval holding `at` ends; at most `at + HORIZON_SECONDS` (a window open
        all week never ends: callers ask again then)."""
        end = self._containing(at)
        if end is None:
            raise ValueError(f"the window is not open at {at}")
        limit = at + HORIZON_SECONDS
        while end % _DAY == 0 and end < limit:
            following = self._day(end // _DAY)
            if not following or following[0][0] != end:
                break
            end = following[0][1]
        return float(min(end, limit))

    def intervals(self, since: float, until: float) -> list[Interval]:
        """The open intervals [start, end) overlapping [since, until), clipped, sorted, merged."""
        spans: list[tuple[int, int]] = []
        day = int(since // _DAY)
        while day * _DAY < until:
            spans.extend(self._day(day))
            day += 1
        clipped = ((max(float(lo), since), min(float(hi), until)) for lo, hi in _merge(spans))
        return [(lo, hi) for lo, hi in clipped if lo < hi]

    @property
    def never_opens(self) -> bool:
        """True when no instant is open in the year from NEVER_OPENS_REFERENCE (both DST states)."""
        first = int(NEVER_OPENS_REFERENCE // _DAY)
        return not any(self._day(d) for d in range(first, first + NEVER_OPENS_SPAN_DAYS))

    def _containing(self, at: float) -> int | None:
        """The end of the open interval (within its UTC day) holding `at`, or None."""
        spans = self._day(int(at // _DAY))
        i = bisect_right(spans, at, key=lambda span: span[0]) - 1
        if i >= 0 and spans[i][0] <= at < spans[i][1]:
            return spans[i][1]
        return None

    def _day(self, day: int) -> list[tuple[int, int]]:
        """The open intervals within UTC day `day` (days since the epoch), memoised."""
        spans = self._days.get(day)
        if spans is None:
            lo, hi = day * _DAY, (day + 1) * _DAY
            spans = [(lo, hi)]
            # Stop at the first zone that leaves nothing open.
            for zone in self._infos:
                if not spans:
                    break
                spans = _intersect(spans, _zone_spans(self.window, zone, lo, hi))
            self._days[day] = spans = _merge(spans)
        return spans


def _offset(zone: ZoneInfo, at: int) -> int:
    # A ZoneInfo always gives an offset; `or` only satisfies the type (a zero offset stays zero).
    offset = datetime.datetime.fromtimestamp(at, zone).utcoffset() or datetime.timedelta()
    return int(offset.total_seconds())


def _offset_pieces(zone: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """[lo, hi) cut where `zone`'s UTC offset changes: (start, end, offset) pieces."""
    pieces: list[tuple[int, int, int]] = []
    start, offset, probe = lo, _offset(zone, lo), lo
    while probe < hi - 1:
        ahead = min(probe + _PROBE_SECONDS, hi - 1)
        if _offset(zone, ahead) == offset:
            probe = ahead
            continue
        # The offset changes in (probe, ahead]: find the first second of the new one.
        before, after = probe, ahead
        while after - before > 1:
            middle = (before + after) // 2
            before, after = (middle, after) if _offset(zone, middle) == offset else (before, middle)
        pieces.append((start, after, offset))
        start, offset, probe = after, _offset(zone, after), after
    pieces.append((start, hi, offset))
    return pieces


def _zone_spans(window: SendWindow, zone: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """The instants in [lo, hi) at which `zone`'s wall clock is inside `window`, sorted."""
    spans: list[tuple[int, int]] = []
    for start, end, offset in _offset_pieces(zone, lo, hi):
        # Within a piece the wall clock reads t + offset; walk the local dates it shows.
        for local_day in range((start + offset) // _DAY, (end - 1 + offset) // _DAY + 1):
            if (local_day + _EPOCH_WEEKDAY) % 7 not in window.days:
                continue
            midnight = local_day * _DAY - offset
            opens = max(start, midnight + window.start_seconds)
            shuts = min(end, midnight + window.end_seconds)
            if opens < shuts:
                spans.append((opens, shuts))
    return spans


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The intersection of two sorted lists of disjoint intervals."""
    both: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            both.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return both


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted intervals, touching ones joined (a window over UTC midnight, or a DST change)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and merged[-1][1] >= lo:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
