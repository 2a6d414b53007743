"""List requests: paging (PageSize, Page and Twilio-style PageToken cursors), the filters on a
field or a time, and the page bodies (2010-04-01's relative ``*_page_uri``s, v2's ``meta``)."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

from callqueue.local.emulator.core import Form, Json, _ApiError, _first
from callqueue.local.emulator.store import _Stored

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# How a list shows one of its records.
View = Callable[[_Stored], Json]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parse_date_param(name: str, value: str) -> float:
    text = value.strip()
    if _DATE.fullmatch(text):
        text += "T00:00:00+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _ApiError(400, 20001, f"Invalid value for {name}: {value}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _int_param(query: Form, name: str, default: int, low: int, high: int) -> int:
    text = _first(query, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _ApiError(400, 20001, f"Invalid value for {name}: {text}")
    return value


class _Listing:
    """One list request: its filters (each also kept for the page URIs) and its page."""

    def __init__(self, query: Form) -> None:
        self._query = query
        self.filters: list[tuple[str, str]] = []
        self._checks: list[Callable[[_Stored], bool]] = []
        self.page_size = _int_param(query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        self.page = _int_param(query, "Page", 0, 0, sys.maxsize)
        self.token = _first(query, "PageToken")

    def equal(
        self, name: str, field_of: Callable[[_Stored], object], *, value: str | None = None
    ) -> None:
        """Keep records whose field equals the query's `name` (or `value`, a path's, unlisted)."""
        wanted = value if value is not None else _first(self._query, name)
        if wanted is None:
            return
        if value is None:
            self.filters.append((name, wanted))
        self._checks.append(lambda record: field_of(record) == wanted)

    def addressed(self) -> None:
        """The To and From filters of an outbound resource (a message, a call)."""
        self.equal("To", lambda record: record.resource["to"])
        self.equal("From", lambda record: record.resource["from"])

    def dates(
        self, name: str, when: Callable[[_Stored], float | None], *, before_inclusive: bool
    ) -> None:
        """Twilio's `name`, `name>` (on or after) and `name<` (on or before for DateSent, before
        for StartTime) filters on a nullable time: a record without one never matches. Times
        compare at the whole second the resource shows."""

        def shown(record: _Stored) -> float | None:
            t = when(record)
            return None if t is None else float(math.floor(t))

        on_day = _first(self._query, name)
        if on_day is not None:
            self.filters.append((name, on_day))
            day = datetime.fromtimestamp(_parse_date_param(name, on_day), UTC).date()
            self._checks.append(
                lambda r: (
                    (t := shown(r)) is not None and datetime.fromtimestamp(t, UTC).date() == day
                )
            )
        after = _first(self._query, f"{name}>")
        if after is not None:
            self.filters.append((f"{name}>", after))
            lower = _parse_date_param(f"{name}>", after)
            self._checks.append(lambda r: (t := shown(r)) is not None and t >= lower)
        before = _first(self._query, f"{name}<")
        if before is not None:
            self.filters.append((f"{name}<", before))
            upper = _parse_date_param(f"{name}<", before)
            if before_inclusive:
                self._checks.append(lambda r: (t := shown(r)) is not None and t <= upper)
            else:
                self._checks.append(lambda r: (t := shown(r)) is not None and t < upper)

    def created_between(self, low_name: str, high_name: str) -> None:
        """Studio's DateCreatedFrom (on or after) and DateCreatedTo (before)."""
        low = _first(self._query, low_name)
        if low is not None:
            self.filters.append((low_name, low))
            lower = _parse_date_param(low_name, low)
            self._checks.append(lambda r: math.floor(r.created_at) >= lower)
        high = _first(self._query, high_name)
        if high is not None:
            self.filters.append((high_name, high))
            upper = _parse_date_param(high_name, high)
            self._checks.append(lambda r: math.floor(r.created_at) < upper)

    def _select(self, newest_first: Sequence[_Stored]) -> tuple[list[_Stored], bool, bool]:
        """This page's records and whether pages come before and after it. A PageToken is a
        cursor on the creation order of all records of the kind, not a position among those that
        match: a record that starts matching between two page requests (a message becoming
        sent) neither shifts later pages nor invalidates the cursor."""
        matching = [r for r in newest_first if all(check(r) for check in self._checks)]
        start = 0
        if self.token is not None:
            kind, sid = self.token[:2], self.token[2:]
            seq = next((r.seq for r in newest_first if r.sid == sid), None)
            if kind not in ("PA", "PB") or seq is None:
                raise _ApiError(400, 20001, f"Invalid value for PageToken: {self.token}")
            if kind == "PA":
                start = sum(1 for r in matching if r.seq >= seq)
            else:
                start = max(sum(1 for r in matching if r.seq > seq) - self.page_size, 0)
        items = matching[start : start + self.page_size]
        return items, start > 0, start + len(items) < len(matching)

    def _query_string(self, number: int, page_token: str | None) -> str:
        params = [*self.filters, ("PageSize", str(self.page_size)), ("Page", str(number))]
        if page_token is not None:
            params.append(("PageToken", page_token))
        return urlencode(params)

    def _window(
        self, newest_first: Sequence[_Stored]
    ) -> tuple[list[_Stored], str | None, str | None]:
        """This page's records, and the query strings of the pages before and after it (None
        where there is none)."""
        items, has_previous, has_next = self._select(newest_first)
        previous = self._query_string(self.page - 1, "PB" + items[0].sid) if has_previous else None
        following = self._query_string(self.page + 1, "PA" + items[-1].sid) if has_next else None
        return items, previous, following

    def page_2010(self, path: str, key: str, newest_first: Sequence[_Stored], view: View) -> Json:
        """A 2010-04-01 list page: relative ``*_page_uri``s, ``start`` and ``end``."""
        items, previous, following = self._window(newest_first)
        return {
            "end": self.page * self.page_size + max(len(items), 1) - 1,
            "first_page_uri": f"{path}?{self._query_string(0, None)}",
            key: [view(item) for item in items],
            "next_page_uri": None if following is None else f"{path}?{following}",
            "page": self.page,
            "page_size": self.page_size,
            "previous_page_uri": None if previous is None else f"{path}?{previous}",
            "start": self.page * self.page_size,
            "uri": f"{path}?{self._query_string(self.page, self.token)}",
        }

    def page_v2(self, url: str, key: str, newest_first: Sequence[_Stored], view: View) -> Json:
        """A v2 list page: absolute URLs under ``meta``."""
        items, previous, following = self._window(newest_first)
        return {
            key: [view(item) for item in items],
            "meta": {
                "first_page_url": f"{url}?{self._query_string(0, None)}",
                "key": key,
                "next_page_url": None if following is None else f"{url}?{following}",
                "page": self.page,
                "page_size": self.page_size,
                "previous_page_url": None if previous is None else f"{url}?{previous}",
                "url": f"{url}?{self._query_string(self.page, self.token)}",
            },
        }
