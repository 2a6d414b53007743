"""The CSV reader: RFC 4180 with a required header row, UTF-8 with or without a BOM, LF, CRLF or
CR.

Header names are stripped and must be non-blank and unique regardless of case. Blank lines and
rows of bare commas are skipped and not counted. Quoting is strict: text after a closing quote
rejects the record. A quote left open at the end of the file makes that last record an error
(everything after the quote was read into it). Values are strings.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Final

from chalicelib.errors import CallqueueError
from chalicelib.intake.parsing.base import (
    MAX_CSV_RECORD_CHARS,
    MAX_FIELD_CHARS,
    ByteStream,
    FileFormatError,
    Record,
    binary_error,
    buffered,
    field_too_long,
)

# What UTF-16 byte order marks look like once decoded as UTF-8 with surrogateescape.
_UTF16_BOMS: Final = ("\udcff\udcfe", "\udcfe\udcff")
# surrogateescape turns each undecodable byte 0xNN into the lone surrogate U+DCNN; valid UTF-8
# never decodes to a lone surrogate, so finding one locates the bad bytes.
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")


class _OverlongRecordError(CallqueueError):
    """Raised through csv.reader when a one-line record outgrows MAX_CSV_RECORD_CHARS."""


class _CsvLines:
    """Feeds csv.reader one physical line at a time and keeps what csv.reader does not tell:
    how many lines and characters the current record took, and whether it held undecodable
    bytes. csv.reader pulls exactly the lines of one record per row, so the counters are reset
    between rows."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self.line_number = 0
        self.record_lines = 0
        self.record_chars = 0
        self.undecodable = False
        self.exhausted = False

    def start_record(self) -> None:
        self.record_lines = 0
        self.record_chars = 0
        self.undecodable = False

    @property
    def record_first_line(self) -> int:
        return self.line_number - self.record_lines + 1

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_CSV_RECORD_CHARS + 1)
        if not line:
            self.exhausted = True
            raise StopIteration
        self.line_number += 1
        self.record_lines += 1
        self.record_chars += len(line)
        if self.line_number == 1 and line.startswith(_UTF16_BOMS):
            raise FileFormatError('the file is UTF-16 text; save it as UTF-8 ("CSV UTF-8")')
        if "\x00" in line:
            raise binary_error(f"line {self.line_number}")
        if self.record_chars > MAX_CSV_RECORD_CHARS:
            if self.record_lines > 1:
                # Only a quoted field makes csv.reader ask for a second line, and it has run on
                # for too long to be a real field: with no way to tell where the record should
                # have ended, every later row is in doubt.
                raise FileFormatError(
                    f"a quoted field starting on line {self.record_first_line} runs past "
                    f"{MAX_CSV_RECORD_CHARS} characters; is a closing quote missing?"
                )
            if not line.endswith(("\n", "\r")):
                self._skip_rest_of_line()
            raise _OverlongRecordError
        if not line.isascii() and _UNDECODABLE.search(line):
            self.undecodable = True
        return line

    def _skip_rest_of_line(self) -> None:
        while True:
            chunk = self._text.readline(MAX_CSV_RECORD_CHARS)
            if not chunk or chunk.endswith(("\n", "\r")):
                return


def _is_blank(row: list[str]) -> bool:
    # Spreadsheets export trailing rows of bare commas; they are as empty as a blank line.
    return not any(field.strip() for field in row)


def _undecodable_byte(value: str) -> int | None:
    match = _UNDECODABLE.search(value)
    return None if match is None else ord(match.group()) - 0xDC00


def read_csv(stream: ByteStream) -> Iterator[Record]:
    text = io.TextIOWrapper(
        buffered(stream),
        encoding="utf-8-sig",
        # Keeps undecodable bytes as markers so the one record holding them can be rejected.
        errors="surrogateescape",
        # The csv module must see line endings untranslated to keep newlines inside quotes.
        newline="",
    )
    lines = _CsvLines(text)
    # strict: a stray character after a closing quote is an error rather than silently glued
    # onto the field, and an unclosed quote at the end of the file is reported.
    reader = csv.reader(lines, strict=True)
    header = _read_csv_header(reader, lines)
    number = 0
    while True:
        lines.start_record()
        try:
            row = next(reader)
        except StopIteration:
            break
        except _OverlongRecordError:
            number += 1
            yield Record(
                number, None, f"record {number} is longer than {MAX_CSV_RECORD_CHARS} characters"
            )
            continue
        except csv.Error as error:
            number += 1
            yield Record(number, None, _csv_error_reason(number, error, lines))
            continue
        if _is_blank(row):
            continue
        number += 1
        yield _csv_record(number, header, row, lines.undecodable)
    if number == 0:
        raise FileFormatError("the file has a header but no rows")


def _read_csv_header(reader: Iterator[list[str]], lines: _CsvLines) -> list[str]:
    while True:
        lines.start_record()
        try:
            row = next(reader)
        except StopIteration:
            raise FileFormatError("the file is empty") from None
        except _OverlongRecordError:
            raise FileFormatError(
                f"the header row is longer than {MAX_CSV_RECORD_CHARS} characters"
            ) from None
        except csv.Error as error:
            raise FileFormatError(f"the header row is not valid CSV: {error}") from None
        if not _is_blank(row):
            break
    if lines.undecodable:
        raise FileFormatError("the header row is not valid UTF-8; save the file as UTF-8")
    header = [name.strip() for name in row]
    seen: dict[str, str] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise FileFormatError(f"column {position} of the header has no name")
        # Columns are matched to Twilio parameters regardless of case, so "to" and "To" would
        # compete for the same parameter.
        earlier = seen.setdefault(name.casefold(), name)
        if earlier is not name:
            raise FileFormatError(f"the header names the column {name!r} twice")
    return header


def _csv_error_reason(number: int, error: csv.Error, lines: _CsvLines) -> str:
    if lines.exhausted:
        # The only error csv.reader raises once its input has run out: a quote still open.
        return (
            f"record {number} has an unbalanced quote: the quoted field that starts on line "
            f"{lines.record_first_line} is never closed, so the rest of the file was read into it"
        )
    return f"record {number} is not valid CSV: {error}"


def _csv_record(number: int, header: list[str], row: list[str], undecodable: bool) -> Record:
    if len(row) != len(header):
        return Record(
            number,
            None,
            f"record {number} has {len(row)} fields, the header has {len(header)}",
        )
    if not undecodable and max(map(len, row), default=0) <= MAX_FIELD_CHARS:
        # What _csv_record_by_field would find, at once: no field too long, none undecodable.
        return Record(number, dict(zip(header, row, strict=True)))
    return _csv_record_by_field(number, header, row, undecodable)


def _csv_record_by_field(
    number: int, header: list[str], row: list[str], undecodable: bool
) -> Record:
    """A record of as many fields as the header, its fields checked one at a time."""
    for name, value in zip(header, row, strict=True):
        if len(value) > MAX_FIELD_CHARS:
            return field_too_long(number, name)
        if undecodable:
            byte = _undecodable_byte(value)
            if byte is not None:
                return Record(
                    number,
                    None,
                    f"record {number} is not valid UTF-8 (byte 0x{byte:02x} in column "
                    f"{name!r}); save the file as UTF-8",
                )
    return Record(number, dict(zip(header, row, strict=True)))
