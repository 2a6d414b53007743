"""A file's records, each either a valid call or a rejection: what the splitter and the planner
both read, so they always agree on rows, valid and rejected.

A record is rejected, never the file failed, for anything confined to it: a parsing error, an
invalid value, a row too large to travel (chalicelib.core.limits.MAX_ROW_BYTES), or an unexpected
exception while it was validated (logged with its traceback, so the bug is seen and the rest of
the file still goes).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from chalicelib.core.limits import MAX_ROW_BYTES
from chalicelib.core.records import CallRequest, QueuedRow
from chalicelib.core.windows import SendWindow
from chalicelib.intake.carry import DEFAULT_CARRY, Carry
from chalicelib.intake.encoded import api_json, carried_member, compact, sized_from
from chalicelib.intake.parsing import ByteStream, Format, read_records
from chalicelib.intake.validation import InvalidRow, validate
from chalicelib.intake.validation.templates import FileColumns, JobParams
from chalicelib.intake.zoning import ZoneRejected, checked_zones, time_zone_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    number: int
    request: CallRequest
    # The row's `time_zone` column as given (checked only when the job has a send window).
    time_zone: str | None = None
    # The request's parameters as compact JSON, written once (chalicelib.intake.encoded).
    params_json: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Rejected:
    number: int
    reason: str


# A queued row with its own fields at their widest: an 80-character job id (the longest
# splitter.job_id_of gives), times of 18 characters and counters far past their bounds. A row is
# measured inside it, so its verdict is the same in whatever job it travels (the planner knows
# no job id) and on every attempt. A queued row is larger than its line in a chunk file.
_WIDEST: Final = QueuedRow(
    job_id="j" * 80,
    row=0,
    api="messages",
    params={},
    due_at=9_999_999_999.999_999,
    attempt=999,
    job_start=9_999_999_999.999_999,
    doubts=999,
    until=9_999_999_999.999_999,
    group=999_999,
    released_at=9_999_999_999.999_999,
    run_at=9_999_999_999.999_999,
)


def travelling_bytes(number: int, request: CallRequest) -> int:
    """The size of a row as it is sent: a QueuedRow's compact JSON, non-ASCII escaped as the
    send queue writes it (escaping never makes a row smaller than its UTF-8 form, so this is
    the larger of the two)."""
    queued = replace(
        _WIDEST, row=number, api=request.api, params=request.params, carried=request.carried
    )
    return len(json.dumps(queued.to_json(), separators=(",", ":")).encode())


# The widest queued row with row 0, api "" and params {}: each row adds its own members' lengths.
_EMPTY_QUEUED: Final = travelling_bytes(0, CallRequest("", {}))  # type: ignore[arg-type]


def encoded_bytes(number: int, request: CallRequest, params_json: str) -> int:
    """travelling_bytes from the parameters' compact JSON, without serialising them again."""
    return sized_from(
        _EMPTY_QUEUED, number, api_json(request.api), params_json, carried_member(request.carried)
    )


def too_large_reason(size: int) -> str:
    return (
        f"row is {size:,} bytes as sent; the limit is {MAX_ROW_BYTES:,} "
        "(SQS/SNS carry at most 256 KiB with Twilio's response)"
    )


def checked_rows(
    stream: ByteStream,
    fmt: Format,
    default_region: str | None = None,
    *,
    params: JobParams | None = None,
    carry: Carry = DEFAULT_CARRY,
    skip: int = 0,
) -> Iterator[Accepted | Rejected]:
    """Raises parsing.FileFormatError when the file cannot be read at all, and its subclass
    templates.MissingColumn when a job-wide parameter names a column the file does not have.
    `default_region`: the region phone numbers in national format are read in (None: they are
    rejected); `params`: the job-wide parameters, rendered into each row that takes them;
    `carry`: the user's columns that travel with each row (its reference), never sent; `skip`:
    how many records to read without yielding them (a split resumed after them).

    A CSV file's columns are its header, known at its first readable record, so a job-wide
    template naming another column fails there. JSON records each have their own keys: a record
    without the column is rejected, and the file fails at its end if no record had it."""
    params = params or JobParams()
    columns = FileColumns(params, fmt)
    records = read_records(stream, fmt)
    for record in itertools.islice(records, skip):
        # Split by an earlier invocation (chalicelib.intake.checkpoint): read, not checked again.
        if record.error is None and record.fields is not None:
            columns.see(record.fields)
    for record in records:
        if record.error is not None or record.fields is None:
            yield Rejected(record.number, record.error or "unreadable record")
            continue
        columns.see(record.fields)
        yield _checked(record.number, record.fields, default_region, params, carry)
    columns.finish()


def _checked(
    number: int,
    fields: dict[str, object],
    default_region: str | None = None,
    params: JobParams | None = None,
    carry: Carry = DEFAULT_CARRY,
) -> Accepted | Rejected:
    try:
        valid = validate(fields, default_region, params)
        carried = carry.carried_of(fields)
        # validate's request carries nothing: it is the row's request when the row has nothing
        # to carry either.
        request = CallRequest(valid.api, valid.params, carried=carried) if carried else valid
        params_json = compact(request.params)
        size = encoded_bytes(number, request, params_json)
    except InvalidRow as error:
        return Rejected(number, str(error))
    except Exception as error:
        # One row must not fail the file: the row is rejected with the exception's type (its
        # message may quote the row) and the traceback is logged for whoever fixes the bug.
        log.exception("record %d could not be validated", number)
        return Rejected(number, f"could not be read: {type(error).__name__}")
    if size > MAX_ROW_BYTES:
        return Rejected(number, too_large_reason(size))
    return Accepted(number, request, time_zone_of(fields), params_json)


def zoned(
    item: Accepted | Rejected, window: SendWindow | None
) -> tuple[Accepted | Rejected, tuple[str, ...]]:
    """The row and its zones under `window` (() without one); a row whose zones share no time
    of the window is rejected with the splitter's reason."""
    if not isinstance(item, Accepted) or window is None:
        return item, ()
    try:
        return item, checked_zones(item.request, item.time_zone, window)
    except ZoneRejected as error:
        return Rejected(item.number, str(error)), ()
