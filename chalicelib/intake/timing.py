"""A job's timing settings: when it starts, the send window in each recipient's local time, and
how many rows it may send in a day. The same names everywhere a job is described: object
metadata (x-amz-meta-start-at, -send-window, -send-days, -max-per-day), the job manifest and
POST /jobs (start_at, send_window, send_days, max_per_day), the command's options.

A start is ISO 8601 with an offset (2026-12-07T09:00:00-05:00, or Z) or relative ("in 2h",
"in 1h30m", "in 90s", "now"); a time without an offset is refused rather than guessed in some
zone. A start in the past means now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from chalicelib.core.jobs import Job
from chalicelib.core.windows import BadSchedule, SendWindow

_RELATIVE: Final = re.compile(r"in\s+((?:[0-9]+\s*[dhms]\s*)+)", re.IGNORECASE)
_PART: Final = re.compile(r"([0-9]+)\s*([dhms])", re.IGNORECASE)
_UNIT_SECONDS: Final = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# A start further ahead than this is a typo (a year for a month), not a campaign.
MAX_START_AHEAD_SECONDS: Final = 366 * 86_400
# More than any account sends in a day.
MAX_PER_DAY: Final = 100_000_000
NAMES: Final = ("start_at", "send_window", "send_days", "max_per_day")


def parse_start(text: str, now: float) -> float:
    """Epoch seconds of a start; BadSchedule names the text when it is not one."""
    given = text.strip()
    if given.lower() == "now":
        return now
    relative = _RELATIVE.fullmatch(given)
    if relative:
        seconds = sum(int(n) * _UNIT_SECONDS[u.lower()] for n, u in _PART.findall(relative[1]))
        at = now + seconds
    else:
        try:
            moment = datetime.fromisoformat(given.replace("z", "Z"))
        except ValueError:
            raise BadSchedule(
                f"start {text!r} is not a time: give ISO 8601 with an offset "
                "(2026-12-07T09:00:00-05:00) or 'in 2h'"
            ) from None
        if moment.tzinfo is None:
            raise BadSchedule(
                f"start {text!r} has no offset: add one (e.g. -05:00 or Z), "
                "so it is not read in the wrong zone"
            )
        at = moment.timestamp()
    if at - now > MAX_START_AHEAD_SECONDS:
        raise BadSchedule(f"start {text!r} is more than a year ahead")
    return at


def parse_max_per_day(value: object) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text[:12]) <= MAX_PER_DAY:
        raise BadSchedule(f"max per day {value!r} must be a whole number 1..{MAX_PER_DAY:,}")
    return int(text)


def utc_text(epoch: float) -> str:
    """ISO 8601 in UTC, to the second, as the job's settings carry a start."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class JobTiming:
    start_at: float | None = None
    window: SendWindow | None = None
    max_per_day: int | None = None

    @classmethod
    def of(cls, fields: Mapping[str, object], now: float) -> JobTiming:
        """The timing settings among `fields` (the names of NAMES, or with hyphens); absent or
        blank ones are unset. BadSchedule names the first bad one."""
        given = {k.replace("-", "_"): v for k, v in fields.items() if k.replace("-", "_") in NAMES}
        given = {k: v for k, v in given.items() if v is not None and str(v).strip()}
        for name in ("start_at", "send_window", "send_days"):
            if name in given and not isinstance(given[name], str):
                raise BadSchedule(f"{name} must be text, got {given[name]!r}")
        start = given.get("start_at")
        maximum = given.get("max_per_day")
        if isinstance(maximum, bool):
            raise BadSchedule(f"max per day {maximum!r} must be a whole number")
        return cls(
            start_at=None if start is None else parse_start(str(start), now),
            window=SendWindow.parse(_text(given.get("send_window")), _text(given.get("send_days"))),
            max_per_day=None if maximum is None else parse_max_per_day(maximum),
        )

    def merged(self, other: JobTiming, where: str) -> JobTiming:
        """These settings with `other`'s added; a setting both give differently is refused."""
        out = self
        for name in ("start_at", "window", "max_per_day"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is None:
                continue
            if mine is not None and mine != theirs:
                raise BadSchedule(f"{name} is given twice, differently, in {where}")
            out = replace(out, **{name: theirs})
        return out

    def fields(self) -> dict[str, str]:
        """The settings as text under NAMES' names (a job's metadata uses hyphens instead)."""
        out: dict[str, str] = {}
        if self.start_at is not None:
            out["start_at"] = utc_text(self.start_at)
        if self.window is not None:
            hours, days = self.window.spec()
            out["send_window"] = hours
            out["send_days"] = days
        if self.max_per_day is not None:
            out["max_per_day"] = str(self.max_per_day)
        return out

    def metadata(self) -> dict[str, str]:
        return {name.replace("_", "-"): value for name, value in self.fields().items()}

    def on_job(self, job: Job) -> Job:
        hours, days = self.window.spec() if self.window is not None else (None, None)
        return replace(
            job,
            start_at=self.start_at,
            send_window=hours,
            send_days=days,
            max_per_day=self.max_per_day,
        )

    @classmethod
    def of_job(cls, job: Job) -> JobTiming:
        window = SendWindow.parse(job.send_window, job.send_days)
        return cls(start_at=job.start_at, window=window, max_per_day=job.max_per_day)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
