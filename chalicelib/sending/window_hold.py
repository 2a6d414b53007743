"""Rows a pause moved past their send window's close: they wait for the window to open again.

A run of rows is released inside its group's send window (chalicelib.core.slices), and the
release step stamps when that window closes on each row (`until`). Resuming a paused job moves
the rows already on the queue by the pause; a row moved past its close would reach a recipient
outside their hours. The sender holds it instead: the row's new time is the window's next opening
plus how far past the close it was moved (so the held rows keep their spacing), and it goes back on
the queue until then, up to SQS's 15 minutes at a time.
"""

from __future__ import annotations

from dataclasses import replace

from chalicelib.core.jobs import Job
from chalicelib.core.records import QueuedRow
from chalicelib.core.slices import groups_of
from chalicelib.core.windows import SendWindow
from chalicelib.intake.zoning import openings


def held_for_window(row: QueuedRow, job: Job | None, at: float) -> QueuedRow | None:
    """The row moved to its window's next opening when `at` (its time after the pause) is at or
    past the close of the window it was released in; None when it may go at `at`."""
    if not row.until or at < row.until or job is None:
        return None
    window = SendWindow.parse(job.send_window, job.send_days)
    groups = groups_of(job.groups)
    if window is None or not 0 <= row.group < len(groups) or not groups[row.group].zones:
        return None
    hours = openings(window, groups[row.group].zones)
    opening = hours.next_open(at)
    if opening is None:
        # No opening within the look-ahead: look again after SQS's longest delay.
        return replace(row, due_at=at + 900.0)
    due = opening + (at - row.until)
    if not hours.is_open(due):
        due = opening
    return replace(row, due_at=due, until=hours.closes_at(due))
