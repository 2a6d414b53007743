"""Streaming readers for the files users drop in S3: CSV, JSON and JSON Lines.

Each reader takes a binary stream that promises only ``read(n)`` (botocore's StreamingBody: no seek,
no readline) and yields one Record per data record while holding a bounded window of the file, so a
file of a million rows needs no more memory than a file of ten.

Two kinds of failure, because they call for different actions:

- A problem confined to one record (wrong number of fields, bytes that are not UTF-8, an oversized
  field, a JSON value that is not an object, a bad JSON Lines line) becomes a Record carrying an
  error; the records around it are still read. One bad row must not sink a file of good ones.
- A problem that leaves the rest of the file unreadable raises FileFormatError, whose text is
  written for the user who uploaded the file.

The readers are generators. FileFormatError can therefore come after some records were already
yielded: invalid JSON half way through an array, a CSV quoted field that runs on past the record
limit, a NUL byte deep in the file. The caller decides what to do with the records it already has;
the splitter fails the whole job.

CSV: RFC 4180 with a required header row, UTF-8 with or without a BOM, LF, CRLF or CR. Header
names are stripped and must be non-blank and unique regardless of case. Blank lines and rows of
bare commas are skipped and not counted. Quoting is strict: text after a closing quote rejects the
record. A quote left open at the end of the file makes that last record an error (everything after
the quote was read into it). Values are strings.

JSON: ``{"messages": [...]}`` (other top-level keys are read and ignored) or a top-level array;
each element is a record and keeps its JSON types. JSON Lines: one object per non-blank line. In
both, a record nested deeper than MAX_JSON_DEPTH, or with a field longer than MAX_FIELD_CHARS
(a nested field counted as its compact JSON), is an error of that record. Depth is found by a
lexical scan before the record is decoded: json's decoder recurses once per level.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

Format = Literal["csv", "json", "jsonl"]

FORMATS_BY_SUFFIX: Final[dict[str, Format]] = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

# No Twilio parameter comes near this (Body is limited to 1,600 characters, Twiml to 4,000); a
# longer field is a broken file, not data.
MAX_FIELD_CHARS: Final = 64 * 1024

# Bounds what one CSV record may hold in memory, quotes and line breaks included. Equal to the csv
# module's default field_size_limit, so the module's own limit (process-wide state we leave alone)
# can never be what stops a record.
MAX_CSV_RECORD_CHARS: Final = 128 * 1024

# Bounds one JSON array element or one JSON Lines line.
MAX_JSON_RECORD_CHARS: Final = 1024 * 1024

# No Twilio parameter nests (ContentVariables is one object of strings); a deeper record is
# hostile or broken, and json.loads and json.dumps recurse once per level.
MAX_JSON_DEPTH: Final = 32

# S3 returns data in chunks of this order; larger reads only grow the window.
READ_SIZE: Final = 64 * 1024

_UTF8_BOM: Final = "\ufeff"
_NUL: Final = b"\x00"
# What UTF-16 byte order marks look like once decoded as UTF-8 with surrogateescape.
_UTF16_BOMS: Final = ("\udcff\udcfe", "\udcfe\udcff")
# surrogateescape turns each undecodable byte 0xNN into the lone surrogate U+DCNN; valid UTF-8
# never decodes to a lone surrogate, so finding one locates the bad bytes.
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")
_NOT_WHITESPACE: Final = re.compile(r"[^ \t\n\r]")
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET_OR_QUOTE: Final = re.compile(r'["{}\[\]]')
_JSON_SCALAR_END: Final = re.compile(r"[\s,\]}]")
_DECODER: Final = json.JSONDecoder()


class FileFormatError(CallqueueError):
    """The file cannot be read at all; str(error) is a message for the user who uploaded it."""


@dataclass(frozen=True)
class Record:
    """One data record: its 1-based number (headers and blank lines are not counted) and either
    its fields or the reason it could not be read."""

    number: int
    fields: dict[str, Any] | None
    error: str | None = None


class ByteStream(Protocol):
    """The one method the readers use: botocore's StreamingBody and binary files both have it."""

    def read(self, size: int, /) -> bytes: ...


def detect_format(key: str) -> Format:
    """The format of an S3 object, from its key's extension (case-insensitive)."""
    name = PurePosixPath(key).name
    fmt = FORMATS_BY_SUFFIX.get(PurePosixPath(name).suffix.lower())
    if fmt is None:
        raise FileFormatError(
            f"cannot tell the format of {name!r}: expected a .csv, .json, .jsonl or .ndjson file"
        )
    return fmt


