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

Each format's rules are in its reader's module: csv_reader, json_reader, jsonl_reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Final, Literal

from chalicelib.intake.parsing.base import (
    MAX_CSV_RECORD_CHARS,
    MAX_FIELD_CHARS,
    MAX_JSON_DEPTH,
    MAX_JSON_RECORD_CHARS,
    ByteStream,
    FileFormatError,
    Record,
)
from chalicelib.intake.parsing.csv_reader import read_csv
from chalicelib.intake.parsing.json_reader import read_json
from chalicelib.intake.parsing.json_scan import nesting_depth
from chalicelib.intake.parsing.jsonl_reader import read_jsonl

__all__ = [
    "FORMATS_BY_SUFFIX",
    "MAX_CSV_RECORD_CHARS",
    "MAX_FIELD_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_RECORD_CHARS",
    "ByteStream",
    "FileFormatError",
    "Format",
    "Record",
    "detect_format",
    "nesting_depth",
    "read_records",
]

Format = Literal["csv", "json", "jsonl"]

FORMATS_BY_SUFFIX: Final[dict[str, Format]] = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


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
        return read_csv(stream)
    if fmt == "json":
        return read_json(stream)
    return read_jsonl(stream)
