"""How one parameter's value is checked and written, by the kind its Param gives: phone numbers
to E.164 (phone_numbers), booleans and whole numbers as Twilio's form encoding writes them, JSON
parameters as a string that holds an object, and each kind's own rule (a URL, a SID, one of an
enum's choices).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from chalicelib.core.records import ParamValue
from chalicelib.intake.parsing import MAX_JSON_DEPTH, nesting_depth
from chalicelib.intake.validation.api_params import MAX_MEDIA_URLS, Param
from chalicelib.intake.validation.exceptions import PHONE_NUMBER, InvalidNumber, InvalidRow
from chalicelib.intake.validation.phone_numbers import (
    national_digits,
    normalise_number,
    possible_number,
)

_SHORT_CODE: Final = re.compile(r"[0-9]{3,8}")
# Twilio: up to 11 ASCII letters, digits and spaces, with at least one letter.
_ALPHANUMERIC_SENDER: Final = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_LETTER: Final = re.compile(r"[A-Za-z]")
_SENDER: Final = f"{PHONE_NUMBER}, short code or alphanumeric sender ID"
_SENDER_ID_RULE: Final = "a sender ID is 1 to 11 letters, digits and spaces, one a letter at least"
_CHANNEL_ADDRESS: Final = re.compile(r"(whatsapp|messenger|rcs):(.*)", re.IGNORECASE | re.DOTALL)
_CALL_ADDRESS: Final = re.compile(r"(sip|client):(\S+)", re.IGNORECASE)
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY: Final = re.compile(r"[A-Za-z]{2}")
_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]+")


class Context(NamedTuple):
    """What a value's check may depend on besides the value: the parameters of its row converted
    before it (a phone number depends on the country or channel given) and the region national
    phone numbers are read in (None: they are refused). A tuple: one is made per row, and a
    frozen dataclass takes three times as long to make."""

    done: Mapping[str, ParamValue]
    default_region: str | None = None


def is_empty(value: object) -> bool:
    """Empty strings, whitespace, JSON null and empty lists count as absent."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list) and not value


