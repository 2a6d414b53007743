"""Tests for chalicelib.intake.parsing: every reader, through streams that return a few bytes
at a time."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chalicelib.intake.parsing import (
    MAX_CSV_RECORD_CHARS,
    MAX_FIELD_CHARS,
    MAX_JSON_RECORD_CHARS,
    FileFormatError,
    Format,
    Record,
    detect_format,
    read_records,
)


class TrickleStream:
    """A stream whose read(n) returns at most ``step`` bytes, like a slow network body."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1) -> bytes:
        limit = self._step if size < 0 else min(size, self._step)
        return self._data.read(limit)


class GeneratedStream:
    """A stream that makes its bytes as they are read, so the test holds no file either."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while len(self._pending) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._pending += chunk
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def records(data: bytes | str, fmt: Format, step: int = 7) -> list[Record]:
    raw = data.encode() if isinstance(data, str) else data
    return list(read_records(TrickleStream(raw, step), fmt))


def fields(data: bytes | str, fmt: Format, step: int = 7) -> list[dict[str, Any] | None]:
    return [record.fields for record in records(data, fmt, step)]


def errors(data: bytes | str, fmt: Format) -> dict[int, str]:
    return {r.number: r.error for r in records(data, fmt) if r.error is not None}


def format_error(data: bytes | str, fmt: Format) -> str:
    with pytest.raises(FileFormatError) as caught:
        records(data, fmt)
    return str(caught.value)


# --- detect_format ---


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("in/calls.csv", "csv"),
        ("in/CALLS.CSV", "csv"),
        ("a.b/messages.json", "json"),
        ("x.jsonl", "jsonl"),
        ("x.NDJSON", "jsonl"),
    ],
)
def test_detect_format_by_extension(key: str, expected: str) -> None:
    assert detect_format(key) == expected


@pytest.mark.parametrize("key", ["in/calls.txt", "in/calls", "in/calls.csv.gz", "in.csv/calls"])
def test_detect_format_unknown_extension(key: str) -> None:
    with pytest.raises(FileFormatError, match=r"expected a \.csv, \.json, \.jsonl or \.ndjson"):
        detect_format(key)


# --- CSV ---


def test_csv_reads_rows_as_strings() -> None:
    assert fields("To,Body\n+1,hello\n+2,bye\n", "csv") == [
        {"To": "+1", "Body": "hello"},
        {"To": "+2", "Body": "bye"},
    ]


def test_csv_quoted_commas_doubled_quotes_and_newlines() -> None:
    data = 'To,Body\n+1,"a, b"\n+2,"say ""hi"""\n+3,"line one\r\nline two"\n'
    assert fields(data, "csv") == [
        {"To": "+1", "Body": "a, b"},
        {"To": "+2", "Body": 'say "hi"'},
        {"To": "+3", "Body": "line one\r\nline two"},
    ]


def test_csv_bom_and_crlf() -> None:
    data = "\ufeffTo,Body\r\n+1,hello\r\n"
    assert fields(data, "csv", step=1) == [{"To": "+1", "Body": "hello"}]


def test_csv_last_row_without_newline() -> None:
    assert fields("To\n+1\n+2", "csv") == [{"To": "+1"}, {"To": "+2"}]


def test_csv_header_names_are_stripped() -> None:
    assert fields(" To , Body \n+1,x\n", "csv") == [{"To": "+1", "Body": "x"}]


def test_csv_blank_lines_are_skipped_and_not_counted() -> None:
    result = records("To,Body\n\n+1,a\n\r\n,\n  ,  \n+2,b,extra\n", "csv")
    assert [(r.number, r.fields, r.error) for r in result] == [
        (1, {"To": "+1", "Body": "a"}, None),
        (2, None, "record 2 has 3 fields, the header has 2"),
    ]


def test_csv_wrong_field_counts_are_record_errors() -> None:
    data = "a,b,c,d\n1,2,3,4\n1,2,3,4,5\n1,2,3\n1,2,3,4\n"
    assert errors(data, "csv") == {
        2: "record 2 has 5 fields, the header has 4",
        3: "record 3 has 3 fields, the header has 4",
    }
    assert records(data, "csv")[3].fields == {"a": "1", "b": "2", "c": "3", "d": "4"}


@pytest.mark.parametrize("header", ["To,,Body", "To, ,Body"])
def test_csv_blank_header_name(header: str) -> None:
    assert format_error(f"{header}\n1,2,3\n", "csv") == "column 2 of the header has no name"


