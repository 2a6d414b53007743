"""The pure part of the job reconciler: when a job is settled, its per-row outcome CSV, and when
a job has stalled. The reconciler (downstream/reconciler.py) does the reading and writing.

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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import IO

from chalicelib.records import FINAL_OUTCOMES

HEADER = ("row", "to", "api", "outcome", "error_code", "sid", "reason")
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


def job_settled(rows: int, rejected: int, final_counts: Mapping[str, int]) -> bool:
    """Whether every row of a job has its final outcome.

    `final_counts` are the results table's counts by outcome; "retrying" and any other name that
    is not a final outcome are ignored, and rejected rows are counted by the splitter, not there.
    """
    finished = sum(final_counts.get(o, 0) for o in FINAL_OUTCOMES if o != "rejected")
    return rejected + finished >= rows


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


def write_outcomes_csv(out: IO[str], outcomes: Iterable[RowOutcome]) -> int:
    """Write the outcome CSV (header, then one line per outcome) to `out`, which, if a file, is
    opened with newline=""; returns the rows written, not counting the header."""
    writer = csv.writer(out)
    writer.writerow(HEADER)
    written = 0
    for o in outcomes:
        values = (o.row, o.to, o.api, o.outcome, o.error_code, o.sid, o.reason)
        writer.writerow([_cell("" if v is None else str(v)) for v in values])
        written += 1
    return written


def is_stalled(last_update: float | None, now: float, *, after_seconds: float) -> bool:
    """Whether a job's progress, last seen changing at `last_update`, has stopped for
    `after_seconds`. A job with no recorded progress has nothing to measure from: not stalled."""
    return last_update is not None and now - last_update >= after_seconds


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
