"""Phone numbers as people type them, made E.164 for Twilio, or refused with the reason.

- Only unambiguous rewriting comes first: spaces, dashes, dots and parentheses are dropped, a
  ``(0)`` trunk prefix after the country code is dropped and a leading ``00`` becomes ``+``. Any
  other character (letters, an extension, a second ``+``, digits of other scripts) is refused.
- A number without ``+`` (or ``00``) is in national format: it is read in the default region
  (the DEFAULT_REGION setting) when one is given, and refused otherwise, never guessed.
- Google's libphonenumber metadata (the ``phonenumbers`` package) then reads it. A number to
  send to or from must be valid (of a length and in a range its country assigns), not only of a
  possible length: Twilio refuses the others (21211, 21212) after the row has taken a place in
  the schedule, while a refusal here reaches the user with the rest of the file's rejects.
- Twilio's test numbers, +1 500 555 and four digits, are always taken as they are: with test
  credentials Twilio answers them deterministically (+15005550001 gets 21211 from Twilio, which
  is what the test flows check), so no metadata update may turn them into refusals of ours.
  phonenumbers 9.0.43 happens to deem them valid (500 is a North American non-geographic code).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, ValidationResult

from chalicelib.core.costs import forget_countries, remember_country
from chalicelib.intake.validation.exceptions import InvalidNumber

# The numbers Twilio's test credentials answer (../shared/seeds/twilio-magic-numbers.md) and the
# emulator's own undelivered ones (+15005550030/50/60/70) are all in this block.
TWILIO_TEST_NUMBERS: Final = re.compile(r"\+1500555[0-9]{4}")

NO_COUNTRY_CODE: Final = "no country code: add + and the country code, or set DEFAULT_REGION"
_CHARACTERS: Final = (
    "only a leading +, digits 0-9, spaces, dashes, dots and parentheses are allowed"
)

# [0-9], not \d: other scripts' digits are refused rather than read.
_TYPED: Final = re.compile(r"\+?[0-9\s\-.()]*[0-9][0-9\s\-.()]*")
_SEPARATORS: Final = re.compile(r"[\s\-.()]")
_TRUNK_ZERO: Final = re.compile(r"^(\+|00)([0-9\s\-.]*)\(0\)")
_DIGITS: Final = re.compile(r"[0-9]+")
# A number typed as E.164 already (a campaign file's usual form): none of the rewriting above
# changes it, so it goes to phonenumbers as it is (tests/unit/test_number_shortcuts.py).
_COMPACT_E164: Final = re.compile(r"\+[0-9]+")

_PARSE_ERRORS: Final = {
    NumberParseException.INVALID_COUNTRY_CODE: "it does not start with a country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


def normalise_number(text: str, default_region: str | None = None) -> str:
    """The E.164 form of a valid phone number typed in any of the forms above, national ones read
    in `default_region` (a region code such as "US"; None: national numbers are refused).

    Raises InvalidNumber, whose message names the value and says why; a caller that knows where
    the value came from names that too (`InvalidNumber.named`)."""
    return _e164(text, default_region, valid=True)


def possible_number(text: str, default_region: str | None = None) -> str:
    """The E.164 form of a number of a possible length for its country, valid or not: what one
    may ask Lookup about, since whether a number is valid is Lookup's answer to give."""
    return _e164(text, default_region, valid=False)


# Reading a number takes phonenumbers about 90 µs, several times the rest of a row's checks, and
# a file's rows mostly share their From: each number is read once. Refusals are not kept.
@lru_cache(maxsize=1024)
def _e164(text: str, default_region: str | None, *, valid: bool) -> str:
    number = _parsed(text, default_region)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if TWILIO_TEST_NUMBERS.fullmatch(e164):
        return e164
    why = _impossible(number)
    if why is None and valid:
        # phonenumbers.is_valid_number, with the region it finds kept for the row's price.
        region = phonenumbers.region_code_for_number(number)
        if region is not None and phonenumbers.is_valid_number_for_region(number, region):
            remember_country(e164, region)
        else:
            why = f"not in a range of numbers +{number.country_code} assigns"
    if why is not None:
        raise InvalidNumber(text, why)
    return e164


def clear_cache() -> None:
    """Forget the numbers read so far (for tests that change what phonenumbers answers)."""
    _e164.cache_clear()
    _IMPOSSIBLE.clear()
    forget_countries()


def national_digits(text: str) -> str | None:
    """The digits of a number typed in national format (no ``+`` or ``00``), else None."""
    compact = _SEPARATORS.sub("", text.strip())
    if _DIGITS.fullmatch(compact) and not compact.startswith("00"):
        return compact
    return None


def _parsed(text: str, default_region: str | None) -> PhoneNumber:
    compact = text if _COMPACT_E164.fullmatch(text) else _rewritten(text, default_region)
    region = None
    if not compact.startswith("+"):
        if not default_region:
            raise InvalidNumber(text, NO_COUNTRY_CODE)
        region = default_region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidNumber(text, f"{default_region!r} is not a region code such as US")
    try:
        return phonenumbers.parse(compact, region)
    except NumberParseException as error:
        raise InvalidNumber(
            text, _PARSE_ERRORS.get(error.error_type, "not a phone number")
        ) from None


def _rewritten(text: str, default_region: str | None) -> str:
    """The number with the unambiguous rewriting done: separators and a (0) trunk prefix dropped,
    a leading 00 made +."""
    typed = text.strip()
    if not typed:
        raise InvalidNumber(text, "it is empty")
    if not _TYPED.fullmatch(typed):
        raise InvalidNumber(text, _CHARACTERS)
    compact = _SEPARATORS.sub("", _TRUNK_ZERO.sub(r"\1\2", typed))
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact


# Why a number is impossible depends on its country code and the length of its national
# significant number alone (phonenumbers' is_possible_number_with_reason reads nothing else):
# each pair is asked once. A few hundred codes and lengths up to 17: small.
_IMPOSSIBLE: dict[tuple[int | None, int], str | None] = {}


def _impossible(number: PhoneNumber) -> str | None:
    """Why no number of the country could be this one (its length), or None."""
    key = (number.country_code, len(phonenumbers.national_significant_number(number)))
    try:
        return _IMPOSSIBLE[key]
    except KeyError:
        why = _IMPOSSIBLE[key] = _impossible_by_length(number)
        return why


def _impossible_by_length(number: PhoneNumber) -> str | None:
    """_impossible, asked of phonenumbers."""
    code = f"+{number.country_code}"
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        # Local only: the digits after the area code, which is missing or cut short.
        return f"too short for {code}"
    if reason == ValidationResult.TOO_LONG:
        return f"too long for {code}"
    if reason == ValidationResult.INVALID_LENGTH:
        return f"not a length of number {code} has"
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        return f"{code} is not a country code"
    return None
