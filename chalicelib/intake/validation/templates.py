"""Placeholders in parameter values: `{{column}}` and `{{column|default}}`, filled from the row's
own columns, and the job-wide parameters that apply to every row that does not set them itself.

Rendering is one pass of plain substitution: a placeholder is replaced by its column's text and
the replacement is never scanned again, so a column whose value looks like a placeholder
(`{{code}}`) is sent as it is written. No expression is evaluated and no attribute is read: the
only thing a placeholder can name is a column. Column names are matched as the file writes them,
without regard to case or surrounding spaces.

A placeholder whose column the row lacks, or whose value is empty, takes its default; without one
the row is rejected with the placeholder named. A job-wide parameter naming a column the file
does not have at all is a mistake in the job, not in its rows: MissingColumn fails it at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib.errors import CallqueueError
from chalicelib.intake.parsing import FileFormatError
from chalicelib.intake.validation.exceptions import InvalidRow
from chalicelib.intake.validation.value_checks import form_text, is_empty

# Neither the name nor the default may hold a brace, so `{{a}}}` and `{{{a}}` still find `{{a}}`
# and a stray `{{` in a body is left alone. The name is what comes before the first `|`.
_PLACEHOLDER: Final = re.compile(r"\{\{([^{}|]*)(?:\|([^{}]*))?\}\}")

Value = Any  # a decoded JSON value or a CSV string


class BadParams(CallqueueError):
    """Job-wide parameters written wrongly; str(error) says how."""


class MissingColumn(FileFormatError):
    """A job-wide parameter names a column the file does not have; str(error) says which."""


@dataclass(frozen=True)
class Placeholder:
    column: str
    default: str | None

    def __str__(self) -> str:
        tail = "" if self.default is None else f"|{self.default}"
        return "{{" + self.column + tail + "}}"


def placeholders(text: str) -> list[Placeholder]:
    """The placeholders in a text, in order; `{{}}` and `{{ }}` are not placeholders."""
    found = []
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1).strip()
        if name:
            found.append(Placeholder(name, match.group(2)))
    return found


def _key(column: str) -> str:
    return column.strip().casefold()


def columns_of(fields: Mapping[str, Value]) -> dict[str, Value]:
    """A row's columns by the key placeholders look them up with."""
    return {_key(name): value for name, value in fields.items()}


def _text(placeholder: Placeholder, columns: Mapping[str, Value]) -> str:
    key = _key(placeholder.column)
    value = columns.get(key)
    if isinstance(value, (dict, list)):
        raise InvalidRow(
            f"placeholder {placeholder}: column {placeholder.column} holds a "
            f"{'list' if isinstance(value, list) else 'JSON object'}, not text"
        )
    if key in columns and not is_empty(value):
        return form_text(value)
    if placeholder.default is not None:
        return placeholder.default
    if key not in columns:
        raise InvalidRow(f"placeholder {placeholder}: the row has no column {placeholder.column}")
    raise InvalidRow(f"placeholder {placeholder}: column {placeholder.column} is empty")


def render_text(text: str, columns: Mapping[str, Value]) -> str:
    """`text` with each placeholder replaced by its column's value; InvalidRow names the first
    placeholder the row cannot fill."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if not name:
            return match.group(0)
        return _text(Placeholder(name, match.group(2)), columns)

    return _PLACEHOLDER.sub(fill, text)


def has_placeholder(value: Value) -> bool:
    """Whether render could change `value`: a list or an object, or a string with `{{` in it
    (every placeholder starts with it)."""
    if isinstance(value, str):
        return "{{" in value
    return isinstance(value, (list, dict))


def render(value: Value, columns: Mapping[str, Value]) -> Value:
    """A parameter's value rendered: a string, or each string inside a list or a JSON object's
    values (never its keys). Other scalars are returned as they are. The caller has bounded the
    nesting (row_checks refuses values deeper than MAX_JSON_DEPTH before this runs)."""
    if isinstance(value, str):
        return render_text(value, columns)
    if isinstance(value, list):
        return [render(item, columns) for item in value]
    if isinstance(value, dict):
        return {name: render(item, columns) for name, item in value.items()}
    return value


@dataclass(frozen=True)
class JobParams:
    """Parameters that apply to every row of a job that does not give them a value itself."""

    values: Mapping[str, Value] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values)

    def applied_to(self, fields: Mapping[str, Value]) -> dict[str, Value]:
        """The row's fields with each job-wide parameter the row leaves absent or empty."""
        given = {_key(name) for name, value in fields.items() if not is_empty(value)}
        merged = dict(fields)
        for name, value in self.values.items():
            if _key(name) not in given:
                merged[name] = value
        return merged

    def columns(self) -> list[str]:
        """The columns the job-wide parameters' placeholders name, each once, in order."""
        seen: dict[str, str] = {}
        for value in self.values.values():
            for text in _strings(value):
                for placeholder in placeholders(text):
                    seen.setdefault(_key(placeholder.column), placeholder.column)
        return list(seen.values())

    def check_columns(self, file_columns: Iterable[str]) -> None:
        """Raises MissingColumn for the first column the templates name and the file lacks."""
        names = list(file_columns)
        have = {_key(name) for name in names}
        for column in self.columns():
            if _key(column) not in have:
                raise _missing(column, names)


def _missing(column: str, names: list[str]) -> MissingColumn:
    have = ", ".join(names) or "none"
    return MissingColumn(f"column {column} is not in the file; it has: {have}")


# How many of a JSON file's key names an error quotes: records may each bring new ones.
_NAMES_QUOTED: Final = 50


class FileColumns:
    """Whether a file has every column its job-wide templates name, as its records are read.

    A CSV file's columns are its header, which every readable record carries, so the first one
    decides. A JSON record has its own keys: the file has a column when any record has it, which
    is known for certain only at the end (a record without it is rejected on its own)."""

    def __init__(self, params: JobParams, fmt: str) -> None:
        self._params = params
        self._csv = fmt == "csv"
        self._missing = {_key(column): column for column in params.columns()}
        self._names: dict[str, None] = {}

    def see(self, fields: Mapping[str, Value]) -> None:
        if not self._missing:
            return
        if self._csv:
            self._params.check_columns(fields)
            self._missing.clear()
            return
        for name in fields:
            self._missing.pop(_key(name), None)
            if len(self._names) < _NAMES_QUOTED:
                self._names.setdefault(name, None)

    def finish(self) -> None:
        for column in self._missing.values():
            raise _missing(column, list(self._names))


def _strings(value: Value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return []


def parse_param(text: str) -> tuple[str, str]:
    """One `NAME=VALUE` as the command line writes it; BadParams says what is wrong."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise BadParams(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def job_params(raw: object, where: str) -> JobParams:
    """Job-wide parameters as a JSON object of names to strings, numbers or booleans (POST
    /jobs's `params`, a job manifest's); BadParams names `where` and the fault."""
    if raw is None:
        return JobParams()
    if not isinstance(raw, dict):
        raise BadParams(f"{where} must be a JSON object of parameter names to values")
    for name, value in raw.items():
        if not name.strip():
            raise BadParams(f"{where} has a blank parameter name")
        if not isinstance(value, (str, int, float, bool)):
            raise BadParams(f"{where}: {name} must be a string, a number or true/false")
    return JobParams(dict(raw))
