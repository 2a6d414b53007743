"""How one parameter's value is checked and written, by the kind its Param gives: phone numbers
to E.164, booleans and whole numbers as Twilio's form encoding writes them, JSON parameters as a
string that holds an object, and each kind's own rule (a URL, a SID, one of an enum's choices).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from chalicelib.core.records import ParamValue
from chalicelib.errors import CallqueueError
from chalicelib.intake.parsing import MAX_JSON_DEPTH, nesting_depth
from chalicelib.intake.validation.api_params import MAX_MEDIA_URLS, Param

# E.164 allows up to 15 digits; no country has numbers shorter than 7 digits with the country
# code (Niue: +683 and 4 digits), so anything shorter is a truncated number, not a short one.
E164_MIN_DIGITS: Final = 7
E164_MAX_DIGITS: Final = 15


class InvalidRow(CallqueueError):
    """A record that cannot become a request; str(error) is the reason shown to the user."""


_SEPARATORS: Final = re.compile(r"[\s\-.()]")
_TRUNK_ZERO: Final = re.compile(r"^(\+|00)([0-9\s\-.]*)\(0\)")
_E164: Final = re.compile(rf"\+[1-9][0-9]{{{E164_MIN_DIGITS - 1},{E164_MAX_DIGITS - 1}}}")
_DIGITS: Final = re.compile(r"[0-9]+")
_SHORT_CODE: Final = re.compile(r"[0-9]{3,8}")
# Twilio: up to 11 ASCII letters, digits and spaces, with at least one letter.
_ALPHANUMERIC_SENDER: Final = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_CHANNEL_ADDRESS: Final = re.compile(r"(whatsapp|messenger|rcs):(.*)", re.IGNORECASE | re.DOTALL)
_CALL_ADDRESS: Final = re.compile(r"(sip|client):(\S+)", re.IGNORECASE)
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY: Final = re.compile(r"[A-Za-z]{2}")
_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]+")


def normalise_number(value: str) -> str:
    """The E.164 form of a phone number, or InvalidRow if it is not unambiguously one."""
    compact = _SEPARATORS.sub("", _TRUNK_ZERO.sub(r"\1\2", value.strip()))
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _E164.fullmatch(compact):
        return compact
    if _DIGITS.fullmatch(compact):
        raise InvalidRow(f"{value!r} is not an E.164 number: it needs + and the country code")
    raise InvalidRow(f"{value!r} is not an E.164 number")


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


def convert(name: str, spec: Param, value: Any, done: Mapping[str, ParamValue]) -> ParamValue:
    """A present value of parameter `name` as it is sent; `done`: the parameters converted
    before it (a phone number depends on the country or channel given)."""
    if spec.repeated:
        items = _items(name, spec, value)
        if name == "MediaUrl" and len(items) > MAX_MEDIA_URLS:
            raise InvalidRow(f"MediaUrl has {len(items)} URLs; the limit is {MAX_MEDIA_URLS}")
        return [_convert_one(name, spec, item, done) for item in items]
    if isinstance(value, list):
        raise InvalidRow(f"{name} has a list of values; it takes one")
    if isinstance(value, dict) and spec.kind != "json":
        raise InvalidRow(f"{name} is an object; it takes a single value")
    return _convert_one(name, spec, value, done)


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


def _convert_one(name: str, spec: Param, value: Any, done: Mapping[str, ParamValue]) -> str:
    if spec.kind == "json":
        return _json_object(name, value)
    text = form_text(value)
    if spec.kind == "text":
        if spec.max_length is not None and len(text) > spec.max_length:
            raise InvalidRow(f"{name} is {len(text)} characters; the limit is {spec.max_length}")
        return text
    text = text.strip()
    try:
        return _CHECKS[spec.kind](text, spec, done)
    except InvalidRow as error:
        raise InvalidRow(f"{name} {error}") from None


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


def _check_integer(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    if not _INTEGER_TEXT.fullmatch(text):
        raise InvalidRow(f"{text!r} is not a whole number")
    number = int(text)
    low = spec.minimum if spec.minimum is not None else number
    high = spec.maximum if spec.maximum is not None else number
    if not low <= number <= high:
        raise InvalidRow(f"{number} is out of range ({spec.minimum} to {spec.maximum})")
    return str(number)


def _check_number(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise InvalidRow(f"{text!r} is not a number")
    return text


def _check_boolean(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    lowered = text.casefold()
    if lowered not in ("true", "false"):
        raise InvalidRow(f"{text!r} is not true or false")
    return lowered


def _check_datetime(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRow(f"{text!r} is not an ISO 8601 date and time") from None
    return text


def _check_url(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    parts = urlsplit(text)
    if parts.scheme.casefold() not in ("http", "https") or not parts.netloc:
        raise InvalidRow(f"{text!r} is not an http(s) URL")
    return text


def _check_sid(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    if not re.fullmatch(rf"{spec.sid_prefix}[0-9a-fA-F]{{32}}", text):
        raise InvalidRow(f"{text!r} is not a SID ({spec.sid_prefix} and 32 hex digits)")
    return text


def _check_enum(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    for choice in spec.choices:
        if choice.casefold() == text.casefold():
            return choice
    raise InvalidRow(f"{text!r} is not one of {', '.join(spec.choices)}")


def _check_country(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    if not _COUNTRY.fullmatch(text):
        raise InvalidRow(f"{text!r} is not a two-letter country code")
    return text.upper()


def _check_phone(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    return normalise_number(text)


def _check_message_to(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    channel = _CHANNEL_ADDRESS.fullmatch(text)
    return normalise_number(text) if channel is None else _channel_address(channel)


def _check_message_from(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    channel = _CHANNEL_ADDRESS.fullmatch(text)
    if channel is not None:
        return _channel_address(channel)
    if _SHORT_CODE.fullmatch(text) or _ALPHANUMERIC_SENDER.fullmatch(text):
        return text
    try:
        return normalise_number(text)
    except InvalidRow:
        raise InvalidRow(
            f"{text!r} is not an E.164 number, short code or alphanumeric sender ID"
        ) from None


def _channel_address(match: re.Match[str]) -> str:
    channel, address = match.group(1).casefold(), match.group(2).strip()
    if channel == "whatsapp" or address.startswith(("+", "00")):
        return f"{channel}:{normalise_number(address)}"
    if not address or any(char.isspace() for char in address):
        raise InvalidRow(f"{match.group()!r} is not a {channel} address")
    return f"{channel}:{address}"


def _check_call_endpoint(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    address = _CALL_ADDRESS.fullmatch(text)
    if address is not None:
        return f"{address.group(1).casefold()}:{address.group(2)}"
    return normalise_number(text)


def _check_flow_from(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    # Studio sends SMS from a Messaging Service when given its SID instead of a number.
    if text.startswith("MG"):
        return _check_sid(text, Param("sid", sid_prefix="MG"), done)
    return normalise_number(text)


def _check_verify_to(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    if done.get("Channel") == "email":
        if not _EMAIL.fullmatch(text):
            raise InvalidRow(f"{text!r} is not an email address")
        return text
    return normalise_number(text)


def _check_lookup_number(text: str, spec: Param, done: Mapping[str, ParamValue]) -> str:
    try:
        return normalise_number(text)
    except InvalidRow:
        # The Lookup API itself reads national numbers when told the country.
        national = _SEPARATORS.sub("", text)
        if "CountryCode" in done and _DIGITS.fullmatch(national):
            return national
        raise


_Check = Callable[[str, Param, Mapping[str, ParamValue]], str]

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