@pytest.mark.parametrize("header", ["To,Body,To", "To,Body,to"])
def test_csv_duplicate_header_name(header: str) -> None:
    assert "twice" in format_error(f"{header}\n1,2,3\n", "csv")


@pytest.mark.parametrize("data", ["", "\n\n", "\r\n", "\ufeff", ",,\n"])
def test_csv_empty_file(data: str) -> None:
    assert format_error(data, "csv") == "the file is empty"


def test_csv_header_only() -> None:
    assert format_error("To,Body\n\n", "csv") == "the file has a header but no rows"


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"To,Body\n+1,a\x00b\n", b"PK\x03\x04\x14\x00"],
)
def test_csv_binary_file(data: bytes) -> None:
    message = format_error(data, "csv")
    assert "NUL byte" in message or "not valid UTF-8" in message


def test_csv_utf16_file() -> None:
    assert "UTF-16" in format_error("To\n+1\n".encode("utf-16"), "csv")


def test_csv_undecodable_bytes_reject_only_their_record() -> None:
    data = "To,Body\n+1,café\n".encode() + b"+2,caf\xe9\n+3,ok\n"
    result = records(data, "csv")
    assert [r.fields for r in result] == [
        {"To": "+1", "Body": "café"},
        None,
        {"To": "+3", "Body": "ok"},
    ]
    assert result[1].error == (
        "record 2 is not valid UTF-8 (byte 0xe9 in column 'Body'); save the file as UTF-8"
    )


def test_csv_undecodable_header() -> None:
    assert "header row is not valid UTF-8" in format_error(b"T\xf6,Body\n1,2\n", "csv")


def test_csv_multibyte_characters_split_across_reads() -> None:
    body = "日本語 ✅ 😀 é"
    data = f"To,Body\n+1,{body}\n".encode()
    for step in range(1, 9):
        assert fields(data, "csv", step) == [{"To": "+1", "Body": body}]


def test_csv_unbalanced_quote_at_end_of_file() -> None:
    result = records('To,Body\n+1,ok\n+2,"never closed\n+3,lost\n', "csv")
    assert result[0].fields == {"To": "+1", "Body": "ok"}
    assert result[1].number == 2
    assert result[1].error is not None
    assert "unbalanced quote" in result[1].error
    assert "line 3" in result[1].error
    assert len(result) == 2


def test_csv_text_after_closing_quote_is_a_record_error() -> None:
    result = records('To,Body\n+1,"a"b\n+2,c\n', "csv")
    assert result[0].error is not None
    assert result[0].error.startswith("record 1 is not valid CSV")
    assert result[1] == Record(2, {"To": "+2", "Body": "c"})


def test_csv_field_over_the_limit_is_rejected_and_parsing_continues() -> None:
    big = "x" * (MAX_FIELD_CHARS + 1)
    data = f"To,Body\n+1,{big}\n+2,ok\n"
    result = records(data, "csv", step=4096)
    assert result[0].error == (
        f"record 1 has a field longer than {MAX_FIELD_CHARS} characters (column 'Body')"
    )
    assert result[1] == Record(2, {"To": "+2", "Body": "ok"})


def test_csv_field_at_the_limit_is_accepted() -> None:
    body = "x" * MAX_FIELD_CHARS
    assert fields(f"To,Body\n+1,{body}\n", "csv", step=4096) == [{"To": "+1", "Body": body}]


def test_csv_overlong_line_is_rejected_and_parsing_continues() -> None:
    huge = "y" * (3 * MAX_CSV_RECORD_CHARS)
    data = f"To,Body\n+1,{huge}\n+2,ok\n"
    result = records(data, "csv", step=65536)
    assert result[0].error == f"record 1 is longer than {MAX_CSV_RECORD_CHARS} characters"
    assert result[1] == Record(2, {"To": "+2", "Body": "ok"})


def test_csv_runaway_quoted_field_fails_the_file() -> None:
    lines = "".join(f"+{n},row {n}\n" for n in range(20_000))
    data = f'To,Body\n+1,"opened\n{lines}'
    message = format_error(data, "csv")
    assert "quoted field starting on line 2" in message
    assert "closing quote" in message


# --- JSON ---


def test_json_messages_object() -> None:
    data = '{"job": {"name": "x", "tags": [1, 2]}, "messages": [{"To": "+1", "Body": "hi"}]}'
    assert fields(data, "json") == [{"To": "+1", "Body": "hi"}]


def test_json_keys_after_messages_are_read() -> None:
    data = '{"messages": [{"To": "+1"}], "version": 2}'
    assert fields(data, "json") == [{"To": "+1"}]


