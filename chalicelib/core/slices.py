"""What the release loop releases next: a slice of the job's rows, laid out in time.

A job's valid rows are split into groups, one per set of possible time zones (rows without a
window share one group that is always open), each group's rows in file order in chunks of
`chunk_size` rows (chalicelib.intake.splitter). A slice starts when the previous one's rows end
(or when a group opens, or a day's cap resets) and lasts at most `window_seconds`; in it the open
groups take turns, each a contiguous run of its next rows at the job's rate, so the job never goes
faster than its CPS however many windows open at once. A run never crosses its group's closing,
a chunk's end or the day's end when a cap applies, and a slice ends at the next opening of a
waiting group so that group joins at once. A job of one group that is always open is released
exactly as its chunks: chunk k at start + k * window.

Nothing here reads a clock or AWS: the release step (chalicelib.release.releaser) and the
planner (chalicelib.intake.timed_plan) call it, the planner many times with a simulated clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

# A run's row count is floor(seconds * cps) computed in floating point; this absorbs the error
# of a product such as 0.29 * 100 = 28.999999999999996.
_EPSILON = 1e-9


class Window(Protocol):
    """When a group may be sent (chalicelib.core.windows.Openings)."""

    def is_open(self, at: float) -> bool: ...

    def next_open(self, at: float) -> float | None: ...

    def closes_at(self, at: float) -> float: ...


@dataclass(frozen=True)
class Group:
    """Rows of one set of possible time zones, in chunks 0, 1, ... of the group's own
    (chalicelib.aws.buckets.group_chunk_key), and how many of them are out. A count, not a
    list of chunk numbers, so a job's record stays small whatever its number of chunks."""

    zones: tuple[str, ...]
    chunks: int
    rows: int
    taken: int = 0

    @property
    def remaining(self) -> int:
        return self.rows - self.taken

    def position(self, chunk_size: int) -> tuple[int, int, int]:
        """(the group's chunk, first row in it, rows left in it) of the group's next row."""
        index, first = divmod(self.taken, chunk_size)
        in_chunk = min(chunk_size, self.rows - index * chunk_size)
        return index, first, in_chunk - first

    def to_json(self) -> dict[str, Any]:
        return {
            "zones": list(self.zones),
            "chunks": self.chunks,
            "rows": self.rows,
            "taken": self.taken,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Group:
        return cls(
            zones=tuple(str(z) for z in data["zones"]),
            chunks=int(data["chunks"]),
            rows=int(data["rows"]),
            taken=int(data.get("taken", 0)),
        )


def groups_json(groups: Sequence[Group]) -> str:
    return json.dumps([g.to_json() for g in groups], separators=(",", ":"))


def groups_of(text: str | None) -> list[Group]:
    return [Group.from_json(item) for item in json.loads(text or "[]")]


@dataclass(frozen=True)
class Run:
    """`count` rows of the group's chunk `chunk` from its row `first`, the first due at `at`,
    one every 1/cps seconds."""

    group: int
    chunk: int
    first: int
    count: int
    at: float


@dataclass(frozen=True)
class Caps:
    """How many rows the slice may release today (None: no cap), and when the day ends (the
    next midnight in the account's time zone)."""

    left_today: int | None = None
    day_ends: float = math.inf


@dataclass(frozen=True)
class Slice:
    runs: tuple[Run, ...]
    groups: tuple[Group, ...]
    # When the next slice's first row may be due; None: nothing left to release.
    next_at: float | None
    # Why nothing was released ("closed": no group's window is open, "capped": today's cap is
    # reached, "never": the rows left can never open); "" when runs were released.
    waiting: str = ""

    @property
    def rows(self) -> int:
        return sum(run.count for run in self.runs)


def next_slice(
    start: float,
    groups: Sequence[Group],
    windows: Sequence[Window | None],
    *,
    cps: int,
    window_seconds: int,
    chunk_size: int,
    caps: Caps = Caps(),
    turn: int = 0,
) -> Slice:
    """The slice whose first row is due at `start`. `windows[i]` is group i's send window (None:
    always open); `turn` rotates which open group goes first, so no group always waits for the
    others within a slice."""
    pending = [i for i, g in enumerate(groups) if g.remaining > 0]
    if not pending:
        return Slice((), tuple(groups), None)
    if caps.left_today is not None and caps.left_today <= 0:
        if any(_opens_at_or_after(windows[i], caps.day_ends) for i in pending):
            return Slice((), tuple(groups), caps.day_ends, "capped")
        return Slice((), tuple(groups), None, "never")
    closed = [i for i in pending if not _open(windows[i], start)]
    horizon = min(start + window_seconds, caps.day_ends, *_openings(windows, closed, start))
    budget = math.floor((horizon - start) * cps + _EPSILON)
    if caps.left_today is not None:
        budget = min(budget, caps.left_today)
    order = [i for i in pending if i not in closed]
    if order:
        shift = turn % len(order)
        order = order[shift:] + order[:shift]
    runs: list[Run] = []
    taken = list(groups)
    at = start
    for i in order:
        if budget <= 0:
            break
        window = windows[i]
        if window is not None and not window.is_open(at):
            continue  # closed while the groups before it took their turns
        end = horizon if window is None else min(horizon, window.closes_at(at))
        chunk, first, left = taken[i].position(chunk_size)
        count = min(left, budget, math.floor((end - at) * cps + _EPSILON))
        if count <= 0:
            continue
        runs.append(Run(i, chunk, first, count, at))
        taken[i] = replace(taken[i], taken=taken[i].taken + count)
        at += count / cps
        budget -= count
    if runs:
        return Slice(tuple(runs), tuple(taken), at)
    # With a group open, nothing went only because the horizon was under one slot away.
    soon = horizon if order and budget == 0 else math.inf
    return _wait(start, soon, groups, [windows[i] for i in pending])


def _wait(
    start: float,
    horizon: float,
    groups: Sequence[Group],
    windows: Sequence[Window | None],
) -> Slice:
    """Nothing could go at `start`: the slice is the wait until something can. A group open at
    `start` that closes before its next row's slot waits for its next opening, not the next
    instant."""
    times = [horizon] if start < horizon < math.inf else []
    for window in windows:
        if window is None:
            continue
        opens = window.next_open(window.closes_at(start) if window.is_open(start) else start)
        if opens is not None and opens > start:
            times.append(opens)
    if not times:
        return Slice((), tuple(groups), None, "never")
    return Slice((), tuple(groups), min(times), "closed")


def _opens_at_or_after(window: Window | None, at: float) -> bool:
    return window is None or at == math.inf or window.next_open(at) is not None


def _open(window: Window | None, at: float) -> bool:
    return window is None or window.is_open(at)


def _openings(windows: Sequence[Window | None], indices: list[int], at: float) -> list[float]:
    """When each of these groups next opens after `at` (groups that never do are left out)."""
    found = []
    for i in indices:
        window = windows[i]
        if window is None:
            found.append(at)
            continue
        opens = window.next_open(at)
        if opens is not None and opens > at:
            found.append(opens)
        elif opens is not None:
            found.append(at)
    return found
