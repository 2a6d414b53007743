"""The parameters of each API a row may call, from Twilio's OpenAPI request schemas
(twilio_api_v2010 for Messages and Calls, twilio_lookups_v2, twilio_verify_v2, twilio_studio_v2),
transcribed here so nothing loads a spec at run time: each parameter's kind and limits, which
are required, which one of a group is, and the other names a column may give them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from chalicelib.core.records import Api

DEFAULT_API: Final[Api] = "messages"

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
    # Answering-machine detection; the call's status callbacks then say who answered.
    "MachineDetection": _enum("Enable", "DetectMessageEnd"),
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

# Each API's parameters by the casefolded names a column may give them.
COLUMNS: Final[Mapping[Api, Mapping[str, str]]] = {
    api: {
        **{name.casefold(): name for name in params},
        **{alias.casefold(): name for alias, name in ALIASES[api].items()},
    }
    for api, params in PARAMS.items()
}
