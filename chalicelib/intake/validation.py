"""Turn one record of a user's file into a CallRequest, or say exactly why it cannot be sent.

The parameters, their types and which are required come from Twilio's OpenAPI request schemas
(twilio_api_v2010 for Messages and Calls, twilio_lookups_v2, twilio_verify_v2, twilio_studio_v2),
transcribed into the constants below so nothing loads a spec at run time.

Rules a user of the file format relies on:

- The ``api`` column picks the endpoint (messages, calls, lookup, verify, studio; any case); when it
  is absent or blank the row is a message.
- Other columns are Twilio's own parameter names, matched regardless of case (``to``, ``TO``).
  Lookup also takes ``To`` for ``PhoneNumber``, and Verify takes the spec's ``ServiceSid`` for
  ``VerifyServiceSid``.
- Columns that are not parameters of the chosen endpoint are ignored and never sent: files carry
  their own columns (customer_id, region) and one file can mix endpoints. The price is that a
  misspelt optional parameter is dropped without a word; a misspelt required one still fails as
  missing.
- Empty values, whitespace-only strings, JSON null and empty lists count as absent.
- Repeatable parameters (MediaUrl, StatusCallbackEvent, RecordingStatusCallbackEvent) take a JSON
  list or, in CSV, several values separated by whitespace; MediaUrl also by ``|``. Neither can
  appear unencoded in a URL, so splitting never cuts one. PersistentAction values hold spaces,
  so in CSV they are separated by line breaks.
- Phone numbers must be E.164. Only unambiguous rewriting is done: spaces, dashes, dots and
  parentheses are dropped, a ``(0)`` trunk prefix after the country code is dropped, and a
  leading ``00`` becomes ``+``. A number without a country code is rejected, never guessed.
  Message To/From also take channel addresses (``whatsapp:+1...``), From also short codes and
  alphanumeric sender IDs; call To/From also ``sip:`` and ``client:`` addresses.
- Values are sent as Twilio expects them: strings, booleans as ``true``/``false``, whole numbers
  without a fraction, JSON parameters (Studio's Parameters, Verify's RateLimits, ...) as a JSON
  string that must hold an object.
- No value may nest deeper than parsing.MAX_JSON_DEPTH, whether it is a JSON record's own
  object or a JSON string in a CSV cell: the depth is measured without recursing, before
  json.loads or json.dumps could.

The returned CallRequest holds canonical names only; for lookup, verify and studio it also holds
the path parameter (PhoneNumber, VerifyServiceSid, FlowSid) the sender puts in the URL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from chalicelib.core.records import APIS, Api, CallRequest, ParamValue
from chalicelib.errors import CallqueueError
from chalicelib.intake.parsing import MAX_JSON_DEPTH, nesting_depth

DEFAULT_API: Final[Api] = "messages"

# E.164 allows up to 15 digits; no country has numbers shorter than 7 digits with the country
# code (Niue: +683 and 4 digits), so anything shorter is a truncated number, not a short one.
E164_MIN_DIGITS: Final = 7
E164_MAX_DIGITS: Final = 15

MAX_BODY_CHARS: Final = 1600
MAX_MEDIA_URLS: Final = 10

Kind = Literal[
    "text",
    "integer",
    "number",
    "boolean",
    "datetime",
    "url",
    "sid",
    "enum",
    "json",
    "country",
    "phone",
    "message_to",
    "message_from",
    "call_endpoint",
    "flow_from",
    "verify_to",
    "lookup_number",
]


@dataclass(frozen=True)
class Param:
    """How one request parameter is checked and written."""

    kind: Kind = "text"
    sid_prefix: str = ""
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    repeated: bool = False
    # Splits a CSV string into the values of a repeated parameter.
    separator: str = r"\s+"


class InvalidRow(CallqueueError):
    """A record that cannot become a request; str(error) is the reason shown to the user."""


def _sid(prefix: str) -> Param:
    return Param("sid", sid_prefix=prefix)


def _enum(*choices: str) -> Param:
    return Param("enum", choices=choices)


_TEXT: Final = Param()
_INTEGER: Final = Param("integer")
_BOOLEAN: Final = Param("boolean")
_URL: Final = Param("url")
_JSON: Final = Param("json")
_HTTP_METHOD: Final = _enum("GET", "POST")
_RISK_CHECK: Final = _enum("enable", "disable")
_LIST: Final = Param(repeated=True)

# POST /2010-04-01/Accounts/{AccountSid}/Messages.json
MESSAGES_PARAMS: Final[Mapping[str, Param]] = {
    "To": Param("message_to"),
    "From": Param("message_from"),
    "MessagingServiceSid": _sid("MG"),
    "Body": Param(max_length=MAX_BODY_CHARS),
    "MediaUrl": Param("url", repeated=True, separator=r"[\s|]+"),
    "ContentSid": _sid("HX"),
    "ContentVariables": _JSON,
    "StatusCallback": _URL,
    "ApplicationSid": _sid("AP"),
    "MaxPrice": Param("number"),
    "ProvideFeedback": _BOOLEAN,
    "Attempt": _INTEGER,
    "ValidityPeriod": Param("integer", minimum=1, maximum=36000),
    "ForceDelivery": _BOOLEAN,
    "ContentRetention": _enum("retain", "discard"),
    "AddressRetention": _enum("retain", "obfuscate"),
    "SmartEncoded": _BOOLEAN,
    "PersistentAction": Param(repeated=True, separator=r"\n+"),
    "TrafficType": _enum("free"),
    "ShortenUrls": _BOOLEAN,
    "ScheduleType": _enum("fixed"),
    "SendAt": Param("datetime"),
    "SendAsMms": _BOOLEAN,
    "RiskCheck": _RISK_CHECK,
    "FallbackFrom": Param("message_from"),
}

# POST /2010-04-01/Accounts/{AccountSid}/Calls.json
CALLS_PARAMS: Final[Mapping[str, Param]] = {
    "To": Param("call_endpoint"),
    "From": Param("call_endpoint"),
    "Url": _URL,
    "Twiml": Param(max_length=4000),
    "ApplicationSid": _sid("AP"),
    "Method": _HTTP_METHOD,
    "FallbackUrl": _URL,
    "FallbackMethod": _HTTP_METHOD,
    "StatusCallback": _URL,
    "StatusCallbackEvent": Param(
        "enum", choices=("initiated", "ringing", "answered", "completed"), repeated=True
    ),
    "StatusCallbackMethod": _HTTP_METHOD,
    "SendDigits": Param(max_length=32),
    "Timeout": _INTEGER,
    "Record": _BOOLEAN,
    "RecordingChannels": _TEXT,
    "RecordingStatusCallback": _URL,
    "RecordingStatusCallbackMethod": _HTTP_METHOD,
    "SipAuthUsername": _TEXT,
    "SipAuthPassword": _TEXT,
    "MachineDetection": _TEXT,
    "MachineDetectionTimeout": _INTEGER,
    "RecordingStatusCallbackEvent": _LIST,
    "Trim": _TEXT,
    "CallerId": _TEXT,
    "MachineDetectionSpeechThreshold": _INTEGER,
    "MachineDetectionSpeechEndThreshold": _INTEGER,
    "MachineDetectionSilenceTimeout": _INTEGER,
    "AsyncAmd": _TEXT,
    "AsyncAmdStatusCallback": _URL,
    "AsyncAmdStatusCallbackMethod": _HTTP_METHOD,
    "Byoc": _sid("BY"),
    "CallReason": _TEXT,
    "CallToken": _TEXT,
    "RecordingTrack": _TEXT,
    "TimeLimit": _INTEGER,
    "ClientNotificationUrl": _URL,
}

# GET /v2/PhoneNumbers/{PhoneNumber}; CountryCode comes first because PhoneNumber depends on it.
LOOKUP_PARAMS: Final[Mapping[str, Param]] = {
    "CountryCode": Param("country"),
    "PhoneNumber": Param("lookup_number"),
    "Fields": _TEXT,
    "FirstName": _TEXT,
    "LastName": _TEXT,
    "AddressLine1": _TEXT,
    "AddressLine2": _TEXT,
    "City": _TEXT,
    "State": _TEXT,
    "PostalCode": _TEXT,
    "AddressCountryCode": Param("country"),
    "NationalId": _TEXT,
    "DateOfBirth": _TEXT,
    "LastVerifiedDate": _TEXT,
    "VerificationSid": _TEXT,
    "PartnerSubId": _TEXT,
}

# The request schema describes Channel in prose ("email, sms, whatsapp, call, sna or auto"); the
# spec's verification_enum_channel lacks "auto", which the request accepts.
VERIFY_CHANNELS: Final = ("sms", "call", "email", "whatsapp", "sna", "auto")

# POST /v2/Services/{ServiceSid}/Verifications; Channel comes first because To depends on it.
VERIFY_PARAMS: Final[Mapping[str, Param]] = {
    "VerifyServiceSid": _sid("VA"),
    "Channel": Param("enum", choices=VERIFY_CHANNELS),
    "To": Param("verify_to"),
    "CustomFriendlyName": _TEXT,
    "CustomMessage": _TEXT,
    "SendDigits": _TEXT,
    "Locale": _TEXT,
    "CustomCode": _TEXT,
    "Amount": _TEXT,
    "Payee": _TEXT,
    "RateLimits": _JSON,
    "ChannelConfiguration": _JSON,
    "AppHash": _TEXT,
    "TemplateSid": _sid("HJ"),
    "TemplateCustomSubstitutions": _JSON,
    "DeviceIp": _TEXT,
    "EnableSnaClientToken": _BOOLEAN,
    "RiskCheck": _RISK_CHECK,
    "Tags": _JSON,
}

# POST /v2/Flows/{FlowSid}/Executions
STUDIO_PARAMS: Final[Mapping[str, Param]] = {
    "FlowSid": _sid("FW"),
    "To": Param("phone"),
    "From": Param("flow_from"),
    "Parameters": _JSON,
}

PARAMS: Final[Mapping[Api, Mapping[str, Param]]] = {
    "messages": MESSAGES_PARAMS,
    "calls": CALLS_PARAMS,
    "lookup": LOOKUP_PARAMS,
    "verify": VERIFY_PARAMS,
    "studio": STUDIO_PARAMS,
}

ALLOWED: Final[Mapping[Api, frozenset[str]]] = {
    api: frozenset(params) for api, params in PARAMS.items()
}

REQUIRED: Final[Mapping[Api, tuple[str, ...]]] = {
    "messages": ("To",),
    "calls": ("To", "From"),
    "lookup": ("PhoneNumber",),
    "verify": ("VerifyServiceSid", "To", "Channel"),
    "studio": ("FlowSid", "To", "From"),
}

# At least one parameter of each group, as Twilio answers otherwise (21602 for a message body).
REQUIRED_ONE_OF: Final[Mapping[Api, tuple[tuple[str, ...], ...]]] = {
    "messages": (("From", "MessagingServiceSid"), ("Body", "MediaUrl", "ContentSid")),
    "calls": (("Url", "Twiml", "ApplicationSid"),),
    "lookup": (),
    "verify": (),
    "studio": (),
}

ALIASES: Final[Mapping[Api, Mapping[str, str]]] = {
    "messages": {},
    "calls": {},
    "lookup": {"To": "PhoneNumber"},
    "verify": {"ServiceSid": "VerifyServiceSid"},
    "studio": {},
}

_COLUMNS: Final[Mapping[Api, Mapping[str, str]]] = {
    api: {
        **{name.casefold(): name for name in params},
        **{alias.casefold(): name for alias, name in ALIASES[api].items()},
    }
    for api, params in PARAMS.items()
}

_API_COLUMN: Final = "api"
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


def validate(fields: Mapping[str, Any]) -> CallRequest:
    """The request a record asks for; InvalidRow says why there is none."""
    for column, value in fields.items():
        # Before anything compares or serialises the values: both recurse per level.
        if _value_depth(value) > MAX_JSON_DEPTH:
            raise InvalidRow(f"{column} is nested more than {MAX_JSON_DEPTH} levels deep")
    api = _api(fields)
    present = _collect(api, fields)
    for name in REQUIRED[api]:
        if name not in present:
            raise InvalidRow(f"missing {_describe(api, name)}")
    for group in REQUIRED_ONE_OF[api]:
        if not any(name in present for name in group):
            raise InvalidRow(f"missing {_either(group)}")
    params: dict[str, ParamValue] = {}
    for name, spec in PARAMS[api].items():
        if name in present:
            params[name] = _convert(name, spec, present[name], params)
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
        _text(value).strip()
        for column, value in fields.items()
        if column.strip().casefold() == _API_COLUMN and not _is_empty(value)
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
    columns = _COLUMNS[api]
    present: dict[str, Any] = {}
    source: dict[str, str] = {}
    for column, value in fields.items():
        name = columns.get(column.strip().casefold())
        if name is None or _is_empty(value):
            continue
        if name in present and present[name] != value:
            raise InvalidRow(f"columns {source[name]!r} and {column!r} both give {name}")
        present[name] = value
        source[name] = column
    return present


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list) and not value


def _describe(api: Api, name: str) -> str:
    aliases = [alias for alias, target in ALIASES[api].items() if target == name]
    return f"{name} (or {' or '.join(aliases)})" if aliases else name


def _either(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _text(value: object) -> str:
    """A scalar JSON value as Twilio's form encoding writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _convert(name: str, spec: Param, value: Any, done: Mapping[str, ParamValue]) -> ParamValue:
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
        return [item for item in value if not _is_empty(item)]
    if isinstance(value, dict):
        raise InvalidRow(f"{name} is an object; it takes a list of values")
    return [value]


def _convert_one(name: str, spec: Param, value: Any, done: Mapping[str, ParamValue]) -> str:
    if spec.kind == "json":
        return _json_object(name, value)
    text = _text(value)
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


_CHECKS: Final = {
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
