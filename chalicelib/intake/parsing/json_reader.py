"""The JSON reader: ``{"messages": [...]}`` (other top-level keys are read and ignored) or a
top-level array; each element is a record and keeps its JSON types.

A record nested deeper than MAX_JSON_DEPTH, or with a field longer than MAX_FIELD_CHARS (a nested
field counted as its compact JSON), is an error of that record; its depth is found by a lexical
scan before it is decoded. Invalid JSON anywhere ends the file, as nothing after it can be read.
"""

from __future__ import annotations

from collections.abc import Iterator

from chalicelib.intake.parsing.base import ByteStream, FileFormatError, Record
from chalicelib.intake.parsing.json_values import json_record, json_type, too_deep
from chalicelib.intake.parsing.json_window import JsonWindow, TooDeepError, found


def read_json(stream: ByteStream) -> Iterator[Record]:
    window = JsonWindow(stream)
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
            f"not {json_type(value)}"
        )
    trailing = window.peek()
    if trailing:
        raise FileFormatError(
            f"invalid JSON at character {window.offset()}: unexpected {trailing!r} after the end "
            "of the top-level value"
        )


def _read_messages_object(window: JsonWindow) -> Iterator[Record]:
    window.pos += 1  # past the "{" the caller peeked
    seen = False
    if window.peek() == "}":
        window.pos += 1
    else:
        while True:
            if window.peek() != '"':
                raise FileFormatError(
                    f"invalid JSON at character {window.offset()}: expected a key in double "
                    f"quotes, found {found(window.peek())}"
                )
            key = window.value("a key of the top-level object")
            window.expect(":", f"after the key {key!r}")
            if key == "messages":
                if seen:
                    raise FileFormatError('the JSON object has more than one "messages" key')
                seen = True
                yield from _read_messages_array(window)
            else:
                # Other top-level keys (a job name, a version) are allowed and ignored.
                window.skip(f"the value of {key!r}")
            if window.separator("}", "", f" after the value of {key!r}"):
                break
    if not seen:
        raise FileFormatError(
            'the JSON object has no "messages" key: expected {"messages": [...]} or an array'
        )


def _read_messages_array(window: JsonWindow) -> Iterator[Record]:
    if window.peek() != "[":
        try:
            kind = json_type(window.value('"messages"'))
        except TooDeepError as deep:
            kind = deep.kind
        raise FileFormatError(f'"messages" must be an array, not {kind}')
    yield from _read_json_array(window)


def _read_json_array(window: JsonWindow) -> Iterator[Record]:
    window.pos += 1  # past the "[" the caller peeked
    if window.peek() == "]":
        window.pos += 1
        raise FileFormatError("the array is empty: the file has no records")
    number = 0
    while True:
        number += 1
        try:
            value = window.value(f"record {number}")
        except TooDeepError:
            yield too_deep(number)
        else:
            yield json_record(number, value)
        if window.separator("]", f" after record {number}"):
            return
