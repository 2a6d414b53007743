"""The Twilio emulator, driven through the real twilio SDK and checked against Twilio's OpenAPI."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema
import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from callqueue.local.emulator import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_API_KEY_SECRET,
    DEFAULT_API_KEY_SID,
    DEFAULT_AUTH_TOKEN,
    FAULT_HEADER,
    LOOKUP_FIELDS,
    TwilioEmulator,
    parse_number,
    segment_count,
    smart_encode,
)
from callqueue.local.faults import FaultKind, FaultSpec
from chalicelib.twilio.gateway import CapturingHttpClient
from tests import oai

ACCOUNT = DEFAULT_ACCOUNT_SID
OTHER_ACCOUNT = "AC" + "0" * 32
SERVICE = "VA" + "1" * 32
FLOW = "FW" + "2" * 32
VALID_FROM = "+15005550006"
TO = "+15551234567"

MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls.json"
LOOKUP = "/v2/PhoneNumbers/{PhoneNumber}"
VERIFY = "/v2/Services/{ServiceSid}/Verifications"
STUDIO = "/v2/Flows/{FlowSid}/Executions"

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sdk:
    """A twilio Client pointed at the emulator, with the raw last response at hand."""

    client: Client
    http: CapturingHttpClient
    emulator: TwilioEmulator

    @property
    def response(self) -> Response:
        response = self.http.captured
        assert response is not None
        return response

    @property
    def body(self) -> Any:
        return json.loads(self.response.text)

    @property
    def headers(self) -> Any:
        return self.response.headers


def sdk_for(
    emulator: TwilioEmulator,
    *,
    username: str = DEFAULT_API_KEY_SID,
    password: str = DEFAULT_API_KEY_SECRET,
    account_sid: str = ACCOUNT,
) -> Sdk:
    http = CapturingHttpClient(emulator.base_url, timeout=10)
    client = Client(username=username, password=password, account_sid=account_sid, http_client=http)
    return Sdk(client, http, emulator)


def emulator_with(**kwargs: Any) -> TwilioEmulator:
    return TwilioEmulator(
        account_sid=ACCOUNT,
        auth_token=DEFAULT_AUTH_TOKEN,
        api_keys={DEFAULT_API_KEY_SID: DEFAULT_API_KEY_SECRET},
        **kwargs,
    )


@pytest.fixture
def emulator() -> Iterator[TwilioEmulator]:
    with emulator_with() as running:
        yield running


@pytest.fixture
def sdk(emulator: TwilioEmulator) -> Sdk:
    return sdk_for(emulator)


def raises_twilio(call: Callable[[], object]) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as raised:
        call()
    return raised.value


def assert_twilio_headers(headers: Any) -> None:
    assert re.fullmatch(r"RQ[0-9a-f]{32}", headers["Twilio-Request-Id"])
    assert int(headers["Twilio-Concurrent-Requests"]) >= 1
    assert re.fullmatch(r"\d+\.\d{3}", headers["Twilio-Request-Duration"])
    assert headers["Content-Type"] == "application/json"


def assert_error(sdk: Sdk, error: TwilioRestException, status: int, code: int) -> None:
    assert (error.status, error.code) == (status, code)
    oai.validate_error(sdk.body)
    assert sdk.body["status"] == status
    assert sdk.body["code"] == code
    assert sdk.body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert_twilio_headers(sdk.headers)


def assert_valid_body(sdk: Sdk, path: str, method: str) -> None:
    """The body fits the operation's success schema and carries every property it lists."""
    oai.validate_response(path, method, sdk.body)
    assert oai.response_properties(path, method) <= set(sdk.body)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class ScriptedRandom(random.Random):
    """Hands out the given draws in order, so each request's fault is chosen by the test."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


# -- Messages ------------------------------------------------------------------------------------


def test_emulator_message_from_valid_sender_is_queued(emulator: TwilioEmulator, sdk: Sdk) -> None:
    message = sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hello")

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.status, message.to, message.from_, message.body) == (
        "queued",
        TO,
        VALID_FROM,
        "Hello",
    )
    assert sdk.response.status_code == 201
    assert_valid_body(sdk, MESSAGES, "post")
    assert_twilio_headers(sdk.headers)
    assert sdk.headers["Twilio-Concurrent-Requests"] == "1"
    assert FAULT_HEADER not in sdk.headers
    [logged] = emulator.requests
    assert logged["params"] == {"To": TO, "From": VALID_FROM, "Body": "Hello"}
    assert (logged["status"], logged["code"], logged["fault"], logged["processed"]) == (
        201,
        None,
        None,
        True,
    )
    assert logged["sid"] == message.sid


@pytest.mark.parametrize(
    ("sender", "to", "status", "code"),
    [
        ("+15005550001", TO, 400, 21212),
        ("+15005550007", TO, 400, 21606),
        ("+15557654321", TO, 400, 21606),
        ("Callqueue", TO, 400, 21606),
        ("not a number!", TO, 400, 21212),
        ("+15005550008", TO, 429, 21611),
        (VALID_FROM, "+15005550001", 400, 21211),
        (VALID_FROM, "+15005550002", 400, 21612),
        (VALID_FROM, "+15005550003", 400, 21408),
        (VALID_FROM, "+15005550004", 400, 21610),
        (VALID_FROM, "+15005550009", 400, 21614),
        (VALID_FROM, "555-1234", 400, 21211),
    ],
)
def test_emulator_message_magic_numbers_answer_twilio_errors(
    sdk: Sdk, sender: str, to: str, status: int, code: int
) -> None:
    error = raises_twilio(lambda: sdk.client.messages.create(to=to, from_=sender, body="Hi"))

    assert_error(sdk, error, status, code)
    [logged] = sdk.emulator.requests
    assert (logged["status"], logged["code"], logged["processed"]) == (status, code, False)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": TO, "from_": VALID_FROM}, 21602),
        ({"to": "", "from_": VALID_FROM, "body": "Hi"}, 21604),
        ({"to": TO, "body": "Hi"}, 21603),
        ({"to": TO, "from_": VALID_FROM, "body": "x" * 1601}, 21617),
    ],
)
def test_emulator_message_missing_or_bad_parameters_are_400(
    sdk: Sdk, kwargs: dict[str, str], code: int
) -> None:
    error = raises_twilio(lambda: sdk.client.messages.create(**kwargs))

    assert_error(sdk, error, 400, code)


def test_emulator_message_through_messaging_service_is_accepted(sdk: Sdk) -> None:
    service = "MG" + "3" * 32
    message = sdk.client.messages.create(to=TO, messaging_service_sid=service, body="Hi")

    assert (message.status, message.from_, message.messaging_service_sid) == (
        "accepted",
        None,
        service,
    )
    assert_valid_body(sdk, MESSAGES, "post")


def test_emulator_message_with_media_keeps_repeated_params(
    emulator: TwilioEmulator, sdk: Sdk
) -> None:
    urls = ["https://example.com/a.png", "https://example.com/b.png"]
    message = sdk.client.messages.create(to=TO, from_=VALID_FROM, media_url=urls)

    assert message.sid.startswith("MM")
    assert message.num_media == "2"
    assert emulator.requests[0]["params"]["MediaUrl"] == urls
    assert_valid_body(sdk, MESSAGES, "post")


def test_emulator_message_counts_segments(sdk: Sdk) -> None:
    message = sdk.client.messages.create(to=TO, from_=VALID_FROM, body="é" * 161)

    assert message.num_segments == "2"


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("☃" * 70, 1),
        ("☃" * 71, 2),
        ("😀" * 35, 1),
        ("😀" * 36, 2),
    ],
)
def test_emulator_segment_count_gsm7_and_ucs2(body: str, segments: int) -> None:
    assert segment_count(body) == segments


# -- Messages list -------------------------------------------------------------------------------


def test_emulator_message_list_filters_and_pages_newest_first() -> None:
    clock = FakeClock(at("2024-03-01T10:00:00"))
    with emulator_with(clock=clock) as emulator:
        sdk = sdk_for(emulator)
        sent: dict[str, str] = {}
        for when, to in [
            ("2024-03-01T10:00:00", "+15550000001"),
            ("2024-03-01T11:00:00", "+15550000002"),
            ("2024-03-02T09:00:00", "+15550000001"),
            ("2024-03-02T12:00:00", "+15550000001"),
            ("2024-03-03T08:00:00", "+15550000003"),
        ]:
            clock.now = at(when)
            sent[when] = sdk.client.messages.create(to=to, from_=VALID_FROM, body=when).sid

        to_one = sdk.client.messages.list(to="+15550000001")
        assert [m.sid for m in to_one] == [
            sent["2024-03-02T12:00:00"],
            sent["2024-03-02T09:00:00"],
            sent["2024-03-01T10:00:00"],
        ]
        assert sdk.client.messages.list(from_="+15009999999") == []

        on_day = sdk.client.messages.list(date_sent=date(2024, 3, 2))
        assert {m.body for m in on_day} == {"2024-03-02T09:00:00", "2024-03-02T12:00:00"}

        window = sdk.client.messages.list(
            date_sent_after=datetime(2024, 3, 1, 11, tzinfo=UTC),
            date_sent_before=datetime(2024, 3, 2, 12, tzinfo=UTC),
        )
        assert [m.body for m in window] == [
            "2024-03-02T12:00:00",
            "2024-03-02T09:00:00",
            "2024-03-01T11:00:00",
        ]

        paged = sdk.client.messages.list(page_size=2)
        assert [m.sid for m in paged] == [sent[k] for k in sorted(sent, reverse=True)]

        first_page = sdk.client.messages.page(page_size=2)
        assert len(list(first_page)) == 2
        body = sdk.body
        assert_valid_body(sdk, MESSAGES, "get")
        assert body["next_page_uri"].endswith(f"PageToken=PA{body['messages'][-1]['sid']}")
        assert body["previous_page_uri"] is None
        assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 2, 0, 1)


def test_emulator_message_list_rejects_bad_filters(sdk: Sdk) -> None:
    # The SDK's list raises a bare TwilioException on errors, not TwilioRestException.
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        sdk.client.messages.list(date_sent_after="yesterday")

    assert sdk.response.status_code == 400
    oai.validate_error(sdk.body)
    assert sdk.body["code"] == 20001


# -- Calls ---------------------------------------------------------------------------------------


def test_emulator_call_from_valid_number_is_queued(emulator: TwilioEmulator, sdk: Sdk) -> None:
    call = sdk.client.calls.create(to=TO, from_=VALID_FROM, url="https://example.com/twiml")

    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert (call.status, call.to, sdk.body["from"]) == ("queued", TO, VALID_FROM)
    assert sdk.response.status_code == 201
    assert_valid_body(sdk, CALLS, "post")
    assert emulator.requests[0]["processed"] is True


def test_emulator_call_to_client_endpoint_with_twiml(sdk: Sdk) -> None:
    call = sdk.client.calls.create(to="client:alice", from_=VALID_FROM, twiml="<Response/>")

    assert call.to == "client:alice"


@pytest.mark.parametrize(
    ("caller", "to", "code"),
    [
        ("+15005550001", TO, 21212),
        ("+15557654321", TO, 21210),
        (VALID_FROM, "+15005550001", 21217),
        (VALID_FROM, "+15005550002", 21214),
        (VALID_FROM, "+15005550003", 21215),
        (VALID_FROM, "+15005550004", 21216),
        (VALID_FROM, "nobody", 21217),
    ],
)
def test_emulator_call_magic_numbers_answer_twilio_errors(
    sdk: Sdk, caller: str, to: str, code: int
) -> None:
    error = raises_twilio(
        lambda: sdk.client.calls.create(to=to, from_=caller, url="https://example.com/twiml")
    )

    assert_error(sdk, error, 400, code)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": TO, "from_": VALID_FROM}, 21205),
        ({"to": TO, "from_": VALID_FROM, "url": "ftp://example.com/x"}, 21205),
        ({"to": "", "from_": VALID_FROM, "url": "https://example.com/x"}, 21201),
        ({"to": TO, "from_": "", "url": "https://example.com/x"}, 21213),
    ],
)
def test_emulator_call_missing_parameters_are_400(
    sdk: Sdk, kwargs: dict[str, str], code: int
) -> None:
    error = raises_twilio(lambda: sdk.client.calls.create(**kwargs))

    assert_error(sdk, error, 400, code)


# -- Lookup --------------------------------------------------------------------------------------


def test_emulator_lookup_valid_number_with_line_type(emulator: TwilioEmulator, sdk: Sdk) -> None:
    number = sdk.client.lookups.v2.phone_numbers(TO).fetch(fields="line_type_intelligence")

    assert number.valid is True
    assert (number.phone_number, number.country_code, number.calling_country_code) == (
        TO,
        "US",
        "1",
    )
    assert number.national_format == "(555) 123-4567"
    assert number.line_type_intelligence["type"] == "mobile"
    assert number.caller_name is None
    assert sdk.response.status_code == 200
    assert_valid_body(sdk, LOOKUP, "get")
    logged = emulator.requests[0]
    assert logged["path"] == f"/v2/PhoneNumbers/{TO}"
    assert logged["params"] == {"Fields": "line_type_intelligence"}
    assert logged["processed"] is True


def test_emulator_lookup_magic_invalid_number(sdk: Sdk) -> None:
    number = sdk.client.lookups.v2.phone_numbers("+15005550001").fetch(
        fields="line_type_intelligence"
    )

    assert number.valid is False
    assert number.validation_errors == ["INVALID_BUT_POSSIBLE"]
    assert number.line_type_intelligence is None
    assert_valid_body(sdk, LOOKUP, "get")


def test_emulator_lookup_magic_landline(sdk: Sdk) -> None:
    number = sdk.client.lookups.v2.phone_numbers("+15005550009").fetch(
        fields="line_type_intelligence"
    )

    assert number.valid is True
    assert number.line_type_intelligence["type"] == "landline"


def test_emulator_lookup_every_field_fits_the_schema(sdk: Sdk) -> None:
    number = sdk.client.lookups.v2.phone_numbers(TO).fetch(fields=",".join(LOOKUP_FIELDS))

    assert number.sms_pumping_risk["number_blocked"] is False
    assert_valid_body(sdk, LOOKUP, "get")
    assert all(sdk.body[name] is not None for name in LOOKUP_FIELDS[1:])


def test_emulator_lookup_national_format_defaults_to_north_america(sdk: Sdk) -> None:
    number = sdk.client.lookups.v2.phone_numbers("(555) 123-4567").fetch()

    assert (number.valid, number.phone_number) == (True, TO)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("+1555123", "TOO_SHORT"),
        ("+155512345678", "TOO_LONG"),
        ("+9991234567", "INVALID_COUNTRY_CODE"),
        ("call-me", "NOT_A_NUMBER"),
    ],
)
def test_emulator_lookup_invalid_numbers(sdk: Sdk, raw: str, error: str) -> None:
    number = sdk.client.lookups.v2.phone_numbers(raw).fetch(fields="line_type_intelligence")

    assert (number.valid, number.validation_errors) == (False, [error])
    assert number.line_type_intelligence is None
    assert_valid_body(sdk, LOOKUP, "get")


def test_emulator_parse_number_outside_north_america() -> None:
    parsed = parse_number("+447700900123")

    assert (parsed.e164, parsed.country, parsed.calling_code) == ("+447700900123", "GB", "44")


def test_emulator_lookup_unknown_field_is_400(sdk: Sdk) -> None:
    error = raises_twilio(lambda: sdk.client.lookups.v2.phone_numbers(TO).fetch(fields="horoscope"))

    assert_error(sdk, error, 400, 20001)


# -- Verify --------------------------------------------------------------------------------------


def test_emulator_verification_is_pending(emulator: TwilioEmulator, sdk: Sdk) -> None:
    verification = sdk.client.verify.v2.services(SERVICE).verifications.create(to=TO, channel="sms")

    assert re.fullmatch(r"VE[0-9a-f]{32}", verification.sid)
    assert (verification.status, verification.valid, verification.service_sid) == (
        "pending",
        False,
        SERVICE,
    )
    assert sdk.response.status_code == 201
    assert_valid_body(sdk, VERIFY, "post")
    assert emulator.requests[0]["sid"] == verification.sid


def test_emulator_verification_by_email(sdk: Sdk) -> None:
    verification = sdk.client.verify.v2.services(SERVICE).verifications.create(
        to="someone@example.com", channel="email"
    )

    assert (verification.channel, verification.lookup) == ("email", {})
    assert_valid_body(sdk, VERIFY, "post")


@pytest.mark.parametrize(
    ("to", "channel", "code"),
    [
        ("5551234567", "sms", 60200),
        ("+15005550001", "sms", 60200),
        (TO, "pigeon", 60200),
        ("not-an-email", "email", 60200),
        ("+15005550009", "sms", 60205),
    ],
)
def test_emulator_verification_invalid_parameters(
    sdk: Sdk, to: str, channel: str, code: int
) -> None:
    verifications = sdk.client.verify.v2.services(SERVICE).verifications
    error = raises_twilio(lambda: verifications.create(to=to, channel=channel))

    assert_error(sdk, error, 400, code)


def test_emulator_verification_landline_by_voice_call_is_fine(sdk: Sdk) -> None:
    verifications = sdk.client.verify.v2.services(SERVICE).verifications
    verification = verifications.create(to="+15005550009", channel="call")

    assert verification.status == "pending"


def test_emulator_verification_unknown_service_is_404(sdk: Sdk) -> None:
    verifications = sdk.client.verify.v2.services("VAnope").verifications
    error = raises_twilio(lambda: verifications.create(to=TO, channel="sms"))

    assert_error(sdk, error, 404, 20404)


# -- Studio --------------------------------------------------------------------------------------


def test_emulator_execution_is_active(emulator: TwilioEmulator, sdk: Sdk) -> None:
    execution = sdk.client.studio.v2.flows(FLOW).executions.create(
        to=TO, from_=VALID_FROM, parameters={"name": "Ada"}
    )

    assert re.fullmatch(r"FN[0-9a-f]{32}", execution.sid)
    assert (execution.status, execution.flow_sid, execution.contact_channel_address) == (
        "active",
        FLOW,
        TO,
    )
    assert execution.context == {"flow": {"data": {"name": "Ada"}}}
    assert sdk.response.status_code == 201
    assert_valid_body(sdk, STUDIO, "post")
    assert emulator.requests[0]["params"]["Parameters"] == '{"name": "Ada"}'


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": TO, "from_": ""},
        {"to": "", "from_": VALID_FROM},
        {"to": TO, "from_": VALID_FROM, "parameters": "[1, 2]"},
        {"to": TO, "from_": VALID_FROM, "parameters": "{not json"},
    ],
)
def test_emulator_execution_bad_parameters_are_400(sdk: Sdk, kwargs: dict[str, str]) -> None:
    executions = sdk.client.studio.v2.flows(FLOW).executions
    error = raises_twilio(lambda: executions.create(**kwargs))

    assert_error(sdk, error, 400, 20001)


def test_emulator_execution_unknown_flow_is_404(sdk: Sdk) -> None:
    executions = sdk.client.studio.v2.flows("FWnope").executions
    error = raises_twilio(lambda: executions.create(to=TO, from_=VALID_FROM))

    assert_error(sdk, error, 404, 20404)


# -- What the SDK sent, against Twilio's request schemas -------------------------------------------


def test_emulator_sdk_requests_fit_twilio_request_schemas(
    emulator: TwilioEmulator, sdk: Sdk
) -> None:
    client = sdk.client
    client.messages.create(to=TO, from_=VALID_FROM, body="Hi", media_url=["https://e.com/a.png"])
    client.calls.create(to=TO, from_=VALID_FROM, url="https://example.com/twiml", timeout=20)
    client.lookups.v2.phone_numbers(TO).fetch(fields="line_type_intelligence,caller_name")
    client.verify.v2.services(SERVICE).verifications.create(to=TO, channel="sms", locale="en")
    client.studio.v2.flows(FLOW).executions.create(to=TO, from_=VALID_FROM, parameters={"a": 1})
    client.messages.list(to=TO, date_sent_after=datetime(2024, 1, 1, tzinfo=UTC), page_size=5)

    logged = emulator.requests
    assert [entry["status"] for entry in logged] == [201, 201, 200, 201, 201, 200]
    for entry in logged:
        oai.validate_request(entry["path"], entry["method"], entry["params"])


# -- Authentication and routing ----------------------------------------------------------------


def test_emulator_wrong_secret_is_401(emulator: TwilioEmulator) -> None:
    sdk = sdk_for(emulator, password="not-the-secret")

    error = raises_twilio(lambda: sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi"))

    assert_error(sdk, error, 401, 20003)
    assert sdk.headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    assert emulator.requests[0]["processed"] is False


def test_emulator_wrong_secret_on_v2_apis_is_401(emulator: TwilioEmulator) -> None:
    sdk = sdk_for(emulator, username=DEFAULT_ACCOUNT_SID, password=DEFAULT_API_KEY_SECRET)

    error = raises_twilio(lambda: sdk.client.lookups.v2.phone_numbers(TO).fetch())

    assert_error(sdk, error, 401, 20003)


def test_emulator_accepts_account_sid_and_auth_token(emulator: TwilioEmulator) -> None:
    sdk = sdk_for(emulator, username=DEFAULT_ACCOUNT_SID, password=DEFAULT_AUTH_TOKEN)

    assert sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi").status == "queued"


def test_emulator_other_account_in_path_is_401(emulator: TwilioEmulator) -> None:
    sdk = sdk_for(emulator, account_sid=OTHER_ACCOUNT)

    error = raises_twilio(lambda: sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi"))

    assert_error(sdk, error, 401, 20003)


def test_emulator_malformed_account_sid_in_path_is_404(emulator: TwilioEmulator) -> None:
    sdk = sdk_for(emulator, account_sid="ACnot-a-sid")

    error = raises_twilio(
        lambda: sdk.client.calls.create(to=TO, from_=VALID_FROM, url="https://e.com")
    )

    assert_error(sdk, error, 404, 20404)


def test_emulator_unknown_resource_is_404(emulator: TwilioEmulator, sdk: Sdk) -> None:
    queues = sdk.client.api.v2010.accounts(ACCOUNT).queues
    error = raises_twilio(lambda: queues.create(friendly_name="support"))

    assert_error(sdk, error, 404, 20404)
    assert emulator.requests[0]["code"] == 20404


def test_emulator_missing_auth_and_unrouted_methods(emulator: TwilioEmulator) -> None:
    host, port = emulator.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    credentials = base64.b64encode(f"{ACCOUNT}:{DEFAULT_AUTH_TOKEN}".encode()).decode()

    connection.request(
        "POST",
        path,
        body="To=%2B15551234567",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    unauthenticated = connection.getresponse()
    unauthenticated_body = json.loads(unauthenticated.read())
    connection.request("DELETE", path, headers={"Authorization": f"Basic {credentials}"})
    unrouted = connection.getresponse()
    unrouted_body = json.loads(unrouted.read())
    connection.close()

    assert (unauthenticated.status, unauthenticated_body["code"]) == (401, 20003)
    assert unauthenticated.getheader("WWW-Authenticate") == 'Basic realm="Twilio API"'
    assert (unrouted.status, unrouted_body["code"]) == (404, 20404)
    assert_twilio_headers(dict(unrouted.getheaders()))


# -- Connections ---------------------------------------------------------------------------------


def test_emulator_keeps_connections_alive(emulator: TwilioEmulator) -> None:
    host, port = emulator.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    credentials = base64.b64encode(f"{ACCOUNT}:{DEFAULT_AUTH_TOKEN}".encode()).decode()
    statuses = []
    sockets = set()

    for _ in range(3):
        connection.request(
            "GET",
            "/v2/PhoneNumbers/%2B15551234567",
            headers={"Authorization": f"Basic {credentials}"},
        )
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        sockets.add(id(connection.sock))
    connection.close()

    assert statuses == [200, 200, 200]
    assert len(sockets) == 1


def test_emulator_stop_ends_idle_keep_alive_connections() -> None:
    emulator = emulator_with()
    emulator.start()
    sdk = sdk_for(emulator)
    sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi")

    started = time.monotonic()
    emulator.stop()

    assert time.monotonic() - started < 2
    with pytest.raises(requests.exceptions.ConnectionError):
        sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi")
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.base_url


# -- Concurrency limit and latency -------------------------------------------------------------


def test_emulator_concurrency_limit_answers_20429_without_processing() -> None:
    sleeping = threading.Semaphore(0)
    release = threading.Event()

    def blocking_sleep(seconds: float) -> None:
        assert seconds == 0.2
        sleeping.release()
        assert release.wait(10)

    results: dict[int, tuple[int, int | None, str]] = {}

    def send(index: int, emulator: TwilioEmulator) -> None:
        sdk = sdk_for(emulator)
        try:
            sdk.client.messages.create(to=f"+1555000000{index}", from_=VALID_FROM, body="Hi")
            code = None
        except TwilioRestException as error:
            code = error.code
        results[index] = (
            sdk.response.status_code,
            code,
            sdk.headers["Twilio-Concurrent-Requests"],
        )

    with emulator_with(latency=0.2, concurrency_limit=2, sleep=blocking_sleep) as emulator:
        admitted = [threading.Thread(target=send, args=(i, emulator)) for i in (0, 1)]
        for thread in admitted:
            thread.start()
        for _ in admitted:
            assert sleeping.acquire(timeout=10)
        rejected = [threading.Thread(target=send, args=(i, emulator)) for i in (2, 3, 4)]
        for thread in rejected:
            thread.start()
        for thread in rejected:
            thread.join(10)
        release.set()
        for thread in admitted:
            thread.join(10)
        listed = {m.to for m in sdk_for(emulator).client.messages.list()}
        logged = emulator.requests

    assert sorted(results[i][:2] for i in (0, 1)) == [(201, None), (201, None)]
    assert [results[i][:2] for i in (2, 3, 4)] == [(429, 20429)] * 3
    assert all(int(results[i][2]) >= 3 for i in (2, 3, 4))
    assert listed == {"+15550000000", "+15550000001"}
    rejected_logs = [e for e in logged if e["status"] == 429]
    assert len(rejected_logs) == 3
    assert all(e["code"] == 20429 and e["processed"] is False for e in rejected_logs)


def test_emulator_latency_is_slept_and_reported_in_duration() -> None:
    clock = FakeClock(1_700_000_000.0)
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    delays = iter([0.25, 0.5])
    with emulator_with(latency=lambda: next(delays), clock=clock, sleep=fake_sleep) as emulator:
        sdk = sdk_for(emulator)
        sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi")
        first = sdk.headers["Twilio-Request-Duration"]
        sdk.client.lookups.v2.phone_numbers(TO).fetch()
        second = sdk.headers["Twilio-Request-Duration"]
        logged = emulator.requests

    assert slept == [0.25, 0.5]
    assert (first, second) == ("0.250", "0.500")
    assert [entry["t"] for entry in logged] == [1_700_000_000.0, 1_700_000_000.25]


# -- Faults --------------------------------------------------------------------------------------


def test_emulator_faults_each_kind_answers_and_logs_as_specified() -> None:
    spec = FaultSpec.parse("429=0.2,500=0.2,reset=0.2,lost-response=0.2,crash=0.1")
    draws = [0.1, 0.3, 0.5, 0.7, 0.85, 0.95]
    outcomes: list[tuple[str, object]] = []
    with emulator_with(faults=spec, rng=ScriptedRandom(draws)) as emulator:
        sdk = sdk_for(emulator)
        for index in range(len(draws)):
            try:
                sdk.client.messages.create(to=f"+1555000000{index}", from_=VALID_FROM, body="Hi")
            except TwilioRestException as error:
                outcomes.append(("twilio", (error.status, error.code)))
            except requests.exceptions.ConnectionError:
                outcomes.append(("connection", None))
            else:
                outcomes.append(("created", sdk.headers.get(FAULT_HEADER)))
        listed = {m.to for m in sdk.client.messages.list()}
        logged = emulator.requests

    assert outcomes == [
        ("twilio", (429, 20429)),
        ("twilio", (500, 20500)),
        ("connection", None),
        ("connection", None),
        ("created", "crash"),
        ("created", None),
    ]
    # A lost response still created the message; a reset never reached processing.
    assert listed == {"+15550000003", "+15550000004", "+15550000005"}
    assert [(e["status"], e["code"], e["fault"], e["processed"]) for e in logged[:6]] == [
        (429, 20429, "429", False),
        (500, 20500, "500", False),
        (None, None, "reset", False),
        (None, None, "lost-response", True),
        (201, None, "crash", True),
        (201, None, None, True),
    ]
    assert logged[3]["sid"] is not None


def test_emulator_faults_are_deterministic_under_a_seed() -> None:
    spec = FaultSpec.parse(
        "429=0.12,500=0.12,reset=0.12,lost-response=0.12,crash=0.12,5xx-after=0.12,slow=0.12"
    )

    def run() -> list[str | None]:
        with emulator_with(faults=spec, rng=random.Random(7), sleep=lambda _: None) as emulator:
            sdk = sdk_for(emulator)
            for index in range(30):
                with contextlib.suppress(TwilioRestException, requests.exceptions.ConnectionError):
                    sdk.client.lookups.v2.phone_numbers(f"+1555000{index:04d}").fetch()
            return [entry["fault"] for entry in emulator.requests]

    first, second = run(), run()

    assert first == second
    assert {kind.value for kind in FaultKind} <= set(first)


def test_emulator_faults_spare_the_list_and_non_api_answers() -> None:
    with emulator_with(faults=FaultSpec(reset=1.0)) as faulty:
        sdk = sdk_for(faulty)
        with pytest.raises(requests.exceptions.ConnectionError):
            sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi")
        assert sdk.client.messages.list() == []
        queues = sdk.client.api.v2010.accounts(ACCOUNT).queues
        error = raises_twilio(lambda: queues.create(friendly_name="support"))
        denied = sdk_for(faulty, password="wrong")
        denial = raises_twilio(lambda: denied.client.lookups.v2.phone_numbers(TO).fetch())
        logged = faulty.requests

    assert (error.status, denial.status) == (404, 401)
    assert [entry["fault"] for entry in logged] == ["reset", None, None, None]


# -- Requests log ----------------------------------------------------------------------------------


def test_emulator_requests_log_file_matches_memory(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    clock = FakeClock(1_700_000_000.0)
    rng = ScriptedRandom([0.9, 0.1, 0.9])
    with emulator_with(
        requests_log=log, clock=clock, faults=FaultSpec(lost_response=0.5), rng=rng
    ) as emulator:
        sdk = sdk_for(emulator)
        sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi")
        with pytest.raises(requests.exceptions.ConnectionError):
            sdk.client.calls.create(to=TO, from_=VALID_FROM, url="https://example.com/twiml")
        raises_twilio(lambda: sdk.client.messages.create(to=TO, from_="+15005550001", body="x"))
        in_memory = emulator.requests

    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert lines == in_memory
    assert len(lines) == 3
    assert set(lines[0]) == {
        "t",
        "method",
        "path",
        "params",
        "status",
        "code",
        "fault",
        "processed",
        "sid",
        "concurrent",
        "duration",
    }
    # One request at a time, on a clock that did not move: what the headers said.
    assert [(e["concurrent"], e["duration"]) for e in lines] == [(1, 0.0)] * 3
    assert lines[1]["fault"] == "lost-response"
    assert lines[1]["status"] is None
    assert lines[2]["code"] == 21212


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel receive times: Linux")
def test_a_request_is_stamped_when_its_first_bytes_arrive_not_when_it_is_read(
    emulator: TwilioEmulator,
) -> None:
    # The emulator stands in for Twilio's edge: a request arrives when its bytes reach the
    # machine, however long the emulator's threads take to get to it. Here its body comes 0.3 s
    # after its headers; read and stamped whole, it would be stamped after the body.
    auth = base64.b64encode(f"{DEFAULT_API_KEY_SID}:{DEFAULT_API_KEY_SECRET}".encode()).decode()
    body = b"To=%2B15551234567&From=%2B15005550006&Body=stamp"
    head = (
        f"POST /2010-04-01/Accounts/{ACCOUNT}/Messages.json HTTP/1.1\r\n"
        f"Host: api.twilio.com\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = emulator.base_url.removeprefix("http://").split(":")
    stamps = []
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        for _ in range(2):  # the second request on the same connection gets a stamp of its own
            sent = time.time()
            connection.sendall(head)
            time.sleep(0.3)
            connection.sendall(body)
            response = http.client.HTTPResponse(connection)
            response.begin()
            assert response.status == 201
            response.read()
            stamps.append((sent, emulator.requests[-1]["t"]))
    for sent, stamped in stamps:
        assert sent <= stamped < sent + 0.15


# -- The emulator's timeline: messages and calls change status as the clock moves ---------------

MESSAGE = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
CALL = "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"
EXECUTION = "/v2/Flows/{FlowSid}/Executions/{Sid}"
VERIFICATION = "/v2/Services/{ServiceSid}/Verifications/{Sid}"
SERVICE_MG = "MG" + "3" * 32
T0 = at("2024-03-01T10:00:00")


def timed_emulator(**kwargs: Any) -> tuple[TwilioEmulator, FakeClock]:
    clock = FakeClock(T0)
    return emulator_with(clock=clock, callback_delay=1.0, **kwargs), clock


def test_emulator_message_resource_follows_its_timeline_without_a_callback() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        created = sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi")
        assert (created.status, created.date_sent) == ("queued", None)
        seen = []
        for offset in (0.0, 0.5, 1.0, 2.0):
            clock.now = T0 + offset
            fetched = sdk.client.messages(created.sid).fetch()
            assert_valid_body(sdk, MESSAGE, "get")
            seen.append((fetched.status, fetched.date_sent, fetched.date_updated))
        undelivered = sdk.client.messages.create(to="+15005550030", from_=VALID_FROM, body="x")
        clock.now += 2.0
        failed = sdk.client.messages(undelivered.sid).fetch()

    sent_at = datetime.fromtimestamp(T0 + 1.0, UTC)
    assert seen == [
        ("queued", None, datetime.fromtimestamp(T0, UTC)),
        ("queued", None, datetime.fromtimestamp(T0, UTC)),
        ("sent", sent_at, sent_at),
        ("delivered", sent_at, datetime.fromtimestamp(T0 + 2.0, UTC)),
    ]
    assert (failed.status, failed.error_code) == ("undelivered", 30003)


def test_emulator_message_to_the_failing_number_fails_unsent_with_its_code() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        created = sdk.client.messages.create(to="+15005550080", from_=VALID_FROM, body="x")
        seen = []
        for offset in (0.0, 1.0, 5.0):
            clock.now = T0 + offset
            fetched = sdk.client.messages(created.sid).fetch()
            assert_valid_body(sdk, MESSAGE, "get")
            seen.append((fetched.status, fetched.error_code, fetched.date_sent))

    assert seen == [("queued", None, None), ("failed", 30008, None), ("failed", 30008, None)]


def test_emulator_message_fetch_of_an_unknown_sid_is_404(sdk: Sdk) -> None:
    error = raises_twilio(lambda: sdk.client.messages("SM" + "0" * 32).fetch())

    assert_error(sdk, error, 404, 20404)


def test_emulator_message_list_date_sent_skips_unsent_across_a_page_boundary() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        sids = []
        for index in range(5):
            clock.now = T0 + index * 10
            sids.append(sdk.client.messages.create(to=TO, from_=VALID_FROM, body=str(index)).sid)
        # The newest message is still queued: no date_sent.
        clock.now = T0 + 40.5
        since = datetime.fromtimestamp(T0, UTC)
        first = sdk.client.messages.page(date_sent_after=since, page_size=2)
        first_sids = [m.sid for m in first]
        assert sdk.body["next_page_uri"] is not None
        # Between the two page requests the newest message is sent; the cursor is not shifted.
        clock.now = T0 + 42
        second_sids = [m.sid for m in first.next_page()]
        everything = [m.sid for m in sdk.client.messages.list(page_size=2)]
        dated_now = [m.sid for m in sdk.client.messages.list(date_sent_after=since)]

    assert first_sids == [sids[3], sids[2]]
    assert second_sids == [sids[1], sids[0]]
    assert everything == sids[::-1]
    assert dated_now == sids[::-1]


def test_emulator_message_list_items_carry_the_fields_the_sdk_exposes() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        sdk.client.messages.create(to=TO, messaging_service_sid=SERVICE_MG, body="Hi")
        sdk.client.messages.create(to=TO, from_=VALID_FROM, media_url=["https://e.com/a.png"])
        clock.now += 5
        listed = sdk.client.messages.list()
        assert_valid_body(sdk, MESSAGES, "get")

    media, via_service = listed
    assert (via_service.messaging_service_sid, via_service.num_media) == (SERVICE_MG, "0")
    assert (media.num_media, media.messaging_service_sid) == ("1", None)
    assert via_service.date_created == datetime.fromtimestamp(T0, UTC)
    assert {m.status for m in listed} == {"delivered"}


# -- Scheduled messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ahead", "code"),
    [
        (300, 35115),
        (301, None),
        (35 * 86400, None),
        (35 * 86400 + 1, 35115),
        (-60, 35115),
    ],
)
def test_emulator_scheduled_message_send_at_bounds(ahead: int, code: int | None) -> None:
    emulator, _ = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        send_at = datetime.fromtimestamp(T0 + ahead, UTC)

        def create() -> object:
            return sdk.client.messages.create(
                to=TO,
                messaging_service_sid=SERVICE_MG,
                body="Later",
                send_at=send_at,
                schedule_type="fixed",
            )

        if code is None:
            create()
            assert (sdk.body["status"], sdk.body["date_sent"]) == ("scheduled", None)
            assert_valid_body(sdk, MESSAGES, "post")
        else:
            assert_error(sdk, raises_twilio(create), 400, code)
            assert sdk.client.messages.list() == []


def test_emulator_scheduled_message_needs_a_messaging_service(sdk: Sdk) -> None:
    error = raises_twilio(
        lambda: sdk.client.messages.create(
            to=TO,
            from_=VALID_FROM,
            body="Later",
            send_at=datetime.now(UTC) + timedelta(days=1),
            schedule_type="fixed",
        )
    )

    assert_error(sdk, error, 400, 35118)


def test_emulator_scheduled_message_is_sent_at_its_time() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        send_at = T0 + 3600
        sid = sdk.client.messages.create(
            to=TO,
            messaging_service_sid=SERVICE_MG,
            body="Later",
            send_at=datetime.fromtimestamp(send_at, UTC),
            schedule_type="fixed",
        ).sid
        clock.now = send_at - 1
        before = sdk.client.messages(sid).fetch()
        unsent = sdk.client.messages.list(date_sent=date(2024, 3, 1))
        clock.now = send_at + 1
        sent = sdk.client.messages(sid).fetch()

    assert (before.status, before.date_sent) == ("scheduled", None)
    assert unsent == []
    assert (sent.status, sent.date_sent) == ("sent", datetime.fromtimestamp(send_at + 1, UTC))


# -- Body rewriting ------------------------------------------------------------------------------


def test_emulator_trial_account_prefixes_and_smart_encoding_replaces_look_alikes() -> None:
    with emulator_with(trial_account=True) as emulator:
        sdk = sdk_for(emulator)
        body = "\u201cHi\u201d \u2013 it\u2019s\u00a0here\u2026"
        created = sdk.client.messages.create(to=TO, from_=VALID_FROM, body=body, smart_encoded=True)
        plain = sdk.client.messages.create(to=TO, from_=VALID_FROM, body=body)
        listed = {m.sid: m.body for m in sdk.client.messages.list()}

    assert created.body == 'Sent from your Twilio trial account - "Hi" - it\'s here...'
    assert created.num_segments == "1"
    assert plain.body == "Sent from your Twilio trial account - " + body
    assert listed == {created.sid: created.body, plain.sid: plain.body}


def test_emulator_smart_encode_table() -> None:
    assert smart_encode("\u2018a\u2019 \u201cb\u201d c\u2014d e\u2026") == "'a' \"b\" c-d e..."
    assert segment_count(smart_encode("\u2019" * 160)) == 1


# -- Test credentials ----------------------------------------------------------------------------


def test_emulator_test_credentials_reach_only_messages_calls_and_lookup() -> None:
    with emulator_with(test_credentials=True) as emulator:
        test = sdk_for(emulator, username=ACCOUNT, password=DEFAULT_AUTH_TOKEN)
        assert test.client.messages.create(to=TO, from_=VALID_FROM, body="Hi").status == "queued"
        test.client.calls.create(to=TO, from_=VALID_FROM, url="https://example.com/twiml")
        assert test.client.lookups.v2.phone_numbers(TO).fetch().valid is True
        verify = test.client.verify.v2.services(SERVICE).verifications
        denied = raises_twilio(lambda: verify.create(to=TO, channel="sms"))
        assert_error(test, denied, 403, 20008)
        executions = test.client.studio.v2.flows(FLOW).executions
        assert_error(
            test, raises_twilio(lambda: executions.create(to=TO, from_=VALID_FROM)), 403, 20008
        )
        with pytest.raises(TwilioException):
            test.client.messages.list()
        assert test.response.status_code == 403
        # An API key is never a test credential.
        live = sdk_for(emulator)
        live.client.verify.v2.services(SERVICE).verifications.create(to=TO, channel="sms")
        logged = emulator.requests

    assert [e["status"] for e in logged] == [201, 201, 200, 403, 403, 403, 201]
    assert [e["processed"] for e in logged if e["status"] == 403] == [False] * 3


# -- Calls, executions and verifications look-ups ------------------------------------------------


def test_emulator_call_list_and_fetch_with_start_time_filters() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        first = sdk.client.calls.create(to=TO, from_=VALID_FROM, url="https://e.com/t").sid
        clock.now = T0 + 60
        second = sdk.client.calls.create(
            to="+15557654321", from_=VALID_FROM, twiml="<Response/>"
        ).sid
        queued = sdk.client.calls(second).fetch()
        assert_valid_body(sdk, CALL, "get")
        started = [
            c.sid for c in sdk.client.calls.list(start_time_after=datetime.fromtimestamp(T0, UTC))
        ]
        clock.now = T0 + 62
        ringing = [c.sid for c in sdk.client.calls.list(status="in-progress")]
        assert_valid_body(sdk, CALLS, "get")
        to_one = [c.sid for c in sdk.client.calls.list(to=TO)]
        before = [
            c.sid
            for c in sdk.client.calls.list(start_time_before=datetime.fromtimestamp(T0 + 61, UTC))
        ]
        clock.now = T0 + 100
        done = sdk.client.calls(first).fetch()
        paged = [c.sid for c in sdk.client.calls.list(page_size=1)]
        missing = raises_twilio(lambda: sdk.client.calls("CA" + "0" * 32).fetch())

    assert (queued.status, queued.start_time) == ("queued", None)
    assert started == [first]
    assert ringing == [second]
    assert to_one == [first]
    # StartTime< is "before": the second call started at T0 + 61, not before it.
    assert before == [first]
    assert (done.status, done.duration) == ("completed", "2")
    assert done.start_time == datetime.fromtimestamp(T0 + 1, UTC)
    assert done.end_time == datetime.fromtimestamp(T0 + 3, UTC)
    assert paged == [second, first]
    assert missing.status == 404


def test_emulator_execution_list_filters_by_creation_and_pages() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        flow = sdk.client.studio.v2.flows(FLOW)
        sids = []
        for index in range(3):
            clock.now = T0 + index * 60
            sids.append(flow.executions.create(to=f"+1555000000{index}", from_=VALID_FROM).sid)
        other = sdk.client.studio.v2.flows("FW" + "4" * 32)
        other.executions.create(to=TO, from_=VALID_FROM)
        everything = flow.executions.list(page_size=1)
        window = flow.executions.list(
            date_created_from=datetime.fromtimestamp(T0 + 60, UTC),
            date_created_to=datetime.fromtimestamp(T0 + 120, UTC),
        )
        assert_valid_body(sdk, STUDIO, "get")
        fetched = flow.executions(sids[0]).fetch()
        assert_valid_body(sdk, EXECUTION, "get")
        wrong_flow = raises_twilio(lambda: other.executions(sids[0]).fetch())

    assert [e.sid for e in everything] == sids[::-1]
    assert [(e.sid, e.contact_channel_address) for e in window] == [(sids[1], "+15550000001")]
    assert fetched.contact_channel_address == "+15550000000"
    assert wrong_flow.status == 404


def test_emulator_verification_fetch_by_sid_or_to() -> None:
    emulator, clock = timed_emulator()
    with emulator:
        sdk = sdk_for(emulator)
        verifications = sdk.client.verify.v2.services(SERVICE).verifications
        older = verifications.create(to=TO, channel="sms").sid
        clock.now += 30
        newer = verifications.create(to=TO, channel="call").sid
        by_sid = verifications(older).fetch()
        assert_valid_body(sdk, VERIFICATION, "get")
        by_to = verifications(TO).fetch()
        other_service = sdk.client.verify.v2.services("VA" + "5" * 32).verifications
        elsewhere = raises_twilio(lambda: other_service(older).fetch())
        unknown = raises_twilio(lambda: verifications("+15550000000").fetch())

    assert (by_sid.sid, by_sid.channel) == (older, "sms")
    assert (by_to.sid, by_to.channel) == (newer, "call")
    assert (elsewhere.status, unknown.status) == (404, 404)


# -- Faults that leave the request processed ----------------------------------------------------


def test_emulator_5xx_after_creates_the_message_and_answers_an_edge_page() -> None:
    spec = FaultSpec.parse("5xx-after=1.0")
    with emulator_with(faults=spec, rng=ScriptedRandom([0.0, 0.0, 0.0, 0.5, 0.0, 0.9])) as emulator:
        sdk = sdk_for(emulator)
        statuses = []
        for index in range(3):
            error = raises_twilio(
                lambda index=index: sdk.client.messages.create(  # type: ignore[misc]
                    to=f"+1555000000{index}", from_=VALID_FROM, body="Hi"
                )
            )
            statuses.append(error.status)
            assert sdk.response.text.startswith("<html>")
            assert "Twilio-Request-Id" not in sdk.headers
        listed = {m.to for m in sdk.client.messages.list()}
        logged = emulator.requests

    assert statuses == [502, 503, 504]
    assert listed == {"+15550000000", "+15550000001", "+15550000002"}
    assert [(e["status"], e["code"], e["fault"], e["processed"]) for e in logged[:3]] == [
        (status, None, "5xx-after", True) for status in (502, 503, 504)
    ]
    assert all(e["sid"] is not None for e in logged[:3])


def test_emulator_slow_answer_times_the_client_out_after_the_message_exists() -> None:
    asked: list[float] = []
    released = threading.Event()

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        assert released.wait(10)

    with emulator_with(faults=FaultSpec(slow=1.0), sleep=sleep) as emulator:
        http = CapturingHttpClient(emulator.base_url, timeout=0.2)
        client = Client(DEFAULT_API_KEY_SID, DEFAULT_API_KEY_SECRET, ACCOUNT, http_client=http)
        with pytest.raises(requests.exceptions.ReadTimeout):
            client.messages.create(to=TO, from_=VALID_FROM, body="Hi")
        listed = [m.to for m in sdk_for(emulator).client.messages.list()]
        released.set()
        deadline = time.monotonic() + 5
        while not emulator.requests[1:] and time.monotonic() < deadline:
            time.sleep(0.01)
        logged = emulator.requests

    assert asked == [12.0]
    assert listed == [TO]
    slow = next(e for e in logged if e["fault"] == "slow")
    assert (slow["status"], slow["processed"]) == (201, True)


# -- Faults on look-ups --------------------------------------------------------------------------


def test_emulator_lookup_faults_apply_to_lists_and_fetches_only() -> None:
    draws = ScriptedRandom([0.1, 0.4, 0.7, 0.95])
    spec = FaultSpec(too_many_requests=0.25, server_error=0.25, reset=0.25)
    with emulator_with(lookup_faults=spec, rng=draws) as emulator:
        sdk = sdk_for(emulator)
        sid = sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi").sid
        with pytest.raises(TwilioException):
            sdk.client.messages.list()
        assert sdk.response.status_code == 429
        server_error = raises_twilio(lambda: sdk.client.calls("CA" + "0" * 32).fetch())
        with pytest.raises(requests.exceptions.ConnectionError):
            sdk.client.messages(sid).fetch()
        assert [m.sid for m in sdk.client.messages.list()] == [sid]
        logged = emulator.requests

    assert server_error.status == 500
    assert [(e["method"], e["fault"], e["processed"]) for e in logged] == [
        ("POST", None, True),
        ("GET", "429", False),
        ("GET", "500", False),
        ("GET", "reset", False),
        ("GET", None, False),
    ]
    assert draws.draws == []


@pytest.mark.parametrize("text", ["lost-response=0.1", "crash=0.1", "5xx-after=0.1"])
def test_emulator_lookup_faults_refuse_kinds_that_need_processing(text: str) -> None:
    with pytest.raises(ValueError, match="look-ups change nothing"):
        emulator_with(lookup_faults=FaultSpec.parse(text))


# -- Status callbacks ----------------------------------------------------------------------------


def test_emulator_status_callbacks_follow_the_stored_timeline() -> None:
    received: list[tuple[str, dict[str, str], str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            received.append((self.path, form, self.headers["X-Twilio-Signature"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/status"
    emulator, clock = timed_emulator()
    try:
        with emulator:
            sdk = sdk_for(emulator)
            sid = sdk.client.messages.create(
                to="+15005550030", from_=VALID_FROM, body="Hi", status_callback=url
            ).sid

            def wait_for(count: int) -> list[str]:
                deadline = time.monotonic() + 5
                while len(emulator.callbacks) < count and time.monotonic() < deadline:
                    time.sleep(0.01)
                return [c["status"] for c in emulator.callbacks]

            assert wait_for(1) == ["queued"]
            time.sleep(0.15)  # several polls: "sent" is not due until the clock says so
            assert wait_for(1) == ["queued"]
            clock.now = T0 + 1
            assert wait_for(2) == ["queued", "sent"]
            clock.now = T0 + 2
            assert wait_for(3) == ["queued", "sent", "undelivered"]
            assert sdk.client.messages(sid).fetch().status == "undelivered"
    finally:
        server.shutdown()
        server.server_close()

    validator = RequestValidator(DEFAULT_AUTH_TOKEN)
    assert [form["MessageStatus"] for _, form, _ in received] == ["queued", "sent", "undelivered"]
    assert received[-1][1]["ErrorCode"] == "30003"
    assert all(validator.validate(url, form, signature) for _, form, signature in received)


# -- The command-line server ---------------------------------------------------------------------


def test_emulator_serve_forever_cli_answers_with_default_credentials(tmp_path: Path) -> None:
    log = tmp_path / "cli.jsonl"
    script = (
        "import sys; from pathlib import Path; "
        "from callqueue.local.emulator import serve_forever_cli; "
        "serve_forever_cli('127.0.0.1', 0, Path(sys.argv[1]), None)"
    )
    process = subprocess.Popen(
        # faulthandler: a child that does not end on SIGINT dumps its threads' stacks (SIGABRT).
        [sys.executable, "-X", "faulthandler", "-c", script, str(log)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", first_line)
        assert base_url is not None, first_line
        http_client = CapturingHttpClient(base_url.group(0), timeout=10)
        client = Client(
            username=DEFAULT_API_KEY_SID,
            password=DEFAULT_API_KEY_SECRET,
            account_sid=DEFAULT_ACCOUNT_SID,
            http_client=http_client,
        )
        assert client.messages.create(to=TO, from_=VALID_FROM, body="Hi").status == "queued"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            # Generous: on a loaded machine the interpreter's exit alone can take seconds.
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            _, stderr = process.communicate(timeout=30)
            pytest.fail(f"the emulator did not end on SIGINT; its threads:\n{stderr}")

    assert process.returncode == 0, process.communicate()[1]
    assert json.loads(log.read_text(encoding="utf-8"))["status"] == 201


# -- The OpenAPI helper ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method"),
    [
        (MESSAGES, "post"),
        (MESSAGES, "get"),
        (CALLS, "post"),
        (LOOKUP, "get"),
        (VERIFY, "post"),
        (STUDIO, "post"),
    ],
)
def test_oai_twilio_examples_fit_their_own_response_schemas(path: str, method: str) -> None:
    operation = oai.find_operation(path, method)
    content = operation.definition["responses"][str(201 if method == "post" else 200)]["content"]
    examples = content["application/json"]["examples"]

    for example in examples.values():
        oai.validate_response(path, method, example["value"], strict=False)


def test_oai_strict_response_schema_requires_every_property() -> None:
    body = {"sid": "SM" + "a" * 32}

    with pytest.raises(jsonschema.ValidationError, match="is a required property"):
        oai.validate_response(MESSAGES, "post", body)


def test_oai_request_schema_rejects_unknown_missing_and_mistyped_params() -> None:
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    good = {
        "To": TO,
        "From": VALID_FROM,
        "Body": "Hi",
        "MaxPrice": "0.5",
        "MediaUrl": "https://e.com/a",
    }
    oai.validate_request(path, "post", good)

    for bad in (
        {**good, "Boddy": "typo"},
        {"To": TO, "Body": "no sender"},
        {"To": TO, "From": VALID_FROM},
        {**good, "MaxPrice": "cheap"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            oai.validate_request(path, "post", bad)
    with pytest.raises(jsonschema.ValidationError):
        oai.validate_request("/2010-04-01/Accounts/ACbad/Messages.json", "post", good)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("date_created", "2024-03-01T10:00:00Z"),
        ("date_sent", "last Tuesday"),
        ("price_unit", "dollars"),
    ],
)
def test_oai_formats_are_checked(name: str, value: str) -> None:
    with emulator_with() as emulator:
        sdk = sdk_for(emulator)
        sdk.client.messages.create(to=TO, from_=VALID_FROM, body="Hi")
        body = {**sdk.body, name: value}

    with pytest.raises(jsonschema.ValidationError, match="is not a"):
        oai.validate_response(MESSAGES, "post", body)


def test_oai_query_params_schema_for_get() -> None:
    schema = oai.request_schema(LOOKUP, "get")

    assert "Fields" in schema["properties"]
    assert "PhoneNumber" not in schema["properties"]


def test_oai_nullable_becomes_a_null_type() -> None:
    spec = {"components": {"schemas": {"S": {"type": "string", "enum": ["a"], "x-twilio": {}}}}}

    converted = oai.to_json_schema(
        {
            "type": "object",
            "properties": {
                "s": {"$ref": "#/components/schemas/S"},
                "n": {"type": "integer", "nullable": True},
            },
        },
        spec,
    )

    assert converted == {
        "type": "object",
        "properties": {"s": {"type": "string", "enum": ["a"]}, "n": {"type": ["integer", "null"]}},
    }