def form_text(value: object) -> str:
    """A scalar JSON value as Twilio's form encoding writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def convert(name: str, spec: Param, value: Any, context: Context) -> ParamValue:
    """A present value of parameter `name` as it is sent."""
    if spec.repeated:
        items = _items(name, spec, value)
        if name == "MediaUrl" and len(items) > MAX_MEDIA_URLS:
            raise InvalidRow(f"MediaUrl has {len(items)} URLs; the limit is {MAX_MEDIA_URLS}")
        return [_convert_one(name, spec, item, context) for item in items]
    if isinstance(value, list):
        raise InvalidRow(f"{name} has a list of values; it takes one")
    if isinstance(value, dict) and spec.kind != "json":
        raise InvalidRow(f"{name} is an object; it takes a single value")
    return _convert_one(name, spec, value, context)


def _items(name: str, spec: Param, value: Any) -> list[Any]:
    if isinstance(value, str):
        return [item for item in re.split(spec.separator, value.strip()) if item]
    if isinstance(value, list):
        if any(isinstance(item, list | dict) for item in value):
            raise InvalidRow(f"{name} must be a list of single values")
        return [item for item in value if not is_empty(item)]
    if isinstance(value, dict):
        raise InvalidRow(f"{name} is an object; it takes a list of values")
    return [value]


def _convert_one(name: str, spec: Param, value: Any, context: Context) -> str:
    if spec.kind == "json":
        return _json_object(name, value)
    text = form_text(value)
    if spec.kind == "text":
        if spec.max_length is not None and len(text) > spec.max_length:
            raise InvalidRow(f"{name} is {len(text)} characters; the limit is {spec.max_length}")
        return text
    text = text.strip()
    try:
        return _checked_text(text, spec, context)
    except InvalidNumber as error:
        raise error.named(name) from None
    except InvalidRow as error:
        raise InvalidRow(f"{name} {error}") from None


# The kinds whose check reads nothing but the text, the Param and the default region: a
# file's rows repeat their values (a From, a StatusCallback, a Channel), each checked once while
# it is kept. Refusals are not kept. Keyed by the Param's identity, kept beside it (a Param is
# compared by all its fields, slower than checking the value again). On a file of distinct
# numbers every To misses, at ~0.4 µs, within noise (docs/decisions/split-shortcuts.md).
_SHARED_KINDS: Final = frozenset(
    {"integer", "boolean", "url", "sid", "enum", "country", "phone", "message_from",
     "message_to", "call_endpoint", "flow_from"}
)  # fmt: skip
_KEEP_CHECKED: Final = 4096
_kept: dict[tuple[str, int, str | None], tuple[Param, str]] = {}


def clear_checked() -> None:
    """Forgets the values checked so far (for tests)."""
    _kept.clear()


def _checked_text(text: str, spec: Param, context: Context) -> str:
    """_CHECKS[spec.kind](text, spec, context), once per value of a shared kind."""
    if spec.kind not in _SHARED_KINDS:
        return _CHECKS[spec.kind](text, spec, context)
    key = (text, id(spec), context.default_region)
    known = _kept.get(key)
    if known is not None and known[0] is spec:
        return known[1]
    result = _CHECKS[spec.kind](text, spec, context)
    if len(_kept) >= _KEEP_CHECKED:
        _kept.clear()
    _kept[key] = (spec, result)
    return result


def _json_object(name: str, value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not isinstance(value, str):
        raise InvalidRow(f"{name} must be a JSON object")
    if nesting_depth(value) > MAX_JSON_DEPTH:
        raise InvalidRow(f"{name} is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        parsed = json.loads(value)
    except ValueError:
        raise InvalidRow(f"{name} is not valid JSON: {value!r}") from None
    if not isinstance(parsed, dict):
        raise InvalidRow(f"{name} must be a JSON object, not {value!r}")
    return value.strip()


def _check_integer(text: str, spec: Param, context: Context) -> str:
    if not _INTEGER_TEXT.fullmatch(text):
        raise InvalidRow(f"{text!r} is not a whole number")
    number = int(text)
    low = spec.minimum if spec.minimum is not None else number
    high = spec.maximum if spec.maximum is not None else number
    if not low <= number <= high:
        raise InvalidRow(f"{number} is out of range ({spec.minimum} to {spec.maximum})")
    return str(number)


def _check_number(text: str, spec: Param, context: Context) -> str:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise InvalidRow(f"{text!r} is not a number")
    return text


def _check_boolean(text: str, spec: Param, context: Context) -> str:
    lowered = text.casefold()
    if lowered not in ("true", "false"):
        raise InvalidRow(f"{text!r} is not true or false")
    return lowered


def _check_datetime(text: str, spec: Param, context: Context) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRow(f"{text!r} is not an ISO 8601 date and time") from None
    return text


def _check_url(text: str, spec: Param, context: Context) -> str:
    parts = urlsplit(text)
    if parts.scheme.casefold() not in ("http", "https") or not parts.netloc:
        raise InvalidRow(f"{text!r} is not an http(s) URL")
    return text


def _check_sid(text: str, spec: Param, context: Context) -> str:
    if not re.fullmatch(rf"{spec.sid_prefix}[0-9a-fA-F]{{32}}", text):
        raise InvalidRow(f"{text!r} is not a SID ({spec.sid_prefix} and 32 hex digits)")
    return text


def _check_enum(text: str, spec: Param, context: Context) -> str:
    for choice in spec.choices:
        if choice.casefold() == text.casefold():
            return choice
    raise InvalidRow(f"{text!r} is not one of {', '.join(spec.choices)}")


def _check_country(text: str, spec: Param, context: Context) -> str:
    if not _COUNTRY.fullmatch(text):
        raise InvalidRow(f"{text!r} is not a two-letter country code")
    return text.upper()


def _check_phone(text: str, spec: Param, context: Context) -> str:
    return normalise_number(text, context.default_region)


def _check_message_to(text: str, spec: Param, context: Context) -> str:
    channel = _CHANNEL_ADDRESS.fullmatch(text)
    if channel is not None:
        return _channel_address(channel, context)
    return normalise_number(text, context.default_region)


def _check_message_from(text: str, spec: Param, context: Context) -> str:
    channel = _CHANNEL_ADDRESS.fullmatch(text)
    if channel is not None:
        return _channel_address(channel, context)
    if _SHORT_CODE.fullmatch(text) or _ALPHANUMERIC_SENDER.fullmatch(text):
        return text
    try:
        return normalise_number(text, context.default_region)
    except InvalidNumber as error:
        # With a letter in it, it was meant for a sender ID, and the number's reason would mislead.
        why = _SENDER_ID_RULE if _LETTER.search(text) else error.why
        raise InvalidNumber(text, why, what=_SENDER) from None


def _channel_address(match: re.Match[str], context: Context) -> str:
    channel, address = match.group(1).casefold(), match.group(2).strip()
    if channel == "whatsapp" or address.startswith(("+", "00")):
        return f"{channel}:{normalise_number(address, context.default_region)}"
    if not address or any(char.isspace() for char in address):
        raise InvalidRow(f"{match.group()!r} is not a {channel} address")
    return f"{channel}:{address}"


def _check_call_endpoint(text: str, spec: Param, context: Context) -> str:
    address = _CALL_ADDRESS.fullmatch(text)
    if address is not None:
        return f"{address.group(1).casefold()}:{address.group(2)}"
    return normalise_number(text, context.default_region)


def _check_flow_from(text: str, spec: Param, context: Context) -> str:
    # Studio sends SMS from a Messaging Service when given its SID instead of a number.
    if text.startswith("MG"):
        return _check_sid(text, Param("sid", sid_prefix="MG"), context)
    return normalise_number(text, context.default_region)


def _check_verify_to(text: str, spec: Param, context: Context) -> str:
    if context.done.get("Channel") == "email":
        if not _EMAIL.fullmatch(text):
            raise InvalidRow(f"{text!r} is not an email address")
        return text
    return normalise_number(text, context.default_region)


def _check_lookup_number(text: str, spec: Param, context: Context) -> str:
    national = national_digits(text)
    if national is not None and "CountryCode" in context.done:
        # The Lookup API reads a national number in the row's CountryCode, which is more
        # particular than DEFAULT_REGION.
        return national
    # Possible, not valid: whether a number is valid is what one asks Lookup.
    return possible_number(text, context.default_region)


_Check = Callable[[str, Param, Context], str]

_CHECKS: Final[Mapping[str, _Check]] = {
    "integer": _check_integer,
    "number": _check_number,
    "boolean": _check_boolean,
    "datetime": _check_datetime,
    "url": _check_url,
    "sid": _check_sid,
    "enum": _check_enum,
    "country": _check_country,
    "phone": _check_phone,
    "message_to": _check_message_to,
    "message_from": _check_message_from,
    "call_endpoint": _check_call_endpoint,
    "flow_from": _check_flow_from,
    "verify_to": _check_verify_to,
    "lookup_number": _check_lookup_number,
}
