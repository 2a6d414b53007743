"""A record as a whole: which API it asks for, which of its columns are that API's parameters,
and whether the required ones are there; each present value is then converted by value_checks,
in the order of the API's parameters so that one may depend on another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

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
from chalicelib.intake.validation.templates import JobParams, columns_of, render
from chalicelib.intake.validation.value_checks import Context, convert, form_text, is_empty

_API_COLUMN: Final = "api"


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
    merged = job_params.applied_to(fields) if job_params else dict(fields)
    for column, value in merged.items():
        # Before anything compares or serialises the values: both recurse per level. A
        # scalar (every CSV cell) has no depth to measure.
        if isinstance(value, dict | list) and _value_depth(value) > MAX_JSON_DEPTH:
            raise InvalidRow(f"{column} is nested more than {MAX_JSON_DEPTH} levels deep")
    api = _api(merged)
    present = _collect(api, fields)
    if job_params:
        # By parameter, not by column name: a row's `To` is Lookup's PhoneNumber too.
        present = {**_collect(api, job_params.values), **present}
    present = _rendered(present, columns_of(fields))
    for name in REQUIRED[api]:
        if name not in present:
            raise InvalidRow(f"missing {_describe(api, name)}")
    for group in REQUIRED_ONE_OF[api]:
        if not any(name in present for name in group):
            raise InvalidRow(f"missing {_either(group)}")
    params: dict[str, ParamValue] = {}
    context = Context(params, default_region)  # sees each parameter once it is converted
    for name, spec in PARAMS[api].items():
        if name in present:
            params[name] = convert(name, spec, present[name], context)
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


def _api(fields: Mapping[str, Any]) -> Api:
    values = {
        form_text(value).strip()
        for column, value in fields.items()
        if column.strip().casefold() == _API_COLUMN and not is_empty(value)
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


def _collect(api: Api, fields: Mapping[str, Any]) -> dict[str, Any]:
    columns = COLUMNS[api]
    present: dict[str, Any] = {}
    source: dict[str, str] = {}
    for column, value in fields.items():
        name = columns.get(column.strip().casefold())
        if name is None or is_empty(value):
            continue
        if name in present and present[name] != value:
            raise InvalidRow(f"columns {source[name]!r} and {column!r} both give {name}")
        present[name] = value
        source[name] = column
    return present


def _rendered(present: dict[str, Any], columns: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters with their placeholders filled from the row's own columns (never from
    job-wide parameters); one that renders empty counts as absent, as an empty column does."""
    rendered = {name: render(value, columns) for name, value in present.items()}
    return {name: value for name, value in rendered.items() if not is_empty(value)}


def _describe(api: Api, name: str) -> str:
    aliases = [alias for alias, target in ALIASES[api].items() if target == name]
    return f"{name} (or {' or '.join(aliases)})" if aliases else name


def _either(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"
