"""Work a row shares with others or with an earlier step, against doing it again: an API's JSON
looked up, a record's column layout found once for both the API and its parameters, validate's
request kept when the row carries nothing, a value's check kept for the rows that repeat it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.limits import MAX_ROW_BYTES
from chalicelib.core.records import APIS, CallRequest
from chalicelib.intake.carry import DEFAULT_CARRY, Carry
from chalicelib.intake.encoded import api_json, compact
from chalicelib.intake.rows import (
    Accepted,
    Rejected,
    _checked,
    encoded_bytes,
    time_zone_of,
    too_large_reason,
)
from chalicelib.intake.validation import InvalidRow, validate
from chalicelib.intake.validation.api_params import COLUMNS, PARAMS, Param
from chalicelib.intake.validation.row_checks import _api, _collect, _layout
from chalicelib.intake.validation.templates import JobParams
from chalicelib.intake.validation.value_checks import (
    _CHECKS,
    Context,
    _checked_text,
    _kept,
    clear_checked,
)


@given(st.one_of(st.sampled_from(APIS), st.text(max_size=8)))
def test_an_api_json_looked_up_is_the_api_encoded(api: str) -> None:
    assert api_json(api) == compact(api)


_NAMES = st.sampled_from(
    sorted({name for columns in COLUMNS.values() for name in columns} | {"api", "ref", "note"})
).flatmap(lambda name: st.sampled_from([name, name.upper(), f" {name} "]))
_VALUES = st.one_of(
    st.sampled_from(
        ["", " ", "+15005550006", "+447700900123", "whatsapp:+15005550006", "messages", "calls"]
    ),
    st.sampled_from(["lookup", "verify", "studio", "FW" + "a" * 32, "hi €[😀] Ж", "{{ref}}"]),
    st.text(max_size=12),
    st.integers(),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(["https://e.com/a.png", "", 1]), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_FIELDS = st.dictionaries(_NAMES, _VALUES, max_size=7)
_HEX = "0123456789abcdef" * 2
# A valid row of each API, to which drawn columns are added (and may break it).
_BASES = [
    {"To": "+15005550006", "From": "+15005550007", "Body": "hi"},
    {"To": "whatsapp:+447700900123", "From": "whatsapp:+15005550007", "MediaUrl": "https://e.com"},
    {"api": "calls", "To": "+15005550006", "From": "+15005550007", "Url": "https://e.com/t"},
    {"api": "lookup", "PhoneNumber": "+447700900123", "Fields": "line_type_intelligence"},
    {"api": "verify", "To": "+15005550006", "Channel": "sms", "VerifyServiceSid": "VA" + _HEX},
    {"api": "studio", "To": "+15005550006", "From": "+15005550007", "FlowSid": "FW" + _HEX},
]
_ROWS = st.one_of(
    _FIELDS,
    st.tuples(
        st.sampled_from(_BASES),
        st.dictionaries(_NAMES, _VALUES, max_size=2),
        st.fixed_dictionaries({}, optional={"ref": st.text(max_size=5), "note": _VALUES}),
    ).map(lambda parts: {**parts[0], **parts[1], **parts[2]}),
)


def _outcome(call: Any) -> Any:
    try:
        return call()
    except InvalidRow as error:
        return ("InvalidRow", str(error))


@given(_ROWS, st.sampled_from(APIS))
def test_a_layout_passed_along_finds_what_the_fields_own_layout_finds(
    fields: dict[str, Any], api: Any
) -> None:
    layout = _layout(tuple(fields))
    assert _outcome(lambda: _api(fields, layout)) == _outcome(lambda: _api(fields))
    assert _outcome(lambda: _collect(api, fields, layout)) == _outcome(
        lambda: _collect(api, fields)
    )


def _checked_before(
    number: int, fields: dict[str, Any], params: JobParams | None, carry: Carry
) -> Accepted | Rejected:
    """_checked as it was: a new request for every row."""
    try:
        valid = validate(fields, None, params)
        request = CallRequest(valid.api, valid.params, carried=carry.carried_of(fields))
        params_json = compact(request.params)
        size = encoded_bytes(number, request, params_json)
    except InvalidRow as error:
        return Rejected(number, str(error))
    except Exception as error:
        return Rejected(number, f"could not be read: {type(error).__name__}")
    if size > MAX_ROW_BYTES:
        return Rejected(number, too_large_reason(size))
    return Accepted(number, request, time_zone_of(fields), params_json)


@given(
    st.integers(min_value=1, max_value=10**9),
    _ROWS,
    st.sampled_from([DEFAULT_CARRY, Carry.of("ref", ("note",))]),
    st.sampled_from([None, JobParams({"From": "+15005550006", "Body": "{{note}}"})]),
)
def test_a_checked_row_is_the_row_checked_with_a_request_of_its_own(
    number: int, fields: dict[str, Any], carry: Carry, params: JobParams | None
) -> None:
    logging.disable(logging.CRITICAL)  # an unexpected exception is logged, as it should be
    try:
        now = _checked(number, fields, None, params, carry)
        before = _checked_before(number, fields, params, carry)
    finally:
        logging.disable(logging.NOTSET)
    assert now == before
    if isinstance(now, Accepted) and isinstance(before, Accepted):
        assert now.params_json == before.params_json
        assert now.request.carried == before.request.carried


@pytest.mark.parametrize("api", APIS)
def test_every_api_has_its_json_looked_up(api: str) -> None:
    assert api_json(api) == f'"{api}"'


_SPECS = st.sampled_from(
    [
        (name, spec)
        for params in PARAMS.values()
        for name, spec in params.items()
        if spec.kind not in ("json", "text")
    ]
)
_TEXTS = st.one_of(
    st.sampled_from(
        [
            "+15005550006",
            "(415) 555-0100",
            "whatsapp:+447700900123",
            "messenger:abc",
            "sip:a@b.com",
            "client:bob",
            "12345",
            "ACME Ltd",
            "MG" + _HEX,
            "https://e.com/x",
            "true",
            "FALSE",
            "42",
            "-7",
            "sms",
            "US",
            "2026-12-07T01:00:00",
            "+44 (0) 20 7946 0018",
        ]
    ),
    st.text(max_size=16),
)


def _checked_now(text: str, spec: Any, context: Context) -> Any:
    try:
        return _checked_text(text, spec, context)
    except InvalidRow as error:
        return (type(error).__name__, str(error))


def _checked_plain(text: str, spec: Any, context: Context) -> Any:
    try:
        return _CHECKS[spec.kind](text, spec, context)
    except InvalidRow as error:
        return (type(error).__name__, str(error))


_DONE = st.sampled_from([{}, {"Channel": "email"}, {"CountryCode": "GB"}])


@given(
    st.lists(st.tuples(_SPECS, _TEXTS, _DONE), min_size=1, max_size=6),
    st.sampled_from([None, "US", "GB"]),
)
def test_a_value_checked_once_is_the_value_checked_again(
    values: list[tuple[tuple[str, Any], str, dict[str, str]]], region: str | None
) -> None:
    clear_checked()
    for _ in range(2):  # the second time from what the first kept
        # The parameters converted before a value differ from row to row.
        for (_, spec), text, done in values:
            context = Context(done, region)
            assert _checked_now(text, spec, context) == _checked_plain(text, spec, context)
        values = [(spec, text, {} if done else {"Channel": "email"}) for spec, text, done in values]


def test_a_value_kept_for_one_param_is_not_given_for_another() -> None:
    clear_checked()
    ten, one = Param("integer", maximum=10), Param("integer", maximum=1)
    context = Context({}, None)
    assert _checked_text("5", ten, context) == "5"
    # As if `one` had been made where `ten` was: the same id, another Param.
    _kept[("5", id(one), None)] = (ten, "5")
    with pytest.raises(InvalidRow, match="out of range"):
        _checked_text("5", one, context)
