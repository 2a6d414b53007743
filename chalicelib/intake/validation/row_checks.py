"""A record as a whole: which API it asks for, which of its columns are that API's parameters,
and whether the required ones are there; each present value is then converted by value_checks,
in the order of the API's parameters so that one may depend on another.

What depends only on a record's column names (which are the API column, which column gives which
parameter) is worked out once per set of names (_layout), not per record: a CSV file's records
all share theirs."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final, NamedTuple

from chalicelib.core.records import APIS, Api, CallRequest, ParamValue
from chalicelib.intake.parsing import MAX_JSON_DEPTH
from chalicelib.intake.validation.api_params import (
    ALIASES,
    COLUMNS,
    DEFAULT_API,
    PARAMS,
    REQUIRED,
    REQUIRED_ONE_OF,
)
from chalicelib.intake.validation.exceptions import InvalidRow
from chalicelib.intake.validation.templates import JobParams, columns_of, has_placeholder, render
from chalicelib.intake.validation.value_checks import Context, convert, form_text, is_empty

_API_COLUMN: Final = "api"
_NESTED: Final = (dict, list)
# Each API's parameters by their place in PARAMS: values are converted in that order.
_ORDER: Final[Mapping[Api, Mapping[str, int]]] = {
    api: {name: index for index, name in enumerate(params)} for api, params in PARAMS.items()
}


class _Layout(NamedTuple):
    """What a record's column names alone decide: its API columns, and for each API the
    (column, parameter) pairs of the columns that give one, in the record's order."""

    api_columns: tuple[str, ...]
    params: Mapping[Api, tuple[tuple[str, str], ...]]


@lru_cache(maxsize=256)
def _layout(names: tuple[str, ...]) -> _Layout:
    keys = [(name, name.strip().casefold()) for name in names]
    return _Layout(
        tuple(name for name, key in keys if key == _API_COLUMN),
        {
            api: tuple((name, COLUMNS[api][key]) for name, key in keys if key in COLUMNS[api])
            for api in PARAMS
        },
    )


def validate(
    fields: Mapping[str, Any],
    default_region: str | None = None,
    job_params: JobParams | None = None,
) -> CallRequest:
    """The request a record asks for; InvalidRow says why there is none. `default_region`: the
    region phone numbers in national format are read in (None: they are refused); `job_params`: the
    job-wide parameters, for the row to take those it leaves absent.

    Placeholders are filled before anything is checked, so every rule (a phone number, a
    length, a row's size) applies to what is sent."""
    merged = job_params.applied_to(fields) if job_params else fields
    for column, value in merged.items():
        # Before anything compares or serialises the values: both recurse per level. A
        # scalar (every CSV cell) has no depth to measure.
        if isinstance(value, _NESTED) and _value_depth(value) > MAX_JSON_DEPTH:
            raise InvalidRow(f"{column} is nested more than {MAX_JSON_DEPTH} levels deep")
    layout = _layout(tuple(fields))
    if merged is fields and not layout.api_columns:
        api: Api = DEFAULT_API  # what _api finds in a record without an api column
    else:
        api = _api(merged, layout if merged is fields else None)
    present = _collect(api, fields, layout)
    if job_params:
        # By parameter, not by column name: a row's `To` is Lookup's PhoneNumber too.
        present = {**_collect(api, job_params.values), **present}
    present = _rendered(present, fields)
    for name in REQUIRED[api]:
        if name not in present:
            raise InvalidRow(f"missing {_describe(api, name)}")
    for group in REQUIRED_ONE_OF[api]:
        if present.keys().isdisjoint(group):
            raise InvalidRow(f"missing {_either(group)}")
    params: dict[str, ParamValue] = {}
    context = Context(params, default_region)  # sees each parameter once it is converted
    specs, order = PARAMS[api], _ORDER[api]
    for name in sorted(present, key=order.__getitem__):
        params[name] = convert(name, specs[name], present[name], context)
    return CallRequest(api, params)


def _value_depth(value: object) -> int:
    """How deep lists and dicts nest in a decoded value (0 for a scalar), iteratively."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _api(fields: Mapping[str, Any], layout: _Layout | None = None) -> Api:
    """`layout`: _layout of the fields' names, when the caller has it."""
    values = {
        form_text(value).strip()
        for column in (layout or _layout(tuple(fields))).api_columns
        if not is_empty(value := fields[column])
    }
    if not values:
        return DEFAULT_API
    if len(values) > 1:
        raise InvalidRow(f"the api columns disagree: {', '.join(sorted(values))}")
    given = values.pop()
    for api in APIS:
        if api == given.casefold():
            return api
    raise InvalidRow(f"unknown api {given!r}; expected one of {', '.join(APIS)}")


def _collect(api: Api, fields: Mapping[str, Any], layout: _Layout | None = None) -> dict[str, Any]:
    present: dict[str, Any] = {}
    source: dict[str, str] = {}
    for column, name in (layout or _layout(tuple(fields))).params[api]:
        value = fields[column]
        if is_empty(value):
            continue
        if name in present and present[name] != value:
            raise InvalidRow(f"columns {source[name]!r} and {column!r} both give {name}")
        present[name] = value
        source[name] = column
    return present


def _rendered(present: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters with their placeholders filled from the row's own columns (never from
    job-wide parameters); one that renders empty counts as absent, as an empty column does."""
    if not any(map(has_placeholder, present.values())):
        # Rendering returns such values as they are, and _collect left out the empty ones.
        return present
    columns = columns_of(fields)
    rendered = {name: render(value, columns) for name, value in present.items()}
    return {name: value for name, value in rendered.items() if not is_empty(value)}


def _describe(api: Api, name: str) -> str:
    aliases = [alias for alias, target in ALIASES[api].items() if target == name]
    return f"{name} (or {' or '.join(aliases)})" if aliases else name


def _either(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"
