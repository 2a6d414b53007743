"""Tests for chalicelib.intake.validation: each endpoint's rules, each rejection and its reason."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from chalicelib.core.records import Api, CallRequest
from chalicelib.intake.validation import InvalidRow, validate
from chalicelib.intake.validation.api_params import (
    ALLOWED,
    MESSAGES_PARAMS,
    PARAMS,
    REQUIRED,
    VERIFY_CHANNELS,
)
from tests.oai import SPEC_DIR

SPECS = SPEC_DIR
needs_specs = pytest.mark.skipif(
    not SPECS.is_dir() and os.environ.get("CI") != "true",
    reason="shared/twilio-oai is not beside the repo",
)

VERIFY_SID = "VA" + "0123456789abcdef" * 2
FLOW_SID = "FW" + "0123456789ABCDEF" * 2
SERVICE_SID = "MG" + "a" * 32
CONTENT_SID = "HX" + "b" * 32
APP_SID = "AP" + "c" * 32

MESSAGE = {"To": "+14155550100", "From": "+15005550006", "Body": "hello"}
NO_COUNTRY_CODE = "no country code: add + and the country code, or set DEFAULT_REGION"


def reason(fields: dict[str, Any]) -> str:
    with pytest.raises(InvalidRow) as caught:
        validate(fields)
    return str(caught.value)


# --- api column ---


def test_validate_defaults_to_messages() -> None:
    assert validate(MESSAGE) == CallRequest("messages", dict(MESSAGE))
    assert validate({**MESSAGE, "api": "  "}).api == "messages"
    assert validate({**MESSAGE, "api": None}).api == "messages"


@pytest.mark.parametrize("column", ["api", "API", " Api "])
@pytest.mark.parametrize("value", ["messages", "MESSAGES", " Messages "])
def test_validate_api_is_case_insensitive(column: str, value: str) -> None:
    assert validate({**MESSAGE, column: value}).api == "messages"


def test_validate_unknown_api() -> None:
    assert reason({**MESSAGE, "api": "fax"}) == (
        "unknown api 'fax'; expected one of messages, calls, lookup, verify, studio"
    )


def test_validate_conflicting_api_columns() -> None:
    assert "api columns disagree" in reason({**MESSAGE, "api": "calls", "API": "messages"})


# --- columns ---


def test_validate_matches_columns_case_insensitively() -> None:
    request = validate({"to": "+14155550100", "FROM": "+15005550006", "body": "hi"})
    assert request.params == {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}


def test_validate_ignores_columns_that_are_not_parameters() -> None:
    request = validate({**MESSAGE, "customer_id": "C1", "Url": "https://x", "FlowSid": "x"})
    assert request.params == MESSAGE


def test_validate_treats_empty_values_as_absent() -> None:
    request = validate({**MESSAGE, "MediaUrl": "", "StatusCallback": "  ", "Attempt": None})
    assert request.params == MESSAGE


def test_validate_rejects_two_columns_for_one_parameter() -> None:
    assert reason({**MESSAGE, "to": "+14155550101"}) == "columns 'To' and 'to' both give To"


def test_validate_accepts_two_columns_with_the_same_value() -> None:
    assert validate({**MESSAGE, "TO": "+14155550100"}).params["To"] == "+14155550100"


# --- messages ---


def test_messages_missing_to() -> None:
    assert reason({"From": "+15005550006", "Body": "x"}) == "missing To"


def test_messages_missing_sender() -> None:
    assert reason({"To": "+14155550100", "Body": "x"}) == "missing From or MessagingServiceSid"


def test_messages_missing_content() -> None:
    fields = {"To": "+14155550100", "From": "+15005550006", "Body": ""}
    assert reason(fields) == "missing Body, MediaUrl or ContentSid"


def test_messages_messaging_service_and_content_sid() -> None:
    fields = {"To": "+14155550100", "MessagingServiceSid": SERVICE_SID, "ContentSid": CONTENT_SID}
    assert validate(fields).params == fields


def test_messages_to_not_e164() -> None:
    assert reason({**MESSAGE, "To": "+1555"}) == (
        "To: +1555 is not a valid phone number (too short for +1)"
    )


def test_messages_to_must_be_a_valid_number_not_only_of_a_possible_length() -> None:
    assert reason({**MESSAGE, "To": "+1234567"}) == (
        "To: +1234567 is not a valid phone number (too short for +1)"
    )
    assert reason({**MESSAGE, "To": "+4420794609"}) == (
        "To: +4420794609 is not a valid phone number (too short for +44)"
    )
    assert reason({**MESSAGE, "To": "+1 555 123 4567"}) == (
        "To: '+1 555 123 4567' is not a valid phone number (not in a range of numbers +1 assigns)"
    )


def test_messages_to_without_country_code() -> None:
    assert reason({**MESSAGE, "To": "415 555 0100"}) == (
        f"To: '415 555 0100' is not a valid phone number ({NO_COUNTRY_CODE})"
    )


def test_messages_numbers_are_normalised() -> None:
    request = validate({**MESSAGE, "To": "+1 (415) 555-0100", "From": "001 500 555 0006"})
    assert request.params["To"] == "+14155550100"
    assert request.params["From"] == "+15005550006"


@pytest.mark.parametrize(
    ("to", "sent"),
    [
        ("whatsapp:+14155550100", "whatsapp:+14155550100"),
        ("WhatsApp: +1 415 555 0100", "whatsapp:+14155550100"),
        ("messenger:1234567890", "messenger:1234567890"),
        ("rcs:+14155550100", "rcs:+14155550100"),
    ],
)
def test_messages_channel_addresses(to: str, sent: str) -> None:
    assert validate({**MESSAGE, "To": to}).params["To"] == sent


def test_messages_whatsapp_address_needs_e164() -> None:
    assert reason({**MESSAGE, "To": "whatsapp:4155550100"}) == (
        f"To: 4155550100 is not a valid phone number ({NO_COUNTRY_CODE})"
    )


@pytest.mark.parametrize("sender", ["ACME", "Acme Clinic", "12345", "whatsapp:+15005550006"])
def test_messages_from_short_code_and_alphanumeric(sender: str) -> None:
    assert validate({**MESSAGE, "From": sender}).params["From"] == sender


SENDER_ID_RULE = "a sender ID is 1 to 11 letters, digits and spaces, one a letter at least"


@pytest.mark.parametrize(
    ("sender", "shown", "why"),
    [
        ("Twelve chars", "'Twelve chars'", SENDER_ID_RULE),
        ("ACME!", "ACME!", SENDER_ID_RULE),
        ("4155550100", "4155550100", NO_COUNTRY_CODE),
        ("+1555", "+1555", "too short for +1"),
        ("+15551234567", "+15551234567", "not in a range of numbers +1 assigns"),
    ],
)
def test_messages_bad_from(sender: str, shown: str, why: str) -> None:
    assert reason({**MESSAGE, "From": sender}) == (
        f"From: {shown} is not a valid phone number, short code or alphanumeric sender ID ({why})"
    )


def test_messages_body_limit() -> None:
    assert validate({**MESSAGE, "Body": "x" * 1600}).params["Body"] == "x" * 1600
    assert reason({**MESSAGE, "Body": "x" * 1601}) == "Body is 1601 characters; the limit is 1600"


def test_messages_body_is_sent_as_written() -> None:
    assert validate({**MESSAGE, "Body": "  two\nlines  "}).params["Body"] == "  two\nlines  "


def test_messages_media_urls_from_csv_are_split() -> None:
    request = validate({**MESSAGE, "MediaUrl": "https://a/1.png | https://a/2.png https://a/3"})
    assert request.params["MediaUrl"] == ["https://a/1.png", "https://a/2.png", "https://a/3"]


def test_messages_media_urls_from_json_list() -> None:
    request = validate({**MESSAGE, "Body": None, "MediaUrl": ["https://a/1.png"]})
    assert request.params == {
        "To": "+14155550100",
        "From": "+15005550006",
        "MediaUrl": ["https://a/1.png"],
    }


def test_messages_single_media_url_is_a_list() -> None:
    assert validate({**MESSAGE, "MediaUrl": "https://a/1.png"}).params["MediaUrl"] == [
        "https://a/1.png"
    ]


def test_messages_too_many_media_urls() -> None:
    urls = " ".join(f"https://a/{n}.png" for n in range(11))
    assert reason({**MESSAGE, "MediaUrl": urls}) == "MediaUrl has 11 URLs; the limit is 10"


@pytest.mark.parametrize("url", ["ftp://a/x.png", "a/x.png", "https://", "javascript:alert(1)"])
def test_messages_media_url_must_be_http(url: str) -> None:
    assert reason({**MESSAGE, "MediaUrl": url}) == f"MediaUrl {url!r} is not an http(s) URL"


def test_messages_status_callback_must_be_http() -> None:
    assert reason({**MESSAGE, "StatusCallback": "mailto:x@y.z"}) == (
        "StatusCallback 'mailto:x@y.z' is not an http(s) URL"
    )


def test_messages_bad_sids() -> None:
    assert reason({**MESSAGE, "MessagingServiceSid": "MG123"}) == (
        "MessagingServiceSid 'MG123' is not a SID (MG and 32 hex digits)"
    )
    assert reason({**MESSAGE, "ContentSid": SERVICE_SID}) == (
        f"ContentSid {SERVICE_SID!r} is not a SID (HX and 32 hex digits)"
    )


def test_messages_typed_parameters_are_written_as_twilio_expects() -> None:
    request = validate(
        {
            **MESSAGE,
            "ValidityPeriod": 600.0,
            "SendAsMms": True,
            "ShortenUrls": "FALSE",
            "ContentRetention": "Discard",
            "SendAt": "2030-01-02T03:04:05Z",
            "MaxPrice": "0.05",
            "ContentVariables": {"1": "Ada"},
        }
    )
    assert request.params == {
        **MESSAGE,
        "ValidityPeriod": "600",
        "SendAsMms": "true",
        "ShortenUrls": "false",
        "ContentRetention": "discard",
        "SendAt": "2030-01-02T03:04:05Z",
        "MaxPrice": "0.05",
        "ContentVariables": '{"1":"Ada"}',
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"ValidityPeriod": "0"}, "ValidityPeriod 0 is out of range (1 to 36000)"),
        ({"ValidityPeriod": "36001"}, "ValidityPeriod 36001 is out of range (1 to 36000)"),
        ({"ValidityPeriod": "ten"}, "ValidityPeriod 'ten' is not a whole number"),
        ({"ValidityPeriod": 1.5}, "ValidityPeriod '1.5' is not a whole number"),
        ({"SendAsMms": "yes"}, "SendAsMms 'yes' is not true or false"),
        ({"MaxPrice": "cheap"}, "MaxPrice 'cheap' is not a number"),
        ({"MaxPrice": "nan"}, "MaxPrice 'nan' is not a number"),
        ({"ContentRetention": "keep"}, "ContentRetention 'keep' is not one of retain, discard"),
        ({"SendAt": "tomorrow"}, "SendAt 'tomorrow' is not an ISO 8601 date and time"),
        ({"ContentVariables": "{1: 2}"}, "ContentVariables is not valid JSON: '{1: 2}'"),
        ({"Body": ["a", "b"]}, "Body has a list of values; it takes one"),
        ({"Body": {"text": "a"}}, "Body is an object; it takes a single value"),
        ({"MediaUrl": {"url": "a"}}, "MediaUrl is an object; it takes a list of values"),
        ({"MediaUrl": [["https://a"]]}, "MediaUrl must be a list of single values"),
    ],
)
def test_messages_parameter_rejections(fields: dict[str, Any], expected: str) -> None:
    assert reason({**MESSAGE, **fields}) == expected


def test_messages_json_numbers_and_booleans_become_strings() -> None:
    assert validate({**MESSAGE, "Body": 42}).params["Body"] == "42"
    assert validate({**MESSAGE, "Attempt": 3}).params["Attempt"] == "3"


def test_messages_json_number_for_to_is_not_guessed() -> None:
    assert reason({**MESSAGE, "To": 14155550100}) == (
        f"To: 14155550100 is not a valid phone number ({NO_COUNTRY_CODE})"
    )


# --- calls ---

CALL = {"api": "calls", "To": "+14155550100", "From": "+15005550006", "Url": "https://x/twiml"}


def test_calls_valid() -> None:
    assert validate(CALL) == CallRequest(
        "calls", {"To": "+14155550100", "From": "+15005550006", "Url": "https://x/twiml"}
    )


@pytest.mark.parametrize("missing", ["To", "From"])
def test_calls_missing_required(missing: str) -> None:
    assert reason({**CALL, missing: ""}) == f"missing {missing}"


def test_calls_missing_instructions() -> None:
    assert reason({**CALL, "Url": ""}) == "missing Url, Twiml or ApplicationSid"


@pytest.mark.parametrize(
    "extra", [{"Twiml": "<Response><Say>Hi</Say></Response>"}, {"ApplicationSid": APP_SID}]
)
def test_calls_twiml_or_application(extra: dict[str, str]) -> None:
    assert validate({**CALL, "Url": "", **extra}).params.keys() == {"To", "From", *extra}


def test_calls_sip_and_client_addresses() -> None:
    request = validate({**CALL, "To": "sip:alice@example.com", "From": "Client:bob"})
    assert request.params["To"] == "sip:alice@example.com"
    assert request.params["From"] == "client:bob"


def test_calls_url_must_be_http() -> None:
    assert reason({**CALL, "Url": "ftp://x"}) == "Url 'ftp://x' is not an http(s) URL"


def test_calls_methods_and_events() -> None:
    request = validate({**CALL, "Method": "get", "StatusCallbackEvent": "initiated Answered"})
    assert request.params["Method"] == "GET"
    assert request.params["StatusCallbackEvent"] == ["initiated", "answered"]
    assert reason({**CALL, "Method": "PUT"}) == "Method 'PUT' is not one of GET, POST"


def test_calls_twiml_limit() -> None:
    assert reason({**CALL, "Twiml": "x" * 4001}) == "Twiml is 4001 characters; the limit is 4000"


def test_calls_ignore_message_columns() -> None:
    assert "Body" not in validate({**CALL, "Body": "hello"}).params


# --- lookup ---


def test_lookup_phone_number() -> None:
    request = validate({"api": "lookup", "PhoneNumber": "+14155550100", "Fields": "caller_name"})
    assert request == CallRequest(
        "lookup", {"PhoneNumber": "+14155550100", "Fields": "caller_name"}
    )


def test_lookup_to_is_an_alias() -> None:
    request = validate({"api": "lookup", "to": "+1 415 555 0100"})
    assert request.params == {"PhoneNumber": "+14155550100"}


def test_lookup_missing_number() -> None:
    assert reason({"api": "lookup", "Fields": "caller_name"}) == "missing PhoneNumber (or To)"


def test_lookup_national_number_with_country_code() -> None:
    request = validate({"api": "lookup", "PhoneNumber": "(415) 555-0100", "CountryCode": "us"})
    assert request.params == {"PhoneNumber": "4155550100", "CountryCode": "US"}


def test_lookup_national_number_without_country_code() -> None:
    assert reason({"api": "lookup", "PhoneNumber": "4155550100"}) == (
        f"PhoneNumber: 4155550100 is not a valid phone number ({NO_COUNTRY_CODE})"
    )


def test_lookup_bad_country_code() -> None:
    fields = {"api": "lookup", "PhoneNumber": "+14155550100", "CountryCode": "USA"}
    assert reason(fields) == "CountryCode 'USA' is not a two-letter country code"


# --- verify ---

VERIFY = {"api": "verify", "To": "+14155550100", "Channel": "sms", "VerifyServiceSid": VERIFY_SID}


def test_verify_valid() -> None:
    assert validate(VERIFY) == CallRequest(
        "verify", {"VerifyServiceSid": VERIFY_SID, "Channel": "sms", "To": "+14155550100"}
    )


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("To", "missing To"),
        ("Channel", "missing Channel"),
        ("VerifyServiceSid", "missing VerifyServiceSid (or ServiceSid)"),
    ],
)
def test_verify_missing_required(missing: str, expected: str) -> None:
    assert reason({**VERIFY, missing: ""}) == expected


def test_verify_service_sid_alias() -> None:
    fields = {**VERIFY, "VerifyServiceSid": "", "ServiceSid": VERIFY_SID}
    assert validate(fields).params["VerifyServiceSid"] == VERIFY_SID


def test_verify_bad_service_sid() -> None:
    assert reason({**VERIFY, "VerifyServiceSid": "VA123"}) == (
        "VerifyServiceSid 'VA123' is not a SID (VA and 32 hex digits)"
    )
    assert reason({**VERIFY, "VerifyServiceSid": FLOW_SID}).startswith("VerifyServiceSid")


def test_verify_channel() -> None:
    assert validate({**VERIFY, "Channel": "WhatsApp"}).params["Channel"] == "whatsapp"
    assert reason({**VERIFY, "Channel": "pigeon"}) == (
        "Channel 'pigeon' is not one of sms, call, email, whatsapp, sna, auto"
    )


def test_verify_email_channel_takes_an_address() -> None:
    request = validate({**VERIFY, "Channel": "email", "To": "ada@example.com"})
    assert request.params["To"] == "ada@example.com"
    assert reason({**VERIFY, "Channel": "email", "To": "ada"}) == (
        "To 'ada' is not an email address"
    )
    assert reason({**VERIFY, "To": "ada@example.com"}).startswith(
        "To: ada@example.com is not a valid phone number ("
    )


@needs_specs
def test_verify_channels_match_the_spec() -> None:
    spec = json.loads((SPECS / "twilio_verify_v2.json").read_text())
    enum = spec["components"]["schemas"]["verification_enum_channel"]["enum"]
    assert set(enum) <= set(VERIFY_CHANNELS)


# --- studio ---

STUDIO = {"api": "studio", "To": "+14155550100", "From": "+15005550006", "FlowSid": FLOW_SID}


def test_studio_valid_with_parameters_string() -> None:
    request = validate({**STUDIO, "Parameters": ' {"name": "Ada"} '})
    assert request == CallRequest(
        "studio",
        {
            "FlowSid": FLOW_SID,
            "To": "+14155550100",
            "From": "+15005550006",
            "Parameters": '{"name": "Ada"}',
        },
    )


def test_studio_parameters_object_from_json() -> None:
    request = validate({**STUDIO, "Parameters": {"name": "Zoë", "n": 1}})
    assert request.params["Parameters"] == '{"name":"Zoë","n":1}'


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ("{name: Ada}", "Parameters is not valid JSON: '{name: Ada}'"),
        ("[1, 2]", "Parameters must be a JSON object, not '[1, 2]'"),
        ('"x"', "Parameters must be a JSON object, not '\"x\"'"),
        (["a"], "Parameters has a list of values; it takes one"),
        (5, "Parameters must be a JSON object"),
    ],
)
def test_studio_bad_parameters(parameters: Any, expected: str) -> None:
    assert reason({**STUDIO, "Parameters": parameters}) == expected


@pytest.mark.parametrize("missing", ["To", "From", "FlowSid"])
def test_studio_missing_required(missing: str) -> None:
    assert reason({**STUDIO, missing: ""}) == f"missing {missing}"


def test_studio_bad_flow_sid() -> None:
    assert reason({**STUDIO, "FlowSid": "FW" + "g" * 32}).endswith("(FW and 32 hex digits)")


def test_studio_from_messaging_service() -> None:
    assert validate({**STUDIO, "From": SERVICE_SID}).params["From"] == SERVICE_SID
    assert reason({**STUDIO, "From": "MG1"}) == "From 'MG1' is not a SID (MG and 32 hex digits)"


# --- phone numbers in every API, DEFAULT_REGION and Twilio's test numbers ---


@pytest.mark.parametrize(
    ("fields", "column", "sent"),
    [
        ({**MESSAGE, "To": "(415) 555-0100"}, "To", "+14155550100"),
        ({**MESSAGE, "From": "415 555 0100"}, "From", "+14155550100"),
        ({**MESSAGE, "To": "whatsapp:(415) 555-0100"}, "To", "whatsapp:+14155550100"),
        ({**CALL, "To": "415-555-0100"}, "To", "+14155550100"),
        ({**CALL, "From": "500.555.0006"}, "From", "+15005550006"),
        ({**VERIFY, "To": "(415) 555 0100"}, "To", "+14155550100"),
        ({**STUDIO, "To": "4155550100"}, "To", "+14155550100"),
        ({**STUDIO, "From": "(500) 555-0006"}, "From", "+15005550006"),
        ({"api": "lookup", "PhoneNumber": "(415) 555-0100"}, "PhoneNumber", "+14155550100"),
    ],
)
def test_national_numbers_are_read_in_the_default_region(
    fields: dict[str, Any], column: str, sent: str
) -> None:
    assert validate(fields, "US").params[column] == sent
    assert NO_COUNTRY_CODE in reason(fields)


def test_the_rows_country_code_wins_over_the_default_region_for_lookup() -> None:
    fields = {"api": "lookup", "PhoneNumber": "020 7946 0958", "CountryCode": "GB"}
    assert validate(fields, "US").params == {"PhoneNumber": "02079460958", "CountryCode": "GB"}


def test_short_codes_and_sender_ids_stay_as_they_are_with_a_default_region() -> None:
    for sender in ("12345", "ACME", "Acme Clinic"):
        assert validate({**MESSAGE, "From": sender}, "US").params["From"] == sender


@pytest.mark.parametrize(
    ("fields", "column"),
    [
        ({**CALL, "To": "+15551234567"}, "To"),
        ({**CALL, "From": "+15551234567"}, "From"),
        ({**VERIFY, "To": "+15551234567"}, "To"),
        ({**STUDIO, "To": "+15551234567"}, "To"),
        ({**STUDIO, "From": "+15551234567"}, "From"),
        ({**MESSAGE, "To": "whatsapp:+15551234567"}, "To"),
    ],
)
def test_every_api_refuses_a_number_of_a_possible_length_that_is_not_valid(
    fields: dict[str, Any], column: str
) -> None:
    assert reason(fields) == (
        f"{column}: +15551234567 is not a valid phone number (not in a range of numbers +1 assigns)"
    )


def test_lookup_asks_about_numbers_of_a_possible_length_valid_or_not() -> None:
    fields = {"api": "lookup", "PhoneNumber": "+1 555 123 4567"}
    assert validate(fields).params == {"PhoneNumber": "+15551234567"}
    assert reason({"api": "lookup", "PhoneNumber": "+1555"}) == (
        "PhoneNumber: +1555 is not a valid phone number (too short for +1)"
    )


# With test credentials Twilio answers these itself (../shared/seeds/twilio-magic-numbers.md):
# they must reach it, never be rejected here.
MESSAGE_MAGIC = [("To", n) for n in ("0001", "0002", "0003", "0004", "0009")] + [
    ("From", n) for n in ("0001", "0006", "0007", "0008")
]
CALL_MAGIC = [("To", n) for n in ("0001", "0002", "0003", "0004")] + [
    ("From", n) for n in ("0001", "0006", "0007")
]


@pytest.mark.parametrize(("column", "last"), MESSAGE_MAGIC)
def test_twilios_magic_numbers_reach_twilio_in_messages(column: str, last: str) -> None:
    number = f"+1500555{last}"
    assert validate({**MESSAGE, column: number}).params[column] == number


@pytest.mark.parametrize(("column", "last"), CALL_MAGIC)
def test_twilios_magic_numbers_reach_twilio_in_calls(column: str, last: str) -> None:
    number = f"+1500555{last}"
    assert validate({**CALL, column: number}).params[column] == number


# --- the constants against the OpenAPI specs ---


def _request_schema(document: str, path: str) -> tuple[set[str], set[str]]:
    spec = json.loads((SPECS / document).read_text())
    operation = spec["paths"][path]["post"]
    schema = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return set(schema["properties"]), set(schema.get("required", []))


@needs_specs
@pytest.mark.parametrize(
    ("api", "document", "path", "path_param"),
    [
        (
            "messages",
            "twilio_api_v2010.json",
            "/2010-04-01/Accounts/{AccountSid}/Messages.json",
            None,
        ),
        ("calls", "twilio_api_v2010.json", "/2010-04-01/Accounts/{AccountSid}/Calls.json", None),
        (
            "verify",
            "twilio_verify_v2.json",
            "/v2/Services/{ServiceSid}/Verifications",
            "VerifyServiceSid",
        ),
        ("studio", "twilio_studio_v2.json", "/v2/Flows/{FlowSid}/Executions", "FlowSid"),
    ],
)
def test_params_match_the_openapi_request_schemas(
    api: Api, document: str, path: str, path_param: str | None
) -> None:
    properties, required = _request_schema(document, path)
    assert ALLOWED[api] - {path_param} == properties
    assert required <= set(REQUIRED[api])


@needs_specs
def test_lookup_params_match_the_openapi_query_parameters() -> None:
    spec = json.loads((SPECS / "twilio_lookups_v2.json").read_text())
    parameters = spec["paths"]["/v2/PhoneNumbers/{PhoneNumber}"]["get"]["parameters"]
    assert {p["name"] for p in parameters} == set(PARAMS["lookup"])


@needs_specs
def test_sid_patterns_match_the_spec() -> None:
    spec = json.loads((SPECS / "twilio_api_v2010.json").read_text())
    path = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
    schema = spec["paths"][path]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]["properties"]
    for name, param in MESSAGES_PARAMS.items():
        if param.kind == "sid":
            assert schema[name]["pattern"] == f"^{param.sid_prefix}[0-9a-fA-F]{{32}}$"
