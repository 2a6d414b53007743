"""The pure part of the job reconciler: when a job is settled, its per-row outcome CSV, and when
a job has stalled (its rows stopped moving, or it stays in a state that should move on). The
reconciler (downstream/reconciler.py) does the reading and writing.

The outcome CSV is meant to be opened in a spreadsheet, and some of its cells carry what the
uploaded file or Twilio said (a rejected row's reason can quote any cell). A cell that starts with
=, +, -, @, a tab or a carriage return would be read as a formula (CSV injection), so it is written
with a leading apostrophe: the spreadsheet shows it as text. A program gets the value back by
dropping an apostrophe that comes before one of those characters, unless the value itself began
with an apostrophe (a rejection reason quoting a value does; it is written as it is, already inert).

One exception: a cell that is `+` followed by ASCII digits only, an E.164 number, is written as
it is. Almost every `to` cell is one, and such a cell cannot call a function, refer to a cell or
start DDE: a spreadsheet reads it as a plain number (at worst showing it without its +). An
apostrophe would change the value of every number in the file, so it could no longer be matched
against the uploaded file or the results table.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import IO

# job_settled lives beside the job record: the API asks it too, and chalicelib never imports
# downstream.
from chalicelib.core.jobs import Job, job_settled
from chalicelib.core.schedule import Schedule

__all__ = ["job_settled"]

# What became of a sent row later, from Twilio's status callbacks (chalicelib.core.delivery):
# the latest status, its error code, when it came (ISO 8601, UTC), and a call's length and who
# answered it.
DELIVERY_HEADER = (
    "delivery_status",
    "delivery_error_code",
    "delivered_at",
    "call_duration",
    "answered_by",
)
HEADER = (
    "row",
    "to",
    "api",
    "outcome",
    "error_code",
    "sid",
    "reason",
    "reference",
    *DELIVERY_HEADER,
)
REJECTS_HEADER = ["row", "reason"]

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+[0-9]+")


@dataclass(frozen=True)
class RowOutcome:
    """The final outcome of one row of a job's file."""

    row: int
    to: str | None
    api: str | None
    outcome: str
    # A Twilio error code, or `cancelled` for a row of a cancelled job.
    error_code: int | str | None
    sid: str | None
    # Why the splitter rejected the row; None for every other outcome.
    reason: str | None
    # The row's own columns that travelled with it: `reference` and the kept ones.
    carried: Mapping[str, str] = field(default_factory=dict)
    delivery_status: str | None = None
    delivery_error_code: int | None = None
    delivered_at: float | None = None
    call_duration: int | None = None
    answered_by: str | None = None


def merge_outcomes(
    rejected: Iterable[tuple[int, str]], results: Iterable[RowOutcome]
) -> Iterator[RowOutcome]:
    """Every row's outcome in row order: the splitter's (row, reason) rejections and the rows
    recorded by the results sink, each given in any order.

    Raises ValueError (before yielding anything) if a row has two outcomes: the splitter sends
    only valid rows on, so that means the inputs are wrong, and no CSV should be written.
    """
    merged = [
        RowOutcome(
            row=row, to=None, api=None, outcome="rejected", error_code=None, sid=None, reason=why
        )
        for row, why in rejected
    ]
    merged.extend(results)
    # Both sources arrive in row order, so this sort only merges two sorted runs.
    merged.sort(key=lambda o: o.row)
    for before, after in pairwise(merged):
        if before.row == after.row:
            raise ValueError(f"row {after.row} has two outcomes: {before.outcome}, {after.outcome}")
    return iter(merged)


def _cell(value: str) -> str:
    if value.startswith(_FORMULA_PREFIXES) and not _E164.fullmatch(value):
        return "'" + value
    return value


def outcome_header(kept: Sequence[str] = (), job_id: bool = False) -> list[str]:
    """The outcome CSV's columns: the job's (with `job_id` first for a file of several jobs, as
    `callqueue run --outcomes` writes), then the columns the job kept, by their names."""
    return [*(["job_id"] if job_id else []), *HEADER, *kept]


def outcome_cells(o: RowOutcome, kept: Sequence[str] = ()) -> list[str]:
    """One row of the outcome CSV under outcome_header(kept), each cell made inert."""
    values = (o.row, o.to, o.api, o.outcome, o.error_code, o.sid, o.reason)
    delivery = (
        o.delivery_status,
        o.delivery_error_code,
        None if o.delivered_at is None else iso_utc(o.delivered_at),
        o.call_duration,
        o.answered_by,
    )
    carried = [o.carried.get(name) for name in kept]
    cells = (*values, o.carried.get("reference"), *delivery, *carried)
    return [_cell("" if v is None else str(v)) for v in cells]


