"""Tests for chalicelib.intake.validation.phone_numbers: typed numbers to E.164, the reasons for
refusing the rest, national formats with and without a default region, and Twilio's test numbers."""

from __future__ import annotations

import os
import re

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType, ValidationResult

from chalicelib.intake.validation import InvalidNumber, normalise_number
from chalicelib.intake.validation import phone_numbers as module
from chalicelib.intake.validation.exceptions import shown
from chalicelib.intake.validation.phone_numbers import NO_COUNTRY_CODE, possible_number
from tests.oai import SPEC_DIR

MAGIC_NUMBERS_TABLE = SPEC_DIR.parent / "seeds" / "twilio-magic-numbers.md"
# Twilio's test-credential numbers (the seeds' table) and the emulator's undelivered ones.
TWILIO_TEST_NUMBERS = [
    *(f"+1500555000{n}" for n in range(1, 10)),
    "+15005550030",
    "+15005550050",
    "+15005550060",
    "+15005550070",
]


def refusal(text: str, region: str | None = None) -> str:
    with pytest.raises(InvalidNumber) as caught:
        normalise_number(text, region)
    return str(caught.value)


# --- examples ---


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("+14155550100", "+14155550100"),
        ("+1 415 555 0100", "+14155550100"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("+1.415.555.0100", "+14155550100"),
        ("  +14155550100\t", "+14155550100"),
        ("0014155550100", "+14155550100"),
        ("00 44 20 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("0044 (0) 20 7946 0958", "+442079460958"),
        ("+6834002", "+6834002"),
    ],
)
def test_normalise_number_accepts_unambiguous_forms(given: str, expected: str) -> None:
    assert normalise_number(given) == expected


CHARACTERS = "only a leading +, digits 0-9, spaces, dashes, dots and parentheses are allowed"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("4155550100", f"4155550100 is not a valid phone number ({NO_COUNTRY_CODE})"),
        ("(415) 555-0100", f"'(415) 555-0100' is not a valid phone number ({NO_COUNTRY_CODE})"),
        ("07946 095800", f"'07946 095800' is not a valid phone number ({NO_COUNTRY_CODE})"),
        ("+1234567", "+1234567 is not a valid phone number (too short for +1)"),
        ("+4420794609", "+4420794609 is not a valid phone number (too short for +44)"),
        ("+1555", "+1555 is not a valid phone number (too short for +1)"),
        ("+123456789012345", "+123456789012345 is not a valid phone number (too long for +1)"),
        (
            "+15551234567",
            "+15551234567 is not a valid phone number (not in a range of numbers +1 assigns)",
        ),
        (
            "+0441234567",
            "+0441234567 is not a valid phone number (it does not start with a country code)",
        ),
        ("+1234567890123456", "+1234567890123456 is not a valid phone number (too long for +1)"),
        ("++14155550100", f"++14155550100 is not a valid phone number ({CHARACTERS})"),
        (
            "+1 415 555 0100 ext 5",
            f"'+1 415 555 0100 ext 5' is not a valid phone number ({CHARACTERS})",
        ),
        ("+1415555010O", f"+1415555010O is not a valid phone number ({CHARACTERS})"),
        ("+١٤١٥٥٥٥٠١٠٠", f"+١٤١٥٥٥٥٠١٠٠ is not a valid phone number ({CHARACTERS})"),
        (
            "whatsapp:+14155550100",
            f"whatsapp:+14155550100 is not a valid phone number ({CHARACTERS})",
        ),
        ("  ", "'  ' is not a valid phone number (it is empty)"),
    ],
)
def test_normalise_number_rejects_the_rest_saying_why(given: str, expected: str) -> None:
    assert refusal(given) == expected


def test_a_national_number_is_read_in_the_default_region() -> None:
    assert normalise_number("(415) 555-0100", "US") == "+14155550100"
    assert normalise_number("415.555.0100", "us") == "+14155550100"
    assert normalise_number("020 7946 0958", "GB") == "+442079460958"
    assert normalise_number("+1 415 555 0100", "GB") == "+14155550100"
    assert refusal("(415) 555-010", "US") == (
        "'(415) 555-010' is not a valid phone number (too short for +1)"
    )
    # Seven digits are a local number in the US: without the area code, it cannot be dialled.
    assert refusal("555-0100", "US") == "555-0100 is not a valid phone number (too short for +1)"


def test_an_unknown_default_region_is_named() -> None:
    assert refusal("4155550100", "XX") == (
        "4155550100 is not a valid phone number ('XX' is not a region code such as US)"
    )


def test_a_refusal_names_its_column_once_known() -> None:
    with pytest.raises(InvalidNumber) as caught:
        normalise_number("+1234567")
    assert str(caught.value.named("To")) == (
        "To: +1234567 is not a valid phone number (too short for +1)"
    )


def test_possible_number_takes_numbers_of_a_possible_length_valid_or_not() -> None:
    assert possible_number("+1 555 123 4567") == "+15551234567"
    assert possible_number("555 123 4567", "US") == "+15551234567"
    with pytest.raises(InvalidNumber, match=r"too short for \+1"):
        possible_number("+1555")


# --- Twilio's test numbers ---


@pytest.mark.parametrize("number", TWILIO_TEST_NUMBERS)
def test_twilios_test_numbers_are_taken_as_they_are(number: str) -> None:
    assert normalise_number(number) == number
    assert normalise_number(f"+1 (500) 555-{number[-4:]}") == number
    assert normalise_number(f"500 555 {number[-4:]}", "US") == number


