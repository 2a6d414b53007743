"""A file's records, each either a valid call or a rejection: what the splitter and the planner
both read, so they always agree on rows, valid and rejected."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from chalicelib.parsing import Format, read_records
from chalicelib.records import CallRequest
from chalicelib.validation import InvalidRow, validate


@dataclass(frozen=True)
class Accepted:
    number: int
    request: CallRequest


@dataclass(frozen=True)
class Rejected:
    number: int
    reason: str


def checked_rows(stream: BinaryIO, fmt: Format) -> Iterator[Accepted | Rejected]:
    """Raises parsing.FileFormatError when the file cannot be read at all."""
    for record in read_records(stream, fmt):
        if record.error is not None or record.fields is None:
            yield Rejected(record.number, record.error or "unreadable record")
            continue
        try:
            yield Accepted(record.number, validate(record.fields))
        except InvalidRow as error:
            yield Rejected(record.number, str(error))
