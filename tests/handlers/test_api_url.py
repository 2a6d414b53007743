"""The webhook URLs of a deployed stage: derived from the REST API's URL in SSM (in-process moto)
when not set by hand, read once and kept, absent without harm; and the sender and the webhook
routes using them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws
from twilio.request_validator import RequestValidator

from callqueue.local.emulator import TwilioEmulator
from chalicelib import wiring
from chalicelib.aws.api_url import MISSING_MAX_AGE_SECONDS, ApiUrl, WebhookUrls
from chalicelib.core.records import CallRequest
from chalicelib.twilio.callbacks import status_callback_url
from chalicelib.twilio.credentials import Credentials
from chalicelib.twilio.gateway import CapturingHttpClient, make_gateway
from tests.handlers.test_inbound import reply_form
from tests.handlers.test_status_callback import callback_form
from tests.stack import ACCOUNT_SID, AUTH_TOKEN, Stack

PARAMETER = "/callqueue/dev/api-url"
# Port 9 refuses connections at once: the emulator's callbacks to it fail fast, reaching no one.
API = "http://127.0.0.1:9/api/"
STATUS = "http://127.0.0.1:9/api/twilio/status"
INBOUND = "http://127.0.0.1:9/api/twilio/inbound"
JOB = "calls-0123456789ab"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_reads(ssm: Any) -> list[str]:
    """The names of the parameters `ssm` is asked for, from now on."""
    asked: list[str] = []
    ssm.meta.events.register(
        "before-parameter-build.ssm.GetParameter", lambda params, **_: asked.append(params["Name"])
    )
    return asked


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


@pytest.mark.parametrize("api", [API, API.rstrip("/")])
def test_webhook_urls_are_the_api_s_routes(ssm: Any, api: str) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=api, Type="String")
    urls = WebhookUrls(None, None, ApiUrl(ssm, PARAMETER))

    assert (urls.status(), urls.inbound()) == (STATUS, INBOUND)


def test_webhook_urls_set_by_hand_win_and_nothing_is_read(ssm: Any) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=API, Type="String")
    asked = count_reads(ssm)
    own = ("https://hooks.example/status", "https://hooks.example/inbound")
    urls = WebhookUrls(*own, ApiUrl(ssm, PARAMETER))

    assert (urls.status(), urls.inbound()) == own
    assert asked == []


def test_webhook_urls_without_a_parameter_name_read_nothing() -> None:
    assert WebhookUrls(None, None, None).status() is None
    assert WebhookUrls(None, None, None).inbound() is None


def test_api_url_found_is_read_once_and_kept(ssm: Any) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=API, Type="String")
    asked = count_reads(ssm)
    url = ApiUrl(ssm, PARAMETER)

    assert {url.get() for _ in range(50)} == {API}
    assert asked == [PARAMETER]


def test_api_url_missing_is_none_warned_once_and_asked_again_later(
    ssm: Any, caplog: pytest.LogCaptureFixture
) -> None:
    asked = count_reads(ssm)
    clock = Clock()
    url = ApiUrl(ssm, PARAMETER, clock=clock)

    assert [url.route("/twilio/status") for _ in range(5)] == [None] * 5
    assert asked == [PARAMETER]  # a miss is kept too: not one request a message
    clock.now += MISSING_MAX_AGE_SECONDS
    assert url.get() is None
    assert asked == [PARAMETER] * 2
    warnings = [r for r in caplog.records if r.name == "chalicelib.aws.api_url"]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert PARAMETER in warnings[0].getMessage()

    # Written by the deploy: found once the miss has expired.
    ssm.put_parameter(Name=PARAMETER, Value=API, Type="String")
    assert url.get() is None
    clock.now += MISSING_MAX_AGE_SECONDS
    assert url.get() == API
    assert len(asked) == 3


def test_api_url_not_allowed_is_taken_as_absent(ssm: Any) -> None:
    def refuse(**_: Any) -> None:
        raise ssm.exceptions.ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter"
        )

    ssm.put_parameter(Name=PARAMETER, Value=API, Type="String")
    ssm.meta.events.register("before-call.ssm.GetParameter", refuse)

    assert ApiUrl(ssm, PARAMETER).get() is None


# -- the deployed stage's functions: API_URL_PARAMETER set, STATUS_CALLBACK_URL not --------------


@pytest.fixture
def deployed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The stack with the deploy's API_URL_PARAMETER and no URL set by hand; yields the names of
    the parameters read."""
    monkeypatch.delenv("STATUS_CALLBACK_URL", raising=False)
    monkeypatch.delenv("INBOUND_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("API_URL_PARAMETER", PARAMETER)
    wiring.reset()
    yield count_reads(wiring.client("ssm"))
    wiring.reset()


def message(row: int) -> CallRequest:
    params = {"To": "+14155550100", "From": "+15005550006", "Body": "hello"}
    return CallRequest("messages", dict(params), job_id=JOB, row=row)


def test_messages_ask_for_callbacks_at_the_deployed_api_read_once(
    deployed: list[str], emulator: TwilioEmulator
) -> None:
    wiring.client("ssm").put_parameter(Name=PARAMETER, Value=API, Type="String")
    credentials = Credentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN)
    for row in range(1, 4):  # a gateway a container, sharing one container's URLs
        http = CapturingHttpClient(emulator.base_url, timeout=10)
        gateway = make_gateway(credentials, http, status_callback=wiring.webhook_urls().status)
        gateway.call(message(row))
        gateway.call(message(row + 10))

    asked = [r["params"]["StatusCallback"] for r in emulator.requests]
    assert asked == [
        status_callback_url(STATUS, JOB, row) for r in range(1, 4) for row in (r, r + 10)
    ]
    assert deployed == [PARAMETER]


