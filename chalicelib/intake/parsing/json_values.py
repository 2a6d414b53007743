"""What a decoded JSON value becomes, for both JSON readers: the Record of an object, or an error
naming what the value was instead."""

from __future__ import annotations

import json

from chalicelib.intake.parsing.base import MAX_FIELD_CHARS, MAX_JSON_DEPTH, Record, field_too_long


def json_type(value: object) -> str:
    """A JSON value's type as a message names it ("a number", "an array")."""
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


def json_record(number: int, value: object) -> Record:
    if not isinstance(value, dict):
        return Record(number, None, f"record {number} is {json_type(value)}, not an object")
    for name, field in value.items():
        if _field_chars(field) > MAX_FIELD_CHARS:
            return field_too_long(number, name)
    return Record(number, value)


def too_deep(number: int) -> Record:
    return Record(number, None, f"record {number} is nested more than {MAX_JSON_DEPTH} levels deep")