def iso_utc(at: float) -> str:
    """A time as outcomes.csv writes it: ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_outcomes_csv(
    out: IO[str], outcomes: Iterable[RowOutcome], kept: Sequence[str] = ()
) -> int:
    """Write the outcome CSV (header, then one line per outcome) to `out`, which, if a file, is
    opened with newline=""; returns the rows written, not counting the header. `kept`: the
    user's columns the job kept, after `reference`."""
    writer = csv.writer(out)
    writer.writerow(outcome_header(kept))
    written = 0
    for o in outcomes:
        writer.writerow(outcome_cells(o, kept))
        written += 1
    return written


def is_stalled(last_update: float | None, now: float, *, after_seconds: float) -> bool:
    """Whether a job's progress, last seen changing at `last_update`, has stopped for
    `after_seconds`. A job with no recorded progress has nothing to measure from: not stalled."""
    return last_update is not None and now - last_update >= after_seconds


# The splitter Lambda's timeout is 15 minutes (.chalice/config.json) and S3 retries a failed
# invocation: a job still splitting after 20 minutes has a split that is not coming back.
SPLITTING_STALLED_AFTER = 20 * 60.0
# The attempts after which the intake marks a job failed instead of splitting it again.
SPLIT_ATTEMPTS = 3
# A released job's rows are all due by its last row's time; a row is settled within a few
# minutes of it (sender retries, the sinks' batching windows). Past this, rows are missing.
RELEASED_OVERDUE_AFTER = 15 * 60.0
# A paused job waits for someone to resume or cancel it; a day later it has been forgotten.
PAUSED_STALLED_AFTER = 24 * 3600.0


def lifecycle_stall(job: Job, now: float) -> str | None:
    """Why a job that should have moved on by `now` has not, as a user reads it; None while it
    is within its time. Only the states a job is meant to leave on its own, or by a person:
    splitting, released (all chunks out, rows unaccounted for) and paused."""
    if job.state == "splitting":
        if job.split_attempts >= SPLIT_ATTEMPTS:
            return None  # the intake fails it: not stalled, finished
        # A split that outlasts one invocation goes on in parts: stalled only when no part has
        # gone on for as long as a split may take.
        since = max(job.created_at, job.split_progress_at or job.created_at)
        if now - since < SPLITTING_STALLED_AFTER:
            return None
        reason = f"still splitting {round((now - job.created_at) / 60)} minutes after upload"
        if job.split_progress_at is not None:
            reason += f", no part done for {round((now - since) / 60)} minutes"
        if job.split_attempts:
            reason += f" ({job.split_attempts} failed split attempts"
            reason += f", last: {job.error})" if job.error else ")"
        return reason
    if job.state == "released" and job.started_at is not None:
        last_due = _last_due(job, job.started_at)
        if now - last_due < RELEASED_OVERDUE_AFTER:
            return None
        return (
            f"every row was due {round((now - last_due) / 60)} minutes ago and some rows have"
            " no outcome yet"
        )
    if job.state == "paused" and job.paused_at is not None:
        if now - job.paused_at < PAUSED_STALLED_AFTER:
            return None
        return (
            f"paused for {round((now - job.paused_at) / 3600)} hours: resume it"
            f" (POST /jobs/{job.job_id}/resume) or cancel it"
        )
    return None


def _last_due(job: Job, started_at: float) -> float:
    """When a released job's last row was due: the release cursor's next slot is one slot past
    it (rows that waited for send windows or a daily cap were due later than the job's start
    plus its rows at its rate); a record without a cursor counts from the start."""
    if job.next_slot_at is not None and job.released_rows:
        return job.next_slot_at - 1 / job.cps
    return started_at + Schedule(job.cps, job.window_seconds).eta_seconds(job.valid)


def read_rejects_csv(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """The (row, reason) pairs of the splitter's rejects.csv, given as lines.

    Lines keep their endings (a file opened with newline="", or splitlines(keepends=True)):
    csv reads a reason with a line break in it as one cell only if the break is there.
    Reasons come back as the file holds them, with any apostrophe that neutralised a formula:
    they are only written on to another CSV, and a reason can start with an apostrophe of its
    own (a quoted value), so removing one could change it.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    if header != REJECTS_HEADER:
        raise ValueError(f"not a rejects file: header {header!r}")
    for record in reader:
        if not record:
            continue
        if len(record) != 2:
            raise ValueError(f"rejects file line {reader.line_num}: {len(record)} cells, not 2")
        yield int(record[0]), record[1]