def test_messages_ask_for_no_callback_while_the_parameter_is_missing(
    deployed: list[str], emulator: TwilioEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = Credentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN)
    http = CapturingHttpClient(emulator.base_url, timeout=10)
    gateway = make_gateway(credentials, http, status_callback=wiring.webhook_urls().status)

    results = [gateway.call(message(row)) for row in (1, 2)]

    assert [r.status for r in results] == [201, 201]
    assert [r["params"].get("StatusCallback") for r in emulator.requests] == [None, None]
    assert deployed == [PARAMETER]
    assert len([r for r in caplog.records if r.name == "chalicelib.aws.api_url"]) == 1


@pytest.fixture
def client(deployed: list[str], tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def post_signed(client: Client, url: str, form: dict[str, str], *, signed_for: str = "") -> Any:
    """POST `form` to the route of `url`, signed by Twilio for `url` (or for `signed_for`)."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(signed_for or url, form)
    path = url.removeprefix("http://127.0.0.1:9/api")
    headers = {**FORM, "X-Twilio-Signature": signature}
    return client.http.post(path, headers=headers, body=urlencode(form).encode())


def test_webhook_routes_check_signatures_of_the_deployed_api_s_urls(client: Client) -> None:
    wiring.client("ssm").put_parameter(Name=PARAMETER, Value=API, Type="String")
    wiring.ledger().claim(JOB, 7, 1)

    status = post_signed(client, status_callback_url(STATUS, JOB, 7), callback_form("sent"))
    inbound = post_signed(client, INBOUND, reply_form("STOP"))
    # Signed for another API's URL: refused.
    url = status_callback_url(STATUS, JOB, 7)
    other = post_signed(
        client, url, callback_form("delivered"), signed_for=url.replace(":9/", ":10/")
    )

    assert (status.status_code, inbound.status_code, other.status_code) == (204, 200, 403)


def test_webhook_routes_refuse_everything_while_the_parameter_is_missing(client: Client) -> None:
    wiring.ledger().claim(JOB, 7, 1)

    status = post_signed(client, status_callback_url(STATUS, JOB, 7), callback_form("sent"))
    inbound = post_signed(client, INBOUND, reply_form("STOP"))

    assert (status.status_code, inbound.status_code) == (403, 403)


FUNCTION_PARAMETER = "/callqueue/dev/status-callback-url"
FUNCTION_URL = "https://abc123.lambda-url.us-east-1.on.aws/"


def test_messages_ask_for_callbacks_at_the_function_url_once_published(ssm: Any) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=API, Type="String")
    ssm.put_parameter(Name=FUNCTION_PARAMETER, Value=FUNCTION_URL, Type="String")
    urls = WebhookUrls(None, None, ApiUrl(ssm, PARAMETER), ApiUrl(ssm, FUNCTION_PARAMETER))

    # Messages ask for the function URL; the REST route keeps checking its own URL.
    assert (urls.status(), urls.status_route(), urls.inbound()) == (FUNCTION_URL, STATUS, INBOUND)
    assert status_callback_url(FUNCTION_URL, JOB, 7) == f"{FUNCTION_URL}?job={JOB}&row=7"


def test_messages_ask_for_callbacks_at_the_rest_route_until_the_function_url_is_published(
    ssm: Any,
) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=API, Type="String")
    urls = WebhookUrls(None, None, ApiUrl(ssm, PARAMETER), ApiUrl(ssm, FUNCTION_PARAMETER))

    assert (urls.status(), urls.status_route()) == (STATUS, STATUS)


def test_a_status_callback_url_set_by_hand_wins_over_the_function_url(ssm: Any) -> None:
    ssm.put_parameter(Name=FUNCTION_PARAMETER, Value=FUNCTION_URL, Type="String")
    asked = count_reads(ssm)
    own = "https://hooks.example/status"
    urls = WebhookUrls(own, None, None, ApiUrl(ssm, FUNCTION_PARAMETER))

    assert (urls.status(), urls.status_route()) == (own, own)
    assert asked == []
