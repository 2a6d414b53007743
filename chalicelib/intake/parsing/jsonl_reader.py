"""The JSON Lines reader: one object per non-blank line.

A line that is not UTF-8, not JSON, not an object, longer than MAX_JSON_RECORD_CHARS, nested
deeper than MAX_JSON_DEPTH or with a field longer than MAX_FIELD_CHARS is an error of that record
alone: the next line starts the next record whatever this one held.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator

from chalicelib.intake.parsing.base import (
    MAX_JSON_DEPTH,
    MAX_JSON_RECORD_CHARS,
    NUL,
    ByteStream,
    FileFormatError,
    Record,
    binary_error,
    buffered,
)
from chalicelib.intake.parsing.json_scan import nesting_depth
from chalicelib.intake.parsing.json_values import json_record, too_deep


def read_jsonl(stream: ByteStream) -> Iterator[Record]:
    reader = buffered(stream)
    offset = 0
    number = 0
    while True:
        line = reader.readline(MAX_JSON_RECORD_CHARS + 1)
        if not line:
            break
        start = offset
        offset += len(line)
        if NUL in line:
            raise binary_error(f"byte offset {start + line.index(NUL)}")
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
        return too_deep(number)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return Record(
            number, None, f"record {number} is not valid JSON: {error.msg} at column {error.colno}"
        )
    except ValueError as error:
        return Record(number, None, f"record {number} is not valid JSON: {error}")
    return json_record(number, value)