def test_twilios_test_numbers_pass_even_where_the_metadata_says_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        module.phonenumbers, "is_valid_number_for_region", lambda number, region: False
    )
    module.clear_cache()
    try:
        for number in TWILIO_TEST_NUMBERS:
            assert normalise_number(number) == number
        with pytest.raises(InvalidNumber, match="not in a range of numbers"):
            normalise_number("+14155550100")
    finally:
        module.clear_cache()


def test_every_number_of_the_magic_numbers_table_is_taken() -> None:
    if not MAGIC_NUMBERS_TABLE.is_file() and os.environ.get("CI") != "true":
        pytest.skip(f"{MAGIC_NUMBERS_TABLE} is not beside the repo")
    numbers = set(re.findall(r"\+1500555[0-9]{4}", MAGIC_NUMBERS_TABLE.read_text("utf-8")))
    assert numbers
    assert numbers <= set(TWILIO_TEST_NUMBERS)


# --- properties ---

_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
)


def _acceptable(number: PhoneNumber) -> bool:
    """What the module takes: valid, and of a length its country dials from abroad."""
    return phonenumbers.is_valid_number(number) and (
        phonenumbers.is_possible_number_with_reason(number) == ValidationResult.IS_POSSIBLE
    )


# Every region's example numbers: about 1,400 valid numbers of every type the metadata knows.
EXAMPLES: list[tuple[str, PhoneNumber]] = [
    (region, example)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    for kind in _TYPES
    if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    and _acceptable(example)
]
SEPARATORS = st.sampled_from(["", " ", "-", ".", " - ", "  "])


@st.composite
def typed_forms(draw: st.DrawFn, digits: str) -> str:
    """`digits` cut into groups at random, joined by random separators, one group of two or more
    digits perhaps in parentheses (never a lone 0, which would read as a trunk prefix)."""
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=len(digits) - 1)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    wrapped = draw(st.integers(-1, len(groups) - 1))
    if wrapped >= 0 and len(groups[wrapped]) >= 2:
        groups[wrapped] = f"({groups[wrapped]})"
    text = groups[0]
    for group in groups[1:]:
        text += draw(SEPARATORS) + group
    return draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " "]))


@given(st.sampled_from(EXAMPLES), st.data())
def test_any_valid_number_however_spaced_normalises_to_its_e164(
    example: tuple[str, PhoneNumber], data: st.DataObject
) -> None:
    _, number = example
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    prefix = data.draw(st.sampled_from(["+", "+ ", "00", "00 "]))
    typed = prefix + data.draw(typed_forms(e164[1:]))
    assert normalise_number(typed) == e164
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    assert normalise_number(international) == e164
    assert normalise_number(typed, data.draw(st.sampled_from(["US", "GB", "DE"]))) == e164


@given(st.from_regex(r"\+[0-9]{1,17}", fullmatch=True), st.data())
def test_any_digit_string_phonenumbers_deems_invalid_is_refused_saying_why(
    typed: str, data: st.DataObject
) -> None:
    assume(not module.TWILIO_TEST_NUMBERS.fullmatch(typed))
    try:
        parsed = phonenumbers.parse(typed)
    except phonenumbers.NumberParseException:
        parsed = None
    acceptable = parsed is not None and _acceptable(parsed)
    spaced = "+" + data.draw(typed_forms(typed[1:])) if len(typed) > 2 else typed
    for text in (typed, spaced):
        if parsed is not None and acceptable:
            assert normalise_number(text) == phonenumbers.format_number(
                parsed, PhoneNumberFormat.E164
            )
            continue
        with pytest.raises(InvalidNumber) as caught:
            normalise_number(text)
        message = str(caught.value)
        assert message.startswith(f"{shown(text)} is not a valid phone number ("), message
        assert message.endswith(")"), message


@given(st.sampled_from(EXAMPLES))
def test_a_national_format_needs_the_default_region(example: tuple[str, PhoneNumber]) -> None:
    region, number = example
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    assert normalise_number(national, region) == e164
    assert refusal(national).endswith(f"is not a valid phone number ({NO_COUNTRY_CODE})")


@given(st.from_regex(r"[1-9][0-9]{5,12}", fullmatch=True))
def test_digits_without_a_country_code_are_refused_without_a_default_region(digits: str) -> None:
    assert refusal(digits) == f"{digits} is not a valid phone number ({NO_COUNTRY_CODE})"


@given(st.sampled_from(EXAMPLES), st.booleans())
def test_the_country_a_check_keeps_is_the_one_the_price_would_find(
    example: tuple[str, PhoneNumber], national: bool
) -> None:
    # The row check keeps each valid number's country for the cost estimate
    # (chalicelib.core.costs.country_of), which then does not parse the number again: it must be
    # the country a parse of the E.164 form finds, however the number was typed.
    from chalicelib.core import costs

    region, number = example
    typed = (
        phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        if national
        else phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    )
    module.clear_cache()
    costs._country_read.cache_clear()
    try:
        e164 = normalise_number(typed, region if national else None)
    except InvalidNumber:
        return  # a national form some regions do not read back: nothing kept
    assert e164 in costs._KNOWN_COUNTRIES
    kept = costs._KNOWN_COUNTRIES.pop(e164)
    assert kept == costs.country_of(e164)
    costs._country_read.cache_clear()
    costs._KNOWN_COUNTRIES[e164] = kept
    assert costs.country_of(e164) == kept


def test_a_refused_number_keeps_no_country() -> None:
    from chalicelib.core import costs

    module.clear_cache()
    costs._KNOWN_COUNTRIES.clear()
    with pytest.raises(InvalidNumber):
        normalise_number("+1555")
    with pytest.raises(InvalidNumber):
        normalise_number("+12010000000")  # exchange 000: not a range +1 assigns
    assert costs._KNOWN_COUNTRIES == {}
