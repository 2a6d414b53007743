"""Which time zones a row's recipient may be in, for its send window: the row's `time_zone`
column when it has one, else the zones libphonenumber gives its number (all of the country's
when the number's own are unknown). Lookup rows and rows without a phone number to call (a
SIP address, an e-mail for Verify) have none and are never held by a window.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from chalicelib.core.records import CallRequest
from chalicelib.core.windows import BadSchedule, Openings, SendWindow, check_zone, zones_of_number

# The column a row may name its recipient's zone in (matched regardless of case).
TIME_ZONE_COLUMN: Final = "time_zone"


class ZoneRejected(BadSchedule):
    """A row that cannot be held for its window: its reason is the row's rejection."""


def time_zone_of(fields: dict[str, object]) -> str | None:
    for name in _zone_columns(tuple(fields)):
        value = fields[name]
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


@lru_cache(maxsize=256)
def _zone_columns(names: tuple[str, ...]) -> tuple[str, ...]:
    # Per set of column names, not per record: a CSV file's records share theirs.
    return tuple(name for name in names if name.strip().lower() == TIME_ZONE_COLUMN)


def row_zones(request: CallRequest, time_zone: str | None) -> tuple[str, ...]:
    """The zones the row's window is kept in; () for a row no window holds."""
    if time_zone is not None:
        try:
            return (check_zone(time_zone),)
        except BadSchedule as error:
            raise ZoneRejected(f"{TIME_ZONE_COLUMN}: {error}") from None
    if request.api == "lookup":
        return ()
    to = request.params.get("To")
    if not isinstance(to, str):
        return ()
    number = to.split(":", 1)[1] if to.lower().startswith("whatsapp:") else to
    if not number.startswith("+"):
        return ()
    return zones_of_number(number)


@lru_cache(maxsize=512)
def openings(window: SendWindow, zones: tuple[str, ...]) -> Openings:
    """One Openings per window and set of zones: it memoises its intervals."""
    return Openings(window, zones)


def zones_text(zones: tuple[str, ...]) -> str:
    """A set of zones as a person reads it: up to four named, more as first ... last (n zones)."""
    if len(zones) <= 4:
        return ", ".join(zones)
    return f"{zones[0]} ... {zones[-1]} ({len(zones)} zones)"


def checked_zones(
    request: CallRequest, time_zone: str | None, window: SendWindow
) -> tuple[str, ...]:
    """The row's zones under `window`; ZoneRejected when they share no hour of it."""
    zones = row_zones(request, time_zone)
    if zones and openings(window, zones).never_opens:
        hours, days = window.spec()
        raise ZoneRejected(
            f"its possible time zones ({zones_text(zones)}) share no time of the send window "
            f"{hours} {days}; give the row a {TIME_ZONE_COLUMN} column"
        )
    return zones