def test_json_top_level_array_keeps_value_types() -> None:
    data = '[{"To": "+1", "ValidityPeriod": 600, "SendAsMms": true, "MediaUrl": ["a", "b"]}]'
    assert fields(data, "json") == [
        {"To": "+1", "ValidityPeriod": 600, "SendAsMms": True, "MediaUrl": ["a", "b"]}
    ]


def test_json_non_object_elements_are_record_errors() -> None:
    data = '[{"a": 1}, 3, "x", [1], null, true, 2.5, {"b": 2}]'
    assert errors(data, "json") == {
        2: "record 2 is a number, not an object",
        3: "record 3 is a string, not an object",
        4: "record 4 is an array, not an object",
        5: "record 5 is null, not an object",
        6: "record 6 is a boolean, not an object",
        7: "record 7 is a number, not an object",
    }
    assert records(data, "json")[-1] == Record(8, {"b": 2})


@pytest.mark.parametrize(
    ("data", "kind"), [("42", "a number"), ('"hi"', "a string"), ("null", "null")]
)
def test_json_not_object_or_array(data: str, kind: str) -> None:
    assert format_error(data, "json") == (
        'the JSON file must be an array of objects or an object with a "messages" array, '
        f"not {kind}"
    )


@pytest.mark.parametrize("data", ["{}", '{"calls": []}', '{"job": 1, "rows": [{"a": 1}]}'])
def test_json_object_without_messages(data: str) -> None:
    assert 'no "messages" key' in format_error(data, "json")


def test_json_messages_not_an_array() -> None:
    assert format_error('{"messages": {"To": "+1"}}', "json") == (
        '"messages" must be an array, not an object'
    )


def test_json_duplicate_messages_key() -> None:
    assert "more than one" in format_error('{"messages": [{}], "messages": [{}]}', "json")


@pytest.mark.parametrize("data", ["", "  \n", "\ufeff"])
def test_json_empty_file(data: str) -> None:
    assert format_error(data, "json") == "the file is empty"


@pytest.mark.parametrize("data", ["[]", '{"messages": []}'])
def test_json_empty_array(data: str) -> None:
    assert "no records" in format_error(data, "json")


def test_json_invalid_json_mid_array_keeps_earlier_records() -> None:
    stream = TrickleStream(b'[{"a": 1}, {"b": 2,}, {"c": 3}]')
    reader = read_records(stream, "json")
    assert next(reader) == Record(1, {"a": 1})
    with pytest.raises(FileFormatError, match=r"invalid JSON in record 2 at character 19"):
        next(reader)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ('[{"a": 1} {"b": 2}]', "after record 1 at character 10"),
        ('[{"a": 1},]', "in record 2 at character 10"),
        ('[{"a": 1}', "after record 1 at character 9"),
        ('[{"a": 1}] extra', "at character 11"),
        ('{"messages": [{"a": 1}] "x": 1}', "at character 24"),
        ("{messages: []}", "at character 1"),
        ("To,From\n+1,+2\n", "in the file at character 0"),
    ],
)
def test_json_invalid_json_says_where(data: str, where: str) -> None:
    assert where in format_error(data, "json")


def test_json_not_utf8_names_the_byte_offset() -> None:
    message = format_error(b'[{"Body": "caf\xe9"}]', "json")
    assert message == "the file is not valid UTF-8 (byte 0xe9 at byte offset 14); save it as UTF-8"


def test_json_binary_file() -> None:
    assert "NUL byte" in format_error(b'[{"a": "\x00"}]', "json")


def test_json_bom_and_multibyte_characters_split_across_reads() -> None:
    data = '\ufeff{"messages": [{"Body": "日本語 ✅ 😀"}, {"Body": "é"}]}'.encode()
    for step in range(1, 9):
        assert fields(data, "json", step) == [{"Body": "日本語 ✅ 😀"}, {"Body": "é"}]


def test_json_numbers_split_across_reads() -> None:
    data = b"[1.5, -12e3, 1234567, 7 ]"
    for step in range(1, 9):
        assert [r.error for r in records(data, "json", step)] == [
            f"record {n} is a number, not an object" for n in range(1, 5)
        ]


def test_json_record_over_the_limit() -> None:
    data = json.dumps([{"Body": "x" * (MAX_JSON_RECORD_CHARS + 10)}])
    assert "longer than" in format_error(data, "json")


def test_json_unclosed_deep_nesting_fails_the_file() -> None:
    # Brackets that never close leave no way to find the next record.
    assert "never closed" in format_error("[" + "[" * 100_000, "json")


# --- JSON Lines ---