def read_records(stream: ByteStream, fmt: Format) -> Iterator[Record]:
    """Yield the records of a file as they are read; see the module docstring for the errors."""
    if fmt == "csv":
        return _read_csv(stream)
    if fmt == "json":
        return _read_json(stream)
    return _read_jsonl(stream)


class _RawStream(io.RawIOBase):
    """Lets the io module's buffering and decoding run over an object that only has read(n)."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _binary_error(where: str) -> FileFormatError:
    return FileFormatError(
        f"the file contains a NUL byte ({where}): it looks like a binary file, not text"
    )


# --- CSV ---------------------------------------------------------------------------------------


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
            raise _binary_error(f"line {self.line_number}")
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


def _read_csv(stream: ByteStream) -> Iterator[Record]:
    text = io.TextIOWrapper(
        io.BufferedReader(_RawStream(stream), READ_SIZE),
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
    for name, value in zip(header, row, strict=True):
        if len(value) > MAX_FIELD_CHARS:
            return Record(
                number,
                None,
                f"record {number} has a field longer than {MAX_FIELD_CHARS} characters "
                f"(column {name!r})",
            )
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


# --- JSON --------------------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _field_chars(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict | list):
        # The record's depth was checked before it was decoded, so this cannot recurse far.
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    return 0


def _json_record(number: int, value: object) -> Record:
    if not isinstance(value, dict):
        return Record(number, None, f"record {number} is {_json_type(value)}, not an object")
    for name, field in value.items():
        if _field_chars(field) > MAX_FIELD_CHARS:
            return Record(
                number,
                None,
                f"record {number} has a field longer than {MAX_FIELD_CHARS} characters "
                f"(column {name!r})",
            )
    return Record(number, value)


def _too_deep(number: int) -> Record:
    return Record(number, None, f"record {number} is nested more than {MAX_JSON_DEPTH} levels deep")


def _depths(text: str, pos: int) -> Iterator[tuple[int, int]]:
    """(index after it, depth after it) for each bracket of JSON text from `pos`, skipping
    strings; it stops at the text's end or at a string left open. Lexical and iterative: text
    too deep for json's decoder, which recurses once per level, is measured without recursing."""
    depth = 0
    index = pos
    while (match := _JSON_BRACKET_OR_QUOTE.search(text, index)) is not None:
        if match.group() == '"':
            string = _JSON_STRING.match(text, match.start())
            if string is None:
                return
            index = string.end()
            continue
        depth += 1 if match.group() in "{[" else -1
        index = match.end()
        yield index, depth


def _scan_nesting(text: str, pos: int, limit: int) -> tuple[int | None, bool]:
    """Where the array or object starting at text[pos] ends (None: not within `text`), and
    whether it nests more than `limit` levels deep."""
    deep = False
    for index, depth in _depths(text, pos):
        deep = deep or depth > limit
        if depth <= 0:
            return index, deep
    return None, deep


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of JSON text nest (0 for a scalar), found lexically so
    that text too deep for json.loads can be refused before it recurses. Brackets inside
    strings do not count; text that is not JSON gives a number that means nothing."""
    return max((depth for _, depth in _depths(text, 0)), default=0)


def _found(char: str) -> str:
    return "the end of the file" if not char else repr(char)


def _value_is_complete(text: str, pos: int) -> bool:
    """Whether text[pos:] holds a whole JSON value lexically (strings closed, brackets balanced).

    Only consulted when raw_decode fails before the end of the file, to tell a value cut off by
    the end of the window (read more) from a value that is wrong (report it).
    """
    first = text[pos : pos + 1]
    if not first:
        return False
    if first == '"':
        return _JSON_STRING.match(text, pos) is not None
    if first not in "{[":
        return _JSON_SCALAR_END.search(text, pos) is not None
    end, _ = _scan_nesting(text, pos, MAX_JSON_DEPTH)
    return end is not None


def _ends_within(text: str, end: int, value: object) -> bool:
    """Whether a value raw_decode found is really all there is of it.

    Strings, arrays, objects and literals end with their own last character, but a number cut
    by the end of the window ("12" of "125", "1" of "1.5") also decodes: only a delimiter after
    it in the window proves it whole.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _JSON_SCALAR_END.search(text, end) is not None
    return end < len(text)


