"""Changing a running job's rate: how rows already released at the old rate are re-timed.

A job's rows are released up to one window (at most 900 s) plus the release lead ahead of
their time, each due at a time the rate gave when it was released, in runs of one slot after
another. A rate change at time t re-times every such row still due after t: its distance from
an anchor is scaled by old / new, so the rows keep their order and take the new rate's
spacing. Slower, the anchor is t, so rows only move later and runs queued one after another
stay so; faster, it is the later of t and the row's run's first slot, so no row moves before
its run began (the job's start, a send window's opening, a day's reset all hold). A job with a
send window keeps its queued rows' times when it slows down: stretched, a run could pass its
window's closing; its next release is at the new rate. Rows due before t, and rows released
after it, are left as they are. The account's own limits are kept by the sender's limiter
whatever the job's rate.

Times here are on the job's clock: seconds after the job's start (Job.started_at), which a
resume moves by the pause, so a change made while the job is paused, and pauses before or
after a change, need no other adjustment. The change a pause interrupted is placed where the
job's clock stopped (its pause).

Nothing here reads a clock or AWS: the REST API records changes (chalicelib.api.rate), the
sender re-times its rows (chalicelib.sending.sender).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from chalicelib.config import MAX_WINDOW_SECONDS
from chalicelib.core.schedule import RELEASE_LEAD_SECONDS

# A row is released at most a window plus the lead before it is due (at the rate it was
# released at): how long a change re-times rows when its last one is not known.
ROWS_AHEAD_SECONDS = MAX_WINDOW_SECONDS + RELEASE_LEAD_SECONDS
# A change is kept this long after the last row it re-times is due, for a row delivered late.
KEPT_AFTER_SECONDS = 60.0


@dataclass(frozen=True)
class RateChange:
    """At `at` (seconds after the job's start) the job's rate went from `old` to `new` CPS.
    `until`: when the last row released before it is due, re-timed by it and by the slower
    changes after it (a faster one brings no row later). Once that is past the change re-times
    nothing still queued, and is dropped; a slower rate can push that far beyond a window."""

    at: float
    old: int
    new: int
    until: float = field(default=-math.inf, compare=False)


def retimed(
    due: float,
    released_at: float,
    changes: Sequence[RateChange],
    *,
    run_at: float = -math.inf,
    stretch: bool = True,
) -> float:
    """When a row released at `released_at` and due at `due` (at the rate of its release) is
    due after `changes`, in the order they were made. `run_at` is when the first row of its
    run was due: a faster rate never moves a row before it (a run starts at the job's start,
    a window's opening or a day's reset, which must hold). Without `stretch` (a job with a
    send window, whose runs end by their window's closing) a slower rate leaves it alone."""
    for change in changes:
        if change.at > released_at and (stretch or change.new >= change.old):
            due = _scaled(due, change, run_at)
    return due


def _scaled(due: float, change: RateChange, run_at: float) -> float:
    # Slower: rows only move later, and the runs queued one after another stay so.
    anchor = max(change.at, run_at) if change.new > change.old else change.at
    if due <= anchor:
        return due
    return anchor + (due - anchor) * change.old / change.new


def applied_through(released_at: float, changes: Sequence[RateChange]) -> float:
    """The release time a row re-timed by `changes` is given, so no change applies twice."""
    return max([released_at, *(c.at for c in changes)])


def changes_of(text: str | None) -> list[RateChange]:
    """A job record's `rate_changes` (JSON [[at, old, new, until], ...]; None: none)."""
    changes = []
    for item in json.loads(text or "[]"):
        at = float(item[0])
        until = float(item[3]) if len(item) > 3 else at + ROWS_AHEAD_SECONDS
        changes.append(RateChange(at, int(item[1]), int(item[2]), until))
    return changes


def changes_json(changes: Sequence[RateChange]) -> str:
    return json.dumps([[c.at, c.old, c.new, c.until] for c in changes], separators=(",", ":"))


def with_change(text: str | None, change: RateChange, *, stretch: bool = True) -> str:
    """The record's changes with `change` added, and those whose rows are all due dropped.
    `stretch` as for retimed."""
    kept = []
    for earlier in changes_of(text):
        until = earlier.until
        if stretch and change.new < change.old:
            until = _scaled(until, change, -math.inf)
        if until >= change.at - KEPT_AFTER_SECONDS:
            kept.append(replace(earlier, until=until))
    return changes_json([*kept, change])


def queued_end(
    queued: tuple[float, float] | None, change: RateChange, *, stretch: bool = True
) -> float:
    """When the rows queued at `change` end after it: `queued` is the last released run's
    first and last-plus-one slots at the old rate (None: nothing released yet)."""
    if queued is None:
        return change.at
    run_at, until = queued
    if stretch or change.new >= change.old:
        return _scaled(until, change, run_at)
    return until


def next_slot(
    slot: float,
    queued: tuple[float, float] | None,
    change: RateChange,
    *,
    stretch: bool = True,
) -> float:
    """When the job's next slice may start after `change` (all times measured alike). `slot`
    is the recorded start; `queued` the last released run's first and last-plus-one slots at
    the old rate (None: nothing released yet). The slice follows that run as re-timed; a slice
    that waits for a send window to open or a day's cap to reset (its start later than the
    run's end) still waits for that, and no longer than the rows it follows."""
    if queued is None:
        return slot
    end = queued_end(queued, change, stretch=stretch)
    return end if slot <= queued[1] else max(slot, end)