def test_jsonl_reads_objects_and_skips_blank_lines() -> None:
    data = '\ufeff{"To": "+1"}\n\n  \r\n{"To": "+2", "n": 3}\r\n{"To": "+3"}'
    assert fields(data, "jsonl") == [{"To": "+1"}, {"To": "+2", "n": 3}, {"To": "+3"}]


def test_jsonl_bad_lines_are_record_errors_and_parsing_continues() -> None:
    data = b'{"a": 1}\n{bad\n[1]\n"s"\n{"b": "\xff"}\n{"c": 3}\n'
    assert errors(data, "jsonl") == {
        2: "record 2 is not valid JSON: Expecting property name enclosed in double quotes "
        "at column 2",
        3: "record 3 is an array, not an object",
        4: "record 4 is a string, not an object",
        5: "record 5 is not valid UTF-8 (byte 0xff at byte offset 29)",
    }
    assert records(data, "jsonl")[-1] == Record(6, {"c": 3})


def test_jsonl_empty_file() -> None:
    assert format_error("\n \n", "jsonl") == "the file is empty"


def test_jsonl_binary_file() -> None:
    assert "NUL byte" in format_error(b'{"a": 1}\n\x00\x01\x02\n', "jsonl")


def test_jsonl_overlong_line_is_rejected_and_parsing_continues() -> None:
    data = json.dumps({"Body": "x" * MAX_JSON_RECORD_CHARS}) + '\n{"a": 1}\n'
    result = records(data, "jsonl", step=65536)
    assert result[0].error == f"record 1 is longer than {MAX_JSON_RECORD_CHARS} bytes"
    assert result[1] == Record(2, {"a": 1})


def test_jsonl_multibyte_characters_split_across_reads() -> None:
    data = '{"Body": "日本語 ✅ 😀"}\n'.encode()
    for step in range(1, 9):
        assert fields(data, "jsonl", step) == [{"Body": "日本語 ✅ 😀"}]


# --- properties ---

_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r\n\ufeff"),
    min_size=1,
    max_size=8,
).filter(lambda name: name.strip() == name)
_values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
_rows = st.integers(min_value=1, max_value=4).flatmap(
    lambda width: st.tuples(
        st.lists(_names, min_size=width, max_size=width, unique_by=str.casefold),
        st.lists(st.lists(_values, min_size=width, max_size=width), min_size=1, max_size=8),
    )
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(table=_rows, step=st.integers(min_value=1, max_value=16), crlf=st.booleans())
def test_csv_round_trips_rows_written_by_csv_writer(
    table: tuple[list[str], list[list[str]]], step: int, crlf: bool
) -> None:
    header, rows = table
    rows = [row for row in rows if any(value.strip() for value in row)]
    # csv.writer quotes only the characters of its own line terminator, so with "\n" a bare
    # "\r" is written unquoted and no reader can tell it from a line ending.
    assume(rows and (crlf or not any("\r" in value for row in rows for value in row)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    expected = [dict(zip(header, row, strict=True)) for row in rows]
    assert fields(out.getvalue(), "csv", step) == expected


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _values
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_values, children, max_size=3)
    ),
    max_leaves=8,
)
_objects = st.lists(st.dictionaries(_values, _json_values, max_size=4), min_size=1, max_size=6)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(objects=_objects, step=st.integers(min_value=1, max_value=16), wrap=st.booleans())
def test_json_round_trips_json_dumps(objects: list[dict[str, Any]], step: int, wrap: bool) -> None:
    document: object = {"messages": objects} if wrap else objects
    assert fields(json.dumps(document, indent=1), "json", step) == objects
    assert fields(json.dumps(document, ensure_ascii=False), "json", step) == objects


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(objects=_objects, step=st.integers(min_value=1, max_value=16))
def test_jsonl_round_trips_json_dumps(objects: list[dict[str, Any]], step: int) -> None:
    data = "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)
    assert fields(data, "jsonl", step) == objects


# --- memory ---


def test_csv_memory_stays_flat_over_200k_rows() -> None:
    rows = 200_000

    def chunks() -> Iterator[bytes]:
        yield b"To,From,Body\r\n"
        for start in range(0, rows, 1000):
            yield "".join(
                f'+1415555{n % 10000:04d},+15005550006,"Test message {n}, of {rows}"\r\n'
                for n in range(start, start + 1000)
            ).encode()

    tracemalloc.start()
    try:
        count = 0
        for record in read_records(GeneratedStream(chunks()), "csv"):
            assert record.error is None
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < 20 * 1024 * 1024