class _TooDeepError(CallqueueError):
    """Raised by _JsonWindow.value past a value nested more than MAX_JSON_DEPTH levels deep
    (never decoded); `kind` says what it was, for a message."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _JsonWindow:
    """A sliding window of decoded text over the stream: the unread rest of the last chunk plus
    whatever one value needs, never the whole file."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._bytes_read = 0
        self._at_start = True
        self.text = ""
        self.pos = 0
        # Characters already dropped from the front, so messages can give file offsets.
        self.dropped = 0
        self.eof = False

    def offset(self, pos: int | None = None) -> int:
        return self.dropped + (self.pos if pos is None else pos)

    def fill(self, at_least: int = 1) -> None:
        """Drop what was consumed and append at least ``at_least`` more characters (or the rest).

        Asking for as much again as a value already holds keeps re-parsing of a long value,
        delivered in small reads, linear rather than quadratic.
        """
        chunks = [self.text[self.pos :]]
        added = 0
        while added < at_least and not self.eof:
            chunk = self._read_chunk()
            chunks.append(chunk)
            added += len(chunk)
        self.dropped += self.pos
        self.text = "".join(chunks)
        self.pos = 0

    def _read_chunk(self) -> str:
        data = self._stream.read(READ_SIZE)
        if _NUL in data:
            raise _binary_error(f"byte offset {self._bytes_read + data.index(_NUL)}")
        pending = len(self._decoder.getstate()[0])
        try:
            chunk = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            offset = self._bytes_read - pending + error.start
            raise FileFormatError(
                f"the file is not valid UTF-8 (byte 0x{error.object[error.start]:02x} at byte "
                f"offset {offset}); save it as UTF-8"
            ) from None
        self._bytes_read += len(data)
        self.eof = not data
        if self._at_start and chunk:
            self._at_start = False
            chunk = chunk.removeprefix(_UTF8_BOM)
        return chunk

    def peek(self) -> str:
        """The next non-whitespace character, or "" at the end of the file."""
        while True:
            match = _NOT_WHITESPACE.search(self.text, self.pos)
            if match is not None:
                self.pos = match.start()
                return match.group()
            self.pos = len(self.text)
            if self.eof:
                return ""
            self.fill()

    def expect(self, char: str, context: str) -> None:
        found = self.peek()
        if found != char:
            raise FileFormatError(
                f"invalid JSON at character {self.offset()}: expected {char!r} {context}, "
                f"found {_found(found)}"
            )
        self.pos += 1

    def value(self, what: str) -> Any:
        """The next value, decoded; _TooDeepError (with the window past the value) when it
        nests deeper than MAX_JSON_DEPTH, so the caller can reject one record and go on."""
        first = self.peek()
        nests = first in ("{", "[")
        while True:
            end, deep = _scan_nesting(self.text, self.pos, MAX_JSON_DEPTH) if nests else (0, False)
            if deep:
                if end is not None:
                    if end - self.pos > MAX_JSON_RECORD_CHARS:
                        raise self._too_long(what)
                    self.pos = end
                    raise _TooDeepError(_json_type({} if first == "{" else []))
                if self.eof:
                    raise FileFormatError(
                        f"invalid JSON in {what} at character {self.offset()}: its brackets "
                        "are never closed"
                    )
            else:
                found = self._decode(what)
                if found is not None:
                    return found[0]
            held = len(self.text) - self.pos
            if held > MAX_JSON_RECORD_CHARS:
                raise self._too_long(what)
            self.fill(at_least=max(1, min(held, MAX_JSON_RECORD_CHARS + 1 - held)))

    def skip(self, what: str) -> None:
        """Read past the next value, which is not used: it may nest as deep as it likes."""
        try:
            self.value(what)
        except _TooDeepError:
            # Never decoded and never used; only a record's depth matters.
            return

    def _decode(self, what: str) -> tuple[Any] | None:
        """The value at the window's position, (value,), or None when more text is needed.
        Only called once the value is known to nest no deeper than MAX_JSON_DEPTH within the
        window, so the decoder's recursion is bounded."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as error:
                if self.eof or _value_is_complete(self.text, self.pos):
                    raise FileFormatError(
                        f"invalid JSON in {what} at character {self.offset(error.pos)}: {error.msg}"
                    ) from None
            except ValueError as error:
                # Not a syntax error (an integer too long to convert): more text will not help.
                raise FileFormatError(f"invalid JSON in {what}: {error}") from None
            else:
                if self.eof or _ends_within(self.text, end, value):
                    if end - self.pos > MAX_JSON_RECORD_CHARS:
                        raise self._too_long(what)
                    self.pos = end
                    return (value,)
            return None

    def _too_long(self, what: str) -> FileFormatError:
        return FileFormatError(
            f"{what} at character {self.offset()} is longer than {MAX_JSON_RECORD_CHARS} characters"
        )


def _read_json(stream: ByteStream) -> Iterator[Record]:
    window = _JsonWindow(stream)
    first = window.peek()
    if first == "[":
        yield from _read_json_array(window)
    elif first == "{":
        yield from _read_messages_object(window)
    elif not first:
        raise FileFormatError("the file is empty")
    else:
        value = window.value("the file")
        raise FileFormatError(
            'the JSON file must be an array of objects or an object with a "messages" array, '
            f"not {_json_type(value)}"
        )
    trailing = window.peek()
    if trailing:
        raise FileFormatError(
            f"invalid JSON at character {window.offset()}: unexpected {trailing!r} after the end "
            "of the top-level value"
        )


def _read_messages_object(window: _JsonWindow) -> Iterator[Record]:
    window.pos += 1  # past the "{" the caller peeked
    found = False
    if window.peek() == "}":
        window.pos += 1
    else:
        while True:
            if window.peek() != '"':
                raise FileFormatError(
                    f"invalid JSON at character {window.offset()}: expected a key in double "
                    f"quotes, found {_found(window.peek())}"
                )
            key = window.value("a key of the top-level object")
            window.expect(":", f"after the key {key!r}")
            if key == "messages":
                if found:
                    raise FileFormatError('the JSON object has more than one "messages" key')
                found = True
                if window.peek() != "[":
                    try:
                        kind = _json_type(window.value('"messages"'))
                    except _TooDeepError as deep:
                        kind = deep.kind
                    raise FileFormatError(f'"messages" must be an array, not {kind}')
                yield from _read_json_array(window)
            else:
                # Other top-level keys (a job name, a version) are allowed and ignored.
                window.skip(f"the value of {key!r}")
            separator = window.peek()
            window.pos += 1
            if separator == "}":
                break
            if separator != ",":
                raise FileFormatError(
                    f"invalid JSON at character {window.offset() - 1}: expected ',' or '}}' "
                    f"after the value of {key!r}, found {_found(separator)}"
                )
    if not found:
        raise FileFormatError(
            'the JSON object has no "messages" key: expected {"messages": [...]} or an array'
        )


def _read_json_array(window: _JsonWindow) -> Iterator[Record]:
    window.pos += 1  # past the "[" the caller peeked
    if window.peek() == "]":
        window.pos += 1
        raise FileFormatError("the array is empty: the file has no records")
    number = 0
    while True:
        number += 1
        try:
            value = window.value(f"record {number}")
        except _TooDeepError:
            yield _too_deep(number)
        else:
            yield _json_record(number, value)
        separator = window.peek()
        window.pos += 1
        if separator == "]":
            return
        if separator != ",":
            raise FileFormatError(
                f"invalid JSON after record {number} at character {window.offset() - 1}: "
                f"expected ',' or ']', found {_found(separator)}"
            )


# --- JSON Lines --------------------------------------------------------------------------------


def _read_jsonl(stream: ByteStream) -> Iterator[Record]:
    reader = io.BufferedReader(_RawStream(stream), READ_SIZE)
    offset = 0
    number = 0
    while True:
        line = reader.readline(MAX_JSON_RECORD_CHARS + 1)
        if not line:
            break
        start = offset
        offset += len(line)
        if _NUL in line:
            raise _binary_error(f"byte offset {start + line.index(_NUL)}")
        if start == 0:
            line = line.removeprefix(codecs.BOM_UTF8)
        if len(line) > MAX_JSON_RECORD_CHARS:
            while not line.endswith(b"\n"):
                line = reader.readline(MAX_JSON_RECORD_CHARS)
                offset += len(line)
                if not line:
                    break
            number += 1
            yield Record(
                number, None, f"record {number} is longer than {MAX_JSON_RECORD_CHARS} bytes"
            )
            continue
        if not line.strip():
            continue
        number += 1
        yield _jsonl_record(number, start, line)
    if number == 0:
        raise FileFormatError("the file is empty")


def _jsonl_record(number: int, start: int, line: bytes) -> Record:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return Record(
            number,
            None,
            f"record {number} is not valid UTF-8 (byte 0x{line[error.start]:02x} at byte "
            f"offset {start + error.start})",
        )
    if nesting_depth(text) > MAX_JSON_DEPTH:
        return _too_deep(number)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return Record(
            number, None, f"record {number} is not valid JSON: {error.msg} at column {error.colno}"
        )
    except ValueError as error:
        return Record(number, None, f"record {number} is not valid JSON: {error}")
    return _json_record(number, value)
