"""The splitter's shortcuts against the plain forms they stand for: a CSV record checked at once
against its fields checked one by one, and the row checks' columns found once per set of column
names against a scan of each record's columns."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.intake.parsing.base import MAX_FIELD_CHARS
from chalicelib.intake.parsing.csv_reader import _csv_record, _csv_record_by_field
from chalicelib.intake.validation import InvalidRow
from chalicelib.intake.validation.api_params import COLUMNS, PARAMS
from chalicelib.intake.validation.row_checks import _api, _collect
from chalicelib.intake.validation.value_checks import is_empty

_FIELDS = st.sampled_from(
    ["", " ", "+15005550006", "a\udcff", "x" * MAX_FIELD_CHARS, "x" * (MAX_FIELD_CHARS + 1)]
)


@given(st.lists(st.tuples(st.text(max_size=4), _FIELDS), max_size=5), st.booleans())
def test_csv_record_equals_its_fields_checked_one_by_one(
    cells: list[tuple[str, str]], undecodable: bool
) -> None:
    header = [name for name, _ in cells]
    row = [value for _, value in cells]
    assert _csv_record(7, header, row, undecodable) == _csv_record_by_field(
        7, header, row, undecodable
    )


# Column names as files write them: each API's parameters and aliases, in any case, padded,
# and the api column; values empty or not, equal or not.
_NAMES = st.sampled_from(
    sorted({name for columns in COLUMNS.values() for name in columns} | {"api", "other"})
).flatmap(lambda name: st.sampled_from([name, name.upper(), f" {name} ", name.title()]))
_VALUES = st.sampled_from(["", "  ", "1", "2", "messages", "calls", "Lookup", "fax", None])


def _reference_api(fields: dict[str, Any]) -> Any:
    values = {
        str(value).strip()
        for column, value in fields.items()
        if column.strip().casefold() == "api" and not is_empty(value)
    }
    return values


def _reference_collect(api: Any, fields: dict[str, Any]) -> dict[str, Any]:
    present: dict[str, Any] = {}
    for column, value in fields.items():
        name = COLUMNS[api].get(column.strip().casefold())
        if name is None or is_empty(value):
            continue
        if name in present and present[name] != value:
            raise InvalidRow("both")
        present[name] = value
    return present


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except InvalidRow:
        return InvalidRow


@given(st.dictionaries(_NAMES, _VALUES, max_size=6), st.sampled_from(sorted(PARAMS)))
def test_columns_found_once_per_set_of_names_equal_a_scan_of_each_record(
    fields: dict[str, Any], api: Any
) -> None:
    assert _outcome(_collect, api, fields) == _outcome(_reference_collect, api, fields)
    given_apis = _reference_api(fields)
    chosen = _outcome(_api, fields)
    if not given_apis:
        assert chosen == "messages"
    elif len(given_apis) > 1 or given_apis.pop().casefold() not in PARAMS:
        assert chosen is InvalidRow
    else:
        assert chosen in PARAMS
