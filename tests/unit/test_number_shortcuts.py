"""The number check's shortcuts against the plain forms they stand for: a number typed as E.164
read without the rewriting it does not need, why a number is impossible asked once per country
code and length, a country kept by the row check looked up before the price's cache, and the
compact JSON encoder built once."""

from __future__ import annotations

import json
from typing import Any

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumber

from chalicelib.core import costs
from chalicelib.intake.encoded import compact
from chalicelib.intake.validation import InvalidNumber
from chalicelib.intake.validation import phone_numbers as module


def _parsed_plain(text: str, region: str | None) -> PhoneNumber:
    """_parsed with every number rewritten first, as before the shortcut."""
    compact_text = module._rewritten(text, region)
    read_in = None
    if not compact_text.startswith("+"):
        if not region:
            raise InvalidNumber(text, module.NO_COUNTRY_CODE)
        read_in = region.upper()
        if read_in not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidNumber(text, f"{region!r} is not a region code such as US")
    try:
        return phonenumbers.parse(compact_text, read_in)
    except phonenumbers.NumberParseException as error:
        raise InvalidNumber(
            text, module._PARSE_ERRORS.get(error.error_type, "not a phone number")
        ) from None


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except InvalidNumber as error:
        return str(error)


TYPED = st.one_of(
    st.from_regex(r"\+[0-9]{0,20}", fullmatch=True),
    st.from_regex(r"\s*(\+|00)?[0-9 ().\-]{0,20}\s*", fullmatch=True),
    st.text(alphabet="+0123456789 ()-.\t\n٣a", max_size=22),
    st.text(max_size=12),
)
REGIONS = st.sampled_from([None, "", "US", "gb", "DE", "XX"])


@given(TYPED, REGIONS)
def test_a_number_typed_as_e164_is_read_as_the_rewritten_form_is(
    text: str, region: str | None
) -> None:
    assert _outcome(module._parsed, text, region) == _outcome(_parsed_plain, text, region)


NUMBERS = st.builds(
    PhoneNumber,
    country_code=st.integers(0, 999),
    national_number=st.integers(0, 10**18),
    italian_leading_zero=st.sampled_from([None, False, True]),
    number_of_leading_zeros=st.sampled_from([None, 0, 1, 2, 3]),
)


@given(st.lists(NUMBERS, min_size=1, max_size=8))
def test_why_a_number_is_impossible_is_what_phonenumbers_answers_for_it(
    numbers: list[PhoneNumber],
) -> None:
    # Asked in sequence, so a pair already answered for one number answers for the next.
    module.clear_cache()
    for number in numbers:
        assert module._impossible(number) == module._impossible_by_length(number)


@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_a_kept_country_is_the_one_the_price_would_read(e164: str) -> None:
    module.clear_cache()
    try:
        module.normalise_number(e164)
    except InvalidNumber:
        assert e164 not in costs._KNOWN_COUNTRIES
        return
    kept = costs.country_of(e164)
    module.clear_cache()
    assert costs.country_of(e164) == kept == costs._country_read(e164)


@pytest.fixture(autouse=True)
def _fresh_numbers() -> Any:
    module.clear_cache()
    yield
    module.clear_cache()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_compact_is_json_dumps_with_compact_separators(value: Any) -> None:
    assert compact(value) == json.dumps(value, separators=(",", ":"))


def test_compact_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        compact({"a": object()})
    # The encoder is built once: a refusal leaves nothing behind for the next value.
    assert compact({"a": [1]}) == '{"a":[1]}'
